//! Trucks end to end: the life of a truck (create, read, list, update under an etag, soft
//! delete, undelete), every validation rule with its field path, exact capacities, unique plates
//! and VINs, idempotent creates, filters, orders and pages, the search for free trucks, and who
//! may do what in which tenant.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    TestApp, authed, decimal, driver, expect_code, lorry, preconditions, violated_fields, window,
};
use logistics_proto::fleet::v1 as pb;
use logistics_proto::identity::v1 as idpb;
use logistics_proto::r#type::v1 as types;
use pb::fleet_service_client::FleetServiceClient;
use prost_types::FieldMask;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;
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

fn plates(trucks: &[pb::Truck]) -> Vec<&str> {
    trucks.iter().map(|t| t.plate.as_str()).collect()
}

fn ids(trucks: &[pb::Truck]) -> Vec<&str> {
    trucks.iter().map(|t| t.id.as_str()).collect()
}

fn seconds(at: Option<prost_types::Timestamp>) -> (i64, i32) {
    let at = at.expect("timestamp set");
    (at.seconds, at.nanos)
}

/// Every truck row of every tenant, deleted or not.
async fn truck_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM fleet.trucks")
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// The stored `(plate, odometer_km, version, deleted)` of a truck.
async fn stored(app: &TestApp, id: &str) -> (String, i64, i32, bool) {
    sqlx::query_as(
        "SELECT plate, odometer_km, version, deleted_at IS NOT NULL FROM fleet.trucks WHERE id = $1",
    )
    .bind(id.parse::<Uuid>().unwrap())
    .fetch_one(&app.db().await)
    .await
    .unwrap()
}

