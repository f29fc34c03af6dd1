//! Key rotation for personal data: re-seals every ciphertext sealed with another key than the
//! keyring's active one (tax ids, contact e-mails and phones, stored Create responses), in
//! batches of their own transactions, while the service keeps serving with both keys
//! configured. Rows are locked `FOR NO KEY UPDATE` and never skipped: a row another transaction
//! holds is waited for, so "nothing left" means nothing left. Values, versions and `updated_at`
//! stay as they were; only the ciphertexts change.
//!
//! Procedure: put the new key first in FIELD_ENCRYPTION_KEYS and keep the old one after it,
//! deploy, run `partner rotate-keys`, and remove the old key once it reports nothing left.

use logistics_platform::Error;
use logistics_platform::context::DbContext;
use logistics_platform::sealing::in_batches;
use sqlx::PgPool;

use crate::sealing::{Column, Sealer};
use crate::store::{self, contacts, partners};

/// What a rotation run changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rotated {
    /// Partners whose tax id was re-sealed.
    pub tax_ids: u64,
    /// Contacts whose e-mail and/or phone were re-sealed.
    pub contacts: u64,
    /// Stored Create responses (idempotent replays) re-sealed.
    pub responses: u64,
}

/// Re-seals everything not sealed with the active key, `batch` rows per transaction.
pub async fn run(pool: &PgPool, sealer: &Sealer, batch: i64) -> Result<Rotated, Error> {
    let active = sealer.keyring().active_key_id().to_owned();
    let tax_ids = in_batches(batch, || async {
        let mut tx = DbContext::system(None).begin(pool).await?;
        let rows = partners::stale_tax_ids(&mut tx, &active, batch).await?;
        for (tenant_id, id, ciphertext) in &rows {
            if let Some(resealed) =
                sealer.reseal(Column::PartnerTaxId, *tenant_id, *id, ciphertext)?
            {
                partners::store_resealed_tax_id(&mut tx, *tenant_id, *id, &resealed).await?;
            }
        }
        tx.commit().await?;
        Ok(rows.len())
    })
    .await?;
    let contacts = in_batches(batch, || async {
        let mut tx = DbContext::system(None).begin(pool).await?;
        let rows = contacts::stale_ciphertexts(&mut tx, &active, batch).await?;
        for (tenant_id, id, email, phone) in &rows {
            let reseal = |column, value: &Option<Vec<u8>>| -> Result<Option<Vec<u8>>, Error> {
                value
                    .as_ref()
                    .map(|c| {
                        sealer
                            .reseal(column, *tenant_id, *id, c)
                            .map(|r| r.unwrap_or_else(|| c.clone()))
                    })
                    .transpose()
            };
            let email = reseal(Column::ContactEmail, email)?;
            let phone = reseal(Column::ContactPhone, phone)?;
            contacts::store_resealed(&mut tx, *tenant_id, *id, email.as_deref(), phone.as_deref())
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    })
    .await?;
    let responses = in_batches(batch, || async {
        let mut tx = DbContext::system(None).begin(pool).await?;
        let rows = store::stale_responses(&mut tx, &active, batch).await?;
        for (tenant_id, method, request_id, sealed) in &rows {
            if let Some(resealed) =
                sealer.reseal_response(*tenant_id, method, *request_id, sealed)?
            {
                store::store_resealed_response(&mut tx, *tenant_id, method, *request_id, &resealed)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(rows.len())
    })
    .await?;
    tracing::info!(tax_ids, contacts, responses, key_id = %active, "personal data re-sealed");
    Ok(Rotated {
        tax_ids,
        contacts,
        responses,
    })
}
