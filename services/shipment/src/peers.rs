//! Calls to partner, inventory and fleet on behalf of a caller.
//!
//! Every outgoing call carries the caller's `authorization` header (so the peer applies the
//! caller's permissions and tenant), a deadline (`grpc-timeout`), the trace context (W3C
//! `traceparent`: the current span as parent while traces are exported, else the caller's trace
//! id and a new parent id per call) and the request id;
//! the state-changing ones also an idempotency key chosen by the saga. A peer's failure comes
//! back as this service's [`Error`], never as the peer's raw text.

use std::time::Duration;

use logistics_platform::Error;
use logistics_platform::error::{Conflict, PreconditionViolation, Resource};
use logistics_platform::otel;
use logistics_platform::telemetry::{
    REQUEST_ID_HEADER, TRACEPARENT_HEADER as TRACEPARENT, current_request_id, current_trace_id,
    random_hex,
};
use logistics_proto::fleet::v1 as fleet;
use logistics_proto::inventory::v1 as inventory;
use logistics_proto::partner::v1 as partner;
use secrecy::{ExposeSecret, SecretString};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::config::PeerConfig;

/// What an outgoing call carries besides its message.
#[derive(Clone)]
pub struct CallContext {
    /// `Bearer <token>` of the caller the calls are made for.
    authorization: SecretString,
    /// The trace the calls belong to (32 lower-case hex digits).
    trace_id: String,
    /// The request id of the call being served, when there is one.
    request_id: Option<String>,
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("trace_id", &self.trace_id)
            .finish_non_exhaustive()
    }
}

impl CallContext {
    /// The context of an incoming call: its bearer token, its trace (the one the call is served
    /// in) and request id.
    pub fn of_request<T>(request: &Request<T>) -> Result<Self, Error> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or(Error::Unauthenticated)?;
        let trace_id = current_trace_id().unwrap_or_else(new_trace_id);
        Ok(Self {
            authorization: SecretString::from(authorization.to_owned()),
            trace_id,
            request_id: current_request_id(),
        })
    }

    /// The context of a recovered saga: the stored token, a new trace.
    pub fn of_token(token: &str) -> Self {
        Self {
            authorization: SecretString::from(format!("Bearer {token}")),
            trace_id: new_trace_id(),
            request_id: None,
        }
    }

    /// This context as it is inside `span`: the trace becomes the span's while traces are
    /// exported (a recovered saga's span starts a trace of its own).
    pub fn in_span(mut self, span: &tracing::Span) -> Self {
        if let Some(trace_id) = otel::trace_id(span) {
            self.trace_id = trace_id;
        }
        self
    }

    /// The bearer token alone, to be sealed with a saga.
    pub fn token(&self) -> &str {
        let value = self.authorization.expose_secret();
        value.strip_prefix("Bearer ").unwrap_or(value)
    }

    /// The trace id.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// `message` as a request with credentials, deadline, trace context and request id.
    fn request<M>(&self, message: M, timeout: Duration) -> Request<M> {
        let mut request = Request::new(message);
        request.set_timeout(timeout);
        let metadata = request.metadata_mut();
        if let Ok(value) = MetadataValue::try_from(self.authorization.expose_secret()) {
            metadata.insert("authorization", value);
        }
        let traceparent = otel::current_traceparent()
            .unwrap_or_else(|| format!("00-{}-{}-01", self.trace_id, new_span_id()));
        if let Ok(value) = MetadataValue::try_from(traceparent.as_str()) {
            metadata.insert(TRACEPARENT, value);
        }
        if let Some(id) = &self.request_id
            && let Ok(value) = MetadataValue::try_from(id.as_str())
        {
            metadata.insert(REQUEST_ID_HEADER, value);
        }
        request
    }
}

fn new_trace_id() -> String {
    random_hex(16)
}

fn new_span_id() -> String {
    random_hex(8)
}

/// Clients of the three peers.
#[derive(Clone)]
pub struct Peers {
    partner: partner::partner_service_client::PartnerServiceClient<Channel>,
    inventory: inventory::inventory_service_client::InventoryServiceClient<Channel>,
    fleet: fleet::fleet_service_client::FleetServiceClient<Channel>,
    timeout: Duration,
}

