//! Maintenance records end to end: their life (create, read, list, update under an etag, soft
//! delete, undelete), the truck they hang on, every validation rule with its field path,
//! listing by truck in scheduled order with filters and pages, idempotent creates, and the rule
//! that maintenance and bookings of one truck never overlap.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, authed, driver, expect_code, lorry, preconditions, violated_fields, window};
use logistics_proto::fleet::v1 as pb;
use logistics_proto::identity::v1 as idpb;
use logistics_proto::r#type::v1 as types;
use pb::fleet_service_client::FleetServiceClient;
use prost_types::FieldMask;
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn subjects(kinds: &[(&str, &str)]) -> Vec<(String, String)> {
    kinds
        .iter()
        .map(|(k, s)| ((*k).to_owned(), (*s).to_owned()))
        .collect()
}

fn ids(records: &[pb::MaintenanceRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

fn euros(amount_minor: i64) -> Option<types::Money> {
    Some(types::Money {
        currency_code: "EUR".into(),
        amount_minor,
    })
}

/// A planned record of `kind` for `truck` over `scheduled`.
fn record(
    truck: &pb::Truck,
    kind: pb::MaintenanceKind,
    scheduled: types::TimeWindow,
) -> pb::MaintenanceRecord {
    pb::MaintenanceRecord {
        truck_id: truck.id.clone(),
        kind: kind as i32,
        scheduled_window: Some(scheduled),
        ..Default::default()
    }
}

async fn create_as(
    app: &TestApp,
    token: &str,
    record: pb::MaintenanceRecord,
) -> Result<pb::MaintenanceRecord, Status> {
    app.client()
        .await
        .create_maintenance_record(authed(
            token,
            pb::CreateMaintenanceRecordRequest {
                request_id: Uuid::now_v7().to_string(),
                maintenance_record: Some(record),
            },
        ))
        .await
        .map(|r| r.into_inner().maintenance_record.unwrap())
}

async fn create(app: &TestApp, record: pb::MaintenanceRecord) -> pb::MaintenanceRecord {
    create_as(app, &app.admin_token, record)
        .await
        .expect("create maintenance record")
}

async fn get(
    client: &mut FleetServiceClient<Channel>,
    token: &str,
    id: &str,
) -> Result<pb::MaintenanceRecord, Status> {
    client
        .get_maintenance_record(authed(
            token,
            pb::GetMaintenanceRecordRequest { id: id.to_owned() },
        ))
        .await
        .map(|r| r.into_inner().maintenance_record.unwrap())
}

async fn update(
    client: &mut FleetServiceClient<Channel>,
    token: &str,
    record: pb::MaintenanceRecord,
    paths: &[&str],
) -> Result<pb::MaintenanceRecord, Status> {
    client
        .update_maintenance_record(authed(
            token,
            pb::UpdateMaintenanceRecordRequest {
                maintenance_record: Some(record),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(|r| r.into_inner().maintenance_record.unwrap())
}

async fn delete(
    client: &mut FleetServiceClient<Channel>,
    token: &str,
    id: &str,
    etag: &str,
) -> Result<pb::MaintenanceRecord, Status> {
    client
        .delete_maintenance_record(authed(
            token,
            pb::DeleteMaintenanceRecordRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().maintenance_record.unwrap())
}

async fn undelete(
    client: &mut FleetServiceClient<Channel>,
    token: &str,
    id: &str,
    etag: &str,
) -> Result<pb::MaintenanceRecord, Status> {
    client
        .undelete_maintenance_record(authed(
            token,
            pb::UndeleteMaintenanceRecordRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().maintenance_record.unwrap())
}

async fn list(
    client: &mut FleetServiceClient<Channel>,
    token: &str,
    request: pb::ListMaintenanceRecordsRequest,
) -> Result<pb::ListMaintenanceRecordsResponse, Status> {
    client
        .list_maintenance_records(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

/// The first page of `truck`'s live records matching `filter`.
async fn filtered(
    app: &TestApp,
    truck: &pb::Truck,
    filter: &str,
) -> Result<Vec<pb::MaintenanceRecord>, Status> {
    list(
        &mut app.client().await,
        &app.admin_token,
        pb::ListMaintenanceRecordsRequest {
            truck_id: truck.id.clone(),
            filter: filter.to_owned(),
            ..Default::default()
        },
    )
    .await
    .map(|r| r.maintenance_records)
}

/// Every maintenance row of every tenant, deleted or not.
async fn record_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM fleet.maintenance_records")
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// The stored `(kind, notes, version, deleted)` of a record.
async fn stored(app: &TestApp, id: &str) -> (String, String, i32, bool) {
    sqlx::query_as(
        "SELECT kind, notes, version, deleted_at IS NOT NULL FROM fleet.maintenance_records \
         WHERE id = $1",
    )
    .bind(id.parse::<Uuid>().unwrap())
    .fetch_one(&app.db().await)
    .await
    .unwrap()
}

/// The stored scheduled window of a record, as `[start, end)` in hours after `common::at(0)`.
async fn stored_hours(app: &TestApp, id: &str) -> (i64, i64) {
    let (start, end): (i64, i64) = sqlx::query_as(
        "SELECT extract(epoch FROM lower(scheduled_window))::bigint, \
                extract(epoch FROM upper(scheduled_window))::bigint \
         FROM fleet.maintenance_records WHERE id = $1",
    )
    .bind(id.parse::<Uuid>().unwrap())
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    let base = common::at(0).seconds;
    ((start - base) / 3600, (end - base) / 3600)
}

async fn available(app: &TestApp, scheduled: types::TimeWindow) -> Vec<String> {
    app.client()
        .await
        .find_available_trucks(authed(
            &app.admin_token,
            pb::FindAvailableTrucksRequest {
                window: Some(scheduled),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .trucks
        .into_iter()
        .map(|t| t.id)
        .collect()
}

#[tokio::test]
async fn a_record_lives_through_create_get_update_delete_and_undelete() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let truck = app.create_truck(lorry("B-MR 1")).await;
    let created = create(
        &app,
        pb::MaintenanceRecord {
            odometer_km: 120_000,
            cost: Some(types::Money {
                currency_code: "eur".into(),
                amount_minor: 45_000,
            }),
            notes: "  Oil and filters ".into(),
            ..record(&truck, pb::MaintenanceKind::Service, window(6, 10))
        },
    )
    .await;
    assert!(created.id.parse::<Uuid>().is_ok());
    assert_eq!(created.truck_id, truck.id);
    assert_eq!(created.kind, pb::MaintenanceKind::Service as i32);
    assert_eq!(created.scheduled_window, Some(window(6, 10)));
    assert_eq!(created.perform_time, None);
    assert_eq!(created.odometer_km, 120_000);
    assert_eq!(created.cost, euros(45_000), "currency upper-cased");
    assert_eq!(created.notes, "Oil and filters");
    assert!(created.create_time.is_some() && created.update_time.is_some());
    assert_eq!(created.delete_time, None);
    assert_eq!(get(&mut client, token, &created.id).await.unwrap(), created);

    // Only the masked fields change: the kind sent along is ignored.
    let done = update(
        &mut client,
        token,
        pb::MaintenanceRecord {
            kind: pb::MaintenanceKind::Repair as i32,
            perform_time: Some(common::at(9)),
            cost: euros(51_230),
            notes: "Oil, filters and a brake hose".into(),
            ..created.clone()
        },
        &["perform_time", "cost", "notes"],
    )
    .await
    .unwrap();
    assert_eq!(done.kind, pb::MaintenanceKind::Service as i32);
    assert_eq!(done.perform_time, Some(common::at(9)));
    assert_eq!(done.cost, euros(51_230));
    assert_ne!(done.etag, created.etag);
    assert_eq!(get(&mut client, token, &created.id).await.unwrap(), done);
    // Clearing the cost through the mask.
    let unpriced = update(
        &mut client,
        token,
        pb::MaintenanceRecord {
            cost: None,
            ..done.clone()
        },
        &["cost"],
    )
    .await
    .unwrap();
    assert_eq!(unpriced.cost, None);
    assert_eq!(
        stored(&app, &created.id).await,
        (
            "service".to_owned(),
            "Oil, filters and a brake hose".to_owned(),
            3,
            false
        )
    );

    let deleted = delete(&mut client, token, &created.id, &unpriced.etag)
        .await
        .unwrap();
    assert!(deleted.delete_time.is_some());
    assert_eq!(
        get(&mut client, token, &created.id).await.unwrap(),
        deleted,
        "a deleted record can still be read"
    );
    assert!(filtered(&app, &truck, "").await.unwrap().is_empty());
    let shown = list(
        &mut client,
        token,
        pb::ListMaintenanceRecordsRequest {
            truck_id: truck.id.clone(),
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(shown.maintenance_records, std::slice::from_ref(&deleted));
    expect_code(
        delete(&mut client, token, &created.id, "").await,
        Code::NotFound,
    );
    expect_code(
        update(&mut client, token, deleted.clone(), &["notes"]).await,
        Code::NotFound,
    );

    let restored = undelete(&mut client, token, &created.id, &deleted.etag)
        .await
        .unwrap();
    assert_eq!(restored.delete_time, None);
    assert_eq!(
        filtered(&app, &truck, "").await.unwrap(),
        std::slice::from_ref(&restored)
    );
    let live = expect_code(
        undelete(&mut client, token, &created.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&live),
        subjects(&[("NOT_DELETED", created.id.as_str())])
    );
    assert_eq!(stored(&app, &created.id).await.2, 5);
    assert_eq!(record_rows(&app).await, 1);
}

#[tokio::test]
async fn a_stale_etag_aborts_maintenance_changes_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let truck = app.create_truck(lorry("B-ME 1")).await;
    let created = create(
        &app,
        record(&truck, pb::MaintenanceKind::Inspection, window(6, 8)),
    )
    .await;
    let current = update(
        &mut client,
        token,
        pb::MaintenanceRecord {
            notes: "first".into(),
            ..created.clone()
        },
        &["notes"],
    )
    .await
    .unwrap();

    let err = expect_code(
        update(
            &mut client,
            token,
            pb::MaintenanceRecord {
                notes: "second".into(),
                ..created.clone()
            },
            &["notes"],
        )
        .await,
        Code::Aborted,
    );
    assert!(err.message().contains("etag"), "{}", err.message());
    expect_code(
        delete(&mut client, token, &created.id, &created.etag).await,
        Code::Aborted,
    );
    let unchanged = ("inspection".to_owned(), "first".to_owned(), 2, false);
    assert_eq!(stored(&app, &created.id).await, unchanged);

    let deleted = delete(&mut client, token, &created.id, &current.etag)
        .await
        .unwrap();
    expect_code(
        undelete(&mut client, token, &created.id, &current.etag).await,
        Code::Aborted,
    );
    assert!(stored(&app, &created.id).await.3, "still deleted");
    undelete(&mut client, token, &created.id, &deleted.etag)
        .await
        .unwrap();

    let err = expect_code(
        update(
            &mut client,
            token,
            pb::MaintenanceRecord {
                etag: "W/\"4\"".into(),
                ..current
            },
            &["notes"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["maintenance_record.etag"]);
}

#[tokio::test]
async fn records_of_a_deleted_truck_are_not_found_until_it_is_restored() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let truck = app.create_truck(lorry("B-MD 1")).await;
    let kept = create(
        &app,
        record(&truck, pb::MaintenanceKind::Tyres, window(6, 8)),
    )
    .await;
    let dropped = create(
        &app,
        record(&truck, pb::MaintenanceKind::Repair, window(30, 32)),
    )
    .await;
    delete(&mut client, token, &dropped.id, "").await.unwrap();
    client
        .delete_truck(authed(
            token,
            pb::DeleteTruckRequest {
                id: truck.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();

    expect_code(get(&mut client, token, &kept.id).await, Code::NotFound);
    expect_code(get(&mut client, token, &dropped.id).await, Code::NotFound);
    expect_code(filtered(&app, &truck, "").await, Code::NotFound);
    expect_code(
        update(
            &mut client,
            token,
            pb::MaintenanceRecord {
                notes: "while the truck is gone".into(),
                ..kept.clone()
            },
            &["notes"],
        )
        .await,
        Code::NotFound,
    );
    expect_code(
        delete(&mut client, token, &kept.id, "").await,
        Code::NotFound,
    );
    expect_code(
        undelete(&mut client, token, &dropped.id, "").await,
        Code::NotFound,
    );
    expect_code(
        create_as(
            &app,
            token,
            record(&truck, pb::MaintenanceKind::Service, window(50, 52)),
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(
        stored(&app, &kept.id).await,
        ("tyres".into(), String::new(), 1, false)
    );
    assert_eq!(record_rows(&app).await, 2);

    client
        .undelete_truck(authed(
            token,
            pb::UndeleteTruckRequest {
                id: truck.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(get(&mut client, token, &kept.id).await.unwrap(), kept);
    assert_eq!(
        ids(&filtered(&app, &truck, "").await.unwrap()),
        [kept.id.as_str()]
    );
}

#[tokio::test]
async fn unknown_and_malformed_record_and_truck_ids_are_not_found_and_invalid() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let unknown = Uuid::now_v7().to_string();
    let err = expect_code(get(&mut client, token, &unknown).await, Code::NotFound);
    assert!(
        err.message().contains("MaintenanceRecord"),
        "{}",
        err.message()
    );
    expect_code(
        delete(&mut client, token, &unknown, "").await,
        Code::NotFound,
    );
    expect_code(
        update(
            &mut client,
            token,
            pb::MaintenanceRecord {
                id: unknown.clone(),
                ..Default::default()
            },
            &["notes"],
        )
        .await,
        Code::NotFound,
    );
    let ghost = pb::Truck {
        id: unknown.clone(),
        ..Default::default()
    };
    let err = expect_code(
        create_as(
            &app,
            token,
            record(&ghost, pb::MaintenanceKind::Service, window(1, 2)),
        )
        .await,
        Code::NotFound,
    );
    assert!(err.message().contains("Truck"), "{}", err.message());
    expect_code(filtered(&app, &ghost, "").await, Code::NotFound);

    let err = expect_code(
        get(&mut client, token, "rec-1").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["id"]);
    let err = expect_code(
        list(
            &mut client,
            token,
            pb::ListMaintenanceRecordsRequest {
                page_size: -1,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["truck_id", "page_size"]);
    assert_eq!(record_rows(&app).await, 0);
}

#[tokio::test]
async fn every_bad_record_field_is_reported_at_once_in_order_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-MV 1")).await;
    let mut client = app.client().await;
    let all_wrong = pb::CreateMaintenanceRecordRequest {
        request_id: "again-1".into(),
        maintenance_record: Some(pb::MaintenanceRecord {
            truck_id: String::new(),
            kind: pb::MaintenanceKind::Unspecified as i32,
            scheduled_window: None,
            perform_time: Some(prost_types::Timestamp {
                seconds: -1,
                nanos: 0,
            }),
            odometer_km: -1,
            cost: Some(types::Money {
                currency_code: "EURO".into(),
                amount_minor: 100,
            }),
            notes: "n".repeat(2001),
            ..Default::default()
        }),
    };
    let err = expect_code(
        client
            .create_maintenance_record(authed(&app.admin_token, all_wrong))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "request_id",
            "maintenance_record.truck_id",
            "maintenance_record.kind",
            "maintenance_record.scheduled_window",
            "maintenance_record.perform_time",
            "maintenance_record.odometer_km",
            "maintenance_record.cost.currency_code",
            "maintenance_record.notes",
        ]
    );

    let also_wrong = pb::MaintenanceRecord {
        truck_id: "truck-1".into(),
        kind: 17,
        cost: euros(-1),
        notes: "bell\u{7}".into(),
        ..record(&truck, pb::MaintenanceKind::Service, window(10, 8))
    };
    let err = expect_code(
        create_as(&app, &app.admin_token, also_wrong).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "maintenance_record.truck_id",
            "maintenance_record.kind",
            "maintenance_record.scheduled_window.end_time",
            "maintenance_record.cost.amount_minor",
            "maintenance_record.notes",
        ]
    );

    let half_open = pb::MaintenanceRecord {
        scheduled_window: Some(types::TimeWindow {
            start_time: None,
            end_time: Some(common::at(3)),
        }),
        ..record(&truck, pb::MaintenanceKind::Service, window(0, 1))
    };
    let err = expect_code(
        create_as(&app, &app.admin_token, half_open).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["maintenance_record.scheduled_window.start_time"]
    );
    let empty = record(&truck, pb::MaintenanceKind::Service, window(4, 4));
    let err = expect_code(
        create_as(&app, &app.admin_token, empty).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["maintenance_record.scheduled_window.end_time"]
    );
    let err = expect_code(
        client
            .create_maintenance_record(authed(
                &app.admin_token,
                pb::CreateMaintenanceRecordRequest {
                    request_id: String::new(),
                    maintenance_record: None,
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "maintenance_record.truck_id",
            "maintenance_record.kind",
            "maintenance_record.scheduled_window",
        ]
    );
    assert_eq!(record_rows(&app).await, 0);

    // The limits themselves are fine: 2000 characters of notes, a free job.
    let at_limits = create(
        &app,
        pb::MaintenanceRecord {
            cost: euros(0),
            notes: "n".repeat(2000),
            ..record(&truck, pb::MaintenanceKind::Service, window(0, 1))
        },
    )
    .await;
    assert_eq!(at_limits.cost, euros(0));
    assert_eq!(record_rows(&app).await, 1);
}

#[tokio::test]
async fn an_update_needs_a_mask_of_updatable_fields_and_valid_new_values() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let truck = app.create_truck(lorry("B-MU 1")).await;
    let other = app.create_truck(lorry("B-MU 2")).await;
    let created = create(
        &app,
        record(&truck, pb::MaintenanceKind::Service, window(6, 8)),
    )
    .await;

    let err = expect_code(
        update(&mut client, token, created.clone(), &[]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["update_mask"]);
    // A record never moves to another truck.
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::MaintenanceRecord {
                truck_id: other.id.clone(),
                ..created.clone()
            },
            &["notes", "truck_id", "delete_time"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["update_mask.paths[1]", "update_mask.paths[2]"]
    );
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::MaintenanceRecord {
                kind: 0,
                scheduled_window: Some(window(9, 7)),
                odometer_km: -5,
                cost: Some(types::Money {
                    currency_code: String::new(),
                    amount_minor: 10,
                }),
                ..created.clone()
            },
            &["kind", "scheduled_window", "odometer_km", "cost"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "maintenance_record.kind",
            "maintenance_record.scheduled_window.end_time",
            "maintenance_record.odometer_km",
            "maintenance_record.cost.currency_code",
        ]
    );
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::MaintenanceRecord {
                scheduled_window: None,
                ..created.clone()
            },
            &["scheduled_window"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["maintenance_record.scheduled_window"]
    );
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::MaintenanceRecord {
                id: String::new(),
                ..created.clone()
            },
            &["notes"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["maintenance_record.id"]);
    assert_eq!(
        stored(&app, &created.id).await,
        ("service".into(), String::new(), 1, false)
    );
    assert_eq!(stored_hours(&app, &created.id).await, (6, 8));

    let moved = update(
        &mut client,
        token,
        pb::MaintenanceRecord {
            scheduled_window: Some(window(20, 26)),
            kind: pb::MaintenanceKind::Repair as i32,
            ..created.clone()
        },
        &["scheduled_window", "kind"],
    )
    .await
    .unwrap();
    assert_eq!(moved.scheduled_window, Some(window(20, 26)));
    assert_eq!(moved.truck_id, truck.id);
    assert_eq!(stored_hours(&app, &created.id).await, (20, 26));
}

#[tokio::test]
async fn records_list_by_truck_in_scheduled_order_page_by_page() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-ML 1")).await;
    let other = app.create_truck(lorry("B-ML 2")).await;
    let mut made = Vec::new();
    // Out of order, two on the same day (and so the same start).
    for day in [3, 0, 5, 1, 6, 2, 4, 1] {
        let r = create(
            &app,
            record(
                &truck,
                pb::MaintenanceKind::Service,
                window(day * 24 + 6, day * 24 + 8),
            ),
        )
        .await;
        made.push((day, r.id));
    }
    create(
        &app,
        record(&other, pb::MaintenanceKind::Repair, window(30, 31)),
    )
    .await;
    made.sort();
    let expected: Vec<&str> = made.iter().map(|(_, id)| id.as_str()).collect();

    let mut client = app.client().await;
    for (order_by, expected) in [
        ("", expected.clone()),
        ("scheduled_window", expected.clone()),
        (
            "scheduled_window desc",
            expected.iter().rev().copied().collect(),
        ),
    ] {
        let mut listed = Vec::new();
        let mut sizes = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = list(
                &mut client,
                &app.admin_token,
                pb::ListMaintenanceRecordsRequest {
                    truck_id: truck.id.clone(),
                    page_size: 3,
                    page_token: page_token.clone(),
                    order_by: order_by.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            sizes.push(page.maintenance_records.len());
            listed.extend(page.maintenance_records.into_iter().map(|r| r.id));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
            assert!(sizes.len() < 10, "paging does not end");
        }
        assert_eq!(sizes, [3, 3, 2], "{order_by}");
        assert_eq!(listed, expected, "{order_by}: each once, in order");
    }

    // Tokens are bound to their listing.
    let token = list(
        &mut client,
        &app.admin_token,
        pb::ListMaintenanceRecordsRequest {
            truck_id: truck.id.clone(),
            page_size: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .next_page_token;
    let mut forged = token.clone().into_bytes();
    forged[4] = if forged[4] == b'x' { b'y' } else { b'x' };
    let forged = String::from_utf8(forged).unwrap();
    for (truck_id, page_token, order_by) in [
        (&truck.id, forged.as_str(), ""),
        (&truck.id, "garbage", ""),
        (&other.id, token.as_str(), ""),
        (&truck.id, token.as_str(), "scheduled_window desc"),
    ] {
        let err = expect_code(
            list(
                &mut client,
                &app.admin_token,
                pb::ListMaintenanceRecordsRequest {
                    truck_id: truck_id.clone(),
                    page_size: 3,
                    page_token: page_token.to_owned(),
                    order_by: order_by.to_owned(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), ["page_token"], "{page_token}");
    }
    for bad in ["create_time", "scheduled_window sideways"] {
        let err = expect_code(
            list(
                &mut client,
                &app.admin_token,
                pb::ListMaintenanceRecordsRequest {
                    truck_id: truck.id.clone(),
                    order_by: bad.into(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), ["order_by"], "{bad}");
    }
}

#[tokio::test]
async fn records_filter_by_kind_and_performed() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-MF 1")).await;
    let done = |kind, day: i64| pb::MaintenanceRecord {
        perform_time: Some(common::at(day * 24 + 9)),
        ..record(&truck, kind, window(day * 24 + 6, day * 24 + 10))
    };
    let planned = |kind, day: i64| record(&truck, kind, window(day * 24 + 6, day * 24 + 10));
    let repaired = create(&app, done(pb::MaintenanceKind::Repair, 0)).await;
    let to_repair = create(&app, planned(pb::MaintenanceKind::Repair, 1)).await;
    let serviced = create(&app, done(pb::MaintenanceKind::Service, 2)).await;
    let tyres = create(&app, planned(pb::MaintenanceKind::Tyres, 3)).await;

    for (filter, expected) in [
        (
            "kind = MAINTENANCE_KIND_REPAIR",
            vec![&repaired, &to_repair],
        ),
        ("kind != MAINTENANCE_KIND_REPAIR", vec![&serviced, &tyres]),
        ("performed = true", vec![&repaired, &serviced]),
        ("performed = false", vec![&to_repair, &tyres]),
        ("performed != true", vec![&to_repair, &tyres]),
        (
            "kind = MAINTENANCE_KIND_REPAIR AND performed = true",
            vec![&repaired],
        ),
        (
            "performed = false AND kind != MAINTENANCE_KIND_REPAIR",
            vec![&tyres],
        ),
        ("kind = MAINTENANCE_KIND_INSPECTION", vec![]),
        ("", vec![&repaired, &to_repair, &serviced, &tyres]),
    ] {
        let listed = filtered(&app, &truck, filter).await.unwrap();
        let expected: Vec<&str> = expected.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids(&listed), expected, "{filter}");
    }

    for bad in [
        "cost = 3",
        "kind = BROKEN",
        "kind = MAINTENANCE_KIND_UNSPECIFIED",
        "performed = yes",
        "kind = MAINTENANCE_KIND_REPAIR AND kind = MAINTENANCE_KIND_TYRES",
        "performed = true OR performed = false",
        "kind",
    ] {
        let err = expect_code(filtered(&app, &truck, bad).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&err), ["filter"], "{bad}");
    }
}

#[tokio::test]
async fn maintenance_over_an_active_assignment_is_refused_as_truck_booked() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let truck = app.create_truck(lorry("B-MB 1")).await;
    let ann = app.create_driver(driver("Ann")).await;
    app.assign(&truck, &ann, window(8, 12)).await.unwrap();

    for over in [window(10, 14), window(6, 9), window(9, 10), window(0, 48)] {
        let err = expect_code(
            create_as(
                &app,
                token,
                record(&truck, pb::MaintenanceKind::Repair, over),
            )
            .await,
            Code::FailedPrecondition,
        );
        assert_eq!(preconditions(&err), subjects(&[("TRUCK_BOOKED", "truck")]));
    }
    assert_eq!(record_rows(&app).await, 0);

    // Back to back is fine; moving it over the booking is not.
    let after = create(
        &app,
        record(&truck, pb::MaintenanceKind::Repair, window(12, 14)),
    )
    .await;
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::MaintenanceRecord {
                scheduled_window: Some(window(11, 14)),
                notes: "earlier".into(),
                ..after.clone()
            },
            &["scheduled_window", "notes"],
        )
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&err), subjects(&[("TRUCK_BOOKED", "truck")]));
    assert_eq!(stored_hours(&app, &after.id).await, (12, 14));
    assert_eq!(
        stored(&app, &after.id).await,
        ("repair".into(), String::new(), 1, false)
    );

    // A deleted record cannot come back over a booking made while it was gone.
    let later = create(
        &app,
        record(&truck, pb::MaintenanceKind::Tyres, window(20, 22)),
    )
    .await;
    let later = delete(&mut client, token, &later.id, "").await.unwrap();
    let bob = app.create_driver(driver("Bob")).await;
    app.assign(&truck, &bob, window(21, 23)).await.unwrap();
    let err = expect_code(
        undelete(&mut client, token, &later.id, &later.etag).await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&err), subjects(&[("TRUCK_BOOKED", "truck")]));
    assert!(stored(&app, &later.id).await.3, "still deleted");
    assert_eq!(stored(&app, &later.id).await.2, 2);
}

#[tokio::test]
async fn a_cancelled_assignment_or_another_trucks_booking_does_not_block_maintenance() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-MC 1")).await;
    let other = app.create_truck(lorry("B-MC 2")).await;
    let ann = app.create_driver(driver("Ann")).await;
    let bob = app.create_driver(driver("Bob")).await;
    let booked = app.assign(&truck, &ann, window(8, 12)).await.unwrap();
    app.assign(&other, &bob, window(8, 12)).await.unwrap();
    app.client()
        .await
        .cancel_assignment(authed(
            &app.admin_token,
            pb::CancelAssignmentRequest {
                id: booked.id,
                etag: String::new(),
                reason: "truck goes to the workshop".into(),
            },
        ))
        .await
        .unwrap();
    let r = create(
        &app,
        record(&truck, pb::MaintenanceKind::Repair, window(9, 11)),
    )
    .await;
    assert_eq!(r.scheduled_window, Some(window(9, 11)));
}

#[tokio::test]
async fn deleting_a_record_makes_the_truck_available_and_bookable_again_in_its_window() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let truck = app.create_truck(lorry("B-MA 1")).await;
    let ann = app.create_driver(driver("Ann")).await;
    let planned = create(
        &app,
        record(&truck, pb::MaintenanceKind::Inspection, window(6, 10)),
    )
    .await;
    assert!(available(&app, window(8, 9)).await.is_empty());
    assert_eq!(
        available(&app, window(10, 12)).await,
        std::slice::from_ref(&truck.id)
    );
    let err = expect_code(
        app.assign(&truck, &ann, window(8, 9)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        subjects(&[("TRUCK_IN_MAINTENANCE", "truck")])
    );

    delete(&mut client, &app.admin_token, &planned.id, "")
        .await
        .unwrap();
    assert_eq!(
        available(&app, window(8, 9)).await,
        std::slice::from_ref(&truck.id)
    );
    app.assign(&truck, &ann, window(8, 9)).await.unwrap();
    assert!(available(&app, window(8, 9)).await.is_empty());
}

#[tokio::test]
async fn moving_a_record_frees_its_old_window_and_blocks_the_new_one() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let truck = app.create_truck(lorry("B-MM 1")).await;
    let planned = create(
        &app,
        record(&truck, pb::MaintenanceKind::Service, window(6, 10)),
    )
    .await;
    update(
        &mut client,
        &app.admin_token,
        pb::MaintenanceRecord {
            scheduled_window: Some(window(30, 34)),
            ..planned
        },
        &["scheduled_window"],
    )
    .await
    .unwrap();
    assert_eq!(
        available(&app, window(6, 10)).await,
        std::slice::from_ref(&truck.id)
    );
    assert!(available(&app, window(33, 40)).await.is_empty());
}

#[tokio::test]
async fn a_retried_record_create_returns_the_same_record_and_writes_one_row() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-MI 1")).await;
    let mut client = app.client().await;
    let request = pb::CreateMaintenanceRecordRequest {
        request_id: Uuid::now_v7().to_string(),
        maintenance_record: Some(record(&truck, pb::MaintenanceKind::Service, window(6, 10))),
    };
    let first = client
        .create_maintenance_record(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .create_maintenance_record(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(record_rows(&app).await, 1);

    let changed = pb::CreateMaintenanceRecordRequest {
        maintenance_record: Some(record(&truck, pb::MaintenanceKind::Service, window(6, 11))),
        ..request.clone()
    };
    let err = expect_code(
        client
            .create_maintenance_record(authed(&app.admin_token, changed))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["request_id"]);
    assert_eq!(record_rows(&app).await, 1);

    // Request ids are per method: the same one on CreateTruck is a different claim.
    client
        .create_truck(authed(
            &app.admin_token,
            pb::CreateTruckRequest {
                request_id: request.request_id.clone(),
                truck: Some(lorry("B-MI 2")),
            },
        ))
        .await
        .unwrap();

    // Without a request id, every call is a new record.
    let plain = pb::CreateMaintenanceRecordRequest {
        request_id: String::new(),
        ..request
    };
    for _ in 0..2 {
        client
            .create_maintenance_record(authed(&app.admin_token, plain.clone()))
            .await
            .unwrap();
    }
    assert_eq!(record_rows(&app).await, 3);
}

#[tokio::test]
async fn fleet_managers_write_maintenance_others_only_read_and_other_tenants_see_nothing() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-MP 1")).await;
    let manager = app
        .token("m@fleet.test", &[idpb::Role::FleetManager], None)
        .await;
    let dispatcher = app
        .token("d@fleet.test", &[idpb::Role::Dispatcher], None)
        .await;
    let auditor = app
        .token("a@fleet.test", &[idpb::Role::Auditor], None)
        .await;
    let mut client = app.client().await;
    let planned = create_as(
        &app,
        &manager,
        record(&truck, pb::MaintenanceKind::Service, window(6, 10)),
    )
    .await
    .unwrap();
    let planned = update(
        &mut client,
        &manager,
        pb::MaintenanceRecord {
            notes: "by the manager".into(),
            ..planned
        },
        &["notes"],
    )
    .await
    .unwrap();

    for token in [&dispatcher, &auditor] {
        let denied = expect_code(
            create_as(
                &app,
                token,
                record(&truck, pb::MaintenanceKind::Repair, window(20, 22)),
            )
            .await,
            Code::PermissionDenied,
        );
        assert!(
            denied.message().contains("fleet.write"),
            "{}",
            denied.message()
        );
        expect_code(
            update(&mut client, token, planned.clone(), &["notes"]).await,
            Code::PermissionDenied,
        );
        expect_code(
            delete(&mut client, token, &planned.id, "").await,
            Code::PermissionDenied,
        );
        expect_code(
            undelete(&mut client, token, &planned.id, "").await,
            Code::PermissionDenied,
        );
        assert_eq!(get(&mut client, token, &planned.id).await.unwrap(), planned);
        let listed = list(
            &mut client,
            token,
            pb::ListMaintenanceRecordsRequest {
                truck_id: truck.id.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(listed.maintenance_records, std::slice::from_ref(&planned));
    }
    expect_code(
        client
            .get_maintenance_record(tonic::Request::new(pb::GetMaintenanceRecordRequest {
                id: planned.id.clone(),
            }))
            .await,
        Code::Unauthenticated,
    );

    let (_, theirs) = app.identity.other_tenant("Other").await.unwrap();
    expect_code(get(&mut client, &theirs, &planned.id).await, Code::NotFound);
    expect_code(
        list(
            &mut client,
            &theirs,
            pb::ListMaintenanceRecordsRequest {
                truck_id: truck.id.clone(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
    );
    expect_code(
        update(&mut client, &theirs, planned.clone(), &["notes"]).await,
        Code::NotFound,
    );
    expect_code(
        delete(&mut client, &theirs, &planned.id, "").await,
        Code::NotFound,
    );
    expect_code(
        create_as(
            &app,
            &theirs,
            record(&truck, pb::MaintenanceKind::Repair, window(20, 22)),
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(
        stored(&app, &planned.id).await,
        ("service".into(), "by the manager".into(), 2, false)
    );
    assert_eq!(record_rows(&app).await, 1);
}

#[tokio::test]
async fn maintenance_and_a_booking_racing_for_one_window_never_both_win() {
    let app = TestApp::spawn().await;
    let mut pairs = Vec::new();
    for i in 0..6 {
        let truck = app.create_truck(lorry(&format!("B-MZ {i}"))).await;
        let driver = app.create_driver(driver(&format!("Driver {i}"))).await;
        pairs.push((truck, driver));
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(pairs.len() * 2));
    let mut calls = Vec::new();
    for (truck, driver) in &pairs {
        let (mut booking, mut workshop) = (app.client().await, app.client().await);
        let token = app.admin_token.clone();
        let request = pb::CreateAssignmentRequest {
            request_id: Uuid::now_v7().to_string(),
            truck_id: truck.id.clone(),
            driver_id: driver.id.clone(),
            shipment_id: Uuid::now_v7().to_string(),
            window: Some(window(8, 12)),
        };
        let b = barrier.clone();
        calls.push(tokio::spawn(async move {
            b.wait().await;
            booking
                .create_assignment(authed(&token, request))
                .await
                .map(|_| ())
        }));
        let token = app.admin_token.clone();
        let request = pb::CreateMaintenanceRecordRequest {
            request_id: Uuid::now_v7().to_string(),
            maintenance_record: Some(record(truck, pb::MaintenanceKind::Repair, window(10, 14))),
        };
        let b = barrier.clone();
        calls.push(tokio::spawn(async move {
            b.wait().await;
            workshop
                .create_maintenance_record(authed(&token, request))
                .await
                .map(|_| ())
        }));
    }
    let results: Vec<Result<(), Status>> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (i, pair) in results.chunks(2).enumerate() {
        match (&pair[0], &pair[1]) {
            (Ok(()), Err(lost)) => {
                assert_eq!(lost.code(), Code::FailedPrecondition, "{lost:?}");
                assert_eq!(preconditions(lost), subjects(&[("TRUCK_BOOKED", "truck")]));
            }
            (Err(lost), Ok(())) => {
                assert_eq!(lost.code(), Code::FailedPrecondition, "{lost:?}");
                assert_eq!(
                    preconditions(lost),
                    subjects(&[("TRUCK_IN_MAINTENANCE", "truck")])
                );
            }
            other => panic!("truck {i}: exactly one must win, got {other:?}"),
        }
    }
    let (records, bookings): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM fleet.maintenance_records), \
                (SELECT count(*) FROM fleet.assignments WHERE status = 'active')",
    )
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!(records + bookings, 6);
}
