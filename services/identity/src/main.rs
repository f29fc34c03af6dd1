//! `identity`: serve (the default), migrate, provision, bootstrap. Wiring only.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use identity::app::{self, MIGRATOR, SCHEMA};
use identity::bootstrap::{self, Bootstrap};
use identity::config::Config;
use logistics_platform::config::{LogFormat, expose};
use logistics_platform::db;
use logistics_platform::service::SchemaCommand;
use logistics_platform::{server, telemetry};
use secrecy::SecretString;

/// jemalloc, purging freed pages in the background: argon2 takes 19 MiB per hash, and glibc's
/// malloc keeps such blocks in each blocking thread's arena after the hash (its mmap threshold
/// grows to fit them), so the process would stay hundreds of MiB large after a burst of logins.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The identity service of the logistics platform.
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
    /// Schema set-up: `migrate`, `provision`.
    #[command(flatten)]
    Schema(SchemaCommand),
    /// Create a tenant with an admin who is also platform admin, unless it exists.
    Bootstrap {
        /// Runtime role connection URL.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: SecretString,
        /// Tenant id to create or find.
        #[arg(long, env = "BOOTSTRAP_TENANT_ID")]
        tenant_id: uuid::Uuid,
        /// Tenant name.
        #[arg(long, env = "BOOTSTRAP_TENANT_NAME", default_value = "Demo")]
        tenant_name: String,
        /// Admin e-mail.
        #[arg(long, env = "BOOTSTRAP_ADMIN_EMAIL")]
        admin_email: String,
        /// Admin password (12 to 128 characters).
        #[arg(long, env = "BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: SecretString,
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
            tracing::error!(error = format!("{err:#}"), "identity failed");
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
        Command::Bootstrap {
            database_url,
            tenant_id,
            tenant_name,
            admin_email,
            admin_password,
        } => {
            let pool = db::pool(expose(&database_url), 2, "identity-bootstrap")?;
            let done = bootstrap::run(
                &pool,
                &Bootstrap {
                    tenant_id,
                    tenant_name,
                    admin_email,
                    admin_password,
                },
            )
            .await?;
            // The only output: machine-readable for the stack script.
            println!(
                "tenant_id={} admin_id={} created={}",
                done.tenant_id, done.admin_id, done.created
            );
            Ok(())
        }
    }
}
