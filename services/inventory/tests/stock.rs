//! Stock end to end: the ledger and levels move together, shortages are refused line by line
//! with nothing applied, retries change nothing, fifty simultaneous reservations never oversell,
//! and the database keeps the ledger append-only and partitioned ahead.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    TestApp, authed, decimal, expect_code, preconditions, reserve_request, violated_fields,
};
use logistics_proto::inventory::v1 as pb;
use tonic::Code;
use uuid::Uuid;

fn pairs(kinds: &[(&str, &str)]) -> Vec<(String, String)> {
    kinds
        .iter()
        .map(|(k, s)| ((*k).to_owned(), (*s).to_owned()))
        .collect()
}

fn level(on_hand: &str, reserved: &str, available: &str) -> (String, String, String) {
    (
        on_hand.to_owned(),
        reserved.to_owned(),
        available.to_owned(),
    )
}

#[tokio::test]
async fn receipts_issues_adjustments_and_transfers_move_levels_and_ledger_together() {
    let app = TestApp::spawn().await;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let steel = app.material("STEEL-1").await;
    let mut client = app.client().await;

    let received = app.receive(&hamburg, &steel, "100.5").await;
    let movement = received.movement.unwrap();
    assert_eq!(movement.kind, pb::MovementKind::Receipt as i32);
    assert_eq!(movement.on_hand_after.unwrap().value, "100.5");
    assert_eq!(
        app.level(&hamburg, &steel).await,
        level("100.5", "0", "100.5")
    );

    client
        .issue_stock(authed(
            &app.admin_token,
            pb::IssueStockRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                warehouse_id: hamburg.id.clone(),
                material_id: steel.id.clone(),
                quantity: decimal("0.5"),
                reference: Some(pb::Reference {
                    r#type: "sales_order".into(),
                    id: Uuid::now_v7().to_string(),
                }),
                reason: String::new(),
            },
        ))
        .await
        .unwrap();
    client
        .adjust_stock(authed(
            &app.admin_token,
            pb::AdjustStockRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                warehouse_id: hamburg.id.clone(),
                material_id: steel.id.clone(),
                change: decimal("-10"),
                reason: "cycle count".into(),
                reference: None,
            },
        ))
        .await
        .unwrap();
    let transfer = client
        .transfer_stock(authed(
            &app.admin_token,
            pb::TransferStockRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                from_warehouse_id: hamburg.id.clone(),
                to_warehouse_id: berlin.id.clone(),
                material_id: steel.id.clone(),
                quantity: decimal("40"),
                reference: None,
                reason: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        transfer
            .movements
            .iter()
            .map(|m| m.kind)
            .collect::<Vec<_>>(),
        [
            pb::MovementKind::TransferOut as i32,
            pb::MovementKind::TransferIn as i32
        ]
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("50", "0", "50"));
    assert_eq!(app.level(&berlin, &steel).await, level("40", "0", "40"));

    let ledger = client
        .list_stock_movements(authed(
            &app.admin_token,
            pb::ListStockMovementsRequest {
                warehouse_id: hamburg.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .movements;
    assert_eq!(
        ledger
            .iter()
            .map(|m| m.on_hand_change.clone().unwrap().value)
            .collect::<Vec<_>>(),
        ["-40", "-10", "-0.5", "100.5"],
        "newest first"
    );
    assert_eq!(app.check_ledger().await, (2, 0));
}

#[tokio::test]
async fn an_issue_or_adjustment_beyond_the_available_stock_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "5").await;
    app.reserve(Uuid::now_v7(), &[(&hamburg, &steel, "3")])
        .await
        .unwrap();
    let mut client = app.client().await;
    let err = expect_code(
        client
            .issue_stock(authed(
                &app.admin_token,
                pb::IssueStockRequest {
                    idempotency_key: Uuid::now_v7().to_string(),
                    warehouse_id: hamburg.id.clone(),
                    material_id: steel.id.clone(),
                    quantity: decimal("3"),
                    reference: None,
                    reason: String::new(),
                },
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("INSUFFICIENT_STOCK", "stock_level")])
    );
    let err = expect_code(
        client
            .adjust_stock(authed(
                &app.admin_token,
                pb::AdjustStockRequest {
                    idempotency_key: Uuid::now_v7().to_string(),
                    warehouse_id: hamburg.id.clone(),
                    material_id: steel.id.clone(),
                    change: decimal("-2.5"),
                    reason: "broken".into(),
                    reference: None,
                },
            ))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("INSUFFICIENT_STOCK", "stock_level")])
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("5", "3", "2"));
    assert_eq!(app.check_ledger().await, (1, 0));
}

