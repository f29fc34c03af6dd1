//! Sagas: planning, dispatching and cancelling a shipment across inventory and fleet, one step
//! at a time.
//!
//! ```text
//! plan:      reserve -> assign -> commit (PLANNED)
//!              \          \
//!               \          +-> unassign -> release -> end (still DRAFT, PLAN_FAILED)
//!                +-------------------------> release -> end
//! dispatch:  consume -> commit (DISPATCHED)                   forward only
//! cancel:    [release] -> unassign -> commit (CANCELLED)       forward only
//! ```
//!
//! - Every outgoing call carries an idempotency key derived from the saga id and the step
//!   (UUIDv5), so repeating a step after a crash or a lost answer changes nothing twice. That is
//!   why a plan goes forward without saving each step: a saga resumed at an earlier step repeats
//!   the calls it made and gets their first answers. What is saved is what a repeat cannot
//!   recover: the start (with the caller's sealed credentials), a compensation and its reason,
//!   a truck chosen by an earlier version, and the outcome, with the shipment, in one
//!   transaction. A plan is three calls: the customer check (partner), ReserveStock (which
//!   refuses deleted warehouses and materials) and AssignAvailable (fleet picks and books the
//!   pair in one transaction).
//! - Compensations act on the shipment as a whole (release every held reservation, cancel every
//!   active booking of the shipment), so they are right whatever the failed call did.
//! - A saga is worked on by the replica holding its lease. When a peer stays unreachable the
//!   saga is parked (its lease given up) and the caller hears UNAVAILABLE; the next call about
//!   the shipment, or the recovery loop of any replica, takes it over and drives it on. A
//!   replica that dies mid-saga leaves a lease that runs out, with the same effect.

use std::sync::Arc;
use std::time::Duration;

use logistics_platform::auth::Caller;
use logistics_platform::context::{DbContext, Tx};
use logistics_platform::decimal::to_proto as decimal;
use logistics_platform::error::{Conflict, PreconditionViolation};
use logistics_platform::{Error, stored_names};
use logistics_proto::fleet::v1 as fleet;
use logistics_proto::inventory::v1 as inventory;
use rust_decimal::Decimal;
use time::OffsetDateTime;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::api::{State, emit, references};
use crate::domain::shipment::{EventType, booking_window};
use crate::domain::status::{Status, Transition};
use crate::peers::CallContext;
use crate::sealing::Column;
use crate::store::items::{self, PlanLine};
use crate::store::sagas::{self, SagaRow};
use crate::store::shipments::{self, ShipmentRow, StatusChange};

stored_names! {
    /// What a saga does.
    Kind {
        /// DRAFT to PLANNED: reserve, book.
        Plan => "plan",
        /// PLANNED to DISPATCHED: consume the reservation.
        Dispatch => "dispatch",
        /// To CANCELLED: release and unbook.
        Cancel => "cancel",
    }
}

stored_names! {
    /// Where a saga is.
    SagaState {
        /// Going forward.
        Running => "running",
        /// Undoing what it did.
        Compensating => "compensating",
        /// Finished as intended.
        Done => "done",
        /// Finished after undoing.
        Failed => "failed",
    }
}

stored_names! {
    /// The step a saga does next.
    Step {
        /// Reserve the items' stock.
        Reserve => "reserve",
        /// Book a truck and a driver.
        Assign => "assign",
        /// Consume the reservation.
        Consume => "consume",
        /// Release the shipment's held reservations.
        Release => "release",
        /// Cancel the shipment's active bookings.
        Unassign => "unassign",
        /// Write the outcome to the shipment.
        Commit => "commit",
        /// Close a failed plan.
        End => "end",
    }
}

/// What a caller asks for.
#[derive(Debug, Clone)]
pub struct Intent {
    /// The shipment.
    pub shipment_id: Uuid,
    /// What to do.
    pub kind: Kind,
    /// The etag the caller saw.
    pub expected_version: Option<i32>,
    /// The client's request id (plan replays).
    pub request_id: Option<Uuid>,
    /// Why (cancel).
    pub reason: String,
}

