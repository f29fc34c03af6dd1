//! `bench load`: fills a migrated database with the benchmark's data set.

use std::time::Instant;

use bench::load::{self, Size};
use clap::{Parser, Subcommand};
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
    /// Loads materials, warehouses, stock levels and their ledger into each tenant.
    Load {
        /// Tenants to load (each gets the whole per-tenant size).
        #[arg(long = "tenant", required = true)]
        tenants: Vec<Uuid>,
        /// Fraction of the full size (1.0: 10,000 materials, 100 warehouses and 500,000 ledger
        /// rows per tenant).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Prefix of the loaded SKUs and warehouse codes.
        #[arg(long, default_value = "BENCH")]
        prefix: String,
    },
    /// Drives inventory's scenarios over gRPC and in-process, with the bare gRPC bound.
    Run(bench::run::RunArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Load {
            tenants,
            scale,
            prefix,
        } => {
            let size = Size::scaled(scale);
            for tenant in tenants {
                let started = Instant::now();
                let loaded = load::inventory(&cli.database_url, tenant, &prefix, size).await?;
                println!(
                    "tenant {tenant}: {} materials, {} warehouses, {} levels, {} ledger rows in {:.1} s",
                    loaded.materials,
                    loaded.warehouses,
                    loaded.levels,
                    loaded.movements,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Run(args) => bench::run::run(args).await.map(|_| ()),
    }
}
