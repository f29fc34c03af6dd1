//! Reservations end to end: lines across warehouses held, released by material, warehouse or
//! all, consumed and held again; retries change nothing; bad lines are named and unknown places
//! apply nothing; the ledger records every step against its shipment and agrees with the levels;
//! simultaneous reservations and releases neither oversell nor release twice.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{
    TestApp, authed, decimal, expect_code, preconditions, reserve_request, violated_fields,
};
use logistics_proto::inventory::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

fn level(on_hand: &str, reserved: &str, available: &str) -> (String, String, String) {
    (
        on_hand.to_owned(),
        reserved.to_owned(),
        available.to_owned(),
    )
}

fn release_request(
    shipment: Uuid,
    warehouse: Option<&pb::Warehouse>,
    material: Option<&pb::Material>,
) -> pb::ReleaseReservationRequest {
    pb::ReleaseReservationRequest {
        idempotency_key: Uuid::now_v7().to_string(),
        shipment_id: shipment.to_string(),
        warehouse_id: warehouse.map(|w| w.id.clone()).unwrap_or_default(),
        material_id: material.map(|m| m.id.clone()).unwrap_or_default(),
    }
}

fn consume_request(
    shipment: Uuid,
    warehouse: Option<&pb::Warehouse>,
) -> pb::ConsumeReservationRequest {
    pb::ConsumeReservationRequest {
        idempotency_key: Uuid::now_v7().to_string(),
        shipment_id: shipment.to_string(),
        warehouse_id: warehouse.map(|w| w.id.clone()).unwrap_or_default(),
    }
}

async fn release(app: &TestApp, request: pb::ReleaseReservationRequest) -> Vec<pb::Reservation> {
    app.client()
        .await
        .release_reservation(authed(&app.admin_token, request))
        .await
        .unwrap()
        .into_inner()
        .reservations
}

async fn consume(app: &TestApp, request: pb::ConsumeReservationRequest) -> Vec<pb::Reservation> {
    app.client()
        .await
        .consume_reservation(authed(&app.admin_token, request))
        .await
        .unwrap()
        .into_inner()
        .reservations
}

