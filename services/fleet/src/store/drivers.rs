//! Drivers. Licence numbers and phones arrive sealed and leave sealed.
//!
//! Every query names the tenant (`tenant_id = fleet.current_tenant_id()`): the key rotation's
//! policies are permissive, so row-level security alone is `tenant_id = … OR
//! has_app_role('system')`, which no index serves (each query read every tenant's drivers).

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::{Resource, UniqueConstraint};
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::range;
use crate::domain::driver::{DriverStatus, LicenceClass};
use crate::domain::window::Window;

/// Resource kind in error details.
pub const KIND: &str = "logistics.fleet.v1.Driver";

const UNIQUE: &[UniqueConstraint] = &[
    UniqueConstraint {
        constraint: "drivers_licence_key",
        kind: KIND,
        field: "licence_number",
    },
    UniqueConstraint {
        constraint: "drivers_user_key",
        kind: KIND,
        field: "user_id",
    },
];

/// A write the database refused: a taken unique value, or a change that would invalidate an
/// active assignment (trigger), as the precondition it stands for.
fn write_error(err: sqlx::Error) -> Error {
    let constraint = err
        .as_database_error()
        .filter(|d| d.code().as_deref() == Some("23514"))
        .and_then(|d| d.constraint().map(str::to_owned));
    match constraint.as_deref() {
        Some("drivers_keep_assignments") => Error::precondition(
            "DRIVER_HAS_ASSIGNMENTS",
            "driver",
            "the driver has active assignments that have not ended; cancel them first",
        ),
        Some("drivers_licensed_for_assignments") => Error::precondition(
            "LICENCE_ENDS_BEFORE_ASSIGNMENT",
            "driver",
            "the new licence expiry is before the end of an active assignment",
        ),
        _ => Error::from_db_with(err, UNIQUE),
    }
}

/// A driver as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DriverRow {
    /// Tenant (part of the sealed values' associated data).
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Lower-cased name (the order key, as PostgreSQL lower-cases it).
    pub name_key: String,
    /// Sealed licence number.
    pub licence_number_ciphertext: Vec<u8>,
    /// Licence class names.
    pub licence_classes: Vec<String>,
    /// When the licence stops being valid.
    pub licence_expires_at: OffsetDateTime,
    /// Sealed phone.
    pub phone_ciphertext: Option<Vec<u8>>,
    /// Linked identity user.
    pub user_id: Option<Uuid>,
    /// `active`, `inactive` or `terminated`.
    pub status: String,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
    /// Soft-deleted at.
    pub deleted_at: Option<OffsetDateTime>,
}

/// A driver's values as stored: validated, personal data sealed.
#[derive(Debug, Clone)]
pub struct DriverValues {
    /// Name.
    pub name: String,
    /// Sealed licence number.
    pub licence_ciphertext: Vec<u8>,
    /// Blind index of the licence number.
    pub licence_index: Vec<u8>,
    /// Licence classes, no repeats.
    pub classes: Vec<LicenceClass>,
    /// When the licence stops being valid.
    pub licence_expires_at: OffsetDateTime,
    /// Sealed phone.
    pub phone_ciphertext: Option<Vec<u8>>,
    /// Linked identity user.
    pub user_id: Option<Uuid>,
    /// Status.
    pub status: DriverStatus,
}

impl DriverValues {
    fn class_names(&self) -> Vec<&'static str> {
        self.classes.iter().map(|c| c.as_str()).collect()
    }
}

const SELECT: &str = "SELECT tenant_id, id, name, lower(name) AS name_key, licence_number_ciphertext, licence_classes, \
    licence_expires_at, phone_ciphertext, user_id, status, created_at, updated_at, version, deleted_at \
    FROM fleet.drivers";

