//! The one error type of every service and its one mapping to the wire.
//!
//! Handlers, domain and store return [`Error`]; `impl From<Error> for tonic::Status` is the only
//! place that decides a gRPC code and the rich details (`google.rpc.BadRequest`, `ErrorInfo`,
//! `ResourceInfo`, `PreconditionFailure`). Database errors are classified here once: a lost
//! connection is UNAVAILABLE, a serialization failure ABORTED, a unique violation becomes a field
//! error through the caller's constraint table, and everything else is INTERNAL with the cause
//! logged and never sent. No SQL, constraint or table name ever reaches a client.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every error the platform returns.
pub const ERROR_DOMAIN: &str = "logistics";

/// One invalid field of a request, named by its path in the request message (`user.email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, dotted (`update_mask.paths[0]`, `user.email`).
    pub field: String,
    /// What is wrong, in words a caller can act on; never the rejected value itself.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field` described by `description`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }

    /// The same violation moved under `prefix` (`email` becomes `user.email`).
    pub fn nested(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}.{}", self.field);
        self
    }
}

/// Collects every field violation of a request, so a caller learns all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation.
    pub fn push(&mut self, violation: FieldViolation) {
        self.0.push(violation);
    }

    /// Keeps the value of a successful parse and records the violation of a failed one.
    pub fn check<T>(&mut self, parsed: Result<T, FieldViolation>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(violation) => {
                self.0.push(violation);
                None
            }
        }
    }

    /// `Ok(())` when nothing was recorded, else [`Error::Invalid`] with every violation.
    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self.0))
        }
    }
}

/// A value parsed without a violation being recorded must be there; if not, it is a bug, and
/// an internal error rather than a panic.
pub fn parsed<T>(value: Option<T>) -> Result<T, Error> {
    value.ok_or_else(|| anyhow::anyhow!("parsed field missing without a violation").into())
}

/// A resource named in NOT_FOUND and ALREADY_EXISTS answers (`google.rpc.ResourceInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Fully qualified type, e.g. `logistics.identity.v1.User`.
    pub kind: &'static str,
    /// The id or other name the caller used.
    pub name: String,
}

impl Resource {
    /// A resource of `kind` named `name`.
    pub fn new(kind: &'static str, name: impl ToString) -> Self {
        Self {
            kind,
            name: name.to_string(),
        }
    }
}

/// A failed precondition (`google.rpc.PreconditionFailure.Violation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreconditionViolation {
    /// Machine-readable kind, UPPER_SNAKE (`ROLE_REQUIRES_PARTNER`).
    pub kind: &'static str,
    /// What the precondition is about (`user`, `truck`).
    pub subject: String,
    /// What must change before the call can succeed.
    pub description: String,
}

/// Why a call that may succeed on retry was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The etag sent is not the resource's current one: re-read, then retry.
    StaleEtag,
    /// The database refused the transaction to keep it serializable: retry as is.
    Concurrency,
}