#[tokio::test]
async fn an_adjustment_needs_a_reason_and_bad_operations_list_every_violation() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    let err = expect_code(
        client
            .adjust_stock(authed(
                &app.admin_token,
                pb::AdjustStockRequest {
                    idempotency_key: String::new(),
                    warehouse_id: "x".into(),
                    material_id: String::new(),
                    change: decimal("0"),
                    reason: " ".into(),
                    reference: Some(pb::Reference {
                        r#type: "Bad Type".into(),
                        id: "nope".into(),
                    }),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "idempotency_key",
            "warehouse_id",
            "material_id",
            "change",
            "reference.type",
            "reference.id",
            "reason"
        ]
    );
    let err = expect_code(
        client
            .reserve_stock(authed(
                &app.admin_token,
                pb::ReserveStockRequest {
                    idempotency_key: Uuid::now_v7().to_string(),
                    shipment_id: Uuid::now_v7().to_string(),
                    lines: vec![],
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["lines"]);
}

#[tokio::test]
async fn a_reservation_is_all_or_nothing_with_one_detail_per_short_line() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let (steel, copper, zinc) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
        app.material("ZINC-1").await,
    );
    app.receive(&hamburg, &steel, "10").await;
    app.receive(&hamburg, &copper, "1").await;
    let err = expect_code(
        app.reserve(
            Uuid::now_v7(),
            &[
                (&hamburg, &steel, "4"),
                (&hamburg, &copper, "2"),
                (&hamburg, &zinc, "1"),
            ],
        )
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[
            ("INSUFFICIENT_STOCK", "lines[1]"),
            ("INSUFFICIENT_STOCK", "lines[2]")
        ])
    );
    assert!(err.message().contains("precondition"));
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "0", "10"));
    let reservations: i64 = sqlx::query_scalar("SELECT count(*) FROM inventory.reservations")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(reservations, 0, "nothing of the refused request stays");
}

