//! What the diagram shows, read from PostgreSQL's catalog: the services' tables (a partitioned
//! table once, never its partitions), their columns and keys, the foreign keys inside each
//! schema, and the cross-service id references, which carry no foreign key and so are listed
//! here by hand. Reads only; knows nothing of how the diagram is drawn.

use std::collections::BTreeMap;

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection};

use crate::services;

/// Columns that hold another service's ids: `(schema, table, column)` and the `(schema, table)`
/// whose ids it holds. These are the cross-service references the design allows (ids only, no
/// foreign key); a new one is added here, and a stale one stops the diagram.
const CROSS_SERVICE: [(ColumnAt, TableAt); 14] = [
    (("identity", "users", "partner_id"), ("partner", "partners")),
    (("identity", "users", "driver_id"), ("fleet", "drivers")),
    (("fleet", "drivers", "user_id"), ("identity", "users")),
    (
        ("inventory", "material_suppliers", "supplier_id"),
        ("partner", "partners"),
    ),
    (
        ("inventory", "reservations", "shipment_id"),
        ("shipment", "shipments"),
    ),
    (
        ("fleet", "assignments", "shipment_id"),
        ("shipment", "shipments"),
    ),
    (
        ("shipment", "shipments", "customer_id"),
        ("partner", "partners"),
    ),
    (
        ("shipment", "shipments", "supplier_id"),
        ("partner", "partners"),
    ),
    (
        ("shipment", "shipments", "destination_address_id"),
        ("partner", "addresses"),
    ),
    (
        ("shipment", "shipments", "origin_warehouse_id"),
        ("inventory", "warehouses"),
    ),
    (("shipment", "shipments", "truck_id"), ("fleet", "trucks")),
    (("shipment", "shipments", "driver_id"), ("fleet", "drivers")),
    (
        ("shipment", "shipments", "assignment_id"),
        ("fleet", "assignments"),
    ),
    (
        ("shipment", "shipment_items", "material_id"),
        ("inventory", "materials"),
    ),
];

/// A column by `(schema, table, column)`.
type ColumnAt = (&'static str, &'static str, &'static str);
/// A table by `(schema, table)`.
type TableAt = (&'static str, &'static str);

/// The migration bookkeeping table each schema holds: machinery, not domain.
const SKIPPED_TABLE: &str = "_sqlx_migrations";

/// A table's place: its schema and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableName {
    /// The schema, which is also the owning service's name.
    pub schema: String,
    /// The table's name inside it.
    pub table: String,
}

/// Everything the diagram draws, each list in its drawing order.
#[derive(Debug)]
pub struct Catalog {
    /// Tables by schema, then name.
    pub tables: Vec<Table>,
    /// Foreign keys by child, then parent, then columns.
    pub foreign_keys: Vec<ForeignKey>,
    /// Cross-service id references by the column that holds the id.
    pub references: Vec<Reference>,
}

/// One table (a partitioned one stands for all its partitions).
#[derive(Debug)]
pub struct Table {
    /// Where it lives.
    pub name: TableName,
    /// Its columns in their order in the table.
    pub columns: Vec<Column>,
    /// The partition key (`created_at`) when the table is partitioned by range.
    pub partition_key: Option<String>,
}

/// One column of a table.
#[derive(Debug)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type's name (`uuid`, `timestamptz`; an array of text is `text_array`).
    pub kind: String,
    /// Whether it is part of the primary key.
    pub primary_key: bool,
    /// Whether it is part of a foreign key.
    pub foreign_key: bool,
    /// Whether it may be null.
    pub nullable: bool,
}

/// A foreign key inside one schema.
#[derive(Debug)]
pub struct ForeignKey {
    /// The referencing table.
    pub child: TableName,
    /// The referenced table.
    pub parent: TableName,
    /// The referencing columns but `tenant_id`, which every key leads with (`tenant_id` alone
    /// when it is the only one), joined by `, `.
    pub columns: String,
    /// Whether the child's primary key lies within the foreign key: at most one child a parent.
    pub one_to_one: bool,
}

/// A column holding another service's ids, without a foreign key.
#[derive(Debug)]
pub struct Reference {
    /// The table holding the column.
    pub holder: TableName,
    /// The column.
    pub column: String,
    /// The table whose ids it holds.
    pub target: TableName,
}

