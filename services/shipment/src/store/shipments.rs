//! Shipments: fields, soft delete, and the status changes the lifecycle makes. Every write is
//! conditional on the row version the caller saw (when it sent an etag), and the database's
//! own checks (status machine trigger, CHECKs) hold whatever this code does.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::{PreconditionViolation, Resource, UniqueConstraint};
use logistics_platform::window::Window;
use rust_decimal::Decimal;
use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use sqlx::postgres::types::PgRange;
use sqlx::{Arguments, Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::sagas;
use crate::domain::shipment::{AddressSnapshot, Priority, ShipmentFields};
use crate::domain::status::Status;

/// Resource kind in error details.
pub const KIND: &str = "logistics.shipment.v1.Shipment";

const UNIQUE: &[UniqueConstraint] = &[UniqueConstraint {
    constraint: "shipments_reference_key",
    kind: KIND,
    field: "reference",
}];

/// A shipment as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShipmentRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// Reference.
    pub reference: String,
    /// Customer partner.
    pub customer_id: Uuid,
    /// Supplier partner.
    pub supplier_id: Option<Uuid>,
    /// Origin warehouse.
    pub origin_warehouse_id: Uuid,
    /// Destination address id.
    pub destination_address_id: Uuid,
    /// Destination snapshot.
    pub dest_line1: String,
    /// Destination snapshot.
    pub dest_line2: String,
    /// Destination snapshot.
    pub dest_city: String,
    /// Destination snapshot.
    pub dest_region: String,
    /// Destination snapshot.
    pub dest_postal_code: String,
    /// Destination snapshot.
    pub dest_country_code: String,
    /// Destination snapshot.
    pub dest_latitude: Option<f64>,
    /// Destination snapshot.
    pub dest_longitude: Option<f64>,
    /// Pickup window.
    pub pickup_window: PgRange<OffsetDateTime>,
    /// Delivery window.
    pub delivery_window: PgRange<OffsetDateTime>,
    /// Priority name.
    pub priority: String,
    /// Status name.
    pub status: String,
    /// Why cancelled or what went wrong.
    pub status_reason: String,
    /// Booked truck.
    pub truck_id: Option<Uuid>,
    /// Booked driver.
    pub driver_id: Option<Uuid>,
    /// Fleet assignment.
    pub assignment_id: Option<Uuid>,
    /// Sum of item weights.
    pub total_weight_kg: Decimal,
    /// Sum of item volumes.
    pub total_volume_m3: Decimal,
    /// Notes.
    pub notes: String,
    /// The saga working on it.
    pub saga_id: Option<Uuid>,
    /// Planned at.
    pub planned_at: Option<OffsetDateTime>,
    /// Dispatched at.
    pub dispatched_at: Option<OffsetDateTime>,
    /// Delivered at.
    pub delivered_at: Option<OffsetDateTime>,
    /// Cancelled at.
    pub cancelled_at: Option<OffsetDateTime>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
    /// Soft-deleted at.
    pub deleted_at: Option<OffsetDateTime>,
}

impl ShipmentRow {
    /// The stored status (the CHECK allows no other names).
    pub fn status(&self) -> Result<Status, Error> {
        Status::parse(&self.status)
            .ok_or_else(|| anyhow::anyhow!("unknown stored status {}", self.status).into())
    }

    /// The pickup window.
    pub fn pickup(&self) -> Result<Window, Error> {
        Window::from_range(&self.pickup_window)
            .ok_or_else(|| anyhow::anyhow!("stored pickup window is not [start, end)").into())
    }

    /// The delivery window.
    pub fn delivery(&self) -> Result<Window, Error> {
        Window::from_range(&self.delivery_window)
            .ok_or_else(|| anyhow::anyhow!("stored delivery window is not [start, end)").into())
    }
}

const COLUMNS: &str = "tenant_id, id, reference, customer_id, supplier_id, origin_warehouse_id, \
    destination_address_id, dest_line1, dest_line2, dest_city, dest_region, dest_postal_code, \
    dest_country_code, dest_latitude, dest_longitude, pickup_window, delivery_window, priority, \
    status, status_reason, truck_id, driver_id, assignment_id, total_weight_kg, total_volume_m3, \
    notes, saga_id, planned_at, dispatched_at, delivered_at, cancelled_at, created_at, updated_at, \
    version, deleted_at";

fn select() -> String {
    format!("SELECT {COLUMNS} FROM shipment.shipments")
}

