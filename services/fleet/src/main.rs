//! `fleet`: serve (the default), migrate, provision. Wiring only.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fleet::app;
use fleet::config::Config;
use fleet::schema::{MIGRATOR, SCHEMA};
use logistics_platform::config::LogFormat;
use logistics_platform::service::SchemaCommand;
use logistics_platform::{server, telemetry};

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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = match &cli.command {
        Command::Serve(config) => config.log_format == LogFormat::Json,
        Command::Schema(_) => false,
    };
    telemetry::init(json);
    let result = match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::Schema(command) => command.run(&SCHEMA, &MIGRATOR).await,
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
