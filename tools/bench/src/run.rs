//! `bench run`: inventory's scenarios over gRPC and in-process, plus the bare gRPC stack (health
//! check on the same server), at each concurrency; a table on stdout and a JSON file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use logistics_platform::aip::PageTokens;
use logistics_proto::identity::v1 as idpb;
use logistics_proto::inventory::v1 as pb;
use serde::Serialize;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use crate::drive::{self, Outcome, Timing};
use crate::inventory::{Fixture, Path, Target, authed, grpc};
use crate::memory::{Memory, Sampler};

/// Where the running stack is and who to log in as.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Identity's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub identity_url: String,
    /// Inventory's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50054")]
    pub inventory_url: String,
    /// Inventory's runtime-role URL, for the in-process (database-only) path.
    #[arg(long, env = "BENCH_INVENTORY_DATABASE_URL", hide_env_values = true)]
    pub inventory_database_url: String,
    /// Inventory's page-token key (standard base64), so in-process pages match the service's.
    #[arg(long, env = "INVENTORY_PAGE_TOKEN_KEY", hide_env_values = true)]
    pub inventory_page_token_key: String,
    /// Pool size of the in-process path: the service's DATABASE_MAX_CONNECTIONS.
    #[arg(long, default_value_t = 10)]
    pub pool_size: u32,
    /// The loaded tenant.
    #[arg(long)]
    pub tenant: Uuid,
    /// Its admin's e-mail.
    #[arg(long)]
    pub email: String,
    /// Its admin's password.
    #[arg(long, env = "BENCH_PASSWORD", hide_env_values = true)]
    pub password: String,
    /// Concurrencies to run each scenario at.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    pub concurrency: Vec<u32>,
    /// Seconds measured per scenario and concurrency.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Seconds of warm-up before each measurement.
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u64,
    /// Directory of the stack's `<service>.pid` files, for resident memory.
    #[arg(long)]
    pub pid_dir: Option<std::path::PathBuf>,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench/results")]
    pub out: std::path::PathBuf,
}

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Each scenario, path and concurrency.
    pub outcomes: Vec<Outcome>,
    /// Each service's memory.
    pub memory: BTreeMap<String, Memory>,
}

/// Runs every scenario and writes the results.
pub async fn run(args: RunArgs) -> anyhow::Result<Report> {
    let identity = Channel::from_shared(args.identity_url.clone())?
        .connect()
        .await?;
    let login = idpb::identity_service_client::IdentityServiceClient::new(identity)
        .login(idpb::LoginRequest {
            tenant_id: args.tenant.to_string(),
            email: args.email.clone(),
            password: args.password.clone(),
        })
        .await
        .context("logging in")?
        .into_inner();
    let token = login.tokens.context("no tokens")?.access_token;
    let user_id: Uuid = login.user.context("no user")?.id.parse()?;
    let channel = Channel::from_shared(args.inventory_url.clone())?
        .connect()
        .await?;
    let client = pb::inventory_service_client::InventoryServiceClient::new(channel.clone());
    let key = logistics_platform::config::parse_key32(&args.inventory_page_token_key)
        .map_err(anyhow::Error::msg)?;
    let pool = logistics_platform::db::pool(&args.inventory_database_url, args.pool_size, "bench")?;
    let state = inventory::api::State {
        pool,
        page_tokens: PageTokens::new(key.0),
    };
    let fixture = fixture(&client, &token).await?;
    let target = Target::new(client, token, state, args.tenant, user_id, fixture);
    let timing = Timing {
        warmup: Duration::from_secs(args.warmup_seconds),
        measure: Duration::from_secs(args.seconds),
    };

    let sampler = args.pid_dir.as_deref().map(|dir| {
        Sampler::start(
            dir,
            &["identity", "partner", "fleet", "inventory", "shipment"],
        )
    });
    let mut outcomes = Vec::new();
    for &c in &args.concurrency {
        let health = HealthClient::new(channel.clone());
        outcomes.push(
            drive::drive("Health", "bare-grpc", c, timing, move |_, _| {
                let mut health = health.clone();
                async move { grpc(health.check(HealthCheckRequest::default()).await) }
            })
            .await?,
        );
        print(outcomes.last());
        for path in [Path::Grpc, Path::Database] {
            let name = if path == Path::Grpc {
                "grpc"
            } else {
                "database"
            };
            macro_rules! scenario {
                ($label:expr, |$t:ident| $call:expr) => {{
                    let target = target.clone();
                    outcomes.push(
                        drive::drive($label, name, c, timing, move |_, _| {
                            let $t = target.clone();
                            async move { $call.await }
                        })
                        .await?,
                    );
                    print(outcomes.last());
                }};
            }
            scenario!("GetMaterial", |t| t.get_material(path));
            scenario!("ListStockLevels first", |t| t
                .list_stock_levels(path, false));
            scenario!("ListStockLevels deep", |t| t.list_stock_levels(path, true));
            scenario!("ReserveStock+Release", |t| t.reserve_and_release(path));
        }
    }
    let report = Report {
        outcomes,
        memory: sampler.map(Sampler::finish).unwrap_or_default(),
    };
    summary(&report.outcomes);
    for (service, m) in &report.memory {
        println!(
            "{service:<10} idle {:>6.1} MiB  peak under load {:>6.1} MiB  high-water {:>6.1} MiB",
            m.idle_mib, m.peak_mib, m.high_water_mib
        );
    }
    std::fs::create_dir_all(&args.out)?;
    let file = args.out.join(format!(
        "inventory-{}.json",
        time::OffsetDateTime::now_utc().unix_timestamp()
    ));
    std::fs::write(&file, serde_json::to_vec_pretty(&report)?)?;
    println!("results: {}", file.display());
    Ok(report)
}