/// Inserts a draft shipment for `customer_id`.
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    customer_id: Uuid,
    f: &ShipmentFields,
    destination: &AddressSnapshot,
) -> Result<ShipmentRow, Error> {
    let sql = format!(
        "INSERT INTO shipment.shipments (tenant_id, id, customer_id, reference, supplier_id, \
             origin_warehouse_id, destination_address_id, dest_line1, dest_line2, dest_city, \
             dest_region, dest_postal_code, dest_country_code, dest_latitude, dest_longitude, \
             pickup_window, delivery_window, priority, notes) \
         VALUES (shipment.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             $13, $14, $15, $16, $17, $18) RETURNING {COLUMNS}"
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(customer_id);
    bind_fields(query, f, destination)
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| Error::from_db_with(e, UNIQUE))
}

type ShipmentQuery<'q> =
    sqlx::query::QueryAs<'q, sqlx::Postgres, ShipmentRow, sqlx::postgres::PgArguments>;

/// Binds the caller's fields and the destination snapshot as the next parameters, in the order
/// insert and update name their columns (reference first, notes last).
fn bind_fields<'q>(
    query: ShipmentQuery<'q>,
    f: &'q ShipmentFields,
    destination: &'q AddressSnapshot,
) -> ShipmentQuery<'q> {
    query
        .bind(f.reference.as_str())
        .bind(f.supplier_id)
        .bind(f.origin_warehouse_id)
        .bind(f.destination_address_id)
        .bind(destination.line1.as_str())
        .bind(destination.line2.as_str())
        .bind(destination.city.as_str())
        .bind(destination.region.as_str())
        .bind(destination.postal_code.as_str())
        .bind(destination.country.as_str())
        .bind(destination.location.map(|l| l.latitude))
        .bind(destination.location.map(|l| l.longitude))
        .bind(f.pickup.range())
        .bind(f.delivery.range())
        .bind(f.priority.as_str())
        .bind(f.notes.as_str())
}

/// One shipment; deleted ones only when `include_deleted`.
pub async fn get(
    tx: &mut Tx,
    id: Uuid,
    include_deleted: bool,
) -> Result<Option<ShipmentRow>, Error> {
    let sql = format!("{} WHERE id = $1 AND ($2 OR deleted_at IS NULL)", select());
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// A live shipment locked FOR UPDATE (changes to it queue behind this transaction), or
/// NOT_FOUND.
pub async fn lock(tx: &mut Tx, id: Uuid) -> Result<ShipmentRow, Error> {
    let sql = format!(
        "{} WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
        select()
    );
    let row: Option<ShipmentRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.ok_or_else(|| Error::NotFound(Resource::new(KIND, id)))
}

/// The etag check of a locked row: ABORTED when the caller saw another version.
pub fn check_version(row: &ShipmentRow, expected: Option<i32>) -> Result<(), Error> {
    match expected {
        Some(v) if v != row.version => Err(Error::Aborted(
            logistics_platform::error::Conflict::StaleEtag,
        )),
        _ => Ok(()),
    }
}

/// A draft with no saga working on it, or FAILED_PRECONDITION saying why not.
pub fn check_editable(row: &ShipmentRow) -> Result<(), Error> {
    let status = row.status()?;
    if !status.editable() {
        return Err(Error::precondition(
            "NOT_A_DRAFT",
            "status",
            format!(
                "only a DRAFT shipment changes; this one is {}",
                status.as_str().to_uppercase()
            ),
        ));
    }
    if row.saga_id.is_some() {
        return Err(planning_in_progress());
    }
    Ok(())
}

/// The shipment is being planned, dispatched or cancelled by another call.
pub fn planning_in_progress() -> Error {
    Error::Precondition(vec![PreconditionViolation {
        kind: "SAGA_IN_PROGRESS",
        subject: "shipment".to_owned(),
        description: "another call is planning, dispatching or cancelling this shipment; retry \
                      when it has finished"
            .to_owned(),
    }])
}

/// Writes every caller field of a locked draft and its destination snapshot.
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    f: &ShipmentFields,
    destination: &AddressSnapshot,
) -> Result<ShipmentRow, Error> {
    let sql = format!(
        "UPDATE shipment.shipments SET reference = $2, supplier_id = $3, origin_warehouse_id = $4, \
             destination_address_id = $5, dest_line1 = $6, dest_line2 = $7, dest_city = $8, \
             dest_region = $9, dest_postal_code = $10, dest_country_code = $11, dest_latitude = $12, \
             dest_longitude = $13, pickup_window = $14, delivery_window = $15, priority = $16, \
             notes = $17, version = version + 1 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id);
    bind_fields(query, f, destination)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| Error::from_db_with(e, UNIQUE))?
        .ok_or_else(|| written_vanished(id))
}

