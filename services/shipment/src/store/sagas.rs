//! Sagas: saved (with the lease renewed) only by the replica that holds the lease; recovery
//! claims the sagas whose lease ran out.
//!
//! Every query of one saga names the tenant (`tenant_id = shipment.current_tenant_id()`): the
//! recovery policies are permissive, so row-level security alone is `tenant_id = … OR
//! has_app_role('system')`, which no index serves, and each save read every tenant's sagas.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use rust_decimal::Decimal;
use sqlx::Arguments;
use sqlx::error::BoxDynError;
use sqlx::postgres::PgArguments;
use time::OffsetDateTime;
use uuid::Uuid;

use super::items::PlanLine;

/// A saga as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SagaRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Id; the idempotency keys of its calls derive from it.
    pub id: Uuid,
    /// The shipment.
    pub shipment_id: Uuid,
    /// `plan`, `dispatch` or `cancel`.
    pub kind: String,
    /// `running`, `compensating`, `done` or `failed`.
    pub state: String,
    /// The step to do next.
    pub step: String,
    /// Who started it.
    pub started_by: Uuid,
    /// The client's request id.
    pub request_id: Option<Uuid>,
    /// For cancel: why.
    pub reason: String,
    /// The truck chosen.
    pub truck_id: Option<Uuid>,
    /// The driver chosen.
    pub driver_id: Option<Uuid>,
    /// The booking made.
    pub assignment_id: Option<Uuid>,
    /// How many bookings were tried (each with its own key).
    pub assign_attempt: i32,
    /// Why it failed: gRPC code.
    pub error_code: Option<i32>,
    /// Why it failed: message.
    pub error_message: String,
    /// The starter's sealed token; `None` once finished.
    pub credentials: Option<Vec<u8>>,
    /// The replica working on it.
    pub lease_owner: Option<Uuid>,
    /// Until when.
    pub lease_until: Option<OffsetDateTime>,
    /// Started.
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "tenant_id, id, shipment_id, kind, state, step, started_by, request_id, reason, \
    truck_id, driver_id, assignment_id, assign_attempt, error_code, error_message, credentials, \
    lease_owner, lease_until, created_at";

/// Starts a saga leased to `owner` for `lease_seconds` and marks its (locked) shipment as
/// worked on by it, in one statement.
pub async fn insert(tx: &mut Tx, saga: &SagaRow, lease_seconds: f64) -> Result<SagaRow, Error> {
    Ok(started(saga, lease_seconds, false)
        .fetch_one(&mut **tx)
        .await?)
}

/// A saga started by [`insert_reading_lines`], with the lines it is to plan.
#[derive(Debug, sqlx::FromRow)]
struct StartedWithLines {
    #[sqlx(flatten)]
    saga: SagaRow,
    /// The live items' materials, in the order the items were added (NULL: none).
    line_materials: Option<Vec<Uuid>>,
    /// Their quantities, in the same order.
    line_quantities: Option<Vec<Decimal>>,
}

/// [`insert`], reading the shipment's live items in the same statement (a plan's start: one
/// round trip less). The shipment is locked by an earlier statement of the transaction, so
/// this statement's snapshot holds every item written before that lock, and no item changes
/// while it is held.
pub async fn insert_reading_lines(
    tx: &mut Tx,
    saga: &SagaRow,
    lease_seconds: f64,
) -> Result<(SagaRow, Vec<PlanLine>), Error> {
    let started: StartedWithLines = started(saga, lease_seconds, true)
        .fetch_one(&mut **tx)
        .await?;
    let materials = started.line_materials.unwrap_or_default();
    let quantities = started.line_quantities.unwrap_or_default();
    if materials.len() != quantities.len() {
        return Err(anyhow::anyhow!("a shipment's items read back misaligned").into());
    }
    let lines = materials
        .into_iter()
        .zip(quantities)
        .map(|(material_id, quantity)| PlanLine {
            material_id,
            quantity,
        })
        .collect();
    Ok((started.saga, lines))
}

/// The statement of a saga's start; `with_lines` adds the shipment's live items as two arrays,
/// read in one pass (each item read costs its `shipment_visible` policy check).
fn started<'q, O>(
    saga: &'q SagaRow,
    lease_seconds: f64,
    with_lines: bool,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    let lines = if with_lines {
        ", l.materials AS line_materials, l.quantities AS line_quantities FROM saga, LATERAL (\
             SELECT array_agg(material_id ORDER BY created_at, id) AS materials, \
                    array_agg(quantity ORDER BY created_at, id) AS quantities \
             FROM shipment.shipment_items WHERE shipment_id = $2 AND deleted_at IS NULL) l"
    } else {
        " FROM saga"
    };
    let sql = format!(
        "WITH saga AS (\
             INSERT INTO shipment.sagas (tenant_id, id, shipment_id, kind, state, step, started_by, \
                 request_id, reason, assignment_id, credentials, lease_owner, lease_until) \
             VALUES (shipment.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 now() + make_interval(secs => $12)) RETURNING {COLUMNS}), \
         marked AS (UPDATE shipment.shipments SET saga_id = $1 WHERE id = $2) \
         SELECT {COLUMNS}{lines}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(saga.id)
        .bind(saga.shipment_id)
        .bind(&saga.kind)
        .bind(&saga.state)
        .bind(&saga.step)
        .bind(saga.started_by)
        .bind(saga.request_id)
        .bind(&saga.reason)
        .bind(saga.assignment_id)
        .bind(&saga.credentials)
        .bind(saga.lease_owner)
        .bind(lease_seconds)
}