/// Every failure a service can answer with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; every violated field is listed.
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    /// The resource does not exist for this caller (or is deleted and not asked for).
    #[error("{} not found", .0.kind)]
    NotFound(Resource),
    /// A unique value the caller chose is taken: `field` names it.
    #[error("{} already exists", .resource.kind)]
    AlreadyExists {
        /// The resource that would have been duplicated.
        resource: Resource,
        /// The request field holding the duplicated value.
        field: String,
    },
    /// The system is not in a state that allows the call.
    #[error("precondition failed")]
    Precondition(Vec<PreconditionViolation>),
    /// A concurrent change won; see [`Conflict`].
    #[error("aborted: {0:?}")]
    Aborted(Conflict),
    /// No or no valid credentials. The text is generic on purpose.
    #[error("unauthenticated")]
    Unauthenticated,
    /// Valid credentials without the needed permission.
    #[error("permission denied: {0}")]
    PermissionDenied(&'static str),
    /// The database or another dependency cannot be reached; safe to retry.
    #[error("unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A bug or an unexpected failure: logged with its cause, answered without it.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// A single field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldViolation::new(field, description)])
    }

    /// A single failed precondition.
    pub fn precondition(
        kind: &'static str,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self::Precondition(vec![PreconditionViolation {
            kind,
            subject: subject.into(),
            description: description.into(),
        }])
    }

    /// The same error with its request field paths moved under `prefix` (`email` becomes
    /// `user.email`), for stores shared by requests that nest the resource differently.
    pub fn nested(self, prefix: &str) -> Self {
        match self {
            Self::Invalid(violations) => {
                Self::Invalid(violations.into_iter().map(|v| v.nested(prefix)).collect())
            }
            Self::AlreadyExists { resource, field } => Self::AlreadyExists {
                resource,
                field: format!("{prefix}.{field}"),
            },
            other => other,
        }
    }

    /// After a conditional write (`... AND version = $n`) that matched nothing: NOT_FOUND when the
    /// row does not exist for this caller, ABORTED when it exists but its version moved on.
    pub fn missing_or_stale(exists: bool, resource: Resource) -> Self {
        if exists {
            Self::Aborted(Conflict::StaleEtag)
        } else {
            Self::NotFound(resource)
        }
    }

    /// After a conditional write of a live row (`expect_live`) or of a deleted one (undelete)
    /// matched nothing, given what the row is now (`Some(is_live)`, or `None` when this caller
    /// cannot see it): NOT_FOUND when it is gone, or deleted for a write of live rows; ABORTED
    /// when only its version moved on; FAILED_PRECONDITION `NOT_DELETED` when undeleting a live
    /// row.
    pub fn missed_write(now_live: Option<bool>, expect_live: bool, resource: Resource) -> Self {
        match now_live {
            None => Self::NotFound(resource),
            Some(live) if live == expect_live => Self::Aborted(Conflict::StaleEtag),
            // Deleted, where a live row was expected.
            Some(false) => Self::NotFound(resource),
            // Live, where a deleted row was expected.
            Some(true) => Self::precondition(
                "NOT_DELETED",
                resource.name,
                "only a deleted resource can be undeleted",
            ),
        }
    }

    /// The outcome of a conditional write (`updated`) of a live (`expect_live`) or deleted row,
    /// given the row as read back after it: the row, or why the write matched nothing (see
    /// [`Error::missed_write`]).
    pub fn after_write<R>(
        updated: bool,
        now: Option<R>,
        is_live: impl FnOnce(&R) -> bool,
        expect_live: bool,
        resource: Resource,
    ) -> Result<R, Self> {
        if updated {
            now.ok_or_else(|| anyhow::anyhow!("written {} vanished", resource.kind).into())
        } else {
            let now_live = now.as_ref().map(is_live);
            Err(Self::missed_write(now_live, expect_live, resource))
        }
    }

    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            Self::Invalid(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::Precondition(_) => Code::FailedPrecondition,
            Self::Aborted(_) => Code::Aborted,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// Whether the same call may succeed if simply sent again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Aborted(Conflict::Concurrency) => true,
            Self::Aborted(Conflict::StaleEtag) => false,
            Self::Invalid(_)
            | Self::NotFound(_)
            | Self::AlreadyExists { .. }
            | Self::Precondition(_)
            | Self::Unauthenticated
            | Self::PermissionDenied(_)
            | Self::Internal(_) => false,
        }
    }

    /// Whether the server should log this error: only what an operator must look at.
    pub fn should_log(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Internal(_) => true,
            Self::Invalid(_)
            | Self::NotFound(_)
            | Self::AlreadyExists { .. }
            | Self::Precondition(_)
            | Self::Aborted(_)
            | Self::Unauthenticated
            | Self::PermissionDenied(_) => false,
        }
    }

    /// The UPPER_SNAKE reason sent in `ErrorInfo`.
    fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "INVALID_REQUEST",
            Self::NotFound(_) => "RESOURCE_NOT_FOUND",
            Self::AlreadyExists { .. } => "RESOURCE_ALREADY_EXISTS",
            Self::Precondition(_) => "PRECONDITION_FAILED",
            Self::Aborted(Conflict::StaleEtag) => "STALE_ETAG",
            Self::Aborted(Conflict::Concurrency) => "CONCURRENT_UPDATE",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::PermissionDenied(_) => "PERMISSION_DENIED",
            Self::Unavailable(_) => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }

    /// Classifies a database error. Unique violations are not recognised here, because only the
    /// store knows which field a constraint guards: use [`Error::from_db_with`] for those.
    pub fn from_db(err: sqlx::Error) -> Self {
        Self::from_db_with(err, &[])
    }

    /// Classifies a database error, turning a violation of one of `constraints` (constraint name,
    /// resource kind, request field) into ALREADY_EXISTS for that field.
    pub fn from_db_with(err: sqlx::Error, constraints: &[UniqueConstraint]) -> Self {
        if let sqlx::Error::Database(db) = &err {
            let code = db.code().unwrap_or_default();
            if code == "23505"
                && let Some(c) = constraints
                    .iter()
                    .find(|c| Some(c.constraint) == db.constraint())
            {
                return Self::AlreadyExists {
                    resource: Resource::new(c.kind, "(duplicate)"),
                    field: c.field.to_owned(),
                };
            }
            // 40001 serialization_failure, 40P01 deadlock_detected: retry the transaction.
            if code == "40001" || code == "40P01" {
                return Self::Aborted(Conflict::Concurrency);
            }
            // Class 08 connection exception; 57P0x the server is shutting down or starting;
            // 53300 too many connections.
            if code.starts_with("08") || code.starts_with("57P") || code == "53300" {
                return Self::Unavailable(err.into());
            }
        }
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err.into()),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::from_db(err)
    }
}