async fn reservations_of(app: &TestApp, shipment: Uuid) -> Vec<pb::Reservation> {
    app.client()
        .await
        .list_reservations(authed(
            &app.admin_token,
            pb::ListReservationsRequest {
                shipment_id: shipment.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .reservations
}

/// (warehouse id, material id, quantity, status) of each reservation, sorted.
fn lines_of(reservations: &[pb::Reservation]) -> Vec<(String, String, String, i32)> {
    let mut lines: Vec<_> = reservations
        .iter()
        .map(|r| {
            (
                r.warehouse_id.clone(),
                r.material_id.clone(),
                r.quantity.clone().unwrap().value,
                r.status,
            )
        })
        .collect();
    lines.sort();
    lines
}

fn line(
    warehouse: &pb::Warehouse,
    material: &pb::Material,
    quantity: &str,
    status: pb::ReservationStatus,
) -> (String, String, String, i32) {
    (
        warehouse.id.clone(),
        material.id.clone(),
        quantity.to_owned(),
        status as i32,
    )
}

fn sorted(mut lines: Vec<(String, String, String, i32)>) -> Vec<(String, String, String, i32)> {
    lines.sort();
    lines
}

async fn movements(
    app: &TestApp,
    request: pb::ListStockMovementsRequest,
) -> Vec<pb::StockMovement> {
    app.client()
        .await
        .list_stock_movements(authed(
            &app.admin_token,
            pb::ListStockMovementsRequest {
                page_size: 1000,
                ..request
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .movements
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.db().await)
        .await
        .unwrap()
}

/// Every level of the tenant, as the API lists them.
async fn all_levels(app: &TestApp) -> Vec<pb::StockLevel> {
    app.client()
        .await
        .list_stock_levels(authed(
            &app.admin_token,
            pb::ListStockLevelsRequest {
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .levels
}

// Reserve, release, consume ---------------------------------------------------------------------

#[tokio::test]
async fn a_shipment_holds_lines_across_warehouses_and_releases_them_by_material_warehouse_or_all() {
    let app = TestApp::spawn().await;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    app.receive(&hamburg, &steel, "100").await;
    app.receive(&hamburg, &copper, "50").await;
    app.receive(&berlin, &steel, "30").await;
    let shipment = Uuid::now_v7();
    let reserved = app
        .reserve(
            shipment,
            &[
                (&hamburg, &steel, "10"),
                (&hamburg, &copper, "5"),
                (&berlin, &steel, "7.5"),
            ],
        )
        .await
        .unwrap()
        .reservations;
    use pb::ReservationStatus::{Held, Released};
    assert_eq!(
        reserved
            .iter()
            .map(|r| (
                r.warehouse_id.as_str(),
                r.material_id.as_str(),
                r.quantity.clone().unwrap().value,
                r.status
            ))
            .collect::<Vec<_>>(),
        [
            (
                hamburg.id.as_str(),
                steel.id.as_str(),
                "10".to_owned(),
                Held as i32
            ),
            (
                hamburg.id.as_str(),
                copper.id.as_str(),
                "5".to_owned(),
                Held as i32
            ),
            (
                berlin.id.as_str(),
                steel.id.as_str(),
                "7.5".to_owned(),
                Held as i32
            ),
        ],
        "one reservation per line, in line order"
    );
    assert!(
        reserved
            .iter()
            .all(|r| r.shipment_id == shipment.to_string() && r.create_time.is_some())
    );
    assert_eq!(
        lines_of(&reservations_of(&app, shipment).await),
        lines_of(&reserved)
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "10", "90"));
    assert_eq!(app.level(&hamburg, &copper).await, level("50", "5", "45"));
    assert_eq!(app.level(&berlin, &steel).await, level("30", "7.5", "22.5"));

    // One material, wherever it is held.
    let copper_back = release(&app, release_request(shipment, None, Some(&copper))).await;
    assert_eq!(
        lines_of(&copper_back),
        [line(&hamburg, &copper, "5", Released)]
    );
    assert_eq!(app.level(&hamburg, &copper).await, level("50", "0", "50"));
    // One warehouse, whatever it holds.
    let berlin_back = release(&app, release_request(shipment, Some(&berlin), None)).await;
    assert_eq!(
        lines_of(&berlin_back),
        [line(&berlin, &steel, "7.5", Released)]
    );
    assert_eq!(app.level(&berlin, &steel).await, level("30", "0", "30"));
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "10", "90"));
    // A warehouse and material that hold nothing of the shipment release nothing.
    assert!(
        release(
            &app,
            release_request(shipment, Some(&berlin), Some(&copper))
        )
        .await
        .is_empty()
    );
    // All that is left.
    let rest = release(&app, release_request(shipment, None, None)).await;
    assert_eq!(lines_of(&rest), [line(&hamburg, &steel, "10", Released)]);
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "0", "100"));
    assert!(
        release(&app, release_request(shipment, None, None))
            .await
            .is_empty(),
        "nothing is held any more"
    );
    assert_eq!(
        lines_of(&reservations_of(&app, shipment).await),
        sorted(vec![
            line(&hamburg, &steel, "10", Released),
            line(&hamburg, &copper, "5", Released),
            line(&berlin, &steel, "7.5", Released),
        ])
    );
    assert_eq!(app.check_ledger().await, (3, 0));
}

#[tokio::test]
async fn consuming_ships_the_held_lines_of_one_warehouse_or_all_and_nothing_else() {
    let app = TestApp::spawn().await;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    app.receive(&hamburg, &steel, "100").await;
    app.receive(&hamburg, &copper, "20").await;
    app.receive(&berlin, &steel, "30").await;
    let (shipment, other) = (Uuid::now_v7(), Uuid::now_v7());
    app.reserve(
        shipment,
        &[
            (&hamburg, &steel, "10"),
            (&hamburg, &copper, "4"),
            (&berlin, &steel, "5"),
        ],
    )
    .await
    .unwrap();
    app.reserve(other, &[(&hamburg, &steel, "1")])
        .await
        .unwrap();
    release(&app, release_request(shipment, None, Some(&copper))).await;
    use pb::ReservationStatus::{Consumed, Held, Released};

    let shipped = consume(&app, consume_request(shipment, Some(&berlin))).await;
    assert_eq!(lines_of(&shipped), [line(&berlin, &steel, "5", Consumed)]);
    assert_eq!(app.level(&berlin, &steel).await, level("25", "0", "25"));
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "11", "89"));

    // The released copper line is not shipped; the other shipment's steel stays held.
    let shipped = consume(&app, consume_request(shipment, None)).await;
    assert_eq!(lines_of(&shipped), [line(&hamburg, &steel, "10", Consumed)]);
    assert_eq!(app.level(&hamburg, &steel).await, level("90", "1", "89"));
    assert_eq!(app.level(&hamburg, &copper).await, level("20", "0", "20"));
    assert!(
        consume(&app, consume_request(shipment, None))
            .await
            .is_empty()
    );
    assert!(
        release(&app, release_request(shipment, None, None))
            .await
            .is_empty(),
        "a consumed line cannot be released"
    );
    assert_eq!(
        lines_of(&reservations_of(&app, shipment).await),
        sorted(vec![
            line(&hamburg, &steel, "10", Consumed),
            line(&hamburg, &copper, "4", Released),
            line(&berlin, &steel, "5", Consumed),
        ])
    );
    assert_eq!(
        lines_of(&reservations_of(&app, other).await),
        [line(&hamburg, &steel, "1", Held)]
    );
    assert_eq!(app.check_ledger().await, (3, 0));
}

#[tokio::test]
async fn a_released_line_is_held_again_when_its_shipment_reserves_it_again() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    app.receive(&hamburg, &steel, "100").await;
    app.receive(&hamburg, &copper, "100").await;
    let shipment = Uuid::now_v7();
    let first = app
        .reserve(
            shipment,
            &[(&hamburg, &steel, "10"), (&hamburg, &copper, "3")],
        )
        .await
        .unwrap()
        .reservations;
    release(&app, release_request(shipment, None, Some(&steel))).await;
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "0", "100"));

    // Steel again, now 12: the same reservation is held again with the new quantity. Copper,
    // still held, stays as it was even though this request asks for 5.
    let again = app
        .reserve(
            shipment,
            &[(&hamburg, &steel, "12"), (&hamburg, &copper, "5")],
        )
        .await
        .unwrap()
        .reservations;
    use pb::ReservationStatus::Held;
    assert_eq!(
        again[0].id, first[0].id,
        "the released reservation comes back"
    );
    assert_eq!(again[1], first[1], "the held one is left as it is");
    assert_eq!(
        lines_of(&again),
        sorted(vec![
            line(&hamburg, &steel, "12", Held),
            line(&hamburg, &copper, "3", Held),
        ])
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "12", "88"));
    assert_eq!(app.level(&hamburg, &copper).await, level("100", "3", "97"));
    assert_eq!(reservations_of(&app, shipment).await.len(), 2);
    let steel_entries: Vec<(i32, String)> = movements(
        &app,
        pb::ListStockMovementsRequest {
            material_id: steel.id.clone(),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|m| (m.kind, m.reserved_change.unwrap().value))
    .collect();
    use pb::MovementKind::{Receipt, Release, Reserve};
    assert_eq!(
        steel_entries,
        [
            (Reserve as i32, "12".to_owned()),
            (Release as i32, "-10".to_owned()),
            (Reserve as i32, "10".to_owned()),
            (Receipt as i32, "0".to_owned()),
        ]
    );
    assert_eq!(app.check_ledger().await, (2, 0));
}

