//! Materials end to end: the life of a material (create, read, list, update under an etag, soft
//! delete, undelete), every validation rule with its field path, SKUs unique per tenant among
//! live materials whatever their case, idempotent creates, filters, orders and pages, and the
//! stock rules that hold a material in place: no delete while a warehouse holds it, no receipt
//! once it is discontinued.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, authed, decimal, expect_code, material, preconditions, violated_fields};
use logistics_proto::inventory::v1 as pb;
use pb::inventory_service_client::InventoryServiceClient;
use prost_types::FieldMask;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

type Client = InventoryServiceClient<Channel>;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn pairs(kinds: &[(&str, &str)]) -> Vec<(String, String)> {
    kinds
        .iter()
        .map(|(k, s)| ((*k).to_owned(), (*s).to_owned()))
        .collect()
}

fn skus(materials: &[pb::Material]) -> Vec<&str> {
    materials.iter().map(|m| m.sku.as_str()).collect()
}

fn value(d: &Option<logistics_proto::r#type::v1::Decimal>) -> &str {
    d.as_ref().map_or("<unset>", |d| d.value.as_str())
}

/// Material rows of every tenant, deleted or not.
async fn material_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM inventory.materials")
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// Idempotency claims of every tenant.
async fn claims(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM inventory.idempotency_keys")
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// The stored `(sku, name, version, deleted)` of a material.
async fn stored(app: &TestApp, id: &str) -> (String, String, i32, bool) {
    sqlx::query_as(
        "SELECT sku, name, version, deleted_at IS NOT NULL FROM inventory.materials WHERE id = $1",
    )
    .bind(id.parse::<Uuid>().unwrap())
    .fetch_one(&app.db().await)
    .await
    .unwrap()
}

async fn create(client: &mut Client, token: &str, m: pb::Material) -> Result<pb::Material, Status> {
    client
        .create_material(authed(
            token,
            pb::CreateMaterialRequest {
                request_id: Uuid::now_v7().to_string(),
                material: Some(m),
            },
        ))
        .await
        .map(|r| r.into_inner().material.unwrap())
}

async fn get(client: &mut Client, token: &str, id: &str) -> Result<pb::Material, Status> {
    client
        .get_material(authed(token, pb::GetMaterialRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().material.unwrap())
}

async fn update(
    client: &mut Client,
    token: &str,
    m: pb::Material,
    paths: &[&str],
) -> Result<pb::Material, Status> {
    client
        .update_material(authed(
            token,
            pb::UpdateMaterialRequest {
                material: Some(m),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(|r| r.into_inner().material.unwrap())
}

async fn delete(
    client: &mut Client,
    token: &str,
    id: &str,
    etag: &str,
) -> Result<pb::Material, Status> {
    client
        .delete_material(authed(
            token,
            pb::DeleteMaterialRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().material.unwrap())
}

async fn undelete(
    client: &mut Client,
    token: &str,
    id: &str,
    etag: &str,
) -> Result<pb::Material, Status> {
    client
        .undelete_material(authed(
            token,
            pb::UndeleteMaterialRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().material.unwrap())
}

async fn list(
    client: &mut Client,
    token: &str,
    request: pb::ListMaterialsRequest,
) -> Result<pb::ListMaterialsResponse, Status> {
    client
        .list_materials(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

/// The SKUs of the first page of a listing with `filter`.
async fn filtered(app: &TestApp, filter: &str) -> Result<Vec<String>, Status> {
    list(
        &mut app.client().await,
        &app.admin_token,
        pb::ListMaterialsRequest {
            filter: filter.to_owned(),
            ..Default::default()
        },
    )
    .await
    .map(|r| r.materials.into_iter().map(|m| m.sku).collect())
}

/// Every page of `request`: the size of each page and the ids in the order they came.
async fn every_page(app: &TestApp, request: pb::ListMaterialsRequest) -> (Vec<usize>, Vec<String>) {
    let mut client = app.client().await;
    let mut request = request;
    let (mut sizes, mut ids) = (Vec::new(), Vec::new());
    loop {
        let page = list(&mut client, &app.admin_token, request.clone())
            .await
            .unwrap();
        sizes.push(page.materials.len());
        ids.extend(page.materials.into_iter().map(|m| m.id));
        if page.next_page_token.is_empty() {
            return (sizes, ids);
        }
        assert!(sizes.len() < 10, "paging does not end");
        request.page_token = page.next_page_token;
    }
}

async fn issue(
    app: &TestApp,
    warehouse: &pb::Warehouse,
    m: &pb::Material,
    quantity: &str,
) -> Result<pb::IssueStockResponse, Status> {
    app.client()
        .await
        .issue_stock(authed(
            &app.admin_token,
            pb::IssueStockRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                warehouse_id: warehouse.id.clone(),
                material_id: m.id.clone(),
                quantity: decimal(quantity),
                reference: None,
                reason: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_material_lives_through_create_get_list_update_delete_and_undelete() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;

    let created = create(&mut client, token, material(" steel-rod/12.5 "))
        .await
        .unwrap();
    assert!(created.id.parse::<Uuid>().is_ok(), "{}", created.id);
    assert_eq!(created.sku, "STEEL-ROD/12.5", "trimmed and upper-cased");
    assert_eq!(
        created.name, "Material  steel-rod/12.5",
        "names are trimmed"
    );
    assert_eq!(created.unit, pb::UnitOfMeasure::Piece as i32);
    assert_eq!(
        (
            value(&created.unit_weight_kg),
            value(&created.unit_volume_m3),
            value(&created.reorder_point)
        ),
        ("1.5", "0.002", "10")
    );
    assert_eq!(
        created.status,
        pb::MaterialStatus::Active as i32,
        "active when unset"
    );
    assert_eq!(created.hazard_class, "");
    assert!(created.create_time.is_some() && created.update_time.is_some());
    assert_eq!(created.delete_time, None);
    assert!(!created.etag.is_empty());

    assert_eq!(get(&mut client, token, &created.id).await.unwrap(), created);
    let listed = list(&mut client, token, pb::ListMaterialsRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.materials, std::slice::from_ref(&created));
    assert_eq!(listed.next_page_token, "");

    // Only the masked fields change; the others sent along are ignored.
    let updated = update(
        &mut client,
        token,
        pb::Material {
            id: created.id.clone(),
            etag: created.etag.clone(),
            name: "Steel rod 12.5 mm".into(),
            reorder_point: decimal("12.500"),
            hazard_class: "2.1".into(),
            sku: "IGNORED".into(),
            unit: pb::UnitOfMeasure::Kilogram as i32,
            ..Default::default()
        },
        &["name", "reorder_point", "hazard_class"],
    )
    .await
    .unwrap();
    assert_eq!(updated.name, "Steel rod 12.5 mm");
    assert_eq!(value(&updated.reorder_point), "12.5");
    assert_eq!(updated.hazard_class, "2.1");
    assert_eq!(updated.sku, created.sku);
    assert_eq!(updated.unit, created.unit);
    assert_eq!(value(&updated.unit_weight_kg), "1.5");
    assert_ne!(updated.etag, created.etag);
    assert_eq!(updated.create_time, created.create_time);
    assert_eq!(get(&mut client, token, &created.id).await.unwrap(), updated);

    let deleted = delete(&mut client, token, &created.id, &updated.etag)
        .await
        .unwrap();
    assert!(deleted.delete_time.is_some());
    assert_ne!(deleted.etag, updated.etag);
    let read = get(&mut client, token, &created.id).await.unwrap();
    assert!(
        read.delete_time.is_some(),
        "a deleted material is still read"
    );
    assert!(
        list(&mut client, token, pb::ListMaterialsRequest::default())
            .await
            .unwrap()
            .materials
            .is_empty(),
        "hidden from lists"
    );
    let with_deleted = list(
        &mut client,
        token,
        pb::ListMaterialsRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(with_deleted.materials, std::slice::from_ref(&deleted));

    expect_code(
        delete(&mut client, token, &created.id, "").await,
        Code::NotFound,
    );
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Material {
                id: created.id.clone(),
                name: "Renamed".into(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(
        err.get_details_resource_info().unwrap().resource_type,
        "logistics.inventory.v1.Material"
    );

    let restored = undelete(&mut client, token, &created.id, &deleted.etag)
        .await
        .unwrap();
    assert_eq!(restored.delete_time, None);
    assert_eq!(restored.name, updated.name);
    assert_eq!(
        skus(
            &list(&mut client, token, pb::ListMaterialsRequest::default())
                .await
                .unwrap()
                .materials
        ),
        ["STEEL-ROD/12.5"]
    );
    let err = expect_code(
        undelete(&mut client, token, &created.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("NOT_DELETED", created.id.as_str())])
    );
    assert_eq!(
        stored(&app, &created.id).await,
        (
            "STEEL-ROD/12.5".to_owned(),
            "Steel rod 12.5 mm".to_owned(),
            4,
            false
        )
    );
}

#[tokio::test]
async fn a_stale_etag_is_aborted_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let first = app.material("STEEL-1").await;
    let second = update(
        &mut client,
        token,
        pb::Material {
            id: first.id.clone(),
            etag: first.etag.clone(),
            name: "Second".into(),
            ..Default::default()
        },
        &["name"],
    )
    .await
    .unwrap();

    expect_code(
        update(
            &mut client,
            token,
            pb::Material {
                id: first.id.clone(),
                etag: first.etag.clone(),
                name: "Lost update".into(),
                sku: "STEEL-9".into(),
                ..Default::default()
            },
            &["name", "sku"],
        )
        .await,
        Code::Aborted,
    );
    expect_code(
        delete(&mut client, token, &first.id, &first.etag).await,
        Code::Aborted,
    );
    assert_eq!(
        stored(&app, &first.id).await,
        ("STEEL-1".to_owned(), "Second".to_owned(), 2, false)
    );
    assert_eq!(get(&mut client, token, &first.id).await.unwrap(), second);

    let deleted = delete(&mut client, token, &first.id, &second.etag)
        .await
        .unwrap();
    expect_code(
        undelete(&mut client, token, &first.id, &second.etag).await,
        Code::Aborted,
    );
    assert!(stored(&app, &first.id).await.3, "still deleted");
    undelete(&mut client, token, &first.id, &deleted.etag)
        .await
        .unwrap();

    // An etag this service never issued is not a stale one: it is invalid.
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Material {
                id: first.id.clone(),
                etag: "W/\"1\"".into(),
                name: "x".into(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["material.etag"]);
    let err = expect_code(
        delete(&mut client, token, "nope", "v1").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["id", "etag"]);
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once_with_its_path_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let everything_wrong = pb::Material {
        sku: String::new(),
        name: "  ".into(),
        description: "d".repeat(2001),
        unit: pb::UnitOfMeasure::Unspecified as i32,
        unit_weight_kg: decimal("-1"),
        unit_volume_m3: decimal("0.0000001"),
        hazard_class: "10".into(),
        reorder_point: decimal("-0.5"),
        status: 9,
        ..Default::default()
    };
    let err = expect_code(
        client
            .create_material(authed(
                &app.admin_token,
                pb::CreateMaterialRequest {
                    request_id: "not-a-uuid".into(),
                    material: Some(everything_wrong),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "request_id",
            "material.sku",
            "material.name",
            "material.description",
            "material.unit",
            "material.unit_weight_kg",
            "material.unit_volume_m3",
            "material.hazard_class",
            "material.reorder_point",
            "material.status"
        ]
    );

    let cases: Vec<(pb::Material, Vec<&str>)> = vec![
        (
            pb::Material {
                unit: 42,
                unit_weight_kg: decimal("1.23456"),
                ..material("STEEL 1")
            },
            vec!["material.sku", "material.unit", "material.unit_weight_kg"],
        ),
        (
            pb::Material {
                unit_weight_kg: decimal("1,5"),
                ..material(&"A".repeat(65))
            },
            vec!["material.sku", "material.unit_weight_kg"],
        ),
        (
            pb::Material {
                unit_weight_kg: decimal("1e3"),
                unit_volume_m3: decimal("abc"),
                ..material("-LEADING-DASH")
            },
            vec![
                "material.sku",
                "material.unit_weight_kg",
                "material.unit_volume_m3",
            ],
        ),
        (
            pb::Material {
                hazard_class: "3.3".into(),
                reorder_point: decimal("1.2345"),
                ..material("STEEL#1")
            },
            vec![
                "material.sku",
                "material.hazard_class",
                "material.reorder_point",
            ],
        ),
        (
            pb::Material {
                name: "n".repeat(201),
                status: -1,
                ..material("STEEL-1")
            },
            vec!["material.name", "material.status"],
        ),
    ];
    for (bad, fields) in cases {
        let err = expect_code(
            create(&mut client, &app.admin_token, bad.clone()).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), fields, "{bad:?}");
    }
    // No material at all: the required fields are named.
    let err = expect_code(
        client
            .create_material(authed(
                &app.admin_token,
                pb::CreateMaterialRequest {
                    request_id: Uuid::now_v7().to_string(),
                    material: None,
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["material.sku", "material.name", "material.unit"]
    );
    assert_eq!(material_rows(&app).await, 0);
    assert_eq!(claims(&app).await, 0, "no request id was claimed");

    // The limits themselves are allowed.
    let edge = create(
        &mut client,
        &app.admin_token,
        pb::Material {
            description: "d".repeat(2000),
            unit_weight_kg: decimal("0.0001"),
            unit_volume_m3: decimal("0.000001"),
            hazard_class: "6.1".into(),
            reorder_point: decimal("0.001"),
            status: pb::MaterialStatus::Discontinued as i32,
            ..material(&"A".repeat(64))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (
            value(&edge.unit_weight_kg),
            value(&edge.unit_volume_m3),
            value(&edge.reorder_point)
        ),
        ("0.0001", "0.000001", "0.001")
    );
    assert_eq!(edge.status, pb::MaterialStatus::Discontinued as i32);
}

#[tokio::test]
async fn unset_weight_volume_and_reorder_point_are_zero() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let bare = create(
        &mut client,
        &app.admin_token,
        pb::Material {
            sku: "BOLT-1".into(),
            name: "Bolt".into(),
            unit: pb::UnitOfMeasure::Pallet as i32,
            unit_weight_kg: decimal(" "),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (
            value(&bare.unit_weight_kg),
            value(&bare.unit_volume_m3),
            value(&bare.reorder_point)
        ),
        ("0", "0", "0")
    );
    let row: (String, String, String) = sqlx::query_as(
        "SELECT unit_weight_kg::text, unit_volume_m3::text, reorder_point::text \
         FROM inventory.materials WHERE id = $1",
    )
    .bind(bare.id.parse::<Uuid>().unwrap())
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "0.0000".to_owned(),
            "0.000000".to_owned(),
            "0.000".to_owned()
        )
    );
}

#[tokio::test]
async fn an_update_names_its_fields_in_the_mask_and_validates_the_result() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let steel = app.material("STEEL-1").await;
    let with = |m: pb::Material| pb::Material {
        id: steel.id.clone(),
        etag: steel.etag.clone(),
        ..m
    };

    let err = expect_code(
        update(&mut client, token, with(pb::Material::default()), &[]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["update_mask"]);
    let err = expect_code(
        update(
            &mut client,
            token,
            with(pb::Material::default()),
            &["name", "id", "create_time"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["update_mask.paths[1]", "update_mask.paths[2]"]
    );
    // A masked field left unset is cleared, and a cleared required field is refused.
    let err = expect_code(
        update(
            &mut client,
            token,
            with(pb::Material {
                sku: "bad sku".into(),
                unit_weight_kg: decimal("-2"),
                ..Default::default()
            }),
            &["sku", "name", "unit", "unit_weight_kg", "status"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "material.sku",
            "material.name",
            "material.unit",
            "material.unit_weight_kg",
            "material.status"
        ]
    );
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Material {
                id: "nope".into(),
                etag: "1".into(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["material.id", "material.etag"]);
    expect_code(
        update(
            &mut client,
            token,
            pb::Material {
                id: Uuid::now_v7().to_string(),
                name: "x".into(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(
        stored(&app, &steel.id).await,
        (
            "STEEL-1".to_owned(),
            "Material STEEL-1".to_owned(),
            1,
            false
        )
    );

    // Clearing the optional decimals sets them to 0; the SKU is upper-cased on update too.
    let cleared = update(
        &mut client,
        token,
        with(pb::Material {
            sku: "steel-2".into(),
            status: pb::MaterialStatus::Discontinued as i32,
            ..Default::default()
        }),
        &["sku", "unit_weight_kg", "reorder_point", "status"],
    )
    .await
    .unwrap();
    assert_eq!(cleared.sku, "STEEL-2");
    assert_eq!(value(&cleared.unit_weight_kg), "0");
    assert_eq!(value(&cleared.reorder_point), "0");
    assert_eq!(value(&cleared.unit_volume_m3), "0.002");
    assert_eq!(cleared.status, pb::MaterialStatus::Discontinued as i32);
}

#[tokio::test]
async fn a_sku_is_unique_per_tenant_among_live_materials_whatever_its_case() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let first = app.material("STEEL-1").await;

    let err = expect_code(
        create(&mut client, token, material("steel-1")).await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["material.sku"]);
    for leak in [
        "materials_sku_key",
        "inventory.materials",
        "duplicate key",
        "23505",
    ] {
        assert!(!err.message().contains(leak), "{}", err.message());
        assert!(
            !format!("{:?}", err.get_error_details()).contains(leak),
            "{leak} in {:?}",
            err.get_error_details()
        );
    }
    let copper = app.material("COPPER-1").await;
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Material {
                id: copper.id.clone(),
                sku: "Steel-1".into(),
                ..Default::default()
            },
            &["sku"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["material.sku"]);
    assert_eq!(stored(&app, &copper.id).await.0, "COPPER-1");

    // Deleting frees the SKU; the deleted one cannot come back while it is taken.
    delete(&mut client, token, &first.id, "").await.unwrap();
    let successor = create(&mut client, token, material("steel-1"))
        .await
        .unwrap();
    assert_eq!(successor.sku, "STEEL-1");
    assert_ne!(successor.id, first.id);
    let err = expect_code(
        undelete(&mut client, token, &first.id, "").await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["material.sku"]);
    assert!(stored(&app, &first.id).await.3, "still deleted");

    // Another tenant has SKUs of its own.
    let (_, other_admin) = app.identity.other_tenant("Other Co").await.unwrap();
    let theirs = create(&mut client, &other_admin, material("STEEL-1"))
        .await
        .unwrap();
    assert_eq!(theirs.sku, "STEEL-1");
    assert_eq!(material_rows(&app).await, 4);
}

#[tokio::test]
async fn creating_again_with_the_same_request_id_returns_the_first_material_once() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let request = pb::CreateMaterialRequest {
        request_id: Uuid::now_v7().to_string(),
        material: Some(material("STEEL-1")),
    };
    let first = client
        .create_material(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .create_material(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(material_rows(&app).await, 1);

    let err = expect_code(
        client
            .create_material(authed(
                &app.admin_token,
                pb::CreateMaterialRequest {
                    material: Some(pb::Material {
                        name: "Another name".into(),
                        ..material("STEEL-1")
                    }),
                    ..request.clone()
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["request_id"]);
    assert_eq!(material_rows(&app).await, 1);

    // Without a request id, every create is a new one.
    let err = expect_code(
        client
            .create_material(authed(
                &app.admin_token,
                pb::CreateMaterialRequest {
                    request_id: String::new(),
                    material: Some(material("STEEL-1")),
                },
            ))
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["material.sku"]);
}

#[tokio::test]
async fn materials_are_filtered_by_status_sku_prefix_and_hazard() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    for m in [
        material("STEEL-1"),
        pb::Material {
            hazard_class: "3".into(),
            ..material("STEEL-2")
        },
        pb::Material {
            status: pb::MaterialStatus::Discontinued as i32,
            ..material("COPPER-1")
        },
        pb::Material {
            hazard_class: "8".into(),
            ..material("ZINC-1")
        },
        material("A_B-1"),
        material("A1B-1"),
    ] {
        create(&mut client, token, m).await.unwrap();
    }
    let deleted = app.material("STEEL-3").await;
    delete(&mut client, token, &deleted.id, "").await.unwrap();

    for (filter, expected) in [
        ("status = MATERIAL_STATUS_DISCONTINUED", vec!["COPPER-1"]),
        (
            "status != MATERIAL_STATUS_DISCONTINUED",
            vec!["A1B-1", "A_B-1", "STEEL-1", "STEEL-2", "ZINC-1"],
        ),
        ("sku = \"STEEL-*\"", vec!["STEEL-1", "STEEL-2"]),
        ("sku = \"steel-*\"", vec!["STEEL-1", "STEEL-2"]),
        ("sku = \"steel-1\"", vec!["STEEL-1"]),
        (
            "sku != \"STEEL-*\"",
            vec!["A1B-1", "A_B-1", "COPPER-1", "ZINC-1"],
        ),
        ("sku = \"A_B*\"", vec!["A_B-1"]),
        ("hazardous = true", vec!["STEEL-2", "ZINC-1"]),
        (
            "hazardous = false",
            vec!["A1B-1", "A_B-1", "COPPER-1", "STEEL-1"],
        ),
        (
            "hazardous != true",
            vec!["A1B-1", "A_B-1", "COPPER-1", "STEEL-1"],
        ),
        ("sku = \"STEEL-*\" AND hazardous = true", vec!["STEEL-2"]),
        (
            "status = MATERIAL_STATUS_ACTIVE AND hazardous = false AND sku != \"A*\"",
            vec!["STEEL-1"],
        ),
    ] {
        assert_eq!(filtered(&app, filter).await.unwrap(), expected, "{filter}");
    }
    let with_deleted = list(
        &mut client,
        token,
        pb::ListMaterialsRequest {
            filter: "sku = \"STEEL-*\"".into(),
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        skus(&with_deleted.materials),
        ["STEEL-1", "STEEL-2", "STEEL-3"]
    );

    for bad in [
        "colour = \"red\"",
        "status = ACTIVE",
        "status = MATERIAL_STATUS_UNSPECIFIED",
        "hazardous = maybe",
        "sku ~ \"STEEL\"",
        "sku = \"STEEL-*\" OR hazardous = true",
        "sku =",
    ] {
        let err = expect_code(filtered(&app, bad).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&err), ["filter"], "{bad}");
    }
}

#[tokio::test]
async fn materials_are_ordered_by_sku_name_or_create_time_either_way() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    for (sku, name) in [("B-2", "alpha"), ("A-1", "Charlie"), ("C-3", "bravo")] {
        create(
            &mut client,
            token,
            pb::Material {
                name: name.into(),
                ..material(sku)
            },
        )
        .await
        .unwrap();
    }
    for (order_by, expected) in [
        ("", ["A-1", "B-2", "C-3"]),
        ("sku", ["A-1", "B-2", "C-3"]),
        ("sku asc", ["A-1", "B-2", "C-3"]),
        ("sku desc", ["C-3", "B-2", "A-1"]),
        ("name", ["B-2", "C-3", "A-1"]),
        ("name desc", ["A-1", "C-3", "B-2"]),
        ("create_time", ["B-2", "A-1", "C-3"]),
        ("create_time desc", ["C-3", "A-1", "B-2"]),
    ] {
        let page = list(
            &mut client,
            token,
            pb::ListMaterialsRequest {
                order_by: order_by.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(skus(&page.materials), expected, "{order_by}");
    }
    for bad in ["price", "sku sideways", "sku desc name", "update_time"] {
        let err = expect_code(
            list(
                &mut client,
                token,
                pb::ListMaterialsRequest {
                    order_by: bad.into(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), ["order_by"], "{bad}");
    }
    let err = expect_code(
        list(
            &mut client,
            token,
            pb::ListMaterialsRequest {
                page_size: -1,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["page_size"]);
}

#[tokio::test]
async fn twelve_materials_come_in_pages_of_five_without_duplicates_or_gaps_in_every_order() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    // Created out of SKU order, with names in yet another order.
    let mut created = Vec::new();
    for i in [7, 3, 11, 1, 9, 5, 12, 2, 8, 4, 10, 6] {
        let m = create(
            &mut client,
            token,
            pb::Material {
                name: format!("N{:02}", (i * 5) % 13),
                ..material(&format!("M-{i:02}"))
            },
        )
        .await
        .unwrap();
        created.push(m);
    }
    let ids_by = |key: fn(&pb::Material) -> String, descending: bool| {
        let mut sorted = created.clone();
        sorted.sort_by_key(key);
        if descending {
            sorted.reverse();
        }
        sorted.into_iter().map(|m| m.id).collect::<Vec<_>>()
    };
    for (order_by, expected) in [
        ("", ids_by(|m| m.sku.clone(), false)),
        ("sku desc", ids_by(|m| m.sku.clone(), true)),
        ("name", ids_by(|m| m.name.clone(), false)),
        ("name desc", ids_by(|m| m.name.clone(), true)),
        (
            "create_time",
            created.iter().map(|m| m.id.clone()).collect(),
        ),
        (
            "create_time desc",
            created.iter().rev().map(|m| m.id.clone()).collect(),
        ),
    ] {
        let (sizes, ids) = every_page(
            &app,
            pb::ListMaterialsRequest {
                page_size: 5,
                order_by: order_by.into(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(sizes, [5, 5, 2], "{order_by}");
        assert_eq!(ids, expected, "{order_by}");
    }

    // A token belongs to its listing and cannot be forged or edited.
    let first = list(
        &mut client,
        token,
        pb::ListMaterialsRequest {
            page_size: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let genuine = first.next_page_token;
    let mut edited = genuine.clone().into_bytes();
    edited[0] = if edited[0] == b'e' { b'f' } else { b'e' };
    let edited = String::from_utf8(edited).unwrap();
    for (page_token, order_by, filter) in [
        ("forged".to_owned(), "", ""),
        ("eyJxIjoiIiwiYyI6e319.AAAA".to_owned(), "", ""),
        (edited, "", ""),
        (genuine.clone(), "name", ""),
        (genuine.clone(), "", "hazardous = false"),
    ] {
        let err = expect_code(
            list(
                &mut client,
                token,
                pb::ListMaterialsRequest {
                    page_size: 5,
                    page_token,
                    order_by: order_by.into(),
                    filter: filter.into(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), ["page_token"]);
    }
    let err = expect_code(
        list(
            &mut client,
            token,
            pb::ListMaterialsRequest {
                page_token: genuine.clone(),
                show_deleted: true,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["page_token"]);
    // The page size may change from page to page.
    let rest = list(
        &mut client,
        token,
        pb::ListMaterialsRequest {
            page_size: 100,
            page_token: genuine,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(rest.materials.len(), 7);
    assert_eq!(rest.next_page_token, "");
}

#[tokio::test]
async fn a_material_a_warehouse_still_holds_cannot_be_deleted_until_it_is_issued() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "5").await;
    app.receive(&berlin, &steel, "0.5").await;

    let err = expect_code(
        delete(&mut client, token, &steel.id, &steel.etag).await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&err), pairs(&[("STOCK_REMAINS", "material")]));
    assert!(!stored(&app, &steel.id).await.3);

    issue(&app, &hamburg, &steel, "5").await.unwrap();
    let err = expect_code(
        delete(&mut client, token, &steel.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("STOCK_REMAINS", "material")]),
        "Berlin still holds some"
    );
    issue(&app, &berlin, &steel, "0.5").await.unwrap();
    let deleted = delete(&mut client, token, &steel.id, &steel.etag)
        .await
        .unwrap();
    assert!(deleted.delete_time.is_some());
    assert!(stored(&app, &steel.id).await.3);

    // A deleted material takes no more stock.
    let err = expect_code(
        client
            .receive_stock(authed(
                token,
                pb::ReceiveStockRequest {
                    idempotency_key: Uuid::now_v7().to_string(),
                    warehouse_id: hamburg.id.clone(),
                    material_id: steel.id.clone(),
                    quantity: decimal("1"),
                    reference: None,
                    reason: String::new(),
                },
            ))
            .await,
        Code::NotFound,
    );
    assert_eq!(
        err.get_details_resource_info().unwrap().resource_type,
        "logistics.inventory.v1.Material"
    );
}

#[tokio::test]
async fn a_discontinued_material_is_not_received_but_its_remaining_stock_still_moves() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "10").await;
    update(
        &mut client,
        token,
        pb::Material {
            id: steel.id.clone(),
            status: pb::MaterialStatus::Discontinued as i32,
            ..Default::default()
        },
        &["status"],
    )
    .await
    .unwrap();

    let receipt = pb::ReceiveStockRequest {
        idempotency_key: Uuid::now_v7().to_string(),
        warehouse_id: hamburg.id.clone(),
        material_id: steel.id.clone(),
        quantity: decimal("1"),
        reference: None,
        reason: String::new(),
    };
    let err = expect_code(
        client.receive_stock(authed(token, receipt.clone())).await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("MATERIAL_DISCONTINUED", "material")])
    );
    assert_eq!(app.level(&hamburg, &steel).await.0, "10");

    issue(&app, &hamburg, &steel, "3").await.unwrap();
    assert_eq!(
        app.level(&hamburg, &steel).await,
        ("7".to_owned(), "0".to_owned(), "7".to_owned())
    );

    // Traded again, the refused receipt's key is still free: nothing was claimed.
    update(
        &mut client,
        token,
        pb::Material {
            id: steel.id.clone(),
            status: pb::MaterialStatus::Active as i32,
            ..Default::default()
        },
        &["status"],
    )
    .await
    .unwrap();
    client.receive_stock(authed(token, receipt)).await.unwrap();
    assert_eq!(app.level(&hamburg, &steel).await.0, "8");
    assert_eq!(app.check_ledger().await, (1, 0));
}

/// Waits until some statement of this test's database waits for a lock.
async fn until_a_statement_waits_for_a_lock(db: &sqlx::PgPool) {
    for _ in 0..200 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(db)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no statement ever waited for the lock");
}

#[tokio::test]
async fn a_receipt_racing_a_delete_never_leaves_stock_on_a_deleted_material() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    // The level exists at zero, so the receipt's level update is what waits below.
    app.receive(&hamburg, &steel, "5").await;
    issue(&app, &hamburg, &steel, "5").await.unwrap();

    let db = app.db().await;
    let mut holder = db.begin().await.unwrap();
    sqlx::query(
        "SELECT 1 FROM inventory.stock_levels WHERE warehouse_id = $1 AND material_id = $2 \
         FOR UPDATE",
    )
    .bind(hamburg.id.parse::<Uuid>().unwrap())
    .bind(steel.id.parse::<Uuid>().unwrap())
    .execute(&mut *holder)
    .await
    .unwrap();

    // The receipt finds the material live, then waits for the level.
    let receipt = {
        let mut client = app.client().await;
        let request = pb::ReceiveStockRequest {
            idempotency_key: Uuid::now_v7().to_string(),
            warehouse_id: hamburg.id.clone(),
            material_id: steel.id.clone(),
            quantity: decimal("7"),
            reference: None,
            reason: String::new(),
        };
        let token = app.admin_token.clone();
        tokio::spawn(async move { client.receive_stock(authed(&token, request)).await })
    };
    until_a_statement_waits_for_a_lock(&db).await;
    // Meanwhile the material is deleted (or the delete waits for the receipt, as it may).
    let mut deletion = {
        let mut client = app.client().await;
        let (token, id) = (app.admin_token.clone(), steel.id.clone());
        tokio::spawn(async move { delete(&mut client, &token, &id, "").await })
    };
    let early = tokio::time::timeout(std::time::Duration::from_secs(2), &mut deletion).await;
    holder.rollback().await.unwrap();
    let received = receipt.await.unwrap();
    let deleted = match early {
        Ok(done) => done.unwrap(),
        Err(_) => deletion.await.unwrap(),
    };

    let (is_deleted, on_hand): (bool, String) = sqlx::query_as(
        "SELECT m.deleted_at IS NOT NULL, l.on_hand::text FROM inventory.materials m \
         JOIN inventory.stock_levels l ON l.material_id = m.id WHERE m.id = $1",
    )
    .bind(steel.id.parse::<Uuid>().unwrap())
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(
        !(is_deleted && on_hand != "0.000"),
        "material deleted with {on_hand} on hand (receipt: {:?}, delete: {:?})",
        received.map(|_| "ok"),
        deleted.map(|_| "ok"),
    );
}
