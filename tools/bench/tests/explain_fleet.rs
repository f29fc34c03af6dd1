//! Finding free trucks and drivers reads only the bookings that can overlap the window asked
//! for, however many the tenant has before and after it: with 3,000 finished and 3,000 future
//! bookings (and one long one across the window) the busy-trucks and busy-drivers subplans of
//! FindAvailableTrucks, FindAvailableDrivers and AssignAvailable read `assignments_active_by_start`
//! between both bounds of the window (the lower one less the longest booking, from
//! `assignments_active_by_length`), and nothing reads a big table sequentially. AssignAvailable's
//! picks walk `trucks_assignable` and `drivers_assignable` in order, with no sort of the fleet.
//! Every plan judged is the generic one a prepared statement settles on. Plans come from
//! auto_explain as in `explain.rs`; the trucks and drivers are created through the running
//! fleet service by the benchmark's own populate.

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
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

/// Hour-long bookings loaded before the calls, half of them finished and half a week or more
/// ahead: three times the table size below which a sequential scan is accepted.
const HISTORY: i64 = 6_000;
/// The benchmark's fleet (issue 9's data set): picks at this size show whether a plan sorts it.
const TRUCKS: i64 = 200;
const DRIVERS: i64 = 300;

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
    // The plans a busy service runs: a statement it has prepared and run five times gets a
    // generic plan, made without the parameters' values. Judge those from the first call.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER ROLE {} IN DATABASE {} SET plan_cache_mode = force_generic_plan",
        SCHEMA.app_role, db.name
    )))
    .execute(&admin)
    .await
    .expect("generic plans for the runtime role");
    let config = fleet::config::Config::for_tests(&db.url_as(SCHEMA.app_role), &identity.url());
    let server = Server::start(|listener, shutdown| fleet::app::run(config, listener, shutdown))
        .await
        .expect("fleet serving");
    let channel = server.channel().await.expect("channel");
    let token = identity.admin_token.clone();
    let size = Fleet {
        customers: 0,
        trucks: TRUCKS as u32,
        drivers: DRIVERS as u32,
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
    assert_eq!(
        (populated.trucks as i64, populated.drivers as i64),
        (TRUCKS, DRIVERS)
    );

    // Hour-long bookings round-robin over the trucks and drivers: the first half finished (the
    // last two days before now left free), the second half from a week after tomorrow on.
    // Then the first truck and driver booked for four days across tomorrow.
    let booked = sqlx::query(
        "WITH t AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM fleet.trucks WHERE tenant_id = $1), \
              d AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM fleet.drivers WHERE tenant_id = $1), \
              h AS (SELECT i, CASE WHEN i < $2 / 2 \
                                   THEN date_trunc('hour', now()) - make_interval(hours => (i + 50)::int) \
                                   ELSE date_trunc('day', now()) + make_interval(days => 8, hours => (i - $2 / 2)::int) \
                              END AS starts \
                      FROM generate_series(0, $2 - 1) i) \
         INSERT INTO fleet.assignments (tenant_id, id, truck_id, driver_id, shipment_id, time_window) \
         SELECT $1, gen_random_uuid(), t.id, d.id, gen_random_uuid(), \
                tstzrange(h.starts, h.starts + interval '1 hour') \
           FROM h JOIN t ON t.n = h.i % $3 JOIN d ON d.n = h.i % $4 \
         UNION ALL \
         SELECT $1, gen_random_uuid(), t.id, d.id, gen_random_uuid(), \
                tstzrange(date_trunc('day', now()), date_trunc('day', now()) + interval '4 days') \
           FROM t JOIN d ON d.n = 0 WHERE t.n = 0 \
         RETURNING truck_id, driver_id",
    )
    .bind(identity.tenant_id)
    .bind(HISTORY)
    .bind(TRUCKS)
    .bind(DRIVERS)
    .fetch_all(&admin)
    .await
    .expect("bookings");
    assert_eq!(booked.len() as i64, HISTORY + 1);
    let long: (Uuid, Uuid) = booked
        .last()
        .map(|row| (row.get("truck_id"), row.get("driver_id")))
        .expect("the long booking");
    sqlx::query("ANALYZE fleet.assignments, fleet.trucks, fleet.drivers")
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
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .expect("free trucks")
        .into_inner()
        .trucks;
    assert_eq!(
        trucks.len() as i64,
        TRUCKS - 1,
        "only the long booking overlaps"
    );
    assert!(!trucks.iter().any(|t| t.id == long.0.to_string()));
    let drivers = client
        .find_available_drivers(authed(
            &token,
            pb::FindAvailableDriversRequest {
                window: Some(window),
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .expect("free drivers")
        .into_inner()
        .drivers;
    assert_eq!(
        drivers.len() as i64,
        DRIVERS - 1,
        "only the long booking overlaps"
    );
    assert!(!drivers.iter().any(|d| d.id == long.1.to_string()));
    let assignment = client
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
        .expect("a booking from the free ones")
        .into_inner()
        .assignment
        .expect("an assignment");
    assert_ne!(assignment.truck_id, long.0.to_string());
    assert_ne!(assignment.driver_id, long.1.to_string());

    let log = logs.contents();
    explain::check(&admin, SCHEMA.schema, &log, 3, &["fleet.assignments"])
        .await
        .expect("no sequential scan of a big table");
    let picks: Vec<(String, Value)> = explain::explained(&log)
        .into_iter()
        .filter(|(query, _)| query.contains("a.window_start >"))
        .collect();
    // FindAvailableTrucks, FindAvailableDrivers, and AssignAvailable's pick of both.
    assert!(picks.len() >= 3, "{} availability plans", picks.len());
    // AssignAvailable picks the truck and the driver in one statement, walking each index in
    // the order asked for and stopping at the first free row: no sort of the whole fleet.
    let locking: Vec<&(String, Value)> = picks
        .iter()
        .filter(|(query, _)| query.contains("SKIP LOCKED"))
        .collect();
    assert_eq!(locking.len(), 1, "AssignAvailable's pick");
    let (query, plan) = locking[0];
    let nodes = node_types(plan);
    for (table, index) in [
        ("trucks", "trucks_assignable"),
        ("drivers", "drivers_assignable"),
    ] {
        assert!(
            nodes.contains(&(
                Some(table.to_owned()),
                "Index Scan".to_owned(),
                Some(index.to_owned())
            )),
            "{table}: {nodes:?} in: {query}"
        );
    }
    assert!(
        !nodes.iter().any(|(_, node, _)| node.contains("Sort")),
        "{nodes:?} in: {query}"
    );
    for (query, plan) in &picks {
        let reads = assignment_reads(plan);
        let indexes: Vec<Option<&str>> = reads.iter().map(|(i, _)| i.as_deref()).collect();
        assert!(
            indexes.contains(&Some("assignments_active_by_start"))
                && indexes.iter().all(|i| matches!(
                    i,
                    Some("assignments_active_by_start" | "assignments_active_by_length")
                )),
            "{indexes:?} in: {query}"
        );
        for (index, condition) in &reads {
            if index.as_deref() == Some("assignments_active_by_start") {
                assert!(
                    condition.contains("window_start >") && condition.contains("window_start <"),
                    "index condition {condition:?} in: {query}"
                );
            }
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

/// (relation, node type, index) of every node of `plan`.
fn node_types(plan: &Value) -> Vec<(Option<String>, String, Option<String>)> {
    explain::nodes(plan)
        .into_iter()
        .map(|node| {
            let text = |key: &str| node[key].as_str().map(str::to_owned);
            (
                text("Relation Name"),
                text("Node Type").unwrap_or_default(),
                text("Index Name"),
            )
        })
        .collect()
}

/// (index name, index condition) of every node of `plan` that reads `assignments`; for a bitmap
/// heap scan, those of the bitmap index scan under it.
fn assignment_reads(plan: &Value) -> Vec<(Option<String>, String)> {
    explain::nodes(plan)
        .into_iter()
        .filter(|node| node["Relation Name"] == "assignments")
        .map(|node| {
            let index = match node["Node Type"].as_str() {
                Some("Bitmap Heap Scan") => &node["Plans"][0],
                _ => node,
            };
            (
                index["Index Name"].as_str().map(str::to_owned),
                index["Index Cond"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