#[tokio::test]
async fn releasing_or_consuming_when_nothing_is_held_answers_an_empty_list_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "10").await;
    let stranger = Uuid::now_v7();
    assert!(
        release(&app, release_request(stranger, None, None))
            .await
            .is_empty()
    );
    assert!(
        release(
            &app,
            release_request(stranger, Some(&hamburg), Some(&steel))
        )
        .await
        .is_empty()
    );
    assert!(
        consume(&app, consume_request(stranger, Some(&hamburg)))
            .await
            .is_empty()
    );
    assert!(reservations_of(&app, stranger).await.is_empty());
    assert_eq!(
        count(&app, "SELECT count(*) FROM inventory.stock_movements").await,
        1,
        "only the receipt"
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("10", "0", "10"));
    assert_eq!(app.check_ledger().await, (1, 0));
}

#[tokio::test]
async fn a_retried_release_or_consume_changes_nothing_and_a_reused_key_with_another_body_is_refused()
 {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    app.receive(&hamburg, &steel, "100").await;
    app.receive(&hamburg, &copper, "100").await;
    let shipment = Uuid::now_v7();
    app.reserve(
        shipment,
        &[(&hamburg, &steel, "10"), (&hamburg, &copper, "20")],
    )
    .await
    .unwrap();
    let movements_now = || count(&app, "SELECT count(*) FROM inventory.stock_movements");
    let before = movements_now().await;

    let request = release_request(shipment, None, Some(&steel));
    let first = release(&app, request.clone()).await;
    assert_eq!(first.len(), 1);
    let after_first = movements_now().await;
    assert_eq!(after_first, before + 1);
    // The same key again answers as the first call did, although nothing is held any more.
    assert_eq!(release(&app, request.clone()).await, first);
    assert_eq!(movements_now().await, after_first);
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "0", "100"));
    let err = expect_code(
        app.client()
            .await
            .release_reservation(authed(
                &app.admin_token,
                pb::ReleaseReservationRequest {
                    material_id: copper.id.clone(),
                    ..request
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["idempotency_key"]);
    assert_eq!(app.level(&hamburg, &copper).await, level("100", "20", "80"));

    let request = consume_request(shipment, None);
    let shipped = consume(&app, request.clone()).await;
    assert_eq!(shipped.len(), 1);
    let after_consume = movements_now().await;
    assert_eq!(consume(&app, request.clone()).await, shipped);
    assert_eq!(movements_now().await, after_consume);
    assert_eq!(app.level(&hamburg, &copper).await, level("80", "0", "80"));
    // Keys are shared by every stock operation: the consume's key cannot release.
    let err = expect_code(
        app.client()
            .await
            .release_reservation(authed(
                &app.admin_token,
                pb::ReleaseReservationRequest {
                    idempotency_key: request.idempotency_key.clone(),
                    shipment_id: request.shipment_id.clone(),
                    warehouse_id: String::new(),
                    material_id: String::new(),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["idempotency_key"]);
    let err = expect_code(
        app.client()
            .await
            .consume_reservation(authed(
                &app.admin_token,
                pb::ConsumeReservationRequest {
                    warehouse_id: hamburg.id.clone(),
                    ..request
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["idempotency_key"]);

    // A reservation's key reused for other lines is refused, and reserves nothing.
    let reserve = reserve_request(Uuid::now_v7(), &[(&hamburg, &steel, "1")]);
    app.client()
        .await
        .reserve_stock(authed(&app.admin_token, reserve.clone()))
        .await
        .unwrap();
    let err = expect_code(
        app.client()
            .await
            .reserve_stock(authed(
                &app.admin_token,
                pb::ReserveStockRequest {
                    lines: reserve_request(Uuid::now_v7(), &[(&hamburg, &steel, "2")]).lines,
                    ..reserve.clone()
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["idempotency_key"]);
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "1", "99"));
    assert_eq!(app.check_ledger().await, (2, 0));
}

/// A ledger entry as the tests compare it: kind, warehouse, material, and the on-hand change,
/// reserved change, on hand after and reserved after.
type Step = (i32, String, String, [String; 4]);

fn step(
    kind: pb::MovementKind,
    warehouse: &pb::Warehouse,
    material: &pb::Material,
    changes_and_balances: [&str; 4],
) -> Step {
    (
        kind as i32,
        warehouse.id.clone(),
        material.id.clone(),
        changes_and_balances.map(str::to_owned),
    )
}

/// The entries the operation with idempotency key `key` wrote for `shipment`, newest first.
async fn steps_of(app: &TestApp, shipment: Uuid, key: &str) -> Vec<Step> {
    movements(
        app,
        pb::ListStockMovementsRequest {
            reference: Some(pb::Reference {
                r#type: "shipment".to_owned(),
                id: shipment.to_string(),
            }),
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .filter(|m| m.idempotency_key == key)
    .map(|m| {
        (
            m.kind,
            m.warehouse_id,
            m.material_id,
            [
                m.on_hand_change,
                m.reserved_change,
                m.on_hand_after,
                m.reserved_after,
            ]
            .map(|d| d.unwrap().value),
        )
    })
    .collect()
}

/// (warehouse id, material id, quantity, status) of each reservation, as answered.
fn in_order(reservations: &[pb::Reservation]) -> Vec<(String, String, String, i32)> {
    reservations
        .iter()
        .map(|r| {
            (
                r.warehouse_id.clone(),
                r.material_id.clone(),
                r.quantity.clone().unwrap().value,
                r.status,
            )
        })
        .collect()
}

#[tokio::test]
async fn a_reservation_of_new_released_and_held_lines_books_one_entry_per_changed_line_and_one_release_gives_all_back()
 {
    let app = TestApp::spawn().await;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let (steel, copper, brass) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
        app.material("BRASS-1").await,
    );
    app.receive(&hamburg, &steel, "100").await;
    app.receive(&hamburg, &copper, "50").await;
    app.receive(&hamburg, &brass, "20").await;
    app.receive(&berlin, &steel, "30").await;
    let shipment = Uuid::now_v7();
    let first = app
        .reserve(
            shipment,
            &[(&hamburg, &steel, "10"), (&hamburg, &copper, "4")],
        )
        .await
        .unwrap()
        .reservations;
    release(&app, release_request(shipment, None, Some(&copper))).await;

    // Berlin steel and Hamburg brass are new; Hamburg copper, released, is held again with the
    // new quantity; Hamburg steel, held, stays at 10 although this request asks for 99.
    let request = reserve_request(
        shipment,
        &[
            (&berlin, &steel, "7"),
            (&hamburg, &copper, "6"),
            (&hamburg, &steel, "99"),
            (&hamburg, &brass, "2.5"),
        ],
    );
    let reserved = app
        .client()
        .await
        .reserve_stock(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner()
        .reservations;
    use pb::ReservationStatus::{Held, Released};
    assert_eq!(
        in_order(&reserved),
        [
            line(&berlin, &steel, "7", Held),
            line(&hamburg, &copper, "6", Held),
            line(&hamburg, &steel, "10", Held),
            line(&hamburg, &brass, "2.5", Held),
        ],
        "one reservation per line, in request order"
    );
    assert_eq!(
        reserved[1].id, first[1].id,
        "the released reservation is held again"
    );
    assert_eq!(reserved[2], first[0], "the held one is left as it is");
    assert!(
        reserved
            .iter()
            .all(|r| r.shipment_id == shipment.to_string())
    );
    assert_eq!(
        lines_of(&reservations_of(&app, shipment).await),
        lines_of(&reserved)
    );
    // One Reserve entry per line that changed, booked in request order (listed newest first);
    // none for the line already held.
    use pb::MovementKind::{Release, Reserve};
    assert_eq!(
        steps_of(&app, shipment, &request.idempotency_key).await,
        [
            step(Reserve, &hamburg, &brass, ["0", "2.5", "20", "2.5"]),
            step(Reserve, &hamburg, &copper, ["0", "6", "50", "6"]),
            step(Reserve, &berlin, &steel, ["0", "7", "30", "7"]),
        ]
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "10", "90"));
    assert_eq!(app.level(&hamburg, &copper).await, level("50", "6", "44"));
    assert_eq!(
        app.level(&hamburg, &brass).await,
        level("20", "2.5", "17.5")
    );
    assert_eq!(app.level(&berlin, &steel).await, level("30", "7", "23"));
    assert_eq!(app.check_ledger().await, (4, 0));
    // The same call again answers as the first did and books nothing.
    let again = app
        .client()
        .await
        .reserve_stock(authed(&app.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner()
        .reservations;
    assert_eq!(again, reserved);
    assert_eq!(
        steps_of(&app, shipment, &request.idempotency_key)
            .await
            .len(),
        3
    );

    // Every held line back in one call, by warehouse and material, one Release entry each,
    // booked in that order (listed newest first).
    let back = release_request(shipment, None, None);
    let released = release(&app, back.clone()).await;
    let mut expected = vec![
        line(&berlin, &steel, "7", Released),
        line(&hamburg, &copper, "6", Released),
        line(&hamburg, &steel, "10", Released),
        line(&hamburg, &brass, "2.5", Released),
    ];
    expected.sort();
    assert_eq!(in_order(&released), expected);
    let mut booked = vec![
        step(Release, &berlin, &steel, ["0", "-7", "30", "0"]),
        step(Release, &hamburg, &copper, ["0", "-6", "50", "0"]),
        step(Release, &hamburg, &steel, ["0", "-10", "100", "0"]),
        step(Release, &hamburg, &brass, ["0", "-2.5", "20", "0"]),
    ];
    booked.sort();
    booked.reverse();
    assert_eq!(
        steps_of(&app, shipment, &back.idempotency_key).await,
        booked
    );
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "0", "100"));
    assert_eq!(app.level(&hamburg, &copper).await, level("50", "0", "50"));
    assert_eq!(app.level(&hamburg, &brass).await, level("20", "0", "20"));
    assert_eq!(app.level(&berlin, &steel).await, level("30", "0", "30"));
    assert_eq!(lines_of(&reservations_of(&app, shipment).await), expected);
    assert_eq!(app.check_ledger().await, (4, 0));
}

// Bad requests ----------------------------------------------------------------------------------

#[tokio::test]
async fn bad_lines_are_named_one_by_one_and_nothing_is_reserved() {
    let app = TestApp::spawn().await;
    let hamburg = app.warehouse("HAM-1").await;
    let steel = app.material("STEEL-1").await;
    app.receive(&hamburg, &steel, "100").await;
    let good = |quantity: &str| pb::ReservationLine {
        warehouse_id: hamburg.id.clone(),
        material_id: steel.id.clone(),
        quantity: decimal(quantity),
    };
    let some = |lines: Vec<pb::ReservationLine>| pb::ReserveStockRequest {
        idempotency_key: Uuid::now_v7().to_string(),
        shipment_id: Uuid::now_v7().to_string(),
        lines,
    };
    let elsewhere = |quantity: &str| pb::ReservationLine {
        warehouse_id: Uuid::now_v7().to_string(),
        ..good(quantity)
    };
    let cases: Vec<(pb::ReserveStockRequest, Vec<&str>)> = vec![
        (
            some((0..101).map(|_| elsewhere("1")).collect()),
            vec!["lines"],
        ),
        (some(vec![good("1"), good("2")]), vec!["lines[1]"]),
        (
            some(vec![
                pb::ReservationLine {
                    warehouse_id: "HAM-1".to_owned(),
                    material_id: String::new(),
                    ..good("1")
                },
                good("1"),
            ]),
            vec!["lines[0].warehouse_id", "lines[0].material_id"],
        ),
        (some(vec![good("0")]), vec!["lines[0].quantity"]),
        (some(vec![good("1.2345")]), vec!["lines[0].quantity"]),
        (some(vec![good("-1")]), vec!["lines[0].quantity"]),
        (some(vec![good("ten")]), vec!["lines[0].quantity"]),
        (
            some(vec![pb::ReservationLine {
                quantity: None,
                ..good("1")
            }]),
            vec!["lines[0].quantity"],
        ),
        (
            pb::ReserveStockRequest {
                idempotency_key: String::new(),
                shipment_id: "SHIP-1".to_owned(),
                lines: vec![good("1"), elsewhere("0"), good("2")],
            },
            vec![
                "idempotency_key",
                "shipment_id",
                "lines[1].quantity",
                "lines[2]",
            ],
        ),
    ];
    let mut client = app.client().await;
    for (request, fields) in cases {
        let err = expect_code(
            client
                .reserve_stock(authed(&app.admin_token, request))
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&err), fields);
    }
    // A hundred lines is the most, and fine as far as the count goes.
    let hundred = some((0..100).map(|_| elsewhere("1")).collect());
    expect_code(
        client
            .reserve_stock(authed(&app.admin_token, hundred))
            .await,
        Code::NotFound,
    );
    // Release, consume and list name their bad fields too.
    let err = expect_code(
        client
            .release_reservation(authed(
                &app.admin_token,
                pb::ReleaseReservationRequest {
                    idempotency_key: "key".to_owned(),
                    shipment_id: String::new(),
                    warehouse_id: "HAM-1".to_owned(),
                    material_id: "STEEL-1".to_owned(),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        [
            "idempotency_key",
            "shipment_id",
            "warehouse_id",
            "material_id"
        ]
    );
    let err = expect_code(
        client
            .consume_reservation(authed(
                &app.admin_token,
                pb::ConsumeReservationRequest {
                    idempotency_key: String::new(),
                    shipment_id: "x".to_owned(),
                    warehouse_id: "HAM-1".to_owned(),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&err),
        ["idempotency_key", "shipment_id", "warehouse_id"]
    );
    let err = expect_code(
        client
            .list_reservations(authed(
                &app.admin_token,
                pb::ListReservationsRequest {
                    shipment_id: "x".to_owned(),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&err), ["shipment_id"]);

    assert_eq!(app.level(&hamburg, &steel).await, level("100", "0", "100"));
    assert_eq!(
        count(&app, "SELECT count(*) FROM inventory.reservations").await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM inventory.idempotency_keys WHERE method = 'StockOperation'"
        )
        .await,
        1,
        "no key claimed but the receipt's"
    );
}

#[tokio::test]
async fn a_line_of_an_unknown_or_deleted_warehouse_or_material_is_not_found_and_nothing_is_applied()
{
    let app = TestApp::spawn().await;
    let (hamburg, closed) = (app.warehouse("HAM-1").await, app.warehouse("OLD-1").await);
    let (steel, retired) = (
        app.material("STEEL-1").await,
        app.material("RETIRED-1").await,
    );
    app.receive(&hamburg, &steel, "100").await;
    let mut client = app.client().await;
    client
        .delete_warehouse(authed(
            &app.admin_token,
            pb::DeleteWarehouseRequest {
                id: closed.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    client
        .delete_material(authed(
            &app.admin_token,
            pb::DeleteMaterialRequest {
                id: retired.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    let unknown = Uuid::now_v7().to_string();
    let nowhere = pb::Warehouse {
        id: unknown.clone(),
        ..Default::default()
    };
    let nothing = pb::Material {
        id: unknown.clone(),
        ..Default::default()
    };
    let warehouse_kind = "logistics.inventory.v1.Warehouse";
    let material_kind = "logistics.inventory.v1.Material";
    for (second, kind, name) in [
        ((&nowhere, &steel), warehouse_kind, &unknown),
        ((&hamburg, &nothing), material_kind, &unknown),
        ((&closed, &steel), warehouse_kind, &closed.id),
        ((&hamburg, &retired), material_kind, &retired.id),
        // Both missing: the warehouse is named (warehouses are checked first).
        ((&nowhere, &nothing), warehouse_kind, &unknown),
    ] {
        let err = expect_code(
            app.reserve(
                Uuid::now_v7(),
                &[(&hamburg, &steel, "5"), (second.0, second.1, "1")],
            )
            .await,
            Code::NotFound,
        );
        let info = err.get_details_resource_info().unwrap();
        assert_eq!(
            (info.resource_type.as_str(), info.resource_name.as_str()),
            (kind, name.as_str())
        );
    }
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "0", "100"));
    assert_eq!(
        count(&app, "SELECT count(*) FROM inventory.reservations").await,
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM inventory.stock_movements").await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM inventory.idempotency_keys WHERE method = 'StockOperation'"
        )
        .await,
        1,
        "no key claimed but the receipt's"
    );
    assert_eq!(app.check_ledger().await, (1, 0));
}

// The ledger ------------------------------------------------------------------------------------

#[tokio::test]
async fn the_ledger_records_every_reservation_step_against_its_shipment_and_agrees_with_the_levels()
{
    let app = TestApp::spawn().await;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    app.receive(&hamburg, &steel, "100").await;
    app.receive(&hamburg, &copper, "40").await;
    app.receive(&berlin, &copper, "10.125").await;
    let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
    app.reserve(
        one,
        &[
            (&hamburg, &steel, "10"),
            (&hamburg, &copper, "5"),
            (&berlin, &copper, "0.125"),
        ],
    )
    .await
    .unwrap();
    app.reserve(two, &[(&hamburg, &steel, "20")]).await.unwrap();
    release(&app, release_request(one, None, Some(&copper))).await;
    consume(&app, consume_request(two, None)).await;
    app.reserve(one, &[(&hamburg, &copper, "6")]).await.unwrap();
    let mut client = app.client().await;
    client
        .transfer_stock(authed(
            &app.admin_token,
            pb::TransferStockRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                from_warehouse_id: hamburg.id.clone(),
                to_warehouse_id: berlin.id.clone(),
                material_id: steel.id.clone(),
                quantity: decimal("30"),
                reference: None,
                reason: String::new(),
            },
        ))
        .await
        .unwrap();
    consume(&app, consume_request(one, Some(&hamburg))).await;

    // Every level agrees with its ledger and its held reservations.
    let levels = all_levels(&app).await;
    assert_eq!(levels.len(), 4);
    assert_eq!(app.check_ledger().await, (4, 0));

    // The shipment's entries, newest first, each pointing at it.
    use pb::MovementKind::{Consume, Release, Reserve};
    let of_one = movements(
        &app,
        pb::ListStockMovementsRequest {
            reference: Some(pb::Reference {
                r#type: "shipment".to_owned(),
                id: one.to_string(),
            }),
            ..Default::default()
        },
    )
    .await;
    assert!(of_one.iter().all(|m| {
        m.reference
            == Some(pb::Reference {
                r#type: "shipment".to_owned(),
                id: one.to_string(),
            })
    }));
    let steps: Vec<(i32, &str, &str, String, String)> = of_one
        .iter()
        .map(|m| {
            (
                m.kind,
                m.warehouse_id.as_str(),
                m.material_id.as_str(),
                m.on_hand_change.clone().unwrap().value,
                m.reserved_change.clone().unwrap().value,
            )
        })
        .collect();
    let ham = hamburg.id.as_str();
    let ber = berlin.id.as_str();
    let (st, cu) = (steel.id.as_str(), copper.id.as_str());
    // Settling goes by warehouse and material; lines were booked in request order.
    let mut hamburg_consumed = [(ham, st, "10"), (ham, cu, "6")];
    hamburg_consumed.sort();
    let mut copper_released = [(ham, cu, "-5"), (ber, cu, "-0.125")];
    copper_released.sort();
    let mut expected: Vec<(i32, &str, &str, String, String)> = Vec::new();
    for (w, m, q) in hamburg_consumed.iter().rev() {
        expected.push((Consume as i32, w, m, format!("-{q}"), format!("-{q}")));
    }
    expected.push((Reserve as i32, ham, cu, "0".to_owned(), "6".to_owned()));
    for (w, m, q) in copper_released.iter().rev() {
        expected.push((Release as i32, w, m, "0".to_owned(), (*q).to_owned()));
    }
    for (w, m, q) in [(ber, cu, "0.125"), (ham, cu, "5"), (ham, st, "10")] {
        expected.push((Reserve as i32, w, m, "0".to_owned(), q.to_owned()));
    }
    assert_eq!(steps, expected);

    let of_two = movements(
        &app,
        pb::ListStockMovementsRequest {
            reference: Some(pb::Reference {
                r#type: "shipment".to_owned(),
                id: two.to_string(),
            }),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        of_two
            .iter()
            .map(|m| (m.kind, m.on_hand_change.clone().unwrap().value))
            .collect::<Vec<_>>(),
        [
            (Consume as i32, "-20".to_owned()),
            (Reserve as i32, "0".to_owned())
        ]
    );

    // For each level, its newest entry's balances are the level, and the balances of its
    // entries add up from zero.
    for l in &levels {
        let entries = movements(
            &app,
            pb::ListStockMovementsRequest {
                warehouse_id: l.warehouse_id.clone(),
                material_id: l.material_id.clone(),
                ..Default::default()
            },
        )
        .await;
        let newest = &entries[0];
        assert_eq!(newest.on_hand_after, l.on_hand);
        assert_eq!(newest.reserved_after, l.reserved);
        let (mut on_hand, mut reserved) =
            (rust_decimal::Decimal::ZERO, rust_decimal::Decimal::ZERO);
        for e in entries.iter().rev() {
            on_hand += e
                .on_hand_change
                .clone()
                .unwrap()
                .value
                .parse::<rust_decimal::Decimal>()
                .unwrap();
            reserved += e
                .reserved_change
                .clone()
                .unwrap()
                .value
                .parse::<rust_decimal::Decimal>()
                .unwrap();
            assert_eq!(
                e.on_hand_after.clone().unwrap().value,
                on_hand.normalize().to_string()
            );
            assert_eq!(
                e.reserved_after.clone().unwrap().value,
                reserved.normalize().to_string()
            );
        }
    }
    let by_level: HashMap<(String, String), (String, String)> = levels
        .iter()
        .map(|l| {
            (
                (l.warehouse_id.clone(), l.material_id.clone()),
                (
                    l.on_hand.clone().unwrap().value,
                    l.reserved.clone().unwrap().value,
                ),
            )
        })
        .collect();
    let at = |w: &pb::Warehouse, m: &pb::Material| by_level[&(w.id.clone(), m.id.clone())].clone();
    assert_eq!(at(&hamburg, &steel), ("40".to_owned(), "0".to_owned()));
    assert_eq!(at(&hamburg, &copper), ("34".to_owned(), "0".to_owned()));
    assert_eq!(at(&berlin, &steel), ("30".to_owned(), "0".to_owned()));
    assert_eq!(at(&berlin, &copper), ("10.125".to_owned(), "0".to_owned()));
}

// Concurrency -----------------------------------------------------------------------------------

/// Warehouses HAM-1 and BER-1, materials STEEL-1 and COPPER-1; 100 of steel received in
/// Hamburg and 60 of copper in Berlin.
async fn steel_in_hamburg_and_copper_in_berlin(
    app: &TestApp,
) -> (pb::Warehouse, pb::Warehouse, pb::Material, pb::Material) {
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    app.receive(&hamburg, &steel, "100").await;
    app.receive(&berlin, &copper, "60").await;
    (hamburg, berlin, steel, copper)
}

#[tokio::test]
async fn thirty_simultaneous_two_line_reservations_serve_exactly_what_both_levels_can_hold() {
    let app = TestApp::spawn().await;
    let (hamburg, berlin, steel, copper) = steel_in_hamburg_and_copper_in_berlin(&app).await;
    // Steel in Hamburg serves 14 requests of 7, copper in Berlin 12 of 5: 12 can be served.
    let barrier = Arc::new(tokio::sync::Barrier::new(30));
    let mut calls = Vec::new();
    for i in 0..30 {
        let mut client = app.client().await;
        // Half of them name the lines the other way round, so the locks are asked for in
        // both orders.
        let (request, copper_line) = if i % 2 == 0 {
            (
                reserve_request(
                    Uuid::now_v7(),
                    &[(&hamburg, &steel, "7"), (&berlin, &copper, "5")],
                ),
                "lines[1]",
            )
        } else {
            (
                reserve_request(
                    Uuid::now_v7(),
                    &[(&berlin, &copper, "5"), (&hamburg, &steel, "7")],
                ),
                "lines[0]",
            )
        };
        let token = app.admin_token.clone();
        let barrier = barrier.clone();
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            (
                copper_line,
                client.reserve_stock(authed(&token, request)).await,
            )
        }));
    }
    let mut served = 0;
    for joined in futures::future::join_all(calls).await {
        let (copper_line, result): (
            &str,
            Result<tonic::Response<pb::ReserveStockResponse>, Status>,
        ) = joined.unwrap();
        match result {
            Ok(response) => {
                assert_eq!(response.into_inner().reservations.len(), 2);
                served += 1;
            }
            Err(status) => {
                assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
                assert_eq!(
                    preconditions(&status),
                    [("INSUFFICIENT_STOCK".to_owned(), copper_line.to_owned())],
                    "only copper runs out"
                );
            }
        }
    }
    assert_eq!(served, 12);
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "84", "16"));
    assert_eq!(app.level(&berlin, &copper).await, level("60", "60", "0"));
    let (negative, overbooked, held): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM inventory.stock_levels WHERE on_hand < 0 OR reserved < 0), \
                (SELECT count(*) FROM inventory.stock_levels WHERE reserved > on_hand), \
                (SELECT count(*) FROM inventory.reservations WHERE status = 'held')",
    )
    .fetch_one(&app.db().await)
    .await
    .unwrap();
    assert_eq!((negative, overbooked, held), (0, 0, 24));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM inventory.stock_movements WHERE kind = 'reserve'"
        )
        .await,
        24
    );
    assert_eq!(app.check_ledger().await, (2, 0));
}

#[tokio::test]
async fn twenty_simultaneous_releases_of_one_shipment_release_each_line_once() {
    let app = TestApp::spawn().await;
    let (hamburg, berlin) = (app.warehouse("HAM-1").await, app.warehouse("BER-1").await);
    let (steel, copper) = (
        app.material("STEEL-1").await,
        app.material("COPPER-1").await,
    );
    app.receive(&hamburg, &steel, "100").await;
    app.receive(&hamburg, &copper, "100").await;
    app.receive(&berlin, &steel, "100").await;
    let shipment = Uuid::now_v7();
    let held = app
        .reserve(
            shipment,
            &[
                (&hamburg, &steel, "10"),
                (&hamburg, &copper, "20"),
                (&berlin, &steel, "30"),
            ],
        )
        .await
        .unwrap()
        .reservations;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut calls = Vec::new();
    for i in 0..20 {
        let mut client = app.client().await;
        // All, by material and by warehouse, each with its own key.
        let request = match i % 3 {
            0 => release_request(shipment, None, None),
            1 => release_request(shipment, None, Some(&steel)),
            _ => release_request(shipment, Some(&hamburg), None),
        };
        let token = app.admin_token.clone();
        let barrier = barrier.clone();
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            client.release_reservation(authed(&token, request)).await
        }));
    }
    let mut released: Vec<String> = Vec::new();
    for joined in futures::future::join_all(calls).await {
        let response = joined.unwrap().unwrap().into_inner();
        released.extend(response.reservations.into_iter().map(|r| r.id));
    }
    released.sort();
    let mut expected: Vec<String> = held.into_iter().map(|r| r.id).collect();
    expected.sort();
    assert_eq!(released, expected, "each line released exactly once");
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "0", "100"));
    assert_eq!(app.level(&hamburg, &copper).await, level("100", "0", "100"));
    assert_eq!(app.level(&berlin, &steel).await, level("100", "0", "100"));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM inventory.stock_movements WHERE kind = 'release'"
        )
        .await,
        3
    );
    assert_eq!(app.check_ledger().await, (3, 0));
}

/// One racing call.
enum Call {
    Reserve(pb::ReserveStockRequest),
    Release(pb::ReleaseReservationRequest),
}

/// From `n` tasks let go at once, call `i` releases what `release(i)` names, or else reserves
/// `lines` (the other way round when `i / 2` is odd); every answer, in call order.
async fn race(
    app: &TestApp,
    n: usize,
    shipment: Uuid,
    lines: [(&pb::Warehouse, &pb::Material, &str); 2],
    release: impl Fn(usize) -> Option<pb::ReleaseReservationRequest>,
) -> Vec<Result<Vec<pb::Reservation>, Status>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut calls = Vec::new();
    for i in 0..n {
        let mut client = app.client().await;
        let token = app.admin_token.clone();
        let barrier = barrier.clone();
        let call = if let Some(request) = release(i) {
            Call::Release(request)
        } else if (i / 2) % 2 == 0 {
            Call::Reserve(reserve_request(shipment, &lines))
        } else {
            Call::Reserve(reserve_request(shipment, &[lines[1], lines[0]]))
        };
        calls.push(tokio::spawn(async move {
            // Connected and served once before the start, so the calls leave together.
            client
                .list_reservations(authed(
                    &token,
                    pb::ListReservationsRequest {
                        shipment_id: shipment.to_string(),
                    },
                ))
                .await
                .unwrap();
            barrier.wait().await;
            match call {
                Call::Reserve(request) => client
                    .reserve_stock(authed(&token, request))
                    .await
                    .map(|r| r.into_inner().reservations),
                Call::Release(request) => client
                    .release_reservation(authed(&token, request))
                    .await
                    .map(|r| r.into_inner().reservations),
            }
        }));
    }
    futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect()
}

/// Per line of `shipment`: (warehouse, material, held quantity by its reservation, what the
/// shipment's ledger entries of the line change reserved by in all), sorted.
async fn held_against_ledger(app: &TestApp, shipment: Uuid) -> Vec<(Uuid, Uuid, String, String)> {
    sqlx::query_as(
        "SELECT r.warehouse_id, r.material_id, \
                (CASE WHEN r.status = 'held' THEN r.quantity ELSE 0 END)::text, \
                coalesce((SELECT sum(m.reserved_change) \
                            FROM inventory.stock_movements m \
                           WHERE m.reference_id = r.shipment_id \
                             AND m.warehouse_id = r.warehouse_id \
                             AND m.material_id = r.material_id), 0)::text \
           FROM inventory.reservations r WHERE r.shipment_id = $1 \
          ORDER BY 1, 2",
    )
    .bind(shipment)
    .fetch_all(&app.db().await)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_reservations_of_the_same_new_lines_by_one_shipment_hold_each_line_once() {
    let app = TestApp::spawn().await;
    let (hamburg, berlin, steel, copper) = steel_in_hamburg_and_copper_in_berlin(&app).await;
    let shipment = Uuid::now_v7();
    // Sixteen retries of one step, each with its own key (a caller that lost its answers):
    // the first to lock the levels holds both lines, the others find them held.
    let lines = [(&hamburg, &steel, "10"), (&berlin, &copper, "5")];
    let answers = race(&app, 16, shipment, lines, |_| None).await;
    let mut ids = std::collections::HashSet::new();
    for answer in answers {
        let reservations = answer.unwrap_or_else(|status| panic!("refused: {status:?}"));
        assert_eq!(reservations.len(), 2);
        for r in reservations {
            assert_eq!(r.status, pb::ReservationStatus::Held as i32);
            ids.insert(r.id);
        }
    }
    assert_eq!(ids.len(), 2, "every answer names the same two reservations");
    assert_eq!(app.level(&hamburg, &steel).await, level("100", "10", "90"));
    assert_eq!(app.level(&berlin, &copper).await, level("60", "5", "55"));
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM inventory.stock_movements WHERE kind = 'reserve'"
        )
        .await,
        2,
        "one reserve entry per line"
    );
    assert_eq!(app.check_ledger().await, (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_and_releases_of_one_shipment_racing_all_succeed_and_agree_with_the_ledger() {
    let app = TestApp::spawn().await;
    let (hamburg, berlin, steel, copper) = steel_in_hamburg_and_copper_in_berlin(&app).await;
    let shipment = Uuid::now_v7();
    app.reserve(shipment, &[(&hamburg, &steel, "10")])
        .await
        .unwrap();
    // Reservations of a held line and a new one, releases of all and of steel alone, in every
    // interleaving the scheduler picks: none may deadlock, fail or leave a line counted twice.
    let lines = [(&hamburg, &steel, "10"), (&berlin, &copper, "5")];
    let answers = race(&app, 16, shipment, lines, |i| match i % 4 {
        1 => Some(release_request(shipment, None, None)),
        3 => Some(release_request(shipment, None, Some(&steel))),
        _ => None,
    })
    .await;
    for answer in answers {
        answer.unwrap_or_else(|status| panic!("refused: {status:?}"));
    }
    let lines = held_against_ledger(&app, shipment).await;
    assert_eq!(lines.len(), 2, "one reservation per line: {lines:?}");
    for (warehouse, material, held, booked) in &lines {
        assert_eq!(
            decimal_text(held),
            decimal_text(booked),
            "{warehouse}/{material}: the ledger's net reserve is what is held"
        );
    }
    for (warehouse, material) in [(&hamburg, &steel), (&berlin, &copper)] {
        let held = lines
            .iter()
            .find(|l| l.0.to_string() == warehouse.id && l.1.to_string() == material.id)
            .map(|l| decimal_text(&l.2));
        assert_eq!(
            Some(decimal_text(&app.level(warehouse, material).await.1)),
            held,
            "the level reserves what the shipment holds"
        );
    }
    assert_eq!(app.check_ledger().await, (2, 0));
}

/// A decimal as text without trailing zeros ("10.000" and "10" alike).
fn decimal_text(text: &str) -> String {
    text.parse::<rust_decimal::Decimal>()
        .unwrap()
        .normalize()
        .to_string()
}
