//! Reading a logical dump back: its table of contents (which schemas, tables, row-level
//! security and policies it holds) and the rows of every table, counted from the COPY blocks
//! of its data section.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use anyhow::Context as _;
use tokio::process::Command;

use crate::cluster;

/// What a dump's table of contents says about its schema.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Toc {
    /// The schemas it creates.
    pub(super) schemas: Vec<String>,
    /// The tables it enables row-level security on (their names within the schema).
    pub(super) row_security: Vec<String>,
    /// How many policies it creates.
    pub(super) policies: usize,
}

impl Toc {
    /// Reads the table of contents of `file` (`pg_restore --list`).
    pub(super) async fn read(bin: &Path, file: &Path) -> anyhow::Result<Self> {
        let listing = cluster::run(
            Command::new(bin.join("pg_restore")).arg("--list").arg(file),
            &format!("reading the table of contents of {}", file.display()),
        )
        .await?;
        Ok(Self::parse(&listing))
    }

    /// Lines are `<id>; <catalog oid> <oid> <TYPE> <schema> <name...> <owner>`.
    fn parse(listing: &str) -> Self {
        let mut toc = Self::default();
        for line in listing.lines().filter(|l| !l.starts_with(';')) {
            let words: Vec<&str> = line.split_whitespace().skip(3).collect();
            match words.as_slice() {
                ["SCHEMA", "-", name, ..] => toc.schemas.push((*name).to_owned()),
                ["ROW", "SECURITY", _, table, ..] => toc.row_security.push((*table).to_owned()),
                ["POLICY", ..] => toc.policies += 1,
                _ => {}
            }
        }
        toc
    }
}

/// Rows per table in the data of `file`, read to its end (`pg_restore --data-only` to standard
/// output: one line per row between `COPY <table> ... FROM stdin;` and `\.`).
pub(super) async fn rows_in_dump(bin: &Path, file: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let program = bin.join("pg_restore");
    let file = file.to_owned();
    tokio::task::spawn_blocking(move || {
        let what = format!("reading the rows of {}", file.display());
        let mut child = std::process::Command::new(&program)
            .args(["--data-only", "--file=-"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("{what}: could not start {}", program.display()))?;
        let stdout = child.stdout.take().context("pg_restore's output")?;
        let mut stderr = child.stderr.take().context("pg_restore's errors")?;
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let counted = count_copy_rows(std::io::BufReader::new(stdout));
        let status = child.wait()?;
        let errors = errors.join().unwrap_or_default();
        anyhow::ensure!(status.success(), "{what} failed ({status}):\n{errors}");
        counted.with_context(|| what.clone())
    })
    .await?
}

/// Counts the rows of each `COPY ... FROM stdin;` block of a plain SQL script.
fn count_copy_rows(mut script: impl std::io::BufRead) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut rows = BTreeMap::new();
    let mut current: Option<(String, u64)> = None;
    let mut line = Vec::new();
    loop {
        line.clear();
        if script.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        match current.take() {
            Some((table, n)) if text == b"\\." => {
                rows.insert(table, n);
            }
            Some((table, n)) => current = Some((table, n + 1)),
            None => current = copy_target(text).map(|table| (table, 0)),
        }
    }
    anyhow::ensure!(current.is_none(), "the data ends inside a COPY block");
    Ok(rows)
}

/// The table of a `COPY <table> (<columns>) FROM stdin;` line.
fn copy_target(line: &[u8]) -> Option<String> {
    let statement = std::str::from_utf8(line)
        .ok()?
        .strip_prefix("COPY ")?
        .strip_suffix(" FROM stdin;")?;
    let table = statement.split_once(" (").map_or(statement, |(t, _)| t);
    Some(table.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_counted_per_copy_block() {
        let script = "SET statement_timeout = 0;\n\
                      COPY inventory.materials (tenant_id, id) FROM stdin;\n\
                      a\tb\n\
                      c\td\\nstill the same row\n\
                      \\.\n\
                      COPY inventory.warehouses (tenant_id, id) FROM stdin;\n\
                      \\.\n\
                      SELECT pg_catalog.setval('inventory.s', 3, true);\n";
        let rows = count_copy_rows(script.as_bytes()).unwrap();
        assert_eq!(
            rows.into_iter().collect::<Vec<_>>(),
            [
                ("inventory.materials".to_owned(), 2),
                ("inventory.warehouses".to_owned(), 0)
            ]
        );
        assert!(
            count_copy_rows("COPY inventory.materials (id) FROM stdin;\nx\n".as_bytes()).is_err()
        );
    }

    #[test]
    fn the_table_of_contents_names_schemas_row_security_and_policies() {
        let listing = ";\n; Archive created at 2026-01-01\n;\n\
            5; 2615 16390 SCHEMA - inventory inventory_owner\n\
            220; 1259 16400 TABLE inventory materials inventory_owner\n\
            3400; 0 16400 TABLE DATA inventory materials inventory_owner\n\
            3300; 3256 16500 POLICY inventory materials tenant_isolation inventory_owner\n\
            3301; 0 16400 ROW SECURITY inventory materials inventory_owner\n";
        assert_eq!(
            Toc::parse(listing),
            Toc {
                schemas: vec!["inventory".to_owned()],
                row_security: vec!["materials".to_owned()],
                policies: 1,
            }
        );
    }
}
