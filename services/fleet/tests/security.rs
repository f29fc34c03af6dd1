//! Who may call what and see which rows: driver users confined to their own record and kept
//! from every write, the permissions of each role, tenants isolated through the API and by
//! row-level security underneath it, and licence numbers and phones kept out of logs and error
//! answers.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, authed, driver, expect_code, lorry, violated_fields, window};
use fleet::schema::SCHEMA;
use logistics_proto::fleet::v1 as pb;
use logistics_proto::identity::v1 as idpb;
use prost_types::FieldMask;
use tonic::{Code, Request, Status};
use uuid::Uuid;

/// Every table of the schema.
const FLEET_TABLES: &[&str] = &[
    "trucks",
    "drivers",
    "maintenance_records",
    "assignments",
    "idempotency_keys",
];

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn request_id() -> String {
    Uuid::now_v7().to_string()
}

/// A request carrying `token`, or no credentials at all when `token` is empty.
fn call<T>(token: &str, message: T) -> Request<T> {
    if token.is_empty() {
        Request::new(message)
    } else {
        authed(token, message)
    }
}

/// The code of a call's outcome (`Ok` for a success).
fn code<T>(result: Result<T, Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// A truck, a driver, a maintenance record of the truck and an assignment of both, created by
/// the admin of `token`'s tenant.
#[derive(Debug, Clone)]
struct Fleet {
    truck: pb::Truck,
    driver: pb::Driver,
    record: pb::MaintenanceRecord,
    assignment: pb::Assignment,
}

async fn create_record(
    app: &TestApp,
    token: &str,
    truck_id: &str,
    from: i64,
) -> Result<pb::MaintenanceRecord, Status> {
    app.client()
        .await
        .create_maintenance_record(call(
            token,
            pb::CreateMaintenanceRecordRequest {
                request_id: request_id(),
                maintenance_record: Some(pb::MaintenanceRecord {
                    truck_id: truck_id.to_owned(),
                    kind: pb::MaintenanceKind::Inspection as i32,
                    scheduled_window: Some(window(from, from + 2)),
                    notes: "annual inspection".into(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .map(|r| r.into_inner().maintenance_record.unwrap())
}

async fn fleet_of(app: &TestApp, admin: &str, plate: &str, name: &str) -> Fleet {
    let truck = app.create_truck_as(admin, lorry(plate)).await.unwrap();
    let driver = app.create_driver_as(admin, driver(name)).await.unwrap();
    let record = create_record(app, admin, &truck.id, 100).await.unwrap();
    let assignment = app
        .assign_as(admin, &truck.id, &driver.id, window(8, 12))
        .await
        .unwrap();
    Fleet {
        truck,
        driver,
        record,
        assignment,
    }
}

// Reads and writes, one RPC each, with `token` ---------------------------------------------------

async fn get_truck(app: &TestApp, token: &str, id: &str) -> Result<pb::Truck, Status> {
    app.client()
        .await
        .get_truck(call(token, pb::GetTruckRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().truck.unwrap())
}

async fn list_trucks(app: &TestApp, token: &str) -> Result<Vec<String>, Status> {
    app.client()
        .await
        .list_trucks(call(
            token,
            pb::ListTrucksRequest {
                show_deleted: true,
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().trucks.into_iter().map(|t| t.id).collect())
}

async fn get_driver(app: &TestApp, token: &str, id: &str) -> Result<pb::Driver, Status> {
    app.client()
        .await
        .get_driver(call(token, pb::GetDriverRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().driver.unwrap())
}

async fn list_drivers(app: &TestApp, token: &str) -> Result<Vec<String>, Status> {
    app.client()
        .await
        .list_drivers(call(
            token,
            pb::ListDriversRequest {
                show_deleted: true,
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().drivers.into_iter().map(|d| d.id).collect())
}

async fn available_drivers(app: &TestApp, token: &str) -> Result<Vec<String>, Status> {
    app.client()
        .await
        .find_available_drivers(call(
            token,
            pb::FindAvailableDriversRequest {
                window: Some(window(20, 22)),
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().drivers.into_iter().map(|d| d.id).collect())
}

async fn available_trucks(app: &TestApp, token: &str) -> Result<Vec<String>, Status> {
    app.client()
        .await
        .find_available_trucks(call(
            token,
            pb::FindAvailableTrucksRequest {
                window: Some(window(20, 22)),
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().trucks.into_iter().map(|t| t.id).collect())
}

async fn get_record(app: &TestApp, token: &str, id: &str) -> Result<pb::MaintenanceRecord, Status> {
    app.client()
        .await
        .get_maintenance_record(call(
            token,
            pb::GetMaintenanceRecordRequest { id: id.to_owned() },
        ))
        .await
        .map(|r| r.into_inner().maintenance_record.unwrap())
}

async fn list_records(app: &TestApp, token: &str, truck_id: &str) -> Result<Vec<String>, Status> {
    app.client()
        .await
        .list_maintenance_records(call(
            token,
            pb::ListMaintenanceRecordsRequest {
                truck_id: truck_id.to_owned(),
                show_deleted: true,
                ..Default::default()
            },
        ))
        .await
        .map(|r| {
            r.into_inner()
                .maintenance_records
                .into_iter()
                .map(|m| m.id)
                .collect()
        })
}

async fn get_assignment(app: &TestApp, token: &str, id: &str) -> Result<pb::Assignment, Status> {
    app.client()
        .await
        .get_assignment(call(token, pb::GetAssignmentRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().assignment.unwrap())
}

async fn list_assignments(
    app: &TestApp,
    token: &str,
    truck_id: &str,
) -> Result<Vec<String>, Status> {
    app.client()
        .await
        .list_assignments(call(
            token,
            pb::ListAssignmentsRequest {
                truck_id: truck_id.to_owned(),
                show_cancelled: true,
                ..Default::default()
            },
        ))
        .await
        .map(|r| {
            r.into_inner()
                .assignments
                .into_iter()
                .map(|a| a.id)
                .collect()
        })
}

async fn update_truck(app: &TestApp, token: &str, id: &str) -> Result<pb::Truck, Status> {
    app.client()
        .await
        .update_truck(call(
            token,
            pb::UpdateTruckRequest {
                truck: Some(pb::Truck {
                    id: id.to_owned(),
                    make: "Scania".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["make"]),
            },
        ))
        .await
        .map(|r| r.into_inner().truck.unwrap())
}

async fn delete_truck(app: &TestApp, token: &str, id: &str) -> Result<pb::Truck, Status> {
    app.client()
        .await
        .delete_truck(call(
            token,
            pb::DeleteTruckRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().truck.unwrap())
}

async fn undelete_truck(app: &TestApp, token: &str, id: &str) -> Result<pb::Truck, Status> {
    app.client()
        .await
        .undelete_truck(call(
            token,
            pb::UndeleteTruckRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().truck.unwrap())
}

async fn update_driver(app: &TestApp, token: &str, id: &str) -> Result<pb::Driver, Status> {
    app.client()
        .await
        .update_driver(call(
            token,
            pb::UpdateDriverRequest {
                driver: Some(pb::Driver {
                    id: id.to_owned(),
                    name: "Renamed".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            },
        ))
        .await
        .map(|r| r.into_inner().driver.unwrap())
}

async fn delete_driver(app: &TestApp, token: &str, id: &str) -> Result<pb::Driver, Status> {
    app.client()
        .await
        .delete_driver(call(
            token,
            pb::DeleteDriverRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().driver.unwrap())
}

async fn undelete_driver(app: &TestApp, token: &str, id: &str) -> Result<pb::Driver, Status> {
    app.client()
        .await
        .undelete_driver(call(
            token,
            pb::UndeleteDriverRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().driver.unwrap())
}

async fn update_record(
    app: &TestApp,
    token: &str,
    id: &str,
) -> Result<pb::MaintenanceRecord, Status> {
    app.client()
        .await
        .update_maintenance_record(call(
            token,
            pb::UpdateMaintenanceRecordRequest {
                maintenance_record: Some(pb::MaintenanceRecord {
                    id: id.to_owned(),
                    notes: "changed".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["notes"]),
            },
        ))
        .await
        .map(|r| r.into_inner().maintenance_record.unwrap())
}

async fn delete_record(
    app: &TestApp,
    token: &str,
    id: &str,
) -> Result<pb::MaintenanceRecord, Status> {
    app.client()
        .await
        .delete_maintenance_record(call(
            token,
            pb::DeleteMaintenanceRecordRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().maintenance_record.unwrap())
}

async fn undelete_record(
    app: &TestApp,
    token: &str,
    id: &str,
) -> Result<pb::MaintenanceRecord, Status> {
    app.client()
        .await
        .undelete_maintenance_record(call(
            token,
            pb::UndeleteMaintenanceRecordRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().maintenance_record.unwrap())
}

async fn cancel(app: &TestApp, token: &str, id: &str) -> Result<pb::Assignment, Status> {
    app.client()
        .await
        .cancel_assignment(call(
            token,
            pb::CancelAssignmentRequest {
                id: id.to_owned(),
                etag: String::new(),
                reason: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().assignment.unwrap())
}

// Driver users ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_driver_user_reads_its_own_record_and_the_trucks_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let fleet = fleet_of(&app, &app.admin_token, "B-DU 1", "Ann").await;
    let ann = fleet.driver.clone();
    let bob = app.create_driver(driver("Bob")).await;
    let gone = app.create_driver(driver("Gone")).await;
    delete_driver(&app, &app.admin_token, &gone.id)
        .await
        .unwrap();
    let other_truck = app.create_truck(lorry("B-DU 2")).await;
    let token = app
        .token(
            "ann@fleet.test",
            &[idpb::Role::Driver],
            Some(ann.id.parse().unwrap()),
        )
        .await;

    // Her own record, opened; nobody else's.
    let own = get_driver(&app, &token, &ann.id).await.unwrap();
    assert_eq!(own.licence_number, ann.licence_number);
    assert_eq!(own.phone, ann.phone);
    for other in [&bob.id, &gone.id] {
        expect_code(get_driver(&app, &token, other).await, Code::NotFound);
    }
    assert_eq!(list_drivers(&app, &token).await.unwrap(), [ann.id.as_str()]);
    assert_eq!(
        available_drivers(&app, &token).await.unwrap(),
        [ann.id.as_str()]
    );
    // Trucks and their maintenance are not personal: she reads them all.
    assert_eq!(
        get_truck(&app, &token, &other_truck.id).await.unwrap(),
        other_truck
    );
    let mut trucks = list_trucks(&app, &token).await.unwrap();
    trucks.sort();
    let mut expected = vec![fleet.truck.id.clone(), other_truck.id.clone()];
    expected.sort();
    assert_eq!(trucks, expected);
    assert_eq!(available_trucks(&app, &token).await.unwrap().len(), 2);
    assert_eq!(
        get_record(&app, &token, &fleet.record.id).await.unwrap(),
        fleet.record
    );

    // Every write, even of her own record, is refused for want of the permission.
    let fleet_write: Vec<(&str, Result<(), Status>)> = vec![
        (
            "CreateTruck",
            app.create_truck_as(&token, lorry("B-DU 3")).await.map(drop),
        ),
        (
            "UpdateTruck",
            update_truck(&app, &token, &fleet.truck.id).await.map(drop),
        ),
        (
            "DeleteTruck",
            delete_truck(&app, &token, &fleet.truck.id).await.map(drop),
        ),
        (
            "UndeleteTruck",
            undelete_truck(&app, &token, &fleet.truck.id)
                .await
                .map(drop),
        ),
        (
            "CreateDriver",
            app.create_driver_as(&token, driver("Ann Again"))
                .await
                .map(drop),
        ),
        (
            "UpdateDriver own",
            update_driver(&app, &token, &ann.id).await.map(drop),
        ),
        (
            "UpdateDriver other",
            update_driver(&app, &token, &bob.id).await.map(drop),
        ),
        (
            "DeleteDriver own",
            delete_driver(&app, &token, &ann.id).await.map(drop),
        ),
        (
            "UndeleteDriver",
            undelete_driver(&app, &token, &gone.id).await.map(drop),
        ),
        (
            "CreateMaintenanceRecord",
            create_record(&app, &token, &fleet.truck.id, 200)
                .await
                .map(drop),
        ),
        (
            "UpdateMaintenanceRecord",
            update_record(&app, &token, &fleet.record.id)
                .await
                .map(drop),
        ),
        (
            "DeleteMaintenanceRecord",
            delete_record(&app, &token, &fleet.record.id)
                .await
                .map(drop),
        ),
        (
            "UndeleteMaintenanceRecord",
            undelete_record(&app, &token, &fleet.record.id)
                .await
                .map(drop),
        ),
    ];
    let assignments_write: Vec<(&str, Result<(), Status>)> = vec![
        (
            "CreateAssignment",
            app.assign_as(&token, &other_truck.id, &ann.id, window(30, 32))
                .await
                .map(drop),
        ),
        (
            "CancelAssignment own",
            cancel(&app, &token, &fleet.assignment.id).await.map(drop),
        ),
    ];
    for (permission, outcomes) in [
        ("fleet.write", fleet_write),
        ("fleet.assignments.write", assignments_write),
    ] {
        for (method, outcome) in outcomes {
            let status = match outcome {
                Ok(()) => panic!("a driver user's {method} succeeded"),
                Err(status) => status,
            };
            assert_eq!(
                status.code(),
                Code::PermissionDenied,
                "{method}: {status:?}"
            );
            assert!(
                status.message().contains(permission),
                "{method}: {}",
                status.message()
            );
        }
    }

    // Nothing changed.
    assert_eq!(
        get_driver(&app, &app.admin_token, &ann.id).await.unwrap(),
        ann
    );
    assert_eq!(
        get_truck(&app, &app.admin_token, &fleet.truck.id)
            .await
            .unwrap(),
        fleet.truck
    );
    assert_eq!(
        get_record(&app, &app.admin_token, &fleet.record.id)
            .await
            .unwrap(),
        fleet.record
    );
    assert_eq!(
        get_assignment(&app, &app.admin_token, &fleet.assignment.id)
            .await
            .unwrap(),
        fleet.assignment
    );
    assert!(
        get_driver(&app, &app.admin_token, &gone.id)
            .await
            .unwrap()
            .delete_time
            .is_some()
    );
}

// Permissions per role --------------------------------------------------------------------------

/// What a role may do with the fleet: read it, write trucks, drivers and maintenance, book and
/// cancel assignments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Allowed {
    read: bool,
    write: bool,
    book: bool,
}

/// Every fleet read with `token`: the RPC and its code.
async fn reads(app: &TestApp, token: &str, fleet: &Fleet) -> Vec<(&'static str, Code)> {
    vec![
        (
            "GetTruck",
            code(get_truck(app, token, &fleet.truck.id).await),
        ),
        ("ListTrucks", code(list_trucks(app, token).await)),
        (
            "FindAvailableTrucks",
            code(available_trucks(app, token).await),
        ),
        (
            "GetDriver",
            code(get_driver(app, token, &fleet.driver.id).await),
        ),
        ("ListDrivers", code(list_drivers(app, token).await)),
        (
            "FindAvailableDrivers",
            code(available_drivers(app, token).await),
        ),
        (
            "GetMaintenanceRecord",
            code(get_record(app, token, &fleet.record.id).await),
        ),
        (
            "ListMaintenanceRecords",
            code(list_records(app, token, &fleet.truck.id).await),
        ),
        (
            "GetAssignment",
            code(get_assignment(app, token, &fleet.assignment.id).await),
        ),
        (
            "ListAssignments",
            code(list_assignments(app, token, &fleet.truck.id).await),
        ),
    ]
}

/// Every truck, driver and maintenance write with `token`, on resources the admin made for
/// `slot`; the RPC and its code.
async fn writes(app: &TestApp, token: &str, fleet: &Fleet, slot: i64) -> Vec<(&'static str, Code)> {
    let truck = app.create_truck(lorry(&format!("W-{slot} 1"))).await;
    let person = app.create_driver(driver(&format!("Spare {slot}"))).await;
    let record = create_record(app, &app.admin_token, &fleet.truck.id, 1000 + slot * 10)
        .await
        .unwrap();
    vec![
        (
            "CreateTruck",
            code(
                app.create_truck_as(token, lorry(&format!("W-{slot} 2")))
                    .await,
            ),
        ),
        (
            "UpdateTruck",
            code(update_truck(app, token, &truck.id).await),
        ),
        (
            "DeleteTruck",
            code(delete_truck(app, token, &truck.id).await),
        ),
        (
            "UndeleteTruck",
            code(undelete_truck(app, token, &truck.id).await),
        ),
        (
            "CreateDriver",
            code(app.create_driver_as(token, driver("New")).await),
        ),
        (
            "UpdateDriver",
            code(update_driver(app, token, &person.id).await),
        ),
        (
            "DeleteDriver",
            code(delete_driver(app, token, &person.id).await),
        ),
        (
            "UndeleteDriver",
            code(undelete_driver(app, token, &person.id).await),
        ),
        (
            "CreateMaintenanceRecord",
            code(create_record(app, token, &fleet.truck.id, 1000 + slot * 10 + 4).await),
        ),
        (
            "UpdateMaintenanceRecord",
            code(update_record(app, token, &record.id).await),
        ),
        (
            "DeleteMaintenanceRecord",
            code(delete_record(app, token, &record.id).await),
        ),
        (
            "UndeleteMaintenanceRecord",
            code(undelete_record(app, token, &record.id).await),
        ),
    ]
}

/// Booking and cancelling with `token` in windows of `slot`; the RPC and its code.
async fn bookings(
    app: &TestApp,
    token: &str,
    fleet: &Fleet,
    slot: i64,
) -> Vec<(&'static str, Code)> {
    let from = 2000 + slot * 10;
    let booked = app
        .assign(&fleet.truck, &fleet.driver, window(from, from + 1))
        .await
        .unwrap();
    vec![
        (
            "CreateAssignment",
            code(
                app.assign_as(
                    token,
                    &fleet.truck.id,
                    &fleet.driver.id,
                    window(from + 2, from + 3),
                )
                .await,
            ),
        ),
        (
            "CancelAssignment",
            code(cancel(app, token, &booked.id).await),
        ),
    ]
}

#[tokio::test]
async fn each_role_reads_and_writes_exactly_what_its_permissions_allow() {
    let app = TestApp::spawn().await;
    let fleet = fleet_of(&app, &app.admin_token, "B-PT 1", "Ann").await;
    let (yes, no) = (true, false);
    let table: [(idpb::Role, Allowed); 7] = [
        (
            idpb::Role::Admin,
            Allowed {
                read: yes,
                write: yes,
                book: yes,
            },
        ),
        (
            idpb::Role::FleetManager,
            Allowed {
                read: yes,
                write: yes,
                book: no,
            },
        ),
        (
            idpb::Role::Dispatcher,
            Allowed {
                read: yes,
                write: no,
                book: yes,
            },
        ),
        (
            idpb::Role::Auditor,
            Allowed {
                read: yes,
                write: no,
                book: no,
            },
        ),
        (
            idpb::Role::WarehouseClerk,
            Allowed {
                read: no,
                write: no,
                book: no,
            },
        ),
        (
            idpb::Role::Customer,
            Allowed {
                read: no,
                write: no,
                book: no,
            },
        ),
        (
            idpb::Role::Supplier,
            Allowed {
                read: no,
                write: no,
                book: no,
            },
        ),
    ];
    let expect = |allowed: bool| {
        if allowed {
            Code::Ok
        } else {
            Code::PermissionDenied
        }
    };
    let mut wrong = Vec::new();
    for (slot, (role, allowed)) in table.into_iter().enumerate() {
        let slot = i64::try_from(slot).unwrap();
        let partner =
            matches!(role, idpb::Role::Customer | idpb::Role::Supplier).then(Uuid::now_v7);
        let token = app
            .identity
            .user(&format!("user{slot}@fleet.test"), &[role], partner, None)
            .await
            .unwrap();
        for (outcomes, allowed) in [
            (reads(&app, &token, &fleet).await, allowed.read),
            (writes(&app, &token, &fleet, slot).await, allowed.write),
            (bookings(&app, &token, &fleet, slot).await, allowed.book),
        ] {
            for (method, got) in outcomes {
                if got != expect(allowed) {
                    wrong.push(format!(
                        "{role:?} {method}: {got:?}, expected {:?}",
                        expect(allowed)
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[tokio::test]
async fn calls_without_valid_credentials_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let fleet = fleet_of(&app, &app.admin_token, "B-UA 1", "Ann").await;
    let mut tampered = app.admin_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    // The admin's header and claims without a signature.
    let unsigned = format!("{}.", app.admin_token.rsplit_once('.').unwrap().0);
    for token in ["", "garbage", "a.b.c", tampered.as_str(), unsigned.as_str()] {
        let what = format!("token {token:?}");
        for status in [
            get_truck(&app, token, &fleet.truck.id).await.unwrap_err(),
            list_drivers(&app, token).await.unwrap_err(),
            app.create_truck_as(token, lorry("B-UA 2"))
                .await
                .unwrap_err(),
            app.assign_as(token, &fleet.truck.id, &fleet.driver.id, window(20, 21))
                .await
                .unwrap_err(),
        ] {
            assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        }
    }
    // A token in another scheme is no bearer token.
    let mut basic = Request::new(pb::GetTruckRequest {
        id: fleet.truck.id.clone(),
    });
    basic.metadata_mut().insert(
        "authorization",
        format!("Basic {}", app.admin_token).parse().unwrap(),
    );
    expect_code(
        app.client().await.get_truck(basic).await,
        Code::Unauthenticated,
    );
    assert_eq!(
        list_trucks(&app, &app.admin_token).await.unwrap(),
        [fleet.truck.id]
    );
}

// Tenants ---------------------------------------------------------------------------------------

#[tokio::test]
async fn another_tenant_can_neither_see_nor_change_nor_book_this_tenants_fleet() {
    let app = TestApp::spawn().await;
    let ours = fleet_of(&app, &app.admin_token, "B-XT 1", "Ann").await;
    let (_, other) = app.identity.other_tenant("Rival Haulage").await.unwrap();
    let theirs = fleet_of(&app, &other, "R-XT 1", "Rita").await;

    // Reads: nothing of ours exists for them.
    expect_code(
        get_truck(&app, &other, &ours.truck.id).await,
        Code::NotFound,
    );
    expect_code(
        get_driver(&app, &other, &ours.driver.id).await,
        Code::NotFound,
    );
    expect_code(
        get_record(&app, &other, &ours.record.id).await,
        Code::NotFound,
    );
    expect_code(
        get_assignment(&app, &other, &ours.assignment.id).await,
        Code::NotFound,
    );
    assert_eq!(
        list_trucks(&app, &other).await.unwrap(),
        [theirs.truck.id.as_str()]
    );
    assert_eq!(
        list_drivers(&app, &other).await.unwrap(),
        [theirs.driver.id.as_str()]
    );
    assert_eq!(
        available_trucks(&app, &other).await.unwrap(),
        [theirs.truck.id.as_str()]
    );
    assert_eq!(
        available_drivers(&app, &other).await.unwrap(),
        [theirs.driver.id.as_str()]
    );
    expect_code(
        list_records(&app, &other, &ours.truck.id).await,
        Code::NotFound,
    );
    match list_assignments(&app, &other, &ours.truck.id).await {
        Ok(ids) => assert!(ids.is_empty(), "{ids:?}"),
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
    }

    // Writes: every one finds nothing.
    let outcomes = [
        (
            "UpdateTruck",
            code(update_truck(&app, &other, &ours.truck.id).await),
        ),
        (
            "DeleteTruck",
            code(delete_truck(&app, &other, &ours.truck.id).await),
        ),
        (
            "UndeleteTruck",
            code(undelete_truck(&app, &other, &ours.truck.id).await),
        ),
        (
            "UpdateDriver",
            code(update_driver(&app, &other, &ours.driver.id).await),
        ),
        (
            "DeleteDriver",
            code(delete_driver(&app, &other, &ours.driver.id).await),
        ),
        (
            "UndeleteDriver",
            code(undelete_driver(&app, &other, &ours.driver.id).await),
        ),
        (
            "CreateMaintenanceRecord",
            code(create_record(&app, &other, &ours.truck.id, 300).await),
        ),
        (
            "UpdateMaintenanceRecord",
            code(update_record(&app, &other, &ours.record.id).await),
        ),
        (
            "DeleteMaintenanceRecord",
            code(delete_record(&app, &other, &ours.record.id).await),
        ),
        (
            "UndeleteMaintenanceRecord",
            code(undelete_record(&app, &other, &ours.record.id).await),
        ),
        (
            "CancelAssignment",
            code(cancel(&app, &other, &ours.assignment.id).await),
        ),
        (
            "CreateAssignment with our truck",
            code(
                app.assign_as(&other, &ours.truck.id, &theirs.driver.id, window(30, 32))
                    .await,
            ),
        ),
        (
            "CreateAssignment with our driver",
            code(
                app.assign_as(&other, &theirs.truck.id, &ours.driver.id, window(30, 32))
                    .await,
            ),
        ),
    ];
    for (method, got) in outcomes {
        assert_eq!(got, Code::NotFound, "{method}");
    }
    let err = expect_code(
        app.assign_as(&other, &ours.truck.id, &theirs.driver.id, window(40, 42))
            .await,
        Code::NotFound,
    );
    assert!(err.message().contains("Truck"), "{}", err.message());

    // Ours is as it was.
    let admin = &app.admin_token;
    assert_eq!(
        get_truck(&app, admin, &ours.truck.id).await.unwrap(),
        ours.truck
    );
    assert_eq!(
        get_driver(&app, admin, &ours.driver.id).await.unwrap(),
        ours.driver
    );
    assert_eq!(
        get_record(&app, admin, &ours.record.id).await.unwrap(),
        ours.record
    );
    assert_eq!(
        get_assignment(&app, admin, &ours.assignment.id)
            .await
            .unwrap(),
        ours.assignment
    );
    assert_eq!(
        list_records(&app, admin, &ours.truck.id).await.unwrap(),
        [ours.record.id.as_str()]
    );
    assert_eq!(
        list_assignments(&app, admin, &ours.truck.id).await.unwrap(),
        [ours.assignment.id.as_str()]
    );
    let (truck_rows, record_rows, assignment_rows): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM fleet.trucks), (SELECT count(*) FROM fleet.maintenance_records), \
                (SELECT count(*) FROM fleet.assignments)",
    )
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!((truck_rows, record_rows, assignment_rows), (2, 2, 2));
}

async fn count<'e, E: sqlx::PgExecutor<'e>>(executor: E, table: &str, filter: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM fleet.{table} {filter}"
    )))
    .fetch_one(executor)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_runtime_role_sees_no_rows_without_a_tenant_and_only_its_tenants_rows_with_one() {
    let app = TestApp::spawn().await;
    let ours = fleet_of(&app, &app.admin_token, "B-RL 1", "Ann").await;
    let (theirs_id, other) = app.identity.other_tenant("Rival Haulage").await.unwrap();
    let theirs = fleet_of(&app, &other, "R-RL 1", "Rita").await;
    let admin = app.db().await;
    for table in FLEET_TABLES {
        assert!(
            count(&admin, table, "").await >= 2,
            "{table} has rows of both tenants"
        );
    }

    let pool = sqlx::PgPool::connect(&app.identity.db.url_as(SCHEMA.app_role))
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(role, SCHEMA.app_role);

    // No tenant context: nothing visible, nothing writable.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    for table in FLEET_TABLES {
        assert_eq!(
            count(&mut *tx, table, "").await,
            0,
            "{table} without a tenant"
        );
        let touched = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE fleet.{table} SET tenant_id = tenant_id"
        )))
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(touched, 0, "{table} updated without a tenant");
    }
    tx.rollback().await.unwrap();
    // Hard deletes: refused outright on the domain tables (history stays), and without a
    // tenant nothing to delete among idempotency claims.
    for table in FLEET_TABLES {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        let removed = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM fleet.{table}")))
            .execute(&mut *tx)
            .await;
        match removed {
            Ok(done) => {
                assert_eq!(*table, "idempotency_keys", "{table} may be hard-deleted");
                assert_eq!(
                    done.rows_affected(),
                    0,
                    "{table} deleted from without a tenant"
                );
            }
            Err(err) => assert_eq!(
                err.as_database_error().unwrap().code().as_deref(),
                Some("42501"),
                "{table}"
            ),
        }
        tx.rollback().await.unwrap();
    }
    let inserts = [
        (
            "trucks",
            "INSERT INTO fleet.trucks (tenant_id, id, plate, vin, make, model, model_year, \
                 payload_capacity_kg, volume_capacity_m3) \
             SELECT $1, $2, 'INTRUDER 1', vin, 'X', 'Y', 2024, 1, 1 FROM (SELECT $3::text AS vin) v",
        ),
        (
            "drivers",
            "INSERT INTO fleet.drivers (tenant_id, id, name, licence_number_ciphertext, \
                 licence_number_index, licence_classes, licence_expires_at) \
             SELECT $1, $2, 'Intruder', '\\x00', decode(repeat('00', 32), 'hex'), ARRAY['c'], now() \
             WHERE $3::text IS NOT NULL",
        ),
        (
            "idempotency_keys",
            "INSERT INTO fleet.idempotency_keys (tenant_id, method, request_id, request_hash) \
             SELECT $1, 'CreateTruck', $2, '\\x00' WHERE $3::text IS NOT NULL",
        ),
    ];
    for (table, sql) in inserts {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        let err = sqlx::query(sql)
            .bind(app.identity.tenant_id)
            .bind(Uuid::now_v7())
            .bind(common::vin(4242))
            .execute(&mut *tx)
            .await
            .expect_err("an insert without a tenant context");
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(db_err.code().as_deref(), Some("42501"), "{table}: {db_err}");
        tx.rollback().await.unwrap();
    }
    // Rows that refer to our truck and driver: refused as well (the booking trigger, which sees
    // no truck without a tenant, refuses the assignment before the policy does).
    let referencing = [
        (
            "maintenance_records",
            "INSERT INTO fleet.maintenance_records (tenant_id, id, truck_id, kind, scheduled_window) \
             SELECT $1, $2, $3, 'repair', tstzrange(now() + interval '900 days', now() + interval '901 days') \
             WHERE $4::uuid IS NOT NULL",
            "42501",
        ),
        (
            "assignments",
            "INSERT INTO fleet.assignments (tenant_id, id, truck_id, driver_id, shipment_id, time_window) \
             VALUES ($1, $2, $3, $4, $2, tstzrange(now() + interval '900 days', now() + interval '901 days'))",
            "23514",
        ),
    ];
    for (table, sql, expected) in referencing {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        let err = sqlx::query(sql)
            .bind(app.identity.tenant_id)
            .bind(Uuid::now_v7())
            .bind(ours.truck.id.parse::<Uuid>().unwrap())
            .bind(ours.driver.id.parse::<Uuid>().unwrap())
            .execute(&mut *tx)
            .await
            .expect_err("an insert without a tenant context");
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(
            db_err.code().as_deref(),
            Some(expected),
            "{table}: {db_err}"
        );
        tx.rollback().await.unwrap();
    }

    // Our tenant's context: exactly our rows, and no row of theirs can be written.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(app.identity.tenant_id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    for table in FLEET_TABLES {
        let expected = count(
            &admin,
            table,
            &format!("WHERE tenant_id = '{}'", app.identity.tenant_id),
        )
        .await;
        assert!(expected > 0, "{table}");
        assert_eq!(
            count(&mut *tx, table, "").await,
            expected,
            "{table} in our context"
        );
    }
    let trucks: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM fleet.trucks")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(trucks, [ours.truck.id.parse::<Uuid>().unwrap()]);
    let renamed = sqlx::query("UPDATE fleet.drivers SET name = 'Hijacked' WHERE id = $1")
        .bind(theirs.driver.id.parse::<Uuid>().unwrap())
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(renamed, 0, "their driver renamed from our context");
    let err = sqlx::query(inserts[0].1)
        .bind(theirs_id)
        .bind(Uuid::now_v7())
        .bind(common::vin(4243))
        .execute(&mut *tx)
        .await
        .expect_err("an insert into their tenant");
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    tx.rollback().await.unwrap();

    // The setting was transaction-local: the same connection sees nothing again.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    assert_eq!(count(&mut *tx, "drivers", "").await, 0);
    tx.rollback().await.unwrap();
    drop(conn);
    pool.close().await;

    // The role itself: no RLS bypass, no superuser, owns nothing; every table forces RLS.
    let (bypass, superuser): (bool, bool) =
        sqlx::query_as("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = $1")
            .bind(SCHEMA.app_role)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(!bypass, "the runtime role bypasses row-level security");
    assert!(!superuser, "the runtime role is a superuser");
    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'fleet' AND pg_get_userbyid(c.relowner) = $1 \
         UNION ALL \
         SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'fleet' AND pg_get_userbyid(p.proowner) = $1",
    )
    .bind(SCHEMA.app_role)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(owned.is_empty(), "the runtime role owns {owned:?}");
    let forced: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'fleet' AND c.relkind = 'r' AND c.relname <> '_sqlx_migrations' \
         ORDER BY 1",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    let mut tables: Vec<&str> = FLEET_TABLES.to_vec();
    tables.sort_unstable();
    assert_eq!(
        forced
            .iter()
            .map(|(t, _, _)| t.as_str())
            .collect::<Vec<_>>(),
        tables,
        "every table is covered"
    );
    for (table, enabled, force) in forced {
        assert!(
            enabled && force,
            "{table}: RLS enabled {enabled}, forced {force}"
        );
    }
    // Note: the schema grants the runtime role DELETE (default privileges of the provisioning);
    // soft deletes are UPDATEs, and RLS above confines any DELETE to the caller's tenant.
}

// Personal data ---------------------------------------------------------------------------------

/// Distinctive personal data as sent, normalised, and fragments either would contain (none of
/// them hex, so no UUID or digest can contain them by chance).
const LICENCE: &str = "ZQX-4711 LEAK 93";
const LICENCE_NORMALISED: &str = "ZQX4711LEAK93";
const PHONE: &str = "+49 (171) 9876-5432";
const PHONE_NORMALISED: &str = "+4917198765432";
const PERSONAL: &[&str] = &[
    LICENCE,
    LICENCE_NORMALISED,
    "zqx4711leak93",
    "ZQX-4711",
    "4711LEAK",
    "LEAK 93",
    "LEAK93",
    PHONE,
    PHONE_NORMALISED,
    "17198765432",
    "9876-5432",
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
async fn licence_numbers_and_phones_never_appear_in_logs_or_error_answers() {
    let logs = logistics_testkit::captured_logs();
    let app = TestApp::spawn().await;
    let private = pb::Driver {
        licence_number: LICENCE.into(),
        phone: PHONE.into(),
        ..driver("Private Person")
    };
    let created = app.create_driver(private.clone()).await;
    assert_eq!(created.licence_number, LICENCE_NORMALISED);
    assert_eq!(created.phone, PHONE_NORMALISED);
    let other = app.create_driver(driver("Other Person")).await;
    let mut client = app.client().await;
    let mut failures: Vec<(&str, Status)> = Vec::new();

    // The licence number taken, however it is written, on create and on update.
    let status = expect_code(
        app.create_driver_as(
            &app.admin_token,
            pb::Driver {
                licence_number: "zqx4711leak93".into(),
                ..private.clone()
            },
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&status), ["driver.licence_number"]);
    failures.push(("duplicate licence on create", status));
    let status = expect_code(
        client
            .update_driver(authed(
                &app.admin_token,
                pb::UpdateDriverRequest {
                    driver: Some(pb::Driver {
                        id: other.id.clone(),
                        licence_number: LICENCE.into(),
                        phone: PHONE.into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["licence_number", "phone"]),
                },
            ))
            .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&status), ["driver.licence_number"]);
    failures.push(("duplicate licence on update", status));

    // Malformed values that contain the personal data.
    let status = expect_code(
        app.create_driver_as(
            &app.admin_token,
            pb::Driver {
                licence_number: "ZQX#4711LEAK93".into(),
                phone: "0049 (171) 9876-5432".into(),
                ..driver("Private Person")
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        ["driver.licence_number", "driver.phone"]
    );
    failures.push(("malformed licence and phone", status));
    let status = expect_code(
        client
            .update_driver(authed(
                &app.admin_token,
                pb::UpdateDriverRequest {
                    driver: Some(pb::Driver {
                        id: created.id.clone(),
                        licence_number: "ZQX 4711 LEAK 93 AND MORE DIGITS 0".into(),
                        phone: "+0 171 9876-5432".into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["licence_number", "phone"]),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&status),
        ["driver.licence_number", "driver.phone"]
    );
    failures.push(("malformed update", status));

    // An update of a driver that does not exist, a request id reused for something else, and a
    // caller without the permission, each carrying the personal data.
    let status = expect_code(
        client
            .update_driver(authed(
                &app.admin_token,
                pb::UpdateDriverRequest {
                    driver: Some(pb::Driver {
                        id: Uuid::now_v7().to_string(),
                        licence_number: LICENCE.into(),
                        phone: PHONE.into(),
                        ..Default::default()
                    }),
                    update_mask: mask(&["licence_number", "phone"]),
                },
            ))
            .await,
        Code::NotFound,
    );
    failures.push(("update of a missing driver", status));
    let reused = request_id();
    for (name, licence) in [("First", "AB-77777"), ("Second", LICENCE)] {
        let outcome = client
            .create_driver(authed(
                &app.admin_token,
                pb::CreateDriverRequest {
                    request_id: reused.clone(),
                    driver: Some(pb::Driver {
                        licence_number: licence.into(),
                        phone: PHONE.into(),
                        ..driver(name)
                    }),
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
    let auditor = app
        .token("auditor@fleet.test", &[idpb::Role::Auditor], None)
        .await;
    let status = expect_code(
        app.create_driver_as(&auditor, private.clone()).await,
        Code::PermissionDenied,
    );
    failures.push(("denied create", status));
    let status = expect_code(
        app.create_driver_as("not-a-token", private.clone()).await,
        Code::Unauthenticated,
    );
    failures.push(("unauthenticated create", status));

    for (what, status) in &failures {
        assert_no_personal_data(what, &status_text(status));
    }
    let captured = logs.contents();
    assert!(
        captured.contains("driver created"),
        "logs were not captured"
    );
    assert_no_personal_data("the logs", &captured);
}
