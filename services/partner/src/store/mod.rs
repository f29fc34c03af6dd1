//! Partner's SQL, one module per aggregate. Every function takes the request's transaction
//! (opened with the row-level-security context) and returns plain Rust types; none commits,
//! none sees a protobuf type or a plaintext personal field.

pub mod addresses;
pub mod contacts;
pub mod partners;
pub mod profiles;

use logistics_platform::Error;
use logistics_platform::aip::Idempotency;
use logistics_platform::context::Tx;
use uuid::Uuid;

/// The idempotency claims of this service's Create calls.
pub const IDEMPOTENCY: Idempotency = Idempotency {
    table: "partner.idempotency_keys",
};

/// The Create methods whose stored responses carry personal data and are therefore sealed.
pub const SEALED_RESPONSES: &[&str] = &["CreatePartner", "CreateContact"];

/// Sealed stored responses sealed with another key than `active_key_id`, across tenants
/// (rotation context), locked for re-sealing: tenant, method, request id, sealed response.
pub async fn stale_responses(
    tx: &mut Tx,
    active_key_id: &str,
    limit: i64,
) -> Result<Vec<(Uuid, String, Uuid, Vec<u8>)>, Error> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, method, request_id, response FROM partner.idempotency_keys \
         WHERE method = ANY($3) AND response IS NOT NULL \
           AND partner.sealed_key_id(response) <> $1 \
         ORDER BY tenant_id, method, request_id LIMIT $2 FOR NO KEY UPDATE",
    )
    .bind(active_key_id)
    .bind(limit)
    .bind(SEALED_RESPONSES)
    .fetch_all(&mut **tx)
    .await?)
}

/// Stores a re-sealed response.
pub async fn store_resealed_response(
    tx: &mut Tx,
    tenant_id: Uuid,
    method: &str,
    request_id: Uuid,
    sealed: &[u8],
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE partner.idempotency_keys SET response = $4 \
         WHERE tenant_id = $1 AND method = $2 AND request_id = $3",
    )
    .bind(tenant_id)
    .bind(method)
    .bind(request_id)
    .bind(sealed)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
