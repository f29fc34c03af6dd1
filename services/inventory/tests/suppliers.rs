//! Material-supplier links end to end: soft delete and restore with etags and masks, every field
//! checked, one live link per material and supplier, at most one preferred supplier per
//! material (in the API, under concurrency and in the database), filters and pages, and a
//! supplier user confined to its own links.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, authed, expect_code, preconditions, violated_fields};
use logistics_proto::identity::v1 as idpb;
use logistics_proto::inventory::v1 as pb;
use logistics_proto::r#type::v1 as types;
use prost_types::FieldMask;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

const LINK_KIND: &str = "logistics.inventory.v1.MaterialSupplier";

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn price(currency: &str, amount_minor: i64) -> Option<types::Money> {
    Some(types::Money {
        currency_code: currency.to_owned(),
        amount_minor,
    })
}

/// A valid link of `material` to `supplier`: 7 days, 12.50 EUR a unit.
fn link(material: &pb::Material, supplier: Uuid, preferred: bool) -> pb::MaterialSupplier {
    pb::MaterialSupplier {
        material_id: material.id.clone(),
        supplier_id: supplier.to_string(),
        supplier_sku: "ACME-4711".to_owned(),
        lead_time_days: 7,
        unit_price: price("EUR", 1250),
        preferred,
        ..Default::default()
    }
}

fn create_request(link: pb::MaterialSupplier) -> pb::CreateMaterialSupplierRequest {
    pb::CreateMaterialSupplierRequest {
        request_id: Uuid::now_v7().to_string(),
        material_supplier: Some(link),
    }
}

async fn create_as(
    app: &TestApp,
    token: &str,
    link: pb::MaterialSupplier,
) -> Result<pb::MaterialSupplier, Status> {
    send_create(app, token, create_request(link)).await
}

async fn send_create(
    app: &TestApp,
    token: &str,
    request: pb::CreateMaterialSupplierRequest,
) -> Result<pb::MaterialSupplier, Status> {
    app.client()
        .await
        .create_material_supplier(authed(token, request))
        .await
        .map(|r| r.into_inner().material_supplier.unwrap())
}

/// Creates a link as the admin.
async fn create(app: &TestApp, link: pb::MaterialSupplier) -> pb::MaterialSupplier {
    create_as(app, &app.admin_token, link).await.unwrap()
}

async fn get_as(app: &TestApp, token: &str, id: &str) -> Result<pb::MaterialSupplier, Status> {
    app.client()
        .await
        .get_material_supplier(authed(
            token,
            pb::GetMaterialSupplierRequest { id: id.to_owned() },
        ))
        .await
        .map(|r| r.into_inner().material_supplier.unwrap())
}

async fn get(app: &TestApp, id: &str) -> pb::MaterialSupplier {
    get_as(app, &app.admin_token, id).await.unwrap()
}

