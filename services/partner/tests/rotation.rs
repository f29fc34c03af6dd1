//! Rotating the key that seals personal data while the service serves: a deployment with the
//! new key in front reads old and new rows, `partner rotate-keys` re-seals every old value
//! without touching versions, and afterwards the new key alone reads everything. A sealed value
//! moved to another row, column or tenant never opens, and the failure tells nothing.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{KEYS_K2_K1, TestApp, acme, authed, client_at};
use logistics_platform::crypto::Keyring;
use logistics_proto::partner::v1 as pb;
use partner::app::SCHEMA;
use partner::rotation::{self, Rotated};
use partner::sealing::{Column, Sealer};
use prost_types::FieldMask;
use time::OffsetDateTime;
use tonic::{Code, Status};
use uuid::Uuid;

/// The new key alone, as once the rotation is over.
const KEYS_K2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

/// Partners (each with a contact) sealed under k1 before the rotation.
const SEEDED: usize = 24;

/// The key id inside a sealed value: `0x01 | id length | id | 24-byte nonce | ciphertext+tag`.
fn key_id(sealed: &[u8]) -> String {
    assert_eq!(sealed[0], 1, "format version");
    let len = usize::from(sealed[1]);
    assert!(
        sealed.len() >= 2 + len + 24 + 16,
        "sealed value too short: {} bytes",
        sealed.len()
    );
    String::from_utf8(sealed[2..2 + len].to_vec()).unwrap()
}

