#![allow(clippy::unwrap_used)]

//! The planning saga end to end, with all five services as real servers: the whole life of a
//! shipment, refusals that leave nothing behind, peers that go away mid-saga, and racing plans.

mod common;

use common::*;
use logistics_proto::fleet::v1 as fleetpb;
use logistics_proto::identity::v1 as idpb;
use logistics_proto::inventory::v1 as invpb;
use logistics_proto::shipment::v1 as pb;
use tonic::Code;
use uuid::Uuid;

const HELD: invpb::ReservationStatus = invpb::ReservationStatus::Held;
const RELEASED: invpb::ReservationStatus = invpb::ReservationStatus::Released;
const CONSUMED: invpb::ReservationStatus = invpb::ReservationStatus::Consumed;

#[tokio::test]
async fn a_shipment_goes_from_draft_to_delivered_with_the_ledger_showing_reserve_and_consume() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack
        .draft(&world, &[(&world.bolts, "10"), (&world.nuts, "5")])
        .await;
    assert_eq!(status_of(&draft), pb::ShipmentStatus::Draft);
    assert_eq!(draft.total_weight_kg.as_ref().unwrap().value, "45");
    assert_eq!(draft.destination.as_ref().unwrap().city, "Hamburg");

    let planned = stack.plan(&draft.id).await.unwrap();
    assert_eq!(status_of(&planned), pb::ShipmentStatus::Planned);
    assert_eq!(planned.truck_id, world.truck.id);
    assert_eq!(planned.driver_id, world.driver.id);
    assert!(planned.plan_time.is_some());
    assert_eq!(
        stack.reservations(&draft.id).await,
        [(HELD, "10".to_owned()), (HELD, "5".to_owned())]
    );
    let booked = stack.active_assignments(&draft.id).await;
    assert_eq!(booked.len(), 1);
    assert_eq!(booked[0].id, planned.assignment_id);
    assert_eq!(
        stack.level(&world.warehouse, &world.bolts).await,
        ("100".to_owned(), "10".to_owned())
    );

    let dispatched = stack.dispatch(&draft.id).await.unwrap();
    assert_eq!(status_of(&dispatched), pb::ShipmentStatus::Dispatched);
    assert_eq!(
        stack.reservations(&draft.id).await,
        [(CONSUMED, "10".to_owned()), (CONSUMED, "5".to_owned())]
    );
    assert_eq!(
        stack.level(&world.warehouse, &world.bolts).await,
        ("90".to_owned(), "0".to_owned())
    );
    assert_eq!(
        stack.ledger(&world.warehouse, &world.bolts).await,
        ["receipt", "reserve", "consume"]
    );

    // The booked driver takes it on the road and delivers it.
    let driver = stack
        .token(&[idpb::Role::Driver], None, Some(&world.driver.id))
        .await;
    let departed = stack
        .track_as(&driver, &draft.id, pb::TrackingEventKind::Departed)
        .await
        .unwrap();
    assert_eq!(
        status_of(departed.shipment.as_ref().unwrap()),
        pb::ShipmentStatus::InTransit
    );
    let delivered = stack.deliver_as(&driver, &draft.id).await.unwrap();
    assert_eq!(
        status_of(delivered.shipment.as_ref().unwrap()),
        pb::ShipmentStatus::Delivered
    );
    let proof = delivered.proof_of_delivery.unwrap();
    assert_eq!(proof.recipient_name, "Erika Mustermann");
    assert_eq!(proof.content_sha256.len(), 64);

    // The recipient's name and signature are sealed at rest; the saga forgot its credentials.
    let db = stack.db().await;
    let (name, content): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT recipient_name, content FROM shipment.proofs_of_delivery WHERE shipment_id = $1",
    )
    .bind(Uuid::parse_str(&draft.id).unwrap())
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(!String::from_utf8_lossy(&name).contains("Mustermann"));
    assert!(!content.windows(9).any(|w| w == b"signature"));
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM shipment.sagas WHERE shipment_id = $1 AND credentials IS NOT NULL",
    )
    .bind(Uuid::parse_str(&draft.id).unwrap())
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(kept, 0);
    assert_eq!(
        stack.sagas(&draft.id).await,
        [
            ("plan".to_owned(), "done".to_owned(), "end".to_owned()),
            ("dispatch".to_owned(), "done".to_owned(), "end".to_owned()),
        ]
    );
}

