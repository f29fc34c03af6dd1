//! The database itself guards fleet's rules, whatever the service does: run as the runtime role
//! (no ownership, no BYPASSRLS) on a fresh database, with plain SQL and no service code.

#![allow(clippy::unwrap_used)]

mod common;

use common::vin;
use fleet::schema::{MIGRATOR, SCHEMA};
use logistics_testkit::TestDatabase;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// A provisioned and migrated fleet database and a pool of the runtime role.
struct Db {
    _db: TestDatabase,
    app: PgPool,
    tenant: Uuid,
}

impl Db {
    async fn new() -> Self {
        let db = TestDatabase::create(&SCHEMA).await.unwrap();
        logistics_platform::db::migrate(&db.url_as(SCHEMA.owner_role), SCHEMA.schema, &MIGRATOR)
            .await
            .unwrap();
        // Room for the races below: every booking holds its own connection.
        let app = sqlx::postgres::PgPoolOptions::new()
            .max_connections(30)
            .connect(&db.url_as(SCHEMA.app_role))
            .await
            .unwrap();
        Self {
            _db: db,
            app,
            tenant: Uuid::now_v7(),
        }
    }

    /// A transaction of the runtime role with `tenant` (and `driver`) as its context.
    async fn tx_as(&self, tenant: Uuid, driver: Option<Uuid>) -> Transaction<'static, Postgres> {
        let mut tx = self.app.begin().await.unwrap();
        sqlx::query(
            "SELECT set_config('app.tenant_id', $1, true), set_config('app.driver_id', $2, true)",
        )
        .bind(tenant.to_string())
        .bind(driver.map(|d| d.to_string()).unwrap_or_default())
        .execute(&mut *tx)
        .await
        .unwrap();
        tx
    }

    async fn tx(&self) -> Transaction<'static, Postgres> {
        self.tx_as(self.tenant, None).await
    }

    /// Runs one statement in its own committed transaction of the tenant.
    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.tx().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    async fn truck(&self, plate: &str) -> Uuid {
        let id = Uuid::now_v7();
        static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let vin = vin(SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        self.exec(&format!(
            "INSERT INTO fleet.trucks (tenant_id, id, plate, vin, make, model, model_year, \
                 payload_capacity_kg, volume_capacity_m3) \
             VALUES (fleet.current_tenant_id(), '{id}', '{plate}', '{vin}', 'Volvo', \
                 'FH16', 2024, 24000, 90)"
        ))
        .await
        .unwrap();
        id
    }

    async fn driver(&self, licence_expires: &str) -> Uuid {
        let id = Uuid::now_v7();
        self.exec(&format!(
            "INSERT INTO fleet.drivers (tenant_id, id, name, licence_number_ciphertext, \
                 licence_number_index, licence_classes, licence_expires_at) \
             VALUES (fleet.current_tenant_id(), '{id}', 'Ann', '\\x00', \
                 decode(md5('{id}') || md5('{id}'), 'hex'), ARRAY['c', 'ce'], '{licence_expires}')"
        ))
        .await
        .unwrap();
        id
    }

    /// Books `truck` and `driver` from `from` to `to` (hours of 2026-12-01, UTC).
    async fn assign(
        &self,
        truck: Uuid,
        driver: Uuid,
        from: u32,
        to: u32,
    ) -> Result<(), sqlx::Error> {
        self.exec(&assignment_sql(truck, driver, from, to)).await
    }

    async fn active_assignments(&self) -> i64 {
        let mut tx = self.tx().await;
        sqlx::query_scalar("SELECT count(*) FROM fleet.assignments WHERE status = 'active'")
            .fetch_one(&mut *tx)
            .await
            .unwrap()
    }
}

fn assignment_sql(truck: Uuid, driver: Uuid, from: u32, to: u32) -> String {
    format!(
        "INSERT INTO fleet.assignments (tenant_id, id, truck_id, driver_id, shipment_id, time_window) \
         VALUES (fleet.current_tenant_id(), '{}', '{truck}', '{driver}', '{}', \
                 tstzrange('2026-12-01 {from:02}:00Z', '2026-12-01 {to:02}:00Z'))",
        Uuid::now_v7(),
        Uuid::now_v7()
    )
}

const LICENSED: &str = "2030-01-01Z";

