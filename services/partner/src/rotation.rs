//! Key rotation for personal data: re-seals every ciphertext sealed with another key than the
//! keyring's active one (tax ids, contact e-mails and phones, stored Create responses), in
//! batches of their own transactions, while the service keeps serving with both keys
//! configured. Rows are locked `FOR NO KEY UPDATE` and never skipped: a row another transaction
//! holds is waited for, so "nothing left" means nothing left. Values, versions and `updated_at`
//! stay as they were; only the ciphertexts change.
//!
//! Procedure: put the new key first in FIELD_ENCRYPTION_KEYS and keep the old one after it,
//! deploy, run `partner rotate-keys`, and remove the old key once it reports nothing left.

use logistics_platform::context::DbContext;
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
pub async fn run(pool: &PgPool, sealer: &Sealer, batch: i64) -> anyhow::Result<Rotated> {
    let active = sealer.keyring().active_key_id().to_owned();
    let mut done = Rotated::default();
    loop {
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
        done.tax_ids += rows.len() as u64;
        if (rows.len() as i64) < batch {
            break;
        }
    }
    loop {
        let mut tx = DbContext::system(None).begin(pool).await?;
        let rows = contacts::stale_ciphertexts(&mut tx, &active, batch).await?;
        for (tenant_id, id, email, phone) in &rows {
            let email = match email {
                Some(c) => Some(
                    sealer
                        .reseal(Column::ContactEmail, *tenant_id, *id, c)?
                        .unwrap_or_else(|| c.clone()),
                ),
                None => None,
            };
            let phone = match phone {
                Some(c) => Some(
                    sealer
                        .reseal(Column::ContactPhone, *tenant_id, *id, c)?
                        .unwrap_or_else(|| c.clone()),
                ),
                None => None,
            };
            contacts::store_resealed(&mut tx, *tenant_id, *id, email.as_deref(), phone.as_deref())
                .await?;
        }
        tx.commit().await?;
        done.contacts += rows.len() as u64;
        if (rows.len() as i64) < batch {
            break;
        }
    }
    loop {
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
        done.responses += rows.len() as u64;
        if (rows.len() as i64) < batch {
            break;
        }
    }
    tracing::info!(
        tax_ids = done.tax_ids,
        contacts = done.contacts,
        responses = done.responses,
        key_id = %active,
        "personal data re-sealed"
    );
    Ok(done)
}