async fn get(
    client: &mut FleetServiceClient<Channel>,
    token: &str,
    id: &str,
) -> Result<pb::Truck, Status> {
    client
        .get_truck(authed(token, pb::GetTruckRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().truck.unwrap())
}

async fn update(
    client: &mut FleetServiceClient<Channel>,
    token: &str,
    truck: pb::Truck,
    paths: &[&str],
) -> Result<pb::Truck, Status> {
    client
        .update_truck(authed(
            token,
            pb::UpdateTruckRequest {
                truck: Some(truck),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(|r| r.into_inner().truck.unwrap())
}

async fn delete(
    client: &mut FleetServiceClient<Channel>,
    token: &str,
    id: &str,
    etag: &str,
) -> Result<pb::Truck, Status> {
    client
        .delete_truck(authed(
            token,
            pb::DeleteTruckRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().truck.unwrap())
}

async fn undelete(
    client: &mut FleetServiceClient<Channel>,
    token: &str,
    id: &str,
    etag: &str,
) -> Result<pb::Truck, Status> {
    client
        .undelete_truck(authed(
            token,
            pb::UndeleteTruckRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().truck.unwrap())
}

async fn list(
    client: &mut FleetServiceClient<Channel>,
    token: &str,
    request: pb::ListTrucksRequest,
) -> Result<pb::ListTrucksResponse, Status> {
    client
        .list_trucks(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

/// The trucks of the first page of a listing with `filter`.
async fn filtered(app: &TestApp, filter: &str) -> Result<Vec<pb::Truck>, Status> {
    list(
        &mut app.client().await,
        &app.admin_token,
        pb::ListTrucksRequest {
            filter: filter.to_owned(),
            ..Default::default()
        },
    )
    .await
    .map(|r| r.trucks)
}

async fn available(
    app: &TestApp,
    request: pb::FindAvailableTrucksRequest,
) -> Result<Vec<pb::Truck>, Status> {
    app.client()
        .await
        .find_available_trucks(authed(&app.admin_token, request))
        .await
        .map(|r| r.into_inner().trucks)
}

/// A lorry with the given capacities.
fn sized(plate: &str, payload_kg: &str, volume_m3: &str) -> pb::Truck {
    pb::Truck {
        payload_capacity_kg: decimal(payload_kg),
        volume_capacity_m3: decimal(volume_m3),
        ..lorry(plate)
    }
}

/// A VIN that is valid but for its check digit (position 9).
fn vin_with_wrong_check_digit() -> String {
    let valid = common::vin(4242);
    let check = valid.as_bytes()[8];
    let wrong = if check == b'0' { '1' } else { '0' };
    format!("{}{wrong}{}", &valid[..8], &valid[9..])
}

#[tokio::test]
async fn a_truck_lives_through_create_get_list_update_delete_and_undelete() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let created = app.create_truck(lorry("b-xy  1")).await;
    assert!(created.id.parse::<Uuid>().is_ok(), "{}", created.id);
    assert_eq!(created.plate, "B-XY 1", "upper case, single spaces");
    assert_eq!(
        created.status,
        pb::TruckStatus::Active as i32,
        "active when unset"
    );
    assert_eq!(created.odometer_km, 0);
    assert!(created.create_time.is_some() && created.update_time.is_some());
    assert_eq!(created.delete_time, None);
    assert!(!created.etag.is_empty());

    assert_eq!(get(&mut client, token, &created.id).await.unwrap(), created);
    let listed = list(&mut client, token, pb::ListTrucksRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.trucks, std::slice::from_ref(&created));
    assert_eq!(listed.next_page_token, "");

    // Only the masked fields change: the make sent along is ignored.
    let updated = update(
        &mut client,
        token,
        pb::Truck {
            model: "FH 540".into(),
            odometer_km: 120_000,
            make: "Scania".into(),
            ..created.clone()
        },
        &["model", "odometer_km"],
    )
    .await
    .unwrap();
    assert_eq!(
        (
            updated.make.as_str(),
            updated.model.as_str(),
            updated.odometer_km
        ),
        ("Volvo", "FH 540", 120_000)
    );
    assert_ne!(updated.etag, created.etag);
    assert_eq!(updated.create_time, created.create_time);
    assert!(seconds(updated.update_time) > seconds(created.update_time));
    assert_eq!(get(&mut client, token, &created.id).await.unwrap(), updated);
    assert_eq!(
        stored(&app, &created.id).await,
        ("B-XY 1".to_owned(), 120_000, 2, false)
    );

    let deleted = delete(&mut client, token, &created.id, &updated.etag)
        .await
        .unwrap();
    assert!(deleted.delete_time.is_some());
    assert_eq!(deleted.model, "FH 540");
    let read = get(&mut client, token, &created.id).await.unwrap();
    assert_eq!(read, deleted, "a deleted truck can still be read");
    assert!(read.delete_time.is_some());
    let hidden = list(&mut client, token, pb::ListTrucksRequest::default())
        .await
        .unwrap();
    assert!(hidden.trucks.is_empty(), "{:?}", hidden.trucks);
    let shown = list(
        &mut client,
        token,
        pb::ListTrucksRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(shown.trucks, std::slice::from_ref(&deleted));

    expect_code(
        delete(&mut client, token, &created.id, "").await,
        Code::NotFound,
    );
    expect_code(
        update(&mut client, token, deleted.clone(), &["odometer_km"]).await,
        Code::NotFound,
    );

    let restored = undelete(&mut client, token, &created.id, &deleted.etag)
        .await
        .unwrap();
    assert_eq!(restored.delete_time, None);
    assert_eq!(restored.odometer_km, 120_000);
    assert_eq!(
        list(&mut client, token, pb::ListTrucksRequest::default())
            .await
            .unwrap()
            .trucks,
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
    assert_eq!(
        stored(&app, &created.id).await,
        ("B-XY 1".to_owned(), 120_000, 4, false)
    );
    assert_eq!(truck_rows(&app).await, 1);
}

#[tokio::test]
async fn unknown_and_malformed_truck_ids_are_not_found_and_invalid() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let unknown = Uuid::now_v7().to_string();
    let err = expect_code(get(&mut client, token, &unknown).await, Code::NotFound);
    assert!(err.message().contains("Truck"), "{}", err.message());
    let info = err.get_details_resource_info().unwrap();
    assert_eq!(
        (info.resource_type.as_str(), info.resource_name.as_str()),
        ("logistics.fleet.v1.Truck", unknown.as_str())
    );
    expect_code(
        delete(&mut client, token, &unknown, "").await,
        Code::NotFound,
    );
    expect_code(
        undelete(&mut client, token, &unknown, "").await,
        Code::NotFound,
    );
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Truck {
                id: unknown,
                ..lorry("B-NF 1")
            },
            &["odometer_km"],
        )
        .await,
        Code::NotFound,
    );
    assert!(err.message().contains("Truck"), "{}", err.message());

    let err = expect_code(
        get(&mut client, token, "truck-1").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["id"]);
    let err = expect_code(
        delete(&mut client, token, "", "3").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["id", "etag"]);
}

#[tokio::test]
async fn output_only_fields_sent_on_create_are_ignored() {
    let app = TestApp::spawn().await;
    let chosen = Uuid::now_v7().to_string();
    let created = app
        .create_truck(pb::Truck {
            id: chosen.clone(),
            etag: "\"7\"".into(),
            create_time: Some(common::at(0)),
            delete_time: Some(common::at(1)),
            ..lorry("B-OO 1")
        })
        .await;
    assert_ne!(created.id, chosen);
    assert_eq!(created.delete_time, None);
    assert_ne!(created.create_time, Some(common::at(0)));
    assert_ne!(created.etag, "\"7\"");
}

#[tokio::test]
async fn a_stale_etag_aborts_update_delete_and_undelete_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let created = app.create_truck(lorry("B-ET 1")).await;
    let current = update(
        &mut client,
        token,
        pb::Truck {
            odometer_km: 1_000,
            ..created.clone()
        },
        &["odometer_km"],
    )
    .await
    .unwrap();

    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Truck {
                odometer_km: 2_000,
                ..created.clone()
            },
            &["odometer_km"],
        )
        .await,
        Code::Aborted,
    );
    assert!(err.message().contains("etag"), "{}", err.message());
    assert_eq!(
        stored(&app, &created.id).await,
        ("B-ET 1".to_owned(), 1_000, 2, false)
    );

    expect_code(
        delete(&mut client, token, &created.id, &created.etag).await,
        Code::Aborted,
    );
    assert_eq!(
        stored(&app, &created.id).await,
        ("B-ET 1".to_owned(), 1_000, 2, false)
    );

    let deleted = delete(&mut client, token, &created.id, &current.etag)
        .await
        .unwrap();
    expect_code(
        undelete(&mut client, token, &created.id, &current.etag).await,
        Code::Aborted,
    );
    assert_eq!(
        stored(&app, &created.id).await,
        ("B-ET 1".to_owned(), 1_000, 3, true)
    );
    undelete(&mut client, token, &created.id, &deleted.etag)
        .await
        .unwrap();

    // An etag this service never issued is a bad argument, not a conflict.
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Truck {
                etag: "v4".into(),
                ..current
            },
            &["odometer_km"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["truck.etag"]);
}

#[tokio::test]
async fn an_update_needs_a_mask_of_updatable_fields_and_valid_new_values() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let truck = app.create_truck(lorry("B-UM 1")).await;

    let err = expect_code(
        update(&mut client, token, truck.clone(), &[]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["update_mask"]);
    let err = expect_code(
        update(
            &mut client,
            token,
            truck.clone(),
            &["odometer_km", "id", "create_time"],
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
            pb::Truck {
                year: 1900,
                status: pb::TruckStatus::Unspecified as i32,
                vin: vin_with_wrong_check_digit(),
                ..truck.clone()
            },
            &["year", "status", "vin"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["truck.vin", "truck.year", "truck.status"]
    );
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Truck {
                id: String::new(),
                ..truck.clone()
            },
            &["odometer_km"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["truck.id"]);
    assert_eq!(
        stored(&app, &truck.id).await,
        ("B-UM 1".to_owned(), 0, 1, false)
    );
}

#[tokio::test]
async fn a_vin_with_a_wrong_check_digit_is_invalid_on_truck_vin() {
    let app = TestApp::spawn().await;
    let err = expect_code(
        app.create_truck_as(
            &app.admin_token,
            pb::Truck {
                vin: vin_with_wrong_check_digit(),
                ..lorry("B-VN 1")
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["truck.vin"]);
    let description = err
        .get_details_bad_request()
        .map(|b| b.field_violations[0].description.clone())
        .unwrap_or_default();
    assert!(description.contains("check digit"), "{description}");
    assert_eq!(truck_rows(&app).await, 0);
}

#[tokio::test]
async fn a_vin_of_the_wrong_length_or_with_i_o_or_q_is_invalid() {
    let app = TestApp::spawn().await;
    let valid = common::vin(77);
    let bad = [
        valid[..16].to_owned(),
        format!("{valid}1"),
        String::new(),
        format!("I{}", &valid[1..]),
        format!("O{}", &valid[1..]),
        format!("Q{}", &valid[1..]),
        format!("{}-", &valid[..16]),
    ];
    for vin in bad {
        let err = expect_code(
            app.create_truck_as(
                &app.admin_token,
                pb::Truck {
                    vin: vin.clone(),
                    ..lorry("B-VN 2")
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), ["truck.vin"], "{vin:?}");
    }
    // Case and surrounding spaces are forgiven.
    let created = app
        .create_truck(pb::Truck {
            vin: format!(" {} ", valid.to_lowercase()),
            ..lorry("B-VN 3")
        })
        .await;
    assert_eq!(created.vin, valid);
    assert_eq!(truck_rows(&app).await, 1);
}

#[tokio::test]
async fn every_bad_truck_field_is_reported_at_once_in_order_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let next_year = time::OffsetDateTime::now_utc().year() + 1;
    let all_wrong = pb::Truck {
        plate: "-AB 1".into(),
        vin: vin_with_wrong_check_digit(),
        make: "   ".into(),
        model: "M".repeat(101),
        year: 1949,
        payload_capacity_kg: None,
        volume_capacity_m3: decimal("0"),
        status: 42,
        odometer_km: -1,
        ..Default::default()
    };
    let err = expect_code(
        app.create_truck_as(&app.admin_token, all_wrong).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "truck.plate",
            "truck.vin",
            "truck.make",
            "truck.model",
            "truck.year",
            "truck.payload_capacity_kg",
            "truck.volume_capacity_m3",
            "truck.status",
            "truck.odometer_km",
        ]
    );
    assert!(err.message().contains("truck.plate"), "{}", err.message());

    let also_wrong = pb::Truck {
        plate: "ABCDEFGH 123456789".into(),
        year: next_year + 1,
        payload_capacity_kg: decimal("1e3"),
        volume_capacity_m3: decimal("-5"),
        ..lorry("unused")
    };
    let err = expect_code(
        app.create_truck_as(&app.admin_token, also_wrong).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "truck.plate",
            "truck.year",
            "truck.payload_capacity_kg",
            "truck.volume_capacity_m3",
        ]
    );

    let err = expect_code(
        app.create_truck_as(&app.admin_token, pb::Truck::default())
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "truck.plate",
            "truck.vin",
            "truck.make",
            "truck.model",
            "truck.year",
            "truck.payload_capacity_kg",
            "truck.volume_capacity_m3",
        ],
        "an unset status is active; an unset odometer is 0"
    );
    assert_eq!(truck_rows(&app).await, 0);
}

#[tokio::test]
async fn capacities_must_be_positive_decimals_with_at_most_three_fraction_digits() {
    let app = TestApp::spawn().await;
    for raw in [
        "",
        "  ",
        "0",
        "0.000",
        "-1",
        "1e3",
        "1.2345",
        "12,5",
        "1.",
        ".5",
        "NaN",
        "1000000000",
    ] {
        let err = expect_code(
            app.create_truck_as(
                &app.admin_token,
                pb::Truck {
                    payload_capacity_kg: decimal(raw),
                    ..lorry("B-DC 1")
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&err),
            ["truck.payload_capacity_kg"],
            "{raw:?}"
        );
    }
    for raw in ["0", "-0.5", "2.0001", "1000000"] {
        let err = expect_code(
            app.create_truck_as(
                &app.admin_token,
                pb::Truck {
                    volume_capacity_m3: decimal(raw),
                    ..lorry("B-DC 1")
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&err),
            ["truck.volume_capacity_m3"],
            "{raw:?}"
        );
    }
    let err = expect_code(
        app.create_truck_as(
            &app.admin_token,
            pb::Truck {
                volume_capacity_m3: None,
                ..lorry("B-DC 1")
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["truck.volume_capacity_m3"]);
    assert_eq!(truck_rows(&app).await, 0);
}

#[tokio::test]
async fn model_years_run_from_1950_to_next_year() {
    let app = TestApp::spawn().await;
    let next_year = time::OffsetDateTime::now_utc().year() + 1;
    for (plate, year) in [("B-YR 1", 1950), ("B-YR 2", next_year)] {
        let created = app
            .create_truck(pb::Truck {
                year,
                ..lorry(plate)
            })
            .await;
        assert_eq!(created.year, year);
    }
    for year in [1949, next_year + 1, 0, -2024] {
        let err = expect_code(
            app.create_truck_as(
                &app.admin_token,
                pb::Truck {
                    year,
                    ..lorry("B-YR 3")
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), ["truck.year"], "{year}");
    }
    assert_eq!(truck_rows(&app).await, 2);
}

#[tokio::test]
async fn capacities_round_trip_exactly() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let created = app.create_truck(sized("B-DE 1", "24000.000", "12.5")).await;
    assert_eq!(created.payload_capacity_kg, decimal("24000"));
    assert_eq!(created.volume_capacity_m3, decimal("12.5"));
    let read = get(&mut client, &app.admin_token, &created.id)
        .await
        .unwrap();
    assert_eq!(read.payload_capacity_kg, decimal("24000"));
    assert_eq!(read.volume_capacity_m3, decimal("12.5"));
    let (payload, volume): (String, String) = sqlx::query_as(
        "SELECT payload_capacity_kg::text, volume_capacity_m3::text FROM fleet.trucks WHERE id = $1",
    )
    .bind(created.id.parse::<Uuid>().unwrap())
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!((payload.as_str(), volume.as_str()), ("24000.000", "12.500"));

    let tiny = app
        .create_truck(sized("B-DE 2", "0.001", "999999.999"))
        .await;
    assert_eq!(tiny.payload_capacity_kg, decimal("0.001"));
    assert_eq!(tiny.volume_capacity_m3, decimal("999999.999"));
    let biggest = app
        .create_truck(sized("B-DE 3", "999999999.999", "7.10"))
        .await;
    assert_eq!(biggest.payload_capacity_kg, decimal("999999999.999"));
    assert_eq!(biggest.volume_capacity_m3, decimal("7.1"));

    let updated = update(
        &mut client,
        &app.admin_token,
        pb::Truck {
            payload_capacity_kg: decimal("18000.250"),
            ..created
        },
        &["payload_capacity_kg"],
    )
    .await
    .unwrap();
    assert_eq!(updated.payload_capacity_kg, decimal("18000.25"));
    assert_eq!(updated.volume_capacity_m3, decimal("12.5"));
}

/// The message of an ALREADY_EXISTS answer names no table, constraint or SQL.
#[track_caller]
fn assert_no_database_words(status: &Status) {
    let text = format!("{} {:?}", status.message(), status.details());
    for word in [
        "trucks_plate_key",
        "trucks_vin_key",
        "constraint",
        "duplicate key",
        "fleet.",
        "SQL",
        "23505",
    ] {
        assert!(!text.contains(word), "{word:?} in {text}");
    }
}

#[tokio::test]
async fn a_plate_is_unique_among_live_trucks_whatever_its_case_spaces_and_dashes() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let first = app.create_truck(lorry("b-xy 1")).await;
    for same in ["BXY1", "B XY-1", "bxy 1"] {
        let err = expect_code(
            app.create_truck_as(token, lorry(same)).await,
            Code::AlreadyExists,
        );
        assert_eq!(violated_fields(&err), ["truck.plate"], "{same}");
        assert!(err.message().contains("plate"), "{}", err.message());
        let info = err.get_details_resource_info().unwrap();
        assert_eq!(info.resource_type, "logistics.fleet.v1.Truck");
        assert_no_database_words(&err);
    }
    assert_eq!(truck_rows(&app).await, 1);

    // Renaming another truck onto the plate is refused the same way.
    let other = app.create_truck(lorry("B-XY 2")).await;
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Truck {
                plate: "bxy-1".into(),
                ..other.clone()
            },
            &["plate"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["truck.plate"]);
    assert_no_database_words(&err);
    assert_eq!(stored(&app, &other.id).await.0, "B-XY 2");

    // A deleted truck frees its plate; it cannot come back while the plate is taken.
    delete(&mut client, token, &first.id, "").await.unwrap();
    let successor = app.create_truck(lorry("BXY1")).await;
    assert_eq!(successor.plate, "BXY1");
    let err = expect_code(
        undelete(&mut client, token, &first.id, "").await,
        Code::AlreadyExists,
    );
    assert!(err.message().contains("plate"), "{}", err.message());
    // The request has no `truck`, so the field is named as the resource's own.
    let fields = violated_fields(&err);
    assert!(
        fields.len() == 1 && fields[0].ends_with("plate"),
        "{fields:?}"
    );
    assert_no_database_words(&err);
    assert!(stored(&app, &first.id).await.3, "still deleted");

    delete(&mut client, token, &successor.id, "").await.unwrap();
    undelete(&mut client, token, &first.id, "").await.unwrap();
    assert_eq!(truck_rows(&app).await, 3);
}

#[tokio::test]
async fn a_vin_is_unique_among_live_trucks() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let first = app.create_truck(lorry("B-VU 1")).await;
    let err = expect_code(
        app.create_truck_as(
            token,
            pb::Truck {
                vin: first.vin.to_lowercase(),
                ..lorry("B-VU 2")
            },
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["truck.vin"]);
    assert!(err.message().contains("vin"), "{}", err.message());
    assert_no_database_words(&err);

    let other = app.create_truck(lorry("B-VU 3")).await;
    let err = expect_code(
        update(
            &mut client,
            token,
            pb::Truck {
                vin: first.vin.clone(),
                ..other
            },
            &["vin"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&err), ["truck.vin"]);

    delete(&mut client, token, &first.id, "").await.unwrap();
    let successor = app
        .create_truck(pb::Truck {
            vin: first.vin.clone(),
            ..lorry("B-VU 4")
        })
        .await;
    assert_eq!(successor.vin, first.vin);
    let err = expect_code(
        undelete(&mut client, token, &first.id, "").await,
        Code::AlreadyExists,
    );
    assert!(err.message().contains("vin"), "{}", err.message());
    let fields = violated_fields(&err);
    assert!(
        fields.len() == 1 && fields[0].ends_with("vin"),
        "{fields:?}"
    );
    assert!(stored(&app, &first.id).await.3, "still deleted");
    assert_eq!(truck_rows(&app).await, 3);
}

#[tokio::test]
async fn a_retried_create_returns_the_same_truck_and_writes_one_row() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let request = pb::CreateTruckRequest {
        request_id: Uuid::now_v7().to_string(),
        truck: Some(lorry("B-ID 1")),
    };
    let first = client
        .create_truck(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .create_truck(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(truck_rows(&app).await, 1);

    let changed = pb::CreateTruckRequest {
        truck: Some(pb::Truck {
            odometer_km: 5,
            ..request.truck.clone().unwrap()
        }),
        ..request.clone()
    };
    let err = expect_code(
        client.create_truck(authed(&app.admin_token, changed)).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["request_id"]);

    let err = expect_code(
        client
            .create_truck(authed(
                &app.admin_token,
                pb::CreateTruckRequest {
                    request_id: "retry-1".into(),
                    truck: Some(lorry("B-ID 2")),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["request_id"]);
    assert_eq!(truck_rows(&app).await, 1);
}

#[tokio::test]
async fn a_create_refused_for_a_taken_plate_can_be_retried_with_its_request_id() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let holder = app.create_truck(lorry("B-RT 1")).await;
    let request = pb::CreateTruckRequest {
        request_id: Uuid::now_v7().to_string(),
        truck: Some(lorry("B-RT 1")),
    };
    expect_code(
        client
            .create_truck(authed(&app.admin_token, request.clone()))
            .await,
        Code::AlreadyExists,
    );
    delete(&mut client, &app.admin_token, &holder.id, "")
        .await
        .unwrap();
    let created = client
        .create_truck(authed(&app.admin_token, request))
        .await
        .unwrap()
        .into_inner()
        .truck
        .unwrap();
    assert_eq!(created.plate, "B-RT 1");
    assert_eq!(truck_rows(&app).await, 2);
}

/// Creates `plates` in order; retires those whose plate starts with `R`.
async fn fleet_of(app: &TestApp, plates: &[&str]) -> Vec<pb::Truck> {
    let mut client = app.client().await;
    let mut trucks = Vec::new();
    for plate in plates {
        let mut truck = app.create_truck(lorry(plate)).await;
        if plate.starts_with('R') {
            truck = update(
                &mut client,
                &app.admin_token,
                pb::Truck {
                    status: pb::TruckStatus::Retired as i32,
                    ..truck
                },
                &["status"],
            )
            .await
            .unwrap();
        }
        trucks.push(truck);
    }
    trucks
}

#[tokio::test]
async fn trucks_filter_by_status_and_plate_prefix_and_negate_with_not_equal() {
    let app = TestApp::spawn().await;
    fleet_of(&app, &["B-XA 1", "B-XB 2", "B-Y 3", "R-X 4", "R-Z 5"]).await;
    let retired = "status = TRUCK_STATUS_RETIRED";
    assert_eq!(
        plates(&filtered(&app, retired).await.unwrap()),
        ["R-X 4", "R-Z 5"]
    );
    assert_eq!(
        plates(
            &filtered(&app, "status != TRUCK_STATUS_RETIRED")
                .await
                .unwrap()
        ),
        ["B-XA 1", "B-XB 2", "B-Y 3"]
    );
    assert_eq!(
        plates(&filtered(&app, r#"plate = "B-X*""#).await.unwrap()),
        ["B-XA 1", "B-XB 2"]
    );
    // Compared without separators and case, like uniqueness.
    assert_eq!(
        plates(&filtered(&app, r#"plate = "bx*""#).await.unwrap()),
        ["B-XA 1", "B-XB 2"]
    );
    assert_eq!(
        plates(&filtered(&app, r#"plate = "bxb-2""#).await.unwrap()),
        ["B-XB 2"]
    );
    assert_eq!(
        plates(&filtered(&app, r#"plate != "B-X*""#).await.unwrap()),
        ["B-Y 3", "R-X 4", "R-Z 5"]
    );
    assert_eq!(
        plates(
            &filtered(
                &app,
                r#"plate = "R*" AND status = TRUCK_STATUS_RETIRED AND plate != "RZ*""#
            )
            .await
            .unwrap()
        ),
        ["R-X 4"]
    );
    // `%` and `_` are no wildcards: like separators they are left out of the key ("B_B" is
    // "BB", which no plate starts with, not "B?B", which B-XB 2 would match).
    assert!(
        filtered(&app, r#"plate = "B_B*""#)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        plates(&filtered(&app, r#"plate = "b%x*""#).await.unwrap()),
        ["B-XA 1", "B-XB 2"]
    );
    assert_eq!(
        plates(&filtered(&app, r#"plate != "B%Y*""#).await.unwrap()),
        ["B-XA 1", "B-XB 2", "R-X 4", "R-Z 5"]
    );
    assert!(
        filtered(&app, "status = TRUCK_STATUS_IN_MAINTENANCE")
            .await
            .unwrap()
            .is_empty()
    );

    for bad in [
        r#"make = "Volvo""#,
        "status = PARKED",
        "status = TRUCK_STATUS_UNSPECIFIED",
        r#"plate > "B""#,
        "status = TRUCK_STATUS_ACTIVE OR status = TRUCK_STATUS_RETIRED",
        r#"plate = "B"#,
    ] {
        let err = expect_code(filtered(&app, bad).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&err), ["filter"], "{bad}");
    }
}

#[tokio::test]
async fn trucks_order_by_plate_or_create_time_in_either_direction() {
    let app = TestApp::spawn().await;
    let trucks = fleet_of(&app, &["C 1", "A-2", "D 1", "B 9"]).await;
    let mut client = app.client().await;
    assert_eq!(
        ordered(&app, "").await.unwrap(),
        ["A-2", "B 9", "C 1", "D 1"]
    );
    assert_eq!(
        ordered(&app, "plate").await.unwrap(),
        ["A-2", "B 9", "C 1", "D 1"]
    );
    assert_eq!(
        ordered(&app, "plate desc").await.unwrap(),
        ["D 1", "C 1", "B 9", "A-2"]
    );
    let created: Vec<String> = trucks.iter().map(|t| t.plate.clone()).collect();
    assert_eq!(ordered(&app, "create_time").await.unwrap(), created);
    let mut newest_first = created.clone();
    newest_first.reverse();
    assert_eq!(
        ordered(&app, "create_time desc").await.unwrap(),
        newest_first
    );
    for bad in ["make", "plate sideways", "plate, create_time"] {
        let err = expect_code(ordered(&app, bad).await, Code::InvalidArgument);
        assert_eq!(violated_fields(&err), ["order_by"], "{bad}");
    }
    let err = expect_code(
        list(
            &mut client,
            &app.admin_token,
            pb::ListTrucksRequest {
                page_size: -1,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["page_size"]);
}

/// The plates of the first page of a listing in `order_by` order.
async fn ordered(app: &TestApp, order_by: &str) -> Result<Vec<String>, Status> {
    list(
        &mut app.client().await,
        &app.admin_token,
        pb::ListTrucksRequest {
            order_by: order_by.to_owned(),
            ..Default::default()
        },
    )
    .await
    .map(|r| r.trucks.into_iter().map(|t| t.plate).collect())
}

/// Every page of a listing, fetched `page_size` at a time.
async fn pages(app: &TestApp, request: pb::ListTrucksRequest) -> Vec<Vec<pb::Truck>> {
    let mut client = app.client().await;
    let mut pages = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = list(
            &mut client,
            &app.admin_token,
            pb::ListTrucksRequest {
                page_token: page_token.clone(),
                ..request.clone()
            },
        )
        .await
        .unwrap();
        pages.push(page.trucks);
        if page.next_page_token.is_empty() {
            return pages;
        }
        page_token = page.next_page_token;
        assert!(pages.len() < 10, "paging does not end");
    }
}

#[tokio::test]
async fn twelve_trucks_come_in_pages_of_five_without_duplicates_or_gaps_in_every_order() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..12).map(|i| format!("P-{:02}", (i * 7) % 12)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    fleet_of(&app, &names).await;
    for order_by in ["", "plate desc", "create_time", "create_time desc"] {
        let whole = list(
            &mut app.client().await,
            &app.admin_token,
            pb::ListTrucksRequest {
                order_by: order_by.into(),
                page_size: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(whole.trucks.len(), 12);
        assert_eq!(whole.next_page_token, "");
        let paged = pages(
            &app,
            pb::ListTrucksRequest {
                order_by: order_by.into(),
                page_size: 5,
                ..Default::default()
            },
        )
        .await;
        let sizes: Vec<usize> = paged.iter().map(Vec::len).collect();
        assert_eq!(sizes, [5, 5, 2], "{order_by}");
        let flat: Vec<pb::Truck> = paged.into_iter().flatten().collect();
        assert_eq!(ids(&flat), ids(&whole.trucks), "{order_by}");
    }

    // A page boundary that falls exactly on the end leaves no empty last page.
    let paged = pages(
        &app,
        pb::ListTrucksRequest {
            page_size: 6,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(paged.iter().map(Vec::len).collect::<Vec<_>>(), [6, 6]);
}

#[tokio::test]
async fn a_forged_or_foreign_page_token_is_invalid() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..4).map(|i| format!("T-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    fleet_of(&app, &names).await;
    let mut client = app.client().await;
    let token = list(
        &mut client,
        &app.admin_token,
        pb::ListTrucksRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .next_page_token;
    assert!(!token.is_empty());

    let mut forged = token.clone().into_bytes();
    forged[2] = if forged[2] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    for (page_token, order_by, filter) in [
        (forged.as_str(), "", ""),
        ("garbage", "", ""),
        (token.as_str(), "plate desc", ""),
        (token.as_str(), "", "status = TRUCK_STATUS_ACTIVE"),
    ] {
        let err = expect_code(
            list(
                &mut client,
                &app.admin_token,
                pb::ListTrucksRequest {
                    page_size: 2,
                    page_token: page_token.to_owned(),
                    order_by: order_by.to_owned(),
                    filter: filter.to_owned(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&err),
            ["page_token"],
            "{page_token} {order_by} {filter}"
        );
    }
}

#[tokio::test]
async fn deleted_trucks_page_in_only_with_show_deleted() {
    let app = TestApp::spawn().await;
    let names: Vec<String> = (0..7).map(|i| format!("SD {i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let trucks = fleet_of(&app, &names).await;
    let mut client = app.client().await;
    for truck in trucks.iter().step_by(2) {
        delete(&mut client, &app.admin_token, &truck.id, "")
            .await
            .unwrap();
    }
    let live: Vec<pb::Truck> = pages(
        &app,
        pb::ListTrucksRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(plates(&live), ["SD 1", "SD 3", "SD 5"]);
    let all: Vec<pb::Truck> = pages(
        &app,
        pb::ListTrucksRequest {
            page_size: 2,
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(plates(&all), names);
    assert_eq!(all.iter().filter(|t| t.delete_time.is_some()).count(), 4);
}

fn find(
    window: types::TimeWindow,
    payload: Option<&str>,
    volume: Option<&str>,
) -> pb::FindAvailableTrucksRequest {
    pb::FindAvailableTrucksRequest {
        window: Some(window),
        min_payload_kg: payload.and_then(decimal),
        min_volume_m3: volume.and_then(decimal),
        page_size: 0,
    }
}

#[tokio::test]
async fn available_trucks_are_active_live_big_enough_and_free_for_the_whole_window_smallest_first()
{
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let token = &app.admin_token;
    let small = app.create_truck(sized("S 1", "7500", "40")).await;
    let medium = app.create_truck(sized("M 1", "12000", "60")).await;
    app.create_truck(sized("L 1", "24000", "90")).await;
    app.create_truck(sized("F 1", "26000", "10")).await;
    let retired = app.create_truck(sized("R 1", "13000", "60")).await;
    update(
        &mut client,
        token,
        pb::Truck {
            status: pb::TruckStatus::Retired as i32,
            ..retired
        },
        &["status"],
    )
    .await
    .unwrap();
    app.create_truck(pb::Truck {
        status: pb::TruckStatus::InMaintenance as i32,
        ..sized("W 1", "14000", "60")
    })
    .await;
    let deleted = app.create_truck(sized("D 1", "15000", "60")).await;
    delete(&mut client, token, &deleted.id, "").await.unwrap();
    let booked = app.create_truck(sized("B 1", "16000", "60")).await;
    let ann = app.create_driver(driver("Ann")).await;
    app.assign(&booked, &ann, window(8, 12)).await.unwrap();
    let workshop = app.create_truck(sized("G 1", "17000", "60")).await;
    client
        .create_maintenance_record(authed(
            token,
            pb::CreateMaintenanceRecordRequest {
                request_id: String::new(),
                maintenance_record: Some(pb::MaintenanceRecord {
                    truck_id: workshop.id.clone(),
                    kind: pb::MaintenanceKind::Service as i32,
                    scheduled_window: Some(window(6, 10)),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();

    let fits = available(&app, find(window(9, 11), Some("10000"), Some("50")))
        .await
        .unwrap();
    assert_eq!(plates(&fits), ["M 1", "L 1"]);
    let any = available(&app, find(window(9, 11), None, None))
        .await
        .unwrap();
    assert_eq!(plates(&any), ["S 1", "M 1", "L 1", "F 1"]);
    // Minimums are inclusive and exact.
    let exact = available(&app, find(window(9, 11), Some("12000.000"), Some("60")))
        .await
        .unwrap();
    assert_eq!(plates(&exact), ["M 1", "L 1"]);
    let just_over = available(&app, find(window(9, 11), Some("12000.001"), None))
        .await
        .unwrap();
    assert_eq!(plates(&just_over), ["L 1", "F 1"]);
    // A window that only touches the booking (8-12) and the maintenance (6-10) is free.
    let after = available(&app, find(window(12, 16), Some("10000"), None))
        .await
        .unwrap();
    assert_eq!(plates(&after), ["M 1", "B 1", "G 1", "L 1", "F 1"]);
    // Overlapping either by a single hour is not.
    let overlapping = available(&app, find(window(11, 16), Some("10000"), None))
        .await
        .unwrap();
    assert_eq!(plates(&overlapping), ["M 1", "G 1", "L 1", "F 1"]);
    let before = available(&app, find(window(2, 7), Some("10000"), None))
        .await
        .unwrap();
    assert_eq!(plates(&before), ["M 1", "B 1", "L 1", "F 1"]);

    let first = available(
        &app,
        pb::FindAvailableTrucksRequest {
            page_size: 2,
            ..find(window(9, 11), None, None)
        },
    )
    .await
    .unwrap();
    assert_eq!(ids(&first), [small.id.as_str(), medium.id.as_str()]);
}

#[tokio::test]
async fn a_cancelled_assignment_frees_the_truck_for_its_window() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-CA 1")).await;
    let ann = app.create_driver(driver("Ann")).await;
    let booked = app.assign(&truck, &ann, window(8, 12)).await.unwrap();
    assert!(
        available(&app, find(window(10, 11), None, None))
            .await
            .unwrap()
            .is_empty()
    );
    app.client()
        .await
        .cancel_assignment(authed(
            &app.admin_token,
            pb::CancelAssignmentRequest {
                id: booked.id,
                etag: String::new(),
                reason: "postponed".into(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        ids(&available(&app, find(window(10, 11), None, None))
            .await
            .unwrap()),
        [truck.id.as_str()]
    );
}

#[tokio::test]
async fn finding_trucks_needs_a_window_that_ends_after_it_starts_and_valid_minimums() {
    let app = TestApp::spawn().await;
    let missing = expect_code(
        available(
            &app,
            pb::FindAvailableTrucksRequest {
                window: None,
                ..find(window(8, 9), None, None)
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&missing), ["window"]);
    for reversed in [window(12, 8), window(8, 8)] {
        let err = expect_code(
            available(&app, find(reversed, None, None)).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), ["window.end_time"]);
    }
    let open_ended = expect_code(
        available(
            &app,
            find(
                types::TimeWindow {
                    start_time: Some(common::at(8)),
                    end_time: None,
                },
                None,
                None,
            ),
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&open_ended), ["window.end_time"]);
    let everything = expect_code(
        available(
            &app,
            pb::FindAvailableTrucksRequest {
                window: None,
                min_payload_kg: decimal("1e3"),
                min_volume_m3: decimal("-1"),
                page_size: -5,
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&everything),
        ["window", "min_payload_kg", "min_volume_m3", "page_size"]
    );
}

#[tokio::test]
async fn fleet_managers_and_admins_write_trucks_and_everyone_else_only_reads() {
    let app = TestApp::spawn().await;
    let manager = app
        .token("m@fleet.test", &[idpb::Role::FleetManager], None)
        .await;
    let dispatcher = app
        .token("d@fleet.test", &[idpb::Role::Dispatcher], None)
        .await;
    let auditor = app
        .token("a@fleet.test", &[idpb::Role::Auditor], None)
        .await;
    let dan = app.create_driver(driver("Dan")).await;
    let driver_user = app
        .token(
            "dan@fleet.test",
            &[idpb::Role::Driver],
            Some(dan.id.parse().unwrap()),
        )
        .await;
    let mut client = app.client().await;

    // A fleet manager does all of it.
    let truck = app
        .create_truck_as(&manager, lorry("B-PM 1"))
        .await
        .unwrap();
    let truck = update(
        &mut client,
        &manager,
        pb::Truck {
            odometer_km: 10,
            ..truck
        },
        &["odometer_km"],
    )
    .await
    .unwrap();
    let truck = delete(&mut client, &manager, &truck.id, &truck.etag)
        .await
        .unwrap();
    let truck = undelete(&mut client, &manager, &truck.id, &truck.etag)
        .await
        .unwrap();
    // So does an admin.
    let admins = app.create_truck(lorry("B-PA 1")).await;
    update(
        &mut client,
        &app.admin_token,
        pb::Truck {
            odometer_km: 20,
            ..admins.clone()
        },
        &["odometer_km"],
    )
    .await
    .unwrap();
    let deleted = delete(&mut client, &app.admin_token, &admins.id, "")
        .await
        .unwrap();
    undelete(&mut client, &app.admin_token, &deleted.id, "")
        .await
        .unwrap();
    let version_before = stored(&app, &truck.id).await;

    for (who, token) in [
        ("dispatcher", &dispatcher),
        ("auditor", &auditor),
        ("driver", &driver_user),
    ] {
        let denied = expect_code(
            app.create_truck_as(token, lorry("B-PX 1")).await,
            Code::PermissionDenied,
        );
        assert!(
            denied.message().contains("fleet.write"),
            "{who}: {}",
            denied.message()
        );
        expect_code(
            update(
                &mut client,
                token,
                pb::Truck {
                    odometer_km: 99,
                    ..truck.clone()
                },
                &["odometer_km"],
            )
            .await,
            Code::PermissionDenied,
        );
        expect_code(
            delete(&mut client, token, &truck.id, "").await,
            Code::PermissionDenied,
        );
        expect_code(
            undelete(&mut client, token, &truck.id, "").await,
            Code::PermissionDenied,
        );

        // But each of them reads.
        assert_eq!(
            get(&mut client, token, &truck.id).await.unwrap().id,
            truck.id,
            "{who}"
        );
        let listed = list(&mut client, token, pb::ListTrucksRequest::default())
            .await
            .unwrap();
        assert_eq!(listed.trucks.len(), 2, "{who}");
        let free = client
            .find_available_trucks(authed(token, find(window(8, 9), None, None)))
            .await
            .unwrap()
            .into_inner()
            .trucks;
        assert_eq!(free.len(), 2, "{who}");
    }
    assert_eq!(stored(&app, &truck.id).await, version_before);
    assert_eq!(truck_rows(&app).await, 2);
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-UA 1")).await;
    let mut client = app.client().await;
    expect_code(
        client
            .get_truck(tonic::Request::new(pb::GetTruckRequest {
                id: truck.id.clone(),
            }))
            .await,
        Code::Unauthenticated,
    );
    expect_code(
        client
            .list_trucks(tonic::Request::new(pb::ListTrucksRequest::default()))
            .await,
        Code::Unauthenticated,
    );
    expect_code(
        client
            .create_truck(tonic::Request::new(pb::CreateTruckRequest {
                request_id: String::new(),
                truck: Some(lorry("B-UA 2")),
            }))
            .await,
        Code::Unauthenticated,
    );
    expect_code(
        get(&mut client, "not-a-token", &truck.id).await,
        Code::Unauthenticated,
    );
    expect_code(
        app.create_truck_as("not-a-token", lorry("B-UA 3")).await,
        Code::Unauthenticated,
    );
    assert_eq!(truck_rows(&app).await, 1);
}

#[tokio::test]
async fn another_tenant_can_neither_see_nor_change_the_first_tenants_trucks() {
    let app = TestApp::spawn().await;
    let ours = app.create_truck(lorry("B-TN 1")).await;
    let gone = app.create_truck(lorry("B-TN 2")).await;
    let mut client = app.client().await;
    let gone = delete(&mut client, &app.admin_token, &gone.id, "")
        .await
        .unwrap();
    let (_, theirs) = app.identity.other_tenant("Other").await.unwrap();

    expect_code(get(&mut client, &theirs, &ours.id).await, Code::NotFound);
    expect_code(get(&mut client, &theirs, &gone.id).await, Code::NotFound);
    let listed = list(
        &mut client,
        &theirs,
        pb::ListTrucksRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(listed.trucks.is_empty(), "{:?}", listed.trucks);
    expect_code(
        update(
            &mut client,
            &theirs,
            pb::Truck {
                odometer_km: 666,
                ..ours.clone()
            },
            &["odometer_km"],
        )
        .await,
        Code::NotFound,
    );
    expect_code(
        delete(&mut client, &theirs, &ours.id, "").await,
        Code::NotFound,
    );
    expect_code(
        undelete(&mut client, &theirs, &gone.id, "").await,
        Code::NotFound,
    );
    let free = client
        .find_available_trucks(authed(&theirs, find(window(8, 9), None, None)))
        .await
        .unwrap()
        .into_inner()
        .trucks;
    assert!(free.is_empty());

    // Plates and VINs are unique per tenant only.
    let twin = app
        .create_truck_as(
            &theirs,
            pb::Truck {
                vin: ours.vin.clone(),
                ..lorry("B-TN 1")
            },
        )
        .await
        .unwrap();
    assert_ne!(twin.id, ours.id);
    assert_eq!(
        list(
            &mut client,
            &app.admin_token,
            pb::ListTrucksRequest::default()
        )
        .await
        .unwrap()
        .trucks,
        std::slice::from_ref(&ours)
    );
    assert_eq!(
        stored(&app, &ours.id).await,
        ("B-TN 1".to_owned(), 0, 1, false)
    );
    assert!(stored(&app, &gone.id).await.3, "still deleted");

    // A request id is the tenant's own: the same one elsewhere is a new create, not a replay.
    let request = pb::CreateTruckRequest {
        request_id: Uuid::now_v7().to_string(),
        truck: Some(lorry("B-TN 3")),
    };
    let mine = client
        .create_truck(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner()
        .truck
        .unwrap();
    let theirs_too = client
        .create_truck(authed(&theirs, request))
        .await
        .unwrap()
        .into_inner()
        .truck
        .unwrap();
    assert_ne!(mine.id, theirs_too.id);
    expect_code(get(&mut client, &theirs, &mine.id).await, Code::NotFound);
    assert_eq!(truck_rows(&app).await, 5);
}

/// Runs `calls` at once, each on its own connection, and returns their results in order.
async fn at_once<T, F>(app: &TestApp, calls: Vec<F>) -> Vec<Result<T, Status>>
where
    T: Send + 'static,
    F: FnOnce(
            FleetServiceClient<Channel>,
        ) -> futures::future::BoxFuture<'static, Result<T, Status>>
        + Send
        + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(calls.len()));
    let mut handles = Vec::new();
    for call in calls {
        let client = app.client().await;
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            call(client).await
        }));
    }
    futures::future::join_all(handles)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn ten_simultaneous_creates_of_one_plate_leave_one_truck_and_nine_already_exists() {
    let app = TestApp::spawn().await;
    let calls = (0..10)
        .map(|i| {
            let token = app.admin_token.clone();
            let plate = if i % 2 == 0 { "B-RC 1" } else { "brc1" };
            let truck = lorry(plate);
            move |mut client: FleetServiceClient<Channel>| -> futures::future::BoxFuture<'static, _> {
                Box::pin(async move {
                    client
                        .create_truck(authed(
                            &token,
                            pb::CreateTruckRequest {
                                request_id: Uuid::now_v7().to_string(),
                                truck: Some(truck),
                            },
                        ))
                        .await
                        .map(|r| r.into_inner())
                })
            }
        })
        .collect();
    let results = at_once(&app, calls).await;
    let failures: Vec<&Status> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(results.len() - failures.len(), 1, "{failures:?}");
    for status in failures {
        assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
        assert_eq!(violated_fields(status), ["truck.plate"]);
    }
    assert_eq!(truck_rows(&app).await, 1);
}

#[tokio::test]
async fn ten_simultaneous_retries_of_one_create_make_one_truck() {
    let app = TestApp::spawn().await;
    let request = pb::CreateTruckRequest {
        request_id: Uuid::now_v7().to_string(),
        truck: Some(lorry("B-RR 1")),
    };
    let calls = (0..10)
        .map(|_| {
            let token = app.admin_token.clone();
            let request = request.clone();
            move |mut client: FleetServiceClient<Channel>| -> futures::future::BoxFuture<'static, _> {
                Box::pin(async move {
                    client
                        .create_truck(authed(&token, request))
                        .await
                        .map(|r| r.into_inner())
                })
            }
        })
        .collect();
    let results = at_once(&app, calls).await;
    let first = results[0].clone().unwrap();
    for result in results {
        assert_eq!(result.unwrap(), first);
    }
    assert_eq!(truck_rows(&app).await, 1);
}

#[tokio::test]
async fn of_ten_simultaneous_updates_with_one_etag_one_wins_and_nine_are_aborted() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-RU 1")).await;
    let calls = (1..=10)
        .map(|km| {
            let token = app.admin_token.clone();
            let truck = pb::Truck {
                odometer_km: km,
                ..truck.clone()
            };
            move |mut client: FleetServiceClient<Channel>| -> futures::future::BoxFuture<'static, _> {
                Box::pin(async move { update(&mut client, &token, truck, &["odometer_km"]).await })
            }
        })
        .collect();
    let results = at_once(&app, calls).await;
    let winners: Vec<&pb::Truck> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for result in &results {
        if let Err(status) = result {
            assert_eq!(status.code(), Code::Aborted, "{status:?}");
        }
    }
    let (_, odometer, version, _) = stored(&app, &truck.id).await;
    assert_eq!((odometer, version), (winners[0].odometer_km, 2));
}
