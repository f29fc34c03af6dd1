//! Supplier and customer profiles: created on first write with `allow_missing`, changed by field
//! mask under etags, validated to the field, refused for partners without the role, deleted.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{TestApp, acme, authed, expect_code, violated_fields};
use logistics_proto::partner::v1 as pb;
use logistics_proto::r#type::v1::Money;
use prost_types::FieldMask;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

const SUPPLIER_PROFILE: &str = "logistics.partner.v1.SupplierProfile";
const CUSTOMER_PROFILE: &str = "logistics.partner.v1.CustomerProfile";

// Helpers ----------------------------------------------------------------------------------------

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn eur(amount_minor: i64) -> Option<Money> {
    Some(Money {
        currency_code: "EUR".into(),
        amount_minor,
    })
}

/// A partner holding `roles`, and its id.
async fn partner_with(app: &TestApp, roles: &[pb::PartnerRole]) -> String {
    app.create_partner(acme("Acme", ""), roles).await.id
}

async fn get_supplier(app: &TestApp, partner_id: &str) -> Result<pb::SupplierProfile, Status> {
    app.client()
        .await
        .get_supplier_profile(authed(
            &app.admin_token,
            pb::GetSupplierProfileRequest {
                partner_id: partner_id.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().profile.unwrap())
}

async fn update_supplier(
    app: &TestApp,
    profile: pb::SupplierProfile,
    paths: &[&str],
    allow_missing: bool,
) -> Result<pb::SupplierProfile, Status> {
    app.client()
        .await
        .update_supplier_profile(authed(
            &app.admin_token,
            pb::UpdateSupplierProfileRequest {
                profile: Some(profile),
                update_mask: mask(paths),
                allow_missing,
            },
        ))
        .await
        .map(|r| r.into_inner().profile.unwrap())
}

async fn delete_supplier(app: &TestApp, partner_id: &str, etag: &str) -> Result<(), Status> {
    app.client()
        .await
        .delete_supplier_profile(authed(
            &app.admin_token,
            pb::DeleteSupplierProfileRequest {
                partner_id: partner_id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|_| ())
}

async fn get_customer(app: &TestApp, partner_id: &str) -> Result<pb::CustomerProfile, Status> {
    app.client()
        .await
        .get_customer_profile(authed(
            &app.admin_token,
            pb::GetCustomerProfileRequest {
                partner_id: partner_id.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().profile.unwrap())
}

async fn update_customer(
    app: &TestApp,
    profile: pb::CustomerProfile,
    paths: &[&str],
    allow_missing: bool,
) -> Result<pb::CustomerProfile, Status> {
    app.client()
        .await
        .update_customer_profile(authed(
            &app.admin_token,
            pb::UpdateCustomerProfileRequest {
                profile: Some(profile),
                update_mask: mask(paths),
                allow_missing,
            },
        ))
        .await
        .map(|r| r.into_inner().profile.unwrap())
}

async fn delete_customer(app: &TestApp, partner_id: &str, etag: &str) -> Result<(), Status> {
    app.client()
        .await
        .delete_customer_profile(authed(
            &app.admin_token,
            pb::DeleteCustomerProfileRequest {
                partner_id: partner_id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|_| ())
}

/// Creates the supplier profile of `partner_id` with the default terms.
async fn open_supplier(app: &TestApp, partner_id: &str) -> pb::SupplierProfile {
    update_supplier(
        app,
        pb::SupplierProfile {
            partner_id: partner_id.to_owned(),
            payment_terms_days: 30,
            ..Default::default()
        },
        &["payment_terms_days"],
        true,
    )
    .await
    .unwrap()
}

/// Creates the customer profile of `partner_id` with the default terms.
async fn open_customer(app: &TestApp, partner_id: &str) -> pb::CustomerProfile {
    update_customer(
        app,
        pb::CustomerProfile {
            partner_id: partner_id.to_owned(),
            payment_terms_days: 30,
            ..Default::default()
        },
        &["payment_terms_days"],
        true,
    )
    .await
    .unwrap()
}

/// `(payment_terms_days, lead_time_days, credit_limit_minor, credit_currency_code, rating,
/// notes, version)` of a supplier profile row, read past the service.
type SupplierRow = (
    i32,
    i32,
    Option<i64>,
    Option<String>,
    Option<i16>,
    String,
    i32,
);

async fn supplier_row(app: &TestApp, partner_id: &str) -> Option<SupplierRow> {
    sqlx::query_as(
        "SELECT payment_terms_days, lead_time_days, credit_limit_minor, \
             credit_currency_code::text, rating, notes, version \
         FROM partner.supplier_profiles WHERE partner_id = $1",
    )
    .bind(Uuid::parse_str(partner_id).unwrap())
    .fetch_optional(&app.db().await)
    .await
    .unwrap()
}

/// `(payment_terms_days, credit_limit_minor, rating, notes, version)` of a customer profile row.
type CustomerRow = (i32, Option<i64>, Option<i16>, String, i32);

async fn customer_row(app: &TestApp, partner_id: &str) -> Option<CustomerRow> {
    sqlx::query_as(
        "SELECT payment_terms_days, credit_limit_minor, rating, notes, version \
         FROM partner.customer_profiles WHERE partner_id = $1",
    )
    .bind(Uuid::parse_str(partner_id).unwrap())
    .fetch_optional(&app.db().await)
    .await
    .unwrap()
}

fn resource(status: &Status) -> (String, String) {
    let info = status.get_details_resource_info().unwrap();
    (info.resource_type, info.resource_name)
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

// Creation and reads -----------------------------------------------------------------------------

#[tokio::test]
async fn a_supplier_profile_is_created_by_the_first_write_with_allow_missing() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Supplier]).await;

    let status = expect_code(get_supplier(&app, &partner_id).await, Code::NotFound);
    assert_eq!(
        resource(&status),
        (SUPPLIER_PROFILE.to_owned(), partner_id.clone())
    );
    // Without allow_missing an update needs an existing profile.
    let terms = pb::SupplierProfile {
        partner_id: partner_id.clone(),
        lead_time_days: 14,
        credit_limit: eur(5_000_000),
        rating: 4,
        notes: "Ships on Tuesdays.".into(),
        ..Default::default()
    };
    let masked = ["lead_time_days", "credit_limit", "rating", "notes"];
    let status = expect_code(
        update_supplier(&app, terms.clone(), &masked, false).await,
        Code::NotFound,
    );
    assert_eq!(
        resource(&status),
        (SUPPLIER_PROFILE.to_owned(), partner_id.clone())
    );
    assert_eq!(supplier_row(&app, &partner_id).await, None);

    let created = update_supplier(&app, terms, &masked, true).await.unwrap();
    assert_eq!(created.partner_id, partner_id);
    // Unmasked terms start at their defaults.
    assert_eq!(created.payment_terms_days, 30);
    assert_eq!(created.lead_time_days, 14);
    assert_eq!(created.credit_limit, eur(5_000_000));
    assert_eq!(created.rating, 4);
    assert_eq!(created.notes, "Ships on Tuesdays.");
    assert!(!created.etag.is_empty());
    assert!(created.create_time.is_some());
    assert_eq!(get_supplier(&app, &partner_id).await.unwrap(), created);
    assert_eq!(
        supplier_row(&app, &partner_id).await.map(|r| (r.0, r.1)),
        Some((30, 14))
    );
}

#[tokio::test]
async fn a_customer_profile_is_created_by_the_first_write_and_has_no_lead_time() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Customer]).await;

    let status = expect_code(get_customer(&app, &partner_id).await, Code::NotFound);
    assert_eq!(
        resource(&status),
        (CUSTOMER_PROFILE.to_owned(), partner_id.clone())
    );
    let created = update_customer(
        &app,
        pb::CustomerProfile {
            partner_id: partner_id.clone(),
            payment_terms_days: 14,
            credit_limit: Some(Money {
                currency_code: "jpy".into(),
                amount_minor: 1_000_000,
            }),
            rating: 2,
            notes: "Pays late.".into(),
            ..Default::default()
        },
        &["payment_terms_days", "credit_limit", "rating", "notes"],
        true,
    )
    .await
    .unwrap();
    assert_eq!(created.payment_terms_days, 14);
    assert_eq!(
        created.credit_limit,
        Some(Money {
            currency_code: "JPY".into(),
            amount_minor: 1_000_000,
        })
    );
    assert_eq!(created.rating, 2);
    assert_eq!(get_customer(&app, &partner_id).await.unwrap(), created);

    // Lead time is a supplier term only.
    let status = expect_code(
        update_customer(
            &app,
            pb::CustomerProfile {
                partner_id: partner_id.clone(),
                ..Default::default()
            },
            &["notes", "lead_time_days"],
            false,
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["update_mask.paths[1]"]);
    assert_eq!(get_customer(&app, &partner_id).await.unwrap(), created);
}

#[tokio::test]
async fn a_profile_for_a_partner_without_the_role_is_a_failed_precondition() {
    let app = TestApp::spawn().await;
    let customer_only = partner_with(&app, &[pb::PartnerRole::Customer]).await;
    let supplier_only = partner_with(&app, &[pb::PartnerRole::Supplier]).await;

    let status = expect_code(
        update_supplier(
            &app,
            pb::SupplierProfile {
                partner_id: customer_only.clone(),
                rating: 3,
                ..Default::default()
            },
            &["rating"],
            true,
        )
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        precondition_failures(&status),
        [("ROLE_REQUIRED".to_owned(), "partner".to_owned())]
    );
    assert!(
        status.message().contains("supplier role"),
        "{}",
        status.message()
    );
    assert_eq!(supplier_row(&app, &customer_only).await, None);
    // Reading one is simply not found: there is none.
    let status = expect_code(get_supplier(&app, &customer_only).await, Code::NotFound);
    assert_eq!(
        resource(&status),
        (SUPPLIER_PROFILE.to_owned(), customer_only.clone())
    );

    let status = expect_code(
        update_customer(
            &app,
            pb::CustomerProfile {
                partner_id: supplier_only.clone(),
                rating: 3,
                ..Default::default()
            },
            &["rating"],
            true,
        )
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        precondition_failures(&status),
        [("ROLE_REQUIRED".to_owned(), "partner".to_owned())]
    );
    assert!(
        status.message().contains("customer role"),
        "{}",
        status.message()
    );
    assert_eq!(customer_row(&app, &supplier_only).await, None);

    // Once the partner holds the role, the same write works.
    app.client()
        .await
        .add_partner_role(authed(
            &app.admin_token,
            pb::AddPartnerRoleRequest {
                partner_id: customer_only.clone(),
                role: pb::PartnerRole::Supplier as i32,
            },
        ))
        .await
        .unwrap();
    let profile = update_supplier(
        &app,
        pb::SupplierProfile {
            partner_id: customer_only.clone(),
            rating: 3,
            ..Default::default()
        },
        &["rating"],
        true,
    )
    .await
    .unwrap();
    assert_eq!(profile.rating, 3);
}

#[tokio::test]
async fn profiles_of_unknown_or_deleted_partners_are_not_found() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(
        &app,
        &[pb::PartnerRole::Supplier, pb::PartnerRole::Customer],
    )
    .await;
    let supplier = open_supplier(&app, &partner_id).await;
    let customer = open_customer(&app, &partner_id).await;
    app.client()
        .await
        .delete_partner(authed(
            &app.admin_token,
            pb::DeletePartnerRequest {
                id: partner_id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();

    // Hidden with their partner, for reads and writes alike.
    let partner = (
        "logistics.partner.v1.Partner".to_owned(),
        partner_id.clone(),
    );
    let status = expect_code(get_supplier(&app, &partner_id).await, Code::NotFound);
    assert_eq!(resource(&status), partner);
    let status = expect_code(get_customer(&app, &partner_id).await, Code::NotFound);
    assert_eq!(resource(&status), partner);
    let status = expect_code(
        update_supplier(
            &app,
            pb::SupplierProfile {
                rating: 1,
                ..supplier.clone()
            },
            &["rating"],
            true,
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(resource(&status), partner);
    let status = expect_code(
        update_customer(
            &app,
            pb::CustomerProfile {
                rating: 1,
                ..customer.clone()
            },
            &["rating"],
            true,
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(resource(&status), partner);
    assert_eq!(supplier_row(&app, &partner_id).await.unwrap().4, None);

    let unknown = Uuid::now_v7().to_string();
    let status = expect_code(get_supplier(&app, &unknown).await, Code::NotFound);
    assert_eq!(
        resource(&status),
        ("logistics.partner.v1.Partner".to_owned(), unknown.clone())
    );
    let status = expect_code(
        update_customer(
            &app,
            pb::CustomerProfile {
                partner_id: unknown.clone(),
                ..Default::default()
            },
            &["notes"],
            true,
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(
        resource(&status),
        ("logistics.partner.v1.Partner".to_owned(), unknown)
    );
}

// Updates ----------------------------------------------------------------------------------------

#[tokio::test]
async fn a_supplier_profile_update_changes_only_the_masked_terms_and_bumps_the_etag() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Supplier]).await;
    let opened = update_supplier(
        &app,
        pb::SupplierProfile {
            partner_id: partner_id.clone(),
            payment_terms_days: 45,
            lead_time_days: 10,
            credit_limit: eur(10_000),
            rating: 5,
            notes: "Reliable.".into(),
            ..Default::default()
        },
        &[
            "payment_terms_days",
            "lead_time_days",
            "credit_limit",
            "rating",
            "notes",
        ],
        true,
    )
    .await
    .unwrap();

    // Every term carries a new value, but only two are masked.
    let updated = update_supplier(
        &app,
        pb::SupplierProfile {
            partner_id: partner_id.clone(),
            etag: opened.etag.clone(),
            payment_terms_days: 60,
            lead_time_days: 0,
            credit_limit: None,
            rating: 0,
            notes: "  Reliable, but slow in August.  ".into(),
            ..Default::default()
        },
        &["payment_terms_days", "notes"],
        false,
    )
    .await
    .unwrap();
    assert_eq!(updated.payment_terms_days, 60);
    assert_eq!(updated.notes, "Reliable, but slow in August.");
    assert_ne!(updated.etag, opened.etag);
    assert_eq!(
        pb::SupplierProfile {
            payment_terms_days: opened.payment_terms_days,
            notes: opened.notes.clone(),
            etag: opened.etag.clone(),
            update_time: opened.update_time,
            ..updated.clone()
        },
        opened,
        "an unmasked term changed"
    );
    assert_eq!(get_supplier(&app, &partner_id).await.unwrap(), updated);
    let row = supplier_row(&app, &partner_id).await.unwrap();
    assert_eq!(
        row,
        (
            60,
            10,
            Some(10_000),
            Some("EUR".to_owned()),
            Some(5),
            "Reliable, but slow in August.".to_owned(),
            row.6
        )
    );

    // Masked and empty, the credit limit and the rating are cleared.
    let cleared = update_supplier(
        &app,
        pb::SupplierProfile {
            partner_id: partner_id.clone(),
            etag: updated.etag.clone(),
            ..Default::default()
        },
        &["credit_limit", "rating"],
        false,
    )
    .await
    .unwrap();
    assert_eq!(cleared.credit_limit, None);
    assert_eq!(cleared.rating, 0);
    assert_eq!(cleared.lead_time_days, 10);
    let cleared_row = supplier_row(&app, &partner_id).await.unwrap();
    assert_eq!(
        (cleared_row.2, cleared_row.3, cleared_row.4, cleared_row.6),
        (None, None, None, row.6 + 1)
    );
}

#[tokio::test]
async fn a_stale_profile_etag_is_aborted_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(
        &app,
        &[pb::PartnerRole::Supplier, pb::PartnerRole::Customer],
    )
    .await;

    let supplier = open_supplier(&app, &partner_id).await;
    let first = update_supplier(
        &app,
        pb::SupplierProfile {
            rating: 5,
            ..supplier.clone()
        },
        &["rating"],
        false,
    )
    .await
    .unwrap();
    let before = supplier_row(&app, &partner_id).await;
    let status = expect_code(
        update_supplier(
            &app,
            pb::SupplierProfile {
                rating: 1,
                notes: "Second writer".into(),
                ..supplier.clone()
            },
            &["rating", "notes"],
            false,
        )
        .await,
        Code::Aborted,
    );
    assert_eq!(error_reason(&status), "STALE_ETAG");
    // allow_missing does not turn a stale write into a new profile either.
    expect_code(
        update_supplier(
            &app,
            pb::SupplierProfile {
                rating: 1,
                ..supplier
            },
            &["rating"],
            true,
        )
        .await,
        Code::Aborted,
    );
    assert_eq!(supplier_row(&app, &partner_id).await, before);
    assert_eq!(get_supplier(&app, &partner_id).await.unwrap(), first);

    let customer = open_customer(&app, &partner_id).await;
    let first = update_customer(
        &app,
        pb::CustomerProfile {
            payment_terms_days: 7,
            ..customer.clone()
        },
        &["payment_terms_days"],
        false,
    )
    .await
    .unwrap();
    let before = customer_row(&app, &partner_id).await;
    let status = expect_code(
        update_customer(
            &app,
            pb::CustomerProfile {
                payment_terms_days: 90,
                ..customer
            },
            &["payment_terms_days"],
            false,
        )
        .await,
        Code::Aborted,
    );
    assert_eq!(error_reason(&status), "STALE_ETAG");
    assert_eq!(customer_row(&app, &partner_id).await, before);
    assert_eq!(get_customer(&app, &partner_id).await.unwrap(), first);
}

// Validation -------------------------------------------------------------------------------------

#[tokio::test]
async fn out_of_range_supplier_terms_list_every_violation_and_write_nothing() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Supplier]).await;

    let status = expect_code(
        update_supplier(
            &app,
            pb::SupplierProfile {
                partner_id: partner_id.clone(),
                payment_terms_days: 366,
                lead_time_days: -1,
                credit_limit: eur(-1),
                rating: 6,
                notes: "n".repeat(2001),
                ..Default::default()
            },
            &[
                "payment_terms_days",
                "lead_time_days",
                "credit_limit",
                "rating",
                "notes",
            ],
            true,
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "profile.payment_terms_days",
            "profile.lead_time_days",
            "profile.credit_limit.amount_minor",
            "profile.rating",
            "profile.notes"
        ]
    );
    assert_eq!(supplier_row(&app, &partner_id).await, None);
}

#[tokio::test]
async fn out_of_range_customer_terms_list_every_violation_and_write_nothing() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Customer]).await;
    let opened = open_customer(&app, &partner_id).await;
    let before = customer_row(&app, &partner_id).await;

    let status = expect_code(
        update_customer(
            &app,
            pb::CustomerProfile {
                payment_terms_days: -5,
                credit_limit: Some(Money {
                    currency_code: "EURO".into(),
                    amount_minor: 100,
                }),
                rating: -1,
                notes: "bell \u{7}".into(),
                ..opened
            },
            &["payment_terms_days", "credit_limit", "rating", "notes"],
            false,
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "profile.payment_terms_days",
            "profile.credit_limit.currency_code",
            "profile.rating",
            "profile.notes"
        ]
    );
    assert_eq!(customer_row(&app, &partner_id).await, before);
}

#[tokio::test]
async fn days_run_from_zero_to_365() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Supplier]).await;
    open_supplier(&app, &partner_id).await;
    let days = |payment_terms_days, lead_time_days| pb::SupplierProfile {
        partner_id: partner_id.clone(),
        payment_terms_days,
        lead_time_days,
        ..Default::default()
    };
    let both = ["payment_terms_days", "lead_time_days"];

    for value in [0, 1, 365] {
        let profile = update_supplier(&app, days(value, value), &both, false)
            .await
            .unwrap();
        assert_eq!(
            (profile.payment_terms_days, profile.lead_time_days),
            (value, value)
        );
    }
    for value in [-1, 366, i32::MAX, i32::MIN] {
        let status = expect_code(
            update_supplier(&app, days(value, value), &both, false).await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&status),
            ["profile.payment_terms_days", "profile.lead_time_days"],
            "{value} days"
        );
    }
    let row = supplier_row(&app, &partner_id).await.unwrap();
    assert_eq!((row.0, row.1), (365, 365));
}

