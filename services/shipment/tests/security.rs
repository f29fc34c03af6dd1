//! Who may do what to which shipment, with all five services as real servers: no token or a
//! forged one is turned away from every RPC, roles without the write permission read but change
//! nothing, customer users see only their partner's shipments, drivers only the ones booked for
//! them, another tenant sees nothing, and neither the recipient's name nor an access token ever
//! reaches the logs or an error message.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use logistics_proto::identity::v1 as idpb;
use logistics_proto::partner::v1 as partnerpb;
use logistics_proto::shipment::v1 as pb;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

const WRITE: &str = "shipment.shipments.write";
const TRACK: &str = "shipment.shipments.track";

/// `message` with `authorization: Bearer <token>`, or with no authorization at all.
fn maybe_authed<T>(token: Option<&str>, message: T) -> Request<T> {
    match token {
        Some(token) => authed(token, message),
        None => Request::new(message),
    }
}

/// The code a call answered (`Ok` when it succeeded).
fn code_of<T>(result: Result<T, Status>) -> Code {
    result.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// Asserts PERMISSION_DENIED naming `permission`.
#[track_caller]
fn expect_denied<T: std::fmt::Debug>(result: Result<T, Status>, permission: &str) {
    let status = expect_code(result, Code::PermissionDenied);
    let info = status.get_details_error_info().expect("an ErrorInfo");
    assert_eq!(
        info.metadata.get("permission").map(String::as_str),
        Some(permission),
        "{status:?}"
    );
}

/// A shipment of `customer` delivered to `address` (otherwise as [`new_shipment`]).
fn shipment_for(
    world: &World,
    customer: &partnerpb::Partner,
    address: &partnerpb::Address,
) -> pb::Shipment {
    pb::Shipment {
        customer_id: customer.id.clone(),
        destination_address_id: address.id.clone(),
        ..new_shipment(world)
    }
}

/// CreateShipment of `shipment` as `token`.
async fn create_as(
    stack: &Stack,
    token: &str,
    shipment: pb::Shipment,
) -> Result<pb::Shipment, Status> {
    stack
        .client()
        .await
        .create_shipment(authed(
            token,
            pb::CreateShipmentRequest {
                request_id: Uuid::now_v7().to_string(),
                shipment: Some(shipment),
            },
        ))
        .await
        .map(|r| r.into_inner().shipment.unwrap())
}

/// Adds a drop-off stop in the delivery window to a draft as the admin; returns the stop.
async fn add_stop(stack: &Stack, shipment: &pb::Shipment) -> pb::Stop {
    stack
        .client()
        .await
        .create_stop(authed(
            &stack.admin_token,
            pb::CreateStopRequest {
                request_id: Uuid::now_v7().to_string(),
                stop: Some(pb::Stop {
                    shipment_id: shipment.id.clone(),
                    sequence: 1,
                    kind: pb::StopKind::DropOff as i32,
                    address: Some(pb::AddressSnapshot {
                        line1: "Am Kai 3".to_owned(),
                        city: "Hamburg".to_owned(),
                        postal_code: "20457".to_owned(),
                        country_code: "DE".to_owned(),
                        ..Default::default()
                    }),
                    window: shipment.delivery_window,
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

/// Plans, dispatches, departs (as the admin) and delivers (as `driver`) a draft.
async fn drive_to_delivered(stack: &Stack, driver: &str, id: &str) {
    stack.plan(id).await.unwrap();
    stack.dispatch(id).await.unwrap();
    stack
        .track_as(driver, id, pb::TrackingEventKind::Departed)
        .await
        .unwrap();
    stack.deliver_as(driver, id).await.unwrap();
}

/// ListShipments as `token`: the ids, in any order (sorted).
async fn listed_ids(stack: &Stack, token: &str) -> Vec<String> {
    let mut ids: Vec<String> = stack
        .client()
        .await
        .list_shipments(authed(
            token,
            pb::ListShipmentsRequest {
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .shipments
        .into_iter()
        .map(|s| s.id)
        .collect();
    ids.sort();
    ids
}

/// `ids` sorted.
fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    ids.sort();
    ids
}

/// GetShipment as `token`.
async fn get_as(stack: &Stack, token: &str, id: &str) -> Result<pb::Shipment, Status> {
    stack
        .client()
        .await
        .get_shipment(authed(token, pb::GetShipmentRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().shipment.unwrap())
}

/// CancelShipment as `token`.
async fn cancel_as(stack: &Stack, token: &str, id: &str) -> Result<pb::Shipment, Status> {
    stack
        .client()
        .await
        .cancel_shipment(authed(
            token,
            pb::CancelShipmentRequest {
                id: id.to_owned(),
                etag: String::new(),
                reason: "not wanted".to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().shipment.unwrap())
}

/// Rows in `shipment.<table>` (all tenants; the superuser bypasses row-level security).
async fn rows(stack: &Stack, table: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM shipment.{table}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&stack.db().await)
        .await
        .unwrap()
}

/// Rows of `shipment.<table>` about one shipment.
async fn rows_of(stack: &Stack, table: &str, shipment_id: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM shipment.{table} WHERE shipment_id = $1");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::parse_str(shipment_id).unwrap())
        .fetch_one(&stack.db().await)
        .await
        .unwrap()
}

/// What every write leaves behind: (shipments, items, sagas, tracking events, outbox events).
async fn footprint(stack: &Stack) -> [i64; 5] {
    [
        rows(stack, "shipments").await,
        rows(stack, "shipment_items").await,
        rows(stack, "sagas").await,
        rows(stack, "tracking_events").await,
        rows(stack, "outbox").await,
    ]
}

/// Every RPC of the service once as `token` (no authorization when `None`), each on `id`
/// where it names a shipment and with a request that an authorized caller could make succeed
/// or at least get past validation: (method, answered code).
async fn every_rpc(
    stack: &Stack,
    world: &World,
    token: Option<&str>,
    id: &str,
) -> Vec<(&'static str, Code)> {
    let mut c = stack.client().await;
    let t = token;
    let event = pb::TrackingEvent {
        shipment_id: id.to_owned(),
        client_event_id: Uuid::now_v7().to_string(),
        kind: pb::TrackingEventKind::Position as i32,
        event_time: Some(minutes_from_now(0)),
        ..Default::default()
    };
    let item = pb::ShipmentItem {
        shipment_id: id.to_owned(),
        material_id: world.nuts.id.clone(),
        quantity: decimal("1"),
        ..Default::default()
    };
    let watch = c
        .watch_shipment_events(maybe_authed(t, pb::WatchShipmentEventsRequest::default()))
        .await;
    vec![
        (
            "CreateShipment",
            code_of(
                c.create_shipment(maybe_authed(
                    t,
                    pb::CreateShipmentRequest {
                        request_id: Uuid::now_v7().to_string(),
                        shipment: Some(new_shipment(world)),
                    },
                ))
                .await,
            ),
        ),
        (
            "GetShipment",
            code_of(
                c.get_shipment(maybe_authed(
                    t,
                    pb::GetShipmentRequest { id: id.to_owned() },
                ))
                .await,
            ),
        ),
        (
            "ListShipments",
            code_of(
                c.list_shipments(maybe_authed(t, pb::ListShipmentsRequest::default()))
                    .await,
            ),
        ),
        (
            "UpdateShipment",
            code_of(
                c.update_shipment(maybe_authed(
                    t,
                    pb::UpdateShipmentRequest {
                        shipment: Some(pb::Shipment {
                            id: id.to_owned(),
                            notes: "changed".to_owned(),
                            ..Default::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec!["notes".to_owned()],
                        }),
                    },
                ))
                .await,
            ),
        ),
        (
            "DeleteShipment",
            code_of(
                c.delete_shipment(maybe_authed(
                    t,
                    pb::DeleteShipmentRequest {
                        id: id.to_owned(),
                        etag: String::new(),
                    },
                ))
                .await,
            ),
        ),
        (
            "UndeleteShipment",
            code_of(
                c.undelete_shipment(maybe_authed(
                    t,
                    pb::UndeleteShipmentRequest {
                        id: id.to_owned(),
                        etag: String::new(),
                    },
                ))
                .await,
            ),
        ),
        (
            "CreateShipmentItem",
            code_of(
                c.create_shipment_item(maybe_authed(
                    t,
                    pb::CreateShipmentItemRequest {
                        request_id: Uuid::now_v7().to_string(),
                        shipment_item: Some(item),
                    },
                ))
                .await,
            ),
        ),
        (
            "GetShipmentItem",
            code_of(
                c.get_shipment_item(maybe_authed(
                    t,
                    pb::GetShipmentItemRequest { id: id.to_owned() },
                ))
                .await,
            ),
        ),
        (
            "ListShipmentItems",
            code_of(
                c.list_shipment_items(maybe_authed(
                    t,
                    pb::ListShipmentItemsRequest {
                        shipment_id: id.to_owned(),
                        ..Default::default()
                    },
                ))
                .await,
            ),
        ),
        (
            "UpdateShipmentItem",
            code_of(
                c.update_shipment_item(maybe_authed(t, pb::UpdateShipmentItemRequest::default()))
                    .await,
            ),
        ),
        (
            "DeleteShipmentItem",
            code_of(
                c.delete_shipment_item(maybe_authed(t, pb::DeleteShipmentItemRequest::default()))
                    .await,
            ),
        ),
        (
            "UndeleteShipmentItem",
            code_of(
                c.undelete_shipment_item(maybe_authed(
                    t,
                    pb::UndeleteShipmentItemRequest::default(),
                ))
                .await,
            ),
        ),
        (
            "CreateStop",
            code_of(
                c.create_stop(maybe_authed(t, pb::CreateStopRequest::default()))
                    .await,
            ),
        ),
        (
            "GetStop",
            code_of(
                c.get_stop(maybe_authed(t, pb::GetStopRequest { id: id.to_owned() }))
                    .await,
            ),
        ),
        (
            "ListStops",
            code_of(
                c.list_stops(maybe_authed(
                    t,
                    pb::ListStopsRequest {
                        shipment_id: id.to_owned(),
                        ..Default::default()
                    },
                ))
                .await,
            ),
        ),
        (
            "UpdateStop",
            code_of(
                c.update_stop(maybe_authed(t, pb::UpdateStopRequest::default()))
                    .await,
            ),
        ),
        (
            "DeleteStop",
            code_of(
                c.delete_stop(maybe_authed(t, pb::DeleteStopRequest::default()))
                    .await,
            ),
        ),
        (
            "UndeleteStop",
            code_of(
                c.undelete_stop(maybe_authed(t, pb::UndeleteStopRequest::default()))
                    .await,
            ),
        ),
        (
            "PlanShipment",
            code_of(
                c.plan_shipment(maybe_authed(
                    t,
                    pb::PlanShipmentRequest {
                        id: id.to_owned(),
                        ..Default::default()
                    },
                ))
                .await,
            ),
        ),
        (
            "DispatchShipment",
            code_of(
                c.dispatch_shipment(maybe_authed(
                    t,
                    pb::DispatchShipmentRequest {
                        id: id.to_owned(),
                        etag: String::new(),
                    },
                ))
                .await,
            ),
        ),
        (
            "RecordTrackingEvent",
            code_of(
                c.record_tracking_event(maybe_authed(
                    t,
                    pb::RecordTrackingEventRequest {
                        tracking_event: Some(event),
                    },
                ))
                .await,
            ),
        ),
        (
            "ListTrackingEvents",
            code_of(
                c.list_tracking_events(maybe_authed(
                    t,
                    pb::ListTrackingEventsRequest {
                        shipment_id: id.to_owned(),
                        ..Default::default()
                    },
                ))
                .await,
            ),
        ),
        (
            "ReportException",
            code_of(
                c.report_exception(maybe_authed(
                    t,
                    pb::ReportExceptionRequest {
                        id: id.to_owned(),
                        reason: "flat tyre".to_owned(),
                        location: None,
                    },
                ))
                .await,
            ),
        ),
        (
            "DeliverShipment",
            code_of(
                c.deliver_shipment(maybe_authed(
                    t,
                    pb::DeliverShipmentRequest {
                        id: id.to_owned(),
                        proof_of_delivery: None,
                    },
                ))
                .await,
            ),
        ),
        (
            "GetProofOfDelivery",
            code_of(
                c.get_proof_of_delivery(maybe_authed(
                    t,
                    pb::GetProofOfDeliveryRequest {
                        shipment_id: id.to_owned(),
                    },
                ))
                .await,
            ),
        ),
        (
            "CancelShipment",
            code_of(
                c.cancel_shipment(maybe_authed(
                    t,
                    pb::CancelShipmentRequest {
                        id: id.to_owned(),
                        etag: String::new(),
                        reason: "no".to_owned(),
                    },
                ))
                .await,
            ),
        ),
        ("WatchShipmentEvents", code_of(watch)),
    ]
}

/// `token` with one byte of its signature changed.
fn forged(token: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    signature[0] ^= 0x01;
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[tokio::test]
async fn every_rpc_without_a_token_or_with_a_garbage_or_forged_one_is_unauthenticated_and_changes_nothing()
 {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let control = stack.draft(&world, &[(&world.bolts, "3")]).await;
    let draft = stack.draft(&world, &[(&world.bolts, "3")]).await;
    let before = footprint(&stack).await;

    // The control: the admin's own token gets past authentication everywhere (and moves its
    // own draft through plan, dispatch, exception and cancel on the way).
    let admin = every_rpc(&stack, &world, Some(&stack.admin_token), &control.id).await;
    assert_eq!(admin.len(), 27);
    for (method, code) in &admin {
        assert_ne!(*code, Code::Unauthenticated, "{method} as the admin");
    }
    let after_admin = footprint(&stack).await;
    assert_ne!(after_admin, before, "the admin's calls wrote something");
    assert_ne!(stack.get(&control.id).await.etag, control.etag);
    let admin_get = stack.get(&draft.id).await;

    let forged_token = forged(&stack.admin_token);
    for token in [
        None,
        Some("garbage"),
        Some("a.b.c"),
        Some(forged_token.as_str()),
    ] {
        let answers = every_rpc(&stack, &world, token, &draft.id).await;
        for (method, code) in answers {
            assert_eq!(code, Code::Unauthenticated, "{method} with token {token:?}");
        }
    }
    assert_eq!(footprint(&stack).await, after_admin, "nothing was written");
    let unchanged = stack.get(&draft.id).await;
    assert_eq!(unchanged.etag, admin_get.etag);
    assert_eq!(unchanged.status, admin_get.status);
}

#[tokio::test]
async fn clerks_auditors_and_fleet_managers_read_shipments_but_cannot_create_plan_or_cancel_them() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "2")]).await;
    let planned = stack.draft(&world, &[(&world.nuts, "2")]).await;
    stack.plan(&planned.id).await.unwrap();
    let before = footprint(&stack).await;
    let reservations = stack.reservations(&draft.id).await;

    for role in [
        idpb::Role::WarehouseClerk,
        idpb::Role::Auditor,
        idpb::Role::FleetManager,
    ] {
        let token = stack.token(&[role], None, None).await;
        assert_eq!(
            get_as(&stack, &token, &draft.id).await.unwrap().id,
            draft.id,
            "{role:?}"
        );
        assert_eq!(
            listed_ids(&stack, &token).await,
            sorted(&[&draft.id, &planned.id]),
            "{role:?}"
        );
        expect_denied(create_as(&stack, &token, new_shipment(&world)).await, WRITE);
        expect_denied(stack.plan_as(&token, &draft.id).await, WRITE);
        expect_denied(cancel_as(&stack, &token, &draft.id).await, WRITE);
        expect_denied(cancel_as(&stack, &token, &planned.id).await, WRITE);
    }

    assert_eq!(footprint(&stack).await, before, "nothing was written");
    assert_eq!(
        status_of(&stack.get(&draft.id).await),
        pb::ShipmentStatus::Draft
    );
    assert_eq!(
        status_of(&stack.get(&planned.id).await),
        pb::ShipmentStatus::Planned
    );
    assert_eq!(stack.reservations(&draft.id).await, reservations);
    assert_eq!(stack.active_assignments(&planned.id).await.len(), 1);
}

#[tokio::test]
async fn customers_cannot_create_plan_or_track_and_drivers_track_but_cannot_plan_or_cancel() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let customer = stack
        .token(&[idpb::Role::Customer], Some(&world.customer.id), None)
        .await;
    let driver = stack
        .token(&[idpb::Role::Driver], None, Some(&world.driver.id))
        .await;
    let dispatcher = stack.token(&[idpb::Role::Dispatcher], None, None).await;

    // A dispatcher creates and plans (the roles that may write, for contrast).
    let own = stack
        .draft_as(&dispatcher, &world, &[(&world.bolts, "5")])
        .await;
    let before = footprint(&stack).await;

    // The customer reads its own shipment but changes nothing.
    assert_eq!(get_as(&stack, &customer, &own.id).await.unwrap().id, own.id);
    expect_denied(
        create_as(&stack, &customer, new_shipment(&world)).await,
        WRITE,
    );
    expect_denied(stack.plan_as(&customer, &own.id).await, WRITE);
    expect_denied(cancel_as(&stack, &customer, &own.id).await, WRITE);
    assert_eq!(
        footprint(&stack).await,
        before,
        "the customer wrote nothing"
    );

    let planned = stack.plan_as(&dispatcher, &own.id).await.unwrap();
    assert_eq!(planned.driver_id, world.driver.id);
    let before = footprint(&stack).await;

    // The booked driver may neither plan nor cancel it.
    expect_denied(stack.plan_as(&driver, &own.id).await, WRITE);
    expect_denied(cancel_as(&stack, &driver, &own.id).await, WRITE);
    expect_denied(
        create_as(&stack, &driver, new_shipment(&world)).await,
        WRITE,
    );
    assert_eq!(footprint(&stack).await, before, "the driver wrote nothing");
    assert_eq!(
        status_of(&stack.get(&own.id).await),
        pb::ShipmentStatus::Planned
    );
    assert_eq!(stack.active_assignments(&own.id).await.len(), 1);

    // On the road the customer may not track it, the driver may.
    stack.dispatch(&own.id).await.unwrap();
    expect_denied(
        stack
            .track_as(&customer, &own.id, pb::TrackingEventKind::Departed)
            .await,
        TRACK,
    );
    assert_eq!(rows_of(&stack, "tracking_events", &own.id).await, 0);
    let departed = stack
        .track_as(&driver, &own.id, pb::TrackingEventKind::Departed)
        .await
        .unwrap();
    assert_eq!(
        status_of(departed.shipment.as_ref().unwrap()),
        pb::ShipmentStatus::InTransit
    );
    assert_eq!(rows_of(&stack, "tracking_events", &own.id).await, 1);
}

#[tokio::test]
async fn a_customer_user_sees_only_its_partners_shipments_and_their_items_stops_tracking_and_proof()
{
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let (other, other_address) = stack.customer("Rival").await;
    let admin = stack.admin_token.clone();

    let mine = create_as(&stack, &admin, new_shipment(&world))
        .await
        .unwrap();
    let my_item = stack
        .add_item(&stack.admin_token, &mine.id, &world.bolts, "4")
        .await;
    let theirs = create_as(&stack, &admin, shipment_for(&world, &other, &other_address))
        .await
        .unwrap();
    let their_item = stack
        .add_item(&stack.admin_token, &theirs.id, &world.nuts, "2")
        .await;
    let my_stop = add_stop(&stack, &mine).await;
    let their_stop = add_stop(&stack, &theirs).await;
    let driver = stack
        .token(&[idpb::Role::Driver], None, Some(&world.driver.id))
        .await;
    drive_to_delivered(&stack, &driver, &mine.id).await;
    drive_to_delivered(&stack, &driver, &theirs.id).await;
    // A draft of the other customer too: not every hidden shipment is a delivered one.
    let their_draft = create_as(&stack, &admin, shipment_for(&world, &other, &other_address))
        .await
        .unwrap();

    let customer = stack
        .token(&[idpb::Role::Customer], Some(&world.customer.id), None)
        .await;
    let mut c = stack.client().await;

    assert_eq!(listed_ids(&stack, &customer).await, [mine.id.as_str()]);
    assert_eq!(
        listed_ids(&stack, &admin).await,
        sorted(&[&mine.id, &theirs.id, &their_draft.id])
    );
    // Even asking for the other customer by filter finds nothing.
    let filtered = c
        .list_shipments(authed(
            &customer,
            pb::ListShipmentsRequest {
                filter: format!("customer_id = \"{}\"", other.id),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .shipments;
    assert!(filtered.is_empty(), "{filtered:?}");

    for hidden in [&theirs.id, &their_draft.id] {
        expect_code(get_as(&stack, &customer, hidden).await, Code::NotFound);
    }
    let visible_and_hidden = [(&mine.id, Code::Ok), (&theirs.id, Code::NotFound)];
    for (id, expected) in visible_and_hidden {
        let items = c
            .list_shipment_items(authed(
                &customer,
                pb::ListShipmentItemsRequest {
                    shipment_id: id.clone(),
                    ..Default::default()
                },
            ))
            .await;
        if expected == Code::Ok {
            let items = items.unwrap().into_inner().shipment_items;
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].id, my_item.id);
        } else {
            expect_code(items, expected);
        }
        let stops = c
            .list_stops(authed(
                &customer,
                pb::ListStopsRequest {
                    shipment_id: id.clone(),
                    ..Default::default()
                },
            ))
            .await;
        if expected == Code::Ok {
            let stops = stops.unwrap().into_inner().stops;
            assert_eq!(stops.len(), 1);
            assert_eq!(stops[0].id, my_stop.id);
        } else {
            expect_code(stops, expected);
        }
        let tracking = c
            .list_tracking_events(authed(
                &customer,
                pb::ListTrackingEventsRequest {
                    shipment_id: id.clone(),
                    ..Default::default()
                },
            ))
            .await;
        if expected == Code::Ok {
            assert_eq!(tracking.unwrap().into_inner().tracking_events.len(), 1);
        } else {
            expect_code(tracking, expected);
        }
        let proof = c
            .get_proof_of_delivery(authed(
                &customer,
                pb::GetProofOfDeliveryRequest {
                    shipment_id: id.clone(),
                },
            ))
            .await;
        if expected == Code::Ok {
            let proof = proof.unwrap().into_inner().proof_of_delivery.unwrap();
            assert_eq!(proof.recipient_name, "Erika Mustermann");
        } else {
            expect_code(proof, expected);
        }
    }
    let item = |id: &str| {
        let mut c = c.clone();
        let request = authed(&customer, pb::GetShipmentItemRequest { id: id.to_owned() });
        async move { c.get_shipment_item(request).await }
    };
    assert_eq!(
        item(&my_item.id)
            .await
            .unwrap()
            .into_inner()
            .shipment_item
            .unwrap()
            .shipment_id,
        mine.id
    );
    expect_code(item(&their_item.id).await, Code::NotFound);
    let stop = |id: &str| {
        let mut c = c.clone();
        let request = authed(&customer, pb::GetStopRequest { id: id.to_owned() });
        async move { c.get_stop(request).await }
    };
    assert_eq!(
        stop(&my_stop.id)
            .await
            .unwrap()
            .into_inner()
            .stop
            .unwrap()
            .shipment_id,
        mine.id
    );
    expect_code(stop(&their_stop.id).await, Code::NotFound);
}

#[tokio::test]
async fn a_driver_sees_and_moves_only_the_shipments_booked_for_it() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;

    // The first shipment books the only driver; a second driver and truck then exist, and a
    // second shipment in the same window gets them because the first pair is busy.
    let first = stack.draft(&world, &[(&world.bolts, "3")]).await;
    let first = stack.plan(&first.id).await.unwrap();
    assert_eq!(first.driver_id, world.driver.id);
    let second_driver = stack.driver().await;
    stack.truck("24000").await;
    let second = create_as(
        &stack,
        &stack.admin_token,
        pb::Shipment {
            pickup_window: first.pickup_window,
            delivery_window: first.delivery_window,
            ..new_shipment(&world)
        },
    )
    .await
    .unwrap();
    stack
        .add_item(&stack.admin_token, &second.id, &world.nuts, "2")
        .await;
    let second = stack.plan(&second.id).await.unwrap();
    assert_eq!(second.driver_id, second_driver.id);
    stack.dispatch(&first.id).await.unwrap();
    stack.dispatch(&second.id).await.unwrap();

    let driver = stack
        .token(&[idpb::Role::Driver], None, Some(&world.driver.id))
        .await;
    let other_driver = stack
        .token(&[idpb::Role::Driver], None, Some(&second_driver.id))
        .await;
    assert_eq!(listed_ids(&stack, &driver).await, [first.id.as_str()]);
    assert_eq!(
        listed_ids(&stack, &other_driver).await,
        [second.id.as_str()]
    );
    assert_eq!(
        get_as(&stack, &driver, &first.id).await.unwrap().id,
        first.id
    );
    expect_code(get_as(&stack, &driver, &second.id).await, Code::NotFound);

    // Someone else's shipment: not found, and nothing recorded on it.
    let outbox = rows_of(&stack, "outbox", &second.id).await;
    expect_code(
        stack
            .track_as(&driver, &second.id, pb::TrackingEventKind::Departed)
            .await,
        Code::NotFound,
    );
    expect_code(
        stack
            .track_as(&driver, &second.id, pb::TrackingEventKind::Position)
            .await,
        Code::NotFound,
    );
    let exception = stack
        .client()
        .await
        .report_exception(authed(
            &driver,
            pb::ReportExceptionRequest {
                id: second.id.clone(),
                reason: "flat tyre".to_owned(),
                location: None,
            },
        ))
        .await;
    expect_code(exception, Code::NotFound);
    expect_code(stack.deliver_as(&driver, &second.id).await, Code::NotFound);
    let tracking = stack
        .client()
        .await
        .list_tracking_events(authed(
            &driver,
            pb::ListTrackingEventsRequest {
                shipment_id: second.id.clone(),
                ..Default::default()
            },
        ))
        .await;
    expect_code(tracking, Code::NotFound);
    assert_eq!(rows_of(&stack, "tracking_events", &second.id).await, 0);
    assert_eq!(rows_of(&stack, "proofs_of_delivery", &second.id).await, 0);
    assert_eq!(rows_of(&stack, "outbox", &second.id).await, outbox);
    assert_eq!(
        status_of(&stack.get(&second.id).await),
        pb::ShipmentStatus::Dispatched
    );

    // Its own shipment: both succeed.
    let departed = stack
        .track_as(&driver, &first.id, pb::TrackingEventKind::Departed)
        .await
        .unwrap();
    assert_eq!(departed.tracking_event.unwrap().shipment_id, first.id);
    let delivered = stack.deliver_as(&driver, &first.id).await.unwrap();
    assert_eq!(
        status_of(delivered.shipment.as_ref().unwrap()),
        pb::ShipmentStatus::Delivered
    );
    assert_eq!(rows_of(&stack, "tracking_events", &first.id).await, 1);
    assert_eq!(rows_of(&stack, "proofs_of_delivery", &first.id).await, 1);
}

#[tokio::test]
async fn the_admin_of_another_tenant_can_neither_see_nor_plan_nor_watch_this_tenants_shipments() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "8")]).await;
    let item = stack
        .client()
        .await
        .list_shipment_items(authed(
            &stack.admin_token,
            pb::ListShipmentItemsRequest {
                shipment_id: draft.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .shipment_items
        .remove(0);
    let (_, stranger) = stack.identity.other_tenant("Other").await.unwrap();
    let before = footprint(&stack).await;
    let mut c = stack.client().await;

    expect_code(get_as(&stack, &stranger, &draft.id).await, Code::NotFound);
    assert!(listed_ids(&stack, &stranger).await.is_empty());
    let filtered = c
        .list_shipments(authed(
            &stranger,
            pb::ListShipmentsRequest {
                filter: format!("customer_id = \"{}\"", world.customer.id),
                show_deleted: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .shipments;
    assert!(filtered.is_empty());
    expect_code(stack.plan_as(&stranger, &draft.id).await, Code::NotFound);
    expect_code(
        cancel_as(&stack, &stranger, &draft.id).await,
        Code::NotFound,
    );
    expect_code(
        c.get_shipment_item(authed(
            &stranger,
            pb::GetShipmentItemRequest {
                id: item.id.clone(),
            },
        ))
        .await,
        Code::NotFound,
    );
    expect_code(
        c.list_shipment_items(authed(
            &stranger,
            pb::ListShipmentItemsRequest {
                shipment_id: draft.id.clone(),
                ..Default::default()
            },
        ))
        .await,
        Code::NotFound,
    );
    // The outbox replays from the start at once; nothing of this tenant's comes.
    let mut events = c
        .watch_shipment_events(authed(&stranger, pb::WatchShipmentEventsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let next = tokio::time::timeout(std::time::Duration::from_millis(1500), events.message()).await;
    assert!(next.is_err(), "the stranger received {next:?}");

    assert_eq!(footprint(&stack).await, before, "nothing was written");
    assert_eq!(
        status_of(&stack.get(&draft.id).await),
        pb::ShipmentStatus::Draft
    );
    assert!(stack.reservations(&draft.id).await.is_empty());
    assert!(stack.assignments(&draft.id).await.is_empty());
    // This tenant's admin still sees it (the control).
    assert_eq!(
        listed_ids(&stack, &stack.admin_token).await,
        [draft.id.as_str()]
    );
}

#[tokio::test]
async fn neither_the_recipients_name_nor_an_access_token_ever_reaches_the_logs() {
    const NAME: &str = "Zacharias Geheimnis";
    let logs = logistics_testkit::captured_logs();
    let mut stack = Stack::spawn().await;
    let world = stack.world().await;
    let driver = stack
        .token(&[idpb::Role::Driver], None, Some(&world.driver.id))
        .await;
    let draft = stack.draft(&world, &[(&world.bolts, "5")]).await;
    stack.plan(&draft.id).await.unwrap();
    stack.dispatch(&draft.id).await.unwrap();
    stack
        .track_as(&driver, &draft.id, pb::TrackingEventKind::Departed)
        .await
        .unwrap();
    let mut c = stack.client().await;
    let delivered = c
        .deliver_shipment(authed(
            &driver,
            pb::DeliverShipmentRequest {
                id: draft.id.clone(),
                proof_of_delivery: Some(pb::ProofOfDelivery {
                    recipient_name: NAME.to_owned(),
                    deliver_time: Some(minutes_from_now(0)),
                    content: b"\x89PNG\r\n\x1a\nsignature".to_vec(),
                    content_type: "image/png".to_owned(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(delivered.proof_of_delivery.unwrap().recipient_name, NAME);
    // Reading it back, as the admin and the driver, and a delivery again (refused, it is final).
    for token in [&stack.admin_token, &driver] {
        let proof = c
            .get_proof_of_delivery(authed(
                token,
                pb::GetProofOfDeliveryRequest {
                    shipment_id: draft.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .proof_of_delivery
            .unwrap();
        assert_eq!(proof.recipient_name, NAME);
    }
    expect_code(
        stack.deliver_as(&driver, &draft.id).await,
        Code::FailedPrecondition,
    );
    // More calls as the admin, failing ones among them (their errors are logged).
    let short = stack.draft(&world, &[(&world.nuts, "500")]).await;
    expect_code(stack.plan(&short.id).await, Code::FailedPrecondition);
    expect_code(
        stack.plan(&Uuid::now_v7().to_string()).await,
        Code::NotFound,
    );
    stack.cancel(&short.id).await.unwrap();
    listed_ids(&stack, &stack.admin_token).await;
    // A plan failing on an unreachable fleet logs its whole cause chain.
    let stranded = stack.draft(&world, &[(&world.bolts, "1")]).await;
    stack.stop_fleet().await;
    expect_code(stack.plan(&stranded.id).await, Code::Unavailable);

    let text = logs.contents();
    // The capture works: this test's sagas (the plans and dispatch) are in it.
    let sagas: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM shipment.sagas WHERE shipment_id = ANY($1) AND kind <> 'cancel'",
    )
    .bind(
        [&draft.id, &short.id, &stranded.id]
            .iter()
            .map(|id| Uuid::parse_str(id).unwrap())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&stack.db().await)
    .await
    .unwrap();
    assert_eq!(
        sagas.len(),
        4,
        "plan, dispatch, failed plan, unavailable plan"
    );
    for saga in sagas {
        assert!(
            text.contains(&saga.to_string()),
            "saga {saga} is not in the logs"
        );
    }
    assert!(
        text.contains("request failed"),
        "the unavailable plan was logged"
    );
    assert!(
        !text.contains("Geheimnis"),
        "the recipient's name was logged"
    );
    assert!(
        !text.contains("Zacharias"),
        "the recipient's name was logged"
    );
    for token in [&stack.admin_token, &driver] {
        let signature = token.rsplit_once('.').unwrap().1;
        assert!(!text.contains(token.as_str()), "an access token was logged");
        assert!(!text.contains(signature), "a token's signature was logged");
    }
}

#[tokio::test]
async fn a_plan_failing_on_an_unreachable_fleet_answers_without_addresses_or_sql() {
    let mut stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "2")]).await;
    stack.stop_fleet().await;

    let failed = expect_code(stack.plan(&draft.id).await, Code::Unavailable);
    // Everything the caller gets: the message and the encoded details.
    let answer = format!(
        "{} {}",
        failed.message(),
        String::from_utf8_lossy(failed.details())
    );
    assert!(!answer.contains("127.0.0.1"), "{answer}");
    assert!(
        !answer.contains(&format!(":{}", stack.fleet_addr.port())),
        "{answer}"
    );
    assert!(!answer.contains("http://"), "{answer}");
    let lower = answer.to_lowercase();
    for sql in [
        "select ",
        "insert ",
        "update ",
        "delete ",
        "shipment.",
        "sqlx",
        "postgres",
    ] {
        assert!(!lower.contains(sql), "{sql:?} in {answer}");
    }
    assert!(!answer.contains(&stack.admin_token), "{answer}");
}

#[tokio::test]
async fn a_driver_reusing_the_client_event_id_of_a_shipment_it_cannot_see_is_refused_cleanly() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let first = stack.draft(&world, &[(&world.bolts, "3")]).await;
    let first = stack.plan(&first.id).await.unwrap();
    let second_driver = stack.driver().await;
    stack.truck("24000").await;
    let second = create_as(
        &stack,
        &stack.admin_token,
        pb::Shipment {
            pickup_window: first.pickup_window,
            delivery_window: first.delivery_window,
            ..new_shipment(&world)
        },
    )
    .await
    .unwrap();
    stack
        .add_item(&stack.admin_token, &second.id, &world.nuts, "2")
        .await;
    let second = stack.plan(&second.id).await.unwrap();
    assert_eq!(second.driver_id, second_driver.id);
    stack.dispatch(&first.id).await.unwrap();
    stack.dispatch(&second.id).await.unwrap();
    let driver = stack
        .token(&[idpb::Role::Driver], None, Some(&world.driver.id))
        .await;
    let other_driver = stack
        .token(&[idpb::Role::Driver], None, Some(&second_driver.id))
        .await;

    let record = |token: &str, shipment_id: &str, client_event_id: &str| {
        let request = authed(
            token,
            pb::RecordTrackingEventRequest {
                tracking_event: Some(pb::TrackingEvent {
                    shipment_id: shipment_id.to_owned(),
                    client_event_id: client_event_id.to_owned(),
                    kind: pb::TrackingEventKind::Position as i32,
                    event_time: Some(minutes_from_now(0)),
                    ..Default::default()
                }),
            },
        );
        let client = stack.client();
        async move { client.await.record_tracking_event(request).await }
    };
    let used = Uuid::now_v7().to_string();
    record(&other_driver, &second.id, &used).await.unwrap();
    // The admin, who sees both, is told the id belongs to another shipment.
    let refused = expect_code(
        record(&stack.admin_token, &first.id, &used).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&refused),
        ["tracking_event.client_event_id"]
    );
    // The driver, who sees only its own, gets the same answer, not an internal error.
    let refused = expect_code(
        record(&driver, &first.id, &used).await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&refused),
        ["tracking_event.client_event_id"]
    );
    assert_eq!(rows_of(&stack, "tracking_events", &first.id).await, 0);
    assert_eq!(rows_of(&stack, "tracking_events", &second.id).await, 1);
}
