//! The shipment status machine end to end, with all five services as real servers: every call
//! the machine forbids is refused naming the current status and changes nothing; exceptions,
//! resumes and cancels take the paths the planning saga tests do not; tracking events are
//! idempotent by the device's id, validated, stamped on their stops and paged in order; delivery
//! validates and keeps its proof; and the database itself refuses what the machine forbids, even
//! to the service's own role.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use logistics_proto::fleet::v1 as fleetpb;
use logistics_proto::inventory::v1 as invpb;
use logistics_proto::shipment::v1 as pb;
use logistics_proto::r#type::v1 as types;
use pb::TrackingEventKind as Kind;
use pb::shipment_service_client::ShipmentServiceClient;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use time::OffsetDateTime;
use tonic::transport::Channel;
use tonic::{Code, Status};
use uuid::Uuid;

const CONSUMED: invpb::ReservationStatus = invpb::ReservationStatus::Consumed;

// Fixtures ------------------------------------------------------------------------------------

/// A draft of one bolt picked up `day` days after tomorrow and delivered the day after: its
/// booking spans 30 hours, so drafts two days apart never compete for the world's one truck and
/// one driver.
async fn draft_on_day(stack: &Stack, world: &World, day: i64) -> pb::Shipment {
    let mut client = stack.client().await;
    let shipment = client
        .create_shipment(authed(
            &stack.admin_token,
            pb::CreateShipmentRequest {
                request_id: Uuid::now_v7().to_string(),
                shipment: Some(pb::Shipment {
                    pickup_window: Some(window_hours(day * 24, day * 24 + 4)),
                    delivery_window: Some(window_hours(day * 24 + 20, day * 24 + 30)),
                    ..new_shipment(world)
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .shipment
        .unwrap();
    stack
        .add_item(&stack.admin_token, &shipment.id, &world.bolts, "1")
        .await;
    stack.get(&shipment.id).await
}

/// A stop of a draft: number `sequence`, in Berlin, expected in the shipment's first days.
async fn stop(stack: &Stack, shipment_id: &str, sequence: i32, kind: pb::StopKind) -> pb::Stop {
    stack
        .client()
        .await
        .create_stop(authed(
            &stack.admin_token,
            pb::CreateStopRequest {
                request_id: Uuid::now_v7().to_string(),
                stop: Some(pb::Stop {
                    shipment_id: shipment_id.to_owned(),
                    sequence,
                    kind: kind as i32,
                    address: Some(pb::AddressSnapshot {
                        line1: format!("Stopweg {sequence}"),
                        city: "Berlin".to_owned(),
                        country_code: "DE".to_owned(),
                        ..Default::default()
                    }),
                    window: Some(window_hours(48, 72)),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .stop
        .unwrap()
}

async fn get_stop(stack: &Stack, id: &str) -> pb::Stop {
    stack
        .client()
        .await
        .get_stop(authed(
            &stack.admin_token,
            pb::GetStopRequest { id: id.to_owned() },
        ))
        .await
        .unwrap()
        .into_inner()
        .stop
        .unwrap()
}

/// Plans and dispatches a draft.
async fn put_on_the_road(stack: &Stack, draft: &pb::Shipment) -> pb::Shipment {
    stack.plan(&draft.id).await.unwrap();
    let dispatched = stack.dispatch(&draft.id).await.unwrap();
    assert_eq!(status_of(&dispatched), pb::ShipmentStatus::Dispatched);
    dispatched
}

async fn planned_shipment(stack: &Stack, world: &World, day: i64) -> pb::Shipment {
    let draft = draft_on_day(stack, world, day).await;
    let planned = stack.plan(&draft.id).await.unwrap();
    assert_eq!(status_of(&planned), pb::ShipmentStatus::Planned);
    planned
}

async fn dispatched_shipment(stack: &Stack, world: &World, day: i64) -> pb::Shipment {
    let draft = draft_on_day(stack, world, day).await;
    put_on_the_road(stack, &draft).await
}

/// Dispatched, then departed.
async fn shipment_in_transit(stack: &Stack, world: &World, day: i64) -> pb::Shipment {
    let shipment = dispatched_shipment(stack, world, day).await;
    let departed = stack
        .track_as(&stack.admin_token, &shipment.id, Kind::Departed)
        .await
        .unwrap()
        .shipment
        .unwrap();
    assert_eq!(status_of(&departed), pb::ShipmentStatus::InTransit);
    departed
}

/// In transit, then an exception.
async fn shipment_in_exception(
    stack: &Stack,
    world: &World,
    day: i64,
    reason: &str,
) -> pb::Shipment {
    let shipment = shipment_in_transit(stack, world, day).await;
    let reported = report_exception(stack, &shipment.id, reason, None)
        .await
        .unwrap();
    assert_eq!(status_of(&reported), pb::ShipmentStatus::Exception);
    reported
}

async fn report_exception(
    stack: &Stack,
    id: &str,
    reason: &str,
    location: Option<types::LatLng>,
) -> Result<pb::Shipment, Status> {
    stack
        .client()
        .await
        .report_exception(authed(
            &stack.admin_token,
            pb::ReportExceptionRequest {
                id: id.to_owned(),
                reason: reason.to_owned(),
                location,
            },
        ))
        .await
        .map(|r| r.into_inner().shipment.unwrap())
}

/// A tracking event of `kind` for the shipment, happening now, with a fresh device id.
fn event(shipment_id: &str, kind: Kind) -> pb::TrackingEvent {
    pb::TrackingEvent {
        shipment_id: shipment_id.to_owned(),
        client_event_id: Uuid::now_v7().to_string(),
        kind: kind as i32,
        event_time: Some(minutes_from_now(0)),
        ..Default::default()
    }
}

async fn record_with(
    client: &mut ShipmentServiceClient<Channel>,
    token: &str,
    event: pb::TrackingEvent,
) -> Result<pb::RecordTrackingEventResponse, Status> {
    client
        .record_tracking_event(authed(
            token,
            pb::RecordTrackingEventRequest {
                tracking_event: Some(event),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn record(
    stack: &Stack,
    event: pb::TrackingEvent,
) -> Result<pb::RecordTrackingEventResponse, Status> {
    record_with(&mut stack.client().await, &stack.admin_token, event).await
}

async fn events_page(
    stack: &Stack,
    shipment_id: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListTrackingEventsResponse, Status> {
    stack
        .client()
        .await
        .list_tracking_events(authed(
            &stack.admin_token,
            pb::ListTrackingEventsRequest {
                shipment_id: shipment_id.to_owned(),
                page_size,
                page_token: page_token.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

/// Every tracking event of the shipment, oldest first (one page).
async fn events(stack: &Stack, shipment_id: &str) -> Vec<pb::TrackingEvent> {
    let page = events_page(stack, shipment_id, 1000, "").await.unwrap();
    assert!(page.next_page_token.is_empty());
    page.tracking_events
}

async fn deliver(
    stack: &Stack,
    id: &str,
    proof: Option<pb::ProofOfDelivery>,
) -> Result<pb::DeliverShipmentResponse, Status> {
    stack
        .client()
        .await
        .deliver_shipment(authed(
            &stack.admin_token,
            pb::DeliverShipmentRequest {
                id: id.to_owned(),
                proof_of_delivery: proof,
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn proof_of_delivery(
    stack: &Stack,
    shipment_id: &str,
) -> Result<pb::ProofOfDelivery, Status> {
    stack
        .client()
        .await
        .get_proof_of_delivery(authed(
            &stack.admin_token,
            pb::GetProofOfDeliveryRequest {
                shipment_id: shipment_id.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().proof_of_delivery.unwrap())
}

/// A valid proof: a small PNG signature handed over a minute ago.
fn good_proof() -> pb::ProofOfDelivery {
    pb::ProofOfDelivery {
        recipient_name: "Erika Mustermann".to_owned(),
        deliver_time: Some(minutes_from_now(-1)),
        content: b"\x89PNG\r\n\x1a\nsignature".to_vec(),
        content_type: "image/png".to_owned(),
        ..Default::default()
    }
}

/// `minutes` from now, to the whole second (what the database keeps exactly).
fn whole_seconds_from_now(minutes: i64) -> prost_types::Timestamp {
    let at = OffsetDateTime::now_utc() + time::Duration::minutes(minutes);
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: 0,
    }
}

/// `count(*)` of a query about one shipment (`$1`), as the superuser.
async fn count(stack: &Stack, sql: &'static str, shipment_id: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(Uuid::parse_str(shipment_id).unwrap())
        .fetch_one(&stack.db().await)
        .await
        .unwrap()
}

const TRACKING_ROWS: &str = "SELECT count(*) FROM shipment.tracking_events WHERE shipment_id = $1";
const PROOF_ROWS: &str = "SELECT count(*) FROM shipment.proofs_of_delivery WHERE shipment_id = $1";

/// The wire status without its prefix, as error messages name it (`IN_TRANSIT`).
fn upper(status: pb::ShipmentStatus) -> &'static str {
    status.as_str_name().trim_start_matches("SHIPMENT_STATUS_")
}

// The status machine ------------------------------------------------------------------------

/// A state-changing call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Plan,
    Dispatch,
    Cancel,
    Deliver,
    ReportException,
    Track(Kind),
}

const EVERY_CALL: [Call; 10] = [
    Call::Plan,
    Call::Dispatch,
    Call::Cancel,
    Call::Deliver,
    Call::ReportException,
    Call::Track(Kind::Resumed),
    Call::Track(Kind::Position),
    Call::Track(Kind::Departed),
    Call::Track(Kind::Delayed),
    Call::Track(Kind::Note),
];

/// Whether the contract allows `call` on a shipment in `status`.
fn legal(status: pb::ShipmentStatus, call: Call) -> bool {
    use pb::ShipmentStatus as S;
    match (status, call) {
        (S::Draft, Call::Plan | Call::Cancel)
        | (S::Planned, Call::Dispatch | Call::Cancel)
        | (S::Dispatched, Call::ReportException)
        | (S::InTransit, Call::Deliver | Call::ReportException)
        | (S::Exception, Call::Cancel | Call::Track(Kind::Resumed)) => true,
        (S::Dispatched | S::InTransit | S::Exception, Call::Track(kind)) => kind != Kind::Resumed,
        _ => false,
    }
}

/// The PreconditionFailure kind of an illegal `call` on a shipment in `status`: tracking a
/// shipment that is not on the road is NOT_ON_THE_ROAD; anything else (resuming included) is an
/// ILLEGAL_TRANSITION.
fn refusal(status: pb::ShipmentStatus, call: Call) -> &'static str {
    use pb::ShipmentStatus as S;
    let on_the_road = matches!(status, S::Dispatched | S::InTransit | S::Exception);
    match call {
        Call::Track(kind) if kind != Kind::Resumed && !on_the_road => "NOT_ON_THE_ROAD",
        _ => "ILLEGAL_TRANSITION",
    }
}

async fn attempt(stack: &Stack, id: &str, call: Call) -> Result<(), Status> {
    match call {
        Call::Plan => stack.plan(id).await.map(|_| ()),
        Call::Dispatch => stack.dispatch(id).await.map(|_| ()),
        Call::Cancel => stack.cancel(id).await.map(|_| ()),
        Call::Deliver => deliver(stack, id, Some(good_proof())).await.map(|_| ()),
        Call::ReportException => report_exception(stack, id, "flat tyre", None)
            .await
            .map(|_| ()),
        Call::Track(kind) => stack
            .track_as(&stack.admin_token, id, kind)
            .await
            .map(|_| ()),
    }
}

/// The statuses of the shipment's fleet bookings.
async fn booking_statuses(stack: &Stack, shipment_id: &str) -> Vec<i32> {
    stack
        .assignments(shipment_id)
        .await
        .iter()
        .map(|a| a.status)
        .collect()
}

/// Tries every call the contract forbids on the shipment and checks each is refused naming its
/// status, with nothing changed (status, etag, sagas, tracking events, proof). Returns how many
/// calls were refused.
async fn refuse_every_illegal_call(stack: &Stack, shipment: &pb::Shipment) -> usize {
    let status = status_of(shipment);
    let name = upper(status);
    let before = stack.get(&shipment.id).await;
    assert_eq!(status_of(&before), status);
    let sagas = stack.sagas(&shipment.id).await;
    let reservations = stack.reservations(&shipment.id).await;
    let bookings = booking_statuses(stack, &shipment.id).await;
    let tracked = count(stack, TRACKING_ROWS, &shipment.id).await;
    let proofs = count(stack, PROOF_ROWS, &shipment.id).await;
    let mut refused = 0;
    for call in EVERY_CALL.into_iter().filter(|c| !legal(status, *c)) {
        let answer = expect_code(
            attempt(stack, &shipment.id, call).await,
            Code::FailedPrecondition,
        );
        assert!(
            answer.message().ends_with(&format!(" {name}")),
            "{call:?} on {name}: {answer:?}"
        );
        assert_eq!(
            preconditions(&answer),
            [(refusal(status, call).to_owned(), "status".to_owned())],
            "{call:?} on {name}"
        );
        let after = stack.get(&shipment.id).await;
        assert_eq!(status_of(&after), status, "{call:?} on {name}");
        assert_eq!(after.etag, before.etag, "{call:?} on {name}");
        refused += 1;
    }
    assert_eq!(stack.sagas(&shipment.id).await, sagas, "{name}");
    assert_eq!(
        stack.reservations(&shipment.id).await,
        reservations,
        "{name}"
    );
    assert_eq!(
        booking_statuses(stack, &shipment.id).await,
        bookings,
        "{name}"
    );
    assert_eq!(
        count(stack, TRACKING_ROWS, &shipment.id).await,
        tracked,
        "{name}"
    );
    assert_eq!(
        count(stack, PROOF_ROWS, &shipment.id).await,
        proofs,
        "{name}"
    );
    refused
}

#[tokio::test]
async fn every_call_the_status_machine_forbids_is_refused_naming_the_status_and_changes_nothing() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;

    let draft = draft_on_day(&stack, &world, 2).await;
    let planned = planned_shipment(&stack, &world, 4).await;
    let dispatched = dispatched_shipment(&stack, &world, 6).await;
    let in_transit = shipment_in_transit(&stack, &world, 8).await;
    let exception = shipment_in_exception(&stack, &world, 10, "road closed").await;
    let delivered = {
        let shipment = shipment_in_transit(&stack, &world, 12).await;
        deliver(&stack, &shipment.id, Some(good_proof()))
            .await
            .unwrap()
            .shipment
            .unwrap()
    };
    let cancelled = {
        let shipment = draft_on_day(&stack, &world, 14).await;
        stack.cancel(&shipment.id).await.unwrap()
    };

    // (shipment, how many of the ten calls it refuses)
    let cases = [
        (&draft, pb::ShipmentStatus::Draft, 8),
        (&planned, pb::ShipmentStatus::Planned, 8),
        (&dispatched, pb::ShipmentStatus::Dispatched, 5),
        (&in_transit, pb::ShipmentStatus::InTransit, 4),
        (&exception, pb::ShipmentStatus::Exception, 4),
        (&delivered, pb::ShipmentStatus::Delivered, 10),
        (&cancelled, pb::ShipmentStatus::Cancelled, 10),
    ];
    for (shipment, status, refusals) in cases {
        assert_eq!(status_of(shipment), status);
        assert_eq!(
            refuse_every_illegal_call(&stack, shipment).await,
            refusals,
            "{status:?}"
        );
    }
}

// Legal paths ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_exception_is_reported_while_dispatched_or_in_transit_with_a_located_note_and_resumes_in_transit()
 {
    let stack = Stack::spawn().await;
    let world = stack.world().await;

    // From DISPATCHED, with where it happened.
    let dispatched = dispatched_shipment(&stack, &world, 2).await;
    let berlin = types::LatLng {
        latitude: 52.52,
        longitude: 13.405,
    };
    let reported = report_exception(&stack, &dispatched.id, "engine warning light", Some(berlin))
        .await
        .unwrap();
    assert_eq!(status_of(&reported), pb::ShipmentStatus::Exception);
    assert_eq!(reported.status_reason, "engine warning light");
    assert_ne!(reported.etag, dispatched.etag);
    let notes = events(&stack, &dispatched.id).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].kind, Kind::Note as i32);
    assert_eq!(notes[0].note, "exception: engine warning light");
    assert_eq!(notes[0].location, Some(berlin));
    assert_eq!(notes[0].shipment_id, dispatched.id);
    assert_eq!(count(&stack, TRACKING_ROWS, &dispatched.id).await, 1);

    // Back on the road: EXCEPTION to IN_TRANSIT, recorded as the RESUMED event.
    let resumed = stack
        .track_as(&stack.admin_token, &dispatched.id, Kind::Resumed)
        .await
        .unwrap();
    assert_eq!(
        status_of(resumed.shipment.as_ref().unwrap()),
        pb::ShipmentStatus::InTransit
    );
    assert_eq!(resumed.tracking_event.unwrap().kind, Kind::Resumed as i32);
    assert_eq!(
        status_of(&stack.get(&dispatched.id).await),
        pb::ShipmentStatus::InTransit
    );

    // From IN_TRANSIT, without a location; resumed, it can be delivered.
    let moving = shipment_in_transit(&stack, &world, 4).await;
    let reported = report_exception(&stack, &moving.id, "traffic jam on the A2", None)
        .await
        .unwrap();
    assert_eq!(status_of(&reported), pb::ShipmentStatus::Exception);
    assert_eq!(reported.status_reason, "traffic jam on the A2");
    let kinds: Vec<i32> = events(&stack, &moving.id)
        .await
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [Kind::Departed as i32, Kind::Note as i32]);
    assert_eq!(events(&stack, &moving.id).await[1].location, None);
    let resumed = stack
        .track_as(&stack.admin_token, &moving.id, Kind::Resumed)
        .await
        .unwrap();
    assert_eq!(
        status_of(resumed.shipment.as_ref().unwrap()),
        pb::ShipmentStatus::InTransit
    );
    let delivered = deliver(&stack, &moving.id, Some(good_proof()))
        .await
        .unwrap();
    assert_eq!(
        status_of(delivered.shipment.as_ref().unwrap()),
        pb::ShipmentStatus::Delivered
    );
}

#[tokio::test]
async fn cancelling_after_an_exception_cancels_the_booking_keeps_the_stock_consumed_and_records_why()
 {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let broken = shipment_in_exception(&stack, &world, 2, "axle broken").await;
    assert_eq!(stack.active_assignments(&broken.id).await.len(), 1);

    let cancelled = stack.cancel(&broken.id).await.unwrap();
    assert_eq!(status_of(&cancelled), pb::ShipmentStatus::Cancelled);
    assert_eq!(cancelled.status_reason, "customer changed their mind");
    assert!(cancelled.cancel_time.is_some());
    assert_eq!(stack.get(&broken.id).await, cancelled);

    // The booking is cancelled; the goods left the warehouse, so the stock stays consumed.
    let bookings = stack.assignments(&broken.id).await;
    assert_eq!(bookings.len(), 1, "{bookings:?}");
    assert_eq!(bookings[0].id, broken.assignment_id);
    assert_eq!(
        bookings[0].status,
        fleetpb::AssignmentStatus::Cancelled as i32
    );
    assert_eq!(
        stack.reservations(&broken.id).await,
        [(CONSUMED, "1".to_owned())]
    );
    assert_eq!(
        stack.level(&world.warehouse, &world.bolts).await,
        ("99".to_owned(), "0".to_owned())
    );
    assert_eq!(
        stack.ledger(&world.warehouse, &world.bolts).await,
        ["receipt", "reserve", "consume"]
    );
    assert_eq!(
        stack.sagas(&broken.id).await,
        [
            ("plan".to_owned(), "done".to_owned(), "end".to_owned()),
            ("dispatch".to_owned(), "done".to_owned(), "end".to_owned()),
            ("cancel".to_owned(), "done".to_owned(), "end".to_owned()),
        ]
    );

    // The truck and driver are free again for the same window.
    let again = stack
        .client()
        .await
        .create_shipment(authed(
            &stack.admin_token,
            pb::CreateShipmentRequest {
                request_id: Uuid::now_v7().to_string(),
                shipment: Some(pb::Shipment {
                    pickup_window: broken.pickup_window,
                    delivery_window: broken.delivery_window,
                    ..new_shipment(&world)
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .shipment
        .unwrap();
    stack
        .client()
        .await
        .create_shipment_item(authed(
            &stack.admin_token,
            pb::CreateShipmentItemRequest {
                request_id: Uuid::now_v7().to_string(),
                shipment_item: Some(pb::ShipmentItem {
                    shipment_id: again.id.clone(),
                    material_id: world.nuts.id.clone(),
                    quantity: decimal("2"),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap();
    let replanned = stack.plan(&again.id).await.unwrap();
    assert_eq!(replanned.truck_id, world.truck.id);
}

#[tokio::test]
async fn cancelling_a_draft_happens_at_once_without_a_saga_or_a_booking() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = draft_on_day(&stack, &world, 2).await;
    assert!(draft.cancel_time.is_none());

    let cancelled = stack.cancel(&draft.id).await.unwrap();
    assert_eq!(status_of(&cancelled), pb::ShipmentStatus::Cancelled);
    assert_eq!(cancelled.status_reason, "customer changed their mind");
    assert!(cancelled.cancel_time.is_some());
    assert_ne!(cancelled.etag, draft.etag);
    assert_eq!(stack.get(&draft.id).await, cancelled);
    assert!(stack.sagas(&draft.id).await.is_empty());
    assert!(stack.assignments(&draft.id).await.is_empty());
    assert!(stack.reservations(&draft.id).await.is_empty());
    assert_eq!(
        stack.level(&world.warehouse, &world.bolts).await,
        ("100".to_owned(), "0".to_owned())
    );
}

// Tracking events -----------------------------------------------------------------------------

#[tokio::test]
async fn a_repeated_client_event_id_records_one_event_and_answers_with_the_first() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let shipment = dispatched_shipment(&stack, &world, 2).await;

    let first = pb::TrackingEvent {
        note: "km 12".to_owned(),
        ..event(&shipment.id, Kind::Position)
    };
    let recorded = record(&stack, first.clone()).await.unwrap();
    let recorded_event = recorded.tracking_event.unwrap();
    assert_eq!(recorded_event.note, "km 12");
    assert_eq!(recorded_event.client_event_id, first.client_event_id);

    // The device sends it again, even with other content: the first event is the answer.
    let again = record(
        &stack,
        pb::TrackingEvent {
            note: "km 13".to_owned(),
            ..first.clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(again.tracking_event.unwrap(), recorded_event);
    assert_eq!(
        status_of(again.shipment.as_ref().unwrap()),
        pb::ShipmentStatus::Dispatched
    );
    assert_eq!(count(&stack, TRACKING_ROWS, &shipment.id).await, 1);
    assert_eq!(events(&stack, &shipment.id).await, [recorded_event]);
}

/// Ten clients on connections of their own record `event` at once.
async fn record_ten_at_once(
    stack: &Stack,
    event: &pb::TrackingEvent,
) -> Vec<Result<pb::RecordTrackingEventResponse, Status>> {
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(stack.client().await);
    }
    let calls = clients
        .iter_mut()
        .map(|client| record_with(client, &stack.admin_token, event.clone()));
    futures::future::join_all(calls).await
}

#[tokio::test]
async fn ten_concurrent_recordings_of_one_client_event_id_record_one_event_and_all_answer_it() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let shipment = dispatched_shipment(&stack, &world, 2).await;

    let departed = event(&shipment.id, Kind::Departed);
    let results = record_ten_at_once(&stack, &departed).await;
    let ids: HashSet<String> = results
        .iter()
        .map(|r| {
            r.as_ref()
                .unwrap()
                .tracking_event
                .as_ref()
                .unwrap()
                .id
                .clone()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(count(&stack, TRACKING_ROWS, &shipment.id).await, 1);
    assert_eq!(
        status_of(&stack.get(&shipment.id).await),
        pb::ShipmentStatus::InTransit
    );
    // Announced once.
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM shipment.outbox WHERE shipment_id = $1 AND event_type = 'tracked'",
            &shipment.id,
        )
        .await,
        1
    );
}

#[tokio::test]
async fn ten_concurrent_resumes_with_one_client_event_id_all_answer_the_first_event() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let shipment = shipment_in_exception(&stack, &world, 2, "road closed").await;

    let resumed = event(&shipment.id, Kind::Resumed);
    let results = record_ten_at_once(&stack, &resumed).await;
    for result in &results {
        assert!(result.is_ok(), "{results:?}");
    }
    let ids: HashSet<String> = results
        .iter()
        .map(|r| {
            r.as_ref()
                .unwrap()
                .tracking_event
                .as_ref()
                .unwrap()
                .id
                .clone()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(
        status_of(&stack.get(&shipment.id).await),
        pb::ShipmentStatus::InTransit
    );
}

#[tokio::test]
async fn a_client_event_id_used_for_another_shipment_is_refused() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let first = dispatched_shipment(&stack, &world, 2).await;
    let second = dispatched_shipment(&stack, &world, 4).await;

    let departed = event(&first.id, Kind::Departed);
    record(&stack, departed.clone()).await.unwrap();
    let refused = expect_code(
        record(
            &stack,
            pb::TrackingEvent {
                shipment_id: second.id.clone(),
                ..departed
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&refused),
        ["tracking_event.client_event_id"]
    );
    assert_eq!(count(&stack, TRACKING_ROWS, &second.id).await, 0);
    let after = stack.get(&second.id).await;
    assert_eq!(status_of(&after), pb::ShipmentStatus::Dispatched);
    assert_eq!(after.etag, second.etag);
}

#[tokio::test]
async fn invalid_tracking_events_are_refused_naming_every_offending_field_and_record_nothing() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = draft_on_day(&stack, &world, 2).await;
    stop(&stack, &draft.id, 1, pb::StopKind::DropOff).await;
    let shipment = put_on_the_road(&stack, &draft).await;
    let other = draft_on_day(&stack, &world, 4).await;
    let foreign = stop(&stack, &other.id, 1, pb::StopKind::DropOff).await;

    let invalid = |event: pb::TrackingEvent| {
        let stack = &stack;
        async move {
            violated_fields(&expect_code(
                record(stack, event).await,
                Code::InvalidArgument,
            ))
        }
    };

    // ARRIVED needs the stop.
    assert_eq!(
        invalid(event(&shipment.id, Kind::Arrived)).await,
        ["tracking_event.stop_id"]
    );
    // An hour ahead of the server's clock.
    assert_eq!(
        invalid(pb::TrackingEvent {
            event_time: Some(minutes_from_now(60)),
            ..event(&shipment.id, Kind::Position)
        })
        .await,
        ["tracking_event.event_time"]
    );
    // Everything missing at once.
    assert_eq!(
        invalid(pb::TrackingEvent {
            kind: Kind::Unspecified as i32,
            event_time: None,
            ..event(&shipment.id, Kind::Position)
        })
        .await,
        ["tracking_event.kind", "tracking_event.event_time"]
    );
    // A stop of another shipment, arriving or departing.
    for kind in [Kind::Arrived, Kind::Departed] {
        assert_eq!(
            invalid(pb::TrackingEvent {
                stop_id: foreign.id.clone(),
                ..event(&shipment.id, kind)
            })
            .await,
            ["tracking_event.stop_id"],
            "{kind:?}"
        );
    }

    assert_eq!(count(&stack, TRACKING_ROWS, &shipment.id).await, 0);
    let after = stack.get(&shipment.id).await;
    assert_eq!(status_of(&after), pb::ShipmentStatus::Dispatched);
    assert_eq!(after.etag, shipment.etag);
    let untouched = get_stop(&stack, &foreign.id).await;
    assert_eq!(untouched.arrive_time, None);
    assert_eq!(untouched.depart_time, None);
    assert_eq!(untouched.etag, foreign.etag);
}

#[tokio::test]
async fn a_stop_of_another_shipment_is_refused_whatever_the_kind_of_event() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let shipment = dispatched_shipment(&stack, &world, 2).await;
    let other = draft_on_day(&stack, &world, 4).await;
    let foreign = stop(&stack, &other.id, 1, pb::StopKind::DropOff).await;

    for kind in [Kind::Position, Kind::Delayed, Kind::Note] {
        let refused = expect_code(
            record(
                &stack,
                pb::TrackingEvent {
                    stop_id: foreign.id.clone(),
                    ..event(&shipment.id, kind)
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&refused),
            ["tracking_event.stop_id"],
            "{kind:?}"
        );
    }
    assert_eq!(count(&stack, TRACKING_ROWS, &shipment.id).await, 0);
}

#[tokio::test]
async fn arrivals_and_departures_stamp_their_stop_and_a_second_arrival_keeps_the_first_stamp() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = draft_on_day(&stack, &world, 2).await;
    let pickup = stop(&stack, &draft.id, 1, pb::StopKind::Pickup).await;
    let drop_off = stop(&stack, &draft.id, 2, pb::StopKind::DropOff).await;
    let shipment = put_on_the_road(&stack, &draft).await;

    let at = |minutes: i64, kind: Kind, stop: &pb::Stop| pb::TrackingEvent {
        stop_id: stop.id.clone(),
        event_time: Some(whole_seconds_from_now(minutes)),
        ..event(&shipment.id, kind)
    };

    // Arriving at the pickup changes no status; leaving it puts the shipment in transit.
    let arrival = at(-40, Kind::Arrived, &pickup);
    let arrival_time = arrival.event_time;
    let arrived = record(&stack, arrival).await.unwrap();
    assert_eq!(
        status_of(arrived.shipment.as_ref().unwrap()),
        pb::ShipmentStatus::Dispatched
    );
    let departed = record(&stack, at(-30, Kind::Departed, &pickup))
        .await
        .unwrap();
    assert_eq!(
        status_of(departed.shipment.as_ref().unwrap()),
        pb::ShipmentStatus::InTransit
    );
    let stamped = get_stop(&stack, &pickup.id).await;
    assert_eq!(stamped.arrive_time, arrival_time);
    assert_eq!(
        stamped.depart_time,
        departed.tracking_event.unwrap().event_time
    );
    assert!(stamped.depart_time.is_some());

    // Two arrivals at the drop-off (two device ids): both recorded, the first one stamps.
    let first_arrival = at(-20, Kind::Arrived, &drop_off);
    let first_time = first_arrival.event_time;
    record(&stack, first_arrival).await.unwrap();
    let second = record(&stack, at(-10, Kind::Arrived, &drop_off))
        .await
        .unwrap();
    assert_eq!(second.tracking_event.as_ref().unwrap().stop_id, drop_off.id);
    let stamped = get_stop(&stack, &drop_off.id).await;
    assert_eq!(stamped.arrive_time, first_time);
    assert_eq!(stamped.depart_time, None);
    assert_eq!(count(&stack, TRACKING_ROWS, &shipment.id).await, 4);
}

#[tokio::test]
async fn tracking_events_page_oldest_first_and_a_page_token_is_bound_to_its_shipment() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let shipment = dispatched_shipment(&stack, &world, 2).await;
    let other = draft_on_day(&stack, &world, 4).await;
    let mut sent = Vec::new();
    for n in 1..=5 {
        let recorded = record(
            &stack,
            pb::TrackingEvent {
                note: format!("position {n}"),
                ..event(&shipment.id, Kind::Position)
            },
        )
        .await
        .unwrap();
        sent.push(recorded.tracking_event.unwrap().id);
    }

    let mut seen = Vec::new();
    let mut notes = Vec::new();
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = events_page(&stack, &shipment.id, 2, &token).await.unwrap();
        pages.push(page.tracking_events.len());
        for e in &page.tracking_events {
            seen.push(e.id.clone());
            notes.push(e.note.clone());
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages.len() < 10, "the pages never end");
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(seen, sent);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
    assert_eq!(
        notes,
        (1..=5).map(|n| format!("position {n}")).collect::<Vec<_>>()
    );

    // The second page's token, with another shipment.
    let first = events_page(&stack, &shipment.id, 2, "").await.unwrap();
    let refused = expect_code(
        events_page(&stack, &other.id, 2, &first.next_page_token).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&refused), ["page_token"]);
}

// Delivery ------------------------------------------------------------------------------------

#[tokio::test]
async fn delivering_without_a_valid_proof_is_refused_naming_every_offending_field() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let shipment = shipment_in_transit(&stack, &world, 2).await;

    let missing = expect_code(
        deliver(&stack, &shipment.id, None).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&missing), ["proof_of_delivery"]);

    let empty_name = pb::ProofOfDelivery {
        recipient_name: String::new(),
        ..good_proof()
    };
    let too_big = pb::ProofOfDelivery {
        content: vec![0x89; 1024 * 1024 + 1],
        ..good_proof()
    };
    let text = pb::ProofOfDelivery {
        content_type: "text/plain".to_owned(),
        ..good_proof()
    };
    let future = pb::ProofOfDelivery {
        deliver_time: Some(minutes_from_now(60)),
        ..good_proof()
    };
    for (proof, field) in [
        (empty_name, "proof_of_delivery.recipient_name"),
        (too_big, "proof_of_delivery.content"),
        (text, "proof_of_delivery.content_type"),
        (future, "proof_of_delivery.deliver_time"),
    ] {
        let refused = expect_code(
            deliver(&stack, &shipment.id, Some(proof)).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&refused), [field]);
    }

    let everything_wrong = pb::ProofOfDelivery {
        recipient_name: String::new(),
        deliver_time: Some(minutes_from_now(60)),
        content: vec![0x89; 1024 * 1024 + 1],
        content_type: "text/plain".to_owned(),
        ..Default::default()
    };
    let refused = expect_code(
        deliver(&stack, &shipment.id, Some(everything_wrong)).await,
        Code::InvalidArgument,
    );
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(
        fields,
        [
            "proof_of_delivery.content",
            "proof_of_delivery.content_type",
            "proof_of_delivery.deliver_time",
            "proof_of_delivery.recipient_name",
        ]
    );

    let after = stack.get(&shipment.id).await;
    assert_eq!(status_of(&after), pb::ShipmentStatus::InTransit);
    assert_eq!(after.etag, shipment.etag);
    assert_eq!(count(&stack, PROOF_ROWS, &shipment.id).await, 0);
}

#[tokio::test]
async fn the_proof_of_delivery_reads_back_as_given_and_a_second_delivery_is_refused() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let shipment = shipment_in_transit(&stack, &world, 2).await;
    let draft = draft_on_day(&stack, &world, 4).await;

    // Nothing to read before delivery.
    for undelivered in [&shipment.id, &draft.id] {
        expect_code(proof_of_delivery(&stack, undelivered).await, Code::NotFound);
    }

    let signature =
        br#"<svg xmlns="http://www.w3.org/2000/svg"><path d="M1 1L9 9"/></svg>"#.to_vec();
    let given = pb::ProofOfDelivery {
        recipient_name: "Jürgen Weiß".to_owned(),
        deliver_time: Some(whole_seconds_from_now(-3)),
        location: Some(types::LatLng {
            latitude: 53.5413,
            longitude: 9.9841,
        }),
        content: signature.clone(),
        content_type: "image/svg+xml".to_owned(),
        ..Default::default()
    };
    let delivered = deliver(&stack, &shipment.id, Some(given.clone()))
        .await
        .unwrap();
    let now_delivered = delivered.shipment.unwrap();
    assert_eq!(status_of(&now_delivered), pb::ShipmentStatus::Delivered);
    assert!(now_delivered.deliver_time.is_some());

    let sha256: String = Sha256::digest(&signature)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let stored = proof_of_delivery(&stack, &shipment.id).await.unwrap();
    assert_eq!(stored.shipment_id, shipment.id);
    assert_eq!(stored.recipient_name, "Jürgen Weiß");
    assert_eq!(stored.content, signature);
    assert_eq!(stored.content_type, "image/svg+xml");
    assert_eq!(stored.content_sha256, sha256);
    assert_eq!(stored.deliver_time, given.deliver_time);
    assert_eq!(stored.location, given.location);
    assert!(stored.record_time.is_some());
    assert_eq!(stored, delivered.proof_of_delivery.unwrap());

    // Delivering again is an illegal transition; the first proof stays the only one.
    let again = expect_code(
        deliver(
            &stack,
            &shipment.id,
            Some(pb::ProofOfDelivery {
                recipient_name: "Someone Else".to_owned(),
                ..good_proof()
            }),
        )
        .await,
        Code::FailedPrecondition,
    );
    assert!(again.message().ends_with(" DELIVERED"), "{again:?}");
    assert_eq!(
        preconditions(&again),
        [("ILLEGAL_TRANSITION".to_owned(), "status".to_owned())]
    );
    assert_eq!(count(&stack, PROOF_ROWS, &shipment.id).await, 1);
    assert_eq!(
        proof_of_delivery(&stack, &shipment.id).await.unwrap(),
        stored
    );
    assert_eq!(stack.get(&shipment.id).await.etag, now_delivered.etag);
}

// The database guards ---------------------------------------------------------------------------

/// Runs `sql` (with the shipment id as `$1`) as the service's runtime role inside the tenant, in
/// a transaction that is rolled back: the rows it touched, or the database's refusal.
async fn as_the_service(
    stack: &Stack,
    pool: &sqlx::PgPool,
    sql: &'static str,
    shipment_id: &str,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(stack.identity.tenant_id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let result = sqlx::query(sql)
        .bind(Uuid::parse_str(shipment_id).unwrap())
        .execute(&mut *tx)
        .await
        .map(|done| done.rows_affected());
    tx.rollback().await.unwrap();
    result
}

/// The (SQLSTATE, constraint) of a refusal.
fn refusal_of(result: Result<u64, sqlx::Error>) -> (String, Option<String>) {
    match result {
        Ok(rows) => panic!("expected the database to refuse, but {rows} rows changed"),
        Err(sqlx::Error::Database(db)) => (
            db.code().unwrap_or_default().into_owned(),
            db.constraint().map(str::to_owned),
        ),
        Err(other) => panic!("expected a database error, got {other:?}"),
    }
}

const CHECK_VIOLATION: &str = "23514";
const INSUFFICIENT_PRIVILEGE: &str = "42501";

#[tokio::test]
async fn the_database_refuses_what_the_machine_forbids_even_to_the_service_role() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = draft_on_day(&stack, &world, 2).await;
    let planned = planned_shipment(&stack, &world, 4).await;
    let pool = stack.runtime_pool().await;

    // The role sees and may edit its tenant's draft (so the refusals below are the guards').
    assert_eq!(
        as_the_service(
            &stack,
            &pool,
            "UPDATE shipment.shipments SET notes = 'guarded' WHERE id = $1",
            &draft.id,
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        as_the_service(&stack, &pool, ADD_ITEM, &draft.id)
            .await
            .unwrap(),
        1
    );

    // A draft cannot jump to delivered, nor a planned shipment fall back to draft.
    for (sql, id) in [
        (
            "UPDATE shipment.shipments SET status = 'delivered' WHERE id = $1",
            &draft.id,
        ),
        (
            "UPDATE shipment.shipments SET status = 'draft' WHERE id = $1",
            &planned.id,
        ),
    ] {
        assert_eq!(
            refusal_of(as_the_service(&stack, &pool, sql, id).await),
            (
                CHECK_VIOLATION.to_owned(),
                Some("shipments_status_transition".to_owned())
            ),
            "{sql}"
        );
    }
    // Items change only on drafts.
    assert_eq!(
        refusal_of(as_the_service(&stack, &pool, ADD_ITEM, &planned.id).await),
        (
            CHECK_VIOLATION.to_owned(),
            Some("shipment_items_draft_only".to_owned())
        )
    );
    // The outbox is written through append_event() and published through publish_events()
    // only, and nothing is hard-deleted.
    for sql in [
        "INSERT INTO shipment.outbox (tenant_id, sequence, shipment_id, event_type, customer_id, payload) \
         VALUES (shipment.current_tenant_id(), 1000000, $1, 'created', gen_random_uuid(), '\\x00')",
        "UPDATE shipment.outbox SET published_at = now() WHERE shipment_id = $1",
        "DELETE FROM shipment.shipments WHERE id = $1",
    ] {
        assert_eq!(
            refusal_of(as_the_service(&stack, &pool, sql, &draft.id).await).0,
            INSUFFICIENT_PRIVILEGE,
            "{sql}"
        );
    }

    // Nothing of it stuck.
    let after = stack.get(&draft.id).await;
    assert_eq!(status_of(&after), pb::ShipmentStatus::Draft);
    assert_eq!(after.etag, draft.etag);
    assert_eq!(after.notes, draft.notes);
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM shipment.shipment_items WHERE shipment_id = $1",
            &planned.id,
        )
        .await,
        1
    );
    assert_eq!(
        status_of(&stack.get(&planned.id).await),
        pb::ShipmentStatus::Planned
    );
}

/// One more item of a random material.
const ADD_ITEM: &str = "INSERT INTO shipment.shipment_items \
    (tenant_id, id, shipment_id, material_id, quantity, unit_weight_kg, unit_volume_m3) \
    VALUES (shipment.current_tenant_id(), gen_random_uuid(), $1, gen_random_uuid(), 1, 1, 0.01)";

#[tokio::test]
async fn the_hot_tables_carry_their_autovacuum_settings() {
    let stack = Stack::spawn().await;
    let db = stack.db().await;
    let options = |table: &'static str| {
        let db = db.clone();
        async move {
            let found: Option<Vec<String>> = sqlx::query_scalar(
                "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname || '.' || c.relname = $1",
            )
            .bind(table)
            .fetch_one(&db)
            .await
            .unwrap();
            found.unwrap_or_default()
        }
    };
    let sequences = options("shipment.outbox_sequences").await;
    assert!(
        sequences.contains(&"fillfactor=50".to_owned()),
        "{sequences:?}"
    );
    assert!(
        sequences.contains(&"autovacuum_vacuum_threshold=1000".to_owned()),
        "{sequences:?}"
    );
    let levels = options("inventory.stock_levels").await;
    assert!(levels.contains(&"fillfactor=80".to_owned()), "{levels:?}");
    assert!(
        levels.contains(&"autovacuum_vacuum_scale_factor=0.01".to_owned()),
        "{levels:?}"
    );
    let sessions = options("identity.sessions").await;
    assert!(
        sessions.contains(&"autovacuum_vacuum_scale_factor=0.02".to_owned()),
        "{sessions:?}"
    );
}