/// Plans `id`, retrying while the answer is ABORTED: a saga parked by an unreachable peer may be
/// in the hands of recovery when the call arrives, and ABORTED says "retry" (as clients do).
async fn plan_when_free(stack: &Stack, id: &str) -> pb::Shipment {
    for _ in 0..100 {
        match stack.plan(id).await {
            Err(status) if status.code() == Code::Aborted => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other.unwrap(),
        }
    }
    panic!("the shipment's saga never came free");
}

#[tokio::test]
async fn not_enough_stock_fails_the_plan_with_nothing_reserved_or_booked() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack
        .draft(&world, &[(&world.bolts, "10"), (&world.nuts, "500")])
        .await;

    let refused = expect_code(stack.plan(&draft.id).await, Code::FailedPrecondition);
    let kinds: Vec<String> = preconditions(&refused).into_iter().map(|p| p.0).collect();
    assert_eq!(kinds, ["INSUFFICIENT_STOCK"]);

    assert!(
        stack
            .reservations(&draft.id)
            .await
            .iter()
            .all(|(s, _)| *s != HELD)
    );
    assert!(stack.assignments(&draft.id).await.is_empty());
    assert_eq!(
        stack.level(&world.warehouse, &world.bolts).await,
        ("100".to_owned(), "0".to_owned())
    );
    // Still a draft that can be edited and planned again.
    let after = stack.get(&draft.id).await;
    assert_eq!(status_of(&after), pb::ShipmentStatus::Draft);
    assert_eq!(
        stack.sagas(&draft.id).await,
        [("plan".to_owned(), "failed".to_owned(), "end".to_owned())]
    );
}