#[tokio::test]
async fn ratings_run_from_one_to_five_and_zero_means_not_rated() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Customer]).await;
    open_customer(&app, &partner_id).await;
    let rated = |rating| pb::CustomerProfile {
        partner_id: partner_id.clone(),
        rating,
        ..Default::default()
    };

    for rating in 1..=5 {
        let profile = update_customer(&app, rated(rating), &["rating"], false)
            .await
            .unwrap();
        assert_eq!(profile.rating, rating);
        assert_eq!(
            customer_row(&app, &partner_id).await.unwrap().2,
            Some(i16::try_from(rating).unwrap())
        );
    }
    let unrated = update_customer(&app, rated(0), &["rating"], false)
        .await
        .unwrap();
    assert_eq!(unrated.rating, 0);
    assert_eq!(customer_row(&app, &partner_id).await.unwrap().2, None);

    for rating in [-1, 6, 32768, i32::MAX] {
        let status = expect_code(
            update_customer(&app, rated(rating), &["rating"], false).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["profile.rating"], "{rating}");
    }
    assert_eq!(customer_row(&app, &partner_id).await.unwrap().2, None);
}

#[tokio::test]
async fn notes_hold_up_to_two_thousand_characters_not_bytes() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Supplier]).await;
    open_supplier(&app, &partner_id).await;
    let noted = |notes: String| pb::SupplierProfile {
        partner_id: partner_id.clone(),
        notes,
        ..Default::default()
    };

    // 2000 characters of two bytes each, with line breaks.
    let longest = format!("{}\n{}", "ä".repeat(999), "ö".repeat(1000));
    let profile = update_supplier(&app, noted(longest.clone()), &["notes"], false)
        .await
        .unwrap();
    assert_eq!(profile.notes, longest);
    let status = expect_code(
        update_supplier(&app, noted("ä".repeat(2001)), &["notes"], false).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["profile.notes"]);
    assert!(
        !status.message().contains('ä'),
        "the rejected notes were echoed"
    );
    // Empty notes are allowed: they clear the text.
    let profile = update_supplier(&app, noted(String::new()), &["notes"], false)
        .await
        .unwrap();
    assert_eq!(profile.notes, "");
    assert_eq!(supplier_row(&app, &partner_id).await.unwrap().5, "");
}