fn lease(state: &State) -> f64 {
    // Lease lengths are configured in whole seconds (1 to 3600): exact as f64.
    state.saga.lease_seconds as f64
}

fn tenant_context(saga: &SagaRow) -> DbContext {
    DbContext {
        user_id: Some(saga.started_by),
        ..DbContext::system(Some(saga.tenant_id))
    }
}

/// Starts the saga `intent` asks for (or finishes a parked one first) and waits for its end.
pub async fn start(
    state: &Arc<State>,
    caller: &Caller,
    call: &CallContext,
    intent: Intent,
) -> Result<ShipmentRow, Error> {
    // A parked saga of the shipment is finished first (at most once), then this one starts.
    for _ in 0..2 {
        match begin(state, caller, call, &intent).await? {
            Begun::Done(row) => return Ok(*row),
            Begun::Started(saga, loaded) => {
                let outcome = drive(state, *saga, call.clone(), Some(loaded)).await?;
                return if outcome.done {
                    Ok(*outcome.shipment)
                } else {
                    Err(anyhow::anyhow!(
                        "a saga started by this call ended undone without a reason"
                    )
                    .into())
                };
            }
            Begun::TookOver(saga) => {
                let kind = Kind::parse(&saga.kind);
                // Still stuck (a peer is down): that is the answer. Done and of this call's
                // kind: its outcome is the answer. Otherwise (another kind, or a plan that was
                // undone) the shipment is free now: start this call's saga.
                let outcome = drive(state, *saga, call.clone(), None).await?;
                if outcome.done && kind == Some(intent.kind) {
                    return Ok(*outcome.shipment);
                }
            }
        }
    }
    Err(Error::Aborted(Conflict::Concurrency))
}

enum Begun {
    /// Nothing to do remotely (a replayed plan, a draft cancelled): here is the shipment.
    Done(Box<ShipmentRow>),
    /// A new saga, leased to this replica, with the shipment it works on.
    Started(Box<SagaRow>, Loaded),
    /// A parked saga of the shipment, now leased to this replica.
    TookOver(Box<SagaRow>),
}

