//! `ops slow-queries`: the statements that cost the most, from `pg_stat_statements` (which
//! `ops setup` preloads): the top by total time (where the database's time goes) and by mean
//! time (what makes single calls slow), with calls and rows.
//!
//! Statement texts are normalised by the extension (constants become `$1`), and utility
//! statements are not tracked (`ops setup` turns `track_utility` off), so no password or
//! personal value reaches the report; any text that still mentions a password is withheld.

use std::fmt::Write as _;

use anyhow::Context as _;

use crate::cluster;

/// One statement's figures.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Statement {
    /// The extension's id of the normalised statement.
    pub queryid: i64,
    /// How often it ran.
    pub calls: i64,
    /// Milliseconds spent in it, in all.
    pub total_ms: f64,
    /// Milliseconds per call.
    pub mean_ms: f64,
    /// Rows it returned or touched, in all.
    pub rows: i64,
    /// Its normalised text, on one line and shortened.
    pub query: String,
}

/// The top `limit` statements of this database by total and by mean time.
pub async fn top(url: &str, limit: i64) -> anyhow::Result<(Vec<Statement>, Vec<Statement>)> {
    let mut conn = cluster::connect(url).await?;
    let loaded: bool = sqlx::query_scalar(
        "SELECT 'pg_stat_statements' = ANY(string_to_array(current_setting('shared_preload_libraries'), ',')) \
            AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')",
    )
    .fetch_one(&mut conn)
    .await?;
    anyhow::ensure!(
        loaded,
        "pg_stat_statements is not loaded in this database: run `ops setup --restart`"
    );
    let query = |order: &str| {
        format!(
            "SELECT queryid, calls, total_exec_time AS total_ms, mean_exec_time AS mean_ms, rows, \
                    CASE WHEN query ~* 'password' THEN '(withheld: mentions a password)' \
                         ELSE left(regexp_replace(query, '\\s+', ' ', 'g'), 160) END AS query \
               FROM pg_stat_statements \
              WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
              ORDER BY {order} DESC LIMIT $1"
        )
    };
    let by_total = sqlx::query_as(sqlx::AssertSqlSafe(query("total_exec_time")))
        .bind(limit)
        .fetch_all(&mut conn)
        .await
        .context("reading pg_stat_statements")?;
    let by_mean = sqlx::query_as(sqlx::AssertSqlSafe(query("mean_exec_time")))
        .bind(limit)
        .fetch_all(&mut conn)
        .await?;
    Ok((by_total, by_mean))
}

/// Both lists as text tables.
pub fn render(by_total: &[Statement], by_mean: &[Statement]) -> String {
    let mut out = String::new();
    for (title, rows) in [("by total time", by_total), ("by mean time", by_mean)] {
        let _ = writeln!(out, "top statements {title}:");
        let _ = writeln!(
            out,
            "  {:>10} {:>12} {:>10} {:>10}  query",
            "calls", "total ms", "mean ms", "rows"
        );
        for s in rows {
            let _ = writeln!(
                out,
                "  {:>10} {:>12.1} {:>10.3} {:>10}  {}",
                s.calls, s.total_ms, s.mean_ms, s.rows, s.query
            );
        }
    }
    out
}
