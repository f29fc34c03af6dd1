//! `partner`: serve (the default), migrate, provision, rotate-keys. Wiring only.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use logistics_platform::config::{LogFormat, expose};
use logistics_platform::db;
use logistics_platform::service::SchemaCommand;
use logistics_platform::{server, telemetry};
use partner::app::{self, MIGRATOR, SCHEMA};
use partner::config::{Config, KeyConfig};
use partner::rotation;
use partner::sealing::Sealer;
use secrecy::SecretString;

/// The partner service of the logistics platform.
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
    /// Re-seal personal data sealed with any key but the active one, in batches.
    RotateKeys {
        /// Runtime role connection URL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: SecretString,
        /// The keys, as for `serve`.
        #[command(flatten)]
        keys: KeyConfig,
        /// Rows per transaction.
        #[arg(long, env = "ROTATION_BATCH_SIZE", default_value_t = 500)]
        batch_size: i64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::Serve(config) => config.log_format == LogFormat::Json,
        _ => false,
    };
    telemetry::init(json);
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "partner failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(config) => {
            let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
            app::run(*config, listener, server::shutdown_signal()).await
        }
        Command::Schema(command) => command.run(&SCHEMA, &MIGRATOR).await,
        Command::RotateKeys {
            database_url,
            keys,
            batch_size,
        } => {
            anyhow::ensure!(batch_size > 0, "--batch-size must be positive");
            let pool = db::pool(expose(&database_url), 2, "partner-rotate-keys")?;
            let sealer = Sealer::new(keys.field_encryption_keys, keys.blind_index_key.0);
            let done = rotation::run(&pool, &sealer, batch_size).await?;
            println!(
                "resealed tax_ids={} contacts={} responses={}",
                done.tax_ids, done.contacts, done.responses
            );
            Ok(())
        }
    }
}
