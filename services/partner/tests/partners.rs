//! Partners end to end: create, read, tax ids sealed at rest and found through the blind index.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, acme, authed, expect_code, violated_fields};
use logistics_proto::partner::v1 as pb;
use tonic::Code;

#[tokio::test]
async fn a_created_partner_reads_back_with_its_roles_and_its_tax_id_is_sealed_at_rest() {
    let app = TestApp::spawn().await;
    let created = app
        .create_partner(
            acme("Acme", "DE 123.456-789"),
            &[pb::PartnerRole::Supplier, pb::PartnerRole::Customer],
        )
        .await;
    assert_eq!(created.tax_id, "DE123456789");
    assert_eq!(
        created.roles,
        [
            pb::PartnerRole::Supplier as i32,
            pb::PartnerRole::Customer as i32
        ]
    );
    assert_eq!(created.status, pb::PartnerStatus::Active as i32);

    let read = app
        .client()
        .await
        .get_partner(authed(
            &app.admin_token,
            pb::GetPartnerRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .partner
        .unwrap();
    assert_eq!(read, created);

    let db = app.db().await;
    let raw: String = sqlx::query_scalar("SELECT p::text FROM partner.partners p")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(
        !raw.contains("123456789"),
        "tax id stored in plain text: {raw}"
    );
    let hex: String = "DE123456789".bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!raw.contains(&hex), "tax id stored as bytes in plain text");
}

#[tokio::test]
async fn a_tax_id_is_found_through_the_blind_index_however_it_is_written() {
    let app = TestApp::spawn().await;
    let created = app.create_partner(acme("Acme", "DE123456789"), &[]).await;
    let found = app
        .client()
        .await
        .lookup_partner_by_tax_id(authed(
            &app.admin_token,
            pb::LookupPartnerByTaxIdRequest {
                country_code: "de".into(),
                tax_id: "de-123 456 789".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .partner
        .unwrap();
    assert_eq!(found.id, created.id);
    let missing = expect_code(
        app.client()
            .await
            .lookup_partner_by_tax_id(authed(
                &app.admin_token,
                pb::LookupPartnerByTaxIdRequest {
                    country_code: "AT".into(),
                    tax_id: "DE123456789".into(),
                },
            ))
            .await,
        Code::NotFound,
    );
    assert!(
        !missing.message().contains("123456789"),
        "{}",
        missing.message()
    );
}

#[tokio::test]
async fn a_partner_with_bad_fields_lists_every_violation() {
    let app = TestApp::spawn().await;
    let status = expect_code(
        app.create_partner_as(
            &app.admin_token,
            pb::Partner {
                kind: 0,
                legal_name: String::new(),
                display_name: "x".repeat(201),
                tax_id: "#".into(),
                country_code: "XX".into(),
                default_currency_code: "EURO".into(),
                ..Default::default()
            },
            &[pb::PartnerRole::Unspecified],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "partner.kind",
            "partner.legal_name",
            "partner.display_name",
            "partner.tax_id",
            "partner.country_code",
            "partner.default_currency_code",
            "roles[0]"
        ]
    );
}
