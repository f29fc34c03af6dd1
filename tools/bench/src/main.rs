//! `bench load`: fills a migrated database with the benchmark's data set.

use std::time::Instant;

use bench::call;
use bench::load::shipments::{self, Shipments};
use bench::load::{self, Size};
use bench::populate::{self, Fleet, Services};
use clap::{Parser, Subcommand};
use logistics_proto::fleet::v1::fleet_service_client::FleetServiceClient;
use logistics_proto::partner::v1::partner_service_client::PartnerServiceClient;
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "Benchmark of the logistics platform")]
struct Cli {
    /// Superuser URL of the platform's (migrated) database.
    #[arg(
        long,
        env = "BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/logistics_bench",
        hide_env_values = true
    )]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Loads each tenant: materials, warehouses, stock levels and their ledger straight into
    /// the database; customers, trucks and drivers through the running services (they seal
    /// what they store); then shipments straight into the database.
    Load {
        /// Tenants to load (each gets the whole per-tenant size); the admin must be able to log
        /// in to each.
        #[arg(long = "tenant", required = true)]
        tenants: Vec<Uuid>,
        /// Fraction of the full size (1.0 per tenant: 10,000 materials, 100 warehouses,
        /// 500,000 ledger rows, 1,000 customers, 200 trucks, 300 drivers, 100,000 shipments).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Prefix of the loaded SKUs and warehouse codes.
        #[arg(long, default_value = "BENCH")]
        prefix: String,
        /// Identity's gRPC address.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        identity_url: String,
        /// Partner's gRPC address.
        #[arg(long, default_value = "http://127.0.0.1:50052")]
        partner_url: String,
        /// Fleet's gRPC address.
        #[arg(long, default_value = "http://127.0.0.1:50053")]
        fleet_url: String,
        /// The tenants' admin e-mail.
        #[arg(long)]
        email: String,
        /// The tenants' admin password.
        #[arg(long, env = "BENCH_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Drives every scenario over gRPC, against its in-process bound and the bare gRPC bound.
    Run(Box<bench::run::RunArgs>),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Load {
            tenants,
            scale,
            prefix,
            identity_url,
            partner_url,
            fleet_url,
            email,
            password,
        } => {
            let partner = PartnerServiceClient::new(call::channel(&partner_url).await?);
            let fleet = FleetServiceClient::new(call::channel(&fleet_url).await?);
            for (seed, tenant) in (1..).zip(tenants) {
                let started = Instant::now();
                let loaded =
                    load::inventory(&cli.database_url, tenant, &prefix, Size::scaled(scale))
                        .await?;
                println!(
                    "tenant {tenant}: {} materials, {} warehouses, {} levels, {} ledger rows in {:.1} s",
                    loaded.materials,
                    loaded.warehouses,
                    loaded.levels,
                    loaded.movements,
                    started.elapsed().as_secs_f64()
                );
                let started = Instant::now();
                let services = Services {
                    partner: partner.clone(),
                    fleet: fleet.clone(),
                    token: call::login(&identity_url, tenant, &email, &password)
                        .await?
                        .token,
                };
                let made =
                    populate::fleet_and_partners(&services, Fleet::scaled(scale), seed).await?;
                println!(
                    "tenant {tenant}: {} customers, {} trucks, {} drivers through the services in {:.1} s",
                    made.customers,
                    made.trucks,
                    made.drivers,
                    started.elapsed().as_secs_f64()
                );
                let started = Instant::now();
                let shipped =
                    shipments::load(&cli.database_url, tenant, Shipments::scaled(scale)).await?;
                println!(
                    "tenant {tenant}: {shipped} shipments in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Run(args) => bench::run::run(*args, &cli.database_url).await.map(|_| ()),
    }
}
