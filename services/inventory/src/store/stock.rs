//! Stock levels and the ledger: read here, written only through `inventory.move_stock()` (by
//! way of `inventory.move_stock_many()`, several entries in one statement).

use logistics_platform::Error;
use logistics_platform::context::Tx;
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::stock::MovementKind;

/// A level as read back, with its material's reorder point.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LevelRow {
    /// The warehouse.
    pub warehouse_id: Uuid,
    /// The material.
    pub material_id: Uuid,
    /// On hand.
    pub on_hand: Decimal,
    /// Reserved.
    pub reserved: Decimal,
    /// The material's reorder point.
    pub reorder_point: Decimal,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

impl LevelRow {
    /// A level that never moved.
    pub fn zero(warehouse_id: Uuid, material_id: Uuid, reorder_point: Decimal) -> Self {
        Self {
            warehouse_id,
            material_id,
            on_hand: Decimal::ZERO,
            reserved: Decimal::ZERO,
            reorder_point,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// On hand minus reserved.
    pub fn available(&self) -> Decimal {
        self.on_hand - self.reserved
    }
}

/// A ledger entry as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MovementRow {
    /// Id.
    pub id: Uuid,
    /// The warehouse.
    pub warehouse_id: Uuid,
    /// The material.
    pub material_id: Uuid,
    /// Kind name.
    pub kind: String,
    /// Change of on hand.
    pub on_hand_change: Decimal,
    /// Change of reserved.
    pub reserved_change: Decimal,
    /// On hand after.
    pub on_hand_after: Decimal,
    /// Reserved after.
    pub reserved_after: Decimal,
    /// Why.
    pub reason: String,
    /// Referenced document type.
    pub reference_type: Option<String>,
    /// Referenced document id.
    pub reference_id: Option<Uuid>,
    /// The operation's idempotency key.
    pub idempotency_key: Uuid,
    /// Written at.
    pub created_at: OffsetDateTime,
}

/// One level change to book: the level, what happens and how much.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// The warehouse.
    pub warehouse_id: Uuid,
    /// The material.
    pub material_id: Uuid,
    /// What happens.
    pub kind: MovementKind,
    /// Quantity (> 0), or the signed change for adjustments.
    pub quantity: Decimal,
}

/// What every entry of one operation shares.
#[derive(Debug, Clone, Copy)]
pub struct Booking<'a> {
    /// Why.
    pub reason: &'a str,
    /// What it belongs to.
    pub reference: Option<(&'a str, Uuid)>,
    /// The operation's idempotency key.
    pub idempotency_key: Uuid,
}

/// A level change the CHECKs refused: the level would go below zero or reserve more than it
/// holds. The service checks first; this is the loser of a race, or a bug.
fn move_error(err: sqlx::Error) -> Error {
    let refused = err
        .as_database_error()
        .filter(|d| d.code().as_deref() == Some("23514"))
        .and_then(|d| d.constraint())
        .is_some_and(|c| {
            matches!(
                c,
                "stock_levels_on_hand_check"
                    | "stock_levels_reserved_check"
                    | "stock_levels_reserved_within_on_hand"
            )
        });
    if refused {
        Error::precondition(
            "INSUFFICIENT_STOCK",
            "stock_level",
            "the level would fall below zero or reserve more than it holds",
        )
    } else {
        Error::from_db(err)
    }
}

/// Applies `entry` to its level and appends it to the ledger, in one statement.
pub async fn apply(tx: &mut Tx, booking: &Booking<'_>, entry: Entry) -> Result<MovementRow, Error> {
    apply_all(tx, booking, &[entry])
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("move_stock_many returned no entry").into())
}