async fn begin(
    state: &Arc<State>,
    caller: &Caller,
    call: &CallContext,
    intent: &Intent,
) -> Result<Begun, Error> {
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let shipment = shipments::lock(&mut tx, intent.shipment_id).await?;
    // A saga marks the shipment it works on from its start (in its first transaction) to its
    // end (in its last), so an unmarked shipment has none running; the unique index of
    // running sagas refuses a second one should that ever be wrong.
    let running = match shipment.saga_id {
        Some(_) => sagas::running(&mut tx, shipment.id).await?,
        None => None,
    };
    if let Some(running) = running {
        let parked = running.lease_owner.is_none()
            || running
                .lease_until
                .is_none_or(|until| until <= OffsetDateTime::now_utc());
        if !parked {
            return Err(Error::Aborted(Conflict::Concurrency));
        }
        let sealed = seal_credentials(state, running.tenant_id, running.id, call);
        let saga = sagas::take_over(
            &mut tx,
            running.id,
            state.replica_id,
            lease(state),
            Some(&sealed),
        )
        .await?;
        tx.commit().await?;
        return Ok(Begun::TookOver(Box::new(saga)));
    }
    let status = shipment.status()?;
    if intent.kind == Kind::Plan
        && status == Status::Planned
        && let Some(request_id) = intent.request_id
        && sagas::plan_by_request(&mut tx, shipment.id, request_id)
            .await?
            .is_some()
    {
        tx.commit().await?;
        return Ok(Begun::Done(Box::new(shipment)));
    }
    shipments::check_version(&shipment, intent.expected_version)?;
    let transition = match intent.kind {
        Kind::Plan => Transition::Plan,
        Kind::Dispatch => Transition::Dispatch,
        Kind::Cancel => Transition::Cancel,
    };
    let to = status.apply(transition)?;
    let first_step = match (intent.kind, status) {
        (Kind::Plan, _) => Step::Reserve,
        (Kind::Dispatch, _) => Step::Consume,
        (Kind::Cancel, Status::Draft) => {
            // Nothing is reserved or booked yet: cancel here and now.
            let row = shipments::set_status(
                &mut tx,
                shipment.id,
                to,
                &StatusChange {
                    reason: Some(intent.reason.clone()),
                    ..StatusChange::default()
                },
            )
            .await?;
            emit(&mut tx, &row, EventType::Cancelled, None).await?;
            tx.commit().await?;
            return Ok(Begun::Done(Box::new(row)));
        }
        (Kind::Cancel, Status::Planned) => Step::Release,
        (Kind::Cancel, _) => Step::Unassign,
    };
    let id = Uuid::now_v7();
    let saga = SagaRow {
        tenant_id: shipment.tenant_id,
        id,
        shipment_id: shipment.id,
        kind: intent.kind.as_str().to_owned(),
        state: SagaState::Running.as_str().to_owned(),
        step: first_step.as_str().to_owned(),
        started_by: caller.user_id,
        request_id: intent.request_id,
        reason: intent.reason.clone(),
        truck_id: None,
        driver_id: None,
        assignment_id: shipment.assignment_id,
        assign_attempt: 0,
        error_code: None,
        error_message: String::new(),
        credentials: Some(seal_credentials(state, shipment.tenant_id, id, call)),
        lease_owner: Some(state.replica_id),
        lease_until: None,
        created_at: OffsetDateTime::now_utc(),
    };
    // A shipment a saga works on is frozen (no edits, no items): a plan reads its lines once,
    // here, in the statement that starts the saga.
    let (saga, lines) = if intent.kind == Kind::Plan {
        sagas::insert_reading_lines(&mut tx, &saga, lease(state)).await?
    } else {
        (
            sagas::insert(&mut tx, &saga, lease(state)).await?,
            Vec::new(),
        )
    };
    tx.commit().await?;
    Ok(Begun::Started(
        Box::new(saga),
        Loaded {
            shipment: Box::new(shipment),
            lines,
        },
    ))
}

fn seal_credentials(state: &State, tenant_id: Uuid, saga_id: Uuid, call: &CallContext) -> Vec<u8> {
    state
        .sealer
        .seal(Column::SagaCredentials, tenant_id, saga_id, call.token())
}

/// The call context a recovered saga acts with: its starter's (or last taker's) token.
pub fn recovered_context(state: &State, saga: &SagaRow) -> Result<CallContext, Error> {
    let sealed = saga
        .credentials
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("unfinished saga {} has no credentials", saga.id))?;
    let token = state
        .sealer
        .open(Column::SagaCredentials, saga.tenant_id, saga.id, sealed)?;
    Ok(CallContext::of_token(&token))
}

/// The shipment a saga works on and its items, as the saga's start read them.
pub struct Loaded {
    shipment: Box<ShipmentRow>,
    lines: Vec<PlanLine>,
}

/// Runs the saga to its end on a task of its own (a caller that gives up does not stop it) and
/// waits for it. A saga that fails in this run answers with the reason; one taken over while it
/// was undoing an earlier failure ends with `done: false`. `loaded` is what the start read (a
/// resumed saga reads it when it needs it).
pub async fn drive(
    state: &Arc<State>,
    saga: SagaRow,
    call: CallContext,
    loaded: Option<Loaded>,
) -> Result<Outcome, Error> {
    let state = Arc::clone(state);
    let span = saga_span(&saga);
    let call = call.in_span(&span);
    tokio::spawn(
        async move {
            Runner {
                state,
                saga,
                call,
                failure: None,
                resumed: loaded.is_none(),
                loaded,
                saved_at: std::time::Instant::now(),
            }
            .run()
            .await
        }
        .instrument(span),
    )
    .await
    .map_err(|e| Error::Internal(anyhow::anyhow!("saga task ended abnormally: {e}")))?
}

