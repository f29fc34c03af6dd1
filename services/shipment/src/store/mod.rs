//! Shipment's SQL, one module per aggregate. Every function takes the request's transaction
//! (opened with the row-level-security context) and returns plain Rust types; none commits,
//! none sees a protobuf type.

pub mod events;
pub mod items;
pub mod sagas;
pub mod shipments;
pub mod stops;
pub mod tracking;

use logistics_platform::Error;
use logistics_platform::aip::Idempotency;
use logistics_platform::error::UniqueConstraint;
use time::OffsetDateTime;
use uuid::Uuid;

/// The idempotency claims of this service's Create calls.
pub const IDEMPOTENCY: Idempotency = Idempotency {
    table: "shipment.idempotency_keys",
};

/// Where a page by creation time ended: unix nanoseconds and id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor(pub i128, pub Uuid);

/// The bounds of a creation-time cursor, for binding.
pub fn cursor_parts(
    after: Option<&Cursor>,
) -> Result<(Option<OffsetDateTime>, Option<Uuid>), Error> {
    match after {
        None => Ok((None, None)),
        Some(Cursor(nanos, id)) => {
            let at = OffsetDateTime::from_unix_timestamp_nanos(*nanos)
                .map_err(|_| Error::invalid("page_token", "is not a token of this listing"))?;
            Ok((Some(at), Some(*id)))
        }
    }
}

/// A database error of a write to items or stops: the database's refusal to change a shipment
/// that is no editable draft is FAILED_PRECONDITION, a taken unique value ALREADY_EXISTS.
pub fn db_error(err: sqlx::Error, unique: &[UniqueConstraint]) -> Error {
    if let sqlx::Error::Database(db) = &err
        && matches!(
            db.constraint(),
            Some("shipment_items_draft_only" | "stops_draft_only")
        )
    {
        return Error::precondition(
            "NOT_A_DRAFT",
            "status",
            "only the items and stops of a DRAFT shipment that is not being planned change",
        );
    }
    Error::from_db_with(err, unique)
}