/// A unique constraint and the request field whose value it guards.
#[derive(Debug, Clone, Copy)]
pub struct UniqueConstraint {
    /// The constraint or unique index name in the database.
    pub constraint: &'static str,
    /// Resource kind reported to the caller.
    pub kind: &'static str,
    /// Request field reported to the caller.
    pub field: &'static str,
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let request_id = crate::telemetry::current_request_id();
        if err.should_log() {
            // `{:#}` prints the anyhow chain; this is the only place causes are written.
            match &err {
                Error::Internal(cause) | Error::Unavailable(cause) => {
                    tracing::error!(error = format!("{cause:#}"), code = ?err.code(), "request failed")
                }
                _ => tracing::error!(error = %err, "request failed"),
            }
        }
        let mut details = ErrorDetails::new();
        let mut info = std::collections::HashMap::new();
        if let Some(id) = &request_id {
            info.insert("request_id".to_owned(), id.clone());
        }
        let message = match &err {
            Error::Invalid(violations) => {
                for v in violations {
                    details.add_bad_request_violation(v.field.clone(), v.description.clone());
                }
                let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
                format!("invalid request: {}", fields.join(", "))
            }
            Error::NotFound(resource) => {
                details.set_resource_info(resource.kind, resource.name.clone(), "", "not found");
                format!("{} {} not found", short_kind(resource.kind), resource.name)
            }
            Error::AlreadyExists { resource, field } => {
                details.set_resource_info(resource.kind, "", "", format!("{field} is taken"));
                details
                    .add_bad_request_violation(field.clone(), "already used by another resource");
                format!(
                    "a {} with this {field} already exists",
                    short_kind(resource.kind)
                )
            }
            Error::Precondition(violations) => {
                for v in violations {
                    details.add_precondition_failure_violation(
                        v.kind,
                        v.subject.clone(),
                        v.description.clone(),
                    );
                }
                let text: Vec<&str> = violations.iter().map(|v| v.description.as_str()).collect();
                format!("failed precondition: {}", text.join("; "))
            }
            Error::Aborted(Conflict::StaleEtag) => {
                "the resource changed since it was read (stale etag): read it again".to_owned()
            }
            Error::Aborted(Conflict::Concurrency) => {
                "a concurrent change won; retry the call".to_owned()
            }
            Error::Unauthenticated => "missing or invalid credentials".to_owned(),
            Error::PermissionDenied(permission) => {
                info.insert("permission".to_owned(), (*permission).to_owned());
                format!("the caller lacks the permission {permission}")
            }
            Error::Unavailable(_) => "the service is temporarily unavailable; retry".to_owned(),
            Error::Internal(_) => match &request_id {
                Some(id) => format!("internal error (request id {id})"),
                None => "internal error".to_owned(),
            },
        };
        details.set_error_info(err.reason(), ERROR_DOMAIN, info);
        Status::with_error_details(err.code(), message, details)
    }
}

/// `logistics.identity.v1.User` → `User`.
fn short_kind(kind: &str) -> &str {
    kind.rsplit('.').next().unwrap_or(kind)
}

/// Shorthand for handler and store results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_request_lists_every_field_violation() {
        let status: Status = Error::Invalid(vec![
            FieldViolation::new("email", "must be an e-mail address"),
            FieldViolation::new("display_name", "must not be empty"),
        ])
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status
            .get_details_bad_request()
            .expect("bad request details");
        let fields: Vec<_> = bad
            .field_violations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["email", "display_name"]);
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "INVALID_REQUEST");
        assert_eq!(info.domain, ERROR_DOMAIN);
    }

    #[test]
    fn internal_errors_never_carry_their_cause() {
        let cause = anyhow::anyhow!("relation \"identity.users\" violates constraint users_pkey");
        let status: Status = Error::Internal(cause).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("users"), "{}", status.message());
        assert!(!format!("{:?}", status.details()).contains("users"));
    }

    #[test]
    fn lost_connections_are_unavailable_and_retryable() {
        let err = Error::from_db(sqlx::Error::PoolTimedOut);
        assert_eq!(err.code(), Code::Unavailable);
        assert!(err.is_retryable());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(
            Error::from_db(sqlx::Error::Io(io)).code(),
            Code::Unavailable
        );
    }

    #[test]
    fn a_missed_write_tells_gone_from_stale_from_not_deleted() {
        let r = || Resource::new("t.v1.Thing", "1");
        assert_eq!(Error::missed_write(None, true, r()).code(), Code::NotFound);
        assert_eq!(Error::missed_write(None, false, r()).code(), Code::NotFound);
        assert_eq!(
            Error::missed_write(Some(false), true, r()).code(),
            Code::NotFound
        );
        assert_eq!(
            Error::missed_write(Some(true), true, r()).code(),
            Code::Aborted
        );
        assert_eq!(
            Error::missed_write(Some(false), false, r()).code(),
            Code::Aborted
        );
        assert_eq!(
            Error::missed_write(Some(true), false, r()).code(),
            Code::FailedPrecondition
        );
    }

    #[test]
    fn stale_etag_is_aborted_but_not_retryable_as_is() {
        let err = Error::Aborted(Conflict::StaleEtag);
        assert_eq!(err.code(), Code::Aborted);
        assert!(!err.is_retryable());
    }
}