/// Soft-deletes (`deleted` true) or restores a shipment at `expected_version`.
pub async fn set_deleted(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    deleted: bool,
) -> Result<ShipmentRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE shipment.shipments SET deleted_at = CASE WHEN $3 THEN now() END, version = version + 1 \
         WHERE id = $1 AND (deleted_at IS NULL) = $3 AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(deleted)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        deleted,
        Resource::new(KIND, id),
    )
}

/// Marks a locked shipment as no longer worked on by a saga, and returns it. (A saga marks its
/// shipment when it is inserted: `sagas::insert`.)
pub async fn clear_saga(tx: &mut Tx, id: Uuid) -> Result<ShipmentRow, Error> {
    let sql =
        format!("UPDATE shipment.shipments SET saga_id = NULL WHERE id = $1 RETURNING {COLUMNS}");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| written_vanished(id))
}

/// What a status change writes besides the status.
#[derive(Debug, Clone, Default)]
pub struct StatusChange {
    /// Booking made by planning.
    pub booking: Option<(Uuid, Uuid, Uuid)>,
    /// Why (cancel, exception); empty leaves the reason as it is.
    pub reason: Option<String>,
    /// Ends the saga working on the shipment.
    pub end_saga: bool,
}

/// Moves a locked shipment to `to`, stamping the time the status records.
pub async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    to: Status,
    change: &StatusChange,
) -> Result<ShipmentRow, Error> {
    let args = status_arguments(id, to, change).map_err(sqlx::Error::Encode)?;
    sqlx::query_as_with(sqlx::AssertSqlSafe(status_update("")), args)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| written_vanished(id))
}

/// [`set_status`] and the save of the saga working on the shipment (which the change ends or
/// moves on) in one statement: both are written, or neither when another replica took the
/// saga over (`None`).
pub async fn set_status_saving(
    tx: &mut Tx,
    id: Uuid,
    to: Status,
    change: &StatusChange,
    save: sagas::Save<'_>,
) -> Result<Option<ShipmentRow>, Error> {
    let sql = format!(
        "WITH saved AS ({} RETURNING id) {}",
        save.update(STATUS_PARAMETERS + 1),
        status_update(" AND saga_id IN (SELECT id FROM saved)")
    );
    let mut args = status_arguments(id, to, change).map_err(sqlx::Error::Encode)?;
    save.add_to(&mut args).map_err(sqlx::Error::Encode)?;
    Ok(sqlx::query_as_with(sqlx::AssertSqlSafe(sql), args)
        .fetch_optional(&mut **tx)
        .await?)
}

/// How many parameters [`status_arguments`] binds.
const STATUS_PARAMETERS: usize = 7;

/// The status change's UPDATE of one shipment (`$1`), with `condition` added to its WHERE.
fn status_update(condition: &str) -> String {
    format!(
        "UPDATE shipment.shipments SET status = $2, \
             truck_id = coalesce($3, truck_id), driver_id = coalesce($4, driver_id), \
             assignment_id = coalesce($5, assignment_id), \
             status_reason = coalesce($6, status_reason), \
             saga_id = CASE WHEN $7 THEN NULL ELSE saga_id END, \
             planned_at = CASE WHEN $2 = 'planned' THEN now() ELSE planned_at END, \
             dispatched_at = CASE WHEN $2 = 'dispatched' THEN now() ELSE dispatched_at END, \
             delivered_at = CASE WHEN $2 = 'delivered' THEN now() ELSE delivered_at END, \
             cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() ELSE cancelled_at END, \
             version = version + 1 \
         WHERE id = $1{condition} RETURNING {COLUMNS}"
    )
}

/// The [`STATUS_PARAMETERS`] parameters of [`status_update`].
fn status_arguments(
    id: Uuid,
    to: Status,
    change: &StatusChange,
) -> Result<PgArguments, BoxDynError> {
    let (truck, driver, assignment) = change.booking.unzip3();
    let mut args = PgArguments::default();
    args.add(id)?;
    args.add(to.as_str())?;
    args.add(truck)?;
    args.add(driver)?;
    args.add(assignment)?;
    args.add(change.reason.as_deref())?;
    args.add(change.end_saga)?;
    debug_assert_eq!(args.len(), STATUS_PARAMETERS);
    Ok(args)
}

