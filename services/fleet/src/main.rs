//! `fleet`: serve (the default), migrate, provision. Wiring only.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fleet::app;
use fleet::config::{Config, KeyConfig};
use fleet::rotation;
use fleet::schema::{MIGRATOR, SCHEMA};
use fleet::sealing::Sealer;
use logistics_platform::config::{LogFormat, expose};
use logistics_platform::db;
use logistics_platform::service::SchemaCommand;
use logistics_platform::{server, telemetry};
use secrecy::SecretString;

/// The fleet service of the logistics platform.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC (migrating first when MIGRATION_DATABASE_URL is set).
    Serve(Box<Config>),
    /// `migrate` and `provision`.
    #[command(flatten)]
    Schema(SchemaCommand),
    /// Re-seal licence numbers and phones sealed with any key but the active one, in batches.
    RotateKeys {
        /// Runtime role connection URL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: SecretString,
        /// The keys, as for `serve`.
        #[command(flatten)]
        keys: KeyConfig,
        /// Rows per transaction.
        #[arg(long, env = "ROTATION_BATCH_SIZE", default_value_t = 500, value_parser = clap::value_parser!(i64).range(1..))]
        batch_size: i64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::Serve(config) => config.log_format == LogFormat::Json,
        Command::Schema(_) | Command::RotateKeys { .. } => false,
    };
    telemetry::init(json);
    let result = match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Schema(command) => command.run(&SCHEMA, &MIGRATOR).await,
        Command::RotateKeys {
            database_url,
            keys,
            batch_size,
        } => rotate_keys(&database_url, keys, batch_size).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "fleet failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
    app::run(config, listener, server::shutdown_signal()).await
}

async fn rotate_keys(
    database_url: &SecretString,
    keys: KeyConfig,
    batch_size: i64,
) -> anyhow::Result<()> {
    let pool = db::pool(expose(database_url), 2, "fleet-rotate-keys")?;
    let sealer = Sealer::new(keys.field_encryption_keys, keys.blind_index_key.0);
    let done = rotation::run(&pool, &sealer, batch_size).await?;
    println!(
        "resealed drivers={} responses={}",
        done.drivers, done.responses
    );
    Ok(())
}