#[tokio::test]
async fn reserving_again_for_a_shipment_reserves_once_and_a_retried_receipt_receives_once() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    let mut client = app.client().await;
    let receipt = pb::ReceiveStockRequest {
        idempotency_key: Uuid::now_v7().to_string(),
        warehouse_id: hamburg.id.clone(),
        material_id: steel.id.clone(),
        quantity: decimal("10"),
        reference: None,
        reason: String::new(),
    };
    let first = client
        .receive_stock(authed(&app.admin_token, receipt.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .receive_stock(authed(&app.admin_token, receipt.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "0", "10"));
    let reused = expect_code(
        client
            .receive_stock(authed(
                &app.admin_token,
                pb::ReceiveStockRequest {
                    quantity: decimal("11"),
                    ..receipt
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&reused), ["idempotency_key"]);
    // A key is unique per tenant across operations: an issue cannot reuse the receipt's.
    let other_operation = expect_code(
        client
            .issue_stock(authed(
                &app.admin_token,
                pb::IssueStockRequest {
                    idempotency_key: first.movement.as_ref().unwrap().idempotency_key.clone(),
                    warehouse_id: hamburg.id.clone(),
                    material_id: steel.id.clone(),
                    quantity: decimal("10"),
                    reference: None,
                    reason: String::new(),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&other_operation), ["idempotency_key"]);

    let shipment = Uuid::now_v7();
    let request = reserve_request(shipment, &[(&hamburg, &steel, "4")]);
    let first = client
        .reserve_stock(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let retried = client
        .reserve_stock(authed(&app.admin_token, request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, retried);
    // The same shipment asking again under a new key still reserves once.
    let asked_again = app
        .reserve(shipment, &[(&hamburg, &steel, "4")])
        .await
        .unwrap();
    assert_eq!(asked_again.reservations, first.reservations);
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "4", "6"));
    let movements: i64 = sqlx::query_scalar("SELECT count(*) FROM inventory.stock_movements")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(movements, 2, "one receipt and one reservation");
    assert_eq!(app.check_ledger().await, (1, 0));
}

#[tokio::test]
async fn releasing_gives_stock_back_and_consuming_ships_it() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    app.receive(&hamburg, &steel, "10").await;
    app.receive(&hamburg, &copper, "10").await;
    let shipment = Uuid::now_v7();
    app.reserve(
        shipment,
        &[(&hamburg, &steel, "4"), (&hamburg, &copper, "3")],
    )
    .await
    .unwrap();
    let mut client = app.client().await;
    let released = client
        .release_reservation(authed(
            &app.admin_token,
            pb::ReleaseReservationRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                shipment_id: shipment.to_string(),
                warehouse_id: String::new(),
                material_id: copper.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .reservations;
    assert_eq!(released.len(), 1);
    assert_eq!(released[0].status, pb::ReservationStatus::Released as i32);
    assert_eq!(app.level(&hamburg, &copper).await, level("10", "0", "10"));

    let consumed = client
        .consume_reservation(authed(
            &app.admin_token,
            pb::ConsumeReservationRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                shipment_id: shipment.to_string(),
                warehouse_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .reservations;
    assert_eq!(consumed.len(), 1);
    assert_eq!(app.level(&hamburg, &steel).await, level("6", "0", "6"));
    let all = client
        .list_reservations(authed(
            &app.admin_token,
            pb::ListReservationsRequest {
                shipment_id: shipment.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .reservations;
    let mut statuses: Vec<i32> = all.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            pb::ReservationStatus::Released as i32,
            pb::ReservationStatus::Consumed as i32
        ]
    );
    // A consumed line cannot be reserved again for the same shipment.
    let err = expect_code(
        app.reserve(shipment, &[(&hamburg, &steel, "1")]).await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&err),
        pairs(&[("ALREADY_CONSUMED", "lines[0]")])
    );
    assert_eq!(app.check_ledger().await, (2, 0));
}

#[tokio::test]
async fn fifty_simultaneous_reservations_never_oversell() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    // 100 units, each reservation asks for 7: exactly 14 can be served.
    app.receive(&hamburg, &steel, "100").await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
    let mut calls = Vec::new();
    for _ in 0..50 {
        let mut client = app.client().await;
        let request = reserve_request(Uuid::now_v7(), &[(&hamburg, &steel, "7")]);
        let token = app.admin_token.clone();
        let barrier = barrier.clone();
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            // Fifty calls queue for one level's lock through a small pool: on a slow machine
            // some wait past the pool's acquire timeout and are told to retry, as a client would.
            let mut tries = 1;
            loop {
                match client.reserve_stock(authed(&token, request.clone())).await {
                    Err(status) if status.code() == Code::Unavailable && tries < 10 => tries += 1,
                    answer => return answer,
                }
            }
        }));
    }
    let mut ok = 0;
    for result in futures::future::join_all(calls).await {
        match result.unwrap() {
            Ok(_) => ok += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(
                    preconditions(&status),
                    pairs(&[("INSUFFICIENT_STOCK", "lines[0]")])
                );
            }
        }
    }
    assert_eq!(ok, 14);
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "98", "2"));
    let held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM inventory.reservations WHERE status = 'held'")
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert_eq!(held, 14);
    assert_eq!(app.check_ledger().await, (1, 0));
}

#[tokio::test]
async fn the_ledger_is_append_only_for_the_runtime_role_and_levels_change_only_with_it() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "10").await;
    let runtime = app
        .identity
        .db
        .pool_as(inventory::schema::SCHEMA.app_role)
        .await
        .unwrap();
    let mut tx = app.runtime_tx().await;
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM inventory.stock_movements")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(visible, 1, "the runtime role reads its tenant's ledger");
    tx.rollback().await.unwrap();
    for sql in [
        "UPDATE inventory.stock_movements SET on_hand_change = 1000",
        "DELETE FROM inventory.stock_movements",
        "UPDATE inventory.stock_levels SET on_hand = 1000",
        "INSERT INTO inventory.stock_levels (tenant_id, warehouse_id, material_id) \
         VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid())",
    ] {
        let mut tx = app.runtime_tx().await;
        let err = sqlx::query(sql).execute(&mut *tx).await.unwrap_err();
        assert_eq!(
            err.as_database_error().unwrap().code().as_deref(),
            Some("42501"),
            "{sql}"
        );
    }
    // Partitions: neither readable nor writable directly.
    let partition: String = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'inventory.stock_movements'::regclass ORDER BY 1 LIMIT 1",
    )
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    let err = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM inventory.{partition}"
    )))
    .execute(&runtime)
    .await
    .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    assert_eq!(app.level(&hamburg, &steel).await.0, "10");
}

