//! Shipments, their items and their stops as resources, with all five services as real servers:
//! what CreateShipment refuses (every field at once, references checked with the services that
//! own them, nothing left behind), idempotent creates, the destination snapshot, Get and List
//! with pages, orders and filters, masked updates under etags, soft delete and undelete, items
//! that snapshot their material's weight and the totals the database keeps in step, stops in
//! route order, drafts-only changes, and the row-level security the runtime role works under.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use logistics_proto::inventory::v1 as invpb;
use logistics_proto::partner::v1 as partnerpb;
use logistics_proto::shipment::v1 as pb;
use logistics_proto::r#type::v1 as types;
use prost_types::FieldMask;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

const SHIPMENT: &str = "logistics.shipment.v1.Shipment";
const ITEM: &str = "logistics.shipment.v1.ShipmentItem";
const STOP: &str = "logistics.shipment.v1.Stop";

// Helpers ---------------------------------------------------------------------------------------

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// The text of a wire decimal (empty when unset).
fn text(d: Option<&types::Decimal>) -> &str {
    d.map_or("", |d| d.value.as_str())
}

fn weight(s: &pb::Shipment) -> &str {
    text(s.total_weight_kg.as_ref())
}

fn volume(s: &pb::Shipment) -> &str {
    text(s.total_volume_m3.as_ref())
}

fn city(s: &pb::Shipment) -> &str {
    s.destination.as_ref().map_or("", |d| d.city.as_str())
}

/// `(resource_type, resource_name)` of the status's ResourceInfo.
fn resource_info(status: &Status) -> (String, String) {
    let info = status
        .get_details_resource_info()
        .unwrap_or_else(|| panic!("no ResourceInfo in {status:?}"));
    (info.resource_type, info.resource_name)
}

/// The one PreconditionFailure violation `(kind, subject)` expected.
fn one(kind: &str, subject: &str) -> Vec<(String, String)> {
    vec![(kind.to_owned(), subject.to_owned())]
}

fn not_a_draft() -> Vec<(String, String)> {
    one("NOT_A_DRAFT", "status")
}

fn sorted(mut fields: Vec<String>) -> Vec<String> {
    fields.sort();
    fields
}

/// A valid new shipment of the world's customer with `reference`.
fn with_reference(world: &World, reference: &str) -> pb::Shipment {
    pb::Shipment {
        reference: reference.to_owned(),
        ..new_shipment(world)
    }
}

async fn create_request(
    stack: &Stack,
    request: pb::CreateShipmentRequest,
) -> Result<pb::Shipment, Status> {
    stack
        .client()
        .await
        .create_shipment(authed(&stack.admin_token, request))
        .await
        .map(|r| r.into_inner().shipment.unwrap())
}

/// CreateShipment as the admin with a fresh request id.
async fn create(stack: &Stack, shipment: pb::Shipment) -> Result<pb::Shipment, Status> {
    create_request(
        stack,
        pb::CreateShipmentRequest {
            request_id: Uuid::now_v7().to_string(),
            shipment: Some(shipment),
        },
    )
    .await
}

/// The fields named by a create that must be INVALID_ARGUMENT.
async fn invalid_fields(stack: &Stack, shipment: pb::Shipment) -> Vec<String> {
    violated_fields(&expect_code(
        create(stack, shipment).await,
        Code::InvalidArgument,
    ))
}

async fn get_shipment(stack: &Stack, id: &str) -> Result<pb::Shipment, Status> {
    stack
        .client()
        .await
        .get_shipment(authed(
            &stack.admin_token,
            pb::GetShipmentRequest { id: id.to_owned() },
        ))
        .await
        .map(|r| r.into_inner().shipment.unwrap())
}