trait Unzip3 {
    fn unzip3(self) -> (Option<Uuid>, Option<Uuid>, Option<Uuid>);
}

impl Unzip3 for Option<(Uuid, Uuid, Uuid)> {
    fn unzip3(self) -> (Option<Uuid>, Option<Uuid>, Option<Uuid>) {
        match self {
            Some((a, b, c)) => (Some(a), Some(b), Some(c)),
            None => (None, None, None),
        }
    }
}

/// A locked shipment an UPDATE did not find: a bug, not the caller's doing.
fn written_vanished(id: Uuid) -> Error {
    anyhow::anyhow!("locked shipment {id} vanished before its update").into()
}

/// A ListShipments condition: `(value, negated)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Has (or not) the status.
    Status(Status, bool),
    /// Has (or not) the priority.
    Priority(Priority, bool),
    /// For (or not) the customer.
    Customer(Uuid, bool),
    /// Driven (or not) by the driver.
    Driver(Uuid, bool),
    /// Reference starts (or not) with the prefix.
    ReferencePrefix(String, bool),
}

/// How ListShipments orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By creation time.
    CreateTime,
    /// By reference.
    Reference,
}

/// Where the previous page ended: the sort key (creation time or reference) and id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cursor {
    /// After this creation time (unix nanoseconds) and id.
    CreateTime(i128, Uuid),
    /// After this reference and id.
    Reference(String, Uuid),
}

/// One page of shipments.
pub async fn list(
    tx: &mut Tx,
    conditions: &[Condition],
    order: Order,
    descending: bool,
    show_deleted: bool,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<ShipmentRow>, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(select());
    sql.push(" WHERE TRUE");
    if !show_deleted {
        sql.push(" AND deleted_at IS NULL");
    }
    for condition in conditions {
        let (column, negated) = match condition {
            Condition::Status(_, n) => ("status", n),
            Condition::Priority(_, n) => ("priority", n),
            Condition::Customer(_, n) => ("customer_id", n),
            Condition::Driver(_, n) => ("driver_id", n),
            Condition::ReferencePrefix(_, n) => ("reference", n),
        };
        // starts_with, not LIKE: it is leakproof, so under row-level security it can still
        // become an index condition (shipments_by_reference_prefix); LIKE can only filter.
        if let Condition::ReferencePrefix(prefix, _) = condition {
            sql.push(format!(
                " AND {}starts_with(reference, ",
                if *negated { "NOT " } else { "" }
            ));
            sql.push_bind(prefix.clone());
            sql.push(")");
            continue;
        }
        sql.push(format!(
            " AND {column} {} ",
            if *negated { "IS DISTINCT FROM" } else { "=" }
        ));
        match condition {
            Condition::Status(s, _) => sql.push_bind(s.as_str()),
            Condition::Priority(p, _) => sql.push_bind(p.as_str()),
            Condition::Customer(id, _) | Condition::Driver(id, _) => sql.push_bind(*id),
            Condition::ReferencePrefix(..) => continue,
        };
    }
    let (cmp, dir) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    match after {
        Some(Cursor::CreateTime(nanos, id)) => {
            let at = OffsetDateTime::from_unix_timestamp_nanos(*nanos)
                .map_err(|_| Error::invalid("page_token", "is not a token of this listing"))?;
            sql.push(format!(" AND (created_at, id) {cmp} ("));
            sql.push_bind(at).push(", ").push_bind(*id).push(")");
        }
        Some(Cursor::Reference(reference, id)) => {
            sql.push(format!(" AND (reference, id) {cmp} ("));
            sql.push_bind(reference.clone())
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        None => {}
    }
    let key = match order {
        Order::CreateTime => "created_at",
        Order::Reference => "reference",
    };
    sql.push(format!(" ORDER BY {key} {dir}, id {dir} LIMIT "));
    sql.push_bind(limit);
    Ok(sql.build_query_as().fetch_all(&mut **tx).await?)
}

/// The cursor after `row` in `order`.
pub fn cursor_after(order: Order) -> impl Fn(&ShipmentRow) -> Cursor {
    move |row| match order {
        Order::CreateTime => Cursor::CreateTime(row.created_at.unix_timestamp_nanos(), row.id),
        Order::Reference => Cursor::Reference(row.reference.clone(), row.id),
    }
}
