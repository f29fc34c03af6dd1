//! The shipment service killed (SIGKILL, no goodbye) in the middle of a plan and started again:
//! the saga it left is found when its lease runs out and driven to its end, with exactly one
//! reservation and one booking. The service runs here as its real binary.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use common::*;
use logistics_proto::inventory::v1 as invpb;
use logistics_proto::shipment::v1 as pb;
use secrecy::ExposeSecret;
use uuid::Uuid;

/// The running binary; killed (SIGKILL) when dropped, so a failing test leaves no process.
struct Binary(Child);

impl Binary {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the shipment binary with the stack's configuration and waits until it serves.
async fn start_binary(stack: &Stack) -> Binary {
    let config = stack.shipment_config();
    let key = |k: [u8; 32]| base64::engine::general_purpose::STANDARD.encode(k);
    let child = Command::new(env!("CARGO_BIN_EXE_shipment"))
        .arg("serve")
        .env_clear()
        .env("LISTEN_ADDR", stack.shipment_addr.to_string())
        .env("DATABASE_URL", config.database.database_url.expose_secret())
        .env("DATABASE_MAX_CONNECTIONS", "10")
        .env("JWKS_MIN_REFRESH_SECONDS", "0")
        .env("IDENTITY_URL", &config.identity.identity_url)
        .env("PARTNER_URL", &config.peers.partner_url)
        .env("FLEET_URL", &config.peers.fleet_url)
        .env("INVENTORY_URL", &config.peers.inventory_url)
        .env("SAGA_LEASE_SECONDS", "2")
        .env("SAGA_RECOVERY_INTERVAL_MS", "200")
        .env("FIELD_ENCRYPTION_KEYS", FIELD_KEYS)
        .env("BLIND_INDEX_KEY", key([7; 32]))
        .env("PAGE_TOKEN_KEY", key([9; 32]))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let binary = Binary(child);
    logistics_harness::wait_until_serving(stack.shipment_addr)
        .await
        .unwrap();
    binary
}

/// Polls until `check` holds, for up to 20 seconds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never: {what}");
}

#[tokio::test]
async fn a_shipment_service_killed_mid_plan_finishes_the_plan_after_a_restart() {
    let mut stack = Stack::spawn().await;
    stack.stop_shipment().await;
    let mut service = start_binary(&stack).await;
    let world = stack.world().await;
    let draft = stack
        .draft(&world, &[(&world.bolts, "8"), (&world.nuts, "3")])
        .await;

    // Hold the stock level so the saga's reservation waits inside inventory.
    let db = stack.db().await;
    let mut hold = db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM inventory.stock_levels WHERE material_id = $1 FOR UPDATE")
        .bind(Uuid::parse_str(&world.bolts.id).unwrap())
        .execute(&mut *hold)
        .await
        .unwrap();
    let planning = {
        let client = stack.client().await;
        let token = stack.admin_token.clone();
        let id = draft.id.clone();
        tokio::spawn(async move {
            let mut client = client;
            client
                .plan_shipment(authed(
                    &token,
                    pb::PlanShipmentRequest {
                        id,
                        etag: String::new(),
                        request_id: String::new(),
                    },
                ))
                .await
        })
    };
    eventually("the saga waits on the reservation", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND usename = 'inventory_app'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        waiting > 0
    })
    .await;
    assert_eq!(
        stack.sagas(&draft.id).await,
        [(
            "plan".to_owned(),
            "running".to_owned(),
            "reserve".to_owned()
        )]
    );

    service.kill();
    hold.rollback().await.unwrap();
    assert!(
        planning.await.unwrap().is_err(),
        "the caller lost its answer"
    );

    let mut service = start_binary(&stack).await;
    eventually("the recovered saga plans the shipment", || async {
        status_of(&stack.get(&draft.id).await) == pb::ShipmentStatus::Planned
    })
    .await;
    service.kill();

    let held = invpb::ReservationStatus::Held;
    assert_eq!(
        stack.reservations(&draft.id).await,
        [(held, "3".to_owned()), (held, "8".to_owned())]
    );
    assert_eq!(stack.assignments(&draft.id).await.len(), 1);
    assert_eq!(
        stack.sagas(&draft.id).await,
        [("plan".to_owned(), "done".to_owned(), "end".to_owned())],
        "the same saga was taken over, not a second one started"
    );
    assert_eq!(
        stack.level(&world.warehouse, &world.bolts).await,
        ("100".to_owned(), "8".to_owned())
    );
}