#[tokio::test]
async fn move_stock_many_applies_its_entries_in_order_and_refuses_arrays_of_different_lengths() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "10").await;
    let (warehouse_id, material_id): (Uuid, Uuid) =
        (hamburg.id.parse().unwrap(), steel.id.parse().unwrap());
    let runtime = app
        .identity
        .db
        .pool_as(inventory::schema::SCHEMA.app_role)
        .await
        .unwrap();
    // Entries are applied in array order, each seeing the one before, and come back in it.
    let call = |arrays: [&str; 6]| {
        format!(
            "SELECT kind, on_hand_after::text FROM inventory.move_stock_many({}, '', NULL, NULL, \
                 gen_random_uuid())",
            arrays.join(", ")
        )
    };
    let two = [
        "ARRAY[gen_random_uuid(), gen_random_uuid()]",
        "ARRAY[$1, $1]::uuid[]",
        "ARRAY[$2, $2]::uuid[]",
        "ARRAY['issue', 'receipt']",
        "ARRAY[-4, 5]::numeric[]",
        "ARRAY[0, 0]::numeric[]",
    ];
    let mut tx = app.runtime_tx().await;
    let applied: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(call(two)))
        .bind(warehouse_id)
        .bind(material_id)
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(applied, pairs(&[("issue", "6.000"), ("receipt", "11.000")]));
    tx.rollback().await.unwrap();

    // One array shorter than the others, whichever: refused, nothing applied.
    let one = [
        "ARRAY[gen_random_uuid()]",
        "ARRAY[$1]::uuid[]",
        "ARRAY[$2]::uuid[]",
        "ARRAY['issue']",
        "ARRAY[-4]::numeric[]",
        "ARRAY[0]::numeric[]",
    ];
    for short in 0..one.len() {
        let mut arrays = two;
        arrays[short] = one[short];
        let mut tx = app.runtime_tx().await;
        let err = sqlx::query(sqlx::AssertSqlSafe(call(arrays)))
            .bind(warehouse_id)
            .bind(material_id)
            .execute(&mut *tx)
            .await
            .unwrap_err();
        let db = err.as_database_error().unwrap();
        assert_eq!(db.code().as_deref(), Some("22023"), "array {short}: {db}");
        assert!(
            db.message().contains("differ in length"),
            "array {short}: {db}"
        );
        tx.rollback().await.unwrap();
    }
    // Without a tenant, move_stock() refuses as it does when called alone.
    let err = sqlx::query(sqlx::AssertSqlSafe(call(two)))
        .bind(warehouse_id)
        .bind(material_id)
        .execute(&runtime)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "0", "10"));
    assert_eq!(app.check_ledger().await, (1, 0));
}