async fn update_as(
    app: &TestApp,
    token: &str,
    link: pb::MaterialSupplier,
    paths: &[&str],
) -> Result<pb::MaterialSupplier, Status> {
    app.client()
        .await
        .update_material_supplier(authed(
            token,
            pb::UpdateMaterialSupplierRequest {
                material_supplier: Some(link),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(|r| r.into_inner().material_supplier.unwrap())
}

async fn update(
    app: &TestApp,
    link: pb::MaterialSupplier,
    paths: &[&str],
) -> Result<pb::MaterialSupplier, Status> {
    update_as(app, &app.admin_token, link, paths).await
}

async fn delete_as(
    app: &TestApp,
    token: &str,
    id: &str,
    etag: &str,
) -> Result<pb::MaterialSupplier, Status> {
    app.client()
        .await
        .delete_material_supplier(authed(
            token,
            pb::DeleteMaterialSupplierRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().material_supplier.unwrap())
}

async fn undelete_as(
    app: &TestApp,
    token: &str,
    id: &str,
    etag: &str,
) -> Result<pb::MaterialSupplier, Status> {
    app.client()
        .await
        .undelete_material_supplier(authed(
            token,
            pb::UndeleteMaterialSupplierRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().material_supplier.unwrap())
}

async fn list_as(
    app: &TestApp,
    token: &str,
    request: pb::ListMaterialSuppliersRequest,
) -> Result<pb::ListMaterialSuppliersResponse, Status> {
    app.client()
        .await
        .list_material_suppliers(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

/// The ids the admin lists with `filter` (live links, one page).
async fn listed(app: &TestApp, filter: &str) -> Vec<String> {
    list_as(
        app,
        &app.admin_token,
        pb::ListMaterialSuppliersRequest {
            filter: filter.to_owned(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .material_suppliers
    .into_iter()
    .map(|l| l.id)
    .collect()
}

/// The live preferred links of `material`, as stored.
async fn preferred_rows(app: &TestApp, material: &pb::Material) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT id::text FROM inventory.material_suppliers \
         WHERE material_id = $1 AND preferred AND deleted_at IS NULL ORDER BY id",
    )
    .bind(material.id.parse::<Uuid>().unwrap())
    .fetch_all(&app.db().await)
    .await
    .unwrap()
}

// Lifecycle -------------------------------------------------------------------------------------

#[tokio::test]
async fn a_link_is_created_changed_by_mask_and_etag_soft_deleted_and_restored() {
    let app = TestApp::spawn().await;
    let steel = app.material("STEEL-1").await;
    let supplier = Uuid::now_v7();
    let request = create_request(pb::MaterialSupplier {
        unit_price: price("eur", 1250),
        ..link(&steel, supplier, false)
    });
    let created = send_create(&app, &app.admin_token, request.clone())
        .await
        .unwrap();
    assert_eq!(created.material_id, steel.id);
    assert_eq!(created.supplier_id, supplier.to_string());
    assert_eq!(created.supplier_sku, "ACME-4711");
    assert_eq!(created.lead_time_days, 7);
    assert_eq!(
        created.unit_price,
        price("EUR", 1250),
        "currency upper-cased"
    );
    assert!(!created.preferred);
    assert!(created.create_time.is_some() && created.delete_time.is_none());
    assert_eq!(created.etag, "\"1\"");
    assert_eq!(get(&app, &created.id).await, created);

    // The same request id answers with the first link; with another body it is refused.
    let retried = send_create(&app, &app.admin_token, request.clone())
        .await
        .unwrap();
    assert_eq!(retried, created);
    let mut changed = request.clone();
    changed.material_supplier.as_mut().unwrap().lead_time_days = 8;
    let err = expect_code(
        send_create(&app, &app.admin_token, changed).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["request_id"]);

    // Only the masked fields change, whatever else the message carries.
    let updated = update(
        &app,
        pb::MaterialSupplier {
            lead_time_days: 14,
            unit_price: price("USD", 999),
            supplier_sku: "IGNORED".to_owned(),
            preferred: true,
            ..created.clone()
        },
        &["lead_time_days", "unit_price"],
    )
    .await
    .unwrap();
    assert_eq!(updated.lead_time_days, 14);
    assert_eq!(updated.unit_price, price("USD", 999));
    assert_eq!(updated.supplier_sku, "ACME-4711");
    assert!(!updated.preferred);
    assert_eq!(updated.etag, "\"2\"");
    let renamed = update(
        &app,
        pb::MaterialSupplier {
            supplier_sku: String::new(),
            etag: String::new(),
            ..updated.clone()
        },
        &["supplier_sku"],
    )
    .await
    .unwrap();
    assert_eq!(
        renamed.supplier_sku, "",
        "an empty etag updates any version"
    );

    // The first etag is stale now, for updates and deletes alike.
    expect_code(
        update(
            &app,
            pb::MaterialSupplier {
                lead_time_days: 1,
                ..created.clone()
            },
            &["lead_time_days"],
        )
        .await,
        Code::Aborted,
    );
    expect_code(
        delete_as(&app, &app.admin_token, &created.id, &created.etag).await,
        Code::Aborted,
    );
    // Masks: required, and only the changeable terms.
    let err = expect_code(
        update(&app, renamed.clone(), &[]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["update_mask"]);
    let err = expect_code(
        update(
            &app,
            renamed.clone(),
            &["material_id", "supplier_id", "preferred"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["update_mask.paths[0]", "update_mask.paths[1]"]
    );

    let deleted = delete_as(&app, &app.admin_token, &renamed.id, &renamed.etag)
        .await
        .unwrap();
    assert!(deleted.delete_time.is_some());
    assert_ne!(deleted.etag, renamed.etag);
    assert!(listed(&app, "").await.is_empty(), "hidden from lists");
    let with_deleted = list_as(
        &app,
        &app.admin_token,
        pb::ListMaterialSuppliersRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .material_suppliers;
    assert_eq!(with_deleted, std::slice::from_ref(&deleted));
    assert_eq!(get(&app, &deleted.id).await, deleted, "still readable");
    // A deleted link takes no changes and cannot be deleted again.
    expect_code(
        update(&app, deleted.clone(), &["lead_time_days"]).await,
        Code::NotFound,
    );
    expect_code(
        delete_as(&app, &app.admin_token, &deleted.id, "").await,
        Code::NotFound,
    );
    expect_code(
        undelete_as(&app, &app.admin_token, &deleted.id, &renamed.etag).await,
        Code::Aborted,
    );

    let restored = undelete_as(&app, &app.admin_token, &deleted.id, &deleted.etag)
        .await
        .unwrap();
    assert!(restored.delete_time.is_none());
    assert_eq!(listed(&app, "").await, [restored.id.as_str()]);
    let err = expect_code(
        undelete_as(&app, &app.admin_token, &restored.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        [("NOT_DELETED".to_owned(), restored.id.clone())]
    );
    expect_code(
        get_as(&app, &app.admin_token, &Uuid::now_v7().to_string()).await,
        Code::NotFound,
    );
    let err = expect_code(
        get_as(&app, &app.admin_token, "not-a-uuid").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["id"]);

    let (rows, lead, version): (i64, i32, i32) = sqlx::query_as(
        "SELECT count(*) OVER (), lead_time_days, version FROM inventory.material_suppliers",
    )
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!((rows, lead), (1, 14));
    assert_eq!(format!("\"{version}\""), restored.etag);
}

#[tokio::test]
async fn every_bad_field_of_a_link_is_named_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let steel = app.material("STEEL-1").await;
    let supplier = Uuid::now_v7();
    let cases: Vec<(pb::MaterialSupplier, Vec<&str>)> = vec![
        (
            pb::MaterialSupplier {
                material_id: "steel".to_owned(),
                supplier_id: String::new(),
                supplier_sku: "X".repeat(65),
                lead_time_days: -1,
                unit_price: None,
                ..Default::default()
            },
            vec![
                "material_supplier.material_id",
                "material_supplier.supplier_id",
                "material_supplier.supplier_sku",
                "material_supplier.lead_time_days",
                "material_supplier.unit_price",
            ],
        ),
        (
            pb::MaterialSupplier {
                supplier_id: "P-1".to_owned(),
                lead_time_days: 366,
                unit_price: price("EURO", 100),
                ..link(&steel, supplier, false)
            },
            vec![
                "material_supplier.supplier_id",
                "material_supplier.lead_time_days",
                "material_supplier.unit_price.currency_code",
            ],
        ),
        (
            pb::MaterialSupplier {
                unit_price: price("EUR", -1),
                ..link(&steel, supplier, false)
            },
            vec!["material_supplier.unit_price.amount_minor"],
        ),
        (
            pb::MaterialSupplier {
                material_id: String::new(),
                ..link(&steel, supplier, false)
            },
            vec!["material_supplier.material_id"],
        ),
    ];
    for (given, fields) in cases {
        let err = expect_code(
            create_as(&app, &app.admin_token, given).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), fields);
    }
    let err = expect_code(
        app.client()
            .await
            .create_material_supplier(authed(
                &app.admin_token,
                pb::CreateMaterialSupplierRequest {
                    request_id: Uuid::now_v7().to_string(),
                    material_supplier: None,
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "material_supplier.material_id",
            "material_supplier.supplier_id",
            "material_supplier.unit_price"
        ]
    );
    // The limits themselves are fine.
    let edge = create(
        &app,
        pb::MaterialSupplier {
            supplier_sku: "X".repeat(64),
            lead_time_days: 365,
            unit_price: price("JPY", 0),
            ..link(&steel, supplier, false)
        },
    )
    .await;
    assert_eq!(edge.lead_time_days, 365);

    // Updates are checked the same way, against the merged link.
    for (changed, paths, fields) in [
        (
            pb::MaterialSupplier {
                lead_time_days: 366,
                ..edge.clone()
            },
            vec!["lead_time_days"],
            vec!["material_supplier.lead_time_days"],
        ),
        (
            pb::MaterialSupplier {
                unit_price: None,
                supplier_sku: "Y".repeat(65),
                ..edge.clone()
            },
            vec!["unit_price", "supplier_sku"],
            vec![
                "material_supplier.supplier_sku",
                "material_supplier.unit_price",
            ],
        ),
        (
            pb::MaterialSupplier {
                unit_price: price("EUR", -5),
                ..edge.clone()
            },
            vec!["unit_price"],
            vec!["material_supplier.unit_price.amount_minor"],
        ),
        (
            pb::MaterialSupplier {
                id: "nope".to_owned(),
                etag: "7".to_owned(),
                ..edge.clone()
            },
            vec!["lead_time_days"],
            vec!["material_supplier.id", "material_supplier.etag"],
        ),
    ] {
        let err = expect_code(update(&app, changed, &paths).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&err), fields);
    }
    let (rows, version): (i64, i32) =
        sqlx::query_as("SELECT count(*) OVER (), version FROM inventory.material_suppliers")
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert_eq!(
        (rows, version),
        (1, 1),
        "only the edge case was written, once"
    );
}

#[tokio::test]
async fn a_link_of_an_unknown_or_deleted_material_is_not_found() {
    let app = TestApp::spawn().await;
    let supplier = Uuid::now_v7();
    let ghost = pb::Material {
        id: Uuid::now_v7().to_string(),
        ..Default::default()
    };
    let err = expect_code(
        create_as(&app, &app.admin_token, link(&ghost, supplier, true)).await,
        Code::NotFound,
    );
    let info = err.get_details_resource_info().unwrap();
    assert_eq!(info.resource_type, "logistics.inventory.v1.Material");
    assert_eq!(info.resource_name, ghost.id);

    let retired = app.material("RETIRED-1").await;
    app.client()
        .await
        .delete_material(authed(
            &app.admin_token,
            pb::DeleteMaterialRequest {
                id: retired.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    let err = expect_code(
        create_as(&app, &app.admin_token, link(&retired, supplier, true)).await,
        Code::NotFound,
    );
    assert_eq!(
        err.get_details_resource_info().unwrap().resource_name,
        retired.id
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM inventory.material_suppliers")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

// One link per pair -----------------------------------------------------------------------------

#[tokio::test]
async fn one_live_link_per_material_and_supplier_and_a_deleted_one_frees_the_pair() {
    let app = TestApp::spawn().await;
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    let supplier = Uuid::now_v7();
    let first = create(&app, link(&steel, supplier, false)).await;
    let err = expect_code(
        create_as(
            &app,
            &app.admin_token,
            pb::MaterialSupplier {
                lead_time_days: 30,
                ..link(&steel, supplier, false)
            },
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["material_supplier.supplier_id"]);
    assert_eq!(
        err.get_details_resource_info().unwrap().resource_type,
        LINK_KIND
    );
    // The same supplier for another material, or another supplier for this one: fine.
    create(&app, link(&copper, supplier, false)).await;
    create(&app, link(&steel, Uuid::now_v7(), false)).await;

    delete_as(&app, &app.admin_token, &first.id, "")
        .await
        .unwrap();
    let again = create(
        &app,
        pb::MaterialSupplier {
            lead_time_days: 30,
            ..link(&steel, supplier, false)
        },
    )
    .await;
    assert_ne!(again.id, first.id);
    let pair: Vec<(bool,)> = sqlx::query_as(
        "SELECT deleted_at IS NULL FROM inventory.material_suppliers \
         WHERE material_id = $1 AND supplier_id = $2 ORDER BY created_at",
    )
    .bind(steel.id.parse::<Uuid>().unwrap())
    .bind(supplier)
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    assert_eq!(pair, [(false,), (true,)]);
    // Nor can the deleted one come back while the pair is taken.
    expect_code(
        undelete_as(&app, &app.admin_token, &first.id, "").await,
        Code::AlreadyExists,
    );
    assert!(get(&app, &first.id).await.delete_time.is_some());
}

#[tokio::test]
async fn restoring_a_link_whose_pair_was_linked_again_names_the_taken_supplier() {
    let app = TestApp::spawn().await;
    let steel = app.material("STEEL-1").await;
    let supplier = Uuid::now_v7();
    let old = create(&app, link(&steel, supplier, false)).await;
    delete_as(&app, &app.admin_token, &old.id, "")
        .await
        .unwrap();
    let new = create(&app, link(&steel, supplier, false)).await;
    let err = expect_code(
        undelete_as(&app, &app.admin_token, &old.id, "").await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["material_supplier.supplier_id"]);
    assert!(get(&app, &old.id).await.delete_time.is_some());
    assert!(get(&app, &new.id).await.delete_time.is_none());
}

// The preferred supplier ------------------------------------------------------------------------

#[tokio::test]
async fn promoting_a_supplier_demotes_the_materials_previous_preferred_one() {
    let app = TestApp::spawn().await;
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    let a = create(&app, link(&steel, Uuid::now_v7(), true)).await;
    let other_material = create(&app, link(&copper, Uuid::now_v7(), true)).await;
    assert!(a.preferred);
    assert_eq!(preferred_rows(&app, &steel).await, [a.id.as_str()]);

    // Creating another preferred link demotes the first.
    let b = create(&app, link(&steel, Uuid::now_v7(), true)).await;
    assert!(b.preferred);
    let a_now = get(&app, &a.id).await;
    assert!(!a_now.preferred);
    assert_ne!(
        a_now.etag, a.etag,
        "the demotion is a change of the demoted link"
    );
    expect_code(
        update(&app, a.clone(), &["lead_time_days"]).await,
        Code::Aborted,
    );
    assert_eq!(preferred_rows(&app, &steel).await, [b.id.as_str()]);

    // A non-preferred link changes without touching the preferred one.
    let c = create(&app, link(&steel, Uuid::now_v7(), false)).await;
    update(
        &app,
        pb::MaterialSupplier {
            lead_time_days: 3,
            ..c.clone()
        },
        &["lead_time_days"],
    )
    .await
    .unwrap();
    assert_eq!(preferred_rows(&app, &steel).await, [b.id.as_str()]);

    // Promoting one by update demotes the current one.
    let a_promoted = update(
        &app,
        pb::MaterialSupplier {
            preferred: true,
            ..a_now
        },
        &["preferred"],
    )
    .await
    .unwrap();
    assert!(a_promoted.preferred);
    assert!(!get(&app, &b.id).await.preferred);
    assert_eq!(preferred_rows(&app, &steel).await, [a.id.as_str()]);
    assert_eq!(
        listed(
            &app,
            &format!("material_id = \"{}\" AND preferred = true", steel.id)
        )
        .await,
        [a.id.as_str()]
    );
    // The other material kept its own.
    assert!(get(&app, &other_material.id).await.preferred);
    assert_eq!(
        preferred_rows(&app, &copper).await,
        [other_material.id.as_str()]
    );

    // Stepping down leaves the material without a preferred supplier.
    update(
        &app,
        pb::MaterialSupplier {
            preferred: false,
            ..a_promoted
        },
        &["preferred"],
    )
    .await
    .unwrap();
    assert!(preferred_rows(&app, &steel).await.is_empty());
}

#[tokio::test]
async fn the_database_refuses_two_live_preferred_links_of_one_material() {
    let app = TestApp::spawn().await;
    let steel = app.material("STEEL-1").await;
    let a = create(&app, link(&steel, Uuid::now_v7(), true)).await;
    let b = create(&app, link(&steel, Uuid::now_v7(), false)).await;
    let db = app.db().await;
    let err = sqlx::query("UPDATE inventory.material_suppliers SET preferred = true WHERE id = $1")
        .bind(b.id.parse::<Uuid>().unwrap())
        .execute(&db)
        .await
        .unwrap_err();
    let db_err = err.as_database_error().unwrap();
    assert_eq!(db_err.code().as_deref(), Some("23505"));
    assert_eq!(
        db_err.constraint(),
        Some("material_suppliers_one_preferred")
    );
    // A deleted preferred link does not count.
    delete_as(&app, &app.admin_token, &a.id, "").await.unwrap();
    let touched =
        sqlx::query("UPDATE inventory.material_suppliers SET preferred = true WHERE id = $1")
            .bind(b.id.parse::<Uuid>().unwrap())
            .execute(&db)
            .await
            .unwrap()
            .rows_affected();
    assert_eq!(touched, 1);
    let preferred: i64 =
        sqlx::query_scalar("SELECT count(*) FROM inventory.material_suppliers WHERE preferred")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(preferred, 2, "one live, one deleted");
}

#[tokio::test]
async fn simultaneous_promotions_leave_exactly_one_preferred_supplier() {
    let app = TestApp::spawn().await;
    let steel = app.material("STEEL-1").await;
    let mut links = Vec::new();
    for _ in 0..8 {
        links.push(create(&app, link(&steel, Uuid::now_v7(), false)).await);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(12));
    let mut calls = Vec::new();
    for current in &links {
        let mut client = app.client().await;
        let token = app.admin_token.clone();
        let barrier = barrier.clone();
        let request = pb::UpdateMaterialSupplierRequest {
            material_supplier: Some(pb::MaterialSupplier {
                preferred: true,
                ..current.clone()
            }),
            update_mask: mask(&["preferred"]),
        };
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            client
                .update_material_supplier(authed(&token, request))
                .await
                .map(|r| r.into_inner().material_supplier.unwrap().id)
        }));
    }
    // New preferred links race the promotions.
    for _ in 0..4 {
        let mut client = app.client().await;
        let token = app.admin_token.clone();
        let barrier = barrier.clone();
        let request = create_request(link(&steel, Uuid::now_v7(), true));
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            client
                .create_material_supplier(authed(&token, request))
                .await
                .map(|r| r.into_inner().material_supplier.unwrap().id)
        }));
    }
    let mut won = Vec::new();
    for result in futures::future::join_all(calls).await {
        match result.unwrap() {
            Ok(id) => won.push(id),
            Err(status) => assert_eq!(status.code(), Code::Aborted, "{status:?}"),
        }
    }
    assert!(!won.is_empty(), "at least one promotion succeeds");
    let preferred = preferred_rows(&app, &steel).await;
    assert_eq!(preferred.len(), 1, "{preferred:?}");
    assert!(
        won.contains(&preferred[0]),
        "the preferred one was promoted by a call that succeeded"
    );
    assert_eq!(
        listed(&app, "preferred = true").await,
        preferred,
        "the API agrees with the rows"
    );
}

#[tokio::test]
async fn restoring_a_formerly_preferred_link_does_not_take_the_role_back() {
    let app = TestApp::spawn().await;
    let steel = app.material("STEEL-1").await;
    let a = create(&app, link(&steel, Uuid::now_v7(), true)).await;
    delete_as(&app, &app.admin_token, &a.id, "").await.unwrap();
    let b = create(&app, link(&steel, Uuid::now_v7(), true)).await;
    let restored = undelete_as(&app, &app.admin_token, &a.id, "")
        .await
        .unwrap();
    assert!(!restored.preferred);
    assert!(get(&app, &b.id).await.preferred);
    assert_eq!(preferred_rows(&app, &steel).await, [b.id.as_str()]);

    // With nobody in the role meanwhile, a restored preferred link keeps it.
    let copper = app.material("COPPER-1").await;
    let c = create(&app, link(&copper, Uuid::now_v7(), true)).await;
    delete_as(&app, &app.admin_token, &c.id, "").await.unwrap();
    let back = undelete_as(&app, &app.admin_token, &c.id, "")
        .await
        .unwrap();
    assert!(back.preferred);
    assert_eq!(preferred_rows(&app, &copper).await, [c.id.as_str()]);
}

// Lists -----------------------------------------------------------------------------------------

#[tokio::test]
async fn links_are_listed_by_material_supplier_and_preferred_and_page_by_page() {
    let app = TestApp::spawn().await;
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    let (p, q, r) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // In creation order: steel-p*, steel-q, steel-r, copper-p, copper-q*, copper-r.
    let mut all = Vec::new();
    for (material, supplier, preferred) in [
        (&steel, p, true),
        (&steel, q, false),
        (&steel, r, false),
        (&copper, p, false),
        (&copper, q, true),
        (&copper, r, false),
    ] {
        all.push(create(&app, link(material, supplier, preferred)).await.id);
    }
    let ids =
        |picked: &[usize]| -> Vec<String> { picked.iter().map(|i| all[*i].clone()).collect() };

    assert_eq!(listed(&app, "").await, ids(&[0, 1, 2, 3, 4, 5]));
    assert_eq!(
        listed(&app, &format!("material_id = \"{}\"", steel.id)).await,
        ids(&[0, 1, 2])
    );
    assert_eq!(
        listed(&app, &format!("supplier_id = \"{p}\"")).await,
        ids(&[0, 3])
    );
    assert_eq!(listed(&app, "preferred = true").await, ids(&[0, 4]));
    assert_eq!(listed(&app, "preferred = false").await, ids(&[1, 2, 3, 5]));
    assert_eq!(
        listed(
            &app,
            &format!("material_id = \"{}\" AND supplier_id = \"{q}\"", copper.id)
        )
        .await,
        ids(&[4])
    );
    assert!(
        listed(&app, &format!("supplier_id = \"{}\"", Uuid::now_v7()))
            .await
            .is_empty()
    );

    for filter in [
        "preferred != true".to_owned(),
        format!("material_id != \"{}\"", steel.id),
        "sku = \"STEEL-1\"".to_owned(),
        "material_id = \"steel\"".to_owned(),
        "preferred = maybe".to_owned(),
        "preferred = true AND preferred = false".to_owned(),
        "preferred = true OR preferred = false".to_owned(),
        "preferred".to_owned(),
    ] {
        let err = expect_code(
            list_as(
                &app,
                &app.admin_token,
                pb::ListMaterialSuppliersRequest {
                    filter: filter.clone(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), ["filter"], "{filter}");
    }
    let err = expect_code(
        list_as(
            &app,
            &app.admin_token,
            pb::ListMaterialSuppliersRequest {
                order_by: "supplier_id".to_owned(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["order_by"]);

    // Pages of four, newest first, deleted ones only when asked for.
    delete_as(&app, &app.admin_token, &all[2], "")
        .await
        .unwrap();
    let page = |token: String, show_deleted: bool| pb::ListMaterialSuppliersRequest {
        page_size: 4,
        page_token: token,
        order_by: "create_time desc".to_owned(),
        show_deleted,
        ..Default::default()
    };
    let first = list_as(&app, &app.admin_token, page(String::new(), false))
        .await
        .unwrap();
    let first_ids: Vec<String> = first
        .material_suppliers
        .iter()
        .map(|l| l.id.clone())
        .collect();
    assert_eq!(first_ids, ids(&[5, 4, 3, 1]));
    assert!(!first.next_page_token.is_empty());
    let second = list_as(
        &app,
        &app.admin_token,
        page(first.next_page_token.clone(), false),
    )
    .await
    .unwrap();
    let second_ids: Vec<String> = second
        .material_suppliers
        .iter()
        .map(|l| l.id.clone())
        .collect();
    assert_eq!(second_ids, ids(&[0]));
    assert!(second.next_page_token.is_empty());
    // A token is bound to its listing.
    let err = expect_code(
        list_as(&app, &app.admin_token, page(first.next_page_token, true)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["page_token"]);
    let with_deleted = list_as(&app, &app.admin_token, page(String::new(), true))
        .await
        .unwrap();
    let with_deleted_ids: Vec<String> = with_deleted
        .material_suppliers
        .iter()
        .map(|l| l.id.clone())
        .collect();
    assert_eq!(with_deleted_ids, ids(&[5, 4, 3, 2]));
    let err = expect_code(
        list_as(
            &app,
            &app.admin_token,
            pb::ListMaterialSuppliersRequest {
                page_size: -1,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["page_size"]);
}

// Who sees which links --------------------------------------------------------------------------

#[tokio::test]
async fn a_supplier_user_sees_only_its_own_links_and_changes_none() {
    let app = TestApp::spawn().await;
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    let (ours, theirs) = (Uuid::now_v7(), Uuid::now_v7());
    let steel_ours = create(&app, link(&steel, ours, true)).await;
    let copper_ours = create(&app, link(&copper, ours, false)).await;
    let steel_theirs = create(&app, link(&steel, theirs, false)).await;
    let supplier = app
        .token("sales@supplier.test", &[idpb::Role::Supplier], Some(ours))
        .await;

    let own = list_as(&app, &supplier, pb::ListMaterialSuppliersRequest::default())
        .await
        .unwrap()
        .material_suppliers;
    assert_eq!(own, [steel_ours.clone(), copper_ours.clone()]);
    for filter in [
        format!("supplier_id = \"{theirs}\""),
        format!(
            "material_id = \"{}\" AND supplier_id = \"{theirs}\"",
            steel.id
        ),
    ] {
        let seen = list_as(
            &app,
            &supplier,
            pb::ListMaterialSuppliersRequest {
                filter,
                show_deleted: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .material_suppliers;
        assert!(seen.is_empty(), "{seen:?}");
    }
    let by_material = list_as(
        &app,
        &supplier,
        pb::ListMaterialSuppliersRequest {
            filter: format!("material_id = \"{}\"", steel.id),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .material_suppliers;
    assert_eq!(by_material, std::slice::from_ref(&steel_ours));
    assert_eq!(
        get_as(&app, &supplier, &steel_ours.id).await.unwrap(),
        steel_ours
    );
    expect_code(
        get_as(&app, &supplier, &steel_theirs.id).await,
        Code::NotFound,
    );

    // Writes, even of its own links, are not a supplier's to make.
    let denied = [
        create_as(&app, &supplier, link(&copper, ours, true))
            .await
            .map(drop),
        update_as(
            &app,
            &supplier,
            pb::MaterialSupplier {
                unit_price: price("EUR", 1),
                ..copper_ours.clone()
            },
            &["unit_price"],
        )
        .await
        .map(drop),
        delete_as(&app, &supplier, &copper_ours.id, "")
            .await
            .map(drop),
        undelete_as(&app, &supplier, &copper_ours.id, "")
            .await
            .map(drop),
        update_as(&app, &supplier, steel_theirs.clone(), &["lead_time_days"])
            .await
            .map(drop),
    ];
    for result in denied {
        let err = expect_code(result, Code::PermissionDenied);
        assert!(
            err.message().contains("inventory.write"),
            "{}",
            err.message()
        );
    }
    // Nor the materials behind them.
    expect_code(
        app.client()
            .await
            .get_material(authed(
                &supplier,
                pb::GetMaterialRequest {
                    id: steel.id.clone(),
                },
            ))
            .await,
        Code::PermissionDenied,
    );

    // A customer user has no business with links at all.
    let customer = app
        .token("buyer@customer.test", &[idpb::Role::Customer], Some(ours))
        .await;
    expect_code(
        list_as(&app, &customer, pb::ListMaterialSuppliersRequest::default()).await,
        Code::PermissionDenied,
    );
    expect_code(
        get_as(&app, &customer, &steel_ours.id).await,
        Code::PermissionDenied,
    );

    // Everything is as it was, and the admin sees every link.
    assert_eq!(get(&app, &copper_ours.id).await, copper_ours);
    assert_eq!(
        listed(&app, "").await,
        [
            steel_ours.id.as_str(),
            copper_ours.id.as_str(),
            steel_theirs.id.as_str()
        ]
    );
}