#[tokio::test]
async fn no_free_truck_releases_the_reservation_and_books_nothing() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let first = stack.draft(&world, &[(&world.bolts, "10")]).await;
    stack.plan(&first.id).await.unwrap();

    // A second shipment in the same window: the only truck is taken.
    let mut client = stack.client().await;
    let second = client
        .create_shipment(authed(
            &stack.admin_token,
            pb::CreateShipmentRequest {
                request_id: Uuid::now_v7().to_string(),
                shipment: Some(pb::Shipment {
                    pickup_window: first.pickup_window,
                    delivery_window: first.delivery_window,
                    ..new_shipment(&world)
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .shipment
        .unwrap();
    client
        .create_shipment_item(authed(
            &stack.admin_token,
            pb::CreateShipmentItemRequest {
                request_id: String::new(),
                shipment_item: Some(pb::ShipmentItem {
                    shipment_id: second.id.clone(),
                    material_id: world.nuts.id.clone(),
                    quantity: decimal("3"),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();

    let refused = expect_code(stack.plan(&second.id).await, Code::FailedPrecondition);
    let kinds: Vec<String> = preconditions(&refused).into_iter().map(|p| p.0).collect();
    assert_eq!(kinds, ["NO_TRUCK_AVAILABLE"]);
    assert_eq!(
        stack.reservations(&second.id).await,
        [(RELEASED, "3".to_owned())]
    );
    assert!(stack.active_assignments(&second.id).await.is_empty());
    assert_eq!(
        stack.level(&world.warehouse, &world.nuts).await,
        ("100".to_owned(), "0".to_owned())
    );
    assert_eq!(
        stack.ledger(&world.warehouse, &world.nuts).await,
        ["receipt", "reserve", "release"]
    );
}

#[tokio::test]
async fn fleet_unreachable_mid_saga_is_unavailable_leaves_nothing_and_a_retry_plans_once() {
    let mut stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "7")]).await;

    stack.stop_fleet().await;
    let failed = expect_code(stack.plan(&draft.id).await, Code::Unavailable);
    assert!(!failed.message().contains("127.0.0.1"), "{failed:?}");
    assert!(
        stack
            .reservations(&draft.id)
            .await
            .iter()
            .all(|(s, _)| *s != HELD),
        "the reservation made before fleet was needed is released"
    );
    assert_eq!(
        stack.level(&world.warehouse, &world.bolts).await,
        ("100".to_owned(), "0".to_owned())
    );

    stack.start_fleet().await;
    let planned = plan_when_free(&stack, &draft.id).await;
    assert_eq!(status_of(&planned), pb::ShipmentStatus::Planned);
    let held: Vec<_> = stack
        .reservations(&draft.id)
        .await
        .into_iter()
        .filter(|(s, _)| *s == HELD)
        .collect();
    assert_eq!(held, [(HELD, "7".to_owned())]);
    assert_eq!(stack.active_assignments(&draft.id).await.len(), 1);
    assert_eq!(
        stack.level(&world.warehouse, &world.bolts).await,
        ("100".to_owned(), "7".to_owned())
    );
}

#[tokio::test]
async fn inventory_unreachable_is_unavailable_and_a_retry_plans_once() {
    let mut stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.nuts, "2")]).await;

    stack.stop_inventory().await;
    expect_code(stack.plan(&draft.id).await, Code::Unavailable);
    stack.start_inventory().await;
    assert!(
        stack
            .reservations(&draft.id)
            .await
            .iter()
            .all(|(s, _)| *s != HELD)
    );
    assert!(stack.active_assignments(&draft.id).await.is_empty());

    let planned = plan_when_free(&stack, &draft.id).await;
    assert_eq!(status_of(&planned), pb::ShipmentStatus::Planned);
    assert_eq!(
        stack.reservations(&draft.id).await,
        [(HELD, "2".to_owned())]
    );
    assert_eq!(stack.active_assignments(&draft.id).await.len(), 1);
}

#[tokio::test]
async fn concurrent_plans_of_one_shipment_make_one_plan() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "4")]).await;

    let attempts = (0..8).map(|_| stack.plan(&draft.id));
    let results = futures::future::join_all(attempts).await;
    let planned = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(planned, 1, "{results:?}");
    for failed in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(failed.code(), Code::Aborted | Code::FailedPrecondition),
            "{failed:?}"
        );
    }
    assert_eq!(
        stack.reservations(&draft.id).await,
        [(HELD, "4".to_owned())]
    );
    assert_eq!(stack.assignments(&draft.id).await.len(), 1);
    assert_eq!(
        stack.level(&world.warehouse, &world.bolts).await,
        ("100".to_owned(), "4".to_owned())
    );
}

#[tokio::test]
async fn a_plan_replayed_with_its_request_id_answers_the_planned_shipment() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "1")]).await;
    let request = pb::PlanShipmentRequest {
        id: draft.id.clone(),
        etag: String::new(),
        request_id: Uuid::now_v7().to_string(),
    };
    let mut client = stack.client().await;
    let first = client
        .plan_shipment(authed(&stack.admin_token, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = client
        .plan_shipment(authed(&stack.admin_token, request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.shipment.unwrap().id, again.shipment.unwrap().id);
    // Without the request id it is an illegal transition naming the status.
    let refused = expect_code(stack.plan(&draft.id).await, Code::FailedPrecondition);
    assert!(refused.message().contains("PLANNED"), "{refused:?}");
    assert_eq!(stack.assignments(&draft.id).await.len(), 1);
}

#[tokio::test]
async fn cancelling_a_planned_shipment_releases_its_stock_and_frees_its_truck() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "6")]).await;
    stack.plan(&draft.id).await.unwrap();

    let cancelled = stack.cancel(&draft.id).await.unwrap();
    assert_eq!(status_of(&cancelled), pb::ShipmentStatus::Cancelled);
    assert_eq!(cancelled.status_reason, "customer changed their mind");
    assert_eq!(
        stack.reservations(&draft.id).await,
        [(RELEASED, "6".to_owned())]
    );
    let bookings = stack.assignments(&draft.id).await;
    assert_eq!(bookings.len(), 1);
    assert_eq!(
        bookings[0].status,
        fleetpb::AssignmentStatus::Cancelled as i32
    );
    // The truck is free again for another shipment in the same window.
    let next = stack.draft(&world, &[(&world.nuts, "1")]).await;
    stack.plan(&next.id).await.unwrap();
}