/// Every sealed value in the database: (column, row id, bytes).
async fn sealed_values(db: &sqlx::PgPool) -> Vec<(String, Uuid, Vec<u8>)> {
    sqlx::query_as(
        "SELECT 'tax_id', id, tax_id_ciphertext FROM partner.partners WHERE tax_id_ciphertext IS NOT NULL \
         UNION ALL SELECT 'email', id, email_ciphertext FROM partner.contacts WHERE email_ciphertext IS NOT NULL \
         UNION ALL SELECT 'phone', id, phone_ciphertext FROM partner.contacts WHERE phone_ciphertext IS NOT NULL \
         ORDER BY 1, 2",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

/// How many sealed values each key id seals, read from the raw bytes; checked against the
/// schema's own `partner.sealed_key_id`, which the rotation selects by.
async fn key_ids(db: &sqlx::PgPool) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, _, sealed) in sealed_values(db).await {
        *counts.entry(key_id(&sealed)).or_default() += 1;
    }
    let in_sql: Vec<(String, i64)> = sqlx::query_as(
        "SELECT k, count(*) FROM ( \
             SELECT partner.sealed_key_id(tax_id_ciphertext) AS k FROM partner.partners WHERE tax_id_ciphertext IS NOT NULL \
             UNION ALL SELECT partner.sealed_key_id(email_ciphertext) FROM partner.contacts WHERE email_ciphertext IS NOT NULL \
             UNION ALL SELECT partner.sealed_key_id(phone_ciphertext) FROM partner.contacts WHERE phone_ciphertext IS NOT NULL \
         ) s GROUP BY k ORDER BY k",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let in_sql: BTreeMap<String, usize> = in_sql
        .into_iter()
        .map(|(k, n)| (k, usize::try_from(n).unwrap()))
        .collect();
    assert_eq!(
        in_sql, counts,
        "partner.sealed_key_id disagrees with the bytes"
    );
    counts
}

/// Version and update time of every partner and contact row.
async fn row_versions(db: &sqlx::PgPool) -> BTreeMap<Uuid, (i32, OffsetDateTime)> {
    let rows: Vec<(Uuid, i32, OffsetDateTime)> = sqlx::query_as(
        "SELECT id, version, updated_at FROM partner.partners \
         UNION ALL SELECT id, version, updated_at FROM partner.contacts",
    )
    .fetch_all(db)
    .await
    .unwrap();
    rows.into_iter().map(|(id, v, at)| (id, (v, at))).collect()
}

/// Creates `SEEDED` partners with a tax id and a contact each (e-mail only, phone only, or
/// both, in turn) through the server at `addr`.
async fn seed(addr: SocketAddr, token: &str) {
    let mut client = client_at(addr).await;
    for i in 0..SEEDED {
        let partner = client
            .create_partner(authed(
                token,
                pb::CreatePartnerRequest {
                    request_id: Uuid::now_v7().to_string(),
                    partner: Some(acme(
                        &format!("Seeded {i:02}"),
                        &format!("DE{:09}", 100 + i),
                    )),
                    roles: vec![pb::PartnerRole::Customer as i32],
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .partner
            .unwrap();
        let (email, phone) = match i % 3 {
            0 => (format!("person{i}@rotation.example"), String::new()),
            1 => (String::new(), format!("+49301{i:06}")),
            _ => (
                format!("person{i}@rotation.example"),
                format!("+49301{i:06}"),
            ),
        };
        client
            .create_contact(authed(
                token,
                pb::CreateContactRequest {
                    request_id: Uuid::now_v7().to_string(),
                    contact: Some(pb::Contact {
                        partner_id: partner.id,
                        name: format!("Person {i}"),
                        email,
                        phone,
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap();
    }
    // Partners without a tax id have nothing to re-seal.
    for name in ["Untaxed One", "Untaxed Two"] {
        client
            .create_partner(authed(
                token,
                pb::CreatePartnerRequest {
                    request_id: String::new(),
                    partner: Some(acme(name, "")),
                    roles: vec![],
                },
            ))
            .await
            .unwrap();
    }
}

/// Every partner and every contact as the server at `addr` answers them, by id, read page by
/// page.
async fn read_all(
    addr: SocketAddr,
    token: &str,
) -> Result<(BTreeMap<String, pb::Partner>, BTreeMap<String, pb::Contact>), Status> {
    let mut client = client_at(addr).await;
    let mut partners = BTreeMap::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_partners(authed(
                token,
                pb::ListPartnersRequest {
                    page_size: 10,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        partners.extend(page.partners.into_iter().map(|p| (p.id.clone(), p)));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let mut contacts = BTreeMap::new();
    for id in partners.keys() {
        let listed = client
            .list_contacts(authed(
                token,
                pb::ListContactsRequest {
                    partner_id: id.clone(),
                    page_size: 100,
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        contacts.extend(listed.contacts.into_iter().map(|c| (c.id.clone(), c)));
    }
    Ok((partners, contacts))
}

async fn get_partner(addr: SocketAddr, token: &str, id: &str) -> Result<pb::Partner, Status> {
    client_at(addr)
        .await
        .get_partner(authed(token, pb::GetPartnerRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().partner.unwrap())
}

async fn get_contact(addr: SocketAddr, token: &str, id: &str) -> Result<pb::Contact, Status> {
    client_at(addr)
        .await
        .get_contact(authed(token, pb::GetContactRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().contact.unwrap())
}

/// Runs `partner rotate-keys` as an operator would, with `keys`; returns what it re-sealed.
async fn rotate_keys_command(app: &TestApp, keys: &str, batch_size: usize) -> Rotated {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_partner"));
    command
        .arg("rotate-keys")
        .env("DATABASE_URL", app.identity.db.url_as(SCHEMA.app_role))
        .env("FIELD_ENCRYPTION_KEYS", keys)
        .env(
            "BLIND_INDEX_KEY",
            STANDARD.encode(app.config.keys.blind_index_key.0),
        )
        .env(
            "PAGE_TOKEN_KEY",
            STANDARD.encode(app.config.keys.page_token_key.0),
        )
        .env("ROTATION_BATCH_SIZE", batch_size.to_string());
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "rotate-keys failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("resealed "))
        .unwrap_or_else(|| panic!("no summary in {stdout}"));
    let count = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .unwrap()
            .parse()
            .unwrap()
    };
    Rotated {
        tax_ids: count("tax_ids="),
        contacts: count("contacts="),
        responses: count("responses="),
    }
}

/// Stored Create responses sealed with `key_id`.
async fn responses_sealed_with(db: &sqlx::PgPool, key_id: &str) -> u64 {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM partner.idempotency_keys \
         WHERE method IN ('CreatePartner', 'CreateContact') \
           AND partner.sealed_key_id(response) = $1",
    )
    .bind(key_id)
    .fetch_one(db)
    .await
    .unwrap();
    n as u64
}

/// A sealer with `keys`, as `rotate-keys` builds one.
fn sealer(app: &TestApp, keys: &str) -> Sealer {
    Sealer::new(
        Keyring::parse(keys).unwrap(),
        app.config.keys.blind_index_key.0,
    )
}

/// Everything a client learns from a failed call, as text.
fn status_text(status: &Status) -> String {
    format!(
        "{} | {} | {:?}",
        status.message(),
        String::from_utf8_lossy(status.details()),
        status.metadata()
    )
}

/// A sealed value that does not open is the server's problem, and says nothing about the value.
#[track_caller]
fn assert_opaque_failure<T: std::fmt::Debug>(result: Result<T, Status>, secrets: &[&str]) {
    let status = result.expect_err("a value that does not open was answered");
    assert!(
        matches!(status.code(), Code::Internal | Code::DataLoss),
        "{status:?}"
    );
    let text = status_text(&status);
    for secret in secrets {
        assert!(!text.contains(secret), "the error tells {secret:?}: {text}");
    }
}

#[tokio::test]
async fn a_rotation_while_serving_reseals_every_value_with_the_new_key_and_changes_nothing_else() {
    let mut app = TestApp::spawn().await;
    assert_eq!(app.config.keys.field_encryption_keys.active_key_id(), "k1");
    let token = app.admin_token.clone();
    seed(app.addr, &token).await;
    let db = app.db().await;
    let sealed_under_k1 = SEEDED + SEEDED / 3 * 4;
    assert_eq!(
        key_ids(&db).await,
        BTreeMap::from([("k1".to_owned(), sealed_under_k1)])
    );
    let versions_before = row_versions(&db).await;
    // Every create of the seed kept its response, sealed: its replays rotate too.
    let responses_before = responses_sealed_with(&db, "k1").await;
    assert!(responses_before >= 2 * SEEDED as u64, "{responses_before}");
    let (partners_before, contacts_before) = read_all(app.addr, &token).await.unwrap();
    assert_eq!(partners_before.len(), SEEDED + 2);
    assert_eq!(contacts_before.len(), SEEDED);

    // The new deployment (k2 first, k1 kept) reads every old row and seals new ones with k2.
    let replica = app.spawn_replica(KEYS_K2_K1).await;
    assert_eq!(
        read_all(replica, &token).await.unwrap(),
        (partners_before.clone(), contacts_before.clone())
    );
    let fresh = client_at(replica)
        .await
        .create_partner(authed(
            &token,
            pb::CreatePartnerRequest {
                request_id: Uuid::now_v7().to_string(),
                partner: Some(acme("Fresh", "DE999999999")),
                roles: vec![],
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .partner
        .unwrap();
    assert_eq!(
        key_ids(&db).await,
        BTreeMap::from([("k1".to_owned(), sealed_under_k1), ("k2".to_owned(), 1)])
    );

    // Calls keep coming while the rotation runs: readers of the old rows, a writer of new ones.
    let stop = Arc::new(AtomicBool::new(false));
    let rotating = Arc::new(AtomicBool::new(false));
    let during = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for reader in 0..2 {
        let (stop, rotating, during) = (stop.clone(), rotating.clone(), during.clone());
        let (token, expected) = (token.clone(), partners_before.clone());
        let contacts = contacts_before.clone();
        workers.push(tokio::spawn(async move {
            let mut calls = 0usize;
            let ids: Vec<&String> = expected.keys().collect();
            let contact_ids: Vec<&String> = contacts.keys().collect();
            while !stop.load(Ordering::Relaxed) {
                let was_rotating = rotating.load(Ordering::Relaxed);
                let i = calls + reader;
                let id = ids[i % ids.len()];
                let read = get_partner(replica, &token, id).await.unwrap();
                assert_eq!(&read, &expected[id], "partner read during the rotation");
                let contact_id = contact_ids[i % contact_ids.len()];
                let read = get_contact(replica, &token, contact_id).await.unwrap();
                assert_eq!(&read, &contacts[contact_id]);
                if i.is_multiple_of(10) {
                    read_all(replica, &token).await.unwrap();
                }
                calls += 1;
                if was_rotating && rotating.load(Ordering::Relaxed) {
                    during.fetch_add(1, Ordering::Relaxed);
                }
            }
            calls
        }));
    }
    {
        let (stop, token, partner_id) = (stop.clone(), token.clone(), fresh.id.clone());
        workers.push(tokio::spawn(async move {
            let mut calls = 0usize;
            let mut client = client_at(replica).await;
            while !stop.load(Ordering::Relaxed) {
                client
                    .create_contact(authed(
                        &token,
                        pb::CreateContactRequest {
                            request_id: Uuid::now_v7().to_string(),
                            contact: Some(pb::Contact {
                                partner_id: partner_id.clone(),
                                name: format!("Written during rotation {calls}"),
                                email: format!("during{calls}@rotation.example"),
                                ..Default::default()
                            }),
                        },
                    ))
                    .await
                    .unwrap();
                calls += 1;
            }
            calls
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    rotating.store(true, Ordering::Relaxed);
    let first = rotate_keys_command(&app, KEYS_K2_K1, 5).await;
    rotating.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        assert!(worker.await.unwrap() > 0, "a worker made no call");
    }
    assert!(
        during.load(Ordering::Relaxed) > 0,
        "no call ran during the rotation"
    );
    assert_eq!(
        first,
        Rotated {
            tax_ids: SEEDED as u64,
            contacts: SEEDED as u64,
            responses: responses_before,
        }
    );
    assert_eq!(responses_sealed_with(&db, "k1").await, 0);

    // Every sealed value now names k2; nothing else about the rows changed.
    let after = key_ids(&db).await;
    assert_eq!(after.keys().collect::<Vec<_>>(), ["k2"], "{after:?}");
    let versions_after = row_versions(&db).await;
    for (id, before) in &versions_before {
        assert_eq!(&versions_after[id], before, "row {id} changed");
    }
    let again = rotation::run(
        &app.identity.db.pool_as(SCHEMA.app_role).await.unwrap(),
        &sealer(&app, KEYS_K2_K1),
        5,
    )
    .await
    .unwrap();
    assert_eq!(again, Rotated::default(), "a second run found work");

    // Both the k2,k1 deployment and one with k2 alone answer every old row as before.
    let only_k2 = app.spawn_replica(KEYS_K2).await;
    for addr in [replica, only_k2] {
        let (partners, contacts) = read_all(addr, &token).await.unwrap();
        for (id, before) in &partners_before {
            assert_eq!(&partners[id], before);
        }
        for (id, before) in &contacts_before {
            assert_eq!(&contacts[id], before);
        }
        assert_eq!(partners[&fresh.id], fresh);
        assert!(contacts.len() > SEEDED, "the contacts written meanwhile");
        // The blind index did not change with the key.
        let found = client_at(addr)
            .await
            .lookup_partner_by_tax_id(authed(
                &token,
                pb::LookupPartnerByTaxIdRequest {
                    country_code: "DE".into(),
                    tax_id: "DE000000107".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .partner
            .unwrap();
        assert_eq!(found.display_name, "Seeded 07");
    }

    // The old deployment, with k1 alone, can no longer open them: the reason to deploy first.
    assert_eq!(app.config.keys.field_encryption_keys.active_key_id(), "k1");
    let old = partners_before
        .values()
        .find(|p| !p.tax_id.is_empty())
        .unwrap();
    assert_opaque_failure(get_partner(app.addr, &token, &old.id).await, &[&old.tax_id]);
}

/// Copies the sealed value in `table.column` of row `from` into `to_column` of row `to` of the
/// same table, as someone with write access to the database could.
async fn copy_sealed(db: &sqlx::PgPool, source: &str, from: &str, to_column: &str, to: &str) {
    let (table, column) = source.split_once('.').unwrap();
    let sql = format!(
        "UPDATE partner.{table} SET {to_column} = \
         (SELECT {column} FROM partner.{table} WHERE id = $1) WHERE id = $2"
    );
    let touched = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::parse_str(from).unwrap())
        .bind(Uuid::parse_str(to).unwrap())
        .execute(db)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(touched, 1, "{source} of {from} copied nowhere");
}

#[tokio::test]
async fn a_sealed_value_copied_to_another_row_column_or_tenant_does_not_open() {
    let logs = logistics_testkit::captured_logs();
    let app = TestApp::spawn().await;
    let token = app.admin_token.clone();
    let one = app.create_partner(acme("One", "DE500000001"), &[]).await;
    let two = app.create_partner(acme("Two", "DE500000002"), &[]).await;
    let contact = |partner_id: &str, n: u32| pb::Contact {
        partner_id: partner_id.to_owned(),
        name: format!("Contact {n}"),
        email: format!("copied{n}@tamper.example"),
        phone: format!("+4930555000{n}"),
        ..Default::default()
    };
    let c1 = app
        .create_contact_as(&token, contact(&one.id, 1))
        .await
        .unwrap();
    let c2 = app
        .create_contact_as(&token, contact(&two.id, 2))
        .await
        .unwrap();
    let (_, b_admin) = app.identity.other_tenant("Tenant B").await.unwrap();
    let three = app
        .create_partner_as(&b_admin, acme("Three", "DE500000003"), &[])
        .await
        .unwrap();
    let secrets = [
        "500000001",
        "500000002",
        "500000003",
        "copied1",
        "copied2",
        "305550001",
        "305550002",
    ];
    let db = app.db().await;
    // One's tax id in Two's row: Two no longer reads, One still does.
    copy_sealed(
        &db,
        "partners.tax_id_ciphertext",
        &one.id,
        "tax_id_ciphertext",
        &two.id,
    )
    .await;
    assert_opaque_failure(get_partner(app.addr, &token, &two.id).await, &secrets);
    assert_eq!(get_partner(app.addr, &token, &one.id).await.unwrap(), one);
    match read_all(app.addr, &token).await {
        Err(status) => assert_opaque_failure::<()>(Err(status), &secrets),
        Ok((partners, _)) => assert_ne!(partners[&two.id].tax_id, one.tax_id),
    }
    // One's tax id in a row of another tenant.
    copy_sealed(
        &db,
        "partners.tax_id_ciphertext",
        &one.id,
        "tax_id_ciphertext",
        &three.id,
    )
    .await;
    assert_opaque_failure(get_partner(app.addr, &b_admin, &three.id).await, &secrets);

    // A contact's e-mail in another contact's row, and in its own phone column.
    copy_sealed(
        &db,
        "contacts.email_ciphertext",
        &c1.id,
        "email_ciphertext",
        &c2.id,
    )
    .await;
    assert_opaque_failure(get_contact(app.addr, &token, &c2.id).await, &secrets);
    copy_sealed(
        &db,
        "contacts.email_ciphertext",
        &c1.id,
        "phone_ciphertext",
        &c1.id,
    )
    .await;
    assert_opaque_failure(get_contact(app.addr, &token, &c1.id).await, &secrets);

    // Garbage where a sealed value should be.
    sqlx::query("UPDATE partner.partners SET tax_id_ciphertext = '\\x0102ff'::bytea WHERE id = $1")
        .bind(Uuid::parse_str(&one.id).unwrap())
        .execute(&db)
        .await
        .unwrap();
    assert_opaque_failure(get_partner(app.addr, &token, &one.id).await, &secrets);

    // The operator learns which row failed; nobody learns the values.
    let captured = logs.contents();
    assert!(
        captured.contains("request failed"),
        "the failures were not logged"
    );
    for secret in secrets {
        assert!(!captured.contains(secret), "the logs tell {secret:?}");
    }
}

#[tokio::test]
async fn a_rotation_that_reports_nothing_resealed_leaves_no_value_on_the_old_key() {
    let app = TestApp::spawn().await;
    let partner = app.create_partner(acme("Busy", "DE600000001"), &[]).await;
    let db = app.db().await;
    assert_eq!(key_ids(&db).await, BTreeMap::from([("k1".to_owned(), 1)]));

    // A contact being created for the partner meanwhile: its foreign-key check holds a
    // KEY SHARE lock on the partner row until that request commits.
    let mut in_flight = db.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM partner.partners WHERE id = $1 FOR KEY SHARE")
        .bind(Uuid::parse_str(&partner.id).unwrap())
        .execute(&mut *in_flight)
        .await
        .unwrap();
    let pool = app.identity.db.pool_as(SCHEMA.app_role).await.unwrap();
    let sealer = sealer(&app, KEYS_K2_K1);
    let run = tokio::spawn(async move { rotation::run(&pool, &sealer, 100).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    in_flight.rollback().await.unwrap();
    let done = run.await.unwrap().unwrap();

    // "Remove the old key once it reports nothing left": a run that re-sealed nothing must
    // mean nothing is left on k1, or the partner becomes unreadable once k1 is gone.
    let left = key_ids(&db).await.get("k1").copied().unwrap_or(0);
    assert!(
        done != Rotated::default() || left == 0,
        "the run reported {done:?} with {left} value(s) still sealed with k1"
    );
}

#[tokio::test]
async fn a_country_change_racing_a_rotation_does_not_put_back_the_old_ciphertext() {
    let mut app = TestApp::spawn().await;
    let partner = app.create_partner(acme("Mover", "DE700000001"), &[]).await;
    let id = Uuid::parse_str(&partner.id).unwrap();
    let tenant_id = app.identity.tenant_id;
    let replica = app.spawn_replica(KEYS_K2_K1).await;
    let db = app.db().await;

    // A rotation batch has locked the row (SELECT ... FOR UPDATE) and is re-sealing it...
    let mut batch = db.begin().await.unwrap();
    let old: Vec<u8> = sqlx::query_scalar(
        "SELECT tax_id_ciphertext FROM partner.partners WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_one(&mut *batch)
    .await
    .unwrap();
    assert_eq!(key_id(&old), "k1");

    // ...when a request on the new deployment moves the partner to another country: it reads
    // the row (not blocked), then waits for the lock to write.
    let token = app.admin_token.clone();
    let update = tokio::spawn(async move {
        client_at(replica)
            .await
            .update_partner(authed(
                &token,
                pb::UpdatePartnerRequest {
                    partner: Some(pb::Partner {
                        id: id.to_string(),
                        country_code: "AT".into(),
                        ..Default::default()
                    }),
                    update_mask: Some(FieldMask {
                        paths: vec!["country_code".into()],
                    }),
                },
            ))
            .await
            .map(|r| r.into_inner().partner.unwrap())
    });
    let mut waiting = 0i64;
    for _ in 0..200 {
        waiting = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(waiting, 1, "the update never waited for the row");

    // The batch stores the re-sealed value as `rotate-keys` does, and commits.
    let resealed = sealer(&app, KEYS_K2_K1)
        .reseal(Column::PartnerTaxId, tenant_id, id, &old)
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE partner.partners SET tax_id_ciphertext = $2 WHERE id = $1")
        .bind(id)
        .bind(&resealed)
        .execute(&mut *batch)
        .await
        .unwrap();
    batch.commit().await.unwrap();

    let moved = update.await.unwrap().unwrap();
    assert_eq!(moved.country_code, "AT");
    assert_eq!(moved.tax_id, "DE700000001");
    let now: Vec<u8> =
        sqlx::query_scalar("SELECT tax_id_ciphertext FROM partner.partners WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(key_id(&now), "k2", "the re-seal was undone");
    let only_k2 = app.spawn_replica(KEYS_K2).await;
    assert_eq!(
        get_partner(only_k2, &app.admin_token, &partner.id)
            .await
            .unwrap()
            .tax_id,
        "DE700000001"
    );
}