/// The shipment's unfinished saga, locked, if any.
pub async fn running(tx: &mut Tx, shipment_id: Uuid) -> Result<Option<SagaRow>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM shipment.sagas \
         WHERE tenant_id = shipment.current_tenant_id() AND shipment_id = $1 AND state IN ('running', 'compensating') FOR UPDATE"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(shipment_id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// The shipment's finished plan started with `request_id`, if any.
pub async fn plan_by_request(
    tx: &mut Tx,
    shipment_id: Uuid,
    request_id: Uuid,
) -> Result<Option<SagaRow>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM shipment.sagas \
         WHERE tenant_id = shipment.current_tenant_id() AND shipment_id = $1 AND kind = 'plan' AND request_id = $2 AND state = 'done'"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(shipment_id)
        .bind(request_id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// A save of a saga's progress by the replica that holds its lease, renewing the lease;
/// finished sagas forget their credentials. Run alone ([`save`]) or with the shipment's status
/// change in one statement (`shipments::set_status_saving`).
#[derive(Debug, Clone, Copy)]
pub struct Save<'a> {
    /// The saga as it is to be saved.
    pub saga: &'a SagaRow,
    /// The replica that must still hold the lease.
    pub owner: Uuid,
    /// The renewed lease.
    pub lease_seconds: f64,
}

impl Save<'_> {
    /// The UPDATE (without RETURNING), its twelve parameters numbered from `$first` in the order
    /// [`Save::add_to`] adds them. It writes nothing when another replica took the saga over.
    pub fn update(&self, first: usize) -> String {
        let [
            id,
            owner,
            state,
            step,
            truck,
            driver,
            assignment,
            attempt,
            code,
            message,
            finished,
            lease,
        ] = std::array::from_fn(|i| format!("${}", first + i));
        format!(
            "UPDATE shipment.sagas SET state = {state}, step = {step}, truck_id = {truck}, \
                 driver_id = {driver}, assignment_id = {assignment}, assign_attempt = {attempt}, \
                 error_code = {code}, error_message = {message}, \
                 credentials = CASE WHEN {finished} THEN NULL ELSE credentials END, \
                 finished_at = CASE WHEN {finished} THEN now() END, \
                 lease_until = now() + make_interval(secs => {lease}), updated_at = now() \
             WHERE tenant_id = shipment.current_tenant_id() AND id = {id} AND lease_owner = {owner} \
               AND state IN ('running', 'compensating')"
        )
    }

    /// Adds the parameters of [`Save::update`] to `args`.
    pub fn add_to(&self, args: &mut PgArguments) -> Result<(), BoxDynError> {
        let saga = self.saga;
        let finished = matches!(saga.state.as_str(), "done" | "failed");
        args.add(saga.id)?;
        args.add(self.owner)?;
        args.add(saga.state.as_str())?;
        args.add(saga.step.as_str())?;
        args.add(saga.truck_id)?;
        args.add(saga.driver_id)?;
        args.add(saga.assignment_id)?;
        args.add(saga.assign_attempt)?;
        args.add(saga.error_code)?;
        args.add(saga.error_message.as_str())?;
        args.add(finished)?;
        args.add(self.lease_seconds)
    }
}

/// Saves the saga's progress; `false` when another replica took it over.
pub async fn save(tx: &mut Tx, save: Save<'_>) -> Result<bool, Error> {
    let mut args = PgArguments::default();
    save.add_to(&mut args).map_err(sqlx::Error::Encode)?;
    let saved = sqlx::query_with(sqlx::AssertSqlSafe(save.update(1)), args)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(saved == 1)
}

/// Takes over a locked, unfinished saga for `owner` (its previous owner's lease ran out, or a
/// caller brings fresh credentials), optionally with new credentials.
pub async fn take_over(
    tx: &mut Tx,
    id: Uuid,
    owner: Uuid,
    lease_seconds: f64,
    credentials: Option<&[u8]>,
) -> Result<SagaRow, Error> {
    let sql = format!(
        "UPDATE shipment.sagas SET lease_owner = $2, lease_until = now() + make_interval(secs => $3), \
             credentials = coalesce($4, credentials), updated_at = now() \
         WHERE tenant_id = shipment.current_tenant_id() AND id = $1 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(owner)
        .bind(lease_seconds)
        .bind(credentials)
        .fetch_one(&mut **tx)
        .await?)
}

/// In the service's system context: claims up to `limit` unfinished sagas of any tenant whose
/// lease ran out, for `owner`; replicas racing for one get different sagas (SKIP LOCKED).
pub async fn claim_expired(
    tx: &mut Tx,
    owner: Uuid,
    lease_seconds: f64,
    limit: i64,
) -> Result<Vec<SagaRow>, Error> {
    let sql = format!(
        "UPDATE shipment.sagas s SET lease_owner = $1, \
             lease_until = now() + make_interval(secs => $2), updated_at = now() \
         FROM (SELECT tenant_id, id FROM shipment.sagas \
               WHERE state IN ('running', 'compensating') AND lease_until < now() \
               ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED) due \
         WHERE s.tenant_id = due.tenant_id AND s.id = due.id RETURNING {}",
        COLUMNS
            .split(", ")
            .map(|c| format!("s.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(owner)
        .bind(lease_seconds)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?)
}

/// Parks a saga that cannot go on for now (a peer is down, its credentials expired): gives up
/// the lease, so the next call about the shipment takes it over at once, and lets recovery look
/// again after `seconds`.
pub async fn postpone(tx: &mut Tx, id: Uuid, owner: Uuid, seconds: f64) -> Result<(), Error> {
    sqlx::query(
        "UPDATE shipment.sagas SET lease_owner = NULL, lease_until = now() + make_interval(secs => $3), \
             updated_at = now() \
         WHERE tenant_id = shipment.current_tenant_id() AND id = $1 AND lease_owner = $2",
    )
    .bind(id)
    .bind(owner)
    .bind(seconds)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