#[tokio::test]
async fn the_ledger_has_partitions_for_this_month_and_the_next_ones() {
    let app = TestApp::spawn().await;
    let months: Vec<String> = sqlx::query_scalar(
        "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC') + (n || ' month')::interval, \
                'YYYY_MM') FROM generate_series(0, 3) n",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'inventory.stock_movements'::regclass ORDER BY 1",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    for month in months {
        assert!(
            partitions.contains(&format!("stock_movements_{month}")),
            "{month} missing from {partitions:?}"
        );
    }
    // Creating them again creates nothing, and the runtime role may ask for it.
    let runtime = app
        .identity
        .db
        .pool_as(inventory::schema::SCHEMA.app_role)
        .await
        .unwrap();
    assert_eq!(
        inventory::schema::ensure_partitions(&runtime)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_commit_that_would_leave_reserved_unlike_the_held_reservations_is_refused() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "10").await;
    let shipment = Uuid::now_v7();
    app.reserve(shipment, &[(&hamburg, &steel, "4")])
        .await
        .unwrap();
    // Releasing the reservation row without its ledger entry: the deferred check refuses it.
    let mut tx = app.runtime_tx().await;
    sqlx::query("UPDATE inventory.reservations SET status = 'released'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = tx.commit().await.unwrap_err();
    let db = err.as_database_error().unwrap();
    assert_eq!(db.code().as_deref(), Some("23514"));
    assert_eq!(db.constraint(), Some("stock_levels_reserved_matches_held"));
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "4", "6"));
}

/// Each ledger kind moves what it says and nothing else, whoever writes the entry: the ledger's
/// CHECK (a function since migration 0010) refuses an entry that does not, and with it the
/// level change of the same statement.
#[tokio::test]
async fn the_ledger_refuses_an_entry_that_moves_other_than_its_kind_says() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "10").await;
    // (kind, on-hand change, reserved change, reason, accepted), from 10 on hand, 3 reserved.
    let cases = [
        ("receipt", "5", "0", "", true),
        ("receipt", "-5", "0", "", false),
        ("receipt", "5", "1", "", false),
        ("issue", "-5", "0", "", true),
        ("issue", "5", "0", "", false),
        ("adjustment", "-1", "0", "counted", true),
        ("adjustment", "-1", "0", "", false),
        ("adjustment", "0", "0", "counted", false),
        ("transfer_out", "-2", "0", "", true),
        ("transfer_out", "2", "0", "", false),
        ("transfer_in", "2", "0", "", true),
        ("transfer_in", "0", "2", "", false),
        ("reserve", "0", "3", "", true),
        ("reserve", "3", "3", "", false),
        ("reserve", "0", "-3", "", false),
        ("release", "0", "-3", "", true),
        ("release", "0", "3", "", false),
        ("consume", "-3", "-3", "", true),
        ("consume", "-3", "-2", "", false),
        ("consume", "0", "0", "", false),
        ("stolen", "-1", "0", "", false),
    ];
    for (kind, on_hand, reserved, reason, accepted) in cases {
        let mut tx = app.runtime_tx().await;
        // Something reserved, so that every case moves the level within its own CHECKs and
        // only the kind's rule can refuse it (the reservation row is not the point here: the
        // transaction is rolled back before the deferred check).
        sqlx::query(
            "SELECT inventory.move_stock(gen_random_uuid(), $1, $2, 'reserve', 0, 3, '', \
                 NULL, NULL, gen_random_uuid())",
        )
        .bind(Uuid::parse_str(&hamburg.id).unwrap())
        .bind(Uuid::parse_str(&steel.id).unwrap())
        .execute(&mut *tx)
        .await
        .unwrap();
        let moved = sqlx::query(
            "SELECT inventory.move_stock(gen_random_uuid(), $1, $2, $3, $4::numeric, $5::numeric, \
                 $6, NULL, NULL, gen_random_uuid())",
        )
        .bind(Uuid::parse_str(&hamburg.id).unwrap())
        .bind(Uuid::parse_str(&steel.id).unwrap())
        .bind(kind)
        .bind(on_hand)
        .bind(reserved)
        .bind(reason)
        .execute(&mut *tx)
        .await;
        match moved {
            Ok(_) => assert!(
                accepted,
                "{kind} {on_hand}/{reserved} {reason:?} was accepted"
            ),
            Err(err) => {
                let db = err.as_database_error().unwrap();
                assert!(!accepted, "{kind} {on_hand}/{reserved} {reason:?}: {db}");
                assert_eq!(db.code().as_deref(), Some("23514"), "{kind}: {db}");
                assert_eq!(
                    db.constraint(),
                    Some("stock_movements_kind_changes"),
                    "{kind}"
                );
            }
        }
        tx.rollback().await.unwrap();
    }
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "0", "10"));
}
