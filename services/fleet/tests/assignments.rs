//! Assignments end to end: every reason a booking is refused, idempotent retries, cancelling,
//! listing, the race of twenty bookings for one truck (and one driver), and driver users who
//! see only their own.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    TestApp, authed, driver, expect_code, hours_from_now, lorry, preconditions, violated_fields,
    window,
};
use logistics_proto::fleet::v1 as pb;
use logistics_proto::identity::v1 as idpb;
use prost_types::FieldMask;
use tonic::Code;
use uuid::Uuid;

fn subjects(kinds: &[(&str, &str)]) -> Vec<(String, String)> {
    kinds
        .iter()
        .map(|(k, s)| ((*k).to_owned(), (*s).to_owned()))
        .collect()
}

async fn active_assignments(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM fleet.assignments WHERE status = 'active'")
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_booked_truck_or_driver_is_refused_for_an_overlapping_window_but_not_back_to_back() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-AA 1")).await;
    let (ann, bob) = (
        app.create_driver(driver("Ann")).await,
        app.create_driver(driver("Bob")).await,
    );
    let first = app.assign(&truck, &ann, window(8, 12)).await.unwrap();
    assert_eq!(first.status, pb::AssignmentStatus::Active as i32);
    assert_eq!(first.window, Some(window(8, 12)));

    let err = expect_code(
        app.assign(&truck, &bob, window(11, 14)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&err), subjects(&[("TRUCK_BOOKED", "truck")]));
    let other = app.create_truck(lorry("B-AA 2")).await;
    let err = expect_code(
        app.assign(&other, &ann, window(10, 11)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        subjects(&[("DRIVER_BOOKED", "driver")])
    );

    app.assign(&truck, &bob, window(12, 16)).await.unwrap();
    assert_eq!(active_assignments(&app).await, 2);
}

#[tokio::test]
async fn every_reason_a_booking_is_impossible_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let truck = app.create_truck(lorry("B-BB 1")).await;
    let expiring = app
        .create_driver(pb::Driver {
            licence_expire_time: Some(common::at(10)),
            ..driver("Cem")
        })
        .await;
    let retired = client
        .update_truck(authed(
            &app.admin_token,
            pb::UpdateTruckRequest {
                truck: Some(pb::Truck {
                    status: pb::TruckStatus::Retired as i32,
                    ..truck.clone()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["status".into()],
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .truck
        .unwrap();
    let err = expect_code(
        app.assign(&retired, &expiring, window(8, 12)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        subjects(&[("TRUCK_NOT_ACTIVE", "truck"), ("LICENCE_EXPIRES", "driver")])
    );
    assert!(err.message().contains("precondition"), "{}", err.message());
    assert_eq!(active_assignments(&app).await, 0);
}

#[tokio::test]
async fn a_truck_with_maintenance_scheduled_in_the_window_cannot_be_booked() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-CC 1")).await;
    let ann = app.create_driver(driver("Ann")).await;
    app.client()
        .await
        .create_maintenance_record(authed(
            &app.admin_token,
            pb::CreateMaintenanceRecordRequest {
                request_id: String::new(),
                maintenance_record: Some(pb::MaintenanceRecord {
                    truck_id: truck.id.clone(),
                    kind: pb::MaintenanceKind::Service as i32,
                    scheduled_window: Some(window(6, 10)),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let err = expect_code(
        app.assign(&truck, &ann, window(9, 12)).await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        subjects(&[("TRUCK_IN_MAINTENANCE", "truck")])
    );
    app.assign(&truck, &ann, window(10, 12)).await.unwrap();
}

#[tokio::test]
async fn bad_booking_requests_list_every_violation_and_unknown_resources_are_not_found() {
    let app = TestApp::spawn().await;
    let err = expect_code(
        app.client()
            .await
            .create_assignment(authed(
                &app.admin_token,
                pb::CreateAssignmentRequest {
                    request_id: "not-a-uuid".into(),
                    truck_id: String::new(),
                    driver_id: "x".into(),
                    shipment_id: String::new(),
                    window: Some(window(12, 8)),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "request_id",
            "truck_id",
            "driver_id",
            "shipment_id",
            "window.end_time"
        ]
    );
    let ann = app.create_driver(driver("Ann")).await;
    let err = expect_code(
        app.assign_as(
            &app.admin_token,
            &Uuid::now_v7().to_string(),
            &ann.id,
            window(8, 9),
        )
        .await,
        Code::NotFound,
    );
    assert!(err.message().contains("Truck"), "{}", err.message());
}

#[tokio::test]
async fn a_retried_booking_returns_the_same_assignment_and_books_once() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-DD 1")).await;
    let ann = app.create_driver(driver("Ann")).await;
    let request = pb::CreateAssignmentRequest {
        request_id: Uuid::now_v7().to_string(),
        truck_id: truck.id.clone(),
        driver_id: ann.id.clone(),
        shipment_id: Uuid::now_v7().to_string(),
        window: Some(window(8, 12)),
    };
    let mut client = app.client().await;
    let first = client
        .create_assignment(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .create_assignment(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(active_assignments(&app).await, 1);

    let changed = pb::CreateAssignmentRequest {
        window: Some(window(13, 14)),
        ..request
    };
    let err = expect_code(
        client
            .create_assignment(authed(&app.admin_token, changed))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["request_id"]);
}

/// Fires `bookings` at once, each on its own connection; returns the successes and the failures.
async fn race(
    app: &TestApp,
    bookings: Vec<(String, String)>,
) -> (Vec<pb::Assignment>, Vec<tonic::Status>) {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(bookings.len()));
    let mut calls = Vec::new();
    for (truck_id, driver_id) in bookings {
        let mut client = app.client().await;
        let barrier = barrier.clone();
        let token = app.admin_token.clone();
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            client
                .create_assignment(authed(
                    &token,
                    pb::CreateAssignmentRequest {
                        request_id: Uuid::now_v7().to_string(),
                        truck_id,
                        driver_id,
                        shipment_id: Uuid::now_v7().to_string(),
                        window: Some(window(8, 14)),
                    },
                ))
                .await
                .map(|r| r.into_inner().assignment.unwrap())
        }));
    }
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for result in futures::future::join_all(calls).await {
        match result.unwrap() {
            Ok(a) => ok.push(a),
            Err(status) => failed.push(status),
        }
    }
    (ok, failed)
}

#[tokio::test]
async fn twenty_simultaneous_bookings_of_one_truck_leave_exactly_one() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("RACE 1")).await;
    let mut bookings = Vec::new();
    for i in 0..20 {
        let d = app.create_driver(driver(&format!("Driver {i}"))).await;
        bookings.push((truck.id.clone(), d.id));
    }
    let (ok, failed) = race(&app, bookings).await;
    assert_eq!(ok.len(), 1, "{failed:?}");
    assert_eq!(failed.len(), 19);
    for status in &failed {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(
            preconditions(status),
            subjects(&[("TRUCK_BOOKED", "truck")])
        );
    }
    assert_eq!(active_assignments(&app).await, 1);
}

#[tokio::test]
async fn twenty_simultaneous_bookings_of_one_driver_across_trucks_leave_exactly_one() {
    let app = TestApp::spawn().await;
    let ann = app.create_driver(driver("Ann")).await;
    let mut bookings = Vec::new();
    for i in 0..20 {
        let t = app.create_truck(lorry(&format!("T {i}"))).await;
        bookings.push((t.id, ann.id.clone()));
    }
    let (ok, failed) = race(&app, bookings).await;
    assert_eq!(ok.len(), 1, "{failed:?}");
    for status in &failed {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(
            preconditions(status),
            subjects(&[("DRIVER_BOOKED", "driver")])
        );
    }
    assert_eq!(active_assignments(&app).await, 1);
}

#[tokio::test]
async fn cancelling_frees_truck_and_driver_and_a_second_cancel_is_a_failed_precondition() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-EE 1")).await;
    let ann = app.create_driver(driver("Ann")).await;
    let booked = app.assign(&truck, &ann, window(8, 12)).await.unwrap();
    let mut client = app.client().await;

    let stale = expect_code(
        client
            .cancel_assignment(authed(
                &app.admin_token,
                pb::CancelAssignmentRequest {
                    id: booked.id.clone(),
                    etag: "\"99\"".into(),
                    reason: String::new(),
                },
            ))
            .await,
        Code::Aborted,
    );
    assert!(!stale.message().is_empty());
    let cancelled = client
        .cancel_assignment(authed(
            &app.admin_token,
            pb::CancelAssignmentRequest {
                id: booked.id.clone(),
                etag: booked.etag.clone(),
                reason: "customer postponed".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .assignment
        .unwrap();
    assert_eq!(cancelled.status, pb::AssignmentStatus::Cancelled as i32);
    assert!(cancelled.cancel_time.is_some());
    assert_eq!(cancelled.cancel_reason, "customer postponed");
    app.assign(&truck, &ann, window(9, 11)).await.unwrap();

    let again = expect_code(
        client
            .cancel_assignment(authed(
                &app.admin_token,
                pb::CancelAssignmentRequest {
                    id: booked.id.clone(),
                    etag: String::new(),
                    reason: String::new(),
                },
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&again),
        subjects(&[("NOT_ACTIVE", "assignment")])
    );
}

#[tokio::test]
async fn assignments_list_by_truck_driver_or_shipment_and_window_in_pages() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-FF 1")).await;
    let ann = app.create_driver(driver("Ann")).await;
    let mut ids = Vec::new();
    for day in 0..7 {
        let a = app
            .assign(&truck, &ann, window(day * 24 + 8, day * 24 + 12))
            .await
            .unwrap();
        ids.push(a.id);
    }
    let mut client = app.client().await;
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_assignments(authed(
                &app.admin_token,
                pb::ListAssignmentsRequest {
                    truck_id: truck.id.clone(),
                    page_size: 3,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.assignments.len() <= 3);
        listed.extend(page.assignments.into_iter().map(|a| a.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(listed, ids, "in window order, each once");

    let in_window = client
        .list_assignments(authed(
            &app.admin_token,
            pb::ListAssignmentsRequest {
                driver_id: ann.id.clone(),
                window: Some(window(30, 60)),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .assignments;
    assert_eq!(
        in_window.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [ids[1].as_str(), ids[2].as_str()]
    );

    let unscoped = expect_code(
        client
            .list_assignments(authed(
                &app.admin_token,
                pb::ListAssignmentsRequest::default(),
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&unscoped), ["truck_id"]);
}

#[tokio::test]
async fn a_driver_user_sees_only_its_own_driver_record_and_assignments() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-GG 1")).await;
    let (ann, bob) = (
        app.create_driver(driver("Ann")).await,
        app.create_driver(driver("Bob")).await,
    );
    let anns = app.assign(&truck, &ann, window(8, 10)).await.unwrap();
    let bobs = app.assign(&truck, &bob, window(10, 12)).await.unwrap();
    let ann_token = app
        .token(
            "ann@fleet.test",
            &[idpb::Role::Driver],
            Some(ann.id.parse().unwrap()),
        )
        .await;
    let mut client = app.client().await;

    let own = client
        .get_assignment(authed(
            &ann_token,
            pb::GetAssignmentRequest {
                id: anns.id.clone(),
            },
        ))
        .await
        .unwrap();
    assert_eq!(own.into_inner().assignment.unwrap().id, anns.id);
    expect_code(
        client
            .get_assignment(authed(
                &ann_token,
                pb::GetAssignmentRequest {
                    id: bobs.id.clone(),
                },
            ))
            .await,
        Code::NotFound,
    );
    let listed = client
        .list_assignments(authed(
            &ann_token,
            pb::ListAssignmentsRequest {
                truck_id: truck.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .assignments;
    assert_eq!(
        listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        [anns.id.as_str()]
    );
    let mine = client
        .list_assignments(authed(&ann_token, pb::ListAssignmentsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .assignments;
    assert_eq!(mine.len(), 1);
    expect_code(
        client
            .get_driver(authed(
                &ann_token,
                pb::GetDriverRequest { id: bob.id.clone() },
            ))
            .await,
        Code::NotFound,
    );
    let drivers = client
        .list_drivers(authed(&ann_token, pb::ListDriversRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .drivers;
    assert_eq!(
        drivers.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [ann.id.as_str()]
    );
    // And she cannot book or cancel anything.
    let denied = expect_code(
        app.assign_as(&ann_token, &truck.id, &ann.id, window(20, 22))
            .await,
        Code::PermissionDenied,
    );
    assert!(denied.message().contains("fleet.assignments.write"));
}

#[tokio::test]
async fn dispatchers_book_fleet_managers_do_not_and_auditors_only_read() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-HH 1")).await;
    let ann = app.create_driver(driver("Ann")).await;
    let dispatcher = app
        .token("d@fleet.test", &[idpb::Role::Dispatcher], None)
        .await;
    let manager = app
        .token("m@fleet.test", &[idpb::Role::FleetManager], None)
        .await;
    let auditor = app
        .token("a@fleet.test", &[idpb::Role::Auditor], None)
        .await;
    app.assign_as(&dispatcher, &truck.id, &ann.id, window(8, 9))
        .await
        .unwrap();
    for token in [&manager, &auditor] {
        expect_code(
            app.assign_as(token, &truck.id, &ann.id, window(10, 11))
                .await,
            Code::PermissionDenied,
        );
    }
    expect_code(
        app.create_truck_as(&dispatcher, lorry("B-HH 2")).await,
        Code::PermissionDenied,
    );
    app.create_truck_as(&manager, lorry("B-HH 3"))
        .await
        .unwrap();
    let listed = app
        .client()
        .await
        .list_assignments(authed(
            &auditor,
            pb::ListAssignmentsRequest {
                truck_id: truck.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .assignments;
    assert_eq!(listed.len(), 1);
}

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

#[tokio::test]
async fn a_truck_or_driver_with_a_coming_assignment_keeps_what_the_booking_needs() {
    let app = TestApp::spawn().await;
    let truck = app.create_truck(lorry("B-KK 1")).await;
    let ann = app.create_driver(driver("Ann")).await;
    let booked = app
        .assign(&truck, &ann, hours_from_now(24, 30))
        .await
        .unwrap();
    let mut client = app.client().await;

    let retire = pb::UpdateTruckRequest {
        truck: Some(pb::Truck {
            status: pb::TruckStatus::Retired as i32,
            ..truck.clone()
        }),
        update_mask: mask(&["status"]),
    };
    let err = expect_code(
        client
            .update_truck(authed(&app.admin_token, retire.clone()))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        subjects(&[("TRUCK_HAS_ASSIGNMENTS", "truck")])
    );
    let err = expect_code(
        client
            .delete_truck(authed(
                &app.admin_token,
                pb::DeleteTruckRequest {
                    id: truck.id.clone(),
                    etag: String::new(),
                },
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        subjects(&[("TRUCK_HAS_ASSIGNMENTS", "truck")])
    );

    let shorter_licence = pb::UpdateDriverRequest {
        driver: Some(pb::Driver {
            licence_expire_time: hours_from_now(26, 27).start_time,
            ..ann.clone()
        }),
        update_mask: mask(&["licence_expire_time"]),
    };
    let err = expect_code(
        client
            .update_driver(authed(&app.admin_token, shorter_licence.clone()))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        subjects(&[("LICENCE_ENDS_BEFORE_ASSIGNMENT", "driver")])
    );
    let inactive = pb::UpdateDriverRequest {
        driver: Some(pb::Driver {
            status: pb::DriverStatus::Inactive as i32,
            // Any version: the licence change below comes first.
            etag: String::new(),
            ..ann.clone()
        }),
        update_mask: mask(&["status"]),
    };
    let err = expect_code(
        client
            .update_driver(authed(&app.admin_token, inactive.clone()))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        subjects(&[("DRIVER_HAS_ASSIGNMENTS", "driver")])
    );

    // Once the booking is cancelled, all of it is allowed.
    client
        .cancel_assignment(authed(
            &app.admin_token,
            pb::CancelAssignmentRequest {
                id: booked.id,
                etag: String::new(),
                reason: "re-planned".into(),
            },
        ))
        .await
        .unwrap();
    client
        .update_driver(authed(&app.admin_token, shorter_licence))
        .await
        .unwrap();
    client
        .update_driver(authed(&app.admin_token, inactive))
        .await
        .unwrap();
    client
        .update_truck(authed(&app.admin_token, retire))
        .await
        .unwrap();
}
