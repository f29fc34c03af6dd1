//! Key rotation for personal data: re-seals every licence number, phone and stored
//! CreateDriver response sealed with another key than the keyring's active one, in batches of
//! their own transactions, while the service keeps serving with both keys configured. Rows are
//! locked `FOR NO KEY UPDATE` and never skipped, so "nothing left" means nothing left; versions
//! and `updated_at` stay as they were.
//!
//! Procedure: put the new key first in FIELD_ENCRYPTION_KEYS and keep the old one after it,
//! deploy, run `fleet rotate-keys`, and remove the old key once it reports nothing left.

use logistics_platform::Error;
use logistics_platform::context::DbContext;
use logistics_platform::sealing::in_batches;
use sqlx::PgPool;
use uuid::Uuid;

use crate::sealing::{Column, Sealer};

/// What a rotation run changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    /// Drivers whose licence number and/or phone were re-sealed.
    pub drivers: u64,
    /// Stored CreateDriver responses re-sealed.
    pub responses: u64,
}

type StaleDriver = (Uuid, Uuid, Vec<u8>, Option<Vec<u8>>);

/// Re-seals everything not sealed with the active key, `batch` rows per transaction.
pub async fn run(pool: &PgPool, sealer: &Sealer, batch: i64) -> Result<Rotated, Error> {
    let active = sealer.keyring().active_key_id().to_owned();
    let drivers = in_batches(batch, || async {
        let mut tx = DbContext::system(None).begin(pool).await?;
        let rows: Vec<StaleDriver> = sqlx::query_as(
            "SELECT tenant_id, id, licence_number_ciphertext, phone_ciphertext FROM fleet.drivers \
             WHERE fleet.sealed_key_id(licence_number_ciphertext) <> $1 \
                OR fleet.sealed_key_id(phone_ciphertext) <> $1 \
             ORDER BY tenant_id, id LIMIT $2 FOR NO KEY UPDATE",
        )
        .bind(&active)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        for (tenant_id, id, licence, phone) in &rows {
            let licence = sealer
                .reseal(Column::DriverLicenceNumber, *tenant_id, *id, licence)?
                .unwrap_or_else(|| licence.clone());
            let phone = match phone {
                Some(p) => Some(
                    sealer
                        .reseal(Column::DriverPhone, *tenant_id, *id, p)?
                        .unwrap_or_else(|| p.clone()),
                ),
                None => None,
            };
            sqlx::query(
                "UPDATE fleet.drivers SET licence_number_ciphertext = $3, phone_ciphertext = $4 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant_id)
            .bind(id)
            .bind(licence)
            .bind(phone)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    })
    .await?;
    let responses = in_batches(batch, || async {
        let mut tx = DbContext::system(None).begin(pool).await?;
        let rows: Vec<(Uuid, String, Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT tenant_id, method, request_id, response FROM fleet.idempotency_keys \
             WHERE method = 'CreateDriver' AND response IS NOT NULL \
               AND fleet.sealed_key_id(response) <> $1 \
             ORDER BY tenant_id, method, request_id LIMIT $2 FOR NO KEY UPDATE",
        )
        .bind(&active)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        for (tenant_id, method, request_id, sealed) in &rows {
            if let Some(resealed) =
                sealer.reseal_response(*tenant_id, method, *request_id, sealed)?
            {
                sqlx::query(
                    "UPDATE fleet.idempotency_keys SET response = $4 \
                     WHERE tenant_id = $1 AND method = $2 AND request_id = $3",
                )
                .bind(tenant_id)
                .bind(method)
                .bind(request_id)
                .bind(resealed)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(rows.len())
    })
    .await?;
    let done = Rotated { drivers, responses };
    tracing::info!(drivers, responses, key_id = %active, "personal data re-sealed");
    Ok(done)
}