/// Inserts a driver.
pub async fn insert(tx: &mut Tx, id: Uuid, values: &DriverValues) -> Result<DriverRow, Error> {
    sqlx::query(
        "INSERT INTO fleet.drivers (tenant_id, id, name, licence_number_ciphertext, \
             licence_number_index, licence_classes, licence_expires_at, phone_ciphertext, user_id, status) \
         VALUES (fleet.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(&values.name)
    .bind(&values.licence_ciphertext)
    .bind(&values.licence_index)
    .bind(values.class_names())
    .bind(values.licence_expires_at)
    .bind(values.phone_ciphertext.as_deref())
    .bind(values.user_id)
    .bind(values.status.as_str())
    .execute(&mut **tx)
    .await
    .map_err(write_error)?;
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted driver not visible").into())
}

/// One driver; deleted ones only when `include_deleted`.
pub async fn get(tx: &mut Tx, id: Uuid, include_deleted: bool) -> Result<Option<DriverRow>, Error> {
    let sql = format!(
        "{SELECT} WHERE tenant_id = fleet.current_tenant_id() AND id = $1 AND ($2 OR deleted_at IS NULL)"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// A live driver, or NOT_FOUND.
pub async fn get_live(tx: &mut Tx, id: Uuid) -> Result<DriverRow, Error> {
    get(tx, id, false)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(KIND, id)))
}

/// Writes every value of a live driver at `expected_version` (any when `None`).
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    values: &DriverValues,
) -> Result<DriverRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE fleet.drivers SET name = $3, licence_number_ciphertext = $4, licence_number_index = $5, \
             licence_classes = $6, licence_expires_at = $7, phone_ciphertext = $8, user_id = $9, \
             status = $10, version = version + 1 \
         WHERE tenant_id = fleet.current_tenant_id() AND id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(&values.name)
    .bind(&values.licence_ciphertext)
    .bind(&values.licence_index)
    .bind(values.class_names())
    .bind(values.licence_expires_at)
    .bind(values.phone_ciphertext.as_deref())
    .bind(values.user_id)
    .bind(values.status.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(write_error)?;
    after_write(tx, id, updated, true).await
}

/// Soft-deletes (`deleted` true) or restores a driver at `expected_version`.
pub async fn set_deleted(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    deleted: bool,
) -> Result<DriverRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE fleet.drivers SET deleted_at = CASE WHEN $3 THEN now() END, version = version + 1 \
         WHERE tenant_id = fleet.current_tenant_id() AND id = $1 AND (deleted_at IS NULL) = $3 AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(deleted)
    .fetch_optional(&mut **tx)
    .await
    .map_err(write_error)?;
    after_write(tx, id, updated, deleted).await
}

async fn after_write(
    tx: &mut Tx,
    id: Uuid,
    updated: Option<Uuid>,
    expect_live: bool,
) -> Result<DriverRow, Error> {
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        expect_live,
        Resource::new(KIND, id),
    )
}

/// Whether an active assignment of the driver overlaps `window`.
pub async fn is_booked(tx: &mut Tx, id: Uuid, window: &Window) -> Result<bool, Error> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM fleet.assignments \
             WHERE driver_id = $1 AND status = 'active' AND time_window && $2)",
    )
    .bind(id)
    .bind(range(window))
    .fetch_one(&mut **tx)
    .await?)
}

/// Orders ListDrivers offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Lower-cased name, then id.
    Name,
    /// Creation time, then id.
    CreateTime,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cursor {
    /// Last lower-cased name and id.
    Name(String, Uuid),
    /// Last creation time and id.
    Created(OffsetDateTime, Uuid),
}

/// A ListDrivers condition: `(value, negated)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Has (or not) the status.
    Status(DriverStatus, bool),
    /// Holds (or not) the licence class.
    Class(LicenceClass, bool),
    /// Name starts (or not) with, case-insensitively.
    NamePrefix(String, bool),
    /// Name is (or is not), case-insensitively.
    NameIs(String, bool),
}

/// A ListDrivers query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// Order.
    pub order: Order,
    /// Descending.
    pub descending: bool,
    /// Include soft-deleted.
    pub show_deleted: bool,
    /// Continue after.
    pub after: Option<Cursor>,
    /// Rows to fetch.
    pub limit: i64,
}