/// Applies `entries` to their levels in order and appends them to the ledger, in one statement
/// (none when there are no entries); the ledger entries come back in the same order. Each is
/// judged by the level's CHECKs as it is applied, so a later entry sees the earlier ones.
pub async fn apply_all(
    tx: &mut Tx,
    booking: &Booking<'_>,
    entries: &[Entry],
) -> Result<Vec<MovementRow>, Error> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let n = entries.len();
    let (mut ids, mut warehouses, mut materials, mut kinds, mut on_hand, mut reserved) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for entry in entries {
        let (on_hand_change, reserved_change) = entry.kind.changes(entry.quantity);
        // Time-ordered ids, in entry order: the ledger lists one operation's entries (which
        // share its transaction's time) by id.
        ids.push(Uuid::now_v7());
        warehouses.push(entry.warehouse_id);
        materials.push(entry.material_id);
        kinds.push(entry.kind.as_str());
        on_hand.push(on_hand_change);
        reserved.push(reserved_change);
    }
    let rows: Vec<MovementRow> = sqlx::query_as(
        "SELECT m.id, m.warehouse_id, m.material_id, m.kind, m.on_hand_change, m.reserved_change, \
             m.on_hand_after, m.reserved_after, m.reason, m.reference_type, m.reference_id, \
             m.idempotency_key, m.created_at \
         FROM inventory.move_stock_many($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             WITH ORDINALITY AS m \
         ORDER BY m.ordinality",
    )
    .bind(ids)
    .bind(warehouses)
    .bind(materials)
    .bind(kinds)
    .bind(on_hand)
    .bind(reserved)
    .bind(booking.reason)
    .bind(booking.reference.map(|r| r.0))
    .bind(booking.reference.map(|r| r.1))
    .bind(booking.idempotency_key)
    .fetch_all(&mut **tx)
    .await
    .map_err(move_error)?;
    if rows.len() != n {
        return Err(anyhow::anyhow!("{n} entries applied, {} returned", rows.len()).into());
    }
    Ok(rows)
}

const LEVEL_SELECT: &str = "SELECT l.warehouse_id, l.material_id, l.on_hand, l.reserved, \
    m.reorder_point, l.updated_at FROM inventory.stock_levels l \
    JOIN inventory.materials m ON m.tenant_id = l.tenant_id AND m.id = l.material_id";

/// Locks the levels of `keys` (warehouse, material) until the transaction ends and returns
/// those that exist, so that what is checked stays true until it is written.
pub async fn lock(tx: &mut Tx, keys: &[(Uuid, Uuid)]) -> Result<Vec<LevelRow>, Error> {
    let (warehouses, materials): (Vec<Uuid>, Vec<Uuid>) = keys.iter().copied().unzip();
    Ok(sqlx::query_as(
        "SELECT l.warehouse_id, l.material_id, l.on_hand, l.reserved, m.reorder_point, l.updated_at \
         FROM inventory.lock_levels($1, $2) l \
         JOIN inventory.materials m ON m.tenant_id = l.tenant_id AND m.id = l.material_id",
    )
    .bind(warehouses)
    .bind(materials)
    .fetch_all(&mut **tx)
    .await?)
}

/// One level, if it ever moved.
pub async fn level(
    tx: &mut Tx,
    warehouse_id: Uuid,
    material_id: Uuid,
) -> Result<Option<LevelRow>, Error> {
    let sql = format!("{LEVEL_SELECT} WHERE l.warehouse_id = $1 AND l.material_id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(warehouse_id)
        .bind(material_id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Whether stock (on hand or reserved) remains in a warehouse, of a material, or both.
pub async fn holds(
    tx: &mut Tx,
    warehouse_id: Option<Uuid>,
    material_id: Option<Uuid>,
) -> Result<bool, Error> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM inventory.stock_levels \
             WHERE ($1::uuid IS NULL OR warehouse_id = $1) AND ($2::uuid IS NULL OR material_id = $2) \
               AND (on_hand > 0 OR reserved > 0))",
    )
    .bind(warehouse_id)
    .bind(material_id)
    .fetch_one(&mut **tx)
    .await?)
}

/// Where the previous page of levels ended: warehouse and material.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LevelCursor(pub Uuid, pub Uuid);

/// One page of levels of live warehouses and materials, by warehouse and material.
///
/// The SQL names only the filters given (no `$n IS NULL OR ...`), so each combination is its
/// own prepared statement whose generic plan walks an index in page order: the caller runs it
/// with generic plans (`DbContext::with_generic_plans`) instead of planning it in every call.
pub async fn levels(
    tx: &mut Tx,
    warehouse_id: Option<Uuid>,
    material_id: Option<Uuid>,
    below_reorder_point: bool,
    after: Option<&LevelCursor>,
    limit: i64,
) -> Result<Vec<LevelRow>, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(LEVEL_SELECT);
    sql.push(
        " WHERE m.deleted_at IS NULL AND EXISTS (SELECT 1 FROM inventory.warehouses w \
             WHERE w.tenant_id = l.tenant_id AND w.id = l.warehouse_id AND w.deleted_at IS NULL)",
    );
    if let Some(id) = warehouse_id {
        sql.push(" AND l.warehouse_id = ").push_bind(id);
    }
    if let Some(id) = material_id {
        sql.push(" AND l.material_id = ").push_bind(id);
    }
    if below_reorder_point {
        sql.push(" AND l.on_hand - l.reserved <= m.reorder_point");
    }
    if let Some(cursor) = after {
        sql.push(" AND (l.warehouse_id, l.material_id) > (")
            .push_bind(cursor.0)
            .push(", ")
            .push_bind(cursor.1)
            .push(")");
    }
    sql.push(" ORDER BY l.warehouse_id, l.material_id LIMIT ")
        .push_bind(limit);
    Ok(sql.build_query_as().fetch_all(&mut **tx).await?)
}