/// The SQLSTATE and constraint of a failed statement.
fn refusal(result: Result<(), sqlx::Error>) -> (String, String) {
    let err = result.expect_err("the database accepted it");
    let db = err.as_database_error().expect("a database error");
    (
        db.code().unwrap_or_default().into_owned(),
        db.constraint().unwrap_or_default().to_owned(),
    )
}

fn exclusion(constraint: &str) -> (String, String) {
    ("23P01".to_owned(), constraint.to_owned())
}

fn check(constraint: &str) -> (String, String) {
    ("23514".to_owned(), constraint.to_owned())
}

#[tokio::test]
async fn one_truck_is_never_booked_twice_at_once_but_back_to_back_and_after_cancelling_is_fine() {
    let db = Db::new().await;
    let truck = db.truck("B-XY 1").await;
    let (ann, bob, cem) = (
        db.driver(LICENSED).await,
        db.driver(LICENSED).await,
        db.driver(LICENSED).await,
    );
    db.assign(truck, ann, 8, 12).await.unwrap();
    assert_eq!(
        refusal(db.assign(truck, bob, 11, 14).await),
        exclusion("assignments_truck_no_overlap")
    );
    db.assign(truck, bob, 12, 16).await.unwrap();

    db.exec(
        "UPDATE fleet.assignments SET status = 'cancelled', cancelled_at = now() \
         WHERE lower(time_window) = '2026-12-01 08:00Z'",
    )
    .await
    .unwrap();
    db.assign(truck, cem, 9, 11).await.unwrap();
    assert_eq!(db.active_assignments().await, 2);
}

#[tokio::test]
async fn one_driver_is_never_booked_on_two_trucks_at_once() {
    let db = Db::new().await;
    let (one, two) = (db.truck("T1").await, db.truck("T2").await);
    let ann = db.driver(LICENSED).await;
    db.assign(one, ann, 8, 12).await.unwrap();
    assert_eq!(
        refusal(db.assign(two, ann, 10, 18).await),
        exclusion("assignments_driver_no_overlap")
    );
    assert_eq!(db.active_assignments().await, 1);
}

/// Fires `count` bookings at once, each on its own connection; returns how many succeeded and
/// the refusals of the others.
async fn race(db: &Db, bookings: Vec<(Uuid, Uuid, u32, u32)>) -> (usize, Vec<(String, String)>) {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(bookings.len()));
    let mut tasks = Vec::new();
    for (truck, driver, from, to) in bookings {
        let mut tx = db.tx().await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let sql = assignment_sql(truck, driver, from, to);
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }));
    }
    let mut ok = 0;
    let mut refused = Vec::new();
    for result in futures::future::join_all(tasks).await {
        match result.unwrap() {
            Ok(()) => ok += 1,
            Err(err) => refused.push(refusal(Err(err))),
        }
    }
    (ok, refused)
}

#[tokio::test]
async fn twenty_simultaneous_bookings_of_one_truck_leave_exactly_one() {
    let db = Db::new().await;
    let truck = db.truck("RACE 1").await;
    let mut bookings = Vec::new();
    for i in 0..20 {
        bookings.push((truck, db.driver(LICENSED).await, 8 + i % 3, 14 + i % 3));
    }
    let (ok, refused) = race(&db, bookings).await;
    assert_eq!(ok, 1, "refusals: {refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| *r == exclusion("assignments_truck_no_overlap")),
        "{refused:?}"
    );
    assert_eq!(db.active_assignments().await, 1);
}

#[tokio::test]
async fn twenty_simultaneous_bookings_of_one_driver_across_trucks_leave_exactly_one() {
    let db = Db::new().await;
    let ann = db.driver(LICENSED).await;
    let mut bookings = Vec::new();
    for i in 0..20 {
        bookings.push((
            db.truck(&format!("T {i}")).await,
            ann,
            8 + i % 3,
            14 + i % 3,
        ));
    }
    let (ok, refused) = race(&db, bookings).await;
    assert_eq!(ok, 1, "refusals: {refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| *r == exclusion("assignments_driver_no_overlap")),
        "{refused:?}"
    );
    assert_eq!(db.active_assignments().await, 1);
}