/// The span a saga's calls to peers are made in, a child of the call that drives it (or a root,
/// for a recovered saga). Only while traces are exported: its log lines already name the saga.
fn saga_span(saga: &SagaRow) -> tracing::Span {
    if logistics_platform::otel::enabled() {
        tracing::info_span!("saga", saga = %saga.id, kind = %saga.kind)
    } else {
        tracing::Span::none()
    }
}

struct Runner {
    state: Arc<State>,
    saga: SagaRow,
    call: CallContext,
    /// Why the saga is compensating, for the caller that waits.
    failure: Option<Error>,
    /// Taken over or recovered: calls of the steps before the saved one may have been made.
    resumed: bool,
    /// The shipment and items, once read.
    loaded: Option<Loaded>,
    /// When the lease was last renewed (at the latest: when this run got the saga).
    saved_at: std::time::Instant,
}

/// How a driven saga ended.
pub struct Outcome {
    /// The shipment as the saga left it.
    pub shipment: Box<ShipmentRow>,
    /// Whether it did what it was for (`false`: a plan that was undone).
    pub done: bool,
}

/// What a step did.
enum Next {
    /// Saved; go on with the saga's current step.
    Continue,
    /// The saga ended; the shipment as it is now.
    Finished(Box<ShipmentRow>),
}

impl Runner {
    async fn run(mut self) -> Result<Outcome, Error> {
        tracing::info!(saga = %self.saga.id, kind = %self.saga.kind, step = %self.saga.step,
            trace_id = self.call.trace_id(), "saga running");
        loop {
            let step = Step::parse(&self.saga.step)
                .ok_or_else(|| anyhow::anyhow!("unknown saga step {}", self.saga.step))?;
            let kind = Kind::parse(&self.saga.kind)
                .ok_or_else(|| anyhow::anyhow!("unknown saga kind {}", self.saga.kind))?;
            let compensating = self.saga.state == SagaState::Compensating.as_str();
            let result = match step {
                Step::Reserve => self.reserve().await,
                Step::Assign => self.assign().await,
                Step::Consume => self.consume().await,
                Step::Release => self.release(kind, compensating).await,
                Step::Unassign => self.unassign(kind, compensating).await,
                Step::Commit => self.commit(kind).await,
                Step::End => self.end().await,
            };
            match result {
                Ok(Next::Continue) => {}
                Ok(Next::Finished(row)) => {
                    return match self.failure.take() {
                        Some(error) => Err(error),
                        None => Ok(Outcome {
                            shipment: row,
                            done: self.saga.state == SagaState::Done.as_str(),
                        }),
                    };
                }
                Err(error) => return Err(self.park(error).await),
            }
        }
    }

