//! The outbox publisher: numbers the committed events of every tenant in the order they were
//! appended, so watchers can read them (see migration 0005 for why events are numbered here and
//! not in the transaction that writes them).
//!
//! Every replica runs one. It looks for unnumbered events every [`PUBLISH_EVERY`]; a tenant's
//! numbering holds the tenant's counter row, so two replicas never number the same events, and
//! one that finds the counter held leaves the events to the other. Each batch it numbers wakes
//! the watchers of every replica (NOTIFY at commit, see `api::watch`).

use std::time::Duration;

use logistics_platform::Error;
use logistics_platform::context::DbContext;
use sqlx::PgPool;

use crate::store::events;

/// How often the publisher looks for events to number: the longest an event of a committed
/// change waits before watchers can see it, beyond the numbering itself.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// Events numbered per transaction.
const BATCH: i32 = 500;

/// Publishes until the task is dropped; a failed round (database down) is logged and retried.
pub async fn publish_forever(pool: PgPool) {
    let mut every = tokio::time::interval(PUBLISH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = publish_once(&pool).await {
            tracing::warn!(error = %e, "publishing outbox events failed");
        }
    }
}

/// Numbers every committed, unnumbered event of every tenant.
async fn publish_once(pool: &PgPool) -> Result<(), Error> {
    let mut tx = DbContext::system(None).begin(pool).await?;
    let tenants = events::unpublished_tenants(&mut tx).await?;
    tx.commit().await?;
    for tenant in tenants {
        loop {
            let mut tx = DbContext::system(Some(tenant)).begin(pool).await?;
            let numbered = events::publish(&mut tx, BATCH).await?;
            tx.commit().await?;
            if numbered < BATCH {
                break;
            }
        }
    }
    Ok(())
}
