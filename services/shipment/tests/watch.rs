//! WatchShipmentEvents against a real shipment service and its peers: the tenant's outbox is
//! replayed in sequence order from a resume token, each event once, then followed live; the
//! `shipment_id` filter and a customer user's scope narrow it; forged resume tokens are refused;
//! and the whole saga path (plan, dispatch, tracking, delivery, a failed plan) shows up in it.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use logistics_proto::fleet::v1 as fleetpb;
use logistics_proto::identity::v1 as idpb;
use logistics_proto::shipment::v1 as pb;
use pb::ShipmentEventType as Type;
use tonic::{Code, Status, Streaming};
use uuid::Uuid;

/// An open event stream.
type Events = Streaming<pb::WatchShipmentEventsResponse>;

/// How long an expected event may take at most.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a stream must stay silent to count as having sent everything (a watcher looks at
/// least every second without being woken).
const SILENCE: Duration = Duration::from_millis(2500);

/// Opens WatchShipmentEvents as `token`.
async fn watch_as(
    stack: &Stack,
    token: &str,
    resume_token: &str,
    shipment_id: &str,
) -> Result<Events, Status> {
    stack
        .client()
        .await
        .watch_shipment_events(authed(
            token,
            pb::WatchShipmentEventsRequest {
                resume_token: resume_token.to_owned(),
                shipment_id: shipment_id.to_owned(),
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// Opens WatchShipmentEvents as the admin.
async fn watch(stack: &Stack, resume_token: &str, shipment_id: &str) -> Events {
    watch_as(stack, &stack.admin_token, resume_token, shipment_id)
        .await
        .unwrap()
}

/// The next event, failing the test after [`PATIENCE`].
async fn next(events: &mut Events) -> pb::ShipmentEvent {
    tokio::time::timeout(PATIENCE, events.message())
        .await
        .expect("an event within 10 s")
        .expect("a healthy stream")
        .expect("an open stream")
        .event
        .expect("an event in the message")
}

/// The next `n` events.
async fn take(events: &mut Events, n: usize) -> Vec<pb::ShipmentEvent> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next(events).await);
    }
    out
}

/// Asserts that nothing more arrives for [`SILENCE`].
async fn assert_silent(events: &mut Events) {
    if let Ok(more) = tokio::time::timeout(SILENCE, events.message()).await {
        panic!("expected no further event, got {more:?}");
    }
}

fn type_of(event: &pb::ShipmentEvent) -> Type {
    Type::try_from(event.r#type).unwrap()
}

fn types(events: &[pb::ShipmentEvent]) -> Vec<Type> {
    events.iter().map(type_of).collect()
}

fn sequences(events: &[pb::ShipmentEvent]) -> Vec<i64> {
    events.iter().map(|e| e.sequence).collect()
}

fn shipment_ids(events: &[pb::ShipmentEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.shipment.as_ref().unwrap().id.clone())
        .collect()
}

fn weight(event: &pb::ShipmentEvent) -> f64 {
    event
        .shipment
        .as_ref()
        .unwrap()
        .total_weight_kg
        .as_ref()
        .map_or(0.0, |d| d.value.parse().unwrap())
}

/// CreateShipment of `shipment` as the admin (no items).
async fn create(stack: &Stack, shipment: pb::Shipment) -> pb::Shipment {
    stack
        .client()
        .await
        .create_shipment(authed(
            &stack.admin_token,
            pb::CreateShipmentRequest {
                request_id: Uuid::now_v7().to_string(),
                shipment: Some(shipment),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .shipment
        .unwrap()
}

#[tokio::test]
async fn from_an_empty_resume_token_a_watcher_gets_every_event_in_sequence_order_with_the_shipment_as_it_was()
 {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack
        .draft(&world, &[(&world.bolts, "10"), (&world.nuts, "5")])
        .await;

    let mut events = watch(&stack, "", "").await;
    let seen = take(&mut events, 3).await;
    assert_eq!(sequences(&seen), [1, 2, 3]);
    assert_eq!(types(&seen), [Type::Created, Type::Updated, Type::Updated]);
    assert_eq!(shipment_ids(&seen), [draft.id.as_str(); 3]);
    // Each carries the shipment as it was right after its change.
    assert_eq!(
        seen.iter().map(weight).collect::<Vec<_>>(),
        [0.0, 25.0, 45.0]
    );
    for event in &seen {
        let shipment = event.shipment.as_ref().unwrap();
        assert_eq!(shipment.reference, draft.reference);
        assert_eq!(status_of(shipment), pb::ShipmentStatus::Draft);
        assert!(event.tracking_event.is_none());
        assert!(event.event_time.is_some());
    }
    let tokens: Vec<&str> = seen.iter().map(|e| e.resume_token.as_str()).collect();
    assert!(tokens.iter().all(|t| !t.is_empty()), "{tokens:?}");
    assert_ne!(tokens[0], tokens[1]);
    assert_ne!(tokens[1], tokens[2]);
    // That is all there is, each once.
    assert_silent(&mut events).await;
}

#[tokio::test]
async fn resuming_after_the_third_event_continues_at_the_fourth_with_none_missing_or_repeated() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let first = stack
        .draft(&world, &[(&world.bolts, "1"), (&world.nuts, "1")])
        .await;

    let mut events = watch(&stack, "", "").await;
    let seen = take(&mut events, 3).await;
    assert_eq!(sequences(&seen), [1, 2, 3]);
    drop(events);

    // More changes while nobody watches: a second draft (created, two items), the first
    // planned.
    let second = stack
        .draft(&world, &[(&world.bolts, "2"), (&world.nuts, "2")])
        .await;
    stack.plan(&first.id).await.unwrap();

    let mut resumed = watch(&stack, &seen[2].resume_token, "").await;
    let rest = take(&mut resumed, 4).await;
    assert_eq!(sequences(&rest), [4, 5, 6, 7]);
    assert_eq!(
        types(&rest),
        [Type::Created, Type::Updated, Type::Updated, Type::Planned]
    );
    assert_eq!(
        shipment_ids(&rest),
        [second.id.as_str(), &second.id, &second.id, &first.id]
    );
    assert_silent(&mut resumed).await;
    // The resumed stream follows on live from there.
    stack.cancel(&second.id).await.unwrap();
    let cancelled = next(&mut resumed).await;
    assert_eq!(
        (cancelled.sequence, type_of(&cancelled)),
        (8, Type::Cancelled)
    );

    // Any token resumes right after its own event.
    let mut again = watch(&stack, &seen[0].resume_token, "").await;
    let replay = take(&mut again, 7).await;
    assert_eq!(sequences(&replay), [2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(replay[2].resume_token, rest[0].resume_token);
    // And the last one has nothing after it.
    let mut caught_up = watch(&stack, &cancelled.resume_token, "").await;
    assert_silent(&mut caught_up).await;
}

#[tokio::test]
async fn a_watcher_opened_before_a_shipment_is_created_receives_its_created_event_live() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let mut events = watch(&stack, "", "").await;

    let created = create(&stack, new_shipment(&world)).await;
    let event = next(&mut events).await;
    assert_eq!((event.sequence, type_of(&event)), (1, Type::Created));
    assert_eq!(event.shipment.as_ref().unwrap().id, created.id);

    stack
        .add_item(&stack.admin_token, &created.id, &world.nuts, "3")
        .await;
    let event = next(&mut events).await;
    assert_eq!((event.sequence, type_of(&event)), (2, Type::Updated));
    assert_eq!(weight(&event), 12.0);
}

#[tokio::test]
async fn the_shipment_id_filter_delivers_only_that_shipments_events() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let other = stack.draft(&world, &[(&world.bolts, "1")]).await;
    let wanted = stack
        .draft(&world, &[(&world.bolts, "2"), (&world.nuts, "2")])
        .await;
    let later = stack.draft(&world, &[(&world.nuts, "1")]).await;

    let mut events = watch(&stack, "", &wanted.id).await;
    let seen = take(&mut events, 3).await;
    assert_eq!(shipment_ids(&seen), [wanted.id.as_str(); 3]);
    assert_eq!(types(&seen), [Type::Created, Type::Updated, Type::Updated]);
    // Its own numbers in the tenant's outbox: after the other's two events.
    assert_eq!(sequences(&seen), [3, 4, 5]);

    // Live as well: the other shipments' changes come first but are not delivered.
    stack
        .add_item(&stack.admin_token, &other.id, &world.nuts, "1")
        .await;
    stack
        .add_item(&stack.admin_token, &later.id, &world.bolts, "1")
        .await;
    stack.plan(&wanted.id).await.unwrap();
    let planned = next(&mut events).await;
    assert_eq!(type_of(&planned), Type::Planned);
    assert_eq!(planned.shipment.as_ref().unwrap().id, wanted.id);
    assert_eq!(planned.sequence, 10);
    assert_silent(&mut events).await;

    // Unfiltered, the same outbox has all ten.
    let mut all = watch(&stack, "", "").await;
    assert_eq!(
        sequences(&take(&mut all, 10).await),
        (1..=10).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_customer_users_watcher_sees_only_its_partners_shipments() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let (rival, rival_address) = stack.customer("Rival").await;
    let for_rival = |world: &World| pb::Shipment {
        customer_id: rival.id.clone(),
        destination_address_id: rival_address.id.clone(),
        ..new_shipment(world)
    };

    let mine = create(&stack, new_shipment(&world)).await;
    let theirs = create(&stack, for_rival(&world)).await;
    stack
        .add_item(&stack.admin_token, &theirs.id, &world.nuts, "1")
        .await;
    stack
        .add_item(&stack.admin_token, &mine.id, &world.bolts, "1")
        .await;

    let customer = stack
        .token(&[idpb::Role::Customer], Some(&world.customer.id), None)
        .await;
    let mut events = watch_as(&stack, &customer, "", "").await.unwrap();
    let seen = take(&mut events, 2).await;
    assert_eq!(types(&seen), [Type::Created, Type::Updated]);
    assert_eq!(shipment_ids(&seen), [mine.id.as_str(); 2]);
    assert_eq!(sequences(&seen), [1, 4]);

    // Live: the rival's new shipment is skipped, this customer's next one arrives.
    create(&stack, for_rival(&world)).await;
    let next_mine = create(&stack, new_shipment(&world)).await;
    let event = next(&mut events).await;
    assert_eq!(type_of(&event), Type::Created);
    assert_eq!(event.shipment.as_ref().unwrap().id, next_mine.id);
    assert_eq!(event.sequence, 6);
    assert_silent(&mut events).await;

    // Asking for the rival's shipment by id is no way around it.
    let mut theirs_only = watch_as(&stack, &customer, "", &theirs.id).await.unwrap();
    assert_silent(&mut theirs_only).await;
}

#[tokio::test]
async fn a_forged_or_foreign_resume_token_and_a_malformed_shipment_id_are_invalid_arguments() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let first = stack.draft(&world, &[(&world.bolts, "1")]).await;
    stack.draft(&world, &[(&world.nuts, "1")]).await;
    let mut events = watch(&stack, "", "").await;
    let genuine = take(&mut events, 3).await.remove(2).resume_token;
    drop(events);
    // The control: the genuine token is accepted.
    watch(&stack, &genuine, "").await;

    // Its cursor moved back to the start, with the signature left as it was.
    let (body, mac) = genuine.split_once('.').unwrap();
    let body = String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
    assert!(body.contains("\"c\":3"), "{body}");
    let rewound = format!(
        "{}.{mac}",
        URL_SAFE_NO_PAD.encode(body.replace("\"c\":3", "\"c\":0"))
    );
    // A page token of this very service, for another listing.
    let page_token = stack
        .client()
        .await
        .list_shipments(authed(
            &stack.admin_token,
            pb::ListShipmentsRequest {
                page_size: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!page_token.is_empty());
    // A page token of another service signed with the same kind of key (fleet's trucks).
    stack.truck("12000").await;
    let fleet_token = stack
        .fleet_client()
        .await
        .list_trucks(authed(
            &stack.admin_token,
            fleetpb::ListTrucksRequest {
                page_size: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!fleet_token.is_empty());
    let truncated = &genuine[..genuine.len() - 2];

    for bad in [
        rewound.as_str(),
        page_token.as_str(),
        fleet_token.as_str(),
        truncated,
        "garbage",
        "3",
    ] {
        let refused = expect_code(
            watch_as(&stack, &stack.admin_token, bad, "").await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&refused),
            ["resume_token"],
            "{bad}: {refused:?}"
        );
    }

    for bad in ["not-a-uuid", "42", &first.id[..20]] {
        let refused = expect_code(
            watch_as(&stack, &stack.admin_token, "", bad).await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&refused),
            ["shipment_id"],
            "{bad}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn a_resume_token_issued_in_another_tenant_is_refused() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    stack
        .draft(&world, &[(&world.bolts, "1"), (&world.nuts, "1")])
        .await;
    let mut events = watch(&stack, "", "").await;
    let theirs = take(&mut events, 3).await.remove(2).resume_token;
    let (_, stranger) = stack.identity.other_tenant("Elsewhere").await.unwrap();

    // The control: the stranger may watch its own (empty) outbox from the start.
    watch_as(&stack, &stranger, "", "").await.unwrap();
    // A token that means "after event 3 of the first tenant" names no event of this one.
    let refused = expect_code(
        watch_as(&stack, &stranger, &theirs, "").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&refused), ["resume_token"], "{refused:?}");
}

#[tokio::test]
async fn the_saga_path_shows_planned_dispatched_tracked_and_delivered_in_order_and_a_failed_plan_shows_plan_failed()
 {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "4")]).await;
    let mut events = watch(&stack, "", &draft.id).await;
    let drafted = take(&mut events, 2).await;
    assert_eq!(types(&drafted), [Type::Created, Type::Updated]);

    let planned = stack.plan(&draft.id).await.unwrap();
    stack.dispatch(&draft.id).await.unwrap();
    let driver = stack
        .token(&[idpb::Role::Driver], None, Some(&world.driver.id))
        .await;
    let departed = stack
        .track_as(&driver, &draft.id, pb::TrackingEventKind::Departed)
        .await
        .unwrap()
        .tracking_event
        .unwrap();
    stack.deliver_as(&driver, &draft.id).await.unwrap();

    let path = take(&mut events, 4).await;
    assert_eq!(
        types(&path),
        [
            Type::Planned,
            Type::Dispatched,
            Type::Tracked,
            Type::Delivered
        ]
    );
    let statuses: Vec<_> = path
        .iter()
        .map(|e| status_of(e.shipment.as_ref().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            pb::ShipmentStatus::Planned,
            pb::ShipmentStatus::Dispatched,
            pb::ShipmentStatus::InTransit,
            pb::ShipmentStatus::Delivered
        ]
    );
    let sequences = sequences(&path);
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    let booked = path[0].shipment.as_ref().unwrap();
    assert_eq!(booked.truck_id, world.truck.id);
    assert_eq!(booked.driver_id, world.driver.id);
    assert_eq!(booked.assignment_id, planned.assignment_id);
    for event in [&path[0], &path[1], &path[3]] {
        assert!(event.tracking_event.is_none(), "{event:?}");
    }
    let tracked = path[2].tracking_event.as_ref().expect("the tracking event");
    assert_eq!(tracked.id, departed.id);
    assert_eq!(tracked.client_event_id, departed.client_event_id);
    assert_eq!(tracked.kind, pb::TrackingEventKind::Departed as i32);
    assert_eq!(tracked.shipment_id, draft.id);
    assert!(path[3].shipment.as_ref().unwrap().deliver_time.is_some());
    assert_silent(&mut events).await;

    // Not enough stock: the plan fails, is undone, and says so.
    let short = stack.draft(&world, &[(&world.nuts, "500")]).await;
    let mut failing = watch(&stack, "", &short.id).await;
    assert_eq!(
        types(&take(&mut failing, 2).await),
        [Type::Created, Type::Updated]
    );
    expect_code(stack.plan(&short.id).await, Code::FailedPrecondition);
    let failed = next(&mut failing).await;
    assert_eq!(type_of(&failed), Type::PlanFailed);
    let shipment = failed.shipment.as_ref().unwrap();
    assert_eq!(status_of(shipment), pb::ShipmentStatus::Draft);
    assert!(shipment.truck_id.is_empty() && shipment.assignment_id.is_empty());
    assert_silent(&mut failing).await;
}

/// The sequence number of outbox row `id` once the publisher has numbered it.
async fn numbered(admin: &sqlx::PgPool, id: i64) -> i64 {
    let waited = tokio::time::timeout(PATIENCE, async {
        loop {
            let sequence: Option<i64> =
                sqlx::query_scalar("SELECT sequence FROM shipment.outbox WHERE id = $1")
                    .bind(id)
                    .fetch_one(admin)
                    .await
                    .unwrap();
            if let Some(sequence) = sequence {
                return sequence;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    waited.await.expect("numbered within 10 s")
}

/// Appends an (empty) event about `shipment_id` as the runtime role inside `tenant`, in `tx`.
async fn append(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    tenant: Uuid,
    shipment: &pb::Shipment,
) -> i64 {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut **tx)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT shipment.append_event($1, 'updated', $2, NULL, NULL, '')")
        .bind(Uuid::parse_str(&shipment.id).unwrap())
        .bind(Uuid::parse_str(&shipment.customer_id).unwrap())
        .fetch_one(&mut **tx)
        .await
        .unwrap()
}

#[tokio::test]
async fn events_are_numbered_in_the_order_their_changes_commit_not_the_order_they_were_written() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[]).await;
    let admin = stack.db().await;
    let app = stack.runtime_pool().await;
    let tenant = stack.identity.tenant_id;
    let mut events = watch(&stack, "", "").await;
    let created = next(&mut events).await;
    assert_eq!((created.sequence, type_of(&created)), (1, Type::Created));

    // The first writer appends and stays open; a second appends after it and commits first.
    let mut slow = app.begin().await.unwrap();
    let written_first = append(&mut slow, tenant, &draft).await;
    let mut quick = app.begin().await.unwrap();
    let written_second = append(&mut quick, tenant, &draft).await;
    assert!(written_first < written_second);
    quick.commit().await.unwrap();
    assert_eq!(numbered(&admin, written_second).await, 2);
    // The open change holds no number, so watchers see 2 right after 1, with nothing skipped.
    assert_eq!(next(&mut events).await.sequence, 2);
    slow.commit().await.unwrap();
    assert_eq!(numbered(&admin, written_first).await, 3);
    assert_eq!(next(&mut events).await.sequence, 3);

    // Published means numbered, and only the publisher marks it.
    let (unpublished, unmarked): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE sequence IS NULL), count(*) FILTER (WHERE published_at IS NULL) \
         FROM shipment.outbox",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!((unpublished, unmarked), (0, 0));
    assert_silent(&mut events).await;
}

#[tokio::test]
async fn twenty_simultaneous_creates_are_numbered_one_to_twenty_each_once() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let mut creates = Vec::new();
    for _ in 0..20 {
        let (mut client, barrier) = (stack.client().await, barrier.clone());
        let request = pb::CreateShipmentRequest {
            request_id: Uuid::now_v7().to_string(),
            shipment: Some(new_shipment(&world)),
        };
        let token = stack.admin_token.clone();
        creates.push(tokio::spawn(async move {
            barrier.wait().await;
            client
                .create_shipment(authed(&token, request))
                .await
                .unwrap()
                .into_inner()
                .shipment
                .unwrap()
                .id
        }));
    }
    let mut created: Vec<String> = Vec::new();
    for create in creates {
        created.push(create.await.unwrap());
    }

    let mut events = watch(&stack, "", "").await;
    let seen = take(&mut events, 20).await;
    assert_eq!(sequences(&seen), (1..=20).collect::<Vec<i64>>());
    assert!(seen.iter().all(|e| type_of(e) == Type::Created));
    let mut ids = shipment_ids(&seen);
    ids.sort();
    created.sort();
    assert_eq!(ids, created);
    assert_silent(&mut events).await;
}
