//! Who may call what and see which rows: permissions per role, customer and supplier users
//! confined to their own partner, tenants isolated through the API and by row-level security
//! underneath it, and personal data kept out of logs, error answers and plain-text storage.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, acme, authed, expect_code, violated_fields};
use logistics_proto::identity::v1 as idpb;
use logistics_proto::partner::v1 as pb;
use partner::app::SCHEMA;
use prost_types::FieldMask;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

/// Every table of the schema, plus the view every partner read goes through.
const PARTNER_TABLES: &[&str] = &[
    "partners",
    "partner_roles",
    "supplier_profiles",
    "customer_profiles",
    "contacts",
    "addresses",
    "idempotency_keys",
    "partner_records",
];

/// A partner holding the supplier and customer roles, with both profiles, one contact and one
/// address.
#[derive(Debug, Clone)]
struct Fixture {
    partner: pb::Partner,
    contact: pb::Contact,
    address: pb::Address,
}

impl Fixture {
    fn partner_id(&self) -> Uuid {
        Uuid::parse_str(&self.partner.id).unwrap()
    }
}

/// The outcome of one RPC, named by its method.
type Outcome = (&'static str, Result<(), Status>);

fn request_id() -> String {
    Uuid::now_v7().to_string()
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// A request carrying `token`, or no credentials at all when `token` is empty.
fn call<T>(token: &str, message: T) -> Request<T> {
    if token.is_empty() {
        Request::new(message)
    } else {
        authed(token, message)
    }
}

fn contact_of(partner_id: &str, name: &str, email: &str, phone: &str) -> pb::Contact {
    pb::Contact {
        partner_id: partner_id.to_owned(),
        name: name.to_owned(),
        email: email.to_owned(),
        phone: phone.to_owned(),
        ..Default::default()
    }
}

fn address_of(partner_id: &str, city: &str) -> pb::Address {
    pb::Address {
        partner_id: partner_id.to_owned(),
        kind: pb::AddressKind::Billing as i32,
        line1: "Hauptstraße 1".to_owned(),
        city: city.to_owned(),
        postal_code: "10115".to_owned(),
        country_code: "DE".to_owned(),
        ..Default::default()
    }
}

/// Creates a [`Fixture`] named `name` with `token` (an admin of some tenant).
async fn fixture(app: &TestApp, token: &str, name: &str, tax_id: &str) -> Fixture {
    let created = app
        .create_partner_as(
            token,
            acme(name, tax_id),
            &[pb::PartnerRole::Supplier, pb::PartnerRole::Customer],
        )
        .await
        .unwrap();
    let contact = app
        .create_contact_as(
            token,
            contact_of(
                &created.id,
                &format!("{name} Buyer"),
                &format!("buyer@{}.example", name.to_lowercase()),
                "",
            ),
        )
        .await
        .unwrap();
    let address = app
        .create_address_as(token, address_of(&created.id, &format!("{name}stadt")))
        .await
        .unwrap();
    let mut client = app.client().await;
    client
        .update_supplier_profile(authed(
            token,
            pb::UpdateSupplierProfileRequest {
                profile: Some(pb::SupplierProfile {
                    partner_id: created.id.clone(),
                    payment_terms_days: 14,
                    ..Default::default()
                }),
                update_mask: mask(&["payment_terms_days"]),
                allow_missing: true,
            },
        ))
        .await
        .unwrap();
    client
        .update_customer_profile(authed(
            token,
            pb::UpdateCustomerProfileRequest {
                profile: Some(pb::CustomerProfile {
                    partner_id: created.id.clone(),
                    payment_terms_days: 21,
                    ..Default::default()
                }),
                update_mask: mask(&["payment_terms_days"]),
                allow_missing: true,
            },
        ))
        .await
        .unwrap();
    let partner = get_partner(app, token, &created.id).await.unwrap();
    Fixture {
        partner,
        contact,
        address,
    }
}

async fn get_partner(app: &TestApp, token: &str, id: &str) -> Result<pb::Partner, Status> {
    app.client()
        .await
        .get_partner(call(token, pb::GetPartnerRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

async fn list_partner_ids(app: &TestApp, token: &str, filter: &str) -> Vec<String> {
    app.client()
        .await
        .list_partners(call(
            token,
            pb::ListPartnersRequest {
                filter: filter.to_owned(),
                show_deleted: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .partners
        .into_iter()
        .map(|p| p.id)
        .collect()
}

async fn batch_get(app: &TestApp, token: &str, ids: &[&str]) -> Result<Vec<String>, Status> {
    app.client()
        .await
        .batch_get_partners(call(
            token,
            pb::BatchGetPartnersRequest {
                ids: ids.iter().map(|id| (*id).to_owned()).collect(),
            },
        ))
        .await
        .map(|r| r.into_inner().partners.into_iter().map(|p| p.id).collect())
}

async fn lookup(app: &TestApp, token: &str, tax_id: &str) -> Result<pb::Partner, Status> {
    app.client()
        .await
        .lookup_partner_by_tax_id(call(
            token,
            pb::LookupPartnerByTaxIdRequest {
                country_code: "DE".to_owned(),
                tax_id: tax_id.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

async fn list_contacts(
    app: &TestApp,
    token: &str,
    partner_id: &str,
) -> Result<Vec<pb::Contact>, Status> {
    app.client()
        .await
        .list_contacts(call(
            token,
            pb::ListContactsRequest {
                partner_id: partner_id.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().contacts)
}

async fn list_addresses(
    app: &TestApp,
    token: &str,
    partner_id: &str,
) -> Result<Vec<pb::Address>, Status> {
    app.client()
        .await
        .list_addresses(call(
            token,
            pb::ListAddressesRequest {
                partner_id: partner_id.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().addresses)
}

async fn get_contact(app: &TestApp, token: &str, id: &str) -> Result<pb::Contact, Status> {
    app.client()
        .await
        .get_contact(call(token, pb::GetContactRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().contact.unwrap())
}

async fn get_address(app: &TestApp, token: &str, id: &str) -> Result<pb::Address, Status> {
    app.client()
        .await
        .get_address(call(token, pb::GetAddressRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().address.unwrap())
}

async fn update_contact_job_title(
    app: &TestApp,
    token: &str,
    id: &str,
    job_title: &str,
) -> Result<pb::Contact, Status> {
    app.client()
        .await
        .update_contact(call(
            token,
            pb::UpdateContactRequest {
                contact: Some(pb::Contact {
                    id: id.to_owned(),
                    job_title: job_title.to_owned(),
                    ..Default::default()
                }),
                update_mask: mask(&["job_title"]),
            },
        ))
        .await
        .map(|r| r.into_inner().contact.unwrap())
}

async fn update_address_city(
    app: &TestApp,
    token: &str,
    id: &str,
    city: &str,
) -> Result<pb::Address, Status> {
    app.client()
        .await
        .update_address(call(
            token,
            pb::UpdateAddressRequest {
                address: Some(pb::Address {
                    id: id.to_owned(),
                    city: city.to_owned(),
                    ..Default::default()
                }),
                update_mask: mask(&["city"]),
            },
        ))
        .await
        .map(|r| r.into_inner().address.unwrap())
}

async fn update_partner(
    app: &TestApp,
    token: &str,
    partner: pb::Partner,
    paths: &[&str],
) -> Result<pb::Partner, Status> {
    app.client()
        .await
        .update_partner(call(
            token,
            pb::UpdatePartnerRequest {
                partner: Some(partner),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

/// Every read RPC, aimed at `f`.
async fn every_read(app: &TestApp, token: &str, f: &Fixture) -> Vec<Outcome> {
    let mut c = app.client().await;
    let id = f.partner.id.clone();
    vec![
        (
            "GetPartner",
            c.get_partner(call(token, pb::GetPartnerRequest { id: id.clone() }))
                .await
                .map(drop),
        ),
        (
            "ListPartners",
            c.list_partners(call(token, pb::ListPartnersRequest::default()))
                .await
                .map(drop),
        ),
        (
            "BatchGetPartners",
            c.batch_get_partners(call(
                token,
                pb::BatchGetPartnersRequest {
                    ids: vec![id.clone()],
                },
            ))
            .await
            .map(drop),
        ),
        (
            "LookupPartnerByTaxId",
            c.lookup_partner_by_tax_id(call(
                token,
                pb::LookupPartnerByTaxIdRequest {
                    country_code: f.partner.country_code.clone(),
                    tax_id: f.partner.tax_id.clone(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "GetSupplierProfile",
            c.get_supplier_profile(call(
                token,
                pb::GetSupplierProfileRequest {
                    partner_id: id.clone(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "GetCustomerProfile",
            c.get_customer_profile(call(
                token,
                pb::GetCustomerProfileRequest {
                    partner_id: id.clone(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "GetContact",
            c.get_contact(call(
                token,
                pb::GetContactRequest {
                    id: f.contact.id.clone(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ListContacts",
            c.list_contacts(call(
                token,
                pb::ListContactsRequest {
                    partner_id: id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "GetAddress",
            c.get_address(call(
                token,
                pb::GetAddressRequest {
                    id: f.address.id.clone(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "ListAddresses",
            c.list_addresses(call(
                token,
                pb::ListAddressesRequest {
                    partner_id: id,
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
    ]
}

/// Every write RPC, aimed at `f`, in an order where each succeeds for a caller allowed to make
/// it (and leaves `f` as it found it, so it can run again).
async fn every_write(app: &TestApp, token: &str, f: &Fixture) -> Vec<Outcome> {
    let mut c = app.client().await;
    let id = f.partner.id.clone();
    let mut out: Vec<Outcome> = Vec::new();
    out.push((
        "CreatePartner",
        c.create_partner(call(
            token,
            pb::CreatePartnerRequest {
                request_id: request_id(),
                partner: Some(acme("Written", "")),
                roles: vec![],
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "UpdatePartner",
        c.update_partner(call(
            token,
            pb::UpdatePartnerRequest {
                partner: Some(pb::Partner {
                    id: id.clone(),
                    legal_name: "Renamed GmbH".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["legal_name"]),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "AddPartnerRole",
        c.add_partner_role(call(
            token,
            pb::AddPartnerRoleRequest {
                partner_id: id.clone(),
                role: pb::PartnerRole::Carrier as i32,
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "RemovePartnerRole",
        c.remove_partner_role(call(
            token,
            pb::RemovePartnerRoleRequest {
                partner_id: id.clone(),
                role: pb::PartnerRole::Carrier as i32,
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "DeleteSupplierProfile",
        c.delete_supplier_profile(call(
            token,
            pb::DeleteSupplierProfileRequest {
                partner_id: id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "UpdateSupplierProfile",
        c.update_supplier_profile(call(
            token,
            pb::UpdateSupplierProfileRequest {
                profile: Some(pb::SupplierProfile {
                    partner_id: id.clone(),
                    payment_terms_days: 45,
                    ..Default::default()
                }),
                update_mask: mask(&["payment_terms_days"]),
                allow_missing: true,
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "DeleteCustomerProfile",
        c.delete_customer_profile(call(
            token,
            pb::DeleteCustomerProfileRequest {
                partner_id: id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "UpdateCustomerProfile",
        c.update_customer_profile(call(
            token,
            pb::UpdateCustomerProfileRequest {
                profile: Some(pb::CustomerProfile {
                    partner_id: id.clone(),
                    payment_terms_days: 60,
                    ..Default::default()
                }),
                update_mask: mask(&["payment_terms_days"]),
                allow_missing: true,
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "CreateContact",
        c.create_contact(call(
            token,
            pb::CreateContactRequest {
                request_id: request_id(),
                contact: Some(contact_of(&id, "Another Buyer", "", "+4930123456")),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "UpdateContact",
        c.update_contact(call(
            token,
            pb::UpdateContactRequest {
                contact: Some(pb::Contact {
                    id: f.contact.id.clone(),
                    job_title: "Purchasing".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["job_title"]),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "DeleteContact",
        c.delete_contact(call(
            token,
            pb::DeleteContactRequest {
                id: f.contact.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "UndeleteContact",
        c.undelete_contact(call(
            token,
            pb::UndeleteContactRequest {
                id: f.contact.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "CreateAddress",
        c.create_address(call(
            token,
            pb::CreateAddressRequest {
                request_id: request_id(),
                address: Some(address_of(&id, "Potsdam")),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "UpdateAddress",
        c.update_address(call(
            token,
            pb::UpdateAddressRequest {
                address: Some(pb::Address {
                    id: f.address.id.clone(),
                    city: "Leipzig".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["city"]),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "DeleteAddress",
        c.delete_address(call(
            token,
            pb::DeleteAddressRequest {
                id: f.address.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "UndeleteAddress",
        c.undelete_address(call(
            token,
            pb::UndeleteAddressRequest {
                id: f.address.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "DeletePartner",
        c.delete_partner(call(
            token,
            pb::DeletePartnerRequest {
                id: id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .map(drop),
    ));
    out.push((
        "UndeletePartner",
        c.undelete_partner(call(
            token,
            pb::UndeletePartnerRequest {
                id,
                etag: String::new(),
            },
        ))
        .await
        .map(drop),
    ));
    out
}

/// The permission a write RPC needs.
fn write_permission(method: &str) -> &'static str {
    if method.contains("Contact") || method.contains("Address") {
        "partner.contacts.write"
    } else {
        "partner.partners.write"
    }
}

/// The permission named in a PERMISSION_DENIED answer.
fn denied_permission(status: &Status) -> String {
    status
        .get_details_error_info()
        .and_then(|info| info.metadata.get("permission").cloned())
        .unwrap_or_default()
}

#[track_caller]
fn assert_all_ok(who: &str, outcomes: &[Outcome]) {
    for (method, outcome) in outcomes {
        if let Err(status) = outcome {
            panic!("{who}: {method} failed: {status:?}");
        }
    }
}

#[track_caller]
fn assert_all_denied(who: &str, outcomes: &[Outcome], permission_of: fn(&str) -> &'static str) {
    for (method, outcome) in outcomes {
        match outcome {
            Ok(()) => panic!("{who}: {method} succeeded"),
            Err(status) => {
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{who}: {method}: {status:?}"
                );
                assert_eq!(
                    denied_permission(status),
                    permission_of(method),
                    "{who}: {method}"
                );
            }
        }
    }
}

/// Every row of every partner table, as text, for before/after comparisons.
async fn snapshot(db: &sqlx::PgPool) -> Vec<String> {
    let mut rows = Vec::new();
    for table in PARTNER_TABLES {
        let text: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT string_agg(t::text, E'\\n' ORDER BY t::text) FROM partner.{table} t"
        )))
        .fetch_one(db)
        .await
        .unwrap();
        rows.push(format!("{table}: {}", text.unwrap_or_default()));
    }
    rows
}

// Customers and suppliers ----------------------------------------------------------------------

#[tokio::test]
async fn a_customer_user_reads_only_its_own_partner() {
    let app = TestApp::spawn().await;
    let a = fixture(&app, &app.admin_token, "Alpha", "DE111111111").await;
    let b = fixture(&app, &app.admin_token, "Bravo", "DE222222222").await;
    let customer = app
        .token(
            "buyer@alpha.test",
            &[idpb::Role::Customer],
            Some(a.partner_id()),
        )
        .await;

    assert_eq!(
        get_partner(&app, &customer, &a.partner.id).await.unwrap(),
        a.partner
    );
    let status = expect_code(
        get_partner(&app, &customer, &b.partner.id).await,
        Code::NotFound,
    );
    assert!(!status.message().contains("Bravo"), "{}", status.message());

    // Listing, whatever the filter, shows A alone.
    assert_eq!(
        list_partner_ids(&app, &customer, "").await,
        std::slice::from_ref(&a.partner.id)
    );
    assert!(
        list_partner_ids(&app, &customer, "display_name = \"Bravo\"")
            .await
            .is_empty()
    );
    assert_eq!(
        list_partner_ids(&app, &customer, "role = PARTNER_ROLE_SUPPLIER").await,
        std::slice::from_ref(&a.partner.id)
    );

    // BatchGet is all or nothing (AIP-231): B is missing, so the batch is NOT_FOUND.
    assert_eq!(
        batch_get(&app, &customer, &[&a.partner.id]).await.unwrap(),
        std::slice::from_ref(&a.partner.id)
    );
    let status = expect_code(
        batch_get(&app, &customer, &[&a.partner.id, &b.partner.id]).await,
        Code::NotFound,
    );
    assert_eq!(
        status.get_details_resource_info().unwrap().resource_name,
        b.partner.id
    );

    // The blind index finds A's tax id, never B's.
    assert_eq!(
        lookup(&app, &customer, "DE111111111").await.unwrap().id,
        a.partner.id
    );
    expect_code(lookup(&app, &customer, "DE222222222").await, Code::NotFound);

    // Profiles: A's, not B's.
    let mut client = app.client().await;
    client
        .get_customer_profile(authed(
            &customer,
            pb::GetCustomerProfileRequest {
                partner_id: a.partner.id.clone(),
            },
        ))
        .await
        .unwrap();
    expect_code(
        client
            .get_customer_profile(authed(
                &customer,
                pb::GetCustomerProfileRequest {
                    partner_id: b.partner.id.clone(),
                },
            ))
            .await,
        Code::NotFound,
    );
    expect_code(
        client
            .get_supplier_profile(authed(
                &customer,
                pb::GetSupplierProfileRequest {
                    partner_id: b.partner.id.clone(),
                },
            ))
            .await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn a_customer_user_manages_the_contacts_and_addresses_of_its_own_partner_only() {
    let app = TestApp::spawn().await;
    let a = fixture(&app, &app.admin_token, "Alpha", "DE111111111").await;
    let b = fixture(&app, &app.admin_token, "Bravo", "DE222222222").await;
    let before = snapshot(&app.db().await).await;
    let customer = app
        .token(
            "buyer@alpha.test",
            &[idpb::Role::Customer],
            Some(a.partner_id()),
        )
        .await;

    // Its own partner: read, add, change, delete and restore.
    assert_eq!(
        list_contacts(&app, &customer, &a.partner.id).await.unwrap(),
        std::slice::from_ref(&a.contact)
    );
    assert_eq!(
        get_contact(&app, &customer, &a.contact.id).await.unwrap(),
        a.contact
    );
    let added = app
        .create_contact_as(
            &customer,
            contact_of(&a.partner.id, "Self Service", "self@alpha.example", ""),
        )
        .await
        .unwrap();
    assert_eq!(added.partner_id, a.partner.id);
    assert_eq!(
        update_contact_job_title(&app, &customer, &a.contact.id, "Accounts payable")
            .await
            .unwrap()
            .job_title,
        "Accounts payable"
    );
    let mut client = app.client().await;
    client
        .delete_contact(authed(
            &customer,
            pb::DeleteContactRequest {
                id: added.id.clone(),
                etag: added.etag.clone(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        list_addresses(&app, &customer, &a.partner.id)
            .await
            .unwrap(),
        std::slice::from_ref(&a.address)
    );
    app.create_address_as(&customer, address_of(&a.partner.id, "Alphadorf"))
        .await
        .unwrap();
    assert_eq!(
        update_address_city(&app, &customer, &a.address.id, "Neustadt")
            .await
            .unwrap()
            .city,
        "Neustadt"
    );

    // The other partner's contacts and addresses do not exist for it.
    expect_code(
        list_contacts(&app, &customer, &b.partner.id).await,
        Code::NotFound,
    );
    expect_code(
        get_contact(&app, &customer, &b.contact.id).await,
        Code::NotFound,
    );
    expect_code(
        update_contact_job_title(&app, &customer, &b.contact.id, "Hijacked").await,
        Code::NotFound,
    );
    expect_code(
        client
            .delete_contact(authed(
                &customer,
                pb::DeleteContactRequest {
                    id: b.contact.id.clone(),
                    etag: String::new(),
                },
            ))
            .await,
        Code::NotFound,
    );
    expect_code(
        app.create_contact_as(
            &customer,
            contact_of(&b.partner.id, "Planted", "planted@alpha.example", ""),
        )
        .await,
        Code::NotFound,
    );
    expect_code(
        list_addresses(&app, &customer, &b.partner.id).await,
        Code::NotFound,
    );
    expect_code(
        get_address(&app, &customer, &b.address.id).await,
        Code::NotFound,
    );
    expect_code(
        update_address_city(&app, &customer, &b.address.id, "Hijacked").await,
        Code::NotFound,
    );
    expect_code(
        client
            .delete_address(authed(
                &customer,
                pb::DeleteAddressRequest {
                    id: b.address.id.clone(),
                    etag: String::new(),
                },
            ))
            .await,
        Code::NotFound,
    );
    expect_code(
        app.create_address_as(&customer, address_of(&b.partner.id, "Planted"))
            .await,
        Code::NotFound,
    );

    // B's rows are exactly as they were.
    let db = app.db().await;
    let b_rows = |snap: &[String]| -> Vec<String> {
        snap.iter()
            .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|line| line.contains(&b.partner.id))
            .collect()
    };
    assert_eq!(b_rows(&snapshot(&db).await), b_rows(&before));
    assert_eq!(
        list_contacts(&app, &app.admin_token, &b.partner.id)
            .await
            .unwrap(),
        std::slice::from_ref(&b.contact)
    );
}

#[tokio::test]
async fn a_customer_user_may_rename_its_own_partner_and_change_nothing_else() {
    let app = TestApp::spawn().await;
    let a = fixture(&app, &app.admin_token, "Alpha", "DE111111111").await;
    let b = fixture(&app, &app.admin_token, "Bravo", "DE222222222").await;
    let customer = app
        .token(
            "buyer@alpha.test",
            &[idpb::Role::Customer],
            Some(a.partner_id()),
        )
        .await;

    let status = expect_code(
        app.create_partner_as(&customer, acme("Own Pick", ""), &[])
            .await,
        Code::PermissionDenied,
    );
    assert_eq!(denied_permission(&status), "partner.partners.write");

    let renamed = update_partner(
        &app,
        &customer,
        pb::Partner {
            id: a.partner.id.clone(),
            display_name: "Alpha (self-service)".into(),
            ..Default::default()
        },
        &["display_name"],
    )
    .await
    .unwrap();
    assert_eq!(renamed.display_name, "Alpha (self-service)");
    assert_eq!(renamed.legal_name, a.partner.legal_name);

    for paths in [
        &["legal_name"][..],
        &["display_name", "status"][..],
        &["tax_id"][..],
    ] {
        let status = expect_code(
            update_partner(
                &app,
                &customer,
                pb::Partner {
                    id: a.partner.id.clone(),
                    display_name: "Alpha".into(),
                    legal_name: "Alpha Holding GmbH".into(),
                    status: pb::PartnerStatus::Blocked as i32,
                    ..Default::default()
                },
                paths,
            )
            .await,
            Code::PermissionDenied,
        );
        assert_eq!(denied_permission(&status), "partner.partners.write");
    }
    expect_code(
        update_partner(
            &app,
            &customer,
            pb::Partner {
                id: b.partner.id.clone(),
                display_name: "Bravo (hijacked)".into(),
                ..Default::default()
            },
            &["display_name"],
        )
        .await,
        Code::NotFound,
    );

    // Everything else about partners is for internal users.
    let own = Fixture {
        partner: renamed,
        ..a.clone()
    };
    let denied: Vec<Outcome> = every_write(&app, &customer, &own)
        .await
        .into_iter()
        .filter(|(method, _)| !method.contains("Contact") && !method.contains("Address"))
        .collect();
    assert_eq!(denied.len(), 10);
    assert_all_denied("customer", &denied, write_permission);

    let b_now = get_partner(&app, &app.admin_token, &b.partner.id)
        .await
        .unwrap();
    assert_eq!(b_now, b.partner);
}

#[tokio::test]
async fn a_supplier_user_is_confined_to_its_own_partner_too() {
    let app = TestApp::spawn().await;
    let a = fixture(&app, &app.admin_token, "Alpha", "DE111111111").await;
    let b = fixture(&app, &app.admin_token, "Bravo", "DE222222222").await;
    let supplier = app
        .token(
            "seller@bravo.test",
            &[idpb::Role::Supplier],
            Some(b.partner_id()),
        )
        .await;

    assert_eq!(
        get_partner(&app, &supplier, &b.partner.id).await.unwrap(),
        b.partner
    );
    expect_code(
        get_partner(&app, &supplier, &a.partner.id).await,
        Code::NotFound,
    );
    assert_eq!(
        list_partner_ids(&app, &supplier, "").await,
        std::slice::from_ref(&b.partner.id)
    );
    expect_code(
        list_contacts(&app, &supplier, &a.partner.id).await,
        Code::NotFound,
    );
    expect_code(
        get_address(&app, &supplier, &a.address.id).await,
        Code::NotFound,
    );
    assert_eq!(
        list_contacts(&app, &supplier, &b.partner.id).await.unwrap(),
        std::slice::from_ref(&b.contact)
    );
    let status = expect_code(
        app.create_partner_as(&supplier, acme("Own Pick", ""), &[])
            .await,
        Code::PermissionDenied,
    );
    assert_eq!(denied_permission(&status), "partner.partners.write");
}

// Roles and permissions -------------------------------------------------------------------------

#[tokio::test]
async fn read_only_roles_read_everything_and_every_write_is_permission_denied() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, &app.admin_token, "Alpha", "DE111111111").await;
    let db = app.db().await;
    let before = snapshot(&db).await;
    for (email, role) in [
        ("auditor@tenant.test", idpb::Role::Auditor),
        ("clerk@tenant.test", idpb::Role::WarehouseClerk),
    ] {
        let token = app.token(email, &[role], None).await;
        assert_all_ok(email, &every_read(&app, &token, &f).await);
        assert_eq!(
            get_partner(&app, &token, &f.partner.id).await.unwrap(),
            f.partner
        );
        let writes = every_write(&app, &token, &f).await;
        assert_eq!(writes.len(), 18);
        assert_all_denied(email, &writes, write_permission);
    }
    assert_eq!(snapshot(&db).await, before, "a denied write changed rows");
}

#[tokio::test]
async fn dispatchers_and_admins_may_make_every_write() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, &app.admin_token, "Alpha", "DE111111111").await;
    let dispatcher = app
        .token("dispatcher@tenant.test", &[idpb::Role::Dispatcher], None)
        .await;
    for (who, token) in [("dispatcher", &dispatcher), ("admin", &app.admin_token)] {
        assert_all_ok(who, &every_write(&app, token, &f).await);
        assert_all_ok(who, &every_read(&app, token, &f).await);
    }

    let after = get_partner(&app, &dispatcher, &f.partner.id).await.unwrap();
    assert_eq!(after.legal_name, "Renamed GmbH");
    assert!(after.delete_time.is_none());
    let db = app.db().await;
    let (partners, contacts, addresses): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM partner.partners), (SELECT count(*) FROM partner.contacts), \
         (SELECT count(*) FROM partner.addresses)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((partners, contacts, addresses), (3, 3, 3));
}

#[tokio::test]
async fn roles_without_partner_permissions_are_denied_every_call() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, &app.admin_token, "Alpha", "DE111111111").await;
    let db = app.db().await;
    let before = snapshot(&db).await;
    let fleet_manager = app
        .token("fleet@tenant.test", &[idpb::Role::FleetManager], None)
        .await;
    let driver = app
        .identity
        .user(
            "driver@tenant.test",
            &[idpb::Role::Driver],
            None,
            Some(Uuid::now_v7()),
        )
        .await
        .unwrap();
    let operator = app
        .token("operator@tenant.test", &[idpb::Role::PlatformAdmin], None)
        .await;
    for (who, token) in [
        ("fleet_manager", &fleet_manager),
        ("driver", &driver),
        ("platform_admin", &operator),
    ] {
        assert_all_denied(
            who,
            &every_read(&app, token, &f).await,
            |_| "partner.partners.read",
        );
        assert_all_denied(who, &every_write(&app, token, &f).await, write_permission);
    }
    assert_eq!(snapshot(&db).await, before, "a denied call changed rows");
}

#[tokio::test]
async fn calls_without_valid_credentials_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, &app.admin_token, "Alpha", "DE111111111").await;
    let db = app.db().await;
    let before = snapshot(&db).await;
    // The admin's own token with one character of its signature changed.
    let mut forged = app.admin_token.clone().into_bytes();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for (who, token) in [
        ("no token", ""),
        ("garbage", "not-a-token"),
        ("forged", forged.as_str()),
    ] {
        let mut outcomes = every_read(&app, token, &f).await;
        outcomes.extend(every_write(&app, token, &f).await);
        for (method, outcome) in outcomes {
            let status = outcome.expect_err(method);
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{who}: {method}: {status:?}"
            );
            assert_eq!(status.message(), "missing or invalid credentials");
        }
    }
    assert_eq!(snapshot(&db).await, before);
}

// Tenants ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_second_tenant_cannot_reach_the_first_tenants_partners_contacts_or_addresses() {
    let app = TestApp::spawn().await;
    let a = fixture(&app, &app.admin_token, "Alpha", "DE111111111").await;
    let (_, b_admin) = app.identity.other_tenant("Tenant B").await.unwrap();
    let b = fixture(&app, &b_admin, "Bravo", "DE222222222").await;
    let db = app.db().await;
    let before = snapshot(&db).await;

    // Every read of A's rows is NOT_FOUND for B's admin...
    for (method, outcome) in every_read(&app, &b_admin, &a).await {
        if method == "ListPartners" {
            continue;
        }
        let status = outcome.expect_err(method);
        assert_eq!(status.code(), Code::NotFound, "{method}: {status:?}");
        assert!(!status.message().contains("Alpha"), "{method}: {status:?}");
    }
    assert_eq!(
        list_partner_ids(&app, &b_admin, "").await,
        std::slice::from_ref(&b.partner.id)
    );
    expect_code(
        batch_get(&app, &b_admin, &[&b.partner.id, &a.partner.id]).await,
        Code::NotFound,
    );
    // ...and so is every write, but creating a partner (which lands in B).
    for (method, outcome) in every_write(&app, &b_admin, &a).await {
        if method == "CreatePartner" {
            outcome.unwrap();
            continue;
        }
        let status = outcome.expect_err(method);
        assert_eq!(status.code(), Code::NotFound, "{method}: {status:?}");
    }
    // A's rows are exactly as they were.
    let a_rows = |snap: &[String]| -> Vec<String> {
        snap.iter()
            .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|line| line.contains(&app.identity.tenant_id.to_string()))
            .collect()
    };
    assert_eq!(a_rows(&snapshot(&db).await), a_rows(&before));

    // A does not see B either.
    assert_eq!(
        list_partner_ids(&app, &app.admin_token, "").await,
        std::slice::from_ref(&a.partner.id)
    );
    expect_code(
        get_partner(&app, &app.admin_token, &b.partner.id).await,
        Code::NotFound,
    );
    expect_code(
        get_contact(&app, &app.admin_token, &b.contact.id).await,
        Code::NotFound,
    );
    expect_code(
        lookup(&app, &app.admin_token, "DE222222222").await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn tax_ids_and_request_ids_are_unique_per_tenant_only() {
    let app = TestApp::spawn().await;
    let (_, b_admin) = app.identity.other_tenant("Tenant B").await.unwrap();
    let request_id = request_id();
    let create = |token: &str| {
        let token = token.to_owned();
        let request_id = request_id.clone();
        let app = &app;
        async move {
            app.client()
                .await
                .create_partner(authed(
                    &token,
                    pb::CreatePartnerRequest {
                        request_id,
                        partner: Some(acme("Same", "DE333333333")),
                        roles: vec![],
                    },
                ))
                .await
                .map(|r| r.into_inner().partner.unwrap())
        }
    };
    let in_a = create(&app.admin_token).await.unwrap();
    // The same request id and tax id in B: a new partner of B, not a replay of A's.
    let in_b = create(&b_admin).await.unwrap();
    assert_ne!(in_b.id, in_a.id);
    assert_eq!(in_b.tax_id, "DE333333333");
    assert_eq!(
        lookup(&app, &b_admin, "DE333333333").await.unwrap().id,
        in_b.id
    );
    assert_eq!(
        lookup(&app, &app.admin_token, "DE333333333")
            .await
            .unwrap()
            .id,
        in_a.id
    );
    // Within A, the tax id is taken.
    let status = expect_code(
        app.create_partner_as(&app.admin_token, acme("Other", "DE333333333"), &[])
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&status), ["partner.tax_id"]);
}

/// `SELECT count(*)` of `table` in schema partner, on `executor`.
async fn count<'e>(executor: impl sqlx::PgExecutor<'e>, table: &str, filter: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM partner.{table} {filter}"
    )))
    .fetch_one(executor)
    .await
    .unwrap()
}

/// The column naming the partner a row of `table` belongs to, if rows belong to one.
fn partner_column(table: &str) -> Option<&'static str> {
    match table {
        "partners" | "partner_records" => Some("id"),
        "idempotency_keys" => None,
        _ => Some("partner_id"),
    }
}

#[tokio::test]
async fn the_runtime_role_sees_no_partner_rows_without_a_tenant_and_only_that_tenants_with_one() {
    let app = TestApp::spawn().await;
    let a1 = fixture(&app, &app.admin_token, "Alpha", "DE111111111").await;
    fixture(&app, &app.admin_token, "Anton", "DE111111112").await;
    let (b_id, b_admin) = app.identity.other_tenant("Tenant B").await.unwrap();
    fixture(&app, &b_admin, "Bravo", "DE222222222").await;

    let admin = app.db().await;
    for table in PARTNER_TABLES {
        let all = count(&admin, table, "").await;
        let in_b = count(&admin, table, &format!("WHERE tenant_id = '{b_id}'")).await;
        assert!(in_b > 0, "no rows of tenant B in {table}");
        assert!(all > in_b, "no rows of tenant A in {table}");
    }

    let pool = app.identity.db.pool_as(SCHEMA.app_role).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();

    // No context: nothing visible, nothing writable.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    for table in PARTNER_TABLES {
        assert_eq!(
            count(&mut *tx, table, "").await,
            0,
            "{} sees rows of {table} without a tenant",
            SCHEMA.app_role
        );
    }
    tx.rollback().await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO partner.partners (tenant_id, id, kind, legal_name, display_name, country_code, \
             default_currency_code) VALUES ($1, $2, 'organization', 'Intruder GmbH', 'Intruder', 'DE', 'EUR')",
    )
    .bind(app.identity.tenant_id)
    .bind(Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .expect_err("insert without a tenant context");
    let db_err = err.as_database_error().expect("a database error");
    assert_eq!(db_err.code().as_deref(), Some("42501"), "{db_err}");
    tx.rollback().await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    for (table, set) in [
        ("partners", "display_name = 'Renamed'"),
        ("contacts", "name = 'Renamed'"),
        ("addresses", "city = 'Renamed'"),
    ] {
        let touched = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE partner.{table} SET {set}"
        )))
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(touched, 0, "{table} updated without a tenant");
    }
    tx.rollback().await.unwrap();

    // Tenant B's context: exactly tenant B's rows.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(b_id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    for table in PARTNER_TABLES {
        assert_eq!(
            count(&mut *tx, table, "").await,
            count(&admin, table, &format!("WHERE tenant_id = '{b_id}'")).await,
            "{table} in tenant B's context"
        );
    }
    let names: Vec<String> =
        sqlx::query_scalar("SELECT display_name FROM partner.partners ORDER BY display_name")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(names, ["Bravo"]);
    // Even in B's context, a row of A cannot be written.
    let err = sqlx::query(
        "INSERT INTO partner.partners (tenant_id, id, kind, legal_name, display_name, country_code, \
             default_currency_code) VALUES ($1, $2, 'organization', 'Intruder GmbH', 'Intruder', 'DE', 'EUR')",
    )
    .bind(app.identity.tenant_id)
    .bind(Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .expect_err("insert into another tenant");
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    tx.rollback().await.unwrap();

    // Tenant A with a partner (a customer's or supplier's context): that partner's rows only.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    sqlx::query(
        "SELECT set_config('app.tenant_id', $1, true), set_config('app.partner_id', $2, true)",
    )
    .bind(app.identity.tenant_id.to_string())
    .bind(a1.partner.id.clone())
    .execute(&mut *tx)
    .await
    .unwrap();
    for table in PARTNER_TABLES {
        let Some(column) = partner_column(table) else {
            continue;
        };
        let expected = count(
            &admin,
            table,
            &format!(
                "WHERE tenant_id = '{}' AND {column} = '{}'",
                app.identity.tenant_id, a1.partner.id
            ),
        )
        .await;
        assert!(expected > 0, "no rows of the partner in {table}");
        assert_eq!(
            count(&mut *tx, table, "").await,
            expected,
            "{table} in a partner's context"
        );
    }
    tx.rollback().await.unwrap();

    // The settings were transaction-local: the same connection sees nothing again.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    assert_eq!(count(&mut *tx, "partners", "").await, 0);
    tx.rollback().await.unwrap();
    drop(conn);

    // The role itself: no RLS bypass, no superuser, owns no table or view of the schema.
    let (bypass, superuser): (bool, bool) =
        sqlx::query_as("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = $1")
            .bind(SCHEMA.app_role)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(!bypass, "the runtime role bypasses row-level security");
    assert!(!superuser, "the runtime role is a superuser");
    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'partner' AND tableowner = $1 \
         UNION ALL \
         SELECT viewname::text FROM pg_views WHERE schemaname = 'partner' AND viewowner = $1",
    )
    .bind(SCHEMA.app_role)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(owned.is_empty(), "the runtime role owns {owned:?}");
    let unforced: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'partner' AND c.relkind = 'r' AND c.relname <> '_sqlx_migrations' \
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(
        unforced.is_empty(),
        "tables without forced RLS: {unforced:?}"
    );
    pool.close().await;
}

// Personal data ---------------------------------------------------------------------------------

/// Distinctive personal data: as sent, normalised, and fragments either would contain.
const TAX_ID: &str = "DE 404.777-919 3";
const TAX_ID_NORMALISED: &str = "DE4047779193";
const EMAIL: &str = "zyx.leakcheck.4711@private-mail.example";
const PHONE: &str = "+49 (151) 2345-6789";
const PHONE_NORMALISED: &str = "+4915123456789";
const PERSONAL: &[&str] = &[
    TAX_ID,
    TAX_ID_NORMALISED,
    "4047779193",
    "404.777-919",
    EMAIL,
    "leakcheck",
    PHONE,
    PHONE_NORMALISED,
    "15123456789",
    "2345-6789",
];

/// Everything a client learns from a failed call, as text.
fn status_text(status: &Status) -> String {
    format!(
        "{} | {} | {:?}",
        status.message(),
        String::from_utf8_lossy(status.details()),
        status.metadata()
    )
}

#[track_caller]
fn assert_no_personal_data(what: &str, text: &str) {
    for value in PERSONAL {
        assert!(!text.contains(value), "{what} contains {value:?}: {text}");
    }
}

#[tokio::test]
async fn personal_data_never_appears_in_logs_or_error_answers() {
    let logs = logistics_testkit::captured_logs();
    let app = TestApp::spawn().await;
    let partner = app.create_partner(acme("Private", TAX_ID), &[]).await;
    assert_eq!(partner.tax_id, TAX_ID_NORMALISED);
    let contact = app
        .create_contact_as(
            &app.admin_token,
            contact_of(&partner.id, "Private Person", EMAIL, PHONE),
        )
        .await
        .unwrap();
    assert_eq!(contact.email, EMAIL);
    assert_eq!(contact.phone, PHONE_NORMALISED);
    let other = app.create_partner(acme("Other", ""), &[]).await;
    let mut client = app.client().await;
    let mut failures: Vec<(&str, Status)> = Vec::new();

    // The tax id taken, however it is written, on create and on update.
    let status = expect_code(
        app.create_partner_as(&app.admin_token, acme("Copy", "de-4047779193"), &[])
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&status), ["partner.tax_id"]);
    failures.push(("duplicate tax id on create", status));
    let status = expect_code(
        update_partner(
            &app,
            &app.admin_token,
            pb::Partner {
                id: other.id.clone(),
                tax_id: TAX_ID.into(),
                ..Default::default()
            },
            &["tax_id"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&status), ["partner.tax_id"]);
    failures.push(("duplicate tax id on update", status));

    // Malformed values that contain the personal data.
    let status = expect_code(
        app.create_partner_as(&app.admin_token, acme("Bad", "DE#4047779193"), &[])
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["partner.tax_id"]);
    failures.push(("malformed tax id", status));
    let status = expect_code(
        app.create_contact_as(
            &app.admin_token,
            contact_of(
                &partner.id,
                "Private Person",
                "zyx.leakcheck.4711@private-mail",
                "15123456789",
            ),
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["contact.email", "contact.phone"]);
    failures.push(("malformed contact", status));
    let status = expect_code(
        app.client()
            .await
            .update_contact(authed(
                &app.admin_token,
                pb::UpdateContactRequest {
                    contact: Some(pb::Contact {
                        id: contact.id.clone(),
                        email: "leakcheck.4711 at private-mail.example".into(),
                        phone: "+0 2345-6789".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["email", "phone"]),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["contact.email", "contact.phone"]);
    failures.push(("malformed contact update", status));
    let status = expect_code(
        lookup(&app, &app.admin_token, "#4047779193").await,
        Code::InvalidArgument,
    );
    failures.push(("malformed lookup", status));

    // Lookups that find nothing.
    let status = expect_code(
        client
            .lookup_partner_by_tax_id(authed(
                &app.admin_token,
                pb::LookupPartnerByTaxIdRequest {
                    country_code: "AT".into(),
                    tax_id: TAX_ID.into(),
                },
            ))
            .await,
        Code::NotFound,
    );
    failures.push(("lookup in another country", status));

    // A contact for a partner that does not exist, and a request id used for something else.
    let status = expect_code(
        app.create_contact_as(
            &app.admin_token,
            contact_of(&Uuid::now_v7().to_string(), "Private Person", EMAIL, PHONE),
        )
        .await,
        Code::NotFound,
    );
    failures.push(("contact of a missing partner", status));
    let request_id = request_id();
    for name in ["First", "Second"] {
        let outcome = client
            .create_contact(authed(
                &app.admin_token,
                pb::CreateContactRequest {
                    request_id: request_id.clone(),
                    contact: Some(contact_of(&partner.id, name, EMAIL, PHONE)),
                },
            ))
            .await;
        if name == "Second" {
            let status = expect_code(outcome, Code::InvalidArgument);
            assert_eq!(violated_fields(&status), ["request_id"]);
            failures.push(("reused request id", status));
        } else {
            outcome.unwrap();
        }
    }
    // Someone without the permission, sending personal data.
    let auditor = app
        .token("auditor@tenant.test", &[idpb::Role::Auditor], None)
        .await;
    let status = expect_code(
        app.create_contact_as(
            &auditor,
            contact_of(&partner.id, "Private Person", EMAIL, PHONE),
        )
        .await,
        Code::PermissionDenied,
    );
    failures.push(("denied contact", status));

    for (what, status) in &failures {
        assert_no_personal_data(what, &status_text(status));
    }

    let captured = logs.contents();
    assert!(captured.contains("rpc finished"), "logs were not captured");
    assert!(captured.contains("partner created"));
    assert_no_personal_data("the logs", &captured);
}

fn hex(value: &str) -> String {
    value.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn personal_data_is_stored_in_plain_text_nowhere_in_the_schema() {
    let app = TestApp::spawn().await;
    let partner = app.create_partner(acme("Private", TAX_ID), &[]).await;
    app.create_contact_as(
        &app.admin_token,
        contact_of(&partner.id, "Private Person", EMAIL, PHONE),
    )
    .await
    .unwrap();

    let db = app.db().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'partner' ORDER BY 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(tables.len() >= 7, "{tables:?}");
    for table in tables {
        let text: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT string_agg(t::text, E'\\n') FROM partner.{table} t"
        )))
        .fetch_one(&db)
        .await
        .unwrap();
        let text = text.unwrap_or_default();
        for value in [TAX_ID_NORMALISED, EMAIL, PHONE_NORMALISED] {
            assert!(
                !text.contains(value) && !text.contains(&hex(value)),
                "partner.{table} holds {value:?} in plain text"
            );
        }
    }
}

#[tokio::test]
async fn a_customer_cannot_read_another_partners_contact_by_replaying_its_request_id() {
    let app = TestApp::spawn().await;
    let a = fixture(&app, &app.admin_token, "Alpha", "DE111111111").await;
    let b = fixture(&app, &app.admin_token, "Bravo", "DE222222222").await;
    let request_id = request_id();
    let b_contact = |email: &str, phone: &str| pb::CreateContactRequest {
        request_id: request_id.clone(),
        contact: Some(contact_of(&b.partner.id, "Bravo Secret", email, phone)),
    };
    let created = app
        .client()
        .await
        .create_contact(authed(&app.admin_token, b_contact(EMAIL, PHONE)))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(created.email, EMAIL);

    let customer = app
        .token(
            "buyer@alpha.test",
            &[idpb::Role::Customer],
            Some(a.partner_id()),
        )
        .await;
    // The customer knows the request id (a shared log, a proxy) but not the personal data.
    let replayed = app
        .client()
        .await
        .create_contact(authed(&customer, b_contact("", "+4930123456")))
        .await
        .map(|r| r.into_inner().contact.unwrap());
    match replayed {
        Ok(contact) => panic!(
            "a customer of A received B's contact {} with e-mail {:?}",
            contact.id, contact.email
        ),
        Err(status) => {
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
            assert_no_personal_data("the answer", &status_text(&status));
        }
    }
}
