//! A partner's life after creation: field-mask updates under etags, soft delete and undelete,
//! tax ids unique per country among live partners, idempotent creation, listing with filters,
//! orders and keyset pages, batch reads, and roles guarded by their profiles.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestApp, acme, authed, expect_code, violated_fields};
use futures::StreamExt as _;
use logistics_proto::partner::v1 as pb;
use prost_types::FieldMask;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

// Helpers ----------------------------------------------------------------------------------------

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

async fn get(app: &TestApp, id: &str) -> Result<pb::Partner, Status> {
    app.client()
        .await
        .get_partner(authed(
            &app.admin_token,
            pb::GetPartnerRequest { id: id.to_owned() },
        ))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

async fn update(
    app: &TestApp,
    partner: pb::Partner,
    paths: &[&str],
) -> Result<pb::Partner, Status> {
    app.client()
        .await
        .update_partner(authed(
            &app.admin_token,
            pb::UpdatePartnerRequest {
                partner: Some(partner),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

async fn delete(app: &TestApp, id: &str, etag: &str) -> Result<pb::Partner, Status> {
    app.client()
        .await
        .delete_partner(authed(
            &app.admin_token,
            pb::DeletePartnerRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

async fn undelete(app: &TestApp, id: &str, etag: &str) -> Result<pb::Partner, Status> {
    app.client()
        .await
        .undelete_partner(authed(
            &app.admin_token,
            pb::UndeletePartnerRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

async fn create_with_request_id(
    app: &TestApp,
    request_id: &str,
    partner: pb::Partner,
    roles: &[pb::PartnerRole],
) -> Result<pb::Partner, Status> {
    app.client()
        .await
        .create_partner(authed(
            &app.admin_token,
            pb::CreatePartnerRequest {
                request_id: request_id.to_owned(),
                partner: Some(partner),
                roles: roles.iter().map(|r| *r as i32).collect(),
            },
        ))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

async fn lookup(app: &TestApp, country_code: &str, tax_id: &str) -> Result<pb::Partner, Status> {
    app.client()
        .await
        .lookup_partner_by_tax_id(authed(
            &app.admin_token,
            pb::LookupPartnerByTaxIdRequest {
                country_code: country_code.to_owned(),
                tax_id: tax_id.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

async fn list(
    app: &TestApp,
    request: pb::ListPartnersRequest,
) -> Result<pb::ListPartnersResponse, Status> {
    app.client()
        .await
        .list_partners(authed(&app.admin_token, request))
        .await
        .map(|r| r.into_inner())
}

/// Display names of one unpaged listing with `filter`.
async fn listed_names(app: &TestApp, filter: &str, show_deleted: bool) -> Vec<String> {
    let page = list(
        app,
        pb::ListPartnersRequest {
            filter: filter.to_owned(),
            show_deleted,
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("filter {filter:?}: {e:?}"));
    assert!(page.next_page_token.is_empty());
    names(&page.partners)
}

/// Every page of a listing, pausing between pages.
async fn all_pages(
    app: &TestApp,
    mut request: pb::ListPartnersRequest,
    pause: Duration,
) -> Vec<pb::Partner> {
    let mut partners = Vec::new();
    for _ in 0..200 {
        let page = list(app, request.clone()).await.unwrap();
        assert!(
            page.partners.len() <= request.page_size as usize,
            "a page of {} partners with page_size {}",
            page.partners.len(),
            request.page_size
        );
        partners.extend(page.partners);
        if page.next_page_token.is_empty() {
            return partners;
        }
        request.page_token = page.next_page_token;
        tokio::time::sleep(pause).await;
    }
    panic!("listing never reached its last page");
}

async fn batch_get(app: &TestApp, ids: Vec<String>) -> Result<Vec<pb::Partner>, Status> {
    app.client()
        .await
        .batch_get_partners(authed(
            &app.admin_token,
            pb::BatchGetPartnersRequest { ids },
        ))
        .await
        .map(|r| r.into_inner().partners)
}

async fn add_role(app: &TestApp, partner_id: &str, role: i32) -> Result<pb::Partner, Status> {
    app.client()
        .await
        .add_partner_role(authed(
            &app.admin_token,
            pb::AddPartnerRoleRequest {
                partner_id: partner_id.to_owned(),
                role,
            },
        ))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

async fn remove_role(app: &TestApp, partner_id: &str, role: i32) -> Result<pb::Partner, Status> {
    app.client()
        .await
        .remove_partner_role(authed(
            &app.admin_token,
            pb::RemovePartnerRoleRequest {
                partner_id: partner_id.to_owned(),
                role,
            },
        ))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

/// Gives `partner_id` a supplier profile with default terms.
async fn open_supplier_profile(app: &TestApp, partner_id: &str) -> pb::SupplierProfile {
    app.client()
        .await
        .update_supplier_profile(authed(
            &app.admin_token,
            pb::UpdateSupplierProfileRequest {
                profile: Some(pb::SupplierProfile {
                    partner_id: partner_id.to_owned(),
                    payment_terms_days: 30,
                    ..Default::default()
                }),
                update_mask: mask(&["payment_terms_days"]),
                allow_missing: true,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .profile
        .unwrap()
}

/// A partner without a tax id, in `country`.
fn named(display_name: &str, country: &str) -> pb::Partner {
    pb::Partner {
        country_code: country.to_owned(),
        ..acme(display_name, "")
    }
}

fn names(partners: &[pb::Partner]) -> Vec<String> {
    partners.iter().map(|p| p.display_name.clone()).collect()
}

fn ids(partners: &[pb::Partner]) -> Vec<String> {
    partners.iter().map(|p| p.id.clone()).collect()
}

fn roles(roles: &[pb::PartnerRole]) -> Vec<i32> {
    roles.iter().map(|r| *r as i32).collect()
}

/// The (name key, id) keyset a display-name listing is sorted by.
fn name_keys(partners: &[pb::Partner]) -> Vec<(String, Uuid)> {
    partners
        .iter()
        .map(|p| {
            (
                p.display_name.to_lowercase(),
                Uuid::parse_str(&p.id).unwrap(),
            )
        })
        .collect()
}

fn instant(at: Option<prost_types::Timestamp>) -> (i64, i32) {
    let at = at.unwrap();
    (at.seconds, at.nanos)
}

fn precondition_failures(status: &Status) -> Vec<(String, String)> {
    status
        .get_details_precondition_failure()
        .map(|f| {
            f.violations
                .into_iter()
                .map(|v| (v.r#type, v.subject))
                .collect()
        })
        .unwrap_or_default()
}

fn error_reason(status: &Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default()
}

/// `(display_name, status, version, deleted)` of a row, read past the service.
async fn stored(app: &TestApp, id: &str) -> (String, String, i32, bool) {
    sqlx::query_as(
        "SELECT display_name, status, version, deleted_at IS NOT NULL FROM partner.partners \
         WHERE id = $1",
    )
    .bind(Uuid::parse_str(id).unwrap())
    .fetch_one(&app.db().await)
    .await
    .unwrap()
}

async fn partner_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM partner.partners")
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// Inserts `n` live partners named `Bulk 0001`.. straight into the table, past the service.
async fn insert_bulk(app: &TestApp, n: i32) -> Vec<String> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO partner.partners (tenant_id, id, kind, legal_name, display_name, \
             country_code, default_currency_code) \
         SELECT $1, gen_random_uuid(), 'organization', 'Bulk ' || g, \
             'Bulk ' || lpad(g::text, 4, '0'), 'DE', 'EUR' \
         FROM generate_series(1, $2) g RETURNING id",
    )
    .bind(app.identity.tenant_id)
    .bind(n)
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    ids.iter().map(Uuid::to_string).collect()
}

/// Asserts a message names no SQL, constraint or table.
#[track_caller]
fn assert_no_sql(status: &Status) {
    let text = format!(
        "{} {}",
        status.message(),
        String::from_utf8_lossy(status.details())
    );
    for leak in [
        "partners_tax_id_key",
        "tax_id_index",
        "duplicate key",
        "constraint",
        "23505",
        "partner.partners",
        "violates",
    ] {
        assert!(!text.contains(leak), "{leak:?} leaked: {text}");
    }
}

// UpdatePartner ----------------------------------------------------------------------------------

#[tokio::test]
async fn an_update_changes_only_the_masked_fields_and_bumps_the_etag() {
    let app = TestApp::spawn().await;
    let created = app
        .create_partner(acme("Acme", "DE123456789"), &[pb::PartnerRole::Supplier])
        .await;
    let version = stored(&app, &created.id).await.2;

    // Every field carries a new value, but only two are masked.
    let updated = update(
        &app,
        pb::Partner {
            id: created.id.clone(),
            etag: created.etag.clone(),
            kind: pb::PartnerKind::Person as i32,
            legal_name: "Changed Legal Name".into(),
            display_name: "Acme Logistics".into(),
            tax_id: "AT999".into(),
            country_code: "AT".into(),
            default_currency_code: "CHF".into(),
            status: pb::PartnerStatus::Blocked as i32,
            roles: roles(&[pb::PartnerRole::Carrier]),
            ..Default::default()
        },
        &["display_name", "status"],
    )
    .await
    .unwrap();

    assert_eq!(updated.display_name, "Acme Logistics");
    assert_eq!(updated.status, pb::PartnerStatus::Blocked as i32);
    assert_ne!(updated.etag, created.etag);
    assert!(instant(updated.update_time) > instant(created.update_time));
    let untouched = pb::Partner {
        display_name: created.display_name.clone(),
        status: created.status,
        etag: created.etag.clone(),
        update_time: created.update_time,
        ..updated.clone()
    };
    assert_eq!(untouched, created, "an unmasked field changed");
    assert_eq!(get(&app, &created.id).await.unwrap(), updated);
    assert_eq!(
        stored(&app, &created.id).await,
        (
            "Acme Logistics".to_owned(),
            "blocked".to_owned(),
            version + 1,
            false
        )
    );

    // The new etag is the one to send next; an update without etag is unconditional.
    let again = update(
        &app,
        pb::Partner {
            id: created.id.clone(),
            etag: updated.etag.clone(),
            legal_name: "  Acme Logistics GmbH  ".into(),
            ..Default::default()
        },
        &["legal_name"],
    )
    .await
    .unwrap();
    assert_eq!(again.legal_name, "Acme Logistics GmbH");
    let unconditional = update(
        &app,
        pb::Partner {
            id: created.id.clone(),
            default_currency_code: "chf".into(),
            ..Default::default()
        },
        &["default_currency_code"],
    )
    .await
    .unwrap();
    assert_eq!(unconditional.default_currency_code, "CHF");
    assert_eq!(unconditional.legal_name, "Acme Logistics GmbH");
    assert_eq!(stored(&app, &created.id).await.2, version + 3);
}

#[tokio::test]
async fn an_update_with_a_stale_etag_is_aborted_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let created = app.create_partner(acme("Acme", ""), &[]).await;
    let first = update(
        &app,
        pb::Partner {
            id: created.id.clone(),
            etag: created.etag.clone(),
            display_name: "First Writer".into(),
            ..Default::default()
        },
        &["display_name"],
    )
    .await
    .unwrap();

    let status = expect_code(
        update(
            &app,
            pb::Partner {
                id: created.id.clone(),
                etag: created.etag.clone(),
                display_name: "Second Writer".into(),
                status: pb::PartnerStatus::Inactive as i32,
                ..Default::default()
            },
            &["display_name", "status"],
        )
        .await,
        Code::Aborted,
    );
    assert_eq!(error_reason(&status), "STALE_ETAG");
    assert_eq!(
        stored(&app, &created.id).await,
        ("First Writer".to_owned(), "active".to_owned(), 2, false)
    );
    assert_eq!(get(&app, &created.id).await.unwrap(), first);

    // An etag the service never issued is a bad argument, not a conflict.
    let status = expect_code(
        update(
            &app,
            pb::Partner {
                id: created.id.clone(),
                etag: "2".into(),
                display_name: "Third Writer".into(),
                ..Default::default()
            },
            &["display_name"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["partner.etag"]);
    assert_eq!(stored(&app, &created.id).await.2, 2);
}

#[tokio::test]
async fn an_update_mask_naming_unknown_or_output_only_fields_is_invalid() {
    let app = TestApp::spawn().await;
    let created = app.create_partner(acme("Acme", ""), &[]).await;
    let change = pb::Partner {
        id: created.id.clone(),
        etag: created.etag.clone(),
        display_name: "Renamed".into(),
        ..Default::default()
    };

    let status = expect_code(
        update(
            &app,
            change.clone(),
            &["display_name", "nickname", "roles", "etag"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "update_mask.paths[1]",
            "update_mask.paths[2]",
            "update_mask.paths[3]"
        ]
    );
    // An empty mask would wipe fields under AIP's "everything" reading: refused.
    let status = expect_code(update(&app, change, &[]).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["update_mask"]);

    // Bad values in masked fields are listed all at once; unmasked garbage is ignored.
    let status = expect_code(
        update(
            &app,
            pb::Partner {
                id: "not-a-uuid".into(),
                etag: "garbage".into(),
                kind: 0,
                legal_name: " ".into(),
                display_name: "x".repeat(201),
                tax_id: "#".into(),
                country_code: "XX".into(),
                default_currency_code: "EURO".into(),
                status: 0,
                ..Default::default()
            },
            &[
                "kind",
                "legal_name",
                "display_name",
                "tax_id",
                "country_code",
                "default_currency_code",
                "status",
            ],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "partner.id",
            "partner.etag",
            "partner.kind",
            "partner.legal_name",
            "partner.display_name",
            "partner.tax_id",
            "partner.country_code",
            "partner.default_currency_code",
            "partner.status"
        ]
    );
    assert_eq!(
        stored(&app, &created.id).await,
        ("Acme".to_owned(), "active".to_owned(), 1, false)
    );
}

#[tokio::test]
async fn changing_the_country_moves_the_tax_id_lookup_with_it() {
    let app = TestApp::spawn().await;
    let moving = app.create_partner(acme("Mover", "DE123456789"), &[]).await;
    let moved = update(
        &app,
        pb::Partner {
            id: moving.id.clone(),
            etag: moving.etag.clone(),
            country_code: "at".into(),
            ..Default::default()
        },
        &["country_code"],
    )
    .await
    .unwrap();
    assert_eq!(moved.country_code, "AT");
    assert_eq!(moved.tax_id, "DE123456789");
    expect_code(lookup(&app, "DE", "DE123456789").await, Code::NotFound);
    assert_eq!(
        lookup(&app, "AT", "DE123456789").await.unwrap().id,
        moving.id
    );

    // The tax id is free in Germany again; moving back into it once taken is refused.
    let stayer = app.create_partner(acme("Stayer", "DE123456789"), &[]).await;
    let status = expect_code(
        update(
            &app,
            pb::Partner {
                id: moving.id.clone(),
                etag: moved.etag.clone(),
                country_code: "DE".into(),
                ..Default::default()
            },
            &["country_code"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&status), ["partner.tax_id"]);
    assert_no_sql(&status);
    assert_eq!(get(&app, &moving.id).await.unwrap(), moved);
    assert_eq!(
        lookup(&app, "DE", "DE123456789").await.unwrap().id,
        stayer.id
    );
}

#[tokio::test]
async fn taking_a_live_partners_tax_id_by_update_is_already_exists_and_clearing_one_frees_it() {
    let app = TestApp::spawn().await;
    let holder = app.create_partner(acme("Holder", "DE111111111"), &[]).await;
    let other = app.create_partner(acme("Other", "DE222222222"), &[]).await;

    let status = expect_code(
        update(
            &app,
            pb::Partner {
                id: other.id.clone(),
                etag: other.etag.clone(),
                tax_id: "de 111.111.111".into(),
                ..Default::default()
            },
            &["tax_id"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&status), ["partner.tax_id"]);
    assert_no_sql(&status);
    assert!(!status.message().contains("111"), "{}", status.message());
    assert_eq!(get(&app, &other.id).await.unwrap(), other);

    // An empty tax id in the mask removes it, and the number is free for anyone.
    let cleared = update(
        &app,
        pb::Partner {
            id: holder.id.clone(),
            etag: holder.etag.clone(),
            ..Default::default()
        },
        &["tax_id"],
    )
    .await
    .unwrap();
    assert_eq!(cleared.tax_id, "");
    let taken = update(
        &app,
        pb::Partner {
            id: other.id.clone(),
            etag: other.etag.clone(),
            tax_id: "DE-111-111-111".into(),
            ..Default::default()
        },
        &["tax_id"],
    )
    .await
    .unwrap();
    assert_eq!(taken.tax_id, "DE111111111");
    assert_eq!(
        lookup(&app, "DE", "DE111111111").await.unwrap().id,
        other.id
    );
}

// Soft delete ------------------------------------------------------------------------------------

#[tokio::test]
async fn delete_hides_the_partner_from_lists_and_batch_gets_until_undelete_restores_it() {
    let app = TestApp::spawn().await;
    let keeper = app.create_partner(acme("Keeper", ""), &[]).await;
    let leaver = app
        .create_partner(acme("Leaver", "DE123456789"), &[pb::PartnerRole::Customer])
        .await;
    let version = stored(&app, &leaver.id).await.2;

    let deleted = delete(&app, &leaver.id, &leaver.etag).await.unwrap();
    assert!(deleted.delete_time.is_some());
    assert_ne!(deleted.etag, leaver.etag);
    assert_eq!(
        stored(&app, &leaver.id).await,
        ("Leaver".to_owned(), "active".to_owned(), version + 1, true)
    );

    // Get still answers, with delete_time, as the contract says.
    assert_eq!(get(&app, &leaver.id).await.unwrap(), deleted);
    assert_eq!(listed_names(&app, "", false).await, ["Keeper"]);
    assert_eq!(listed_names(&app, "", true).await, ["Keeper", "Leaver"]);
    expect_code(
        batch_get(&app, vec![keeper.id.clone(), leaver.id.clone()]).await,
        Code::NotFound,
    );
    expect_code(lookup(&app, "DE", "DE123456789").await, Code::NotFound);
    // A deleted partner cannot be changed.
    expect_code(
        update(
            &app,
            pb::Partner {
                id: leaver.id.clone(),
                display_name: "Ghost".into(),
                ..Default::default()
            },
            &["display_name"],
        )
        .await,
        Code::NotFound,
    );
    expect_code(
        add_role(&app, &leaver.id, pb::PartnerRole::Carrier as i32).await,
        Code::NotFound,
    );

    let restored = undelete(&app, &leaver.id, &deleted.etag).await.unwrap();
    assert!(restored.delete_time.is_none());
    assert_ne!(restored.etag, deleted.etag);
    assert_eq!(restored.roles, leaver.roles);
    assert_eq!(restored.tax_id, "DE123456789");
    assert_eq!(listed_names(&app, "", false).await, ["Keeper", "Leaver"]);
    assert_eq!(
        ids(&batch_get(&app, vec![leaver.id.clone()]).await.unwrap()),
        std::slice::from_ref(&leaver.id)
    );
    assert_eq!(lookup(&app, "DE", "DE123456789").await.unwrap(), restored);
}

#[tokio::test]
async fn delete_and_undelete_with_a_stale_etag_are_aborted_and_change_nothing() {
    let app = TestApp::spawn().await;
    let created = app.create_partner(acme("Acme", ""), &[]).await;
    let renamed = update(
        &app,
        pb::Partner {
            id: created.id.clone(),
            display_name: "Renamed".into(),
            ..Default::default()
        },
        &["display_name"],
    )
    .await
    .unwrap();

    expect_code(
        delete(&app, &created.id, &created.etag).await,
        Code::Aborted,
    );
    assert_eq!(
        stored(&app, &created.id).await,
        ("Renamed".to_owned(), "active".to_owned(), 2, false)
    );

    let deleted = delete(&app, &created.id, &renamed.etag).await.unwrap();
    expect_code(
        undelete(&app, &created.id, &renamed.etag).await,
        Code::Aborted,
    );
    assert_eq!(
        stored(&app, &created.id).await,
        ("Renamed".to_owned(), "active".to_owned(), 3, true)
    );
    // Without an etag, undelete restores whatever the current version is.
    let restored = undelete(&app, &created.id, "").await.unwrap();
    assert!(restored.delete_time.is_none());
    assert_ne!(restored.etag, deleted.etag);
}

#[tokio::test]
async fn undeleting_a_live_partner_is_a_failed_precondition() {
    let app = TestApp::spawn().await;
    let created = app.create_partner(acme("Acme", ""), &[]).await;
    let status = expect_code(
        undelete(&app, &created.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        precondition_failures(&status),
        [("NOT_DELETED".to_owned(), "partner".to_owned())]
    );
    assert_eq!(stored(&app, &created.id).await.2, 1);
}

#[tokio::test]
async fn unknown_or_malformed_partner_ids_are_not_found_or_invalid() {
    let app = TestApp::spawn().await;
    let unknown = Uuid::now_v7().to_string();
    for status in [
        expect_code(get(&app, &unknown).await, Code::NotFound),
        expect_code(delete(&app, &unknown, "").await, Code::NotFound),
        expect_code(undelete(&app, &unknown, "").await, Code::NotFound),
        expect_code(
            add_role(&app, &unknown, pb::PartnerRole::Supplier as i32).await,
            Code::NotFound,
        ),
    ] {
        let info = status.get_details_resource_info().unwrap();
        assert_eq!(info.resource_type, "logistics.partner.v1.Partner");
        assert_eq!(info.resource_name, unknown);
    }
    let status = expect_code(delete(&app, "42", "\"x\"").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["id", "etag"]);
    let status = expect_code(get(&app, "").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["id"]);
}

#[tokio::test]
async fn deleting_a_deleted_partner_is_not_found() {
    let app = TestApp::spawn().await;
    let created = app.create_partner(acme("Acme", ""), &[]).await;
    let deleted = delete(&app, &created.id, "").await.unwrap();
    // No etag was sent, so nothing can be stale: the partner is simply not there to delete
    // (as UpdatePartner and AddPartnerRole answer, and as identity's DeleteUser does).
    expect_code(delete(&app, &created.id, "").await, Code::NotFound);
    expect_code(
        delete(&app, &created.id, &deleted.etag).await,
        Code::NotFound,
    );
}

// Tax ids ----------------------------------------------------------------------------------------

#[tokio::test]
async fn a_duplicate_tax_id_in_the_same_country_is_already_exists_without_leaking_sql() {
    let app = TestApp::spawn().await;
    let first = app.create_partner(acme("First", "DE123456789"), &[]).await;

    let status = expect_code(
        app.create_partner_as(
            &app.admin_token,
            acme("Second", "de-123.456 789"),
            &[pb::PartnerRole::Supplier],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&status), ["partner.tax_id"]);
    assert_eq!(
        status.get_details_resource_info().unwrap().resource_type,
        "logistics.partner.v1.Partner"
    );
    assert_eq!(error_reason(&status), "RESOURCE_ALREADY_EXISTS");
    assert!(status.message().contains("tax_id"), "{}", status.message());
    assert!(!status.message().contains("123"), "{}", status.message());
    assert_no_sql(&status);
    assert_eq!(partner_count(&app).await, 1);
    let roles_written: i64 = sqlx::query_scalar("SELECT count(*) FROM partner.partner_roles")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(roles_written, 0, "the refused partner's role was kept");

    // The same number in another country belongs to someone else.
    let austrian = app
        .create_partner(
            pb::Partner {
                country_code: "AT".into(),
                ..acme("Austrian", "DE123456789")
            },
            &[],
        )
        .await;
    assert_eq!(lookup(&app, "AT", "DE123456789").await.unwrap(), austrian);
    assert_eq!(lookup(&app, "DE", "DE123456789").await.unwrap(), first);
}

#[tokio::test]
async fn a_deleted_partner_frees_its_tax_id_and_cannot_come_back_while_it_is_taken() {
    let app = TestApp::spawn().await;
    let old = app.create_partner(acme("Old", "DE123456789"), &[]).await;
    let deleted = delete(&app, &old.id, &old.etag).await.unwrap();

    let new = app.create_partner(acme("New", "DE 123 456 789"), &[]).await;
    assert_eq!(lookup(&app, "DE", "DE123456789").await.unwrap().id, new.id);

    let status = expect_code(
        undelete(&app, &old.id, &deleted.etag).await,
        Code::AlreadyExists,
    );
    // UndeletePartnerRequest has no tax id; the service names the partner's field.
    assert_eq!(violated_fields(&status), ["partner.tax_id"]);
    assert_no_sql(&status);
    assert_eq!(get(&app, &old.id).await.unwrap(), deleted);
    assert_eq!(lookup(&app, "DE", "DE123456789").await.unwrap().id, new.id);

    // Once the new holder is gone too, the old one may return.
    delete(&app, &new.id, "").await.unwrap();
    let back = undelete(&app, &old.id, &deleted.etag).await.unwrap();
    assert!(back.delete_time.is_none());
    assert_eq!(lookup(&app, "DE", "DE123456789").await.unwrap().id, old.id);
}

// Idempotent CreatePartner -----------------------------------------------------------------------

#[tokio::test]
async fn the_same_request_id_returns_the_first_partner_and_writes_one_row() {
    let app = Arc::new(TestApp::spawn().await);
    let request_id = Uuid::now_v7().to_string();
    let first = create_with_request_id(
        &app,
        &request_id,
        acme("Acme", "DE123456789"),
        &[pb::PartnerRole::Supplier],
    )
    .await
    .unwrap();
    let again = create_with_request_id(
        &app,
        &request_id,
        acme("Acme", "DE123456789"),
        &[pb::PartnerRole::Supplier],
    )
    .await
    .unwrap();
    assert_eq!(again, first);
    assert_eq!(partner_count(&app).await, 1);

    // Concurrent retries of one new request produce one partner too.
    let racing_id = Uuid::now_v7().to_string();
    let raced: Vec<pb::Partner> = futures::future::join_all((0..4).map(|_| {
        let (app, racing_id) = (app.clone(), racing_id.clone());
        async move {
            create_with_request_id(&app, &racing_id, acme("Racer", ""), &[])
                .await
                .unwrap()
        }
    }))
    .await;
    assert!(raced.iter().all(|p| *p == raced[0]), "{raced:?}");
    assert_eq!(partner_count(&app).await, 2);
}

#[tokio::test]
async fn the_same_request_id_with_a_different_request_is_invalid() {
    let app = TestApp::spawn().await;
    let request_id = Uuid::now_v7().to_string();
    let first = create_with_request_id(&app, &request_id, acme("Acme", ""), &[])
        .await
        .unwrap();
    for (partner, partner_roles) in [
        (acme("Other Name", ""), vec![]),
        (acme("Acme", ""), vec![pb::PartnerRole::Carrier]),
        (
            pb::Partner {
                country_code: "AT".into(),
                ..acme("Acme", "")
            },
            vec![],
        ),
    ] {
        let status = expect_code(
            create_with_request_id(&app, &request_id, partner, &partner_roles).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["request_id"]);
    }
    assert_eq!(partner_count(&app).await, 1);
    assert_eq!(get(&app, &first.id).await.unwrap(), first);

    let status = expect_code(
        create_with_request_id(&app, "not-a-uuid", acme("Acme", ""), &[]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["request_id"]);
}

#[tokio::test]
async fn the_same_request_id_with_only_a_different_tax_id_is_invalid() {
    let app = TestApp::spawn().await;
    let request_id = Uuid::now_v7().to_string();
    create_with_request_id(&app, &request_id, acme("Acme", "DE111111111"), &[])
        .await
        .unwrap();
    let status = expect_code(
        create_with_request_id(&app, &request_id, acme("Acme", "DE222222222"), &[]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["request_id"]);
}

#[tokio::test]
async fn an_idempotent_create_keeps_no_tax_id_in_plain_text() {
    let app = TestApp::spawn().await;
    create_with_request_id(
        &app,
        &Uuid::now_v7().to_string(),
        acme("Acme", "DE123456789"),
        &[],
    )
    .await
    .unwrap();
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT coalesce(response, ''::bytea) FROM partner.idempotency_keys")
            .fetch_all(&app.db().await)
            .await
            .unwrap();
    assert_eq!(stored.len(), 1);
    let plain = b"DE123456789";
    assert!(
        !stored[0].windows(plain.len()).any(|w| w == plain),
        "the tax id is stored in plain text in partner.idempotency_keys.response"
    );
}

#[tokio::test]
async fn a_refused_create_leaves_its_request_id_free_for_the_corrected_request() {
    let app = TestApp::spawn().await;
    app.create_partner(acme("Holder", "DE123456789"), &[]).await;
    let request_id = Uuid::now_v7().to_string();
    expect_code(
        create_with_request_id(&app, &request_id, acme("Late", "DE123456789"), &[]).await,
        Code::AlreadyExists,
    );
    let corrected = create_with_request_id(&app, &request_id, acme("Late", ""), &[])
        .await
        .unwrap();
    assert_eq!(corrected.display_name, "Late");
    assert_eq!(partner_count(&app).await, 2);
}

// ListPartners -----------------------------------------------------------------------------------

#[tokio::test]
async fn filters_select_by_role_country_status_and_case_insensitive_name_prefix() {
    use pb::PartnerRole::{Carrier, Customer, Supplier};
    let app = TestApp::spawn().await;
    app.create_partner(named("Alpha Steel", "DE"), &[Supplier])
        .await;
    app.create_partner(
        pb::Partner {
            status: pb::PartnerStatus::Blocked as i32,
            ..named("alpine Freight", "AT")
        },
        &[Carrier],
    )
    .await;
    app.create_partner(
        pb::Partner {
            status: pb::PartnerStatus::Inactive as i32,
            ..named("Bravo Foods", "DE")
        },
        &[Supplier, Customer],
    )
    .await;
    app.create_partner(named("50% Outlet", "DE"), &[Customer])
        .await;
    app.create_partner(named("500 Parts", "DE"), &[]).await;
    let gone = app
        .create_partner(named("Alphabet Soup", "DE"), &[Supplier])
        .await;
    delete(&app, &gone.id, "").await.unwrap();

    let cases: &[(&str, &[&str])] = &[
        (
            "",
            &[
                "50% Outlet",
                "500 Parts",
                "Alpha Steel",
                "alpine Freight",
                "Bravo Foods",
            ],
        ),
        (
            "role = PARTNER_ROLE_SUPPLIER",
            &["Alpha Steel", "Bravo Foods"],
        ),
        (
            "role != PARTNER_ROLE_SUPPLIER",
            &["50% Outlet", "500 Parts", "alpine Freight"],
        ),
        (
            "role = PARTNER_ROLE_CUSTOMER",
            &["50% Outlet", "Bravo Foods"],
        ),
        ("country_code = \"AT\"", &["alpine Freight"]),
        ("country_code = at", &["alpine Freight"]),
        (
            "country_code != \"AT\"",
            &["50% Outlet", "500 Parts", "Alpha Steel", "Bravo Foods"],
        ),
        ("status = PARTNER_STATUS_BLOCKED", &["alpine Freight"]),
        (
            "status != PARTNER_STATUS_ACTIVE",
            &["alpine Freight", "Bravo Foods"],
        ),
        ("display_name = \"AL*\"", &["Alpha Steel", "alpine Freight"]),
        ("display_name = \"alpha steel\"", &["Alpha Steel"]),
        (
            "display_name != \"al*\"",
            &["50% Outlet", "500 Parts", "Bravo Foods"],
        ),
        // `%` and `_` in a prefix are literal characters, not wildcards.
        ("display_name = \"50%*\"", &["50% Outlet"]),
        ("display_name = \"5_0*\"", &[]),
        (
            "role = PARTNER_ROLE_SUPPLIER AND status = PARTNER_STATUS_ACTIVE AND country_code = \"DE\"",
            &["Alpha Steel"],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            listed_names(&app, filter, false).await,
            *expected,
            "filter {filter:?}"
        );
    }
    // show_deleted adds the deleted supplier to the same filter.
    assert_eq!(
        listed_names(&app, "role = PARTNER_ROLE_SUPPLIER", true).await,
        ["Alpha Steel", "Alphabet Soup", "Bravo Foods"]
    );

    // `%` and `_` in a prefix match themselves only, with `=` and with `!=`: "50% O" is no
    // pattern that "50X Offer" matches.
    app.create_partner(named("50% Off_Co", "DE"), &[]).await;
    app.create_partner(named("50X Offer", "DE"), &[]).await;
    let literal: &[(&str, &[&str])] = &[
        ("display_name = \"50% O*\"", &["50% Off_Co", "50% Outlet"]),
        ("display_name = \"50% off_*\"", &["50% Off_Co"]),
        (
            "display_name = \"50*\" AND display_name != \"50% O*\"",
            &["500 Parts", "50X Offer"],
        ),
        ("display_name = \"50_*\"", &[]),
    ];
    for (filter, expected) in literal {
        assert_eq!(
            listed_names(&app, filter, false).await,
            *expected,
            "filter {filter:?}"
        );
    }
}

#[tokio::test]
async fn unknown_filter_fields_values_and_syntax_are_invalid_arguments() {
    let app = TestApp::spawn().await;
    app.create_partner(acme("Acme", ""), &[]).await;
    for filter in [
        "legal_name = \"Acme GmbH\"",
        "tax_id = \"DE123456789\"",
        "role = PARTNER_ROLE_PILOT",
        "role = PARTNER_ROLE_UNSPECIFIED",
        "role = SUPPLIER",
        "status = PARTNER_STATUS_DELETED",
        "country_code = \"XX\"",
        "country_code = \"DEU\"",
        "role > PARTNER_ROLE_SUPPLIER",
        "role = PARTNER_ROLE_SUPPLIER OR role = PARTNER_ROLE_CUSTOMER",
        "display_name = \"open",
        "display_name =",
        "(role = PARTNER_ROLE_SUPPLIER)",
    ] {
        let status = expect_code(
            list(
                &app,
                pb::ListPartnersRequest {
                    filter: filter.into(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["filter"], "filter {filter:?}");
    }
}

#[tokio::test]
async fn order_by_sorts_by_display_name_or_creation_in_either_direction() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for name in ["charlie", "Alpha", "echo", "bravo", "Echo", "delta"] {
        created.push(app.create_partner(named(name, "DE"), &[]).await);
    }
    let order = |order_by: &str| pb::ListPartnersRequest {
        order_by: order_by.into(),
        page_size: 2,
        ..Default::default()
    };

    // By name case-insensitively; equal names by id, which is creation order.
    let by_name = ["Alpha", "bravo", "charlie", "delta", "echo", "Echo"];
    for order_by in ["", "display_name", "display_name asc", "display_name ASC"] {
        let listed = all_pages(&app, order(order_by), Duration::ZERO).await;
        assert_eq!(names(&listed), by_name, "order_by {order_by:?}");
    }
    let mut backwards = by_name;
    backwards.reverse();
    for order_by in ["display_name desc", "display_name DESC"] {
        let listed = all_pages(&app, order(order_by), Duration::ZERO).await;
        assert_eq!(names(&listed), backwards, "order_by {order_by:?}");
    }

    let listed = all_pages(&app, order("create_time"), Duration::ZERO).await;
    assert_eq!(ids(&listed), ids(&created));
    let listed = all_pages(&app, order("create_time desc"), Duration::ZERO).await;
    let mut newest_first = ids(&created);
    newest_first.reverse();
    assert_eq!(ids(&listed), newest_first);

    for bad in [
        "legal_name",
        "display_name sideways",
        "create_time desc, display_name",
        "id",
    ] {
        let status = expect_code(list(&app, order(bad)).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["order_by"], "order_by {bad:?}");
    }
}

#[tokio::test]
async fn create_time_order_follows_the_create_times_of_concurrent_creates() {
    let app = Arc::new(TestApp::spawn().await);
    futures::stream::iter(0..40)
        .map(|i| {
            let app = app.clone();
            async move { app.create_partner(named(&format!("P{i}"), "DE"), &[]).await }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    let listed = all_pages(
        &app,
        pb::ListPartnersRequest {
            order_by: "create_time".into(),
            page_size: 1000,
            ..Default::default()
        },
        Duration::ZERO,
    )
    .await;
    assert_eq!(listed.len(), 40);
    let times: Vec<(i64, i32)> = listed.iter().map(|p| instant(p.create_time)).collect();
    for pair in times.windows(2) {
        assert!(pair[0] <= pair[1], "out of create_time order: {pair:?}");
    }
}

#[tokio::test]
async fn keyset_pages_list_every_partner_exactly_once_while_others_are_inserted() {
    let app = Arc::new(TestApp::spawn().await);
    // Names repeat, so pages must break ties by id.
    let originals: Vec<pb::Partner> = futures::stream::iter(0..25)
        .map(|i| {
            let app = app.clone();
            async move {
                app.create_partner(named(&format!("Partner {}", i % 7), "DE"), &[])
                    .await
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let expected: HashSet<String> = ids(&originals).into_iter().collect();
    assert_eq!(expected.len(), 25);

    // A writer that keeps adding partners before and after every page until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicUsize::new(0));
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn({
        let (app, stop, inserted) = (app.clone(), stop.clone(), inserted.clone());
        async move {
            let mut first = Some(first_tx);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let name = match n % 3 {
                    0 => format!("Aaron {n}"),
                    1 => format!("Partner 3 late {n}"),
                    _ => format!("Zulu {n}"),
                };
                app.create_partner(named(&name, "DE"), &[]).await;
                tokio::time::sleep(Duration::from_millis(10)).await;
                n += 1;
                inserted.store(n, Ordering::SeqCst);
                if let Some(first) = first.take() {
                    let _ = first.send(());
                }
            }
        }
    });
    first_rx.await.unwrap();
    let before_paging = inserted.load(Ordering::SeqCst);

    let check = |listed: &[pb::Partner], what: &str| {
        let listed_ids = ids(listed);
        let unique: HashSet<&String> = listed_ids.iter().collect();
        assert_eq!(unique.len(), listed_ids.len(), "{what}: a partner twice");
        for id in &expected {
            assert_eq!(
                listed_ids.iter().filter(|i| *i == id).count(),
                1,
                "{what}: partner {id} not listed exactly once"
            );
        }
    };
    for (order_by, descending) in [
        ("", false),
        ("display_name desc", true),
        ("create_time", false),
        ("create_time desc", true),
    ] {
        let listed = all_pages(
            &app,
            pb::ListPartnersRequest {
                page_size: 10,
                order_by: order_by.into(),
                ..Default::default()
            },
            Duration::from_millis(40),
        )
        .await;
        check(&listed, order_by);
        let mut keys: Vec<(String, Uuid)> = if order_by.starts_with("create_time") {
            // create_time, then id.
            listed
                .iter()
                .map(|p| {
                    let at = p.create_time.unwrap();
                    (
                        format!("{:020}{:09}", at.seconds, at.nanos),
                        Uuid::parse_str(&p.id).unwrap(),
                    )
                })
                .collect()
        } else {
            name_keys(&listed)
        };
        if descending {
            keys.reverse();
        }
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1], "{order_by:?} out of order: {pair:?}");
        }
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        inserted.load(Ordering::SeqCst) > before_paging,
        "no insert overlapped the paging"
    );

    // Once quiet, pages of 10 cut the whole set without gaps.
    let total = 25 + inserted.load(Ordering::SeqCst);
    let quiet = all_pages(
        &app,
        pb::ListPartnersRequest {
            page_size: 10,
            ..Default::default()
        },
        Duration::ZERO,
    )
    .await;
    assert_eq!(quiet.len(), total);
    check(&quiet, "quiet");
}

#[tokio::test]
async fn twenty_five_partners_come_in_pages_of_ten_ten_and_five() {
    let app = TestApp::spawn().await;
    for i in 0..25 {
        app.create_partner(named(&format!("Partner {i:02}"), "DE"), &[])
            .await;
    }
    let mut request = pb::ListPartnersRequest {
        page_size: 10,
        ..Default::default()
    };
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    loop {
        let page = list(&app, request.clone()).await.unwrap();
        sizes.push(page.partners.len());
        all.extend(names(&page.partners));
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert_eq!(sizes, [10, 10, 5]);
    let expected: Vec<String> = (0..25).map(|i| format!("Partner {i:02}")).collect();
    assert_eq!(all, expected);
}

#[tokio::test]
async fn forged_or_reused_page_tokens_are_invalid_arguments() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for name in ["Alpha", "Bravo", "Charlie"] {
        created.push(app.create_partner(named(name, "DE"), &[]).await);
    }
    let page = |page_token: String| pb::ListPartnersRequest {
        page_size: 1,
        page_token,
        ..Default::default()
    };
    let first = list(&app, page(String::new())).await.unwrap();
    let token = first.next_page_token.clone();
    assert!(!token.is_empty());
    let second = list(&app, page(token.clone())).await.unwrap();
    assert_eq!(names(&second.partners), ["Bravo"]);

    // The cursor edited to point elsewhere, keeping the signature.
    let (body, mac) = token.split_once('.').unwrap();
    let json = String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
    assert!(json.contains(&created[0].id), "{json}");
    let edited = json.replace(&created[0].id, &Uuid::nil().to_string());
    let tampered = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(edited));
    let forged = format!("{body}.{}", URL_SAFE_NO_PAD.encode([0x5a_u8; 32]));
    for bad in [
        tampered,
        forged,
        "garbage".to_owned(),
        "a.b".to_owned(),
        format!("{token}x"),
    ] {
        let status = expect_code(list(&app, page(bad.clone())).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["page_token"], "token {bad:?}");
    }

    // A genuine token on a listing with another filter, order or show_deleted.
    for other in [
        pb::ListPartnersRequest {
            filter: "country_code = \"DE\"".into(),
            ..page(token.clone())
        },
        pb::ListPartnersRequest {
            order_by: "display_name desc".into(),
            ..page(token.clone())
        },
        pb::ListPartnersRequest {
            order_by: "create_time".into(),
            ..page(token.clone())
        },
        pb::ListPartnersRequest {
            show_deleted: true,
            ..page(token.clone())
        },
    ] {
        let status = expect_code(list(&app, other).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["page_token"]);
    }
    // The page size may change between pages.
    let rest = list(
        &app,
        pb::ListPartnersRequest {
            page_size: 10,
            ..page(token)
        },
    )
    .await
    .unwrap();
    assert_eq!(names(&rest.partners), ["Bravo", "Charlie"]);
    assert!(rest.next_page_token.is_empty());
}

#[tokio::test]
async fn page_size_zero_means_fifty_above_a_thousand_means_a_thousand_and_negative_is_invalid() {
    let app = TestApp::spawn().await;
    insert_bulk(&app, 1001).await;
    let sized = |page_size: i32| pb::ListPartnersRequest {
        page_size,
        ..Default::default()
    };

    let default = list(&app, sized(0)).await.unwrap();
    assert_eq!(default.partners.len(), 50);
    assert!(!default.next_page_token.is_empty());
    for page_size in [1000, 1001, 5000, i32::MAX] {
        let page = list(&app, sized(page_size)).await.unwrap();
        assert_eq!(page.partners.len(), 1000, "page_size {page_size}");
        assert_eq!(page.partners[999].display_name, "Bulk 1000");
        let rest = list(
            &app,
            pb::ListPartnersRequest {
                page_token: page.next_page_token,
                ..sized(page_size)
            },
        )
        .await
        .unwrap();
        assert_eq!(names(&rest.partners), ["Bulk 1001"]);
        assert!(rest.next_page_token.is_empty());
    }
    for page_size in [-1, i32::MIN] {
        let status = expect_code(list(&app, sized(page_size)).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["page_size"]);
    }
}

// BatchGetPartners -------------------------------------------------------------------------------

#[tokio::test]
async fn batch_get_answers_in_the_order_asked_with_duplicates_in_place() {
    let app = TestApp::spawn().await;
    let a = app.create_partner(named("A", "DE"), &[]).await;
    let b = app
        .create_partner(acme("B", "DE123456789"), &[pb::PartnerRole::Customer])
        .await;
    let c = app.create_partner(named("C", "AT"), &[]).await;

    let got = batch_get(
        &app,
        vec![c.id.clone(), a.id.clone(), b.id.clone(), c.id.clone()],
    )
    .await
    .unwrap();
    assert_eq!(got, [c.clone(), a, b, c]);
}

#[tokio::test]
async fn batch_get_is_not_found_when_any_partner_is_missing_or_deleted() {
    let app = TestApp::spawn().await;
    let live = app.create_partner(named("Live", "DE"), &[]).await;
    let gone = app.create_partner(named("Gone", "DE"), &[]).await;
    delete(&app, &gone.id, "").await.unwrap();
    let unknown = Uuid::now_v7().to_string();

    for missing in [&unknown, &gone.id] {
        let status = expect_code(
            batch_get(&app, vec![live.id.clone(), missing.clone()]).await,
            Code::NotFound,
        );
        let info = status.get_details_resource_info().unwrap();
        assert_eq!(info.resource_type, "logistics.partner.v1.Partner");
        assert_eq!(&info.resource_name, missing);
    }
}

#[tokio::test]
async fn batch_get_takes_one_to_a_thousand_well_formed_ids() {
    let app = TestApp::spawn().await;
    let bulk = insert_bulk(&app, 1000).await;

    let got = batch_get(&app, bulk.clone()).await.unwrap();
    assert_eq!(ids(&got), bulk);

    let mut too_many = bulk.clone();
    too_many.push(bulk[0].clone());
    let status = expect_code(batch_get(&app, too_many).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["ids"]);
    let status = expect_code(batch_get(&app, vec![]).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["ids"]);

    let status = expect_code(
        batch_get(
            &app,
            vec![
                "nope".into(),
                bulk[0].clone(),
                String::new(),
                format!("{}0", bulk[1]),
            ],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["ids[0]", "ids[2]", "ids[3]"]);
}

// Roles ------------------------------------------------------------------------------------------

#[tokio::test]
async fn adding_and_removing_roles_is_idempotent_and_moves_the_etag_only_on_change() {
    let app = TestApp::spawn().await;
    let created = app.create_partner(named("Acme", "DE"), &[]).await;
    assert!(created.roles.is_empty());

    let carrier = add_role(&app, &created.id, pb::PartnerRole::Carrier as i32)
        .await
        .unwrap();
    assert_eq!(carrier.roles, roles(&[pb::PartnerRole::Carrier]));
    assert_ne!(carrier.etag, created.etag);
    let again = add_role(&app, &created.id, pb::PartnerRole::Carrier as i32)
        .await
        .unwrap();
    assert_eq!(again, carrier, "adding a held role changed the partner");

    let both = add_role(&app, &created.id, pb::PartnerRole::Supplier as i32)
        .await
        .unwrap();
    assert_eq!(
        both.roles,
        roles(&[pb::PartnerRole::Supplier, pb::PartnerRole::Carrier])
    );

    let supplier = remove_role(&app, &created.id, pb::PartnerRole::Carrier as i32)
        .await
        .unwrap();
    assert_eq!(supplier.roles, roles(&[pb::PartnerRole::Supplier]));
    assert_ne!(supplier.etag, both.etag);
    let again = remove_role(&app, &created.id, pb::PartnerRole::Carrier as i32)
        .await
        .unwrap();
    assert_eq!(
        again, supplier,
        "removing a missing role changed the partner"
    );
    assert_eq!(get(&app, &created.id).await.unwrap(), supplier);
    assert_eq!(
        listed_names(&app, "role = PARTNER_ROLE_CARRIER", false).await,
        Vec::<String>::new()
    );

    // A role change moves the etag, so an update read before it is stale.
    let status = expect_code(
        update(
            &app,
            pb::Partner {
                id: created.id.clone(),
                etag: both.etag.clone(),
                display_name: "Stale".into(),
                ..Default::default()
            },
            &["display_name"],
        )
        .await,
        Code::Aborted,
    );
    assert_eq!(error_reason(&status), "STALE_ETAG");
}

#[tokio::test]
async fn a_role_cannot_be_removed_while_its_profile_exists() {
    let app = TestApp::spawn().await;
    let created = app
        .create_partner(
            named("Acme", "DE"),
            &[pb::PartnerRole::Supplier, pb::PartnerRole::Customer],
        )
        .await;
    let profile = open_supplier_profile(&app, &created.id).await;

    let status = expect_code(
        remove_role(&app, &created.id, pb::PartnerRole::Supplier as i32).await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        precondition_failures(&status),
        [("PROFILE_EXISTS".to_owned(), "supplier_profile".to_owned())]
    );
    assert_no_sql(&status);
    let unchanged = get(&app, &created.id).await.unwrap();
    assert_eq!(unchanged, created);

    // The other role has no profile and goes.
    let customer_gone = remove_role(&app, &created.id, pb::PartnerRole::Customer as i32)
        .await
        .unwrap();
    assert_eq!(customer_gone.roles, roles(&[pb::PartnerRole::Supplier]));

    // Without the profile, the supplier role goes too.
    app.client()
        .await
        .delete_supplier_profile(authed(
            &app.admin_token,
            pb::DeleteSupplierProfileRequest {
                partner_id: created.id.clone(),
                etag: profile.etag,
            },
        ))
        .await
        .unwrap();
    let none = remove_role(&app, &created.id, pb::PartnerRole::Supplier as i32)
        .await
        .unwrap();
    assert!(none.roles.is_empty());
}

#[tokio::test]
async fn role_changes_need_a_known_role_and_a_partner_id() {
    let app = TestApp::spawn().await;
    let created = app.create_partner(named("Acme", "DE"), &[]).await;
    for role in [pb::PartnerRole::Unspecified as i32, 99] {
        let status = expect_code(
            add_role(&app, &created.id, role).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["role"]);
        let status = expect_code(
            remove_role(&app, &created.id, role).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["role"]);
    }
    let status = expect_code(add_role(&app, "x", 0).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["partner_id", "role"]);
    assert_eq!(stored(&app, &created.id).await.2, 1);
}