/// Which peer answered, for error messages and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The partner service.
    Partner,
    /// The inventory service.
    Inventory,
    /// The fleet service.
    Fleet,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Partner => "partner",
            Peer::Inventory => "inventory",
            Peer::Fleet => "fleet",
        }
    }
}

impl Peers {
    /// Lazily connected clients for `config`, with TLS as identity's client configuration says.
    pub fn new(
        config: &PeerConfig,
        tls: &logistics_platform::service::IdentityClientConfig,
    ) -> anyhow::Result<Self> {
        let ca = config
            .peer_tls_ca
            .as_deref()
            .or(tls.identity_tls_ca.as_deref());
        Ok(Self {
            partner: partner::partner_service_client::PartnerServiceClient::new(
                tls.channel_to(&config.partner_url, ca)?,
            ),
            inventory: inventory::inventory_service_client::InventoryServiceClient::new(
                tls.channel_to(&config.inventory_url, ca)?,
            ),
            fleet: fleet::fleet_service_client::FleetServiceClient::new(
                tls.channel_to(&config.fleet_url, ca)?,
            ),
            timeout: Duration::from_millis(config.call_timeout_ms),
        })
    }

    /// A partner by id.
    pub async fn partner(&self, cx: &CallContext, id: &str) -> Result<partner::Partner, Error> {
        let request = cx.request(
            partner::GetPartnerRequest { id: id.to_owned() },
            self.timeout,
        );
        let response = self
            .partner
            .clone()
            .get_partner(request)
            .await
            .map_err(|s| peer_error(Peer::Partner, "partner.partners.read", s))?;
        required(Peer::Partner, response.into_inner().partner)
    }

    /// A partner's address by id.
    pub async fn address(&self, cx: &CallContext, id: &str) -> Result<partner::Address, Error> {
        let request = cx.request(
            partner::GetAddressRequest { id: id.to_owned() },
            self.timeout,
        );
        let response = self
            .partner
            .clone()
            .get_address(request)
            .await
            .map_err(|s| peer_error(Peer::Partner, "partner.partners.read", s))?;
        required(Peer::Partner, response.into_inner().address)
    }

    /// A warehouse by id.
    pub async fn warehouse(
        &self,
        cx: &CallContext,
        id: &str,
    ) -> Result<inventory::Warehouse, Error> {
        let request = cx.request(
            inventory::GetWarehouseRequest { id: id.to_owned() },
            self.timeout,
        );
        let response = self
            .inventory
            .clone()
            .get_warehouse(request)
            .await
            .map_err(|s| peer_error(Peer::Inventory, "inventory.read", s))?;
        required(Peer::Inventory, response.into_inner().warehouse)
    }

    /// A material by id.
    pub async fn material(&self, cx: &CallContext, id: &str) -> Result<inventory::Material, Error> {
        let request = cx.request(
            inventory::GetMaterialRequest { id: id.to_owned() },
            self.timeout,
        );
        let response = self
            .inventory
            .clone()
            .get_material(request)
            .await
            .map_err(|s| peer_error(Peer::Inventory, "inventory.read", s))?;
        required(Peer::Inventory, response.into_inner().material)
    }

    /// Reserves stock for a shipment (idempotent by `request.idempotency_key`).
    pub async fn reserve(
        &self,
        cx: &CallContext,
        message: inventory::ReserveStockRequest,
    ) -> Result<Vec<inventory::Reservation>, Error> {
        let response = self
            .inventory
            .clone()
            .reserve_stock(cx.request(message, self.timeout))
            .await
            .map_err(|s| peer_error(Peer::Inventory, "inventory.stock.reserve", s))?;
        Ok(response.into_inner().reservations)
    }

    /// Gives back a shipment's held reservations (idempotent by key).
    pub async fn release(
        &self,
        cx: &CallContext,
        message: inventory::ReleaseReservationRequest,
    ) -> Result<Vec<inventory::Reservation>, Error> {
        let response = self
            .inventory
            .clone()
            .release_reservation(cx.request(message, self.timeout))
            .await
            .map_err(|s| peer_error(Peer::Inventory, "inventory.stock.reserve", s))?;
        Ok(response.into_inner().reservations)
    }