/// Where the previous page of entries ended: time and id (newest first).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MovementCursor(pub OffsetDateTime, pub Uuid);

/// Filters of ListStockMovements.
#[derive(Debug, Clone, Default)]
pub struct MovementFilter {
    /// Of this warehouse.
    pub warehouse_id: Option<Uuid>,
    /// Of this material.
    pub material_id: Option<Uuid>,
    /// Pointing at this document.
    pub reference: Option<(String, Uuid)>,
}

/// One page of ledger entries, newest first.
pub async fn movements(
    tx: &mut Tx,
    filter: &MovementFilter,
    after: Option<&MovementCursor>,
    limit: i64,
) -> Result<Vec<MovementRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, warehouse_id, material_id, kind, on_hand_change, reserved_change, on_hand_after, \
             reserved_after, reason, reference_type, reference_id, idempotency_key, created_at \
         FROM inventory.stock_movements \
         WHERE ($1::uuid IS NULL OR warehouse_id = $1) AND ($2::uuid IS NULL OR material_id = $2) \
           AND ($3::text IS NULL OR (reference_type = $3 AND reference_id = $4)) \
           AND ($5::timestamptz IS NULL OR (created_at, id) < ($5, $6)) \
         ORDER BY created_at DESC, id DESC LIMIT $7",
    )
    .bind(filter.warehouse_id)
    .bind(filter.material_id)
    .bind(filter.reference.as_ref().map(|r| r.0.as_str()))
    .bind(filter.reference.as_ref().map(|r| r.1))
    .bind(after.map(|c| c.0))
    .bind(after.map(|c| c.1))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

/// A level that disagrees with its ledger or its held reservations.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Mismatch {
    /// The warehouse.
    pub warehouse_id: Uuid,
    /// The material.
    pub material_id: Uuid,
    /// On hand as stored.
    pub on_hand: Decimal,
    /// Sum of the ledger's on-hand changes.
    pub ledger_on_hand: Decimal,
    /// Reserved as stored.
    pub reserved: Decimal,
    /// Sum of held reservations.
    pub held: Decimal,
}

/// Every level of the tenant checked against its ledger and reservations: how many were
/// checked, and those that disagree.
pub async fn check_ledger(tx: &mut Tx) -> Result<(i64, Vec<Mismatch>), Error> {
    let checked: i64 = sqlx::query_scalar("SELECT count(*) FROM inventory.stock_levels")
        .fetch_one(&mut **tx)
        .await?;
    let mismatches = sqlx::query_as(
        "SELECT l.warehouse_id, l.material_id, l.on_hand, coalesce(m.on_hand, 0) AS ledger_on_hand, \
             l.reserved, coalesce(r.held, 0) AS held \
         FROM inventory.stock_levels l \
         LEFT JOIN (SELECT warehouse_id, material_id, sum(on_hand_change) AS on_hand, \
                           sum(reserved_change) AS reserved \
                      FROM inventory.stock_movements GROUP BY warehouse_id, material_id) m \
           ON m.warehouse_id = l.warehouse_id AND m.material_id = l.material_id \
         LEFT JOIN (SELECT warehouse_id, material_id, sum(quantity) AS held \
                      FROM inventory.reservations WHERE status = 'held' \
                     GROUP BY warehouse_id, material_id) r \
           ON r.warehouse_id = l.warehouse_id AND r.material_id = l.material_id \
         WHERE l.on_hand <> coalesce(m.on_hand, 0) OR l.reserved <> coalesce(r.held, 0) \
            OR l.reserved <> coalesce(m.reserved, 0) \
         ORDER BY l.warehouse_id, l.material_id",
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok((checked, mismatches))
}
