//! `bench run`: inventory's scenarios over gRPC and in-process, plus the bare gRPC stack (health
//! check on the same server), at each concurrency; a table on stdout and a JSON file.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use logistics_platform::aip::PageTokens;
use logistics_proto::inventory::v1 as pb;
use serde::Serialize;
use sqlx::{Connection, PgConnection};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use uuid::Uuid;

use crate::call::{self, Session, authed, grpc};
use crate::cpu;
use crate::drive::{self, Outcome, Timing};
use crate::inventory::{Fixture, Path, Target};
use crate::login::{self, LoginPath};
use crate::memory::{Memory, Sampler};
use crate::partner::{self, PartnerArgs};
use crate::shipment::{self, PlanCheck};

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
    /// Partner's address, keys and runtime-role URL.
    #[command(flatten)]
    pub partner: PartnerArgs,
    /// Shipment's gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:50055")]
    pub shipment_url: String,
    /// The services' `/metrics` addresses, to count the calls a PlanShipment makes.
    #[arg(long = "metrics-url", value_delimiter = ',')]
    pub metrics_urls: Vec<String>,
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
    /// Only the scenarios whose names start with one of these (e.g. `PlanShipment,GetMaterial`);
    /// all when empty. The bare gRPC bound always runs.
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Seconds of warm-up before each measurement.
    #[arg(long, default_value_t = 2)]
    pub warmup_seconds: u64,
    /// Seconds to wait after the fixtures (160 users made, so 160 password hashes) before idle
    /// memory is read: jemalloc returns freed pages after 10 s.
    #[arg(long, default_value_t = 12)]
    pub settle_seconds: u64,
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
    /// Calls per PlanShipment, by `service/method` (empty without `--metrics-url`).
    pub calls_per_plan: BTreeMap<String, f64>,
    /// The books after the PlanShipment runs.
    pub plan_check: PlanCheck,
}

