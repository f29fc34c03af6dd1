//! Reading the plans PostgreSQL really ran: `auto_explain` preloaded for a service's runtime
//! role sends the plan of every statement (nested ones too) back to its connection as a NOTICE,
//! which sqlx logs (target `sqlx::postgres::notice`); the EXPLAIN tests capture those logs and
//! fail on a sequential scan of a big table.

use std::collections::BTreeMap;

use serde_json::Value;
use sqlx::PgPool;

/// Tables smaller than this may be scanned: a sequential scan is the right plan for them.
pub const SMALL_TABLE_ROWS: f32 = 2000.0;

/// Makes every session of `role` in database `db` send its plans as JSON notices.
pub async fn enable(admin: &PgPool, role: &str, db: &str) -> anyhow::Result<()> {
    for setting in [
        "session_preload_libraries = 'auto_explain'",
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_level = 'notice'",
        "auto_explain.log_format = 'json'",
        "auto_explain.log_nested_statements = on",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER ROLE {role} IN DATABASE {db} SET {setting}"
        )))
        .execute(admin)
        .await?;
    }
    Ok(())
}

/// The (query text, plan) pairs auto_explain sent as notices, from a captured JSON log.
pub fn explained(log: &str) -> Vec<(String, Value)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "sqlx::postgres::notice")
        .filter_map(|line| {
            let message = line["fields"]["message"].as_str()?.to_owned();
            let json = &message[message.find('{')?..];
            let explained: Value = serde_json::from_str(json).ok()?;
            Some((
                explained["Query Text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                explained["Plan"].clone(),
            ))
        })
        .collect()
}

/// Every node of `plan`, the root first, each before its children.
pub fn nodes(plan: &Value) -> Vec<&Value> {
    let mut all = vec![plan];
    let mut next = 0;
    while let Some(node) = all.get(next).copied() {
        all.extend(node["Plans"].as_array().into_iter().flatten());
        next += 1;
    }
    all
}

/// The relations `plan` reads with a sequential scan.
pub fn seq_scans(plan: &Value, into: &mut Vec<String>) {
    into.extend(
        nodes(plan)
            .into_iter()
            .filter(|node| node["Node Type"] == "Seq Scan")
            .filter_map(|node| node["Relation Name"].as_str().map(str::to_owned)),
    );
}

/// Each sequential scan, in `plans`, of a table of `schema` with more than
/// [`SMALL_TABLE_ROWS`] rows (by the planner's statistics), with its query; sorted, no repeats.
pub async fn big_seq_scans(
    admin: &PgPool,
    schema: &str,
    plans: &[(String, Value)],
) -> anyhow::Result<Vec<String>> {
    let sizes: BTreeMap<String, f32> = sqlx::query_as::<_, (String, f32)>(
        "SELECT c.relname::text, c.reltuples FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname = $1 AND c.relkind = 'r'",
    )
    .bind(schema)
    .fetch_all(admin)
    .await?
    .into_iter()
    .collect();
    let mut scans = Vec::new();
    for (query, plan) in plans {
        let mut relations = Vec::new();
        seq_scans(plan, &mut relations);
        for relation in relations {
            let rows = sizes.get(&relation).copied().unwrap_or(0.0);
            if rows > SMALL_TABLE_ROWS {
                scans.push(format!("{relation} ({rows} rows) in: {query}"));
            }
        }
    }
    scans.sort();
    scans.dedup();
    Ok(scans)
}

/// What an EXPLAIN test checks once its calls have run: at least `min_plans` plans arrived in
/// `log`, none reads a big table of `schema` sequentially, and some plan reads each of `tables`.
/// The error names every offending query.
pub async fn check(
    admin: &PgPool,
    schema: &str,
    log: &str,
    min_plans: usize,
    tables: &[&str],
) -> anyhow::Result<()> {
    let plans = explained(log);
    anyhow::ensure!(
        plans.len() >= min_plans,
        "auto_explain reported {} plans; is it preloaded?",
        plans.len()
    );
    let scans = big_seq_scans(admin, schema, &plans).await?;
    anyhow::ensure!(
        scans.is_empty(),
        "sequential scans of big tables:\n{}",
        scans.join("\n")
    );
    for table in tables {
        anyhow::ensure!(
            plans.iter().any(|(q, _)| q.contains(table)),
            "no plan of a query on {table}"
        );
    }
    Ok(())
}