/// Dispatches with inventory stopped: the answer is UNAVAILABLE and the saga stays parked.
async fn dispatch_while_inventory_is_down(stack: &mut Stack, world: &World) -> pb::Shipment {
    let draft = stack.draft(world, &[(&world.bolts, "5")]).await;
    stack.plan(&draft.id).await.unwrap();
    stack.stop_inventory().await;
    expect_code(stack.dispatch(&draft.id).await, Code::Unavailable);
    assert_eq!(
        status_of(&stack.get(&draft.id).await),
        pb::ShipmentStatus::Planned
    );
    assert_eq!(
        stack.sagas(&draft.id).await[1],
        (
            "dispatch".to_owned(),
            "running".to_owned(),
            "consume".to_owned()
        )
    );
    // While the saga is parked the shipment cannot be edited or planned again.
    let edit = stack.cancel(&draft.id).await;
    assert!(edit.is_err(), "{edit:?}");
    stack.start_inventory().await;
    draft
}

#[tokio::test]
async fn a_dispatch_parked_by_an_unreachable_inventory_is_finished_by_the_next_call() {
    let mut stack = Stack::spawn_with(shipment::config::SagaConfig {
        recovery_interval_ms: 600_000,
        ..quick_sagas()
    })
    .await;
    let world = stack.world().await;
    let draft = dispatch_while_inventory_is_down(&mut stack, &world).await;

    let dispatched = stack.dispatch(&draft.id).await.unwrap();
    assert_eq!(status_of(&dispatched), pb::ShipmentStatus::Dispatched);
    assert_eq!(
        stack.reservations(&draft.id).await,
        [(CONSUMED, "5".to_owned())]
    );
    assert_eq!(
        stack.ledger(&world.warehouse, &world.bolts).await,
        ["receipt", "reserve", "consume"]
    );
    assert_eq!(
        stack.sagas(&draft.id).await.len(),
        2,
        "the parked saga was taken over"
    );
}

#[tokio::test]
async fn a_parked_saga_is_finished_by_recovery_without_any_call() {
    let mut stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = dispatch_while_inventory_is_down(&mut stack, &world).await;

    let mut dispatched = false;
    for _ in 0..100 {
        if status_of(&stack.get(&draft.id).await) == pb::ShipmentStatus::Dispatched {
            dispatched = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(dispatched, "recovery did not finish the parked dispatch");
    assert_eq!(
        stack.ledger(&world.warehouse, &world.bolts).await,
        ["receipt", "reserve", "consume"]
    );
    assert_eq!(
        stack.sagas(&draft.id).await[1],
        ("dispatch".to_owned(), "done".to_owned(), "end".to_owned())
    );
}

#[tokio::test]
async fn one_trace_id_follows_a_plan_from_shipment_to_partner_inventory_and_fleet() {
    let logs = logistics_testkit::captured_logs();
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "2")]).await;
    let trace = format!("{:032x}", Uuid::now_v7().as_u128());
    let mut request = authed(
        &stack.admin_token,
        pb::PlanShipmentRequest {
            id: draft.id.clone(),
            etag: String::new(),
            request_id: String::new(),
        },
    );
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace}-00f067aa0ba902b7-01").parse().unwrap(),
    );
    stack.client().await.plan_shipment(request).await.unwrap();

    // Every call the plan made, in every service, finished within the caller's trace: the
    // customer check, the reservation and the booking, and nothing else.
    let text = logs.contents();
    let finished: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("rpc finished") && line.contains(&trace))
        .collect();
    for method in [
        "ShipmentService/PlanShipment",
        "PartnerService/GetPartner",
        "InventoryService/ReserveStock",
        "FleetService/AssignAvailable",
    ] {
        assert!(
            finished.iter().any(|line| line.contains(method)),
            "no {method} in trace {trace}: {finished:#?}"
        );
    }
    assert_eq!(finished.len(), 4, "{finished:#?}");
}

