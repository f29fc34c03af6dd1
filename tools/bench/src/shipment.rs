//! PlanShipment, the whole saga (references checked with partner and inventory, stock reserved,
//! a truck and a driver found and booked with fleet), over gRPC, each call on a draft of its own
//! loaded by [`crate::load::shipments`]. There is no in-process bound for a saga across four
//! services: what bounds it is its calls, counted from the services' own metrics; and after the
//! runs the books are checked: no truck or driver booked twice at once, every planned shipment
//! booked once and holding exactly its items, no failed plan holding anything, the ledger right.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use logistics_proto::inventory::v1 as invpb;
use logistics_proto::shipment::v1 as pb;
use pb::shipment_service_client::ShipmentServiceClient;
use serde::Serialize;
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::call::{authed, grpc};
use crate::drive::EXHAUSTED;
use crate::load::shipments::{ITEMS_PER_SHIPMENT, PLANNABLE_PREFIX};

/// Plans one loaded draft per call.
#[derive(Clone)]
pub struct Target {
    client: ShipmentServiceClient<Channel>,
    token: String,
    drafts: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
}

impl Target {
    /// Connects to shipment at `url` and lists the loaded drafts still to plan, if any.
    pub async fn new(url: &str, token: String) -> anyhow::Result<Self> {
        let client = ShipmentServiceClient::new(crate::call::channel(url).await?);
        let mut drafts = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = client
                .clone()
                .list_shipments(authed(
                    &token,
                    pb::ListShipmentsRequest {
                        page_size: 1000,
                        page_token: page_token.clone(),
                        filter: format!(
                            "reference = \"{PLANNABLE_PREFIX}*\" AND status = SHIPMENT_STATUS_DRAFT"
                        ),
                        order_by: "reference".to_owned(),
                        show_deleted: false,
                    },
                ))
                .await
                .context("listing the drafts to plan")?
                .into_inner();
            drafts.extend(page.shipments.into_iter().map(|s| s.id));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        // None left is not an error here: the other scenarios can run, and PlanShipment stops at
        // once, saying why (see `plan`).
        Ok(Self {
            client,
            token,
            drafts: Arc::new(drafts),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Drafts planned (or tried) so far.
    pub fn used(&self) -> usize {
        self.next.load(Ordering::Relaxed).min(self.drafts.len())
    }

    /// Drafts loaded.
    pub fn available(&self) -> usize {
        self.drafts.len()
    }

    /// PlanShipment of the next draft.
    pub async fn plan(&self) -> Result<(), String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(id) = self.drafts.get(n) else {
            return Err(format!(
                "{EXHAUSTED}every loaded draft is planned: run shorter, or load afresh \
                 (scripts/bench.sh without BENCH_REUSE, or rm .local/bench/loaded)"
            ));
        };
        grpc(
            self.client
                .clone()
                .plan_shipment(authed(
                    &self.token,
                    pb::PlanShipmentRequest {
                        id: id.clone(),
                        etag: String::new(),
                        request_id: Uuid::now_v7().to_string(),
                    },
                ))
                .await,
        )
    }
}

/// Calls each service finished, by `service/method`, read from their `/metrics`.
pub async fn calls(metrics_urls: &[String]) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut calls = BTreeMap::new();
    for url in metrics_urls {
        let text = scrape(url).await?;
        for line in text.lines().filter(|l| l.starts_with("rpc_calls_total{")) {
            let label = |name: &str| {
                let start = line.find(&format!("{name}=\""))? + name.len() + 2;
                let end = start + line[start..].find('"')?;
                Some(&line[start..end])
            };
            let (Some(service), Some(method), Some(count)) = (
                label("service"),
                label("method"),
                line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()),
            ) else {
                continue;
            };
            let service = service.rsplit('.').next().unwrap_or(service);
            *calls.entry(format!("{service}/{method}")).or_default() += count as u64;
        }
    }
    Ok(calls)
}

/// `GET` of a plain-HTTP `/metrics` address (`http://host:port/path`), body only.
async fn scrape(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .context("metrics URLs are http://host:port/path")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, "metrics"));
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    stream
        .write_all(
            format!("GET /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("no HTTP header end")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{url}: {head}");
    Ok(body.to_owned())
}