impl TableName {
    fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// Reads the catalog of the services' schemas in the database `conn` is connected to, in one
/// read-only snapshot.
pub async fn read(conn: &mut PgConnection) -> anyhow::Result<Catalog> {
    let schemas: Vec<String> = services::ALL
        .iter()
        .map(|s| s.schema.schema.to_owned())
        .collect();
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;

    let columns: Vec<(String, String, String, String, bool, bool, bool)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, a.attname::text,
                CASE WHEN t.typcategory = 'A' THEN substr(t.typname, 2) || '_array'
                     ELSE t.typname::text END,
                EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p'
                                                       AND a.attnum = ANY (k.conkey)),
                EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'f'
                                                       AND a.attnum = ANY (k.conkey)),
                a.attnotnull
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid
          WHERE n.nspname::text = ANY ($1) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
            AND c.relname::text <> $2 AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY c.oid, a.attnum",
    )
    .bind(&schemas)
    .bind(SKIPPED_TABLE)
    .fetch_all(&mut *tx)
    .await
    .context("reading the columns")?;

    // Foreign keys of partitions (and those pointing at partitions) are clones of the
    // partitioned table's own, which `conparentid = 0` keeps alone.
    let foreign: Vec<(String, String, String, String, String, Option<bool>)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, pn.nspname::text, p.relname::text,
                coalesce((SELECT string_agg(a.attname::text, ', ' ORDER BY a.attnum)
                            FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attnum = ANY (k.conkey)
                             AND a.attname <> 'tenant_id'),
                         'tenant_id'),
                (SELECT pk.conkey <@ k.conkey FROM pg_constraint pk
                  WHERE pk.conrelid = c.oid AND pk.contype = 'p')
           FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_class p ON p.oid = k.confrelid
           JOIN pg_namespace pn ON pn.oid = p.relnamespace
          WHERE k.contype = 'f' AND k.conparentid = 0 AND NOT c.relispartition
            AND n.nspname::text = ANY ($1)",
    )
    .bind(&schemas)
    .fetch_all(&mut *tx)
    .await
    .context("reading the foreign keys")?;

    let partitioned: Vec<(String, String, String)> = sqlx::query_as(
        r"SELECT n.nspname::text, c.relname::text,
                 regexp_replace(pg_get_partkeydef(c.oid), '^[A-Z]+ \((.*)\)$', '\1')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname::text = ANY ($1) AND c.relkind = 'p' AND NOT c.relispartition",
    )
    .bind(&schemas)
    .fetch_all(&mut *tx)
    .await
    .context("reading the partitioned tables")?;
    tx.commit().await?;

    let mut tables: BTreeMap<TableName, Table> = BTreeMap::new();
    for (schema, table, name, kind, primary_key, foreign_key, not_null) in columns {
        let key = TableName::new(schema, table);
        tables
            .entry(key.clone())
            .or_insert_with(|| Table {
                name: key,
                columns: Vec::new(),
                partition_key: None,
            })
            .columns
            .push(Column {
                name,
                kind,
                primary_key,
                foreign_key,
                nullable: !not_null,
            });
    }
    for (schema, table, key) in partitioned {
        if let Some(table) = tables.get_mut(&TableName::new(schema, table)) {
            table.partition_key = Some(key);
        }
    }

    let mut foreign_keys: Vec<ForeignKey> = foreign
        .into_iter()
        .map(
            |(schema, table, parent_schema, parent, columns, one_to_one)| ForeignKey {
                child: TableName::new(schema, table),
                parent: TableName::new(parent_schema, parent),
                columns,
                one_to_one: one_to_one.unwrap_or(false),
            },
        )
        .collect();
    foreign_keys
        .sort_by(|a, b| (&a.child, &a.parent, &a.columns).cmp(&(&b.child, &b.parent, &b.columns)));

    let references = cross_service_references(&tables)?;
    Ok(Catalog {
        tables: tables.into_values().collect(),
        foreign_keys,
        references,
    })
}

/// The entries of [`CROSS_SERVICE`] in column order, each checked against the schema so that a
/// renamed column or table cannot leave a line to nowhere in the diagram.
fn cross_service_references(tables: &BTreeMap<TableName, Table>) -> anyhow::Result<Vec<Reference>> {
    let mut references = Vec::with_capacity(CROSS_SERVICE.len());
    for ((schema, table, column), (target_schema, target_table)) in CROSS_SERVICE {
        let holder = TableName::new(schema, table);
        let target = TableName::new(target_schema, target_table);
        let has_column = tables
            .get(&holder)
            .is_some_and(|t| t.columns.iter().any(|c| c.name == column));
        anyhow::ensure!(
            has_column,
            "the cross-service reference {holder}.{column} names a column the schema does not \
             have: update CROSS_SERVICE in tools/ops/src/erd/catalog.rs"
        );
        anyhow::ensure!(
            tables.contains_key(&target),
            "the cross-service reference {holder}.{column} points at {target}, a table the \
             schema does not have: update CROSS_SERVICE in tools/ops/src/erd/catalog.rs"
        );
        references.push(Reference {
            holder,
            column: column.to_owned(),
            target,
        });
    }
    references.sort_by(|a, b| (&a.holder, &a.column).cmp(&(&b.holder, &b.column)));
    Ok(references)
}