    /// Ships a shipment's held reservations (idempotent by key).
    pub async fn consume(
        &self,
        cx: &CallContext,
        message: inventory::ConsumeReservationRequest,
    ) -> Result<Vec<inventory::Reservation>, Error> {
        let response = self
            .inventory
            .clone()
            .consume_reservation(cx.request(message, self.timeout))
            .await
            .map_err(|s| peer_error(Peer::Inventory, "inventory.stock.reserve", s))?;
        Ok(response.into_inner().reservations)
    }

    /// A shipment's reservations.
    pub async fn reservations(
        &self,
        cx: &CallContext,
        shipment_id: &str,
    ) -> Result<Vec<inventory::Reservation>, Error> {
        let request = cx.request(
            inventory::ListReservationsRequest {
                shipment_id: shipment_id.to_owned(),
            },
            self.timeout,
        );
        let response = self
            .inventory
            .clone()
            .list_reservations(request)
            .await
            .map_err(|s| peer_error(Peer::Inventory, "inventory.read", s))?;
        Ok(response.into_inner().reservations)
    }

    /// Books a truck and a driver (idempotent by `request_id`).
    pub async fn assign(
        &self,
        cx: &CallContext,
        message: fleet::CreateAssignmentRequest,
    ) -> Result<fleet::Assignment, Error> {
        let response = self
            .fleet
            .clone()
            .create_assignment(cx.request(message, self.timeout))
            .await
            .map_err(|s| peer_error(Peer::Fleet, "fleet.assignments.write", s))?;
        required(Peer::Fleet, response.into_inner().assignment)
    }

    /// Books the first free truck that carries the load and the first free driver, chosen by
    /// fleet in the booking's transaction (idempotent by `request_id`).
    pub async fn assign_available(
        &self,
        cx: &CallContext,
        message: fleet::AssignAvailableRequest,
    ) -> Result<fleet::Assignment, Error> {
        let response = self
            .fleet
            .clone()
            .assign_available(cx.request(message, self.timeout))
            .await
            .map_err(|s| peer_error(Peer::Fleet, "fleet.assignments.write", s))?;
        required(Peer::Fleet, response.into_inner().assignment)
    }

    /// The shipment's active bookings.
    pub async fn active_assignments(
        &self,
        cx: &CallContext,
        shipment_id: &str,
    ) -> Result<Vec<fleet::Assignment>, Error> {
        let request = cx.request(
            fleet::ListAssignmentsRequest {
                shipment_id: shipment_id.to_owned(),
                page_size: 1000,
                ..fleet::ListAssignmentsRequest::default()
            },
            self.timeout,
        );
        let response = self
            .fleet
            .clone()
            .list_assignments(request)
            .await
            .map_err(|s| peer_error(Peer::Fleet, "fleet.read", s))?;
        Ok(response
            .into_inner()
            .assignments
            .into_iter()
            .filter(|a| a.status == fleet::AssignmentStatus::Active as i32)
            .collect())
    }

    /// Cancels a booking; one already cancelled stays as it is.
    pub async fn unassign(
        &self,
        cx: &CallContext,
        assignment_id: &str,
        reason: &str,
    ) -> Result<(), Error> {
        let request = cx.request(
            fleet::CancelAssignmentRequest {
                id: assignment_id.to_owned(),
                etag: String::new(),
                reason: reason.to_owned(),
            },
            self.timeout,
        );
        match self.fleet.clone().cancel_assignment(request).await {
            Ok(_) => Ok(()),
            Err(status) => match peer_error(Peer::Fleet, "fleet.assignments.write", status) {
                // Cancelled already (by an earlier try whose answer was lost).
                Error::Precondition(v) if v.iter().all(|v| v.kind == "NOT_ACTIVE") => Ok(()),
                other => Err(other),
            },
        }
    }
}

fn required<T>(peer: Peer, value: Option<T>) -> Result<T, Error> {
    value.ok_or_else(|| anyhow::anyhow!("{} answered without its resource", peer.name()).into())
}

/// Precondition kinds peers report that this service passes on.
const KNOWN_KINDS: &[&str] = &[
    "INSUFFICIENT_STOCK",
    "ALREADY_CONSUMED",
    "TRUCK_BOOKED",
    "DRIVER_BOOKED",
    "TRUCK_NOT_ACTIVE",
    "TRUCK_IN_MAINTENANCE",
    "DRIVER_NOT_ACTIVE",
    "LICENCE_EXPIRES",
    "NO_TRUCK_AVAILABLE",
    "NO_DRIVER_AVAILABLE",
    "NOT_ACTIVE",
];

