//! Warehouses end to end: the life of a warehouse (create, read, list, update under an etag, soft
//! delete, undelete), every validation rule with its field path, codes unique per tenant for
//! good, filters, orders and pages; what a warehouse's state does to stock (no delete while it
//! holds any, no receipts once closed); reading levels and the ledger; refused transfers; and
//! who may do what in which tenant.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::{
    TestApp, authed, decimal, expect_code, material, preconditions, reserve_request,
    violated_fields, warehouse,
};
use logistics_proto::identity::v1 as idpb;
use logistics_proto::inventory::v1 as pb;
use logistics_proto::r#type::v1 as types;
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

fn codes(warehouses: &[pb::Warehouse]) -> Vec<&str> {
    warehouses.iter().map(|w| w.code.as_str()).collect()
}

fn level(on_hand: &str, reserved: &str, available: &str) -> (String, String, String) {
    (
        on_hand.to_owned(),
        reserved.to_owned(),
        available.to_owned(),
    )
}

fn value(d: &Option<types::Decimal>) -> &str {
    d.as_ref().map_or("<unset>", |d| d.value.as_str())
}

/// The `(warehouse, material)` of each level.
fn keys(levels: &[pb::StockLevel]) -> Vec<(String, String)> {
    levels
        .iter()
        .map(|l| (l.warehouse_id.clone(), l.material_id.clone()))
        .collect()
}

fn key(w: &pb::Warehouse, m: &pb::Material) -> (String, String) {
    (w.id.clone(), m.id.clone())
}

/// Asserts a PERMISSION_DENIED that names the missing permission.
#[track_caller]
fn denied<T: std::fmt::Debug>(result: Result<T, Status>, permission: &str) {
    let err = expect_code(result, Code::PermissionDenied);
    let info = err.get_details_error_info().unwrap();
    assert_eq!(
        info.metadata.get("permission").map(String::as_str),
        Some(permission)
    );
}

/// Warehouse rows of every tenant, deleted or not.
async fn warehouse_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM inventory.warehouses")
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// Ledger entries of every tenant.
async fn movement_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM inventory.stock_movements")
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// The stored `(code, name, status, version, deleted)` of a warehouse.
async fn stored(app: &TestApp, id: &str) -> (String, String, String, i32, bool) {
    sqlx::query_as(
        "SELECT code, name, status, version, deleted_at IS NOT NULL \
         FROM inventory.warehouses WHERE id = $1",
    )
    .bind(id.parse::<Uuid>().unwrap())
    .fetch_one(&app.db().await)
    .await
    .unwrap()
}

async fn create(
    client: &mut Client,
    token: &str,
    w: pb::Warehouse,
) -> Result<pb::Warehouse, Status> {
    client
        .create_warehouse(authed(
            token,
            pb::CreateWarehouseRequest {
                request_id: Uuid::now_v7().to_string(),
                warehouse: Some(w),
            },
        ))
        .await
        .map(|r| r.into_inner().warehouse.unwrap())
}

