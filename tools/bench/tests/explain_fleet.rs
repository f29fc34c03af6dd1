//! Finding free trucks and drivers reads only the bookings that can overlap the window asked
//! for, however long the tenant's history: with 6,000 finished bookings the busy-trucks and
//! busy-drivers subplans of FindAvailableTrucks, FindAvailableDrivers and AssignAvailable go
//! through `assignments_active_by_end` with the window's start as index condition, and nothing
//! reads a big table sequentially. Plans come from auto_explain as in `explain.rs`; the trucks
//! and drivers are created through the running fleet service by the benchmark's own populate.

use bench::explain;
use bench::populate::{self, Fleet, Services};
use fleet::schema::{MIGRATOR, SCHEMA};
use logistics_harness::{Identity, Server, authed};
use logistics_platform::wire::timestamp;
use logistics_proto::fleet::v1 as pb;
use logistics_proto::partner::v1::partner_service_client::PartnerServiceClient;
use logistics_proto::r#type::v1::TimeWindow;
use pb::fleet_service_client::FleetServiceClient;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// Finished bookings loaded before the calls: three times the table size below which a
/// sequential scan is accepted.
const HISTORY: i64 = 6_000;

#[tokio::test]
async fn picking_free_trucks_and_drivers_reads_only_bookings_that_can_overlap() {
    let logs = logistics_testkit::captured_logs();
    let identity = Identity::start(&[&SCHEMA]).await.expect("identity");
    let db = &identity.db;
    logistics_platform::db::migrate(&db.url_as(SCHEMA.owner_role), SCHEMA.schema, &MIGRATOR)
        .await
        .expect("fleet migrations");
    let admin = db.admin_pool().await.expect("admin pool");
    explain::enable(&admin, SCHEMA.app_role, &db.name)
        .await
        .expect("auto_explain for the runtime role");
    let config = fleet::config::Config::for_tests(&db.url_as(SCHEMA.app_role), &identity.url());
    let server = Server::start(|listener, shutdown| fleet::app::run(config, listener, shutdown))
        .await
        .expect("fleet serving");
    let channel = server.channel().await.expect("channel");
    let token = identity.admin_token.clone();
    let size = Fleet {
        customers: 0,
        trucks: 20,
        drivers: 30,
    };
    let services = Services {
        // No customers are asked for, so partner is never called.
        partner: PartnerServiceClient::new(channel.clone()),
        fleet: FleetServiceClient::new(channel.clone()),
        token: token.clone(),
    };
    let populated = populate::fleet_and_partners(&services, size, 7)
        .await
        .expect("trucks and drivers through fleet");
    assert_eq!((populated.trucks, populated.drivers), (20, 30));

    // A year of finished hour-long bookings, round-robin over the trucks and drivers.
    let booked = sqlx::query(
        "WITH t AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM fleet.trucks WHERE tenant_id = $1), \
              d AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM fleet.drivers WHERE tenant_id = $1) \
         INSERT INTO fleet.assignments (tenant_id, id, truck_id, driver_id, shipment_id, time_window) \
         SELECT $1, gen_random_uuid(), t.id, d.id, gen_random_uuid(), \
                tstzrange(date_trunc('hour', now()) - make_interval(hours => (i + 2)::int), \
                          date_trunc('hour', now()) - make_interval(hours => (i + 1)::int)) \
           FROM generate_series(0, $2 - 1) i \
           JOIN t ON t.n = i % 20 JOIN d ON d.n = i % 30",
    )
    .bind(identity.tenant_id)
    .bind(HISTORY)
    .execute(&admin)
    .await
    .expect("history of bookings");
    assert_eq!(booked.rows_affected(), HISTORY as u64);
    sqlx::query("ANALYZE fleet.assignments")
        .execute(&admin)
        .await
        .expect("analyze");

    let mut client = FleetServiceClient::new(channel);
    let window = tomorrow();
    let trucks = client
        .find_available_trucks(authed(
            &token,
            pb::FindAvailableTrucksRequest {
                window: Some(window),
                ..Default::default()
            },
        ))
        .await
        .expect("free trucks")
        .into_inner()
        .trucks;
    assert_eq!(trucks.len(), 20, "history does not make a truck busy");
    let drivers = client
        .find_available_drivers(authed(
            &token,
            pb::FindAvailableDriversRequest {
                window: Some(window),
                ..Default::default()
            },
        ))
        .await
        .expect("free drivers")
        .into_inner()
        .drivers;
    assert_eq!(drivers.len(), 30, "history does not make a driver busy");
    client
        .assign_available(authed(
            &token,
            pb::AssignAvailableRequest {
                request_id: Uuid::now_v7().to_string(),
                shipment_id: Uuid::now_v7().to_string(),
                window: Some(window),
                ..Default::default()
            },
        ))
        .await
        .expect("a booking from the free ones");

    let log = logs.contents();
    explain::check(&admin, SCHEMA.schema, &log, 3, &["fleet.assignments"])
        .await
        .expect("no sequential scan of a big table");
    let picks: Vec<(String, Value)> = explain::explained(&log)
        .into_iter()
        .filter(|(query, _)| query.contains("a.window_end >"))
        .collect();
    // FindAvailableTrucks, FindAvailableDrivers, and AssignAvailable's truck and driver.
    assert!(picks.len() >= 4, "{} availability plans", picks.len());
    for (query, plan) in &picks {
        let mut reads = Vec::new();
        assignment_reads(plan, &mut reads);
        assert!(!reads.is_empty(), "no read of assignments in: {query}");
        for (index, condition) in reads {
            assert_eq!(
                index.as_deref(),
                Some("assignments_active_by_end"),
                "{query}"
            );
            assert!(
                condition.contains("window_end >"),
                "index condition {condition:?} in: {query}"
            );
        }
    }
}

/// Tomorrow from 08:00 to 12:00 UTC.
fn tomorrow() -> TimeWindow {
    let day = OffsetDateTime::now_utc().unix_timestamp() / 86_400 + 1;
    let at = |hour: i64| {
        OffsetDateTime::from_unix_timestamp(day * 86_400 + hour * 3600)
            .map(timestamp)
            .ok()
    };
    TimeWindow {
        start_time: at(8),
        end_time: at(12),
    }
}

/// (index name, index condition) of every node of `plan` that reads `assignments`.
fn assignment_reads(plan: &Value, into: &mut Vec<(Option<String>, String)>) {
    if plan["Relation Name"] == "assignments" {
        into.push((
            plan["Index Name"].as_str().map(str::to_owned),
            plan["Index Cond"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    for child in plan["Plans"].as_array().into_iter().flatten() {
        assignment_reads(child, into);
    }
}