#[tokio::test]
async fn a_credit_limit_is_a_non_negative_amount_in_minor_units_of_a_known_currency() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Customer]).await;
    open_customer(&app, &partner_id).await;
    let limited = |currency_code: &str, amount_minor| pb::CustomerProfile {
        partner_id: partner_id.clone(),
        credit_limit: Some(Money {
            currency_code: currency_code.to_owned(),
            amount_minor,
        }),
        ..Default::default()
    };

    for (currency, amount, stored) in [
        ("EUR", 0, "EUR"),
        ("usd", 12_345, "USD"),
        (" chf ", i64::MAX, "CHF"),
    ] {
        let profile = update_customer(&app, limited(currency, amount), &["credit_limit"], false)
            .await
            .unwrap();
        assert_eq!(
            profile.credit_limit,
            Some(Money {
                currency_code: stored.to_owned(),
                amount_minor: amount,
            })
        );
    }
    let row = customer_row(&app, &partner_id).await.unwrap();
    assert_eq!(row.1, Some(i64::MAX));

    for (currency, amount, field) in [
        ("EUR", -1, "profile.credit_limit.amount_minor"),
        ("EUR", i64::MIN, "profile.credit_limit.amount_minor"),
        ("", 100, "profile.credit_limit.currency_code"),
        ("EU", 100, "profile.credit_limit.currency_code"),
        ("XYZ", 100, "profile.credit_limit.currency_code"),
        ("€", 100, "profile.credit_limit.currency_code"),
    ] {
        let status = expect_code(
            update_customer(&app, limited(currency, amount), &["credit_limit"], false).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), [field], "{currency:?} {amount}");
    }
    assert_eq!(customer_row(&app, &partner_id).await.unwrap(), row);
}