/// What the books say after the PlanShipment runs.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct PlanCheck {
    /// Loaded drafts now planned.
    pub planned: i64,
    /// Planned ones without exactly one active booking.
    pub planned_not_booked_once: i64,
    /// Planned ones whose held reservations are not exactly their items.
    pub planned_holding_wrong_stock: i64,
    /// Loaded drafts still drafts but holding a booking or stock (a failed plan not undone).
    pub drafts_holding_something: i64,
    /// Pairs of active bookings of one truck that overlap in time.
    pub truck_double_bookings: i64,
    /// Pairs of active bookings of one driver that overlap in time.
    pub driver_double_bookings: i64,
    /// Levels whose on hand or reserved disagrees with the ledger (CheckStockLedger).
    pub ledger_mismatches: i64,
}

impl PlanCheck {
    /// Whether nothing is wrong.
    pub fn clean(&self) -> bool {
        *self
            == Self {
                planned: self.planned,
                ..Self::default()
            }
    }
}

/// Checks the books of `tenant_id` as a superuser (across the schemas), and the ledger through
/// inventory's CheckStockLedger.
pub async fn check(
    admin_url: &str,
    tenant_id: Uuid,
    inventory: &mut invpb::inventory_service_client::InventoryServiceClient<Channel>,
    token: &str,
) -> anyhow::Result<PlanCheck> {
    let mut conn = PgConnection::connect(admin_url).await?;
    let like = format!("{PLANNABLE_PREFIX}%");
    let (planned, not_booked_once, wrong_stock, drafts_holding): (i64, i64, i64, i64) =
        sqlx::query_as(
            "WITH s AS (SELECT id, status, \
                     (SELECT count(*) FROM fleet.assignments a \
                       WHERE a.tenant_id = $1 AND a.shipment_id = sh.id AND a.status = 'active') AS booked, \
                     (SELECT count(*) FROM inventory.reservations r \
                       WHERE r.tenant_id = $1 AND r.shipment_id = sh.id AND r.status = 'held') AS held, \
                     (SELECT count(*) FROM inventory.reservations r \
                       JOIN shipment.shipment_items i ON i.tenant_id = r.tenant_id \
                        AND i.shipment_id = r.shipment_id AND i.material_id = r.material_id \
                        AND i.quantity = r.quantity AND i.deleted_at IS NULL \
                       WHERE r.tenant_id = $1 AND r.shipment_id = sh.id AND r.status = 'held' \
                         AND r.warehouse_id = sh.origin_warehouse_id) AS held_as_items \
                FROM shipment.shipments sh WHERE sh.tenant_id = $1 AND sh.reference LIKE $2) \
             SELECT count(*) FILTER (WHERE status = 'planned'), \
                    count(*) FILTER (WHERE status = 'planned' AND booked <> 1), \
                    count(*) FILTER (WHERE status = 'planned' AND (held <> $3 OR held_as_items <> $3)), \
                    count(*) FILTER (WHERE status = 'draft' AND (booked > 0 OR held > 0)) \
               FROM s",
        )
        .bind(tenant_id)
        .bind(&like)
        .bind(ITEMS_PER_SHIPMENT)
        .fetch_one(&mut conn)
        .await
        .context("checking the planned shipments")?;
    let overlaps = |column: &str| {
        format!(
            "SELECT count(*) FROM fleet.assignments a JOIN fleet.assignments b \
               ON b.tenant_id = a.tenant_id AND b.{column} = a.{column} AND b.id > a.id \
              AND b.status = 'active' AND b.time_window && a.time_window \
             WHERE a.tenant_id = $1 AND a.status = 'active'"
        )
    };
    let mut double = Vec::new();
    for column in ["truck_id", "driver_id"] {
        double.push(
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(overlaps(column)))
                .bind(tenant_id)
                .fetch_one(&mut conn)
                .await?,
        );
    }
    conn.close().await?;
    let ledger = inventory
        .check_stock_ledger(authed(token, invpb::CheckStockLedgerRequest {}))
        .await
        .context("CheckStockLedger")?
        .into_inner();
    Ok(PlanCheck {
        planned,
        planned_not_booked_once: not_booked_once,
        planned_holding_wrong_stock: wrong_stock,
        drafts_holding_something: drafts_holding,
        truck_double_bookings: double[0],
        driver_double_bookings: double[1],
        ledger_mismatches: i64::try_from(ledger.mismatches.len())?,
    })
}