    /// Calls `f` until it succeeds, fails for good, or the peer stayed unavailable through the
    /// configured retries.
    async fn retrying<T, F, Fut>(&self, mut f: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            match f().await {
                Err(e) if e.is_retryable() && tries < self.state.saga.step_retries => {
                    tries += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    fn key(&self, step: &str) -> String {
        Uuid::new_v5(&self.saga.id, step.as_bytes()).to_string()
    }

    async fn tx(&self) -> Result<Tx, Error> {
        tenant_context(&self.saga).begin(&self.state.pool).await
    }

    /// Saves the saga in `tx` (which the caller commits) if this replica still holds its lease.
    async fn save_in(&self, tx: &mut Tx) -> Result<(), Error> {
        if sagas::save(tx, self.saving()).await? {
            Ok(())
        } else {
            Err(Error::Aborted(Conflict::Concurrency))
        }
    }

    /// The save of the saga as it is now, by this replica.
    fn saving(&self) -> sagas::Save<'_> {
        sagas::Save {
            saga: &self.saga,
            owner: self.state.replica_id,
            lease_seconds: lease(&self.state),
        }
    }

    async fn save(&mut self) -> Result<(), Error> {
        let mut tx = self.tx().await?;
        self.save_in(&mut tx).await?;
        tx.commit().await?;
        self.saved_at = std::time::Instant::now();
        Ok(())
    }

    async fn goto(&mut self, step: Step) -> Result<Next, Error> {
        self.saga.step = step.as_str().to_owned();
        self.save().await?;
        Ok(Next::Continue)
    }

    /// Goes on to `step` without saving: the step done is repeated with the same key (and the
    /// same answer) if the saga is resumed before its next save. Saves anyway once half the
    /// lease has gone by since the last save, so slow peers do not let the lease run out under
    /// a saga that is still being driven.
    async fn advance(&mut self, step: Step) -> Result<Next, Error> {
        if self.saved_at.elapsed().as_secs_f64() * 2.0 >= lease(&self.state) {
            return self.goto(step).await;
        }
        self.saga.step = step.as_str().to_owned();
        Ok(Next::Continue)
    }

    /// Starts undoing after `error`, from `step`.
    async fn compensate(&mut self, error: Error, step: Step) -> Result<Next, Error> {
        tracing::info!(saga = %self.saga.id, error = %describe(&error), "saga compensating");
        self.saga.state = SagaState::Compensating.as_str().to_owned();
        self.saga.error_code = Some(error.code() as i32);
        self.saga.error_message = describe(&error);
        self.failure = Some(error);
        self.goto(step).await
    }

    /// A step could not be done now: give up the lease (so the next call about the shipment,
    /// or recovery, can take the saga over) and answer with the error.
    async fn park(&mut self, error: Error) -> Error {
        if !matches!(error, Error::Aborted(Conflict::Concurrency)) {
            tracing::warn!(saga = %self.saga.id, step = %self.saga.step, error = %describe(&error),
                "saga parked");
            // Without valid credentials recovery cannot help: it waits for a caller (who takes
            // the saga over at once) and looks again only now and then.
            let delay = match error {
                Error::Unauthenticated | Error::PermissionDenied(_) => 300.0,
                _ => 0.0,
            };
            let parked = async {
                let mut tx = self.tx().await?;
                sagas::postpone(&mut tx, self.saga.id, self.state.replica_id, delay).await?;
                tx.commit().await.map_err(Error::from)
            };
            if let Err(e) = parked.await {
                tracing::warn!(saga = %self.saga.id, error = %e, "could not park saga");
            }
        }
        // The reason the saga was undoing, when there is one, is what the caller asked about.
        self.failure.take().unwrap_or(error)
    }

    /// The shipment and its items: as the start read them, or read now (a resumed saga).
    async fn load(&mut self) -> Result<&Loaded, Error> {
        if self.loaded.is_none() {
            let mut tx = self.tx().await?;
            let shipment = shipments::get(&mut tx, self.saga.shipment_id, true)
                .await?
                .ok_or_else(|| anyhow::anyhow!("shipment of saga {} vanished", self.saga.id))?;
            let lines = items::of_shipment(&mut tx, shipment.id)
                .await?
                .into_iter()
                .map(PlanLine::from)
                .collect();
            tx.commit().await?;
            self.loaded = Some(Loaded {
                shipment: Box::new(shipment),
                lines,
            });
        }
        self.loaded
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("saga {} lost its shipment", self.saga.id).into())
    }

    async fn reserve(&mut self) -> Result<Next, Error> {
        let Loaded { shipment, lines } = self.load().await?;
        let (shipment, lines) = (shipment.clone(), lines.clone());
        if let Err(e) = self.check_references(&shipment, &lines).await {
            return self.fail_to_reserve(e).await;
        }
        let request = inventory::ReserveStockRequest {
            idempotency_key: self.key("reserve"),
            shipment_id: shipment.id.to_string(),
            lines: lines
                .iter()
                .map(|l| inventory::ReservationLine {
                    warehouse_id: shipment.origin_warehouse_id.to_string(),
                    material_id: l.material_id.to_string(),
                    quantity: Some(decimal(l.quantity)),
                })
                .collect(),
        };
        let peers = &self.state.peers;
        let call = &self.call;
        match self.retrying(|| peers.reserve(call, request.clone())).await {
            Ok(_) => self.advance(Step::Assign).await,
            Err(e) if e.is_retryable() || matches!(e, Error::Internal(_)) => {
                // In doubt: it may have been applied; release whatever is held.
                self.compensate(e, Step::Release).await
            }
            Err(e) => self.fail_to_reserve(reserve_refusal(e)).await,
        }
    }

    /// There is something to ship, and the customer is still a live, active customer. The
    /// warehouse and materials were checked when the shipment and its items were written;
    /// ReserveStock refuses them if they have been deleted since (a closed warehouse or a
    /// discontinued material only takes no receipts: its stock still ships).
    async fn check_references(
        &self,
        shipment: &ShipmentRow,
        lines: &[PlanLine],
    ) -> Result<(), Error> {
        if lines.is_empty() {
            return Err(Error::Precondition(vec![PreconditionViolation {
                kind: "NO_ITEMS",
                subject: "shipment".to_owned(),
                description: "a shipment needs at least one item to be planned".to_owned(),
            }]));
        }
        let peers = &self.state.peers;
        let call = &self.call;
        self.retrying(|| {
            references::customer(peers, call, "shipment.customer_id", shipment.customer_id)
        })
        .await
    }

    /// Planning was refused before its reservation: close it. A resumed saga may have reserved
    /// (and booked) in an earlier run, so it undoes whatever the shipment holds first.
    async fn fail_to_reserve(&mut self, error: Error) -> Result<Next, Error> {
        let next = if self.resumed {
            Step::Release
        } else {
            Step::End
        };
        self.compensate(error, next).await
    }

    async fn assign(&mut self) -> Result<Next, Error> {
        let shipment = self.load().await?.shipment.clone();
        let window = booking_window(&shipment.pickup()?, &shipment.delivery()?);
        let peers = &self.state.peers;
        let call = self.call.clone();
        if let (Some(truck_id), Some(driver_id)) = (self.saga.truck_id, self.saga.driver_id) {
            // Chosen by an earlier version, which looked for a pair before booking it: book
            // that pair with the key it would have used.
            let request = fleet::CreateAssignmentRequest {
                request_id: self.key(&format!("assign:{}", self.saga.assign_attempt)),
                truck_id: truck_id.to_string(),
                driver_id: driver_id.to_string(),
                shipment_id: shipment.id.to_string(),
                window: Some(window.to_proto()),
            };
            return match self.retrying(|| peers.assign(&call, request.clone())).await {
                Ok(assignment) => self.booked(&assignment).await,
                Err(Error::Precondition(v))
                    if v.iter()
                        .all(|v| matches!(v.kind, "TRUCK_BOOKED" | "DRIVER_BOOKED")) =>
                {
                    // Taken meanwhile: let fleet pick.
                    self.saga.truck_id = None;
                    self.saga.driver_id = None;
                    self.save().await?;
                    Ok(Next::Continue)
                }
                Err(e) => self.compensate(e, Step::Release).await,
            };
        }
        // From here on the shipment may hold a booking: a compensation cancels it.
        self.saga.assign_attempt += 1;
        let positive = |d: Decimal| (d > Decimal::ZERO).then(|| decimal(d));
        let request = fleet::AssignAvailableRequest {
            request_id: self.key(&format!("assign:{}", self.saga.assign_attempt)),
            shipment_id: shipment.id.to_string(),
            window: Some(window.to_proto()),
            min_payload_kg: positive(shipment.total_weight_kg),
            min_volume_m3: positive(shipment.total_volume_m3),
            licence_class: 0,
        };
        match self
            .retrying(|| peers.assign_available(&call, request.clone()))
            .await
        {
            Ok(assignment) => self.booked(&assignment).await,
            // The booking may or may not have been made: release the stock first (the scarce
            // shared resource), then cancel whatever booking the shipment has.
            Err(e) => self.compensate(e, Step::Release).await,
        }
    }

    /// Notes the booking fleet made; the commit saves it with the shipment.
    async fn booked(&mut self, assignment: &fleet::Assignment) -> Result<Next, Error> {
        self.saga.truck_id = Some(parse_uuid(&assignment.truck_id)?);
        self.saga.driver_id = Some(parse_uuid(&assignment.driver_id)?);
        self.saga.assignment_id = Some(parse_uuid(&assignment.id)?);
        self.advance(Step::Commit).await
    }

    async fn consume(&mut self) -> Result<Next, Error> {
        let request = inventory::ConsumeReservationRequest {
            idempotency_key: self.key("consume"),
            shipment_id: self.saga.shipment_id.to_string(),
            warehouse_id: String::new(),
        };
        let peers = &self.state.peers;
        let call = &self.call;
        let consumed = self
            .retrying(|| peers.consume(call, request.clone()))
            .await?;
        if consumed.is_empty() {
            return Err(anyhow::anyhow!(
                "shipment {} had no held reservation to consume",
                self.saga.shipment_id
            )
            .into());
        }
        self.advance(Step::Commit).await
    }

    async fn release(&mut self, kind: Kind, compensating: bool) -> Result<Next, Error> {
        let request = inventory::ReleaseReservationRequest {
            idempotency_key: self.key("release"),
            shipment_id: self.saga.shipment_id.to_string(),
            warehouse_id: String::new(),
            material_id: String::new(),
        };
        let peers = &self.state.peers;
        let call = &self.call;
        self.retrying(|| peers.release(call, request.clone()))
            .await?;
        match (kind, compensating) {
            (Kind::Cancel, _) => self.goto(Step::Unassign).await,
            // A plan that got as far as booking, or that was resumed (it may have), cancels
            // whatever booking the shipment has.
            _ if self.resumed || self.saga.truck_id.is_some() || self.saga.assign_attempt > 0 => {
                self.goto(Step::Unassign).await
            }
            _ => self.goto(Step::End).await,
        }
    }

    async fn unassign(&mut self, kind: Kind, compensating: bool) -> Result<Next, Error> {
        let peers = &self.state.peers;
        let call = &self.call;
        let shipment_id = self.saga.shipment_id.to_string();
        let reason = if kind == Kind::Cancel {
            "shipment cancelled"
        } else {
            "shipment planning failed"
        };
        let active = self
            .retrying(|| peers.active_assignments(call, &shipment_id))
            .await?;
        for assignment in active {
            self.retrying(|| peers.unassign(call, &assignment.id, reason))
                .await?;
        }
        match (kind, compensating) {
            (Kind::Cancel, _) => self.goto(Step::Commit).await,
            _ => self.goto(Step::End).await,
        }
    }

    async fn commit(&mut self, kind: Kind) -> Result<Next, Error> {
        let mut tx = self.tx().await?;
        let shipment = shipments::lock(&mut tx, self.saga.shipment_id).await?;
        if shipment.saga_id != Some(self.saga.id) {
            return Err(
                anyhow::anyhow!("saga {} no longer owns its shipment", self.saga.id).into(),
            );
        }
        let (transition, event, change) = match kind {
            Kind::Plan => {
                let (Some(truck), Some(driver), Some(assignment)) = (
                    self.saga.truck_id,
                    self.saga.driver_id,
                    self.saga.assignment_id,
                ) else {
                    return Err(anyhow::anyhow!("plan saga commits without a booking").into());
                };
                (
                    Transition::Plan,
                    EventType::Planned,
                    StatusChange {
                        booking: Some((truck, driver, assignment)),
                        ..StatusChange::default()
                    },
                )
            }
            Kind::Dispatch => (
                Transition::Dispatch,
                EventType::Dispatched,
                StatusChange::default(),
            ),
            Kind::Cancel => (
                Transition::Cancel,
                EventType::Cancelled,
                StatusChange {
                    reason: Some(self.saga.reason.clone()),
                    ..StatusChange::default()
                },
            ),
        };
        let to = shipment.status()?.apply(transition)?;
        self.saga.state = SagaState::Done.as_str().to_owned();
        self.saga.step = Step::End.as_str().to_owned();
        // The status change and the saga's end are one statement (one round trip less).
        let row = shipments::set_status_saving(
            &mut tx,
            shipment.id,
            to,
            &StatusChange {
                end_saga: true,
                ..change
            },
            self.saving(),
        )
        .await?
        .ok_or(Error::Aborted(Conflict::Concurrency))?;
        emit(&mut tx, &row, event, None).await?;
        tx.commit().await?;
        tracing::info!(saga = %self.saga.id, kind = %self.saga.kind, "saga done");
        Ok(Next::Finished(Box::new(row)))
    }

    /// Closes a failed plan: the shipment is a draft again, free to change or plan anew.
    async fn end(&mut self) -> Result<Next, Error> {
        let mut tx = self.tx().await?;
        shipments::lock(&mut tx, self.saga.shipment_id).await?;
        let row = shipments::clear_saga(&mut tx, self.saga.shipment_id).await?;
        self.saga.state = SagaState::Failed.as_str().to_owned();
        if self.saga.error_code.is_none() {
            self.saga.error_code = Some(tonic::Code::Aborted as i32);
            self.saga.error_message = "undone after a restart".to_owned();
        }
        self.save_in(&mut tx).await?;
        emit(&mut tx, &row, EventType::PlanFailed, None).await?;
        tx.commit().await?;
        tracing::info!(saga = %self.saga.id, "saga failed and undone");
        Ok(Next::Finished(Box::new(row)))
    }
}

/// ReserveStock's NOT_FOUND of the origin warehouse or a material (deleted since the shipment
/// or its item was written) as the request field that names it.
fn reserve_refusal(error: Error) -> Error {
    match &error {
        Error::NotFound(r) if r.kind == "logistics.inventory.v1.Warehouse" => {
            references::unknown_reference("shipment.origin_warehouse_id")
        }
        Error::NotFound(r) if r.kind == "logistics.inventory.v1.Material" => {
            references::unknown_reference("shipment_item.material_id")
        }
        _ => error,
    }
}

fn parse_uuid(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| anyhow::anyhow!("a peer answered a malformed id").into())
}