#[tokio::test]
async fn unknown_mask_paths_and_malformed_ids_or_etags_are_invalid_arguments() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Supplier]).await;
    let opened = open_supplier(&app, &partner_id).await;

    let status = expect_code(
        update_supplier(
            &app,
            opened.clone(),
            &["rating", "partner_id", "etag", "create_time", "bonus"],
            false,
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        [
            "update_mask.paths[1]",
            "update_mask.paths[2]",
            "update_mask.paths[3]",
            "update_mask.paths[4]"
        ]
    );
    let status = expect_code(
        update_supplier(&app, opened.clone(), &[], false).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["update_mask"]);

    let status = expect_code(
        update_supplier(
            &app,
            pb::SupplierProfile {
                partner_id: "acme".into(),
                etag: "1".into(),
                ..Default::default()
            },
            &["notes"],
            false,
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        ["profile.partner_id", "profile.etag"]
    );
    let status = expect_code(get_customer(&app, "").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["partner_id"]);
    let status = expect_code(
        delete_supplier(&app, "acme", "\"one\"").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["partner_id", "etag"]);
    assert_eq!(get_supplier(&app, &partner_id).await.unwrap(), opened);
}

// Deletion ---------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_a_supplier_profile_checks_its_etag_and_then_it_is_gone() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Supplier]).await;
    let opened = open_supplier(&app, &partner_id).await;
    let changed = update_supplier(
        &app,
        pb::SupplierProfile {
            notes: "changed".into(),
            ..opened.clone()
        },
        &["notes"],
        false,
    )
    .await
    .unwrap();

    let status = expect_code(
        delete_supplier(&app, &partner_id, &opened.etag).await,
        Code::Aborted,
    );
    assert_eq!(error_reason(&status), "STALE_ETAG");
    assert!(supplier_row(&app, &partner_id).await.is_some());

    delete_supplier(&app, &partner_id, &changed.etag)
        .await
        .unwrap();
    assert_eq!(supplier_row(&app, &partner_id).await, None);
    let status = expect_code(get_supplier(&app, &partner_id).await, Code::NotFound);
    assert_eq!(
        resource(&status),
        (SUPPLIER_PROFILE.to_owned(), partner_id.clone())
    );
    let status = expect_code(delete_supplier(&app, &partner_id, "").await, Code::NotFound);
    assert_eq!(
        resource(&status),
        (SUPPLIER_PROFILE.to_owned(), partner_id.clone())
    );

    // A new first write starts a fresh profile with default terms.
    let reopened = open_supplier(&app, &partner_id).await;
    assert_eq!(reopened.notes, "");
}

