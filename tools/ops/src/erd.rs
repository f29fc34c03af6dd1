//! `ops erd`: the entity-relationship diagram of the whole platform, generated from the real
//! schemas rather than drawn by hand. It migrates every service into a scratch database exactly
//! as production does (or, with `--from`, reads a live, migrated one), reads the catalog and writes three files:
//!
//! - `erd.md`, one Mermaid `erDiagram` in Markdown;
//! - `erd.dot`, the Graphviz source, one cluster per schema;
//! - `erd.svg`, drawn from `erd.dot` by `dot -Tsvg` and carrying the source's SHA-256.
//!
//! `--check` writes nothing: it fails, naming the stale files, when `erd.md` or `erd.dot`
//! differs from what the schemas give, or when `erd.svg` was not drawn from that `erd.dot`
//! (the SVG itself varies between Graphviz versions, so only its source is compared). The check
//! needs no Graphviz.

mod catalog;
mod graphviz;
mod mermaid;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, PgConnection};

use crate::services;

/// The Markdown file with the Mermaid diagram.
const MARKDOWN: &str = "erd.md";
/// The Graphviz source.
const DOT: &str = "erd.dot";
/// The SVG drawn from the Graphviz source.
const SVG: &str = "erd.svg";

/// Options of `ops erd`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A live database the services have migrated, to read instead of a scratch one (any role
    /// that can read the catalog will do). Not `--database-url`: that is the tool's global
    /// superuser URL, which names a cluster rather than the database to draw.
    #[arg(
        long,
        value_name = "URL",
        env = "ERD_DATABASE_URL",
        hide_env_values = true
    )]
    pub from: Option<SecretString>,
    /// Superuser URL of the cluster the scratch database is created in, migrated and dropped
    /// (unused with --from).
    #[arg(
        long,
        value_name = "URL",
        env = "ADMIN_DATABASE_URL",
        hide_env_values = true,
        default_value = crate::cluster::DEFAULT_ADMIN_URL
    )]
    pub admin_url: SecretString,
    /// Directory of erd.md, erd.dot and erd.svg; relative to the current directory, so run
    /// from the workspace root for the committed docs/.
    #[arg(long, default_value = "docs")]
    pub out: PathBuf,
    /// Write nothing; fail, naming the stale files, when they differ from the schemas.
    #[arg(long)]
    pub check: bool,
}

/// Runs `ops erd`: generates the diagram and writes it to `--out`, or with `--check` verifies
/// the files there.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let catalog = match &args.from {
        Some(url) => read(url.expose_secret())
            .await
            .context("reading the database of --from (ERD_DATABASE_URL)")?,
        None => read_scratch(args.admin_url.expose_secret()).await?,
    };
    let markdown = mermaid::document(&catalog);
    let dot = graphviz::source(&catalog);
    if args.check {
        check(&args.out, &markdown, &dot)
    } else {
        let source = dot.clone();
        let svg = tokio::task::spawn_blocking(move || graphviz::render_svg(&source))
            .await
            .context("drawing erd.svg")??;
        std::fs::create_dir_all(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        for (name, text) in [(MARKDOWN, &markdown), (DOT, &dot), (SVG, &svg)] {
            let path = args.out.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
        Ok(())
    }
}

/// Compares the files in `out` with what the schemas give, writing nothing.
fn check(out: &Path, markdown: &str, dot: &str) -> anyhow::Result<()> {
    let mut stale = Vec::new();
    for (name, expected) in [(MARKDOWN, markdown), (DOT, dot)] {
        let path = out.join(name);
        let current = read_if_present(&path)?;
        if current.as_deref() != Some(expected) {
            stale.push(format!(
                "{}{}",
                path.display(),
                difference(current.as_deref(), expected)
            ));
        }
    }
    let path = out.join(SVG);
    match read_if_present(&path)? {
        Some(svg) if graphviz::drawn_from(&svg, dot) => {}
        Some(_) => stale.push(format!(
            "{} (not drawn from the current {DOT})",
            path.display()
        )),
        None => stale.push(format!("{} (missing)", path.display())),
    }
    anyhow::ensure!(
        stale.is_empty(),
        "the entity-relationship diagram is out of date with the schemas the migrations \
         create:\n  {}\nregenerate it with `cargo run -p ops -- erd` (or `ops erd --out {}`) and \
         commit the result",
        stale.join("\n  "),
        out.display()
    );
    Ok(())
}

/// The file's text, or `None` when there is none.
fn read_if_present(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// Where a stale file first departs from what the schemas give, for the failure message.
fn difference(current: Option<&str>, expected: &str) -> String {
    let Some(current) = current else {
        return " (missing)".to_owned();
    };
    let mut current_lines = current.lines();
    let mut expected_lines = expected.lines();
    for number in 1.. {
        match (current_lines.next(), expected_lines.next()) {
            (Some(a), Some(b)) if a == b => {}
            (None, None) => break,
            (a, b) => {
                return format!(
                    " (line {number}: committed {:?}, schema gives {:?})",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>")
                );
            }
        }
    }
    " (line endings differ)".to_owned()
}

/// Reads the catalog of the database `url` points at.
async fn read(url: &str) -> anyhow::Result<catalog::Catalog> {
    let mut conn = PgConnection::connect(url)
        .await
        .context("connecting to the database to read")?;
    let catalog = catalog::read(&mut conn).await?;
    conn.close().await?;
    Ok(catalog)
}

/// Creates a scratch database on the cluster `admin_url` points at, migrates every service into
/// it, reads its catalog and drops it, also when something on the way fails.
async fn read_scratch(admin_url: &str) -> anyhow::Result<catalog::Catalog> {
    let admin: PgConnectOptions = admin_url.parse().context("parsing --admin-url")?;
    let name = scratch_name();
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .context("connecting with --admin-url (ADMIN_DATABASE_URL)")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .with_context(|| format!("creating the scratch database {name}"))?;
    let result = migrate_and_read(&admin, &name).await;
    let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .with_context(|| format!("dropping the scratch database {name}"));
    let _ = conn.close().await;
    match (result, dropped) {
        (Ok(catalog), Ok(_)) => Ok(catalog),
        (Ok(_), Err(err)) => Err(err),
        (Err(err), Ok(_)) => Err(err),
        (Err(err), Err(drop_err)) => {
            tracing::warn!(error = %format!("{drop_err:#}"), "scratch database left behind");
            Err(err)
        }
    }
}

/// Provisions and migrates every service into the scratch database `name`, then reads it.
async fn migrate_and_read(
    admin: &PgConnectOptions,
    name: &str,
) -> anyhow::Result<catalog::Catalog> {
    let scratch = admin.clone().database(name).to_url_lossy();
    let owner_url = |role: &str| {
        let mut url = scratch.clone();
        // The service roles have no password: trust or peer authentication, as in CI.
        let _ = url.set_username(role);
        let _ = url.set_password(None);
        url.to_string()
    };
    services::migrate_all(scratch.as_str(), owner_url)
        .await
        .context("provisioning and migrating the services into the scratch database")?;
    read(scratch.as_str()).await
}

/// A database name no other run uses at the same time: `erd_<pid>_<nanoseconds>`.
fn scratch_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("erd_{}_{nanos}", std::process::id())
}
