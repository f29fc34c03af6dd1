//! Who may call what and see which rows: the permissions of each role, calls without valid
//! credentials, tenants isolated through the API and by row-level security underneath it (the
//! runtime role sees nothing without a tenant and only its tenant's rows with one), and the
//! available-stock view computed with the caller's rights.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, authed, decimal, expect_code, material, warehouse};
use inventory::schema::SCHEMA;
use logistics_proto::identity::v1 as idpb;
use logistics_proto::inventory::v1 as pb;
use logistics_proto::r#type::v1 as types;
use prost_types::FieldMask;
use rust_decimal::Decimal;
use tonic::{Code, Request, Status};
use uuid::Uuid;

/// Every table of the schema.
const INVENTORY_TABLES: &[&str] = &[
    "materials",
    "warehouses",
    "stock_levels",
    "stock_movements",
    "reservations",
    "material_suppliers",
    "idempotency_keys",
];

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn key() -> String {
    Uuid::now_v7().to_string()
}

/// A request carrying `token`, or no credentials at all when `token` is empty.
fn call<T>(token: &str, message: T) -> Request<T> {
    if token.is_empty() {
        Request::new(message)
    } else {
        authed(token, message)
    }
}

/// The code of a call's outcome (`Ok` for a success).
fn code<T>(result: Result<T, Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn uuid(id: &str) -> Uuid {
    id.parse().unwrap()
}

/// Two warehouses, two materials, stock of both, a shipment holding some of it and a preferred
/// supplier link, all made by the admin of one tenant.
#[derive(Debug, Clone)]
struct Fixture {
    hamburg: pb::Warehouse,
    berlin: pb::Warehouse,
    steel: pb::Material,
    copper: pb::Material,
    shipment: Uuid,
    reservations: Vec<pb::Reservation>,
    link: pb::MaterialSupplier,
}

async fn create_material(app: &TestApp, token: &str, sku: &str) -> Result<pb::Material, Status> {
    app.client()
        .await
        .create_material(call(
            token,
            pb::CreateMaterialRequest {
                request_id: key(),
                material: Some(material(sku)),
            },
        ))
        .await
        .map(|r| r.into_inner().material.unwrap())
}

async fn create_warehouse(app: &TestApp, token: &str, code: &str) -> Result<pb::Warehouse, Status> {
    app.client()
        .await
        .create_warehouse(call(
            token,
            pb::CreateWarehouseRequest {
                request_id: key(),
                warehouse: Some(warehouse(code)),
            },
        ))
        .await
        .map(|r| r.into_inner().warehouse.unwrap())
}

async fn receive(
    app: &TestApp,
    token: &str,
    w: &pb::Warehouse,
    m: &pb::Material,
    quantity: &str,
) -> Result<pb::ReceiveStockResponse, Status> {
    app.client()
        .await
        .receive_stock(call(
            token,
            pb::ReceiveStockRequest {
                idempotency_key: key(),
                warehouse_id: w.id.clone(),
                material_id: m.id.clone(),
                quantity: decimal(quantity),
                reference: None,
                reason: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn issue(
    app: &TestApp,
    token: &str,
    w: &pb::Warehouse,
    m: &pb::Material,
) -> Result<pb::IssueStockResponse, Status> {
    app.client()
        .await
        .issue_stock(call(
            token,
            pb::IssueStockRequest {
                idempotency_key: key(),
                warehouse_id: w.id.clone(),
                material_id: m.id.clone(),
                quantity: decimal("1"),
                reference: None,
                reason: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn adjust(
    app: &TestApp,
    token: &str,
    w: &pb::Warehouse,
    m: &pb::Material,
) -> Result<pb::AdjustStockResponse, Status> {
    app.client()
        .await
        .adjust_stock(call(
            token,
            pb::AdjustStockRequest {
                idempotency_key: key(),
                warehouse_id: w.id.clone(),
                material_id: m.id.clone(),
                change: decimal("1"),
                reason: "count".to_owned(),
                reference: None,
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn transfer(
    app: &TestApp,
    token: &str,
    from: &pb::Warehouse,
    to: &pb::Warehouse,
    m: &pb::Material,
) -> Result<pb::TransferStockResponse, Status> {
    app.client()
        .await
        .transfer_stock(call(
            token,
            pb::TransferStockRequest {
                idempotency_key: key(),
                from_warehouse_id: from.id.clone(),
                to_warehouse_id: to.id.clone(),
                material_id: m.id.clone(),
                quantity: decimal("1"),
                reference: None,
                reason: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn reserve(
    app: &TestApp,
    token: &str,
    shipment: Uuid,
    lines: &[(&pb::Warehouse, &pb::Material, &str)],
) -> Result<Vec<pb::Reservation>, Status> {
    app.client()
        .await
        .reserve_stock(call(token, common::reserve_request(shipment, lines)))
        .await
        .map(|r| r.into_inner().reservations)
}

async fn release(
    app: &TestApp,
    token: &str,
    shipment: Uuid,
) -> Result<Vec<pb::Reservation>, Status> {
    app.client()
        .await
        .release_reservation(call(
            token,
            pb::ReleaseReservationRequest {
                idempotency_key: key(),
                shipment_id: shipment.to_string(),
                warehouse_id: String::new(),
                material_id: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().reservations)
}

async fn consume(
    app: &TestApp,
    token: &str,
    shipment: Uuid,
) -> Result<Vec<pb::Reservation>, Status> {
    app.client()
        .await
        .consume_reservation(call(
            token,
            pb::ConsumeReservationRequest {
                idempotency_key: key(),
                shipment_id: shipment.to_string(),
                warehouse_id: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().reservations)
}

async fn reservations_of(
    app: &TestApp,
    token: &str,
    shipment: Uuid,
) -> Result<Vec<pb::Reservation>, Status> {
    app.client()
        .await
        .list_reservations(call(
            token,
            pb::ListReservationsRequest {
                shipment_id: shipment.to_string(),
            },
        ))
        .await
        .map(|r| r.into_inner().reservations)
}

fn link_of(m: &pb::Material, supplier: Uuid, preferred: bool) -> pb::MaterialSupplier {
    pb::MaterialSupplier {
        material_id: m.id.clone(),
        supplier_id: supplier.to_string(),
        supplier_sku: "S-1".to_owned(),
        lead_time_days: 5,
        unit_price: Some(types::Money {
            currency_code: "EUR".to_owned(),
            amount_minor: 990,
        }),
        preferred,
        ..Default::default()
    }
}

async fn create_link(
    app: &TestApp,
    token: &str,
    link: pb::MaterialSupplier,
) -> Result<pb::MaterialSupplier, Status> {
    app.client()
        .await
        .create_material_supplier(call(
            token,
            pb::CreateMaterialSupplierRequest {
                request_id: key(),
                material_supplier: Some(link),
            },
        ))
        .await
        .map(|r| r.into_inner().material_supplier.unwrap())
}

/// Builds a [`Fixture`] with `token` (an admin of some tenant); the link is of `supplier`.
async fn fixture(app: &TestApp, token: &str, supplier: Uuid) -> Fixture {
    let hamburg = create_warehouse(app, token, "HAM-1").await.unwrap();
    let berlin = create_warehouse(app, token, "BER-1").await.unwrap();
    let steel = create_material(app, token, "STEEL-1").await.unwrap();
    let copper = create_material(app, token, "COPPER-1").await.unwrap();
    receive(app, token, &hamburg, &steel, "1000").await.unwrap();
    receive(app, token, &hamburg, &copper, "50").await.unwrap();
    receive(app, token, &berlin, &steel, "30").await.unwrap();
    let shipment = Uuid::now_v7();
    let reservations = reserve(
        app,
        token,
        shipment,
        &[(&hamburg, &steel, "10"), (&berlin, &steel, "5")],
    )
    .await
    .unwrap();
    let link = create_link(app, token, link_of(&steel, supplier, true))
        .await
        .unwrap();
    Fixture {
        hamburg,
        berlin,
        steel,
        copper,
        shipment,
        reservations,
        link,
    }
}

async fn get_material(app: &TestApp, token: &str, id: &str) -> Result<pb::Material, Status> {
    app.client()
        .await
        .get_material(call(token, pb::GetMaterialRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().material.unwrap())
}

async fn list_materials(app: &TestApp, token: &str) -> Result<Vec<String>, Status> {
    app.client()
        .await
        .list_materials(call(
            token,
            pb::ListMaterialsRequest {
                show_deleted: true,
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().materials.into_iter().map(|m| m.id).collect())
}

async fn get_warehouse(app: &TestApp, token: &str, id: &str) -> Result<pb::Warehouse, Status> {
    app.client()
        .await
        .get_warehouse(call(token, pb::GetWarehouseRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().warehouse.unwrap())
}

async fn list_warehouses(app: &TestApp, token: &str) -> Result<Vec<String>, Status> {
    app.client()
        .await
        .list_warehouses(call(
            token,
            pb::ListWarehousesRequest {
                show_deleted: true,
                ..Default::default()
            },
        ))
        .await
        .map(|r| {
            r.into_inner()
                .warehouses
                .into_iter()
                .map(|w| w.id)
                .collect()
        })
}

async fn get_level(
    app: &TestApp,
    token: &str,
    w: &pb::Warehouse,
    m: &pb::Material,
) -> Result<pb::StockLevel, Status> {
    app.client()
        .await
        .get_stock_level(call(
            token,
            pb::GetStockLevelRequest {
                warehouse_id: w.id.clone(),
                material_id: m.id.clone(),
            },
        ))
        .await
        .map(|r| r.into_inner().level.unwrap())
}

/// The levels `token` lists, of `warehouse` if given, as (warehouse id, material id).
async fn list_levels(
    app: &TestApp,
    token: &str,
    warehouse: Option<&pb::Warehouse>,
) -> Result<Vec<(String, String)>, Status> {
    app.client()
        .await
        .list_stock_levels(call(
            token,
            pb::ListStockLevelsRequest {
                warehouse_id: warehouse.map(|w| w.id.clone()).unwrap_or_default(),
                ..Default::default()
            },
        ))
        .await
        .map(|r| {
            r.into_inner()
                .levels
                .into_iter()
                .map(|l| (l.warehouse_id, l.material_id))
                .collect()
        })
}

/// The ledger entries `token` lists, of `warehouse` or of `shipment` if given.
async fn list_movements(
    app: &TestApp,
    token: &str,
    warehouse: Option<&pb::Warehouse>,
    shipment: Option<Uuid>,
) -> Result<Vec<pb::StockMovement>, Status> {
    app.client()
        .await
        .list_stock_movements(call(
            token,
            pb::ListStockMovementsRequest {
                page_size: 1000,
                warehouse_id: warehouse.map(|w| w.id.clone()).unwrap_or_default(),
                reference: shipment.map(|s| pb::Reference {
                    r#type: "shipment".to_owned(),
                    id: s.to_string(),
                }),
                ..Default::default()
            },
        ))
        .await
        .map(|r| r.into_inner().movements)
}

async fn check_ledger(app: &TestApp, token: &str) -> Result<(i64, usize), Status> {
    app.client()
        .await
        .check_stock_ledger(call(token, pb::CheckStockLedgerRequest {}))
        .await
        .map(|r| {
            let done = r.into_inner();
            (done.levels_checked, done.mismatches.len())
        })
}

async fn get_link(app: &TestApp, token: &str, id: &str) -> Result<pb::MaterialSupplier, Status> {
    app.client()
        .await
        .get_material_supplier(call(
            token,
            pb::GetMaterialSupplierRequest { id: id.to_owned() },
        ))
        .await
        .map(|r| r.into_inner().material_supplier.unwrap())
}

async fn list_links(app: &TestApp, token: &str) -> Result<Vec<String>, Status> {
    app.client()
        .await
        .list_material_suppliers(call(
            token,
            pb::ListMaterialSuppliersRequest {
                show_deleted: true,
                ..Default::default()
            },
        ))
        .await
        .map(|r| {
            r.into_inner()
                .material_suppliers
                .into_iter()
                .map(|l| l.id)
                .collect()
        })
}

async fn update_material(app: &TestApp, token: &str, id: &str) -> Result<pb::Material, Status> {
    app.client()
        .await
        .update_material(call(
            token,
            pb::UpdateMaterialRequest {
                material: Some(pb::Material {
                    id: id.to_owned(),
                    name: "Renamed".to_owned(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            },
        ))
        .await
        .map(|r| r.into_inner().material.unwrap())
}

async fn delete_material(app: &TestApp, token: &str, id: &str) -> Result<pb::Material, Status> {
    app.client()
        .await
        .delete_material(call(
            token,
            pb::DeleteMaterialRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().material.unwrap())
}

async fn undelete_material(app: &TestApp, token: &str, id: &str) -> Result<pb::Material, Status> {
    app.client()
        .await
        .undelete_material(call(
            token,
            pb::UndeleteMaterialRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().material.unwrap())
}

async fn update_warehouse(app: &TestApp, token: &str, id: &str) -> Result<pb::Warehouse, Status> {
    app.client()
        .await
        .update_warehouse(call(
            token,
            pb::UpdateWarehouseRequest {
                warehouse: Some(pb::Warehouse {
                    id: id.to_owned(),
                    name: "Renamed".to_owned(),
                    ..Default::default()
                }),
                update_mask: mask(&["name"]),
            },
        ))
        .await
        .map(|r| r.into_inner().warehouse.unwrap())
}

async fn delete_warehouse(app: &TestApp, token: &str, id: &str) -> Result<pb::Warehouse, Status> {
    app.client()
        .await
        .delete_warehouse(call(
            token,
            pb::DeleteWarehouseRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().warehouse.unwrap())
}

async fn undelete_warehouse(app: &TestApp, token: &str, id: &str) -> Result<pb::Warehouse, Status> {
    app.client()
        .await
        .undelete_warehouse(call(
            token,
            pb::UndeleteWarehouseRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().warehouse.unwrap())
}

async fn update_link(app: &TestApp, token: &str, id: &str) -> Result<pb::MaterialSupplier, Status> {
    app.client()
        .await
        .update_material_supplier(call(
            token,
            pb::UpdateMaterialSupplierRequest {
                material_supplier: Some(pb::MaterialSupplier {
                    id: id.to_owned(),
                    lead_time_days: 99,
                    ..Default::default()
                }),
                update_mask: mask(&["lead_time_days"]),
            },
        ))
        .await
        .map(|r| r.into_inner().material_supplier.unwrap())
}

async fn delete_link(app: &TestApp, token: &str, id: &str) -> Result<pb::MaterialSupplier, Status> {
    app.client()
        .await
        .delete_material_supplier(call(
            token,
            pb::DeleteMaterialSupplierRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().material_supplier.unwrap())
}

async fn undelete_link(
    app: &TestApp,
    token: &str,
    id: &str,
) -> Result<pb::MaterialSupplier, Status> {
    app.client()
        .await
        .undelete_material_supplier(call(
            token,
            pb::UndeleteMaterialSupplierRequest {
                id: id.to_owned(),
                etag: String::new(),
            },
        ))
        .await
        .map(|r| r.into_inner().material_supplier.unwrap())
}

// Permissions -----------------------------------------------------------------------------------

/// Every inventory read with `token` but the links: the RPC and its code.
async fn reads(app: &TestApp, token: &str, fx: &Fixture) -> Vec<(&'static str, Code)> {
    vec![
        (
            "GetMaterial",
            code(get_material(app, token, &fx.steel.id).await),
        ),
        ("ListMaterials", code(list_materials(app, token).await)),
        (
            "GetWarehouse",
            code(get_warehouse(app, token, &fx.hamburg.id).await),
        ),
        ("ListWarehouses", code(list_warehouses(app, token).await)),
        (
            "GetStockLevel",
            code(get_level(app, token, &fx.hamburg, &fx.steel).await),
        ),
        ("ListStockLevels", code(list_levels(app, token, None).await)),
        (
            "ListStockMovements",
            code(list_movements(app, token, None, Some(fx.shipment)).await),
        ),
        ("CheckStockLedger", code(check_ledger(app, token).await)),
        (
            "ListReservations",
            code(reservations_of(app, token, fx.shipment).await),
        ),
    ]
}

/// The link reads with `token`.
async fn link_reads(app: &TestApp, token: &str, fx: &Fixture) -> Vec<(&'static str, Code)> {
    vec![
        (
            "GetMaterialSupplier",
            code(get_link(app, token, &fx.link.id).await),
        ),
        ("ListMaterialSuppliers", code(list_links(app, token).await)),
    ]
}

/// Every material, warehouse, link and stock-movement write with `token`, on resources the
/// admin made for `slot`.
async fn writes(
    app: &TestApp,
    token: &str,
    fx: &Fixture,
    slot: usize,
) -> Vec<(&'static str, Code)> {
    let admin = &app.admin_token;
    let m = create_material(app, admin, &format!("M-{slot}"))
        .await
        .unwrap();
    let w = create_warehouse(app, admin, &format!("W-{slot}"))
        .await
        .unwrap();
    let l = create_link(app, admin, link_of(&fx.copper, Uuid::now_v7(), false))
        .await
        .unwrap();
    vec![
        (
            "CreateMaterial",
            code(create_material(app, token, &format!("N-{slot}")).await),
        ),
        (
            "UpdateMaterial",
            code(update_material(app, token, &m.id).await),
        ),
        (
            "DeleteMaterial",
            code(delete_material(app, token, &m.id).await),
        ),
        (
            "UndeleteMaterial",
            code(undelete_material(app, token, &m.id).await),
        ),
        (
            "CreateWarehouse",
            code(create_warehouse(app, token, &format!("N-{slot}")).await),
        ),
        (
            "UpdateWarehouse",
            code(update_warehouse(app, token, &w.id).await),
        ),
        (
            "DeleteWarehouse",
            code(delete_warehouse(app, token, &w.id).await),
        ),
        (
            "UndeleteWarehouse",
            code(undelete_warehouse(app, token, &w.id).await),
        ),
        (
            "ReceiveStock",
            code(receive(app, token, &fx.hamburg, &fx.steel, "1").await),
        ),
        (
            "IssueStock",
            code(issue(app, token, &fx.hamburg, &fx.steel).await),
        ),
        (
            "AdjustStock",
            code(adjust(app, token, &fx.hamburg, &fx.steel).await),
        ),
        (
            "TransferStock",
            code(transfer(app, token, &fx.hamburg, &fx.berlin, &fx.steel).await),
        ),
        (
            "CreateMaterialSupplier",
            code(create_link(app, token, link_of(&fx.copper, Uuid::now_v7(), false)).await),
        ),
        (
            "UpdateMaterialSupplier",
            code(update_link(app, token, &l.id).await),
        ),
        (
            "DeleteMaterialSupplier",
            code(delete_link(app, token, &l.id).await),
        ),
        (
            "UndeleteMaterialSupplier",
            code(undelete_link(app, token, &l.id).await),
        ),
    ]
}

/// Reserving, releasing and consuming with `token`, on shipments the admin reserved.
async fn reservations(app: &TestApp, token: &str, fx: &Fixture) -> Vec<(&'static str, Code)> {
    let admin = &app.admin_token;
    let (to_release, to_consume) = (Uuid::now_v7(), Uuid::now_v7());
    for shipment in [to_release, to_consume] {
        reserve(app, admin, shipment, &[(&fx.hamburg, &fx.copper, "1")])
            .await
            .unwrap();
    }
    vec![
        (
            "ReserveStock",
            code(reserve(app, token, Uuid::now_v7(), &[(&fx.hamburg, &fx.steel, "1")]).await),
        ),
        (
            "ReleaseReservation",
            code(release(app, token, to_release).await),
        ),
        (
            "ConsumeReservation",
            code(consume(app, token, to_consume).await),
        ),
    ]
}

/// What a role may do: read stock, read links, write, reserve.
#[derive(Debug, Clone, Copy)]
struct Allowed {
    read: bool,
    links: bool,
    write: bool,
    reserve: bool,
}

#[tokio::test]
async fn each_role_reads_and_writes_exactly_what_its_permissions_allow() {
    let app = TestApp::spawn().await;
    let supplier = Uuid::now_v7();
    let fx = fixture(&app, &app.admin_token, supplier).await;
    let allowed = |read, links, write, reserve| Allowed {
        read,
        links,
        write,
        reserve,
    };
    let (yes, no) = (true, false);
    let table: [(idpb::Role, Allowed); 8] = [
        (idpb::Role::Admin, allowed(yes, yes, yes, yes)),
        (idpb::Role::Dispatcher, allowed(yes, yes, no, yes)),
        (idpb::Role::WarehouseClerk, allowed(yes, yes, yes, no)),
        (idpb::Role::Auditor, allowed(yes, yes, no, no)),
        (idpb::Role::FleetManager, allowed(no, no, no, no)),
        (idpb::Role::Driver, allowed(no, no, no, no)),
        (idpb::Role::Customer, allowed(no, no, no, no)),
        // Its own links only: the fixture's link is of this supplier.
        (idpb::Role::Supplier, allowed(no, yes, no, no)),
    ];
    let expect = |allowed: bool| {
        if allowed {
            Code::Ok
        } else {
            Code::PermissionDenied
        }
    };
    let mut wrong = Vec::new();
    for (slot, (role, allowed)) in table.into_iter().enumerate() {
        let partner = match role {
            idpb::Role::Supplier => Some(supplier),
            idpb::Role::Customer => Some(Uuid::now_v7()),
            _ => None,
        };
        let driver = (role == idpb::Role::Driver).then(Uuid::now_v7);
        let token = app
            .identity
            .user(
                &format!("user{slot}@inventory.test"),
                &[role],
                partner,
                driver,
            )
            .await
            .unwrap();
        for (outcomes, allowed) in [
            (reads(&app, &token, &fx).await, allowed.read),
            (link_reads(&app, &token, &fx).await, allowed.links),
            (writes(&app, &token, &fx, slot).await, allowed.write),
            (reservations(&app, &token, &fx).await, allowed.reserve),
        ] {
            for (method, got) in outcomes {
                if got != expect(allowed) {
                    wrong.push(format!(
                        "{role:?} {method}: {got:?}, expected {:?}",
                        expect(allowed)
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // Whatever was allowed and done, the books still balance.
    assert_eq!(app.check_ledger().await.1, 0);
}

#[tokio::test]
async fn a_refusal_names_the_missing_permission_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let fx = fixture(&app, &app.admin_token, Uuid::now_v7()).await;
    let dispatcher = app
        .token("dispatch@inventory.test", &[idpb::Role::Dispatcher], None)
        .await;
    let clerk = app
        .token("clerk@inventory.test", &[idpb::Role::WarehouseClerk], None)
        .await;
    let auditor = app
        .token("audit@inventory.test", &[idpb::Role::Auditor], None)
        .await;
    for (what, err, permission) in [
        (
            "dispatcher receives",
            receive(&app, &dispatcher, &fx.hamburg, &fx.steel, "5")
                .await
                .unwrap_err(),
            "inventory.write",
        ),
        (
            "dispatcher creates a material",
            create_material(&app, &dispatcher, "NEW-1")
                .await
                .unwrap_err(),
            "inventory.write",
        ),
        (
            "clerk reserves",
            reserve(
                &app,
                &clerk,
                Uuid::now_v7(),
                &[(&fx.hamburg, &fx.steel, "1")],
            )
            .await
            .unwrap_err(),
            "inventory.stock.reserve",
        ),
        (
            "auditor releases",
            release(&app, &auditor, fx.shipment).await.unwrap_err(),
            "inventory.stock.reserve",
        ),
        (
            "auditor adjusts",
            adjust(&app, &auditor, &fx.hamburg, &fx.steel)
                .await
                .unwrap_err(),
            "inventory.write",
        ),
    ] {
        assert_eq!(err.code(), Code::PermissionDenied, "{what}: {err:?}");
        assert!(
            err.message().contains(permission),
            "{what}: {}",
            err.message()
        );
    }
    let level = get_level(&app, &auditor, &fx.hamburg, &fx.steel)
        .await
        .unwrap();
    assert_eq!(level.on_hand.unwrap().value, "1000");
    assert_eq!(level.reserved.unwrap().value, "10");
    assert_eq!(
        reservations_of(&app, &auditor, fx.shipment).await.unwrap(),
        fx.reservations
    );
    assert_eq!(
        list_materials(&app, &auditor).await.unwrap(),
        [fx.copper.id.as_str(), fx.steel.id.as_str()]
    );
}

#[tokio::test]
async fn calls_without_valid_credentials_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let fx = fixture(&app, &app.admin_token, Uuid::now_v7()).await;
    let mut tampered = app.admin_token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let unsigned = format!("{}.", app.admin_token.rsplit_once('.').unwrap().0);
    for token in ["", "garbage", "a.b.c", tampered.as_str(), unsigned.as_str()] {
        let what = format!("token {token:?}");
        for status in [
            get_material(&app, token, &fx.steel.id).await.unwrap_err(),
            list_levels(&app, token, None).await.unwrap_err(),
            check_ledger(&app, token).await.unwrap_err(),
            list_links(&app, token).await.unwrap_err(),
            receive(&app, token, &fx.hamburg, &fx.steel, "1")
                .await
                .unwrap_err(),
            reserve(
                &app,
                token,
                Uuid::now_v7(),
                &[(&fx.hamburg, &fx.steel, "1")],
            )
            .await
            .unwrap_err(),
            release(&app, token, fx.shipment).await.unwrap_err(),
        ] {
            assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        }
    }
    // A token in another scheme is no bearer token.
    let mut basic = Request::new(pb::GetMaterialRequest {
        id: fx.steel.id.clone(),
    });
    basic.metadata_mut().insert(
        "authorization",
        format!("Basic {}", app.admin_token).parse().unwrap(),
    );
    expect_code(
        app.client().await.get_material(basic).await,
        Code::Unauthenticated,
    );
    assert_eq!(app.level(&fx.hamburg, &fx.steel).await.0, "1000");
    assert_eq!(app.check_ledger().await, (3, 0));
}

// Tenants ---------------------------------------------------------------------------------------

#[tokio::test]
async fn another_tenant_can_neither_see_nor_touch_nor_reserve_this_tenants_stock() {
    let app = TestApp::spawn().await;
    let supplier = Uuid::now_v7();
    let ours = fixture(&app, &app.admin_token, supplier).await;
    let (_, other) = app.identity.other_tenant("Rival Logistics").await.unwrap();
    // Same codes, same SKUs, same supplier: each tenant has its own.
    let theirs = fixture(&app, &other, supplier).await;
    // And the same shipment id, reserved from their own stock.
    let theirs_for_our_shipment = reserve(
        &app,
        &other,
        ours.shipment,
        &[(&theirs.hamburg, &theirs.copper, "2")],
    )
    .await
    .unwrap();

    // Reads: nothing of ours exists for them.
    expect_code(
        get_material(&app, &other, &ours.steel.id).await,
        Code::NotFound,
    );
    expect_code(
        get_warehouse(&app, &other, &ours.hamburg.id).await,
        Code::NotFound,
    );
    expect_code(
        get_level(&app, &other, &ours.hamburg, &ours.steel).await,
        Code::NotFound,
    );
    expect_code(get_link(&app, &other, &ours.link.id).await, Code::NotFound);
    assert_eq!(
        list_materials(&app, &other).await.unwrap(),
        [theirs.copper.id.as_str(), theirs.steel.id.as_str()]
    );
    let mut their_warehouses = vec![theirs.berlin.id.clone(), theirs.hamburg.id.clone()];
    their_warehouses.sort();
    let mut listed = list_warehouses(&app, &other).await.unwrap();
    listed.sort();
    assert_eq!(listed, their_warehouses);
    assert!(
        list_levels(&app, &other, Some(&ours.hamburg))
            .await
            .unwrap()
            .is_empty()
    );
    let their_levels = list_levels(&app, &other, None).await.unwrap();
    assert_eq!(their_levels.len(), 3);
    assert!(
        their_levels
            .iter()
            .all(|(w, _)| *w == theirs.hamburg.id || *w == theirs.berlin.id)
    );
    assert!(
        list_movements(&app, &other, Some(&ours.hamburg), None)
            .await
            .unwrap()
            .is_empty()
    );
    let for_shipment = list_movements(&app, &other, None, Some(ours.shipment))
        .await
        .unwrap();
    assert!(
        for_shipment
            .iter()
            .all(|m| m.warehouse_id == theirs.hamburg.id || m.warehouse_id == theirs.berlin.id),
        "{for_shipment:?}"
    );
    assert!(!for_shipment.is_empty());
    assert_eq!(
        reservations_of(&app, &other, ours.shipment).await.unwrap(),
        theirs_for_our_shipment,
        "the shipment id is theirs too, with their own reservation only"
    );
    assert_eq!(
        list_links(&app, &other).await.unwrap(),
        [theirs.link.id.as_str()]
    );

    // Writes: every one finds nothing.
    let outcomes = [
        (
            "UpdateMaterial",
            code(update_material(&app, &other, &ours.steel.id).await),
        ),
        (
            "DeleteMaterial",
            code(delete_material(&app, &other, &ours.copper.id).await),
        ),
        (
            "UndeleteMaterial",
            code(undelete_material(&app, &other, &ours.copper.id).await),
        ),
        (
            "UpdateWarehouse",
            code(update_warehouse(&app, &other, &ours.hamburg.id).await),
        ),
        (
            "DeleteWarehouse",
            code(delete_warehouse(&app, &other, &ours.berlin.id).await),
        ),
        (
            "UndeleteWarehouse",
            code(undelete_warehouse(&app, &other, &ours.berlin.id).await),
        ),
        (
            "ReceiveStock",
            code(receive(&app, &other, &ours.hamburg, &ours.steel, "1").await),
        ),
        (
            "ReceiveStock into their warehouse of our material",
            code(receive(&app, &other, &theirs.hamburg, &ours.steel, "1").await),
        ),
        (
            "IssueStock",
            code(issue(&app, &other, &ours.hamburg, &ours.steel).await),
        ),
        (
            "AdjustStock",
            code(adjust(&app, &other, &ours.hamburg, &ours.steel).await),
        ),
        (
            "TransferStock out of ours",
            code(transfer(&app, &other, &ours.hamburg, &theirs.berlin, &ours.steel).await),
        ),
        (
            "TransferStock into ours",
            code(transfer(&app, &other, &theirs.hamburg, &ours.berlin, &theirs.steel).await),
        ),
        (
            "CreateMaterialSupplier",
            code(create_link(&app, &other, link_of(&ours.copper, Uuid::now_v7(), false)).await),
        ),
        (
            "UpdateMaterialSupplier",
            code(update_link(&app, &other, &ours.link.id).await),
        ),
        (
            "DeleteMaterialSupplier",
            code(delete_link(&app, &other, &ours.link.id).await),
        ),
        (
            "UndeleteMaterialSupplier",
            code(undelete_link(&app, &other, &ours.link.id).await),
        ),
        (
            "ReserveStock of our stock",
            code(
                reserve(
                    &app,
                    &other,
                    Uuid::now_v7(),
                    &[(&ours.hamburg, &ours.steel, "1")],
                )
                .await,
            ),
        ),
        (
            "ReserveStock of our material in their warehouse",
            code(
                reserve(
                    &app,
                    &other,
                    Uuid::now_v7(),
                    &[
                        (&theirs.hamburg, &theirs.steel, "1"),
                        (&theirs.hamburg, &ours.steel, "1"),
                    ],
                )
                .await,
            ),
        ),
    ];
    for (method, got) in outcomes {
        assert_eq!(got, Code::NotFound, "{method}");
    }
    // Releasing and consuming "our" shipment settles only their own reservation of that id.
    let released = release(&app, &other, ours.shipment).await.unwrap();
    assert_eq!(
        released.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [theirs_for_our_shipment[0].id.as_str()]
    );
    assert!(
        consume(&app, &other, ours.shipment)
            .await
            .unwrap()
            .is_empty()
    );

    // Ours is as it was, and each ledger check counts only its own tenant's levels.
    let admin = &app.admin_token;
    assert_eq!(
        get_material(&app, admin, &ours.steel.id).await.unwrap(),
        ours.steel
    );
    assert_eq!(
        get_warehouse(&app, admin, &ours.hamburg.id).await.unwrap(),
        ours.hamburg
    );
    assert_eq!(
        get_link(&app, admin, &ours.link.id).await.unwrap(),
        ours.link
    );
    assert_eq!(
        reservations_of(&app, admin, ours.shipment).await.unwrap(),
        ours.reservations
    );
    assert_eq!(
        app.level(&ours.hamburg, &ours.steel).await,
        ("1000".to_owned(), "10".to_owned(), "990".to_owned())
    );
    assert_eq!(
        app.level(&ours.berlin, &ours.steel).await,
        ("30".to_owned(), "5".to_owned(), "25".to_owned())
    );
    assert_eq!(check_ledger(&app, admin).await.unwrap(), (3, 0));
    assert_eq!(check_ledger(&app, &other).await.unwrap(), (3, 0));
    // A fourth level of theirs is theirs alone to count.
    receive(&app, &other, &theirs.berlin, &theirs.copper, "1")
        .await
        .unwrap();
    assert_eq!(check_ledger(&app, &other).await.unwrap(), (4, 0));
    assert_eq!(check_ledger(&app, admin).await.unwrap(), (3, 0));
}

// Row-level security ----------------------------------------------------------------------------

async fn count<'e, E: sqlx::PgExecutor<'e>>(executor: E, relation: &str, filter: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM inventory.{relation} {filter}"
    )))
    .fetch_one(executor)
    .await
    .unwrap()
}

/// The SQLSTATE of a statement that must fail.
#[track_caller]
fn sqlstate(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>, what: &str) -> String {
    let err = result.expect_err(what);
    err.as_database_error()
        .unwrap_or_else(|| panic!("{what}: {err}"))
        .code()
        .unwrap_or_default()
        .into_owned()
}

/// One insert per table, each binding (tenant, id, warehouse, material).
const INSERTS: &[(&str, &str)] = &[
    (
        "materials",
        "INSERT INTO inventory.materials (tenant_id, id, sku, name, unit) \
         SELECT $1, $2, 'INTRUDER-1', 'Intruder', 'piece' WHERE $3::uuid IS NOT NULL AND $4::uuid IS NOT NULL",
    ),
    (
        "warehouses",
        "INSERT INTO inventory.warehouses (tenant_id, id, code, name, address_line, city, country_code) \
         SELECT $1, $2, 'INTRUDER', 'Intruder', 'x', 'y', 'DE' WHERE $3::uuid IS NOT NULL AND $4::uuid IS NOT NULL",
    ),
    (
        "stock_levels",
        "INSERT INTO inventory.stock_levels (tenant_id, warehouse_id, material_id, on_hand) \
         SELECT $1, $3, $4, 1000 WHERE $2::uuid IS NOT NULL",
    ),
    (
        "stock_movements",
        "INSERT INTO inventory.stock_movements (tenant_id, id, warehouse_id, material_id, kind, \
             on_hand_change, reserved_change, on_hand_after, reserved_after, idempotency_key) \
         VALUES ($1, $2, $3, $4, 'receipt', 1000, 0, 1000, 0, $2)",
    ),
    (
        "reservations",
        "INSERT INTO inventory.reservations (tenant_id, id, shipment_id, warehouse_id, material_id, quantity) \
         VALUES ($1, $2, $2, $3, $4, 1)",
    ),
    (
        "material_suppliers",
        "INSERT INTO inventory.material_suppliers (tenant_id, id, material_id, supplier_id, \
             unit_price_minor, currency_code) \
         SELECT $1, $2, $4, $2, 1, 'EUR' WHERE $3::uuid IS NOT NULL",
    ),
    (
        "idempotency_keys",
        "INSERT INTO inventory.idempotency_keys (tenant_id, method, request_id, request_hash) \
         SELECT $1, 'ReserveStock', $2, '\\x00' WHERE $3::uuid IS NOT NULL AND $4::uuid IS NOT NULL",
    ),
];

#[tokio::test]
async fn the_runtime_role_sees_no_rows_without_a_tenant_and_only_its_tenants_rows_with_one() {
    let app = TestApp::spawn().await;
    let (our_supplier, their_supplier) = (Uuid::now_v7(), Uuid::now_v7());
    let ours = fixture(&app, &app.admin_token, our_supplier).await;
    create_link(
        &app,
        &app.admin_token,
        link_of(&ours.copper, their_supplier, false),
    )
    .await
    .unwrap();
    let (theirs_id, other) = app.identity.other_tenant("Rival Logistics").await.unwrap();
    let theirs = fixture(&app, &other, their_supplier).await;
    let our_tenant = app.identity.tenant_id;
    let admin = app.db().await;
    for relation in INVENTORY_TABLES.iter().chain(&["available_stock"]) {
        for tenant in [our_tenant, theirs_id] {
            assert!(
                count(&admin, relation, &format!("WHERE tenant_id = '{tenant}'")).await > 0,
                "{relation} has rows of both tenants"
            );
        }
    }

    let pool = sqlx::PgPool::connect(&app.identity.db.url_as(SCHEMA.app_role))
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(role, SCHEMA.app_role);

    // No tenant context: nothing visible, nothing changes.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    for relation in INVENTORY_TABLES.iter().chain(&["available_stock"]) {
        assert_eq!(
            count(&mut *tx, relation, "").await,
            0,
            "{relation} without a tenant"
        );
    }
    for table in [
        "materials",
        "warehouses",
        "reservations",
        "material_suppliers",
        "idempotency_keys",
    ] {
        let touched = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE inventory.{table} SET tenant_id = tenant_id"
        )))
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(touched, 0, "{table} updated without a tenant");
    }
    let removed = sqlx::query("DELETE FROM inventory.idempotency_keys")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(removed, 0, "idempotency claims deleted without a tenant");
    let locked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM inventory.lock_levels(ARRAY[$1]::uuid[], ARRAY[$2]::uuid[])",
    )
    .bind(uuid(&ours.hamburg.id))
    .bind(uuid(&ours.steel.id))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(locked, 0, "lock_levels finds nothing without a tenant");
    tx.rollback().await.unwrap();

    for (table, sql) in INSERTS {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        let state = sqlstate(
            sqlx::query(*sql)
                .bind(our_tenant)
                .bind(Uuid::now_v7())
                .bind(uuid(&ours.hamburg.id))
                .bind(uuid(&ours.steel.id))
                .execute(&mut *tx)
                .await,
            "an insert without a tenant context",
        );
        assert_eq!(state, "42501", "{table}");
        tx.rollback().await.unwrap();
    }
    // The one writer of levels and ledger refuses to run without a tenant.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    let err = sqlx::query(
        "SELECT inventory.move_stock(gen_random_uuid(), $1, $2, 'receipt', 1000, 0, '', NULL, NULL, \
             gen_random_uuid())",
    )
    .bind(uuid(&ours.hamburg.id))
    .bind(uuid(&ours.steel.id))
    .execute(&mut *tx)
    .await
    .unwrap_err();
    let db_err = err.as_database_error().unwrap();
    assert_eq!(db_err.code().as_deref(), Some("42501"), "{db_err}");
    assert!(db_err.message().contains("no tenant"), "{db_err}");
    tx.rollback().await.unwrap();
    // Hard deletes are not the runtime role's to make, tenant or not.
    for table in [
        "materials",
        "warehouses",
        "stock_levels",
        "stock_movements",
        "reservations",
        "material_suppliers",
    ] {
        let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(our_tenant.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        let state = sqlstate(
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM inventory.{table}"
            )))
            .execute(&mut *tx)
            .await,
            "a hard delete",
        );
        assert_eq!(state, "42501", "{table}");
        tx.rollback().await.unwrap();
    }

    // Our tenant's context: exactly our rows, and no row of theirs can be written.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(our_tenant.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    for relation in INVENTORY_TABLES.iter().chain(&["available_stock"]) {
        let expected = count(
            &admin,
            relation,
            &format!("WHERE tenant_id = '{our_tenant}'"),
        )
        .await;
        assert_eq!(
            count(&mut *tx, relation, "").await,
            expected,
            "{relation} in our context"
        );
        assert_eq!(
            count(
                &mut *tx,
                relation,
                &format!("WHERE tenant_id = '{theirs_id}'")
            )
            .await,
            0,
            "{relation}: their rows in our context"
        );
    }
    let renamed = sqlx::query("UPDATE inventory.materials SET name = 'Hijacked' WHERE id = $1")
        .bind(uuid(&theirs.steel.id))
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(renamed, 0, "their material renamed from our context");
    tx.rollback().await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(our_tenant.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let state = sqlstate(
        sqlx::query(INSERTS[0].1)
            .bind(theirs_id)
            .bind(Uuid::now_v7())
            .bind(uuid(&theirs.hamburg.id))
            .bind(uuid(&theirs.steel.id))
            .execute(&mut *tx)
            .await,
        "an insert into their tenant",
    );
    assert_eq!(state, "42501");
    tx.rollback().await.unwrap();

    // A supplier's context narrows the links to its own.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    sqlx::query(
        "SELECT set_config('app.tenant_id', $1, true), set_config('app.partner_id', $2, true)",
    )
    .bind(our_tenant.to_string())
    .bind(their_supplier.to_string())
    .execute(&mut *tx)
    .await
    .unwrap();
    let links: Vec<Uuid> =
        sqlx::query_scalar("SELECT supplier_id FROM inventory.material_suppliers")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(links, [their_supplier]);
    tx.rollback().await.unwrap();

    // The setting was transaction-local: the same connection sees nothing again.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    assert_eq!(count(&mut *tx, "materials", "").await, 0);
    tx.rollback().await.unwrap();
    drop(conn);
    pool.close().await;
}

#[tokio::test]
async fn the_runtime_role_owns_nothing_bypasses_nothing_and_every_table_forces_row_security() {
    let app = TestApp::spawn().await;
    let admin = app.db().await;
    let (bypass, superuser): (bool, bool) =
        sqlx::query_as("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = $1")
            .bind(SCHEMA.app_role)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(!bypass, "the runtime role bypasses row-level security");
    assert!(!superuser, "the runtime role is a superuser");
    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'inventory' AND pg_get_userbyid(c.relowner) = $1 \
         UNION ALL \
         SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'inventory' AND pg_get_userbyid(p.proowner) = $1 \
         UNION ALL \
         SELECT nspname::text FROM pg_namespace \
         WHERE nspname = 'inventory' AND pg_get_userbyid(nspowner) = $1",
    )
    .bind(SCHEMA.app_role)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(owned.is_empty(), "the runtime role owns {owned:?}");

    // Tables and the partitioned ledger; its partitions are reached only through it.
    let forced: Vec<(String, String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relkind::text, c.relrowsecurity, c.relforcerowsecurity \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'inventory' AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
           AND c.relname <> '_sqlx_migrations' \
         ORDER BY 1",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    let mut tables: Vec<&str> = INVENTORY_TABLES.to_vec();
    tables.sort_unstable();
    assert_eq!(
        forced
            .iter()
            .map(|(t, _, _, _)| t.as_str())
            .collect::<Vec<_>>(),
        tables,
        "every table is covered"
    );
    for (table, kind, enabled, force) in &forced {
        assert!(
            *enabled && *force,
            "{table}: RLS enabled {enabled}, forced {force}"
        );
        if table == "stock_movements" {
            assert_eq!(kind, "p", "the ledger is partitioned");
        }
    }
    let open_partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'inventory.stock_movements'::regclass \
           AND has_table_privilege($1::name, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')",
    )
    .bind(SCHEMA.app_role)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(
        open_partitions.is_empty(),
        "the runtime role may use {open_partitions:?} directly"
    );
    let partitions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'inventory.stock_movements'::regclass",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(partitions >= 4, "{partitions} partitions");
    // The view runs with the caller's rights, so the tables' policies apply through it.
    let options: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(c.reloptions) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'inventory' AND c.relname = 'available_stock'",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(
        options.iter().any(|o| o == "security_invoker=true"),
        "{options:?}"
    );
    // The lock functions every stock operation starts with: lock_live, and ReserveStock's
    // lock_for_reservation around it, run with the caller's rights (its policies decide what
    // they find); all keep one plan per session instead of planning each call for its arrays'
    // lengths (inventory migrations 0008, 0011).
    let locks: Vec<(String, bool, Vec<String>)> = sqlx::query_as(
        "SELECT p.proname::text, p.prosecdef, coalesce(p.proconfig, '{}') \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'inventory' AND p.proname IN ('lock_live', 'lock_levels', 'lock_for_reservation') ORDER BY 1",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(
        locks
            .iter()
            .map(|(n, d, _)| (n.as_str(), *d))
            .collect::<Vec<_>>(),
        [
            ("lock_for_reservation", false),
            ("lock_levels", true),
            ("lock_live", false)
        ]
    );
    for (name, _, config) in &locks {
        for setting in [
            "plan_cache_mode=force_generic_plan",
            "search_path=pg_catalog, pg_temp",
        ] {
            assert!(config.iter().any(|c| c == setting), "{name}: {config:?}");
        }
    }
    // Only the runtime role may call them: no EXECUTE for PUBLIC (a NULL ACL would mean the
    // default, which grants it).
    let public: Vec<String> = sqlx::query_scalar(
        "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'inventory' AND p.proname IN ('lock_live', 'lock_levels', 'lock_for_reservation') \
           AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a \
                                            WHERE a.grantee = 0))",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(public.is_empty(), "PUBLIC may execute {public:?}");
}

// The available-stock view ----------------------------------------------------------------------

/// (material, warehouses, on hand, reserved, available) per material, as `executor` sees them.
async fn available<'e, E: sqlx::PgExecutor<'e>>(
    executor: E,
) -> Vec<(Uuid, i64, Decimal, Decimal, Decimal)> {
    sqlx::query_as(
        "SELECT material_id, warehouses, on_hand, reserved, available \
         FROM inventory.available_stock ORDER BY material_id",
    )
    .fetch_all(executor)
    .await
    .unwrap()
}

fn dec(value: &str) -> Decimal {
    value.parse().unwrap()
}

#[tokio::test]
async fn available_stock_sums_each_material_over_live_warehouses_for_the_callers_tenant_only() {
    let app = TestApp::spawn().await;
    let fx = fixture(&app, &app.admin_token, Uuid::now_v7()).await;
    // A warehouse that held steel and was emptied and closed does not count.
    let old = create_warehouse(&app, &app.admin_token, "OLD-1")
        .await
        .unwrap();
    receive(&app, &app.admin_token, &old, &fx.steel, "1")
        .await
        .unwrap();
    issue(&app, &app.admin_token, &old, &fx.steel)
        .await
        .unwrap();
    delete_warehouse(&app, &app.admin_token, &old.id)
        .await
        .unwrap();
    receive(&app, &app.admin_token, &fx.berlin, &fx.steel, "0.5")
        .await
        .unwrap();
    let (theirs_id, other) = app.identity.other_tenant("Rival Logistics").await.unwrap();
    let theirs = create_material(&app, &other, "STEEL-1").await.unwrap();
    let their_hamburg = create_warehouse(&app, &other, "HAM-1").await.unwrap();
    receive(&app, &other, &their_hamburg, &theirs, "7")
        .await
        .unwrap();

    let runtime = sqlx::PgPool::connect(&app.identity.db.url_as(SCHEMA.app_role))
        .await
        .unwrap();
    let as_tenant = |tenant: Uuid| {
        let runtime = runtime.clone();
        async move {
            let mut tx = runtime.begin().await.unwrap();
            sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                .bind(tenant.to_string())
                .execute(&mut *tx)
                .await
                .unwrap();
            let rows = available(&mut *tx).await;
            tx.rollback().await.unwrap();
            rows
        }
    };
    let mut expected = vec![
        // Steel: 1000 (10 held) in Hamburg, 30.5 (5 held) in Berlin.
        (
            uuid(&fx.steel.id),
            2,
            dec("1030.5"),
            dec("15"),
            dec("1015.5"),
        ),
        // Copper: 50 in Hamburg.
        (uuid(&fx.copper.id), 1, dec("50"), dec("0"), dec("50")),
    ];
    expected.sort_by_key(|row| row.0);
    assert_eq!(as_tenant(app.identity.tenant_id).await, expected);
    assert_eq!(
        as_tenant(theirs_id).await,
        [(uuid(&theirs.id), 1, dec("7"), dec("0"), dec("7"))]
    );
    assert!(available(&runtime).await.is_empty(), "no tenant, no rows");
    assert!(
        as_tenant(Uuid::now_v7()).await.is_empty(),
        "an unknown tenant sees nothing"
    );
    assert_eq!(
        available(&app.db().await).await.len(),
        3,
        "the superuser sees all"
    );

    // The view agrees with the levels the API lists.
    let levels = app
        .client()
        .await
        .list_stock_levels(authed(
            &app.admin_token,
            pb::ListStockLevelsRequest {
                material_id: fx.steel.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .levels;
    let live: Decimal = levels
        .iter()
        .filter(|l| l.warehouse_id != old.id)
        .map(|l| dec(&l.available.clone().unwrap().value))
        .sum();
    assert_eq!(live, dec("1015.5"));
    runtime.close().await;
}