/// Runs every scenario and writes the results; `admin_url` (a superuser) checkpoints before
/// each measurement and checks the books after PlanShipment.
pub async fn run(args: RunArgs, admin_url: &str) -> anyhow::Result<Report> {
    let Session { token, user_id } =
        call::login(&args.identity_url, args.tenant, &args.email, &args.password).await?;
    let channel = call::channel(&args.inventory_url).await?;
    let client = pb::inventory_service_client::InventoryServiceClient::new(channel.clone());
    let key = logistics_platform::config::parse_key32(&args.inventory_page_token_key)
        .map_err(anyhow::Error::msg)?;
    let pool = logistics_platform::db::pool(&args.inventory_database_url, args.pool_size, "bench")?;
    let state = inventory::api::State {
        pool,
        page_tokens: PageTokens::new(key.0),
    };
    let fixture = fixture(&client, &token).await?;
    let target = Target::new(
        client.clone(),
        token.clone(),
        state,
        args.tenant,
        user_id,
        fixture,
    );
    let partners = partner::Target::new(
        &args.partner,
        args.pool_size,
        token.clone(),
        target.caller.clone(),
    )
    .await?;
    let logins =
        login::Target::new(&args.identity_url, args.tenant, &token, &args.password).await?;
    let plans = shipment::Target::new(&args.shipment_url, token.clone()).await?;
    let mut plan_calls = BTreeMap::<String, u64>::new();
    let timing = Timing {
        warmup: Duration::from_secs(args.warmup_seconds),
        measure: Duration::from_secs(args.seconds),
    };

    tokio::time::sleep(Duration::from_secs(args.settle_seconds)).await;
    const SERVICES: &[&str] = &["identity", "partner", "fleet", "inventory", "shipment"];
    let sampler = args
        .pid_dir
        .as_deref()
        .map(|dir| Sampler::start(dir, SERVICES));
    let processes = args
        .pid_dir
        .as_deref()
        .map(|dir| cpu::Processes::of(dir, SERVICES))
        .unwrap_or_default();
    // A checkpoint before each measurement: the first change of each page after a checkpoint
    // writes the whole page to the WAL, so a scenario measured just after one (at
    // `checkpoint_timeout`, wherever it falls in the run) pays several times the WAL of one
    // that is not. Every write scenario now starts in that state, so runs compare.
    let mut admin = PgConnection::connect(admin_url).await?;
    let mut outcomes = Vec::new();
    for &c in &args.concurrency {
        // Drives `$call` (with `$t` a clone of `$target`) as scenario `$label` over `$path`.
        macro_rules! scenario {
            ($label:expr, $path:expr, $target:expr, |$t:ident| $call:expr) => {{
                let label: &str = $label;
                if label == "Health"
                    || args.scenarios.is_empty()
                    || args.scenarios.iter().any(|s| label.starts_with(s.as_str()))
                {
                    let target = $target.clone();
                    sqlx::query("CHECKPOINT").execute(&mut admin).await?;
                    let before = processes.snapshot();
                    let mut outcome = drive::drive(label, $path, c, timing, move |_, _| {
                        let $t = target.clone();
                        async move { $call }
                    })
                    .await?;
                    if args.pid_dir.is_some() {
                        outcome.cpu_ms_per_op =
                            before.per_operation(&processes.snapshot(), outcome.finished);
                    }
                    print(&outcome);
                    outcomes.push(outcome);
                }
            }};
        }
        let health = HealthClient::new(channel.clone());
        scenario!("Health", "bare-grpc", health, |h| grpc(
            h.clone().check(HealthCheckRequest::default()).await
        ));
        for path in [Path::Grpc, Path::Database] {
            let name = if path == Path::Grpc {
                "grpc"
            } else {
                "database"
            };
            scenario!("GetMaterial", name, target, |t| t.get_material(path).await);
            scenario!("ListStockLevels first", name, target, |t| t
                .list_stock_levels(path, false)
                .await);
            scenario!("ListStockLevels deep", name, target, |t| t
                .list_stock_levels(path, true)
                .await);
            scenario!("ReserveStock+Release", name, target, |t| t
                .reserve_and_release(path)
                .await);
            scenario!("CreatePartner", name, partners, |t| t
                .create_partner(path)
                .await);
        }
        for (path, name) in [(LoginPath::Grpc, "grpc"), (LoginPath::Argon2, "argon2")] {
            scenario!("Login", name, logins, |t| t.login(path).await);
        }
        let before = shipment::calls(&args.metrics_urls).await?;
        scenario!("PlanShipment", "grpc", plans, |t| t.plan().await);
        for (method, after) in shipment::calls(&args.metrics_urls).await? {
            let n = after.saturating_sub(before.get(&method).copied().unwrap_or(0));
            if n > 0 {
                *plan_calls.entry(method).or_default() += n;
            }
        }
    }
    let tried = plans.used().max(1) as f64;
    let calls_per_plan = plan_calls
        .into_iter()
        .map(|(method, n)| (method, n as f64 / tried))
        .collect::<BTreeMap<_, _>>();
    let plan_check = shipment::check(admin_url, args.tenant, &mut client.clone(), &token).await?;
    let report = Report {
        outcomes,
        memory: sampler.map(Sampler::finish).unwrap_or_default(),
        calls_per_plan,
        plan_check,
    };
    summary(&report.outcomes);
    for (service, m) in &report.memory {
        println!(
            "{service:<10} idle {:>6.1} MiB  peak under load {:>6.1} MiB  high-water {:>6.1} MiB",
            m.idle_mib, m.peak_mib, m.high_water_mib
        );
    }
    println!(
        "\nPlanShipment: {} of {} loaded drafts tried; calls per plan, by the services' metrics:",
        plans.used(),
        plans.available()
    );
    for (method, n) in &report.calls_per_plan {
        println!("  {method:<48} {n:>6.2}");
    }
    println!(
        "books after planning: {:?} ({})",
        report.plan_check,
        if report.plan_check.clean() {
            "clean"
        } else {
            "NOT CLEAN"
        }
    );
    std::fs::create_dir_all(&args.out)?;
    let file = args.out.join(format!(
        "bench-{}.json",
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

fn print(o: &Outcome) {
    println!(
        "{:<24} {:<9} c={:<4} {:>9.1}/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
        o.scenario, o.path, o.concurrency, o.throughput, o.p50_ms, o.p95_ms, o.p99_ms, o.errors
    );
    if !o.cpu_ms_per_op.is_empty() {
        let total: f64 = o.cpu_ms_per_op.values().sum();
        let groups = o
            .cpu_ms_per_op
            .iter()
            .filter(|(_, ms)| **ms >= 0.005)
            .map(|(group, ms)| format!("{group} {ms:.3}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!("{:<24} CPU ms per call: {total:.3} ({groups})", "");
    }
    if let Some(why) = &o.exhausted {
        println!(
            "{:<24} stopped after {:.1} s of {}: {why}",
            "", o.seconds, o.scenario
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