#[tokio::test]
async fn a_truck_in_maintenance_retired_or_deleted_cannot_be_booked() {
    let db = Db::new().await;
    let ann = db.driver(LICENSED).await;
    for (plate, change) in [
        ("M1", "status = 'in_maintenance'"),
        ("R1", "status = 'retired'"),
        ("D1", "deleted_at = now()"),
    ] {
        let truck = db.truck(plate).await;
        db.exec(&format!(
            "UPDATE fleet.trucks SET {change} WHERE id = '{truck}'"
        ))
        .await
        .unwrap();
        assert_eq!(
            refusal(db.assign(truck, ann, 8, 12).await),
            check("assignments_truck_active"),
            "{plate}"
        );
    }
    assert_eq!(db.active_assignments().await, 0);
}

#[tokio::test]
async fn scheduled_maintenance_and_bookings_of_one_truck_exclude_each_other() {
    let db = Db::new().await;
    let truck = db.truck("W1").await;
    let ann = db.driver(LICENSED).await;
    let maintenance = |from: u32, to: u32| {
        format!(
            "INSERT INTO fleet.maintenance_records (tenant_id, id, truck_id, kind, scheduled_window) \
             VALUES (fleet.current_tenant_id(), '{}', '{truck}', 'service', \
                     tstzrange('2026-12-01 {from:02}:00Z', '2026-12-01 {to:02}:00Z'))",
            Uuid::now_v7()
        )
    };
    db.exec(&maintenance(6, 10)).await.unwrap();
    assert_eq!(
        refusal(db.assign(truck, ann, 9, 12).await),
        check("assignments_truck_not_in_maintenance")
    );
    db.assign(truck, ann, 10, 12).await.unwrap();
    assert_eq!(
        refusal(db.exec(&maintenance(11, 13)).await),
        check("maintenance_records_truck_free")
    );
}

#[tokio::test]
async fn a_driver_whose_licence_ends_before_the_window_does_or_who_is_inactive_cannot_be_booked() {
    let db = Db::new().await;
    let truck = db.truck("L1").await;
    let expiring = db.driver("2026-12-01 10:00Z").await;
    assert_eq!(
        refusal(db.assign(truck, expiring, 8, 12).await),
        check("assignments_driver_licensed")
    );
    db.assign(truck, expiring, 8, 10).await.unwrap();

    let inactive = db.driver(LICENSED).await;
    db.exec(&format!(
        "UPDATE fleet.drivers SET status = 'inactive' WHERE id = '{inactive}'"
    ))
    .await
    .unwrap();
    assert_eq!(
        refusal(db.assign(truck, inactive, 12, 14).await),
        check("assignments_driver_active")
    );
}

#[tokio::test]
async fn malformed_rows_are_refused_by_checks() {
    let db = Db::new().await;
    let bad_vin = db
        .exec(
            "INSERT INTO fleet.trucks (tenant_id, id, plate, vin, make, model, model_year, \
                 payload_capacity_kg, volume_capacity_m3) \
             VALUES (fleet.current_tenant_id(), gen_random_uuid(), 'V1', '1M8GDM9A1KP042788', \
                 'Volvo', 'FH', 2024, 1, 1)",
        )
        .await;
    assert_eq!(refusal(bad_vin).0, "23514");
    let truck = db.truck("P1").await;
    let duplicate_plate = db
        .exec(&format!(
            "INSERT INTO fleet.trucks (tenant_id, id, plate, vin, make, model, model_year, \
                 payload_capacity_kg, volume_capacity_m3) \
             SELECT tenant_id, gen_random_uuid(), 'P-1', '1M8GDM9AXKP042788', make, model, \
                 model_year, 1, 1 FROM fleet.trucks WHERE id = '{truck}'"
        ))
        .await;
    assert_eq!(
        refusal(duplicate_plate),
        ("23505".to_owned(), "trucks_plate_key".to_owned())
    );
    let ann = db.driver(LICENSED).await;
    // An empty or reversed window is not a window.
    let window_check = (
        "23514".to_owned(),
        "assignments_time_window_check".to_owned(),
    );
    assert_eq!(refusal(db.assign(truck, ann, 12, 12).await), window_check);
    assert_eq!(refusal(db.assign(truck, ann, 14, 12).await).0, "22000");
    // Nor is an unbounded one, or one that is not half-open [start, end).
    for range in [
        "'[2026-12-01 08:00Z,)'",
        "'(,2026-12-01 10:00Z)'",
        "'[2026-12-01 08:00Z,2026-12-01 10:00Z]'",
        "'(2026-12-01 08:00Z,2026-12-01 10:00Z)'",
    ] {
        let insert = db
            .exec(&format!(
                "INSERT INTO fleet.assignments (tenant_id, id, truck_id, driver_id, shipment_id, time_window) \
                 VALUES (fleet.current_tenant_id(), gen_random_uuid(), '{truck}', '{ann}', \
                         gen_random_uuid(), {range}::tstzrange)"
            ))
            .await;
        assert_eq!(refusal(insert), window_check, "{range}");
    }
    db.assign(truck, ann, 8, 10)
        .await
        .expect("a bounded half-open window is one");
}

