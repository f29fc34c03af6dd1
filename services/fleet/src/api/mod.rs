//! Fleet's gRPC handlers: decode, authorize, validate, seal, call the store in one transaction,
//! open, encode. No SQL here; every error leaves as a platform `Error`.

mod assignments;
mod convert;
mod drivers;
mod maintenance;
mod trucks;

use std::sync::Arc;

use logistics_platform::aip::PageTokens;
use logistics_platform::auth;
use logistics_proto::fleet::v1 as pb;
use pb::fleet_service_server::FleetService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::sealing::Sealer;

/// What every handler shares.
pub struct State {
    /// Runtime-role pool; only ever used through `DbContext::begin`.
    pub pool: PgPool,
    /// Seals and opens licence numbers and phones.
    pub sealer: Sealer,
    /// Page-token signer.
    pub page_tokens: PageTokens,
}

/// The `FleetService` implementation.
#[derive(Clone)]
pub struct FleetApi {
    state: Arc<State>,
}

impl FleetApi {
    /// Handlers over `state`.
    pub fn new(state: State) -> Self {
        Self {
            state: Arc::new(state),
        }
    }
}

/// Implements each listed RPC by taking the verified caller and calling the handler.
macro_rules! rpcs {
    ($($method:ident($request:ident) -> $response:ident => $handler:path;)+) => {
        #[tonic::async_trait]
        impl FleetService for FleetApi {
            $(
                async fn $method(&self, request: Request<pb::$request>) -> Result<Response<pb::$response>, Status> {
                    let caller = auth::caller(&request)?;
                    $handler(&self.state, &caller, request.into_inner())
                        .await
                        .map(Response::new)
                        .map_err(Status::from)
                }
            )+
        }
    };
}

rpcs! {
    create_truck(CreateTruckRequest) -> CreateTruckResponse => trucks::create_truck;
    get_truck(GetTruckRequest) -> GetTruckResponse => trucks::get_truck;
    list_trucks(ListTrucksRequest) -> ListTrucksResponse => trucks::list_trucks;
    update_truck(UpdateTruckRequest) -> UpdateTruckResponse => trucks::update_truck;
    delete_truck(DeleteTruckRequest) -> DeleteTruckResponse => trucks::delete_truck;
    undelete_truck(UndeleteTruckRequest) -> UndeleteTruckResponse => trucks::undelete_truck;
    create_driver(CreateDriverRequest) -> CreateDriverResponse => drivers::create_driver;
    get_driver(GetDriverRequest) -> GetDriverResponse => drivers::get_driver;
    list_drivers(ListDriversRequest) -> ListDriversResponse => drivers::list_drivers;
    update_driver(UpdateDriverRequest) -> UpdateDriverResponse => drivers::update_driver;
    delete_driver(DeleteDriverRequest) -> DeleteDriverResponse => drivers::delete_driver;
    undelete_driver(UndeleteDriverRequest) -> UndeleteDriverResponse => drivers::undelete_driver;
    create_maintenance_record(CreateMaintenanceRecordRequest) -> CreateMaintenanceRecordResponse => maintenance::create_maintenance_record;
    get_maintenance_record(GetMaintenanceRecordRequest) -> GetMaintenanceRecordResponse => maintenance::get_maintenance_record;
    list_maintenance_records(ListMaintenanceRecordsRequest) -> ListMaintenanceRecordsResponse => maintenance::list_maintenance_records;
    update_maintenance_record(UpdateMaintenanceRecordRequest) -> UpdateMaintenanceRecordResponse => maintenance::update_maintenance_record;
    delete_maintenance_record(DeleteMaintenanceRecordRequest) -> DeleteMaintenanceRecordResponse => maintenance::delete_maintenance_record;
    undelete_maintenance_record(UndeleteMaintenanceRecordRequest) -> UndeleteMaintenanceRecordResponse => maintenance::undelete_maintenance_record;
    find_available_trucks(FindAvailableTrucksRequest) -> FindAvailableTrucksResponse => trucks::find_available_trucks;
    find_available_drivers(FindAvailableDriversRequest) -> FindAvailableDriversResponse => drivers::find_available_drivers;
    create_assignment(CreateAssignmentRequest) -> CreateAssignmentResponse => assignments::create_assignment;
    assign_available(AssignAvailableRequest) -> AssignAvailableResponse => assignments::assign_available;
    get_assignment(GetAssignmentRequest) -> GetAssignmentResponse => assignments::get_assignment;
    cancel_assignment(CancelAssignmentRequest) -> CancelAssignmentResponse => assignments::cancel_assignment;
    list_assignments(ListAssignmentsRequest) -> ListAssignmentsResponse => assignments::list_assignments;
}
