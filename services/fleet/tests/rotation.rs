//! Key rotation: `fleet rotate-keys` re-seals every licence number, phone and stored
//! CreateDriver response with the new key, changes no version, and leaves nothing behind.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, driver};
use fleet::rotation::{self, Rotated};
use fleet::schema::SCHEMA;
use fleet::sealing::{Column, Sealer};
use logistics_platform::crypto::Keyring;
use uuid::Uuid;

const K2_K1: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=,k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const K2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

async fn key_ids(db: &sqlx::PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT fleet.sealed_key_id(v), count(*) FROM (\
             SELECT licence_number_ciphertext AS v FROM fleet.drivers \
             UNION ALL SELECT phone_ciphertext FROM fleet.drivers WHERE phone_ciphertext IS NOT NULL \
             UNION ALL SELECT response FROM fleet.idempotency_keys WHERE method = 'CreateDriver') s \
         GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

#[tokio::test]
async fn rotation_reseals_licences_phones_and_replies_with_the_new_key_and_nothing_else() {
    let app = TestApp::spawn().await;
    for i in 0..7 {
        app.create_driver(driver(&format!("Driver {i}"))).await;
    }
    let db = app.db().await;
    assert_eq!(key_ids(&db).await, [("k1".to_owned(), 21)]);
    let versions: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT id, version FROM fleet.drivers ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();

    let runtime = app.identity.db.pool_as(SCHEMA.app_role).await.unwrap();
    let sealer = Sealer::new(Keyring::parse(K2_K1).unwrap(), [7; 32]);
    let done = rotation::run(&runtime, &sealer, 3).await.unwrap();
    assert_eq!(
        done,
        Rotated {
            drivers: 7,
            responses: 7
        }
    );
    assert_eq!(key_ids(&db).await, [("k2".to_owned(), 21)]);
    let after: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT id, version FROM fleet.drivers ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(after, versions, "a re-seal is not a change");
    assert_eq!(
        rotation::run(&runtime, &sealer, 3).await.unwrap(),
        Rotated::default()
    );

    // The new key alone opens everything.
    let only_k2 = Sealer::new(Keyring::parse(K2).unwrap(), [7; 32]);
    let rows: Vec<(Uuid, Uuid, Vec<u8>)> =
        sqlx::query_as("SELECT tenant_id, id, licence_number_ciphertext FROM fleet.drivers")
            .fetch_all(&db)
            .await
            .unwrap();
    for (tenant, id, sealed) in rows {
        let licence = only_k2
            .open(Column::DriverLicenceNumber, tenant, id, &sealed)
            .unwrap();
        assert!(licence.starts_with("DL"), "{licence}");
    }
}