#[tokio::test]
async fn the_runtime_role_sees_only_its_tenant_and_a_driver_only_its_own_rows() {
    let db = Db::new().await;
    let truck = db.truck("S1").await;
    let (ann, bob) = (db.driver(LICENSED).await, db.driver(LICENSED).await);
    db.assign(truck, ann, 8, 10).await.unwrap();
    db.assign(truck, bob, 10, 12).await.unwrap();

    let tables = ["trucks", "drivers", "assignments"];

    // No context: nothing at all.
    let mut conn = db.app.acquire().await.unwrap();
    for table in tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM fleet.{table}"
        )))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} without a tenant");
    }
    drop(conn);

    // Another tenant: nothing either, and it cannot book the first tenant's truck.
    let mut other = db.tx_as(Uuid::now_v7(), None).await;
    for table in tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM fleet.{table}"
        )))
        .fetch_one(&mut *other)
        .await
        .unwrap();
        assert_eq!(n, 0, "{table} of another tenant");
    }
    let stolen = sqlx::raw_sql(sqlx::AssertSqlSafe(assignment_sql(truck, ann, 14, 16)))
        .execute(&mut *other)
        .await;
    assert!(stolen.is_err(), "a booking of another tenant's truck");
    drop(other);

    // Ann, as a driver user, sees her own record and assignment only.
    let mut as_ann = db.tx_as(db.tenant, Some(ann)).await;
    let drivers: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM fleet.drivers")
        .fetch_all(&mut *as_ann)
        .await
        .unwrap();
    assert_eq!(drivers, [ann]);
    let assigned: Vec<Uuid> = sqlx::query_scalar("SELECT driver_id FROM fleet.assignments")
        .fetch_all(&mut *as_ann)
        .await
        .unwrap();
    assert_eq!(assigned, [ann]);
}

#[tokio::test]
async fn a_coming_booking_keeps_its_truck_active_and_its_driver_active_and_licensed() {
    let db = Db::new().await;
    let truck = db.truck("K1").await;
    let ann = db.driver(LICENSED).await;
    db.exec(&format!(
        "INSERT INTO fleet.assignments (tenant_id, id, truck_id, driver_id, shipment_id, time_window) \
         VALUES (fleet.current_tenant_id(), gen_random_uuid(), '{truck}', '{ann}', gen_random_uuid(), \
                 tstzrange(now() + interval '1 day', now() + interval '2 days'))"
    ))
    .await
    .unwrap();
    for (change, constraint) in [
        (
            format!("UPDATE fleet.trucks SET status = 'retired' WHERE id = '{truck}'"),
            "trucks_keep_assignments",
        ),
        (
            format!("UPDATE fleet.trucks SET deleted_at = now() WHERE id = '{truck}'"),
            "trucks_keep_assignments",
        ),
        (
            format!("UPDATE fleet.drivers SET status = 'terminated' WHERE id = '{ann}'"),
            "drivers_keep_assignments",
        ),
        (
            format!(
                "UPDATE fleet.drivers SET licence_expires_at = now() + interval '36 hours' \
                 WHERE id = '{ann}'"
            ),
            "drivers_licensed_for_assignments",
        ),
    ] {
        assert_eq!(
            refusal(db.exec(&change).await),
            check(constraint),
            "{change}"
        );
    }
    // A licence that still covers the booking may be shortened.
    db.exec(&format!(
        "UPDATE fleet.drivers SET licence_expires_at = now() + interval '3 days' WHERE id = '{ann}'"
    ))
    .await
    .unwrap();
}