async fn get(client: &mut Client, token: &str, id: &str) -> Result<pb::Warehouse, Status> {
    client
        .get_warehouse(authed(token, pb::GetWarehouseRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().warehouse.unwrap())
}

async fn update(
    client: &mut Client,
    token: &str,
    w: pb::Warehouse,
    paths: &[&str],
) -> Result<pb::Warehouse, Status> {
    client
        .update_warehouse(authed(
            token,
            pb::UpdateWarehouseRequest {
                warehouse: Some(w),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(|r| r.into_inner().warehouse.unwrap())
}

/// Sets the status of `w`, unconditionally.
async fn set_status(app: &TestApp, w: &pb::Warehouse, status: pb::WarehouseStatus) {
    update(
        &mut app.client().await,
        &app.admin_token,
        pb::Warehouse {
            id: w.id.clone(),
            status: status as i32,
            ..Default::default()
        },
        &["status"],
    )
    .await
    .unwrap();
}

async fn delete(
    client: &mut Client,
    token: &str,
    id: &str,
    etag: &str,
) -> Result<pb::Warehouse, Status> {
    client
        .delete_warehouse(authed(
            token,
            pb::DeleteWarehouseRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().warehouse.unwrap())
}

async fn undelete(
    client: &mut Client,
    token: &str,
    id: &str,
    etag: &str,
) -> Result<pb::Warehouse, Status> {
    client
        .undelete_warehouse(authed(
            token,
            pb::UndeleteWarehouseRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().warehouse.unwrap())
}

async fn list(
    client: &mut Client,
    token: &str,
    request: pb::ListWarehousesRequest,
) -> Result<pb::ListWarehousesResponse, Status> {
    client
        .list_warehouses(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

/// The codes of the first page of a listing with `filter` and `order_by`.
async fn listed(app: &TestApp, filter: &str, order_by: &str) -> Result<Vec<String>, Status> {
    list(
        &mut app.client().await,
        &app.admin_token,
        pb::ListWarehousesRequest {
            filter: filter.to_owned(),
            order_by: order_by.to_owned(),
            ..Default::default()
        },
    )
    .await
    .map(|r| r.warehouses.into_iter().map(|w| w.code).collect())
}

async fn receive(
    client: &mut Client,
    token: &str,
    w: &pb::Warehouse,
    m: &pb::Material,
    quantity: &str,
) -> Result<pb::ReceiveStockResponse, Status> {
    client
        .receive_stock(authed(
            token,
            pb::ReceiveStockRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                warehouse_id: w.id.clone(),
                material_id: m.id.clone(),
                quantity: decimal(quantity),
                reference: None,
                reason: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn issue(
    client: &mut Client,
    token: &str,
    w: &pb::Warehouse,
    m: &pb::Material,
    quantity: &str,
) -> Result<pb::IssueStockResponse, Status> {
    client
        .issue_stock(authed(
            token,
            pb::IssueStockRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                warehouse_id: w.id.clone(),
                material_id: m.id.clone(),
                quantity: decimal(quantity),
                reference: None,
                reason: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn transfer(
    client: &mut Client,
    token: &str,
    from: &str,
    to: &str,
    m: &pb::Material,
    quantity: &str,
) -> Result<pb::TransferStockResponse, Status> {
    client
        .transfer_stock(authed(
            token,
            pb::TransferStockRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                from_warehouse_id: from.to_owned(),
                to_warehouse_id: to.to_owned(),
                material_id: m.id.clone(),
                quantity: decimal(quantity),
                reference: None,
                reason: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn get_level(
    client: &mut Client,
    token: &str,
    warehouse_id: &str,
    material_id: &str,
) -> Result<pb::StockLevel, Status> {
    client
        .get_stock_level(authed(
            token,
            pb::GetStockLevelRequest {
                warehouse_id: warehouse_id.to_owned(),
                material_id: material_id.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().level.unwrap())
}

async fn levels(
    client: &mut Client,
    token: &str,
    request: pb::ListStockLevelsRequest,
) -> Result<pb::ListStockLevelsResponse, Status> {
    client
        .list_stock_levels(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

async fn movements(
    client: &mut Client,
    token: &str,
    request: pb::ListStockMovementsRequest,
) -> Result<pb::ListStockMovementsResponse, Status> {
    client
        .list_stock_movements(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_warehouse_lives_through_create_get_list_update_delete_and_undelete() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let created = create(
        &mut client,
        token,
        pb::Warehouse {
            country_code: "de".into(),
            location: Some(types::LatLng {
                latitude: 53.54,
                longitude: 9.99,
            }),
            ..warehouse(" ham-1 ")
        },
    )
    .await
    .unwrap();
    assert!(created.id.parse::<Uuid>().is_ok(), "{}", created.id);
    assert_eq!(created.code, "HAM-1", "trimmed and upper-cased");
    assert_eq!(created.country_code, "DE");
    assert_eq!(
        created.location,
        Some(types::LatLng {
            latitude: 53.54,
            longitude: 9.99
        })
    );
    assert_eq!(
        created.status,
        pb::WarehouseStatus::Active as i32,
        "active when unset"
    );
    assert_eq!(
        (
            created.address_line.as_str(),
            created.city.as_str(),
            created.postal_code.as_str()
        ),
        ("Am Hafen 1", "Hamburg", "20457")
    );
    assert!(created.create_time.is_some() && created.update_time.is_some());
    assert_eq!(created.delete_time, None);

    assert_eq!(get(&mut client, token, &created.id).await.unwrap(), created);
    let page = list(&mut client, token, pb::ListWarehousesRequest::default())
        .await
        .unwrap();
    assert_eq!(page.warehouses, std::slice::from_ref(&created));
    assert_eq!(page.next_page_token, "");

    let updated = update(
        &mut client,
        token,
        pb::Warehouse {
            id: created.id.clone(),
            etag: created.etag.clone(),
            name: "Hamburg harbour".into(),
            postal_code: String::new(),
            code: "IGNORED".into(),
            city: "Ignored".into(),
            ..Default::default()
        },
        &["name", "postal_code", "location"],
    )
    .await
    .unwrap();
    assert_eq!(updated.name, "Hamburg harbour");
    assert_eq!(updated.postal_code, "", "optional, cleared");
    assert_eq!(updated.location, None, "cleared");
    assert_eq!(
        (updated.code.as_str(), updated.city.as_str()),
        ("HAM-1", "Hamburg")
    );
    assert_ne!(updated.etag, created.etag);

    // The first etag is stale now: nothing changes.
    expect_code(
        update(
            &mut client,
            token,
            pb::Warehouse {
                id: created.id.clone(),
                etag: created.etag.clone(),
                name: "Lost update".into(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::Aborted,
    );
    expect_code(
        delete(&mut client, token, &created.id, &created.etag).await,
        Code::Aborted,
    );
    assert_eq!(
        stored(&app, &created.id).await,
        (
            "HAM-1".to_owned(),
            "Hamburg harbour".to_owned(),
            "active".to_owned(),
            2,
            false
        )
    );

    let deleted = delete(&mut client, token, &created.id, &updated.etag)
        .await
        .unwrap();
    assert!(deleted.delete_time.is_some());
    assert!(
        get(&mut client, token, &created.id)
            .await
            .unwrap()
            .delete_time
            .is_some()
    );
    assert!(
        list(&mut client, token, pb::ListWarehousesRequest::default())
            .await
            .unwrap()
            .warehouses
            .is_empty()
    );
    let with_deleted = list(
        &mut client,
        token,
        pb::ListWarehousesRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(with_deleted.warehouses, std::slice::from_ref(&deleted));
    expect_code(
        delete(&mut client, token, &created.id, "").await,
        Code::NotFound,
    );
    expect_code(
        update(
            &mut client,
            token,
            pb::Warehouse {
                id: created.id.clone(),
                name: "x".into(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::NotFound,
    );
    expect_code(
        undelete(&mut client, token, &created.id, &updated.etag).await,
        Code::Aborted,
    );

    let restored = undelete(&mut client, token, &created.id, &deleted.etag)
        .await
        .unwrap();
    assert_eq!(restored.delete_time, None);
    assert_eq!(
        codes(
            &list(&mut client, token, pb::ListWarehousesRequest::default())
                .await
                .unwrap()
                .warehouses
        ),
        ["HAM-1"]
    );
    let err = expect_code(
        undelete(&mut client, token, &created.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("NOT_DELETED", created.id.as_str())])
    );
    expect_code(
        get(&mut client, token, &Uuid::now_v7().to_string()).await,
        Code::NotFound,
    );
    let err = expect_code(
        get(&mut client, token, "HAM-1").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["id"]);
}

#[tokio::test]
async fn every_invalid_warehouse_field_is_reported_at_once_with_its_path_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let err = expect_code(
        client
            .create_warehouse(authed(
                token,
                pb::CreateWarehouseRequest {
                    request_id: "nope".into(),
                    warehouse: Some(pb::Warehouse {
                        code: String::new(),
                        name: " ".into(),
                        address_line: String::new(),
                        city: String::new(),
                        postal_code: "1".repeat(21),
                        country_code: "XX".into(),
                        location: Some(types::LatLng {
                            latitude: 91.0,
                            longitude: 181.0,
                        }),
                        status: 9,
                        ..Default::default()
                    }),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "request_id",
            "warehouse.code",
            "warehouse.name",
            "warehouse.address_line",
            "warehouse.city",
            "warehouse.postal_code",
            "warehouse.country_code",
            "warehouse.location.latitude",
            "warehouse.location.longitude",
            "warehouse.status"
        ]
    );
    let cases: Vec<(pb::Warehouse, Vec<&str>)> = vec![
        (
            pb::Warehouse {
                country_code: "DEU".into(),
                location: Some(types::LatLng {
                    latitude: -90.5,
                    longitude: 0.0,
                }),
                ..warehouse("HAM_1")
            },
            vec![
                "warehouse.code",
                "warehouse.country_code",
                "warehouse.location.latitude",
            ],
        ),
        (
            pb::Warehouse {
                city: "c".repeat(101),
                location: Some(types::LatLng {
                    latitude: 0.0,
                    longitude: -180.1,
                }),
                ..warehouse(&"H".repeat(17))
            },
            vec![
                "warehouse.code",
                "warehouse.city",
                "warehouse.location.longitude",
            ],
        ),
        (
            pb::Warehouse {
                name: "n".repeat(201),
                address_line: "a".repeat(201),
                location: Some(types::LatLng {
                    latitude: f64::NAN,
                    longitude: 0.0,
                }),
                status: -1,
                ..warehouse("-HAM")
            },
            vec![
                "warehouse.code",
                "warehouse.name",
                "warehouse.address_line",
                "warehouse.location.latitude",
                "warehouse.status",
            ],
        ),
        (
            pb::Warehouse {
                country_code: String::new(),
                ..warehouse("HAM 1")
            },
            vec!["warehouse.code", "warehouse.country_code"],
        ),
    ];
    for (bad, fields) in cases {
        let err = expect_code(
            create(&mut client, token, bad.clone()).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), fields, "{bad:?}");
    }
    assert_eq!(warehouse_rows(&app).await, 0);

    // Updates check the merged warehouse the same way.
    let hamburg = app.warehouse("HAM-1").await;
    let with = |w: pb::Warehouse| pb::Warehouse {
        id: hamburg.id.clone(),
        etag: hamburg.etag.clone(),
        ..w
    };
    for (given, paths, fields) in [
        (
            pb::Warehouse {
                country_code: "XX".into(),
                ..Default::default()
            },
            vec!["country_code"],
            vec!["warehouse.country_code"],
        ),
        (
            pb::Warehouse {
                location: Some(types::LatLng {
                    latitude: 91.0,
                    longitude: 10.0,
                }),
                ..Default::default()
            },
            vec!["location"],
            vec!["warehouse.location.latitude"],
        ),
        (
            pb::Warehouse::default(),
            vec!["code", "city", "status"],
            vec!["warehouse.code", "warehouse.city", "warehouse.status"],
        ),
        (
            pb::Warehouse::default(),
            vec!["name", "etag", "delete_time"],
            vec!["update_mask.paths[1]", "update_mask.paths[2]"],
        ),
        (pb::Warehouse::default(), vec![], vec!["update_mask"]),
    ] {
        let err = expect_code(
            update(&mut client, token, with(given), &paths).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), fields, "{paths:?}");
    }
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Warehouse {
                id: "HAM-1".into(),
                etag: "2".into(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["warehouse.id", "warehouse.etag"]);
    assert_eq!(stored(&app, &hamburg.id).await.3, 1, "never changed");
}

#[tokio::test]
async fn a_warehouse_code_is_unique_per_tenant_even_after_the_warehouse_is_deleted() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let hamburg = app.warehouse("HAM-1").await;
    let err = expect_code(
        create(&mut client, token, warehouse("ham-1")).await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["warehouse.code"]);
    for leak in [
        "warehouses_code_key",
        "inventory.warehouses",
        "duplicate key",
    ] {
        assert!(!err.message().contains(leak), "{}", err.message());
        assert!(!format!("{:?}", err.get_error_details()).contains(leak));
    }
    let berlin = app.warehouse("BER-1").await;
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Warehouse {
                id: berlin.id.clone(),
                code: "Ham-1".into(),
                ..Default::default()
            },
            &["code"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["warehouse.code"]);
    assert_eq!(stored(&app, &berlin.id).await.0, "BER-1");

    delete(&mut client, token, &hamburg.id, "").await.unwrap();
    let err = expect_code(
        create(&mut client, token, warehouse("HAM-1")).await,
        Code::AlreadyExists,
    );
    assert_eq!(
        violated_fields(&err),
        ["warehouse.code"],
        "labels with a deleted warehouse's code still exist"
    );
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Warehouse {
                id: berlin.id.clone(),
                code: "HAM-1".into(),
                ..Default::default()
            },
            &["code"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["warehouse.code"]);
    undelete(&mut client, token, &hamburg.id, "").await.unwrap();

    // Another tenant has codes of its own.
    let (_, other_admin) = app.identity.other_tenant("Other Co").await.unwrap();
    assert_eq!(
        create(&mut client, &other_admin, warehouse("HAM-1"))
            .await
            .unwrap()
            .code,
        "HAM-1"
    );
    assert_eq!(warehouse_rows(&app).await, 3);
}

#[tokio::test]
async fn creating_a_warehouse_again_with_the_same_request_id_returns_the_first_one_once() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let request = pb::CreateWarehouseRequest {
        request_id: Uuid::now_v7().to_string(),
        warehouse: Some(warehouse("HAM-1")),
    };
    let first = client
        .create_warehouse(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .create_warehouse(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let err = expect_code(
        client
            .create_warehouse(authed(
                &app.admin_token,
                pb::CreateWarehouseRequest {
                    warehouse: Some(pb::Warehouse {
                        city: "Altona".into(),
                        ..request.warehouse.clone().unwrap()
                    }),
                    ..request
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["request_id"]);
    assert_eq!(warehouse_rows(&app).await, 1);
}

#[tokio::test]
async fn warehouses_are_filtered_by_status_and_country_and_ordered_by_code() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    for (code, country, status) in [
        ("HAM-1", "DE", pb::WarehouseStatus::Active),
        ("BER-1", "DE", pb::WarehouseStatus::Closed),
        ("WAW-1", "PL", pb::WarehouseStatus::Active),
        ("VIE-1", "AT", pb::WarehouseStatus::Closed),
    ] {
        create(
            &mut client,
            token,
            pb::Warehouse {
                country_code: country.into(),
                status: status as i32,
                ..warehouse(code)
            },
        )
        .await
        .unwrap();
    }
    let oslo = create(
        &mut client,
        token,
        pb::Warehouse {
            country_code: "NO".into(),
            ..warehouse("OSL-1")
        },
    )
    .await
    .unwrap();
    delete(&mut client, token, &oslo.id, "").await.unwrap();

    for (filter, order_by, expected) in [
        ("", "", vec!["BER-1", "HAM-1", "VIE-1", "WAW-1"]),
        ("", "code", vec!["BER-1", "HAM-1", "VIE-1", "WAW-1"]),
        ("", "code desc", vec!["WAW-1", "VIE-1", "HAM-1", "BER-1"]),
        (
            "status = WAREHOUSE_STATUS_CLOSED",
            "",
            vec!["BER-1", "VIE-1"],
        ),
        (
            "status != WAREHOUSE_STATUS_CLOSED",
            "code desc",
            vec!["WAW-1", "HAM-1"],
        ),
        ("country_code = \"DE\"", "", vec!["BER-1", "HAM-1"]),
        ("country_code = de", "", vec!["BER-1", "HAM-1"]),
        ("country_code != \"DE\"", "", vec!["VIE-1", "WAW-1"]),
        (
            "status = WAREHOUSE_STATUS_ACTIVE AND country_code = \"DE\"",
            "",
            vec!["HAM-1"],
        ),
        ("country_code = \"NO\"", "", vec![]),
    ] {
        assert_eq!(
            listed(&app, filter, order_by).await.unwrap(),
            expected,
            "{filter} / {order_by}"
        );
    }
    let deleted_too = list(
        &mut client,
        token,
        pb::ListWarehousesRequest {
            filter: "country_code = \"NO\"".into(),
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(codes(&deleted_too.warehouses), ["OSL-1"]);

    for bad in [
        "country_code = \"XX\"",
        "country_code = \"DEU\"",
        "status = CLOSED",
        "status = WAREHOUSE_STATUS_UNSPECIFIED",
        "city = \"Hamburg\"",
        "code = \"HAM-1\"",
    ] {
        let err = expect_code(listed(&app, bad, "").await, Code::InvalidArgument);
        assert_eq!(violated_fields(&err), ["filter"], "{bad}");
    }
    for bad in ["name", "create_time", "code downwards"] {
        let err = expect_code(listed(&app, "", bad).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&err), ["order_by"], "{bad}");
    }
}

#[tokio::test]
async fn warehouses_come_in_pages_without_duplicates_or_gaps() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    for i in [7, 3, 11, 1, 9, 5, 12, 2, 8, 4, 10, 6] {
        app.warehouse(&format!("W-{i:02}")).await;
    }
    let all: Vec<String> = (1..=12).map(|i| format!("W-{i:02}")).collect();
    for (order_by, expected) in [
        ("", all.clone()),
        ("code desc", all.iter().rev().cloned().collect()),
    ] {
        let mut request = pb::ListWarehousesRequest {
            page_size: 5,
            order_by: order_by.into(),
            ..Default::default()
        };
        let (mut sizes, mut seen) = (Vec::new(), Vec::new());
        loop {
            let page = list(&mut client, token, request.clone()).await.unwrap();
            sizes.push(page.warehouses.len());
            seen.extend(page.warehouses.into_iter().map(|w| w.code));
            if page.next_page_token.is_empty() {
                break;
            }
            assert!(sizes.len() < 10, "paging does not end");
            request.page_token = page.next_page_token;
        }
        assert_eq!(sizes, [5, 5, 2], "{order_by}");
        assert_eq!(seen, expected, "{order_by}");
    }

    let token_of_first = list(
        &mut client,
        token,
        pb::ListWarehousesRequest {
            page_size: 5,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .next_page_token;
    for (page_token, order_by, filter) in [
        ("forged.token".to_owned(), "", ""),
        (token_of_first.clone(), "code desc", ""),
        (token_of_first.clone(), "", "country_code = \"DE\""),
    ] {
        let err = expect_code(
            list(
                &mut client,
                token,
                pb::ListWarehousesRequest {
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
}

#[tokio::test]
async fn a_warehouse_that_holds_stock_cannot_be_deleted_until_it_is_emptied() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    app.receive(&hamburg, &steel, "5").await;
    app.receive(&hamburg, &copper, "2").await;
    let shipment = Uuid::now_v7();
    app.reserve(shipment, &[(&hamburg, &copper, "2")])
        .await
        .unwrap();

    let err = expect_code(
        delete(&mut client, token, &hamburg.id, &hamburg.etag).await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("STOCK_REMAINS", "warehouse")])
    );
    assert!(!stored(&app, &hamburg.id).await.4);

    transfer(&mut client, token, &hamburg.id, &berlin.id, &steel, "5")
        .await
        .unwrap();
    let err = expect_code(
        delete(&mut client, token, &hamburg.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("STOCK_REMAINS", "warehouse")]),
        "reserved copper is still there"
    );
    client
        .consume_reservation(authed(
            token,
            pb::ConsumeReservationRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                shipment_id: shipment.to_string(),
                warehouse_id: hamburg.id.clone(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(app.level(&hamburg, &copper).await, level("0", "0", "0"));

    let deleted = delete(&mut client, token, &hamburg.id, &hamburg.etag)
        .await
        .unwrap();
    assert!(deleted.delete_time.is_some());
    assert!(
        !stored(&app, &berlin.id).await.4,
        "Berlin holds the steel and stays"
    );

    // A deleted warehouse neither receives nor takes transfers.
    let err = expect_code(
        receive(&mut client, token, &hamburg, &steel, "1").await,
        Code::NotFound,
    );
    assert_eq!(
        err.get_details_resource_info().unwrap().resource_type,
        "logistics.inventory.v1.Warehouse"
    );
    expect_code(
        transfer(&mut client, token, &berlin.id, &hamburg.id, &steel, "1").await,
        Code::NotFound,
    );
    assert_eq!(app.level(&berlin, &steel).await, level("5", "0", "5"));
    assert_eq!(app.check_ledger().await, (3, 0));
}

#[tokio::test]
async fn a_closed_warehouse_refuses_receipts_and_transfers_in_but_lets_its_stock_go() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "20").await;
    set_status(&app, &hamburg, pb::WarehouseStatus::Closed).await;
    let before = movement_rows(&app).await;

    let err = expect_code(
        receive(&mut client, token, &hamburg, &steel, "1").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("WAREHOUSE_CLOSED", "warehouse")])
    );
    // Both reasons at once.
    let copper = app.material("COPPER-1").await;
    update_material_status(&app, &copper, pb::MaterialStatus::Discontinued).await;
    let err = expect_code(
        receive(&mut client, token, &hamburg, &copper, "1").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[
            ("WAREHOUSE_CLOSED", "warehouse"),
            ("MATERIAL_DISCONTINUED", "material")
        ])
    );
    assert_eq!(movement_rows(&app).await, before, "nothing booked");

    issue(&mut client, token, &hamburg, &steel, "5")
        .await
        .unwrap();
    let moved = transfer(&mut client, token, &hamburg.id, &berlin.id, &steel, "5")
        .await
        .unwrap();
    assert_eq!(value(&moved.from_level.unwrap().on_hand), "10");
    assert_eq!(value(&moved.to_level.unwrap().on_hand), "5");

    let err = expect_code(
        transfer(&mut client, token, &berlin.id, &hamburg.id, &steel, "1").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("WAREHOUSE_CLOSED", "to_warehouse")])
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "0", "10"));
    assert_eq!(app.level(&berlin, &steel).await, level("5", "0", "5"));

    // Open again, it receives.
    set_status(&app, &hamburg, pb::WarehouseStatus::Active).await;
    receive(&mut client, token, &hamburg, &steel, "1")
        .await
        .unwrap();
    assert_eq!(app.level(&hamburg, &steel).await.0, "11");
    assert_eq!(app.check_ledger().await, (2, 0));
}

async fn update_material_status(app: &TestApp, m: &pb::Material, status: pb::MaterialStatus) {
    app.client()
        .await
        .update_material(authed(
            &app.admin_token,
            pb::UpdateMaterialRequest {
                material: Some(pb::Material {
                    id: m.id.clone(),
                    status: status as i32,
                    ..Default::default()
                }),
                update_mask: mask(&["status"]),
            },
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_level_is_read_as_zero_until_it_moves_and_unknown_places_are_not_found() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;

    let untouched = get_level(&mut client, token, &hamburg.id, &steel.id)
        .await
        .unwrap();
    assert_eq!(
        (
            untouched.warehouse_id.as_str(),
            untouched.material_id.as_str()
        ),
        (hamburg.id.as_str(), steel.id.as_str())
    );
    assert_eq!(
        (
            value(&untouched.on_hand),
            value(&untouched.reserved),
            value(&untouched.available)
        ),
        ("0", "0", "0")
    );
    assert!(untouched.below_reorder_point, "0 is at or below 10");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM inventory.stock_levels")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(rows, 0, "reading writes no level");

    let err = expect_code(
        get_level(&mut client, token, &Uuid::now_v7().to_string(), &steel.id).await,
        Code::NotFound,
    );
    assert_eq!(
        err.get_details_resource_info().unwrap().resource_type,
        "logistics.inventory.v1.Warehouse"
    );
    let err = expect_code(
        get_level(&mut client, token, &hamburg.id, &Uuid::now_v7().to_string()).await,
        Code::NotFound,
    );
    assert_eq!(
        err.get_details_resource_info().unwrap().resource_type,
        "logistics.inventory.v1.Material"
    );
    let err = expect_code(
        get_level(&mut client, token, "HAM-1", "").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["warehouse_id", "material_id"]);

    app.receive(&hamburg, &steel, "50").await;
    let stocked = get_level(&mut client, token, &hamburg.id, &steel.id)
        .await
        .unwrap();
    assert_eq!(value(&stocked.available), "50");
    assert!(!stocked.below_reorder_point);
}

#[tokio::test]
async fn levels_are_listed_by_warehouse_by_material_and_below_their_reorder_point() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    // Reorder point 10: 5 is below, 50 is not, 50 with 45 reserved leaves 5 (below), 10 is at it.
    app.receive(&hamburg, &steel, "5").await;
    app.receive(&hamburg, &copper, "50").await;
    app.receive(&berlin, &steel, "50").await;
    app.receive(&berlin, &copper, "10").await;
    app.reserve(Uuid::now_v7(), &[(&berlin, &steel, "45")])
        .await
        .unwrap();

    let everything = levels(&mut client, token, pb::ListStockLevelsRequest::default())
        .await
        .unwrap();
    assert_eq!(everything.levels.len(), 4);
    assert_eq!(everything.next_page_token, "");
    let mut sorted = keys(&everything.levels);
    sorted.sort();
    assert_eq!(
        keys(&everything.levels),
        sorted,
        "by warehouse and material"
    );
    let below: HashSet<_> = everything
        .levels
        .iter()
        .filter(|l| l.below_reorder_point)
        .map(|l| (l.warehouse_id.clone(), l.material_id.clone()))
        .collect();
    let expected_below: HashSet<_> = [
        key(&hamburg, &steel),
        key(&berlin, &steel),
        key(&berlin, &copper),
    ]
    .into_iter()
    .collect();
    assert_eq!(below, expected_below);

    for (request, expected) in [
        (
            pb::ListStockLevelsRequest {
                warehouse_id: hamburg.id.clone(),
                ..Default::default()
            },
            vec![key(&hamburg, &steel), key(&hamburg, &copper)],
        ),
        (
            pb::ListStockLevelsRequest {
                material_id: steel.id.clone(),
                ..Default::default()
            },
            vec![key(&hamburg, &steel), key(&berlin, &steel)],
        ),
        (
            pb::ListStockLevelsRequest {
                below_reorder_point: true,
                ..Default::default()
            },
            expected_below.iter().cloned().collect(),
        ),
        (
            pb::ListStockLevelsRequest {
                warehouse_id: hamburg.id.clone(),
                below_reorder_point: true,
                ..Default::default()
            },
            vec![key(&hamburg, &steel)],
        ),
        (
            pb::ListStockLevelsRequest {
                warehouse_id: hamburg.id.clone(),
                material_id: copper.id.clone(),
                below_reorder_point: true,
                ..Default::default()
            },
            vec![],
        ),
    ] {
        let found: HashSet<_> = keys(
            &levels(&mut client, token, request.clone())
                .await
                .unwrap()
                .levels,
        )
        .into_iter()
        .collect();
        let expected: HashSet<_> = expected.into_iter().collect();
        assert_eq!(found, expected, "{request:?}");
    }
    let berlin_steel = levels(
        &mut client,
        token,
        pb::ListStockLevelsRequest {
            warehouse_id: berlin.id.clone(),
            material_id: steel.id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .levels;
    assert_eq!(
        (
            value(&berlin_steel[0].on_hand),
            value(&berlin_steel[0].reserved),
            value(&berlin_steel[0].available)
        ),
        ("50", "45", "5")
    );

    // Page by page, one at a time: the same levels in the same order.
    let mut request = pb::ListStockLevelsRequest {
        page_size: 1,
        ..Default::default()
    };
    let mut paged = Vec::new();
    loop {
        let page = levels(&mut client, token, request.clone()).await.unwrap();
        assert_eq!(page.levels.len(), 1);
        paged.extend(keys(&page.levels));
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(paged.len() < 10, "paging does not end");
        request.page_token = page.next_page_token;
    }
    assert_eq!(paged, keys(&everything.levels));

    let first = levels(
        &mut client,
        token,
        pb::ListStockLevelsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for bad in [
        pb::ListStockLevelsRequest {
            page_token: first.next_page_token.clone(),
            below_reorder_point: true,
            ..Default::default()
        },
        pb::ListStockLevelsRequest {
            page_token: "forged".into(),
            ..Default::default()
        },
    ] {
        let err = expect_code(levels(&mut client, token, bad).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&err), ["page_token"]);
    }
    let err = expect_code(
        levels(
            &mut client,
            token,
            pb::ListStockLevelsRequest {
                warehouse_id: "HAM-1".into(),
                material_id: "STEEL-1".into(),
                page_size: -5,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["warehouse_id", "material_id", "page_size"]
    );
}

#[tokio::test]
async fn movements_are_found_by_their_reference_and_paged_newest_first() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    let (order_a, order_b) = (Uuid::now_v7().to_string(), Uuid::now_v7().to_string());
    let reference = |kind: &str, id: &str| {
        Some(pb::Reference {
            r#type: kind.to_owned(),
            id: id.to_owned(),
        })
    };
    for (w, m, quantity, r) in [
        (&hamburg, &steel, "5", reference("purchase_order", &order_a)),
        (&berlin, &copper, "3", reference("purchase_order", &order_a)),
        (&hamburg, &steel, "2", reference("purchase_order", &order_b)),
        (&hamburg, &copper, "7", None),
    ] {
        client
            .receive_stock(authed(
                token,
                pb::ReceiveStockRequest {
                    idempotency_key: Uuid::now_v7().to_string(),
                    warehouse_id: w.id.clone(),
                    material_id: m.id.clone(),
                    quantity: decimal(quantity),
                    reference: r,
                    reason: String::new(),
                },
            ))
            .await
            .unwrap();
    }
    // The same id under another type is another document.
    client
        .issue_stock(authed(
            token,
            pb::IssueStockRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                warehouse_id: hamburg.id.clone(),
                material_id: steel.id.clone(),
                quantity: decimal("1"),
                reference: reference("sales_order", &order_a),
                reason: "sold".into(),
            },
        ))
        .await
        .unwrap();

    let changes = |page: &pb::ListStockMovementsResponse| -> Vec<String> {
        page.movements
            .iter()
            .map(|m| value(&m.on_hand_change).to_owned())
            .collect()
    };
    for (request, expected) in [
        (
            pb::ListStockMovementsRequest {
                reference: reference("purchase_order", &order_a),
                ..Default::default()
            },
            vec!["3", "5"],
        ),
        (
            pb::ListStockMovementsRequest {
                reference: reference("purchase_order", &order_a),
                warehouse_id: hamburg.id.clone(),
                ..Default::default()
            },
            vec!["5"],
        ),
        (
            pb::ListStockMovementsRequest {
                reference: reference("sales_order", &order_a),
                ..Default::default()
            },
            vec!["-1"],
        ),
        (
            pb::ListStockMovementsRequest {
                reference: reference("purchase_order", &Uuid::now_v7().to_string()),
                ..Default::default()
            },
            vec![],
        ),
        (
            pb::ListStockMovementsRequest {
                warehouse_id: hamburg.id.clone(),
                material_id: steel.id.clone(),
                ..Default::default()
            },
            vec!["-1", "2", "5"],
        ),
    ] {
        let page = movements(&mut client, token, request.clone())
            .await
            .unwrap();
        assert_eq!(changes(&page), expected, "{request:?}");
    }
    let found = movements(
        &mut client,
        token,
        pb::ListStockMovementsRequest {
            reference: reference("sales_order", &order_a),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .movements;
    assert_eq!(found[0].reference, reference("sales_order", &order_a));
    assert_eq!(found[0].reason, "sold");
    assert_eq!(found[0].kind, pb::MovementKind::Issue as i32);

    // Seven more receipts into Berlin, read three at a time.
    for quantity in 1..=7 {
        app.receive(&berlin, &steel, &quantity.to_string()).await;
    }
    let mut request = pb::ListStockMovementsRequest {
        page_size: 3,
        warehouse_id: berlin.id.clone(),
        material_id: steel.id.clone(),
        ..Default::default()
    };
    let (mut sizes, mut seen, mut times) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let page = movements(&mut client, token, request.clone())
            .await
            .unwrap();
        sizes.push(page.movements.len());
        seen.extend(changes(&page));
        times.extend(
            page.movements
                .iter()
                .map(|m| m.create_time.map(|t| (t.seconds, t.nanos)).unwrap()),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(sizes.len() < 10, "paging does not end");
        request.page_token = page.next_page_token;
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, ["7", "6", "5", "4", "3", "2", "1"], "newest first");
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");

    let err = expect_code(
        movements(
            &mut client,
            token,
            pb::ListStockMovementsRequest {
                reference: reference("Purchase Order", "A-1"),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["reference.type", "reference.id"]);
    let berlin_token = movements(
        &mut client,
        token,
        pb::ListStockMovementsRequest {
            page_token: String::new(),
            ..request
        },
    )
    .await
    .unwrap()
    .next_page_token;
    let err = expect_code(
        movements(
            &mut client,
            token,
            pb::ListStockMovementsRequest {
                page_size: 3,
                warehouse_id: hamburg.id.clone(),
                page_token: berlin_token,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["page_token"],
        "a token of Berlin's steel does not continue Hamburg's ledger"
    );
}

#[tokio::test]
async fn a_transfer_to_the_same_warehouse_or_beyond_the_available_stock_is_refused() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "10").await;
    app.reserve(Uuid::now_v7(), &[(&hamburg, &steel, "4")])
        .await
        .unwrap();
    let before = movement_rows(&app).await;

    let err = expect_code(
        transfer(&mut client, token, &hamburg.id, &hamburg.id, &steel, "1").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["to_warehouse_id"]);
    let err = expect_code(
        transfer(&mut client, token, "", "", &steel, "0").await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["from_warehouse_id", "quantity", "to_warehouse_id"]
    );

    // 10 on hand, 4 reserved: 6 are available, 7 are not.
    let err = expect_code(
        transfer(&mut client, token, &hamburg.id, &berlin.id, &steel, "7").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("INSUFFICIENT_STOCK", "from_stock_level")])
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "4", "6"));
    assert_eq!(app.level(&berlin, &steel).await, level("0", "0", "0"));
    assert!(
        levels(
            &mut client,
            token,
            pb::ListStockLevelsRequest {
                warehouse_id: berlin.id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .levels
        .is_empty(),
        "the refused transfer left no level behind"
    );
    expect_code(
        transfer(
            &mut client,
            token,
            &hamburg.id,
            &Uuid::now_v7().to_string(),
            &steel,
            "1",
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(movement_rows(&app).await, before);

    transfer(&mut client, token, &hamburg.id, &berlin.id, &steel, "6")
        .await
        .unwrap();
    assert_eq!(app.level(&hamburg, &steel).await, level("4", "4", "0"));
    assert_eq!(app.level(&berlin, &steel).await, level("6", "0", "6"));
    assert_eq!(app.check_ledger().await, (2, 0));
}

#[tokio::test]
async fn a_transfer_to_the_same_warehouse_spelled_differently_is_refused_too() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "10").await;
    let before = movement_rows(&app).await;
    let result = transfer(
        &mut client,
        token,
        &hamburg.id,
        &hamburg.id.to_uppercase(),
        &steel,
        "3",
    )
    .await;
    let err = expect_code(result, Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["to_warehouse_id"]);
    assert_eq!(movement_rows(&app).await, before, "no entries were written");
}

#[tokio::test]
async fn a_warehouse_clerk_manages_materials_warehouses_and_stock_but_does_not_reserve() {
    let app = TestApp::spawn().await;
    let clerk = app
        .token("clerk@harness.test", &[idpb::Role::WarehouseClerk], None)
        .await;
    let mut client = app.client().await;
    let steel = client
        .create_material(authed(
            &clerk,
            pb::CreateMaterialRequest {
                request_id: Uuid::now_v7().to_string(),
                material: Some(material("STEEL-1")),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap();
    let hamburg = create(&mut client, &clerk, warehouse("HAM-1"))
        .await
        .unwrap();
    let berlin = create(&mut client, &clerk, warehouse("BER-1"))
        .await
        .unwrap();
    update(
        &mut client,
        &clerk,
        pb::Warehouse {
            id: berlin.id.clone(),
            name: "Berlin Spandau".into(),
            ..Default::default()
        },
        &["name"],
    )
    .await
    .unwrap();
    receive(&mut client, &clerk, &hamburg, &steel, "10")
        .await
        .unwrap();
    issue(&mut client, &clerk, &hamburg, &steel, "1")
        .await
        .unwrap();
    client
        .adjust_stock(authed(
            &clerk,
            pb::AdjustStockRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                warehouse_id: hamburg.id.clone(),
                material_id: steel.id.clone(),
                change: decimal("-1"),
                reason: "count".into(),
                reference: None,
            },
        ))
        .await
        .unwrap();
    transfer(&mut client, &clerk, &hamburg.id, &berlin.id, &steel, "3")
        .await
        .unwrap();
    assert_eq!(app.level(&hamburg, &steel).await, level("5", "0", "5"));

    denied(
        client
            .reserve_stock(authed(
                &clerk,
                reserve_request(Uuid::now_v7(), &[(&hamburg, &steel, "1")]),
            ))
            .await,
        "inventory.stock.reserve",
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("5", "0", "5"));
}

#[tokio::test]
async fn a_dispatcher_reserves_and_reads_but_neither_receives_nor_manages() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "10").await;
    let dispatcher = app
        .token("dispatch@harness.test", &[idpb::Role::Dispatcher], None)
        .await;
    let mut client = app.client().await;

    let shipment = Uuid::now_v7();
    client
        .reserve_stock(authed(
            &dispatcher,
            reserve_request(shipment, &[(&hamburg, &steel, "4")]),
        ))
        .await
        .unwrap();
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "4", "6"));
    client
        .release_reservation(authed(
            &dispatcher,
            pb::ReleaseReservationRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                shipment_id: shipment.to_string(),
                warehouse_id: String::new(),
                material_id: String::new(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "0", "10"));
    assert_eq!(
        get(&mut client, &dispatcher, &hamburg.id)
            .await
            .unwrap()
            .code,
        "HAM-1"
    );
    assert_eq!(
        levels(
            &mut client,
            &dispatcher,
            pb::ListStockLevelsRequest::default()
        )
        .await
        .unwrap()
        .levels
        .len(),
        1
    );

    denied(
        receive(&mut client, &dispatcher, &hamburg, &steel, "1").await,
        "inventory.write",
    );
    denied(
        issue(&mut client, &dispatcher, &hamburg, &steel, "1").await,
        "inventory.write",
    );
    denied(
        create(&mut client, &dispatcher, warehouse("BER-1")).await,
        "inventory.write",
    );
    denied(
        delete(&mut client, &dispatcher, &hamburg.id, "").await,
        "inventory.write",
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "0", "10"));
    assert_eq!(warehouse_rows(&app).await, 1);
}

#[tokio::test]
async fn an_auditor_reads_everything_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "10").await;
    let auditor = app
        .token("audit@harness.test", &[idpb::Role::Auditor], None)
        .await;
    let mut client = app.client().await;

    assert_eq!(
        get(&mut client, &auditor, &hamburg.id).await.unwrap(),
        hamburg
    );
    assert_eq!(
        list(&mut client, &auditor, pb::ListWarehousesRequest::default())
            .await
            .unwrap()
            .warehouses
            .len(),
        1
    );
    let read = client
        .get_material(authed(
            &auditor,
            pb::GetMaterialRequest {
                id: steel.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap();
    assert_eq!(read, steel);
    client
        .list_materials(authed(&auditor, pb::ListMaterialsRequest::default()))
        .await
        .unwrap();
    assert_eq!(
        value(
            &get_level(&mut client, &auditor, &hamburg.id, &steel.id)
                .await
                .unwrap()
                .on_hand
        ),
        "10"
    );
    assert_eq!(
        movements(
            &mut client,
            &auditor,
            pb::ListStockMovementsRequest::default()
        )
        .await
        .unwrap()
        .movements
        .len(),
        1
    );
    client
        .check_stock_ledger(authed(&auditor, pb::CheckStockLedgerRequest {}))
        .await
        .unwrap();

    denied(
        create(&mut client, &auditor, warehouse("BER-1")).await,
        "inventory.write",
    );
    denied(
        update(
            &mut client,
            &auditor,
            pb::Warehouse {
                id: hamburg.id.clone(),
                name: "Mine now".into(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        "inventory.write",
    );
    denied(
        delete(&mut client, &auditor, &hamburg.id, "").await,
        "inventory.write",
    );
    denied(
        client
            .create_material(authed(
                &auditor,
                pb::CreateMaterialRequest {
                    request_id: String::new(),
                    material: Some(material("COPPER-1")),
                },
            ))
            .await,
        "inventory.write",
    );
    denied(
        client
            .delete_material(authed(
                &auditor,
                pb::DeleteMaterialRequest {
                    id: steel.id.clone(),
                    etag: String::new(),
                },
            ))
            .await,
        "inventory.write",
    );
    denied(
        receive(&mut client, &auditor, &hamburg, &steel, "1").await,
        "inventory.write",
    );
    denied(
        issue(&mut client, &auditor, &hamburg, &steel, "1").await,
        "inventory.write",
    );
    denied(
        client
            .reserve_stock(authed(
                &auditor,
                reserve_request(Uuid::now_v7(), &[(&hamburg, &steel, "1")]),
            ))
            .await,
        "inventory.stock.reserve",
    );
    assert_eq!(
        stored(&app, &hamburg.id).await,
        (
            "HAM-1".to_owned(),
            hamburg.name.clone(),
            "active".to_owned(),
            1,
            false
        )
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "0", "10"));
    assert_eq!(warehouse_rows(&app).await, 1);
}

#[tokio::test]
async fn a_fleet_manager_has_no_access_to_inventory_and_strangers_none_at_all() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    let fleet = app
        .token("fleet@harness.test", &[idpb::Role::FleetManager], None)
        .await;
    let mut client = app.client().await;

    denied(
        get(&mut client, &fleet, &hamburg.id).await,
        "inventory.read",
    );
    denied(
        list(&mut client, &fleet, pb::ListWarehousesRequest::default()).await,
        "inventory.read",
    );
    denied(
        client
            .list_materials(authed(&fleet, pb::ListMaterialsRequest::default()))
            .await,
        "inventory.read",
    );
    denied(
        get_level(&mut client, &fleet, &hamburg.id, &steel.id).await,
        "inventory.read",
    );
    denied(
        movements(
            &mut client,
            &fleet,
            pb::ListStockMovementsRequest::default(),
        )
        .await,
        "inventory.read",
    );
    denied(
        receive(&mut client, &fleet, &hamburg, &steel, "1").await,
        "inventory.write",
    );

    for token in ["", "not-a-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        expect_code(
            get(&mut client, token, &hamburg.id).await,
            Code::Unauthenticated,
        );
    }
    expect_code(
        client
            .get_warehouse(pb::GetWarehouseRequest {
                id: hamburg.id.clone(),
            })
            .await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn another_tenant_sees_none_of_these_materials_warehouses_or_stock() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "10").await;
    let (_, other) = app.identity.other_tenant("Other Co").await.unwrap();
    let mut client = app.client().await;

    expect_code(get(&mut client, &other, &hamburg.id).await, Code::NotFound);
    expect_code(
        client
            .get_material(authed(
                &other,
                pb::GetMaterialRequest {
                    id: steel.id.clone(),
                },
            ))
            .await,
        Code::NotFound,
    );
    for show_deleted in [false, true] {
        assert!(
            list(
                &mut client,
                &other,
                pb::ListWarehousesRequest {
                    show_deleted,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .warehouses
            .is_empty()
        );
        assert!(
            client
                .list_materials(authed(
                    &other,
                    pb::ListMaterialsRequest {
                        show_deleted,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .materials
                .is_empty()
        );
    }
    expect_code(
        get_level(&mut client, &other, &hamburg.id, &steel.id).await,
        Code::NotFound,
    );
    assert!(
        levels(&mut client, &other, pb::ListStockLevelsRequest::default())
            .await
            .unwrap()
            .levels
            .is_empty()
    );
    assert!(
        movements(
            &mut client,
            &other,
            pb::ListStockMovementsRequest::default()
        )
        .await
        .unwrap()
        .movements
        .is_empty()
    );
    let check = client
        .check_stock_ledger(authed(&other, pb::CheckStockLedgerRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(check.levels_checked, 0);

    // Nor can it change any of it.
    expect_code(
        update(
            &mut client,
            &other,
            pb::Warehouse {
                id: hamburg.id.clone(),
                name: "Taken".into(),
                ..Default::default()
            },
            &["name"],
        )
        .await,
        Code::NotFound,
    );
    expect_code(
        delete(&mut client, &other, &hamburg.id, "").await,
        Code::NotFound,
    );
    expect_code(
        receive(&mut client, &other, &hamburg, &steel, "1").await,
        Code::NotFound,
    );
    expect_code(
        issue(&mut client, &other, &hamburg, &steel, "1").await,
        Code::NotFound,
    );
    let theirs = create(&mut client, &other, warehouse("BER-1"))
        .await
        .unwrap();
    expect_code(
        transfer(&mut client, &other, &hamburg.id, &theirs.id, &steel, "1").await,
        Code::NotFound,
    );
    expect_code(
        transfer(
            &mut client,
            &app.admin_token,
            &hamburg.id,
            &theirs.id,
            &steel,
            "1",
        )
        .await,
        Code::NotFound,
    );
    let shortfall = expect_code(
        client
            .reserve_stock(authed(
                &other,
                reserve_request(Uuid::now_v7(), &[(&hamburg, &steel, "1")]),
            ))
            .await,
        Code::NotFound,
    );
    assert!(shortfall.get_details_resource_info().is_some());
    assert_eq!(
        stored(&app, &hamburg.id).await,
        (
            "HAM-1".to_owned(),
            hamburg.name.clone(),
            "active".to_owned(),
            1,
            false
        )
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "0", "10"));
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
async fn a_receipt_racing_a_delete_never_leaves_stock_in_a_deleted_warehouse() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    // The level exists at zero, so the receipt's level update is what waits below.
    app.receive(&hamburg, &steel, "5").await;
    issue(
        &mut app.client().await,
        &app.admin_token,
        &hamburg,
        &steel,
        "5",
    )
    .await
    .unwrap();

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

    // The receipt finds the warehouse live and active, then waits for the level.
    let receipt = {
        let mut client = app.client().await;
        let (token, w, m) = (app.admin_token.clone(), hamburg.clone(), steel.clone());
        tokio::spawn(async move { receive(&mut client, &token, &w, &m, "7").await })
    };
    until_a_statement_waits_for_a_lock(&db).await;
    // Meanwhile the warehouse is deleted (or the delete waits for the receipt, as it may).
    let mut deletion = {
        let mut client = app.client().await;
        let (token, id) = (app.admin_token.clone(), hamburg.id.clone());
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
        "SELECT w.deleted_at IS NOT NULL, l.on_hand::text FROM inventory.warehouses w \
         JOIN inventory.stock_levels l ON l.warehouse_id = w.id WHERE w.id = $1",
    )
    .bind(hamburg.id.parse::<Uuid>().unwrap())
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(
        !(is_deleted && on_hand != "0.000"),
        "warehouse deleted with {on_hand} on hand (receipt: {:?}, delete: {:?})",
        received.map(|_| "ok"),
        deleted.map(|_| "ok"),
    );
}