#[tokio::test]
async fn a_plan_asks_each_owner_again_a_deleted_material_fails_it_and_a_discontinued_one_ships() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let mut inventory = stack.inventory_client().await;

    // Deleted after the item was added (it had no stock, so inventory let it go): ReserveStock
    // refuses it, and the refusal names the item's field.
    let gone = stack.material(&world.warehouse, "1", "0").await;
    let draft = stack
        .draft(&world, &[(&world.bolts, "1"), (&gone, "1")])
        .await;
    inventory
        .delete_material(authed(
            &stack.admin_token,
            invpb::DeleteMaterialRequest {
                id: gone.id.clone(),
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    let refused = expect_code(stack.plan(&draft.id).await, Code::FailedPrecondition);
    assert_eq!(
        preconditions(&refused),
        [(
            "UNKNOWN_REFERENCE".to_owned(),
            "shipment_item.material_id".to_owned()
        )]
    );
    assert!(stack.reservations(&draft.id).await.is_empty());
    assert!(stack.assignments(&draft.id).await.is_empty());
    assert_eq!(
        stack.sagas(&draft.id).await,
        [("plan".to_owned(), "failed".to_owned(), "end".to_owned())]
    );

    // Discontinued only means no more receipts: the stock there still ships.
    let other = stack.draft(&world, &[(&world.nuts, "2")]).await;
    inventory
        .update_material(authed(
            &stack.admin_token,
            invpb::UpdateMaterialRequest {
                material: Some(invpb::Material {
                    id: world.nuts.id.clone(),
                    status: invpb::MaterialStatus::Discontinued as i32,
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["status".to_owned()],
                }),
            },
        ))
        .await
        .unwrap();
    let planned = stack.plan(&other.id).await.unwrap();
    assert_eq!(status_of(&planned), pb::ShipmentStatus::Planned);
    assert_eq!(
        stack.reservations(&other.id).await,
        [(HELD, "2".to_owned())]
    );
}

/// A saga's last step writes the shipment's new status and the saga's end in one statement:
/// a replica that lost the saga's lease writes neither, the one holding it writes both.
#[tokio::test]
async fn the_status_change_and_the_sagas_end_are_written_together_or_not_at_all() {
    use logistics_platform::context::DbContext;
    use shipment::domain::status::Status;
    use shipment::store::sagas;
    use shipment::store::shipments::{self, StatusChange};

    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "1")]).await;
    let id = Uuid::parse_str(&draft.id).unwrap();
    let service = stack.runtime_pool().await;
    let context = DbContext::system(Some(stack.identity.tenant_id));
    let (owner, intruder) = (Uuid::now_v7(), Uuid::now_v7());

    // A cancel saga leased to `owner`, marking the draft, as a start writes it.
    let mut tx = context.begin(&service).await.unwrap();
    shipments::lock(&mut tx, id).await.unwrap();
    let mut saga = sagas::insert(
        &mut tx,
        &leased_saga(stack.identity.tenant_id, id, "cancel", "commit", owner),
        60.0,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    saga.state = "done".to_owned();
    saga.step = "end".to_owned();
    let change = StatusChange {
        reason: Some("no longer needed".to_owned()),
        end_saga: true,
        ..StatusChange::default()
    };
    let db = stack.db().await;
    let rows = || async {
        let shipment: (String, Option<Uuid>, String, i32) = sqlx::query_as(
            "SELECT status, saga_id, status_reason, version FROM shipment.shipments WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
        let saga: (String, String, bool, bool) = sqlx::query_as(
            "SELECT state, step, credentials IS NULL, finished_at IS NOT NULL \
             FROM shipment.sagas WHERE shipment_id = $1",
        )
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
        (shipment, saga)
    };

    let finish = |replica: Uuid| {
        let (service, context, saga, change) = (&service, &context, &saga, &change);
        async move {
            let mut tx = context.begin(service).await.unwrap();
            shipments::lock(&mut tx, id).await.unwrap();
            let row = shipments::set_status_saving(
                &mut tx,
                id,
                Status::Cancelled,
                change,
                sagas::Save {
                    saga,
                    owner: replica,
                    lease_seconds: 60.0,
                },
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
            row
        }
    };

    let before = rows().await;
    assert_eq!(
        (before.0.0.as_str(), before.0.1, &before.1),
        (
            "draft",
            Some(saga.id),
            &("running".to_owned(), "commit".to_owned(), false, false)
        )
    );
    // Another replica holds the lease: nothing is written, neither row.
    assert!(finish(intruder).await.is_none());
    assert_eq!(rows().await, before);
    // The owner: both.
    let row = finish(owner).await.unwrap();
    assert_eq!((row.status.as_str(), row.saga_id), ("cancelled", None));
    assert_eq!(
        rows().await,
        (
            (
                "cancelled".to_owned(),
                None,
                "no longer needed".to_owned(),
                before.0.3 + 1
            ),
            ("done".to_owned(), "end".to_owned(), true, true)
        )
    );
}

/// A running saga of `kind` at `step` on `shipment_id`, leased to `owner`, as a start writes it.
fn leased_saga(
    tenant_id: Uuid,
    shipment_id: Uuid,
    kind: &str,
    step: &str,
    owner: Uuid,
) -> shipment::store::sagas::SagaRow {
    shipment::store::sagas::SagaRow {
        tenant_id,
        id: Uuid::now_v7(),
        shipment_id,
        kind: kind.to_owned(),
        state: "running".to_owned(),
        step: step.to_owned(),
        started_by: Uuid::now_v7(),
        request_id: None,
        reason: String::new(),
        truck_id: None,
        driver_id: None,
        assignment_id: None,
        assign_attempt: 0,
        error_code: None,
        error_message: String::new(),
        credentials: Some(b"sealed".to_vec()),
        lease_owner: Some(owner),
        lease_until: None,
        created_at: time::OffsetDateTime::now_utc(),
    }
}

/// A plan's start reads the lines it will reserve in the statement that inserts the saga: the
/// live items in the order they were added, a deleted one left out, none for an empty draft;
/// the same lines a resumed saga reads item by item.
#[tokio::test]
async fn a_plans_start_reads_the_live_items_with_the_sagas_insert() {
    use logistics_platform::context::DbContext;
    use rust_decimal::Decimal;
    use shipment::store::items::{self, PlanLine};
    use shipment::store::{sagas, shipments};

    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let token = &stack.admin_token;
    let draft = stack.draft(&world, &[(&world.nuts, "2.5")]).await;
    let bolts = stack.add_item(token, &draft.id, &world.bolts, "3").await;
    stack
        .client()
        .await
        .delete_shipment_item(authed(
            token,
            pb::DeleteShipmentItemRequest {
                id: bolts.id,
                etag: String::new(),
            },
        ))
        .await
        .unwrap();
    // Added after the deletion, so last in the order of addition.
    stack.add_item(token, &draft.id, &world.bolts, "7").await;
    let empty = stack.draft(&world, &[]).await;

    let service = stack.runtime_pool().await;
    let context = DbContext::system(Some(stack.identity.tenant_id));
    let start = |shipment: &str| {
        let (service, context) = (&service, &context);
        let id = Uuid::parse_str(shipment).unwrap();
        let tenant_id = stack.identity.tenant_id;
        async move {
            let mut tx = context.begin(service).await.unwrap();
            shipments::lock(&mut tx, id).await.unwrap();
            let saga = leased_saga(tenant_id, id, "plan", "reserve", Uuid::now_v7());
            let (saga, lines) = sagas::insert_reading_lines(&mut tx, &saga, 60.0)
                .await
                .unwrap();
            let resumed: Vec<PlanLine> = items::of_shipment(&mut tx, id)
                .await
                .unwrap()
                .into_iter()
                .map(PlanLine::from)
                .collect();
            tx.rollback().await.unwrap();
            assert_eq!((saga.shipment_id, saga.kind.as_str()), (id, "plan"));
            assert_eq!(
                lines, resumed,
                "the start and a resumed saga read the same lines"
            );
            lines
        }
    };
    let material = |m: &invpb::Material| Uuid::parse_str(&m.id).unwrap();
    assert_eq!(
        start(&draft.id).await,
        [
            PlanLine {
                material_id: material(&world.nuts),
                quantity: Decimal::new(25, 1),
            },
            PlanLine {
                material_id: material(&world.bolts),
                quantity: Decimal::from(7),
            },
        ]
    );
    assert_eq!(start(&empty.id).await, []);
}