/// One page of drivers in keyset order.
pub async fn list(tx: &mut Tx, query: &ListQuery) -> Result<Vec<DriverRow>, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    sql.push(" WHERE tenant_id = fleet.current_tenant_id()");
    if !query.show_deleted {
        sql.push(" AND deleted_at IS NULL");
    }
    for condition in &query.conditions {
        match condition {
            Condition::Status(status, negated) => {
                sql.push(if *negated {
                    " AND status <> "
                } else {
                    " AND status = "
                });
                sql.push_bind(status.as_str());
            }
            Condition::Class(class, negated) => {
                sql.push(if *negated { " AND NOT (" } else { " AND (" });
                sql.push_bind(class.as_str())
                    .push(" = ANY (licence_classes))");
            }
            Condition::NameIs(name, negated) => {
                sql.push(if *negated {
                    " AND lower(name) <> lower("
                } else {
                    " AND lower(name) = lower("
                });
                sql.push_bind(name.clone()).push(")");
            }
            // starts_with, not LIKE: the prefix is matched literally, no escaping. Under
            // row-level security this still only filters: lower() is not leakproof, so
            // starts_with(lower(name), ..) cannot become an index condition on drivers_by_name.
            Condition::NamePrefix(prefix, negated) => {
                sql.push(if *negated {
                    " AND NOT starts_with(lower(name), "
                } else {
                    " AND starts_with(lower(name), "
                });
                sql.push_bind(prefix.to_lowercase());
                sql.push(")");
            }
        }
    }
    let (cmp, dir) = if query.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    match (&query.after, query.order) {
        (Some(Cursor::Name(name, id)), Order::Name) => {
            sql.push(format!(" AND (lower(name), id) {cmp} ("));
            sql.push_bind(name.clone())
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (Some(Cursor::Created(at, id)), Order::CreateTime) => {
            sql.push(format!(" AND (created_at, id) {cmp} ("));
            sql.push_bind(*at).push(", ").push_bind(*id).push(")");
        }
        (None, _) => {}
        (Some(_), _) => return Err(Error::invalid("page_token", "does not match order_by")),
    }
    match query.order {
        Order::Name => sql.push(format!(" ORDER BY lower(name) {dir}, id {dir}")),
        Order::CreateTime => sql.push(format!(" ORDER BY created_at {dir}, id {dir}")),
    };
    sql.push(" LIMIT ").push_bind(query.limit);
    Ok(sql.build_query_as().fetch_all(&mut **tx).await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &DriverRow, order: Order) -> Cursor {
    match order {
        Order::Name => Cursor::Name(row.name_key.clone(), row.id),
        Order::CreateTime => Cursor::Created(row.created_at, row.id),
    }
}

/// Active, live drivers licensed (with `class`, if given) until at least the end of `window`
/// and with no active assignment overlapping it, by name.
///
/// The busy drivers are found once (`NOT IN`, a hashed subplan over [`super::busy`]), not once
/// per driver: a correlated `NOT EXISTS` read the tenant's active assignments for every driver
/// (186 ms for 300 drivers and 678 assignments). The subplan reads only the bookings that can
/// overlap the window. The drivers are read in `drivers_assignable` order until enough are
/// found; the licence test is a PL/pgSQL function so that the generic plan, too, expects
/// enough drivers to pass it to keep that order (fleet migration 0009).
pub async fn available(
    tx: &mut Tx,
    window: &Window,
    class: Option<LicenceClass>,
    limit: i64,
) -> Result<Vec<DriverRow>, Error> {
    let sql = format!(
        "{SELECT} d {} LIMIT $3",
        free(
            super::Params {
                range: 1,
                start: 4,
                end: 5,
            },
            2
        ),
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(range(window))
        .bind(class.map(LicenceClass::as_str))
        .bind(limit)
        .bind(window.start)
        .bind(window.end)
        .fetch_all(&mut **tx)
        .await?)
}

/// The WHERE and ORDER BY of [`available`] for the table aliased `d`, with the window and the
/// licence class at the given parameter numbers: shared with [`super::assignments::pick`].
pub(super) fn free(window: super::Params, class: u8) -> String {
    let super::Params { range, start, end } = window;
    format!(
        "WHERE d.tenant_id = fleet.current_tenant_id() AND d.deleted_at IS NULL \
           AND d.status = 'active' \
           AND fleet.licensed_for(d.licence_classes, d.licence_expires_at, ${class}, upper(${range})) \
           AND d.id NOT IN ({}) \
         ORDER BY lower(d.name), d.id",
        super::busy("driver_id", start, end)
    )
}