async fn update(
    stack: &Stack,
    shipment: pb::Shipment,
    paths: &[&str],
) -> Result<pb::Shipment, Status> {
    stack
        .client()
        .await
        .update_shipment(authed(
            &stack.admin_token,
            pb::UpdateShipmentRequest {
                shipment: Some(shipment),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(|r| r.into_inner().shipment.unwrap())
}

async fn delete(stack: &Stack, id: &str, etag: &str) -> Result<pb::Shipment, Status> {
    stack
        .client()
        .await
        .delete_shipment(authed(
            &stack.admin_token,
            pb::DeleteShipmentRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().shipment.unwrap())
}

async fn undelete(stack: &Stack, id: &str, etag: &str) -> Result<pb::Shipment, Status> {
    stack
        .client()
        .await
        .undelete_shipment(authed(
            &stack.admin_token,
            pb::UndeleteShipmentRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().shipment.unwrap())
}

async fn list_as(
    stack: &Stack,
    token: &str,
    request: pb::ListShipmentsRequest,
) -> Result<pb::ListShipmentsResponse, Status> {
    stack
        .client()
        .await
        .list_shipments(authed(token, request))
        .await
        .map(tonic::Response::into_inner)
}

async fn list(
    stack: &Stack,
    request: pb::ListShipmentsRequest,
) -> Result<pb::ListShipmentsResponse, Status> {
    list_as(stack, &stack.admin_token, request).await
}

/// Every page of a listing, following its tokens: the shipments in order and how many pages.
async fn list_pages(
    stack: &Stack,
    mut request: pb::ListShipmentsRequest,
) -> (Vec<pb::Shipment>, usize) {
    let mut all = Vec::new();
    for pages in 1..=100 {
        let page = list(stack, request.clone()).await.unwrap();
        assert!(
            request.page_size == 0 || page.shipments.len() <= request.page_size as usize,
            "a page longer than its page_size"
        );
        all.extend(page.shipments);
        if page.next_page_token.is_empty() {
            return (all, pages);
        }
        request.page_token = page.next_page_token;
    }
    panic!("more than 100 pages");
}

/// Every shipment of a listing, two at a time.
async fn listed(stack: &Stack, filter: &str, order_by: &str, show_deleted: bool) -> Vec<String> {
    let (all, _) = list_pages(
        stack,
        pb::ListShipmentsRequest {
            page_size: 2,
            filter: filter.to_owned(),
            order_by: order_by.to_owned(),
            show_deleted,
            ..Default::default()
        },
    )
    .await;
    all.into_iter().map(|s| s.reference).collect()
}

fn references(shipments: &[&pb::Shipment]) -> Vec<String> {
    shipments.iter().map(|s| s.reference.clone()).collect()
}

/// A partner holding `roles`, as the admin.
async fn partner(
    stack: &Stack,
    name: &str,
    roles: &[partnerpb::PartnerRole],
) -> partnerpb::Partner {
    stack
        .partner_client()
        .await
        .create_partner(authed(
            &stack.admin_token,
            partnerpb::CreatePartnerRequest {
                request_id: Uuid::now_v7().to_string(),
                partner: Some(partnerpb::Partner {
                    kind: partnerpb::PartnerKind::Organization as i32,
                    legal_name: format!("{name} GmbH"),
                    display_name: name.to_owned(),
                    country_code: "DE".to_owned(),
                    default_currency_code: "EUR".to_owned(),
                    ..Default::default()
                }),
                roles: roles.iter().map(|r| *r as i32).collect(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .partner
        .unwrap()
}

/// A second shipping address of `partner_id` in `city`, as the admin.
async fn new_address(stack: &Stack, partner_id: &str, city: &str) -> partnerpb::Address {
    stack
        .partner_client()
        .await
        .create_address(authed(
            &stack.admin_token,
            partnerpb::CreateAddressRequest {
                request_id: Uuid::now_v7().to_string(),
                address: Some(partnerpb::Address {
                    partner_id: partner_id.to_owned(),
                    kind: partnerpb::AddressKind::Shipping as i32,
                    line1: "Holstenstraße 1".to_owned(),
                    city: city.to_owned(),
                    postal_code: "23552".to_owned(),
                    country_code: "DE".to_owned(),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .address
        .unwrap()
}

/// UpdateAddress of the partner service: the address moves to `city`.
async fn move_address(stack: &Stack, address: &partnerpb::Address, city: &str) {
    let moved = stack
        .partner_client()
        .await
        .update_address(authed(
            &stack.admin_token,
            partnerpb::UpdateAddressRequest {
                address: Some(partnerpb::Address {
                    id: address.id.clone(),
                    city: city.to_owned(),
                    ..Default::default()
                }),
                update_mask: mask(&["city"]),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .address
        .unwrap();
    assert_eq!(moved.city, city);
}

/// UpdateMaterial of the inventory service: the material now weighs `kg` per unit.
async fn reweigh(stack: &Stack, material: &invpb::Material, kg: &str) {
    let changed = stack
        .inventory_client()
        .await
        .update_material(authed(
            &stack.admin_token,
            invpb::UpdateMaterialRequest {
                material: Some(invpb::Material {
                    id: material.id.clone(),
                    unit_weight_kg: decimal(kg),
                    ..Default::default()
                }),
                update_mask: mask(&["unit_weight_kg"]),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap();
    assert_eq!(text(changed.unit_weight_kg.as_ref()), kg);
}

/// A CreateShipmentItemRequest with a fresh request id.
fn item_request(
    shipment_id: &str,
    material_id: &str,
    quantity: &str,
) -> pb::CreateShipmentItemRequest {
    pb::CreateShipmentItemRequest {
        request_id: Uuid::now_v7().to_string(),
        shipment_item: Some(pb::ShipmentItem {
            shipment_id: shipment_id.to_owned(),
            material_id: material_id.to_owned(),
            quantity: decimal(quantity),
            ..Default::default()
        }),
    }
}

async fn create_item(
    stack: &Stack,
    request: pb::CreateShipmentItemRequest,
) -> Result<pb::ShipmentItem, Status> {
    stack
        .client()
        .await
        .create_shipment_item(authed(&stack.admin_token, request))
        .await
        .map(|r| r.into_inner().shipment_item.unwrap())
}

async fn add_item(
    stack: &Stack,
    shipment_id: &str,
    material_id: &str,
    quantity: &str,
) -> Result<pb::ShipmentItem, Status> {
    create_item(stack, item_request(shipment_id, material_id, quantity)).await
}

/// A material of `kg` and `m3` per piece, without stock, as the admin.
async fn material_of(stack: &Stack, kg: &str, m3: &str) -> invpb::Material {
    let sku = format!("SKU-{}", serial());
    stack
        .inventory_client()
        .await
        .create_material(authed(
            &stack.admin_token,
            invpb::CreateMaterialRequest {
                request_id: Uuid::now_v7().to_string(),
                material: Some(invpb::Material {
                    name: format!("Material {sku}"),
                    sku,
                    unit: invpb::UnitOfMeasure::Piece as i32,
                    unit_weight_kg: decimal(kg),
                    unit_volume_m3: decimal(m3),
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap()
}

/// UpdateMaterial of the inventory service: the material is discontinued.
async fn discontinue(stack: &Stack, material: &invpb::Material) {
    let changed = stack
        .inventory_client()
        .await
        .update_material(authed(
            &stack.admin_token,
            invpb::UpdateMaterialRequest {
                material: Some(invpb::Material {
                    id: material.id.clone(),
                    status: invpb::MaterialStatus::Discontinued as i32,
                    ..Default::default()
                }),
                update_mask: mask(&["status"]),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .material
        .unwrap();
    assert_eq!(changed.status, invpb::MaterialStatus::Discontinued as i32);
}

/// UpdateShipmentItem of the quantity, under `etag`.
async fn requantify(
    stack: &Stack,
    id: &str,
    etag: &str,
    quantity: &str,
) -> Result<pb::ShipmentItem, Status> {
    update_item(
        stack,
        pb::ShipmentItem {
            id: id.to_owned(),
            etag: etag.to_owned(),
            quantity: decimal(quantity),
            ..Default::default()
        },
        &["quantity"],
    )
    .await
}

async fn update_item(
    stack: &Stack,
    item: pb::ShipmentItem,
    paths: &[&str],
) -> Result<pb::ShipmentItem, Status> {
    stack
        .client()
        .await
        .update_shipment_item(authed(
            &stack.admin_token,
            pb::UpdateShipmentItemRequest {
                shipment_item: Some(item),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(|r| r.into_inner().shipment_item.unwrap())
}

async fn delete_item(stack: &Stack, id: &str, etag: &str) -> Result<pb::ShipmentItem, Status> {
    stack
        .client()
        .await
        .delete_shipment_item(authed(
            &stack.admin_token,
            pb::DeleteShipmentItemRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().shipment_item.unwrap())
}

async fn undelete_item(stack: &Stack, id: &str, etag: &str) -> Result<pb::ShipmentItem, Status> {
    stack
        .client()
        .await
        .undelete_shipment_item(authed(
            &stack.admin_token,
            pb::UndeleteShipmentItemRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().shipment_item.unwrap())
}

async fn get_item(stack: &Stack, id: &str) -> Result<pb::ShipmentItem, Status> {
    stack
        .client()
        .await
        .get_shipment_item(authed(
            &stack.admin_token,
            pb::GetShipmentItemRequest { id: id.to_owned() },
        ))
        .await
        .map(|r| r.into_inner().shipment_item.unwrap())
}

async fn list_items(
    stack: &Stack,
    request: pb::ListShipmentItemsRequest,
) -> Result<pb::ListShipmentItemsResponse, Status> {
    stack
        .client()
        .await
        .list_shipment_items(authed(&stack.admin_token, request))
        .await
        .map(tonic::Response::into_inner)
}

/// Every item of a listing of `page_size`, following its tokens: ids in order and pages.
async fn item_pages(
    stack: &Stack,
    mut request: pb::ListShipmentItemsRequest,
) -> (Vec<String>, usize) {
    let mut all = Vec::new();
    for pages in 1..=100 {
        let page = list_items(stack, request.clone()).await.unwrap();
        assert!(request.page_size == 0 || page.shipment_items.len() <= request.page_size as usize);
        all.extend(page.shipment_items.into_iter().map(|i| i.id));
        if page.next_page_token.is_empty() {
            return (all, pages);
        }
        request.page_token = page.next_page_token;
    }
    panic!("more than 100 pages");
}

fn address(city: &str) -> pb::AddressSnapshot {
    pb::AddressSnapshot {
        line1: "Ladestraße 3".to_owned(),
        city: city.to_owned(),
        postal_code: "04109".to_owned(),
        country_code: "DE".to_owned(),
        ..Default::default()
    }
}

fn new_stop(shipment_id: &str, sequence: i32, kind: pb::StopKind, city: &str) -> pb::Stop {
    pb::Stop {
        shipment_id: shipment_id.to_owned(),
        sequence,
        kind: kind as i32,
        address: Some(address(city)),
        window: Some(window_hours(50, 52)),
        ..Default::default()
    }
}

async fn create_stop(stack: &Stack, request: pb::CreateStopRequest) -> Result<pb::Stop, Status> {
    stack
        .client()
        .await
        .create_stop(authed(&stack.admin_token, request))
        .await
        .map(|r| r.into_inner().stop.unwrap())
}

async fn add_stop(stack: &Stack, stop: pb::Stop) -> Result<pb::Stop, Status> {
    create_stop(
        stack,
        pb::CreateStopRequest {
            request_id: Uuid::now_v7().to_string(),
            stop: Some(stop),
        },
    )
    .await
}

/// The fields named by a stop create that must be INVALID_ARGUMENT.
async fn invalid_stop(stack: &Stack, stop: pb::Stop) -> Vec<String> {
    violated_fields(&expect_code(
        add_stop(stack, stop).await,
        Code::InvalidArgument,
    ))
}

async fn update_stop(stack: &Stack, stop: pb::Stop, paths: &[&str]) -> Result<pb::Stop, Status> {
    stack
        .client()
        .await
        .update_stop(authed(
            &stack.admin_token,
            pb::UpdateStopRequest {
                stop: Some(stop),
                update_mask: mask(paths),
            },
        ))
        .await
        .map(|r| r.into_inner().stop.unwrap())
}

async fn delete_stop(stack: &Stack, id: &str, etag: &str) -> Result<pb::Stop, Status> {
    stack
        .client()
        .await
        .delete_stop(authed(
            &stack.admin_token,
            pb::DeleteStopRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().stop.unwrap())
}

async fn undelete_stop(stack: &Stack, id: &str, etag: &str) -> Result<pb::Stop, Status> {
    stack
        .client()
        .await
        .undelete_stop(authed(
            &stack.admin_token,
            pb::UndeleteStopRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().stop.unwrap())
}

async fn get_stop(stack: &Stack, id: &str) -> Result<pb::Stop, Status> {
    stack
        .client()
        .await
        .get_stop(authed(
            &stack.admin_token,
            pb::GetStopRequest { id: id.to_owned() },
        ))
        .await
        .map(|r| r.into_inner().stop.unwrap())
}

async fn list_stops(
    stack: &Stack,
    request: pb::ListStopsRequest,
) -> Result<pb::ListStopsResponse, Status> {
    stack
        .client()
        .await
        .list_stops(authed(&stack.admin_token, request))
        .await
        .map(tonic::Response::into_inner)
}

/// The sequences of a shipment's stops as listed with `filter`, `order_by` and `show_deleted`,
/// following every page of two.
async fn sequences(
    stack: &Stack,
    shipment_id: &str,
    filter: &str,
    order_by: &str,
    show_deleted: bool,
) -> Vec<i32> {
    let mut request = pb::ListStopsRequest {
        shipment_id: shipment_id.to_owned(),
        page_size: 2,
        filter: filter.to_owned(),
        order_by: order_by.to_owned(),
        show_deleted,
        ..Default::default()
    };
    let mut all = Vec::new();
    for _ in 0..100 {
        let page = list_stops(stack, request.clone()).await.unwrap();
        assert!(page.stops.len() <= 2);
        all.extend(page.stops.iter().map(|s| s.sequence));
        if page.next_page_token.is_empty() {
            return all;
        }
        request.page_token = page.next_page_token;
    }
    panic!("more than 100 pages");
}

/// Opens a transaction of `pool` with `app.tenant_id` set to `tenant` (or left unset).
async fn begin_as(
    pool: &sqlx::PgPool,
    tenant: Option<Uuid>,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    if let Some(tenant) = tenant {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx
}

/// `sql` (a count) in a transaction of `pool` inside `tenant`.
async fn count_as(pool: &sqlx::PgPool, tenant: Option<Uuid>, sql: &'static str) -> i64 {
    let mut tx = begin_as(pool, tenant).await;
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap();
    tx.rollback().await.unwrap();
    n
}

/// `sql` (a count) as the superuser, which row-level security does not filter.
async fn count_all(stack: &Stack, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&stack.db().await)
        .await
        .unwrap()
}

const SHIPMENTS: &str = "SELECT count(*) FROM shipment.shipments";
const ITEMS: &str = "SELECT count(*) FROM shipment.shipment_items";
const OUTBOX: &str = "SELECT count(*) FROM shipment.outbox";

// Create ----------------------------------------------------------------------------------------

#[tokio::test]
async fn an_invalid_new_shipment_is_refused_naming_every_violated_field_at_once() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let mut created = Vec::new();

    let expected = [
        "shipment.customer_id",
        "shipment.delivery_window",
        "shipment.destination_address_id",
        "shipment.origin_warehouse_id",
        "shipment.pickup_window",
        "shipment.reference",
    ];
    assert_eq!(
        sorted(invalid_fields(&stack, pb::Shipment::default()).await),
        expected
    );
    let missing = expect_code(
        create_request(
            &stack,
            pb::CreateShipmentRequest {
                request_id: String::new(),
                shipment: None,
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(sorted(violated_fields(&missing)), expected);

    // References: 1 to 40 of A-Z, 0-9, '-', '_', '/', starting with a letter or digit.
    let too_long = "A".repeat(41);
    for reference in ["so-1", too_long.as_str(), "-SO-1", "SO 1", "SO.1", "SÖ-1"] {
        assert_eq!(
            invalid_fields(&stack, with_reference(&world, reference)).await,
            ["shipment.reference"],
            "{reference:?}"
        );
    }
    let longest = "A".repeat(40);
    for reference in [longest.as_str(), "SO-2026/0001_A", "7"] {
        let shipment = create(&stack, with_reference(&world, reference))
            .await
            .unwrap();
        assert_eq!(shipment.reference, reference);
        created.push(shipment.id);
    }

    // Windows: each non-empty, delivery starting no earlier than pickup.
    let windows = |pickup: types::TimeWindow, delivery: types::TimeWindow| pb::Shipment {
        pickup_window: Some(pickup),
        delivery_window: Some(delivery),
        ..new_shipment(&world)
    };
    assert_eq!(
        invalid_fields(&stack, windows(window_hours(48, 52), window_hours(47, 60))).await,
        ["shipment.delivery_window.start_time"]
    );
    assert_eq!(
        invalid_fields(&stack, windows(window_hours(52, 48), window_hours(60, 70))).await,
        ["shipment.pickup_window.end_time"]
    );
    assert_eq!(
        invalid_fields(&stack, windows(window_hours(48, 52), window_hours(70, 70))).await,
        ["shipment.delivery_window.end_time"]
    );
    assert_eq!(
        invalid_fields(&stack, windows(window_hours(52, 48), window_hours(70, 60))).await,
        [
            "shipment.pickup_window.end_time",
            "shipment.delivery_window.end_time"
        ]
    );
    let open = types::TimeWindow {
        start_time: None,
        ..window_hours(48, 52)
    };
    assert_eq!(
        invalid_fields(&stack, windows(open, window_hours(60, 70))).await,
        ["shipment.pickup_window.start_time"]
    );
    let same_start = create(&stack, windows(window_hours(48, 52), window_hours(48, 60)))
        .await
        .unwrap();
    assert_eq!(same_start.pickup_window, Some(window_hours(48, 52)));
    assert_eq!(same_start.delivery_window, Some(window_hours(48, 60)));
    created.push(same_start.id);

    // Priority: a number the contract does not define; unset is NORMAL.
    for priority in [99, -1] {
        let shipment = pb::Shipment {
            priority,
            ..new_shipment(&world)
        };
        assert_eq!(
            invalid_fields(&stack, shipment).await,
            ["shipment.priority"],
            "{priority}"
        );
    }
    let normal = create(&stack, new_shipment(&world)).await.unwrap();
    assert_eq!(normal.priority, pb::Priority::Normal as i32);
    assert_eq!(status_of(&normal), pb::ShipmentStatus::Draft);
    assert_eq!(weight(&normal), "0");
    created.push(normal.id);

    // Notes: up to 2000 characters (not bytes).
    let wordy = pb::Shipment {
        notes: "ü".repeat(2001),
        ..new_shipment(&world)
    };
    assert_eq!(invalid_fields(&stack, wordy).await, ["shipment.notes"]);
    let full = create(
        &stack,
        pb::Shipment {
            notes: "ü".repeat(2000),
            ..new_shipment(&world)
        },
    )
    .await
    .unwrap();
    assert_eq!(full.notes.chars().count(), 2000);
    created.push(full.id);

    // Malformed ids, all at once; a malformed request id.
    let malformed = pb::Shipment {
        customer_id: "customer-1".to_owned(),
        supplier_id: "x".to_owned(),
        origin_warehouse_id: "42".to_owned(),
        destination_address_id: world.customer.id[..8].to_owned(),
        ..new_shipment(&world)
    };
    assert_eq!(
        sorted(invalid_fields(&stack, malformed).await),
        [
            "shipment.customer_id",
            "shipment.destination_address_id",
            "shipment.origin_warehouse_id",
            "shipment.supplier_id"
        ]
    );
    let bad_request_id = expect_code(
        create_request(
            &stack,
            pb::CreateShipmentRequest {
                request_id: "not-a-uuid".to_owned(),
                shipment: Some(new_shipment(&world)),
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&bad_request_id), ["request_id"]);

    // Only the valid ones exist.
    let (all, _) = list_pages(
        &stack,
        pb::ListShipmentsRequest {
            page_size: 100,
            show_deleted: true,
            ..Default::default()
        },
    )
    .await;
    let mut listed: Vec<String> = all.into_iter().map(|s| s.id).collect();
    listed.sort();
    created.sort();
    assert_eq!(listed, created);
}

#[tokio::test]
async fn a_reference_is_held_only_by_a_live_shipment_and_a_request_id_replays_its_first_create() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;

    let first = create(&stack, with_reference(&world, "SO-TAKEN"))
        .await
        .unwrap();
    let duplicate = expect_code(
        create(&stack, with_reference(&world, "SO-TAKEN")).await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&duplicate), ["shipment.reference"]);
    assert_eq!(resource_info(&duplicate).0, SHIPMENT);

    // Renaming another shipment to it is refused the same way.
    let other = create(&stack, with_reference(&world, "SO-OTHER"))
        .await
        .unwrap();
    let renamed = expect_code(
        update(
            &stack,
            pb::Shipment {
                id: other.id.clone(),
                reference: "SO-TAKEN".to_owned(),
                ..Default::default()
            },
            &["reference"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&renamed), ["shipment.reference"]);
    assert_eq!(stack.get(&other.id).await.reference, "SO-OTHER");

    // Deleted, the first one frees its reference, and cannot come back while it is taken.
    delete(&stack, &first.id, &first.etag).await.unwrap();
    let second = create(&stack, with_reference(&world, "SO-TAKEN"))
        .await
        .unwrap();
    assert_ne!(second.id, first.id);
    let back = expect_code(undelete(&stack, &first.id, "").await, Code::AlreadyExists);
    assert_eq!(violated_fields(&back), ["shipment.reference"]);
    assert!(stack.get(&first.id).await.delete_time.is_some());
    assert_eq!(
        listed(&stack, "reference = \"SO-TAKEN*\"", "", true).await,
        ["SO-TAKEN", "SO-TAKEN"]
    );
    assert_eq!(
        listed(&stack, "reference = \"SO-TAKEN*\"", "", false).await,
        ["SO-TAKEN"]
    );

    // The same request id and request: one shipment, the first answer again.
    let request = pb::CreateShipmentRequest {
        request_id: Uuid::now_v7().to_string(),
        shipment: Some(with_reference(&world, "SO-ONCE")),
    };
    let once = create_request(&stack, request.clone()).await.unwrap();
    let again = create_request(&stack, request.clone()).await.unwrap();
    assert_eq!(again, once);
    assert_eq!(
        listed(&stack, "reference = \"SO-ONCE*\"", "", true).await,
        ["SO-ONCE"]
    );
    let events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM shipment.outbox WHERE shipment_id = $1")
            .bind(Uuid::parse_str(&once.id).unwrap())
            .fetch_one(&stack.db().await)
            .await
            .unwrap();
    assert_eq!(events, 1);

    // The same request id with another request is refused.
    let mut changed = request.clone();
    changed.shipment.as_mut().unwrap().notes = "rush".to_owned();
    let refused = expect_code(create_request(&stack, changed).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["request_id"]);
    // Another request id with the same request is another create (and the reference is taken).
    let fresh = pb::CreateShipmentRequest {
        request_id: Uuid::now_v7().to_string(),
        ..request.clone()
    };
    let taken = expect_code(create_request(&stack, fresh).await, Code::AlreadyExists);
    assert_eq!(violated_fields(&taken), ["shipment.reference"]);
    assert_eq!(create_request(&stack, request).await.unwrap(), once);
    assert_eq!(stack.get(&once.id).await.notes, "");
}

#[tokio::test]
async fn references_are_checked_with_their_owners_and_a_refused_create_leaves_nothing_behind() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let no_roles = partner(&stack, "Nobody", &[]).await;
    assert!(no_roles.roles.is_empty());
    let (other_customer, other_address) = stack.customer("Other").await;
    let supplier = partner(&stack, "Supplies", &[partnerpb::PartnerRole::Supplier]).await;
    let unknown = || Uuid::now_v7().to_string();

    let cases = [
        (
            pb::Shipment {
                customer_id: unknown(),
                ..new_shipment(&world)
            },
            "UNKNOWN_REFERENCE",
            "shipment.customer_id",
        ),
        (
            pb::Shipment {
                customer_id: no_roles.id.clone(),
                ..new_shipment(&world)
            },
            "NOT_A_CUSTOMER",
            "shipment.customer_id",
        ),
        (
            pb::Shipment {
                destination_address_id: other_address.id.clone(),
                ..new_shipment(&world)
            },
            "NOT_THE_CUSTOMERS_ADDRESS",
            "shipment.destination_address_id",
        ),
        (
            pb::Shipment {
                destination_address_id: unknown(),
                ..new_shipment(&world)
            },
            "UNKNOWN_REFERENCE",
            "shipment.destination_address_id",
        ),
        (
            pb::Shipment {
                origin_warehouse_id: unknown(),
                ..new_shipment(&world)
            },
            "UNKNOWN_REFERENCE",
            "shipment.origin_warehouse_id",
        ),
        (
            pb::Shipment {
                supplier_id: other_customer.id.clone(),
                ..new_shipment(&world)
            },
            "NOT_A_SUPPLIER",
            "shipment.supplier_id",
        ),
        (
            pb::Shipment {
                supplier_id: unknown(),
                ..new_shipment(&world)
            },
            "UNKNOWN_REFERENCE",
            "shipment.supplier_id",
        ),
    ];
    for (shipment, kind, subject) in cases {
        let refused = expect_code(create(&stack, shipment).await, Code::FailedPrecondition);
        assert_eq!(
            preconditions(&refused),
            one(kind, subject),
            "{kind} {subject}"
        );
    }

    // Nothing was written: no shipment, no event, no claimed request id.
    let page = list(
        &stack,
        pb::ListShipmentsRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(page.shipments.is_empty());
    assert_eq!(count_all(&stack, SHIPMENTS).await, 0);
    assert_eq!(count_all(&stack, OUTBOX).await, 0);
    assert_eq!(
        count_all(&stack, "SELECT count(*) FROM shipment.idempotency_keys").await,
        0
    );

    // The request id of a refused create is free for the corrected request.
    let request_id = Uuid::now_v7().to_string();
    let refused = expect_code(
        create_request(
            &stack,
            pb::CreateShipmentRequest {
                request_id: request_id.clone(),
                shipment: Some(pb::Shipment {
                    origin_warehouse_id: unknown(),
                    ..with_reference(&world, "SO-RETRY")
                }),
            },
        )
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&refused),
        one("UNKNOWN_REFERENCE", "shipment.origin_warehouse_id")
    );
    let created = create_request(
        &stack,
        pb::CreateShipmentRequest {
            request_id,
            shipment: Some(pb::Shipment {
                supplier_id: supplier.id.clone(),
                ..with_reference(&world, "SO-RETRY")
            }),
        },
    )
    .await
    .unwrap();
    assert_eq!(created.supplier_id, supplier.id);
    assert_eq!(created.customer_id, world.customer.id);
    assert_eq!(count_all(&stack, SHIPMENTS).await, 1);
    assert_eq!(count_all(&stack, OUTBOX).await, 1);
}

#[tokio::test]
async fn the_destination_is_a_snapshot_copied_again_only_when_its_address_is_in_the_mask() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[]).await;
    assert_eq!(city(&draft), "Hamburg");

    // The partner's address changes; the shipment keeps its copy.
    move_address(&stack, &world.address, "Bremen").await;
    assert_eq!(city(&stack.get(&draft.id).await), "Hamburg");
    let noted = update(
        &stack,
        pb::Shipment {
            id: draft.id.clone(),
            etag: draft.etag.clone(),
            notes: "ring twice".to_owned(),
            ..Default::default()
        },
        &["notes"],
    )
    .await
    .unwrap();
    assert_eq!(city(&noted), "Hamburg");

    // Naming the address in the mask, even the same one, copies it again.
    let recopied = update(
        &stack,
        pb::Shipment {
            id: draft.id.clone(),
            etag: noted.etag.clone(),
            destination_address_id: world.address.id.clone(),
            ..Default::default()
        },
        &["destination_address_id"],
    )
    .await
    .unwrap();
    assert_eq!(city(&recopied), "Bremen");
    assert_eq!(recopied.destination_address_id, world.address.id);
    assert_eq!(
        recopied.destination.as_ref().unwrap().line1,
        "Hafenstraße 7"
    );
    assert_eq!(recopied.notes, "ring twice");
    assert_ne!(recopied.etag, noted.etag);
    assert_eq!(stack.get(&draft.id).await, recopied);

    // Another address must be the customer's; a supplier a supplier; a warehouse known.
    let (_, foreign) = stack.customer("Other").await;
    let refusals = [
        (
            pb::Shipment {
                destination_address_id: foreign.id.clone(),
                ..Default::default()
            },
            "destination_address_id",
            "NOT_THE_CUSTOMERS_ADDRESS",
        ),
        (
            pb::Shipment {
                supplier_id: world.customer.id.clone(),
                ..Default::default()
            },
            "supplier_id",
            "NOT_A_SUPPLIER",
        ),
        (
            pb::Shipment {
                origin_warehouse_id: Uuid::now_v7().to_string(),
                ..Default::default()
            },
            "origin_warehouse_id",
            "UNKNOWN_REFERENCE",
        ),
    ];
    for (change, path, kind) in refusals {
        let refused = expect_code(
            update(
                &stack,
                pb::Shipment {
                    id: draft.id.clone(),
                    ..change
                },
                &[path],
            )
            .await,
            Code::FailedPrecondition,
        );
        assert_eq!(
            preconditions(&refused),
            one(kind, &format!("shipment.{path}"))
        );
    }
    assert_eq!(stack.get(&draft.id).await, recopied);

    // A second address of the customer is copied when switched to.
    let lubeck = new_address(&stack, &world.customer.id, "Lübeck").await;
    let switched = update(
        &stack,
        pb::Shipment {
            id: draft.id.clone(),
            etag: recopied.etag.clone(),
            destination_address_id: lubeck.id.clone(),
            ..Default::default()
        },
        &["destination_address_id"],
    )
    .await
    .unwrap();
    assert_eq!(city(&switched), "Lübeck");
    assert_eq!(switched.destination.as_ref().unwrap().postal_code, "23552");
    assert_eq!(switched.destination_address_id, lubeck.id);
}

// Get and List ----------------------------------------------------------------------------------

#[tokio::test]
async fn shipments_are_got_by_id_and_listed_in_pages_ordered_and_filtered() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let (other_customer, other_address) = stack.customer("Other").await;

    let unknown = Uuid::now_v7().to_string();
    let missing = expect_code(get_shipment(&stack, &unknown).await, Code::NotFound);
    assert_eq!(resource_info(&missing), (SHIPMENT.to_owned(), unknown));
    let malformed = expect_code(get_shipment(&stack, "SO-1").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&malformed), ["id"]);

    let mut created = Vec::new();
    for reference in ["LS-C", "LS-A", "LS-E", "LS-B", "LS-D"] {
        created.push(
            create(&stack, with_reference(&world, reference))
                .await
                .unwrap(),
        );
    }
    let foreign = create(
        &stack,
        pb::Shipment {
            customer_id: other_customer.id.clone(),
            destination_address_id: other_address.id.clone(),
            ..with_reference(&world, "OT-1")
        },
    )
    .await
    .unwrap();
    assert_eq!(city(&foreign), "Hamburg");
    created.push(foreign.clone());
    assert_eq!(
        get_shipment(&stack, &created[2].id).await.unwrap(),
        created[2]
    );

    // Newest first by default, two at a time: every one once.
    let (all, pages) = list_pages(
        &stack,
        pb::ListShipmentsRequest {
            page_size: 2,
            ..Default::default()
        },
    )
    .await;
    let newest_first: Vec<&pb::Shipment> = created.iter().rev().collect();
    assert_eq!(
        all.iter().map(|s| &s.id).collect::<Vec<_>>(),
        newest_first.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
    assert_eq!(pages, 3);
    let oldest_first: Vec<&pb::Shipment> = created.iter().collect();
    assert_eq!(
        listed(&stack, "", "create_time", false).await,
        references(&oldest_first)
    );
    assert_eq!(
        listed(&stack, "", "create_time desc", false).await,
        references(&newest_first)
    );

    // By reference, both ways, across pages.
    let by_reference = ["LS-A", "LS-B", "LS-C", "LS-D", "LS-E", "OT-1"];
    assert_eq!(listed(&stack, "", "reference", false).await, by_reference);
    let mut reversed = by_reference;
    reversed.reverse();
    assert_eq!(listed(&stack, "", "reference desc", false).await, reversed);

    // Filters.
    assert_eq!(
        listed(&stack, "status = SHIPMENT_STATUS_DRAFT", "reference", false).await,
        by_reference
    );
    assert!(
        listed(&stack, "status = SHIPMENT_STATUS_PLANNED", "", false)
            .await
            .is_empty()
    );
    assert!(
        listed(&stack, "status != SHIPMENT_STATUS_DRAFT", "", false)
            .await
            .is_empty()
    );
    assert_eq!(
        listed(&stack, "reference = \"LS-*\"", "reference", false).await,
        by_reference[..5]
    );
    assert_eq!(
        listed(&stack, "reference = \"LS-A*\"", "", false).await,
        ["LS-A"]
    );
    assert_eq!(
        listed(&stack, "reference != \"LS-*\"", "", false).await,
        ["OT-1"]
    );
    let of_other = format!("customer_id = \"{}\"", other_customer.id);
    assert_eq!(listed(&stack, &of_other, "", false).await, ["OT-1"]);
    let of_world = format!(
        "customer_id = \"{}\" AND reference = \"LS-B*\"",
        world.customer.id
    );
    assert_eq!(listed(&stack, &of_world, "", false).await, ["LS-B"]);
    assert_eq!(
        listed(&stack, "priority = PRIORITY_NORMAL", "reference", false).await,
        by_reference
    );
    for filter in [
        "notes = \"x\"",
        "status = SHIPMENT_STATUS_UNSPECIFIED",
        "status = DRAFT",
        "reference = \"LS\"",
        "customer_id = \"not-a-uuid\"",
        "status > 1",
        "status = SHIPMENT_STATUS_DRAFT OR priority = PRIORITY_LOW",
    ] {
        let refused = expect_code(
            list(
                &stack,
                pb::ListShipmentsRequest {
                    filter: filter.to_owned(),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&refused), ["filter"], "{filter}");
    }
    let bad_order = expect_code(
        list(
            &stack,
            pb::ListShipmentsRequest {
                order_by: "notes".to_owned(),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&bad_order), ["order_by"]);
    let bad_size = expect_code(
        list(
            &stack,
            pb::ListShipmentsRequest {
                page_size: -1,
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&bad_size), ["page_size"]);

    // A page token continues only the listing it came from.
    let first = pb::ListShipmentsRequest {
        page_size: 2,
        filter: "reference = \"LS-*\"".to_owned(),
        ..Default::default()
    };
    let token = list(&stack, first.clone()).await.unwrap().next_page_token;
    assert!(!token.is_empty());
    let elsewhere = [
        pb::ListShipmentsRequest {
            filter: "status = SHIPMENT_STATUS_DRAFT".to_owned(),
            ..first.clone()
        },
        pb::ListShipmentsRequest {
            filter: String::new(),
            ..first.clone()
        },
        pb::ListShipmentsRequest {
            order_by: "reference".to_owned(),
            ..first.clone()
        },
        pb::ListShipmentsRequest {
            show_deleted: true,
            ..first.clone()
        },
    ];
    for request in elsewhere {
        let refused = expect_code(
            list(
                &stack,
                pb::ListShipmentsRequest {
                    page_token: token.clone(),
                    ..request
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&refused), ["page_token"]);
    }
    let forged = expect_code(
        list(
            &stack,
            pb::ListShipmentsRequest {
                page_token: "not-a-token".to_owned(),
                ..first.clone()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&forged), ["page_token"]);
    // The same listing with another page size continues.
    let rest = list(
        &stack,
        pb::ListShipmentsRequest {
            page_size: 10,
            page_token: token,
            ..first
        },
    )
    .await
    .unwrap();
    assert_eq!(
        rest.shipments
            .iter()
            .map(|s| s.reference.as_str())
            .collect::<Vec<_>>(),
        ["LS-E", "LS-A", "LS-C"]
    );
    assert!(rest.next_page_token.is_empty());

    // A prefix is matched literally: `_` is no wildcard.
    for reference in ["U_1", "UX1"] {
        create(&stack, with_reference(&world, reference))
            .await
            .unwrap();
    }
    assert_eq!(
        listed(&stack, "reference = \"U_*\"", "", false).await,
        ["U_1"]
    );
    // Nor in a negated one: `!= "U_*"` leaves out U_1 only, not UX1.
    assert_eq!(
        listed(
            &stack,
            "reference = \"U*\" AND reference != \"U_*\"",
            "",
            false
        )
        .await,
        ["UX1"]
    );

    // Deleted ones only with show_deleted, marked as such.
    let gone = delete(&stack, &created[0].id, "").await.unwrap();
    assert!(gone.delete_time.is_some());
    assert_eq!(
        listed(&stack, "reference = \"LS-*\"", "reference", false).await,
        ["LS-A", "LS-B", "LS-D", "LS-E"]
    );
    let (with_deleted, _) = list_pages(
        &stack,
        pb::ListShipmentsRequest {
            page_size: 2,
            filter: "reference = \"LS-*\"".to_owned(),
            order_by: "reference".to_owned(),
            show_deleted: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        with_deleted
            .iter()
            .map(|s| (s.reference.as_str(), s.delete_time.is_some()))
            .collect::<Vec<_>>(),
        [
            ("LS-A", false),
            ("LS-B", false),
            ("LS-C", true),
            ("LS-D", false),
            ("LS-E", false)
        ]
    );
    let still = get_shipment(&stack, &created[0].id).await.unwrap();
    assert!(still.delete_time.is_some());
}

// Update, delete, undelete ----------------------------------------------------------------------

#[tokio::test]
async fn a_draft_changes_only_its_masked_fields_under_its_current_etag_and_is_deleted_and_restored()
{
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = create(&stack, new_shipment(&world)).await.unwrap();
    let id = draft.id.clone();
    let notes = |etag: &str, notes: &str| pb::Shipment {
        id: id.clone(),
        etag: etag.to_owned(),
        notes: notes.to_owned(),
        ..Default::default()
    };

    // The mask: not empty, updatable fields only.
    let empty = expect_code(
        update(&stack, notes("", "x"), &[]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&empty), ["update_mask"]);
    let unknown_path = expect_code(
        update(&stack, notes("", "x"), &["notes", "status"]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&unknown_path), ["update_mask.paths[1]"]);
    let fixed = expect_code(
        update(&stack, notes("", "x"), &["customer_id"]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&fixed), ["update_mask.paths[0]"]);
    let bad_etag = expect_code(
        update(&stack, notes("v1", "x"), &["notes"]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&bad_etag), ["shipment.etag"]);
    let no_id = expect_code(
        update(&stack, pb::Shipment::default(), &["notes"]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&no_id), ["shipment.id"]);
    let stranger = Uuid::now_v7().to_string();
    let missing = expect_code(
        update(
            &stack,
            pb::Shipment {
                id: stranger.clone(),
                ..Default::default()
            },
            &["notes"],
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(resource_info(&missing), (SHIPMENT.to_owned(), stranger));
    assert_eq!(stack.get(&id).await, draft);

    // Windows, priority and notes change together; unmasked fields sent along do not.
    let changed = update(
        &stack,
        pb::Shipment {
            id: id.clone(),
            etag: draft.etag.clone(),
            reference: "IGNORED".to_owned(),
            pickup_window: Some(window_hours(100, 104)),
            delivery_window: Some(window_hours(110, 130)),
            priority: pb::Priority::Urgent as i32,
            notes: "fragile".to_owned(),
            ..Default::default()
        },
        &["pickup_window", "delivery_window", "priority", "notes"],
    )
    .await
    .unwrap();
    assert_eq!(changed.pickup_window, Some(window_hours(100, 104)));
    assert_eq!(changed.delivery_window, Some(window_hours(110, 130)));
    assert_eq!(changed.priority, pb::Priority::Urgent as i32);
    assert_eq!(changed.notes, "fragile");
    assert_eq!(changed.reference, draft.reference);
    assert_eq!(changed.customer_id, draft.customer_id);
    assert_eq!(changed.destination, draft.destination);
    assert_ne!(changed.etag, draft.etag);
    assert_eq!(stack.get(&id).await, changed);

    // The first etag is stale now; the current one works and moves on again.
    let stale = expect_code(
        update(&stack, notes(&draft.etag, "late"), &["notes"]).await,
        Code::Aborted,
    );
    assert!(stale.message().contains("etag"), "{stale:?}");
    assert_eq!(stack.get(&id).await.notes, "fragile");
    let cleared = update(&stack, notes(&changed.etag, ""), &["notes"])
        .await
        .unwrap();
    assert_eq!(cleared.notes, "");
    assert_ne!(cleared.etag, changed.etag);
    assert_eq!(cleared.priority, pb::Priority::Urgent as i32);

    // A masked change is checked together with the stored fields.
    let early = expect_code(
        update(
            &stack,
            pb::Shipment {
                id: id.clone(),
                delivery_window: Some(window_hours(90, 120)),
                ..Default::default()
            },
            &["delivery_window"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&early),
        ["shipment.delivery_window.start_time"]
    );
    let bad = expect_code(
        update(
            &stack,
            pb::Shipment {
                id: id.clone(),
                priority: 99,
                reference: "bad ref".to_owned(),
                ..Default::default()
            },
            &["priority", "reference"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        sorted(violated_fields(&bad)),
        ["shipment.priority", "shipment.reference"]
    );
    assert_eq!(stack.get(&id).await, cleared);

    // Delete under the etag: stale is refused, current soft-deletes.
    let stale_delete = expect_code(delete(&stack, &id, &draft.etag).await, Code::Aborted);
    assert!(stale_delete.get_details_error_info().is_some());
    let deleted = delete(&stack, &id, &cleared.etag).await.unwrap();
    assert!(deleted.delete_time.is_some());
    assert_ne!(deleted.etag, cleared.etag);
    let got = stack.get(&id).await;
    assert!(got.delete_time.is_some());
    assert_eq!(status_of(&got), pb::ShipmentStatus::Draft);
    // Deleted, it is neither updated nor deleted again.
    let hidden = expect_code(
        update(&stack, notes("", "x"), &["notes"]).await,
        Code::NotFound,
    );
    assert_eq!(resource_info(&hidden), (SHIPMENT.to_owned(), id.clone()));
    expect_code(delete(&stack, &id, "").await, Code::NotFound);

    // Undelete under the etag; a live one cannot be undeleted.
    expect_code(undelete(&stack, &id, &cleared.etag).await, Code::Aborted);
    let restored = undelete(&stack, &id, &deleted.etag).await.unwrap();
    assert!(restored.delete_time.is_none());
    assert_eq!(restored.notes, "");
    assert!(stack.get(&id).await.delete_time.is_none());
    let live = expect_code(undelete(&stack, &id, "").await, Code::FailedPrecondition);
    assert_eq!(preconditions(&live), one("NOT_DELETED", &id));

    // Ids and etags of Delete are checked as such.
    let malformed = expect_code(delete(&stack, "42", "v").await, Code::InvalidArgument);
    assert_eq!(violated_fields(&malformed), ["id", "etag"]);
    let nobody = Uuid::now_v7().to_string();
    let gone = expect_code(undelete(&stack, &nobody, "").await, Code::NotFound);
    assert_eq!(resource_info(&gone), (SHIPMENT.to_owned(), nobody));
}

// Items -----------------------------------------------------------------------------------------

#[tokio::test]
async fn items_snapshot_their_material_and_keep_the_shipment_totals_in_step() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[]).await;
    let id = draft.id.clone();
    assert_eq!((weight(&draft), volume(&draft)), ("0", "0"));

    // 2.5 pieces of 4 kg and 0.01 m³.
    let nuts = add_item(&stack, &id, &world.nuts.id, "2.5").await.unwrap();
    assert_eq!(nuts.shipment_id, id);
    assert_eq!(nuts.material_id, world.nuts.id);
    assert_eq!(text(nuts.quantity.as_ref()), "2.5");
    assert_eq!(text(nuts.unit_weight_kg.as_ref()), "4");
    assert_eq!(text(nuts.unit_volume_m3.as_ref()), "0.01");
    assert_eq!(get_item(&stack, &nuts.id).await.unwrap(), nuts);
    let after_nuts = stack.get(&id).await;
    assert_eq!((weight(&after_nuts), volume(&after_nuts)), ("10", "0.025"));
    assert_ne!(after_nuts.etag, draft.etag);

    // One live item per material.
    let twice = expect_code(
        add_item(&stack, &id, &world.nuts.id, "1").await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&twice), ["shipment_item.material_id"]);
    assert_eq!(resource_info(&twice).0, ITEM);

    // Quantities: more than 0, at most 3 decimals, fewer than 16 integer digits.
    for quantity in ["0", "-1", "1.2345", "", "abc", "1e3", "1000000000000000"] {
        let refused = expect_code(
            add_item(&stack, &id, &world.bolts.id, quantity).await,
            Code::InvalidArgument,
        );
        assert_eq!(
            violated_fields(&refused),
            ["shipment_item.quantity"],
            "{quantity:?}"
        );
    }
    let empty = expect_code(
        stack
            .client()
            .await
            .create_shipment_item(authed(
                &stack.admin_token,
                pb::CreateShipmentItemRequest::default(),
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&empty),
        [
            "shipment_item.shipment_id",
            "shipment_item.material_id",
            "shipment_item.quantity"
        ]
    );
    // The material must be known to inventory, the shipment to this service.
    let unknown_material = expect_code(
        add_item(&stack, &id, &Uuid::now_v7().to_string(), "1").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&unknown_material),
        one("UNKNOWN_REFERENCE", "shipment_item.material_id")
    );
    let nowhere = Uuid::now_v7().to_string();
    let unknown_shipment = expect_code(
        add_item(&stack, &nowhere, &world.bolts.id, "1").await,
        Code::NotFound,
    );
    assert_eq!(
        resource_info(&unknown_shipment),
        (SHIPMENT.to_owned(), nowhere)
    );
    assert_eq!(weight(&stack.get(&id).await), "10");

    // A discontinued material takes no new items.
    let old_stock = stack.material(&world.warehouse, "1", "0").await;
    discontinue(&stack, &old_stock).await;
    let discontinued = expect_code(
        add_item(&stack, &id, &old_stock.id, "1").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        preconditions(&discontinued),
        one("MATERIAL_NOT_ACTIVE", "shipment_item.material_id")
    );

    // 4.125 pieces of 2.5 kg; the same request id and request again add nothing.
    let request = item_request(&id, &world.bolts.id, "4.125");
    let bolts = create_item(&stack, request.clone()).await.unwrap();
    assert_eq!(weight(&stack.get(&id).await), "20.3125");
    assert_eq!(create_item(&stack, request.clone()).await.unwrap(), bolts);
    assert_eq!(weight(&stack.get(&id).await), "20.3125");
    let mut changed = request;
    changed.shipment_item.as_mut().unwrap().quantity = decimal("5");
    let reused = expect_code(create_item(&stack, changed).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&reused), ["request_id"]);

    // A new quantity recomputes the totals, under the item's etag.
    let nuts5 = requantify(&stack, &nuts.id, &nuts.etag, "5").await.unwrap();
    assert_eq!(text(nuts5.quantity.as_ref()), "5");
    assert_ne!(nuts5.etag, nuts.etag);
    assert_eq!(weight(&stack.get(&id).await), "30.3125");
    expect_code(
        requantify(&stack, &nuts.id, &nuts.etag, "6").await,
        Code::Aborted,
    );
    let zero = expect_code(
        requantify(&stack, &nuts.id, "", "0").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&zero), ["shipment_item.quantity"]);
    let fixed = expect_code(
        update_item(
            &stack,
            pb::ShipmentItem {
                id: nuts.id.clone(),
                material_id: world.bolts.id.clone(),
                ..Default::default()
            },
            &["material_id"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&fixed), ["update_mask.paths[0]"]);
    assert_eq!(weight(&stack.get(&id).await), "30.3125");

    // The material gets heavier in inventory; the item keeps the weight it was added with.
    reweigh(&stack, &world.nuts, "10").await;
    assert_eq!(
        text(
            get_item(&stack, &nuts.id)
                .await
                .unwrap()
                .unit_weight_kg
                .as_ref()
        ),
        "4"
    );
    let nuts6 = requantify(&stack, &nuts.id, &nuts5.etag, "6")
        .await
        .unwrap();
    assert_eq!(text(nuts6.unit_weight_kg.as_ref()), "4");
    assert_eq!(weight(&stack.get(&id).await), "34.3125");

    // Deleting recomputes (down to zero) and undeleting restores.
    let bolts_gone = delete_item(&stack, &bolts.id, &bolts.etag).await.unwrap();
    assert!(bolts_gone.delete_time.is_some());
    assert_eq!(weight(&stack.get(&id).await), "24");
    delete_item(&stack, &nuts.id, "").await.unwrap();
    let empty_now = stack.get(&id).await;
    assert_eq!((weight(&empty_now), volume(&empty_now)), ("0", "0"));
    undelete_item(&stack, &nuts.id, "").await.unwrap();
    assert_eq!(weight(&stack.get(&id).await), "24");
    expect_code(
        undelete_item(&stack, &bolts.id, &bolts.etag).await,
        Code::Aborted,
    );
    let bolts_back = undelete_item(&stack, &bolts.id, &bolts_gone.etag)
        .await
        .unwrap();
    assert!(bolts_back.delete_time.is_none());
    let restored = stack.get(&id).await;
    assert_eq!(
        (weight(&restored), volume(&restored)),
        ("34.3125", "0.10125")
    );
    let live = expect_code(
        undelete_item(&stack, &bolts.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&live), one("NOT_DELETED", &bolts.id));
    let ghost = Uuid::now_v7().to_string();
    let missing = expect_code(get_item(&stack, &ghost).await, Code::NotFound);
    assert_eq!(resource_info(&missing), (ITEM.to_owned(), ghost));

    // A new item of the reweighed material copies today's weight; the old one cannot come
    // back beside it.
    delete_item(&stack, &nuts.id, "").await.unwrap();
    assert_eq!(weight(&stack.get(&id).await), "10.3125");
    let heavy = add_item(&stack, &id, &world.nuts.id, "1").await.unwrap();
    assert_eq!(text(heavy.unit_weight_kg.as_ref()), "10");
    assert_eq!(weight(&stack.get(&id).await), "20.3125");
    let beside = expect_code(
        undelete_item(&stack, &nuts.id, "").await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&beside), ["shipment_item.material_id"]);
    let deleted_update = expect_code(requantify(&stack, &nuts.id, "", "2").await, Code::NotFound);
    assert_eq!(
        resource_info(&deleted_update),
        (ITEM.to_owned(), nuts.id.clone())
    );

    // Listing: oldest first in pages, deleted ones on request, by material.
    let mut extra = Vec::new();
    for kg in ["1", "2", "3"] {
        let material = stack.material(&world.warehouse, kg, "0").await;
        extra.push(add_item(&stack, &id, &material.id, "1").await.unwrap().id);
    }
    assert_eq!(weight(&stack.get(&id).await), "26.3125");
    let live_ids: Vec<String> = [bolts.id.clone(), heavy.id.clone()]
        .into_iter()
        .chain(extra.iter().cloned())
        .collect();
    let request = pb::ListShipmentItemsRequest {
        shipment_id: id.clone(),
        page_size: 2,
        ..Default::default()
    };
    assert_eq!(
        item_pages(&stack, request.clone()).await,
        (live_ids.clone(), 3)
    );
    let mut every = vec![nuts.id.clone()];
    every.extend(live_ids.iter().cloned());
    assert_eq!(
        item_pages(
            &stack,
            pb::ListShipmentItemsRequest {
                show_deleted: true,
                ..request.clone()
            }
        )
        .await
        .0,
        every
    );
    let mut newest_first = live_ids.clone();
    newest_first.reverse();
    assert_eq!(
        item_pages(
            &stack,
            pb::ListShipmentItemsRequest {
                order_by: "create_time desc".to_owned(),
                ..request.clone()
            }
        )
        .await
        .0,
        newest_first
    );
    let of_nuts = format!("material_id = \"{}\"", world.nuts.id);
    assert_eq!(
        item_pages(
            &stack,
            pb::ListShipmentItemsRequest {
                filter: of_nuts.clone(),
                show_deleted: true,
                ..request.clone()
            }
        )
        .await
        .0,
        [nuts.id.clone(), heavy.id.clone()]
    );
    let not_nuts = format!("material_id != \"{}\"", world.nuts.id);
    let mut others = vec![bolts.id.clone()];
    others.extend(extra.iter().cloned());
    assert_eq!(
        item_pages(
            &stack,
            pb::ListShipmentItemsRequest {
                filter: not_nuts,
                ..request.clone()
            }
        )
        .await
        .0,
        others
    );
    let bad_filter = expect_code(
        list_items(
            &stack,
            pb::ListShipmentItemsRequest {
                filter: "quantity = \"1\"".to_owned(),
                ..request.clone()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&bad_filter), ["filter"]);
    let token = list_items(&stack, request.clone())
        .await
        .unwrap()
        .next_page_token;
    let reused = expect_code(
        list_items(
            &stack,
            pb::ListShipmentItemsRequest {
                filter: of_nuts,
                page_token: token,
                ..request.clone()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&reused), ["page_token"]);
    let nowhere = Uuid::now_v7().to_string();
    let unknown = expect_code(
        list_items(
            &stack,
            pb::ListShipmentItemsRequest {
                shipment_id: nowhere.clone(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(resource_info(&unknown), (SHIPMENT.to_owned(), nowhere));
    let malformed = expect_code(
        list_items(&stack, pb::ListShipmentItemsRequest::default()).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&malformed), ["shipment_id"]);
}

// Stops -----------------------------------------------------------------------------------------

#[tokio::test]
async fn stops_keep_their_route_order_with_one_live_stop_per_sequence() {
    use pb::StopKind::{DropOff, Pickup};

    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[]).await;
    let id = draft.id.clone();

    let first = add_stop(&stack, new_stop(&id, 1, Pickup, "Berlin"))
        .await
        .unwrap();
    assert_eq!(first.shipment_id, id);
    assert_eq!(first.sequence, 1);
    assert_eq!(first.kind, Pickup as i32);
    assert_eq!(first.address, Some(address("Berlin")));
    assert_eq!(first.window, Some(window_hours(50, 52)));
    assert!(first.arrive_time.is_none() && first.depart_time.is_none());
    assert_eq!(get_stop(&stack, &first.id).await.unwrap(), first);

    // One live stop per sequence, 1 to 1000.
    let taken = expect_code(
        add_stop(&stack, new_stop(&id, 1, DropOff, "Hamburg")).await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&taken), ["stop.sequence"]);
    assert_eq!(resource_info(&taken).0, STOP);
    for sequence in [0, 1001, -1] {
        assert_eq!(
            invalid_stop(&stack, new_stop(&id, sequence, DropOff, "Hamburg")).await,
            ["stop.sequence"],
            "{sequence}"
        );
    }
    let last = add_stop(&stack, new_stop(&id, 1000, Pickup, "Potsdam"))
        .await
        .unwrap();

    // Kind, address and window, every violation at once.
    for kind in [0, 7] {
        let stop = pb::Stop {
            kind,
            ..new_stop(&id, 2, DropOff, "Hamburg")
        };
        assert_eq!(invalid_stop(&stack, stop).await, ["stop.kind"], "{kind}");
    }
    let blank = pb::Stop {
        address: Some(pb::AddressSnapshot::default()),
        ..new_stop(&id, 2, DropOff, "Hamburg")
    };
    assert_eq!(
        invalid_stop(&stack, blank).await,
        [
            "stop.address.line1",
            "stop.address.city",
            "stop.address.country_code"
        ]
    );
    let nowhere = pb::Stop {
        address: Some(pb::AddressSnapshot {
            country_code: "XX".to_owned(),
            ..address("Hamburg")
        }),
        ..new_stop(&id, 2, DropOff, "Hamburg")
    };
    assert_eq!(
        invalid_stop(&stack, nowhere).await,
        ["stop.address.country_code"]
    );
    let off_the_map = pb::Stop {
        address: Some(pb::AddressSnapshot {
            location: Some(types::LatLng {
                latitude: 91.0,
                longitude: 13.4,
            }),
            ..address("Hamburg")
        }),
        ..new_stop(&id, 2, DropOff, "Hamburg")
    };
    assert_eq!(
        invalid_stop(&stack, off_the_map).await,
        ["stop.address.location.latitude"]
    );
    let reversed = pb::Stop {
        window: Some(window_hours(52, 50)),
        ..new_stop(&id, 2, DropOff, "Hamburg")
    };
    assert_eq!(
        invalid_stop(&stack, reversed).await,
        ["stop.window.end_time"]
    );
    let nothing = pb::Stop {
        shipment_id: String::new(),
        ..Default::default()
    };
    assert_eq!(
        sorted(invalid_stop(&stack, nothing).await),
        [
            "stop.address",
            "stop.kind",
            "stop.sequence",
            "stop.shipment_id",
            "stop.window"
        ]
    );
    let stranger = Uuid::now_v7().to_string();
    let unknown = expect_code(
        add_stop(&stack, new_stop(&stranger, 2, DropOff, "Hamburg")).await,
        Code::NotFound,
    );
    assert_eq!(resource_info(&unknown), (SHIPMENT.to_owned(), stranger));

    // Listed by sequence whatever the order they were added in.
    let third = add_stop(
        &stack,
        pb::Stop {
            address: Some(pb::AddressSnapshot {
                country_code: "de".to_owned(),
                ..address("Hannover")
            }),
            ..new_stop(&id, 3, DropOff, "Hannover")
        },
    )
    .await
    .unwrap();
    assert_eq!(third.address.as_ref().unwrap().country_code, "DE");
    let request = pb::CreateStopRequest {
        request_id: Uuid::now_v7().to_string(),
        stop: Some(new_stop(&id, 2, DropOff, "Leipzig")),
    };
    let second = create_stop(&stack, request.clone()).await.unwrap();
    assert_eq!(create_stop(&stack, request.clone()).await.unwrap(), second);
    let mut changed = request;
    changed.stop.as_mut().unwrap().sequence = 4;
    let reused = expect_code(create_stop(&stack, changed).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&reused), ["request_id"]);
    assert_eq!(sequences(&stack, &id, "", "", false).await, [1, 2, 3, 1000]);
    assert_eq!(
        sequences(&stack, &id, "", "sequence desc", false).await,
        [1000, 3, 2, 1]
    );
    assert_eq!(
        sequences(&stack, &id, "kind = STOP_KIND_DROP_OFF", "", false).await,
        [2, 3]
    );
    assert_eq!(
        sequences(&stack, &id, "kind != STOP_KIND_DROP_OFF", "", false).await,
        [1, 1000]
    );
    let stops_request = pb::ListStopsRequest {
        shipment_id: id.clone(),
        ..Default::default()
    };
    for (filter, order_by, field) in [
        ("kind = PICKUP", "", "filter"),
        ("sequence = 1", "", "filter"),
        ("", "create_time", "order_by"),
    ] {
        let refused = expect_code(
            list_stops(
                &stack,
                pb::ListStopsRequest {
                    filter: filter.to_owned(),
                    order_by: order_by.to_owned(),
                    ..stops_request.clone()
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&refused), [field]);
    }
    let ghost = Uuid::now_v7().to_string();
    let unknown = expect_code(
        list_stops(
            &stack,
            pb::ListStopsRequest {
                shipment_id: ghost.clone(),
                ..Default::default()
            },
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(resource_info(&unknown), (SHIPMENT.to_owned(), ghost));

    // Update: a new sequence, a new address; the rest stays.
    let moved = update_stop(
        &stack,
        pb::Stop {
            id: last.id.clone(),
            etag: last.etag.clone(),
            sequence: 5,
            ..Default::default()
        },
        &["sequence"],
    )
    .await
    .unwrap();
    assert_eq!(moved.sequence, 5);
    assert_eq!(
        (moved.kind, &moved.address, moved.window),
        (last.kind, &last.address, last.window)
    );
    assert_ne!(moved.etag, last.etag);
    let stale = expect_code(
        update_stop(
            &stack,
            pb::Stop {
                id: last.id.clone(),
                etag: last.etag.clone(),
                sequence: 6,
                ..Default::default()
            },
            &["sequence"],
        )
        .await,
        Code::Aborted,
    );
    assert!(stale.message().contains("etag"));
    let onto_taken = expect_code(
        update_stop(
            &stack,
            pb::Stop {
                id: last.id.clone(),
                sequence: 2,
                ..Default::default()
            },
            &["sequence"],
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&onto_taken), ["stop.sequence"]);
    let out_of_range = expect_code(
        update_stop(
            &stack,
            pb::Stop {
                id: last.id.clone(),
                sequence: 0,
                ..Default::default()
            },
            &["sequence"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&out_of_range), ["stop.sequence"]);
    let readdressed = update_stop(
        &stack,
        pb::Stop {
            id: second.id.clone(),
            etag: second.etag.clone(),
            sequence: 999,
            address: Some(address("Dresden")),
            ..Default::default()
        },
        &["address"],
    )
    .await
    .unwrap();
    assert_eq!(readdressed.address, Some(address("Dresden")));
    assert_eq!(
        (readdressed.sequence, readdressed.kind, readdressed.window),
        (2, DropOff as i32, second.window)
    );
    let blank = expect_code(
        update_stop(
            &stack,
            pb::Stop {
                id: second.id.clone(),
                address: Some(pb::AddressSnapshot::default()),
                ..Default::default()
            },
            &["address"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(
        violated_fields(&blank),
        [
            "stop.address.line1",
            "stop.address.city",
            "stop.address.country_code"
        ]
    );
    let backwards = expect_code(
        update_stop(
            &stack,
            pb::Stop {
                id: second.id.clone(),
                window: Some(window_hours(60, 55)),
                ..Default::default()
            },
            &["window"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&backwards), ["stop.window.end_time"]);
    let output_only = expect_code(
        update_stop(
            &stack,
            pb::Stop {
                id: second.id.clone(),
                ..Default::default()
            },
            &["arrive_time"],
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&output_only), ["update_mask.paths[0]"]);
    assert_eq!(get_stop(&stack, &second.id).await.unwrap(), readdressed);
    assert_eq!(sequences(&stack, &id, "", "", false).await, [1, 2, 3, 5]);

    // Delete and undelete: a deleted stop frees its sequence, and cannot come back onto a
    // taken one.
    let gone = delete_stop(&stack, &second.id, &readdressed.etag)
        .await
        .unwrap();
    assert!(gone.delete_time.is_some());
    assert!(
        get_stop(&stack, &second.id)
            .await
            .unwrap()
            .delete_time
            .is_some()
    );
    assert_eq!(sequences(&stack, &id, "", "", false).await, [1, 3, 5]);
    assert_eq!(sequences(&stack, &id, "", "", true).await, [1, 2, 3, 5]);
    let hidden = expect_code(
        update_stop(
            &stack,
            pb::Stop {
                id: second.id.clone(),
                sequence: 4,
                ..Default::default()
            },
            &["sequence"],
        )
        .await,
        Code::NotFound,
    );
    assert_eq!(resource_info(&hidden), (STOP.to_owned(), second.id.clone()));
    let replacement = add_stop(&stack, new_stop(&id, 2, DropOff, "Erfurt"))
        .await
        .unwrap();
    let beside = expect_code(
        undelete_stop(&stack, &second.id, "").await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&beside), ["stop.sequence"]);
    delete_stop(&stack, &replacement.id, "").await.unwrap();
    expect_code(
        undelete_stop(&stack, &second.id, &readdressed.etag).await,
        Code::Aborted,
    );
    let back = undelete_stop(&stack, &second.id, &gone.etag).await.unwrap();
    assert!(back.delete_time.is_none());
    assert_eq!(back.address, Some(address("Dresden")));
    assert_eq!(sequences(&stack, &id, "", "", false).await, [1, 2, 3, 5]);
    assert_eq!(sequences(&stack, &id, "", "", true).await, [1, 2, 2, 3, 5]);
    let live = expect_code(
        undelete_stop(&stack, &second.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&live), one("NOT_DELETED", &second.id));
    let rewindowed = update_stop(
        &stack,
        pb::Stop {
            id: first.id.clone(),
            window: Some(window_hours(49, 52)),
            ..Default::default()
        },
        &["window"],
    )
    .await
    .unwrap();
    assert_eq!(rewindowed.window, Some(window_hours(49, 52)));
    expect_code(
        delete_stop(&stack, &first.id, &first.etag).await,
        Code::Aborted,
    );
    assert!(
        get_stop(&stack, &first.id)
            .await
            .unwrap()
            .delete_time
            .is_none()
    );
}

// Drafts only -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_planned_shipment_refuses_changes_to_itself_its_items_and_its_stops() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "10")]).await;
    let id = draft.id.clone();
    let items = list_items(
        &stack,
        pb::ListShipmentItemsRequest {
            shipment_id: id.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .shipment_items;
    assert_eq!(items.len(), 1);
    let bolts = items[0].clone();
    let dropped = add_item(&stack, &id, &world.nuts.id, "1").await.unwrap();
    delete_item(&stack, &dropped.id, "").await.unwrap();
    let stop = add_stop(&stack, new_stop(&id, 1, pb::StopKind::DropOff, "Leipzig"))
        .await
        .unwrap();
    let dropped_stop = add_stop(&stack, new_stop(&id, 2, pb::StopKind::DropOff, "Halle"))
        .await
        .unwrap();
    delete_stop(&stack, &dropped_stop.id, "").await.unwrap();

    let planned = stack.plan(&id).await.unwrap();
    assert_eq!(status_of(&planned), pb::ShipmentStatus::Planned);
    let before = stack.get(&id).await;
    let items_before = item_pages(
        &stack,
        pb::ListShipmentItemsRequest {
            shipment_id: id.clone(),
            show_deleted: true,
            ..Default::default()
        },
    )
    .await;
    let stops_before = list_stops(
        &stack,
        pb::ListStopsRequest {
            shipment_id: id.clone(),
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .stops;

    // The shipment itself.
    let refused = expect_code(
        update(
            &stack,
            pb::Shipment {
                id: id.clone(),
                etag: before.etag.clone(),
                notes: "late change".to_owned(),
                ..Default::default()
            },
            &["notes"],
        )
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&refused), not_a_draft());
    for etag in ["", before.etag.as_str()] {
        let refused = expect_code(delete(&stack, &id, etag).await, Code::FailedPrecondition);
        assert_eq!(preconditions(&refused), not_a_draft());
    }

    // Its items.
    let refused = expect_code(
        add_item(&stack, &id, &world.nuts.id, "1").await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&refused), not_a_draft());
    let refused = expect_code(
        requantify(&stack, &bolts.id, &bolts.etag, "20").await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&refused), not_a_draft());
    let refused = expect_code(
        delete_item(&stack, &bolts.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&refused), not_a_draft());
    let refused = expect_code(
        undelete_item(&stack, &dropped.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&refused), not_a_draft());

    // Its stops.
    let refused = expect_code(
        add_stop(&stack, new_stop(&id, 3, pb::StopKind::DropOff, "Jena")).await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&refused), not_a_draft());
    let refused = expect_code(
        update_stop(
            &stack,
            pb::Stop {
                id: stop.id.clone(),
                etag: stop.etag.clone(),
                sequence: 4,
                ..Default::default()
            },
            &["sequence"],
        )
        .await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&refused), not_a_draft());
    let refused = expect_code(
        delete_stop(&stack, &stop.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&refused), not_a_draft());
    let refused = expect_code(
        undelete_stop(&stack, &dropped_stop.id, "").await,
        Code::FailedPrecondition,
    );
    assert_eq!(preconditions(&refused), not_a_draft());

    // Nothing moved.
    assert_eq!(stack.get(&id).await, before);
    assert_eq!(
        item_pages(
            &stack,
            pb::ListShipmentItemsRequest {
                shipment_id: id.clone(),
                show_deleted: true,
                ..Default::default()
            },
        )
        .await,
        items_before
    );
    assert_eq!(
        list_stops(
            &stack,
            pb::ListStopsRequest {
                shipment_id: id.clone(),
                show_deleted: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .stops,
        stops_before
    );
    assert_eq!(weight(&before), "25");

    // The database refuses it too, whatever the service does.
    let app = stack.runtime_pool().await;
    let shipment_id = Uuid::parse_str(&id).unwrap();
    for (sql, constraint) in [
        (
            "UPDATE shipment.shipment_items SET quantity = quantity + 1 WHERE shipment_id = $1",
            "shipment_items_draft_only",
        ),
        (
            "UPDATE shipment.stops SET sequence = sequence + 10 WHERE shipment_id = $1",
            "stops_draft_only",
        ),
    ] {
        let mut tx = begin_as(&app, Some(stack.identity.tenant_id)).await;
        let refused = sqlx::query(sql)
            .bind(shipment_id)
            .execute(&mut *tx)
            .await
            .unwrap_err();
        let db = refused.as_database_error().unwrap();
        assert_eq!(db.constraint(), Some(constraint), "{refused}");
        tx.rollback().await.unwrap();
    }
}

// Row-level security and totals -----------------------------------------------------------------

#[tokio::test]
async fn the_runtime_role_sees_only_its_tenants_rows_and_totals_are_the_sums_of_live_items() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let light = stack.material(&world.warehouse, "0.125", "0").await;
    let a = stack.draft(&world, &[]).await;
    let b = stack.draft(&world, &[(&world.bolts, "2")]).await;
    let id = a.id.clone();

    // A series of changes, with the totals after each.
    let nuts = add_item(&stack, &id, &world.nuts.id, "3").await.unwrap();
    assert_eq!(weight(&stack.get(&id).await), "12");
    let bolts = add_item(&stack, &id, &world.bolts.id, "2.5").await.unwrap();
    assert_eq!(weight(&stack.get(&id).await), "18.25");
    requantify(&stack, &nuts.id, &nuts.etag, "7").await.unwrap();
    assert_eq!(weight(&stack.get(&id).await), "34.25");
    delete_item(&stack, &bolts.id, "").await.unwrap();
    assert_eq!(weight(&stack.get(&id).await), "28");
    add_item(&stack, &id, &world.bolts.id, "1.5").await.unwrap();
    assert_eq!(weight(&stack.get(&id).await), "31.75");
    add_item(&stack, &id, &light.id, "8").await.unwrap();
    assert_eq!(weight(&stack.get(&id).await), "32.75");
    delete_item(&stack, &nuts.id, "").await.unwrap();
    assert_eq!(weight(&stack.get(&id).await), "4.75");
    undelete_item(&stack, &nuts.id, "").await.unwrap();
    let a_now = stack.get(&id).await;
    assert_eq!((weight(&a_now), volume(&a_now)), ("32.75", "0.165"));
    assert_eq!(weight(&stack.get(&b.id).await), "5");

    // The rows exist...
    assert_eq!(count_all(&stack, SHIPMENTS).await, 2);
    assert_eq!(count_all(&stack, ITEMS).await, 5);
    // ...but the runtime role sees them only inside their tenant.
    let app = stack.runtime_pool().await;
    let tenant = stack.identity.tenant_id;
    let (other_tenant, other_admin) = stack.identity.other_tenant("Elsewhere").await.unwrap();
    for sql in [SHIPMENTS, ITEMS, OUTBOX] {
        assert_eq!(count_as(&app, None, sql).await, 0, "{sql} without a tenant");
        assert_eq!(
            count_as(&app, Some(other_tenant), sql).await,
            0,
            "{sql} in another tenant"
        );
        assert_eq!(
            count_as(&app, Some(Uuid::now_v7()), sql).await,
            0,
            "{sql} in no tenant that exists"
        );
    }
    assert_eq!(count_as(&app, Some(tenant), SHIPMENTS).await, 2);
    assert_eq!(count_as(&app, Some(tenant), ITEMS).await, 5);
    assert!(count_as(&app, Some(tenant), OUTBOX).await >= 2);
    // Nor can it change them from outside.
    let mut tx = begin_as(&app, Some(other_tenant)).await;
    let touched = sqlx::query("UPDATE shipment.shipments SET notes = 'hijacked'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    tx.commit().await.unwrap();
    assert_eq!(touched, 0);
    assert_eq!(stack.get(&id).await.notes, "");

    // Inside the tenant, every shipment's totals are the sums of its live items.
    let mut tx = begin_as(&app, Some(tenant)).await;
    let totals: Vec<(Uuid, String, String, String, String)> = sqlx::query_as(
        "SELECT s.id, trim_scale(s.total_weight_kg)::text, \
                trim_scale(coalesce(sum(i.quantity * i.unit_weight_kg) \
                    FILTER (WHERE i.deleted_at IS NULL), 0))::text, \
                trim_scale(s.total_volume_m3)::text, \
                trim_scale(coalesce(sum(i.quantity * i.unit_volume_m3) \
                    FILTER (WHERE i.deleted_at IS NULL), 0))::text \
           FROM shipment.shipments s \
           LEFT JOIN shipment.shipment_items i ON i.tenant_id = s.tenant_id AND i.shipment_id = s.id \
          GROUP BY s.id, s.total_weight_kg, s.total_volume_m3 \
          ORDER BY s.id",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(totals.len(), 2);
    for (shipment, weight, weight_sum, volume, volume_sum) in &totals {
        assert_eq!(weight, weight_sum, "weight of {shipment}");
        assert_eq!(volume, volume_sum, "volume of {shipment}");
    }
    let of = |s: &pb::Shipment| {
        totals
            .iter()
            .find(|t| t.0.to_string() == s.id)
            .map(|t| (t.1.clone(), t.3.clone()))
            .unwrap()
    };
    assert_eq!(of(&a), ("32.75".to_owned(), "0.165".to_owned()));
    assert_eq!(of(&b), ("5".to_owned(), "0.02".to_owned()));

    // Through the API, the other tenant finds nothing either.
    let hidden = expect_code(
        stack
            .client()
            .await
            .get_shipment(authed(
                &other_admin,
                pb::GetShipmentRequest { id: id.clone() },
            ))
            .await,
        Code::NotFound,
    );
    assert_eq!(resource_info(&hidden), (SHIPMENT.to_owned(), id.clone()));
    let theirs = list_as(&stack, &other_admin, pb::ListShipmentsRequest::default())
        .await
        .unwrap();
    assert!(theirs.shipments.is_empty());
    expect_code(
        stack
            .client()
            .await
            .list_shipment_items(authed(
                &other_admin,
                pb::ListShipmentItemsRequest {
                    shipment_id: id.clone(),
                    ..Default::default()
                },
            ))
            .await,
        Code::NotFound,
    );
}

// Exact totals at the extremes ------------------------------------------------------------------

#[tokio::test]
async fn the_heaviest_valid_item_is_summed_exactly_into_the_shipment_total() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let heavy = stack.material(&world.warehouse, "12", "0").await;
    let draft = stack.draft(&world, &[(&world.nuts, "1")]).await;

    // 15 integer digits of quantity times a 12 kg unit: the total holds the exact product.
    let item = add_item(&stack, &draft.id, &heavy.id, "999999999999999")
        .await
        .unwrap();
    assert_eq!(weight(&stack.get(&draft.id).await), "11999999999999992");
    let changed = requantify(&stack, &item.id, &item.etag, "999999999999999.999")
        .await
        .unwrap();
    assert_eq!(text(changed.quantity.as_ref()), "999999999999999.999");
    assert_eq!(weight(&stack.get(&draft.id).await), "12000000000000003.988");
}

#[tokio::test]
async fn totals_are_the_exact_sums_even_for_fractions_of_very_light_materials() {
    let stack = Stack::spawn().await;
    let world = stack.world().await;
    let feather = material_of(&stack, "0.0001", "0.000001").await;
    let draft = stack.draft(&world, &[]).await;

    let item = add_item(&stack, &draft.id, &feather.id, "0.5")
        .await
        .unwrap();
    assert_eq!(text(item.unit_weight_kg.as_ref()), "0.0001");
    assert_eq!(text(item.unit_volume_m3.as_ref()), "0.000001");
    // 0.5 × 0.0001 kg and 0.5 × 0.000001 m³.
    let shipment = stack.get(&draft.id).await;
    assert_eq!(
        (weight(&shipment), volume(&shipment)),
        ("0.00005", "0.0000005")
    );
}