/// A peer's failure as this service's error. Transport failures, deadlines and a peer's own
/// unavailability are UNAVAILABLE (retryable); a refusal keeps its meaning and details; a peer
/// that finds this service's request malformed is this service's bug (INTERNAL).
pub fn peer_error(peer: Peer, permission: &'static str, status: Status) -> Error {
    let name = peer.name();
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted => {
            Error::Unavailable(anyhow::anyhow!(
                "{name}: {:?}: {}",
                status.code(),
                status.message()
            ))
        }
        Code::NotFound => {
            let info = status.get_details_resource_info();
            Error::NotFound(match info {
                Some(info) => Resource::new(leak_kind(&info.resource_type), info.resource_name),
                None => Resource::new("resource", name),
            })
        }
        Code::FailedPrecondition => {
            let violations = status
                .get_details_precondition_failure()
                .map(|p| p.violations)
                .unwrap_or_default();
            if violations.is_empty() {
                return Error::precondition("PEER_REFUSED", name, status.message().to_owned());
            }
            Error::Precondition(
                violations
                    .into_iter()
                    .map(|v| PreconditionViolation {
                        kind: KNOWN_KINDS
                            .iter()
                            .find(|k| **k == v.r#type)
                            .copied()
                            .unwrap_or("PEER_REFUSED"),
                        subject: format!("{name}: {}", v.subject),
                        description: v.description,
                    })
                    .collect(),
            )
        }
        Code::Aborted => Error::Aborted(Conflict::Concurrency),
        Code::Unauthenticated => Error::Unauthenticated,
        Code::PermissionDenied => Error::PermissionDenied(permission),
        Code::Ok
        | Code::Unknown
        | Code::InvalidArgument
        | Code::AlreadyExists
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Internal
        | Code::DataLoss => Error::Internal(anyhow::anyhow!(
            "{name} refused a call: {:?}: {}",
            status.code(),
            status.message()
        )),
    }
}

/// Resource kinds of the peers' contracts, as `'static` names for error details.
fn leak_kind(kind: &str) -> &'static str {
    const KINDS: &[&str] = &[
        "logistics.partner.v1.Partner",
        "logistics.partner.v1.Address",
        "logistics.inventory.v1.Warehouse",
        "logistics.inventory.v1.Material",
        "logistics.fleet.v1.Truck",
        "logistics.fleet.v1.Driver",
        "logistics.fleet.v1.Assignment",
    ];
    KINDS
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("resource")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_calls_carry_credentials_deadline_and_the_callers_trace() {
        let cx = CallContext::of_token("abc.def");
        let request = cx.request((), Duration::from_millis(1500));
        let md = request.metadata();
        assert_eq!(md.get("authorization").unwrap(), "Bearer abc.def");
        assert!(md.get("grpc-timeout").is_some());
        let tp = md.get(TRACEPARENT).unwrap().to_str().unwrap();
        assert_eq!(
            logistics_platform::telemetry::trace_id_of(tp).as_deref(),
            Some(cx.trace_id())
        );
        assert_eq!(new_span_id().len(), 16);
        assert_eq!(cx.token(), "abc.def");
        assert!(!format!("{cx:?}").contains("abc.def"));
    }

    #[test]
    fn peer_failures_keep_their_meaning_without_the_peers_words_leaking_as_internal() {
        let e = peer_error(Peer::Fleet, "p", Status::unavailable("down"));
        assert!(matches!(e, Error::Unavailable(_)));
        let e = peer_error(Peer::Fleet, "p", Status::deadline_exceeded("slow"));
        assert!(matches!(e, Error::Unavailable(_)));
        let e = peer_error(Peer::Inventory, "p", Status::invalid_argument("bad"));
        assert!(matches!(e, Error::Internal(_)));
        let e = peer_error(
            Peer::Inventory,
            "inventory.read",
            Status::permission_denied("no"),
        );
        assert!(matches!(e, Error::PermissionDenied("inventory.read")));
    }
}
