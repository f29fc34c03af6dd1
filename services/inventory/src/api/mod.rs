//! Inventory's gRPC handlers: decode, authorize, validate, call the store in one transaction,
//! encode. No SQL here; every error leaves as a platform `Error`.

mod convert;
mod materials;
mod reservations;
mod stock;
mod suppliers;
mod warehouses;

use std::sync::Arc;

use logistics_platform::aip::{self, PageTokens};
use logistics_platform::auth;
use logistics_platform::error::{Error, FieldViolation, Violations};
use logistics_proto::inventory::v1 as pb;
use pb::inventory_service_server::InventoryService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

/// What every handler shares.
pub struct State {
    /// Runtime-role pool; only ever used through `DbContext::begin`.
    pub pool: PgPool,
    /// Page-token signer.
    pub page_tokens: PageTokens,
}

/// The `InventoryService` implementation.
#[derive(Clone)]
pub struct InventoryApi {
    state: Arc<State>,
}

impl InventoryApi {
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
        impl InventoryService for InventoryApi {
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
    create_material(CreateMaterialRequest) -> CreateMaterialResponse => materials::create_material;
    get_material(GetMaterialRequest) -> GetMaterialResponse => materials::get_material;
    list_materials(ListMaterialsRequest) -> ListMaterialsResponse => materials::list_materials;
    update_material(UpdateMaterialRequest) -> UpdateMaterialResponse => materials::update_material;
    delete_material(DeleteMaterialRequest) -> DeleteMaterialResponse => materials::delete_material;
    undelete_material(UndeleteMaterialRequest) -> UndeleteMaterialResponse => materials::undelete_material;
    create_warehouse(CreateWarehouseRequest) -> CreateWarehouseResponse => warehouses::create_warehouse;
    get_warehouse(GetWarehouseRequest) -> GetWarehouseResponse => warehouses::get_warehouse;
    list_warehouses(ListWarehousesRequest) -> ListWarehousesResponse => warehouses::list_warehouses;
    update_warehouse(UpdateWarehouseRequest) -> UpdateWarehouseResponse => warehouses::update_warehouse;
    delete_warehouse(DeleteWarehouseRequest) -> DeleteWarehouseResponse => warehouses::delete_warehouse;
    undelete_warehouse(UndeleteWarehouseRequest) -> UndeleteWarehouseResponse => warehouses::undelete_warehouse;
    create_material_supplier(CreateMaterialSupplierRequest) -> CreateMaterialSupplierResponse => suppliers::create_material_supplier;
    get_material_supplier(GetMaterialSupplierRequest) -> GetMaterialSupplierResponse => suppliers::get_material_supplier;
    list_material_suppliers(ListMaterialSuppliersRequest) -> ListMaterialSuppliersResponse => suppliers::list_material_suppliers;
    update_material_supplier(UpdateMaterialSupplierRequest) -> UpdateMaterialSupplierResponse => suppliers::update_material_supplier;
    delete_material_supplier(DeleteMaterialSupplierRequest) -> DeleteMaterialSupplierResponse => suppliers::delete_material_supplier;
    undelete_material_supplier(UndeleteMaterialSupplierRequest) -> UndeleteMaterialSupplierResponse => suppliers::undelete_material_supplier;
    receive_stock(ReceiveStockRequest) -> ReceiveStockResponse => stock::receive_stock;
    issue_stock(IssueStockRequest) -> IssueStockResponse => stock::issue_stock;
    adjust_stock(AdjustStockRequest) -> AdjustStockResponse => stock::adjust_stock;
    transfer_stock(TransferStockRequest) -> TransferStockResponse => stock::transfer_stock;
    reserve_stock(ReserveStockRequest) -> ReserveStockResponse => reservations::reserve_stock;
    release_reservation(ReleaseReservationRequest) -> ReleaseReservationResponse => reservations::release_reservation;
    consume_reservation(ConsumeReservationRequest) -> ConsumeReservationResponse => reservations::consume_reservation;
    list_reservations(ListReservationsRequest) -> ListReservationsResponse => reservations::list_reservations;
    get_stock_level(GetStockLevelRequest) -> GetStockLevelResponse => stock::get_stock_level;
    list_stock_levels(ListStockLevelsRequest) -> ListStockLevelsResponse => stock::list_stock_levels;
    list_stock_movements(ListStockMovementsRequest) -> ListStockMovementsResponse => stock::list_stock_movements;
    check_stock_ledger(CheckStockLedgerRequest) -> CheckStockLedgerResponse => stock::check_stock_ledger;
}

/// A required idempotency key of a stock operation.
fn idempotency_key(v: &mut Violations, raw: &str) -> Option<Uuid> {
    if raw.trim().is_empty() {
        v.push(FieldViolation::new("idempotency_key", "is required"));
        None
    } else {
        v.check(aip::parse_id("idempotency_key", raw))
    }
}

/// Stock operations share one claim space: an idempotency key is unique per tenant across
/// every operation, and the fingerprint includes the method, so a key reused by another
/// operation is refused even where two requests encode alike.
const STOCK_OPERATION: &str = "StockOperation";

/// Claims `key` for the stock operation `method` with the encoded request, or returns the
/// answer of its first call. A key used for anything else is INVALID_ARGUMENT on
/// `idempotency_key`.
async fn replay_operation<R: prost::Message + Default>(
    tx: &mut logistics_platform::context::Tx,
    method: &str,
    key: Uuid,
    encoded_request: &[u8],
) -> Result<Option<R>, Error> {
    let fingerprint =
        aip::request_fingerprint(&[method.as_bytes(), b"\0", encoded_request].concat());
    crate::store::IDEMPOTENCY
        .replay(tx, STOCK_OPERATION, Some(key), &fingerprint)
        .await
        .map_err(|e| match e {
            Error::Invalid(violations) => Error::Invalid(
                violations
                    .into_iter()
                    .map(|v| FieldViolation::new("idempotency_key", v.description))
                    .collect(),
            ),
            other => other,
        })
}

/// Stores the answer of the stock operation claimed under `key`, in its transaction.
async fn record_operation<R: prost::Message>(
    tx: &mut logistics_platform::context::Tx,
    key: Uuid,
    response: &R,
) -> Result<(), Error> {
    crate::store::IDEMPOTENCY
        .record(tx, STOCK_OPERATION, Some(key), response)
        .await
}