/// A short description of an error for the saga's record and logs: never personal data (the
/// errors here carry ids, kinds and the peers' own descriptions only).
fn describe(error: &Error) -> String {
    match error {
        Error::Precondition(v) => v
            .iter()
            .map(|v| format!("{}: {}", v.kind, v.description))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// Claims sagas whose lease ran out (their replica died, or they were parked) and drives each
/// to its end with the credentials saved with it.
pub async fn recover_once(state: &Arc<State>) -> Result<usize, Error> {
    let mut tx = DbContext::system(None).begin(&state.pool).await?;
    let due = sagas::claim_expired(&mut tx, state.replica_id, lease(state), 10).await?;
    tx.commit().await?;
    let count = due.len();
    for saga in due {
        let call = match recovered_context(state, &saga) {
            Ok(call) => call,
            Err(e) => {
                tracing::error!(saga = %saga.id, error = %e, "saga cannot be recovered");
                continue;
            }
        };
        tracing::info!(saga = %saga.id, step = %saga.step, "recovering saga");
        let state = Arc::clone(state);
        tokio::spawn(async move {
            let id = saga.id;
            if let Err(e) = drive(&state, saga, call, None).await {
                tracing::info!(saga = %id, error = %describe(&e), "recovered saga stopped");
            }
        });
    }
    Ok(count)
}

/// Runs [`recover_once`] every configured interval until the task is dropped.
pub async fn recover_forever(state: Arc<State>) {
    let interval = Duration::from_millis(state.saga.recovery_interval_ms);
    loop {
        if let Err(e) = recover_once(&state).await {
            tracing::warn!(error = %e, "saga recovery failed");
        }
        tokio::time::sleep(interval).await;
    }
}