#[tokio::test]
async fn deleting_a_customer_profile_without_an_etag_frees_the_customer_role() {
    let app = TestApp::spawn().await;
    let partner_id = partner_with(&app, &[pb::PartnerRole::Customer]).await;
    open_customer(&app, &partner_id).await;
    let remove_role = || {
        let partner_id = partner_id.clone();
        let app = &app;
        async move {
            app.client()
                .await
                .remove_partner_role(authed(
                    &app.admin_token,
                    pb::RemovePartnerRoleRequest {
                        partner_id,
                        role: pb::PartnerRole::Customer as i32,
                    },
                ))
                .await
                .map(|r| r.into_inner().partner.unwrap())
        }
    };
    let status = expect_code(remove_role().await, Code::FailedPrecondition);
    assert_eq!(
        precondition_failures(&status),
        [("PROFILE_EXISTS".to_owned(), "customer_profile".to_owned())]
    );

    delete_customer(&app, &partner_id, "").await.unwrap();
    assert_eq!(customer_row(&app, &partner_id).await, None);
    expect_code(get_customer(&app, &partner_id).await, Code::NotFound);
    let status = expect_code(delete_customer(&app, &partner_id, "").await, Code::NotFound);
    assert_eq!(
        resource(&status),
        (CUSTOMER_PROFILE.to_owned(), partner_id.clone())
    );
    assert!(remove_role().await.unwrap().roles.is_empty());
}

// Concurrency ------------------------------------------------------------------------------------

#[tokio::test]
async fn concurrent_first_writes_with_allow_missing_create_one_profile() {
    let app = Arc::new(TestApp::spawn().await);
    for round in 0..10 {
        let partner_id = partner_with(&app, &[pb::PartnerRole::Supplier]).await;
        let writes = futures::future::join_all((1..=4).map(|rating| {
            let (app, partner_id) = (app.clone(), partner_id.clone());
            async move {
                update_supplier(
                    &app,
                    pb::SupplierProfile {
                        partner_id,
                        rating,
                        ..Default::default()
                    },
                    &["rating"],
                    true,
                )
                .await
            }
        }))
        .await;
        for write in writes {
            // Each write succeeds; without etags they simply apply in some order.
            if let Err(status) = write {
                panic!("round {round}: {status:?}");
            }
        }
        assert!(supplier_row(&app, &partner_id).await.is_some());
    }
}
