//! `shipment`: serve (the default), migrate, provision, partitions. Wiring only.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use logistics_platform::config::{LogFormat, expose};
use logistics_platform::service::SchemaCommand;
use logistics_platform::{db, server, telemetry};
use secrecy::SecretString;
use shipment::app;
use shipment::config::Config;
use shipment::schema::{self, MIGRATOR, SCHEMA};

/// The shipment service of the logistics platform.
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
    /// Create the tracking-event partitions of the coming months (the server also does it daily).
    Partitions {
        /// Runtime role connection URL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: SecretString,
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
    let result = match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Schema(command) => command.run(&SCHEMA, &MIGRATOR).await,
        Command::Partitions { database_url } => partitions(&database_url).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "shipment failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen_addr).await?;
    app::run(config, listener, server::shutdown_signal()).await
}

async fn partitions(database_url: &SecretString) -> anyhow::Result<()> {
    let pool = db::pool(expose(database_url), 1, "shipment-partitions")?;
    let created = schema::ensure_partitions(&pool).await?;
    println!("tracking partitions created: {created}");
    Ok(())
}
