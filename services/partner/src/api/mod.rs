//! Partner's gRPC handlers: decode, authorize, validate, seal, call the store in one
//! transaction, open, encode. No SQL here; every error leaves as a platform `Error`.

mod addresses;
mod contacts;
mod convert;
mod partners;
mod profiles;

use std::sync::Arc;

use logistics_platform::aip::PageTokens;
use logistics_platform::auth;
use logistics_proto::partner::v1 as pb;
use pb::partner_service_server::PartnerService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::sealing::Sealer;

/// What every handler shares.
pub struct State {
    /// Runtime-role pool; only ever used through `DbContext::begin`.
    pub pool: PgPool,
    /// Seals and opens personal data.
    pub sealer: Sealer,
    /// Page-token signer.
    pub page_tokens: PageTokens,
}

/// The `PartnerService` implementation.
#[derive(Clone)]
pub struct PartnerApi {
    state: Arc<State>,
}

impl PartnerApi {
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
        impl PartnerService for PartnerApi {
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
    create_partner(CreatePartnerRequest) -> CreatePartnerResponse => partners::create_partner;
    get_partner(GetPartnerRequest) -> GetPartnerResponse => partners::get_partner;
    list_partners(ListPartnersRequest) -> ListPartnersResponse => partners::list_partners;
    update_partner(UpdatePartnerRequest) -> UpdatePartnerResponse => partners::update_partner;
    delete_partner(DeletePartnerRequest) -> DeletePartnerResponse => partners::delete_partner;
    undelete_partner(UndeletePartnerRequest) -> UndeletePartnerResponse => partners::undelete_partner;
    add_partner_role(AddPartnerRoleRequest) -> AddPartnerRoleResponse => partners::add_partner_role;
    remove_partner_role(RemovePartnerRoleRequest) -> RemovePartnerRoleResponse => partners::remove_partner_role;
    lookup_partner_by_tax_id(LookupPartnerByTaxIdRequest) -> LookupPartnerByTaxIdResponse => partners::lookup_partner_by_tax_id;
    batch_get_partners(BatchGetPartnersRequest) -> BatchGetPartnersResponse => partners::batch_get_partners;
    get_supplier_profile(GetSupplierProfileRequest) -> GetSupplierProfileResponse => profiles::get_supplier_profile;
    update_supplier_profile(UpdateSupplierProfileRequest) -> UpdateSupplierProfileResponse => profiles::update_supplier_profile;
    delete_supplier_profile(DeleteSupplierProfileRequest) -> DeleteSupplierProfileResponse => profiles::delete_supplier_profile;
    get_customer_profile(GetCustomerProfileRequest) -> GetCustomerProfileResponse => profiles::get_customer_profile;
    update_customer_profile(UpdateCustomerProfileRequest) -> UpdateCustomerProfileResponse => profiles::update_customer_profile;
    delete_customer_profile(DeleteCustomerProfileRequest) -> DeleteCustomerProfileResponse => profiles::delete_customer_profile;
    create_contact(CreateContactRequest) -> CreateContactResponse => contacts::create_contact;
    get_contact(GetContactRequest) -> GetContactResponse => contacts::get_contact;
    list_contacts(ListContactsRequest) -> ListContactsResponse => contacts::list_contacts;
    update_contact(UpdateContactRequest) -> UpdateContactResponse => contacts::update_contact;
    delete_contact(DeleteContactRequest) -> DeleteContactResponse => contacts::delete_contact;
    undelete_contact(UndeleteContactRequest) -> UndeleteContactResponse => contacts::undelete_contact;
    create_address(CreateAddressRequest) -> CreateAddressResponse => addresses::create_address;
    get_address(GetAddressRequest) -> GetAddressResponse => addresses::get_address;
    list_addresses(ListAddressesRequest) -> ListAddressesResponse => addresses::list_addresses;
    update_address(UpdateAddressRequest) -> UpdateAddressResponse => addresses::update_address;
    delete_address(DeleteAddressRequest) -> DeleteAddressResponse => addresses::delete_address;
    undelete_address(UndeleteAddressRequest) -> UndeleteAddressResponse => addresses::undelete_address;
}