/// Every level of the tenant (walking ListStockLevels) and the token of the page at 80 % of it.
async fn fixture(
    client: &pb::inventory_service_client::InventoryServiceClient<Channel>,
    token: &str,
) -> anyhow::Result<Fixture> {
    let mut levels = Vec::new();
    let mut tokens = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = authed(
            token,
            pb::ListStockLevelsRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            },
        );
        let page = client
            .clone()
            .list_stock_levels(request)
            .await?
            .into_inner();
        for level in &page.levels {
            levels.push((level.warehouse_id.parse()?, level.material_id.parse()?));
        }
        if page.next_page_token.is_empty() {
            break;
        }
        tokens.push(page.next_page_token.clone());
        page_token = page.next_page_token;
    }
    anyhow::ensure!(
        !levels.is_empty(),
        "the tenant has no stock levels: run `bench load` first"
    );
    let deep_page_token = tokens
        .get(tokens.len() * 4 / 5)
        .cloned()
        .unwrap_or_default();
    Ok(Fixture {
        levels: Arc::new(levels),
        deep_page_token,
    })
}

fn print(outcome: Option<&Outcome>) {
    if let Some(o) = outcome {
        println!(
            "{:<24} {:<9} c={:<4} {:>9.1}/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
            o.scenario, o.path, o.concurrency, o.throughput, o.p50_ms, o.p95_ms, o.p99_ms, o.errors
        );
    }
}

/// Each gRPC scenario against its database-only bound and the bare gRPC bound (health check on
/// the same server) at the same concurrency.
fn summary(outcomes: &[Outcome]) {
    let find = |scenario: &str, path: &str, c: u32| {
        outcomes
            .iter()
            .find(|o| o.scenario == scenario && o.path == path && o.concurrency == c)
    };
    println!(
        "\n{:<24} {:>5} {:>10} {:>10} {:>7} {:>10} {:>7} {:>9} {:>7}",
        "scenario", "c", "grpc/s", "db-only/s", "ratio", "bare/s", "ratio", "p99 ms", "errors"
    );
    for o in outcomes.iter().filter(|o| o.path == "grpc") {
        let db = find(&o.scenario, "database", o.concurrency);
        let bare = find("Health", "bare-grpc", o.concurrency);
        let ratio = |bound: Option<&Outcome>| {
            bound.map_or("-".to_owned(), |b| {
                format!("{:.0}%", 100.0 * o.throughput / b.throughput)
            })
        };
        println!(
            "{:<24} {:>5} {:>10.1} {:>10.1} {:>7} {:>10.1} {:>7} {:>9.2} {:>7}",
            o.scenario,
            o.concurrency,
            o.throughput,
            db.map_or(0.0, |d| d.throughput),
            ratio(db),
            bare.map_or(0.0, |b| b.throughput),
            ratio(bare),
            o.p99_ms,
            o.errors
        );
    }
}
