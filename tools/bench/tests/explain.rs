//! Every Get and List query of inventory's big tables uses an index at the benchmark's sizes.
//!
//! The plans are the real ones: auto_explain is preloaded for the runtime role in this test's
//! database and sends the plan of every statement (nested ones too: `move_stock`,
//! `lock_levels`) back to the service's connection as a NOTICE, which sqlx logs and the test
//! captures. Then the RPCs run over gRPC, and any sequential scan of a table holding more than
//! a few thousand rows fails the test, naming the query.

use std::collections::BTreeMap;

use bench::load::{self, Size};
use inventory::schema::{MIGRATOR, SCHEMA};
use logistics_harness::{Identity, Server, authed};
use logistics_proto::inventory::v1 as pb;
use logistics_proto::r#type::v1::Decimal;
use pb::inventory_service_client::InventoryServiceClient;
use serde_json::Value;
use uuid::Uuid;

/// Tables smaller than this may be scanned: a sequential scan is the right plan for them.
const SMALL_TABLE_ROWS: f32 = 2000.0;

#[tokio::test]
async fn list_and_get_queries_of_big_tables_use_indexes() {
    let logs = logistics_testkit::captured_logs();
    let identity = Identity::start(&[&SCHEMA]).await.expect("identity");
    let db = &identity.db;
    logistics_platform::db::migrate(&db.url_as(SCHEMA.owner_role), SCHEMA.schema, &MIGRATOR)
        .await
        .expect("inventory migrations");
    let tenant = identity.tenant_id;
    load::inventory(&db.admin_url(), tenant, "BENCH", Size::FULL)
        .await
        .expect("load the tenant");
    // Another tenant's rows make the tenant's own condition selective, as in production.
    load::inventory(&db.admin_url(), Uuid::now_v7(), "OTHER", Size::scaled(0.2))
        .await
        .expect("load another tenant");
    let admin = db.admin_pool().await.expect("admin pool");
    for setting in [
        "session_preload_libraries = 'auto_explain'",
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_level = 'notice'",
        "auto_explain.log_format = 'json'",
        "auto_explain.log_nested_statements = on",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER ROLE {} IN DATABASE {} SET {setting}",
            SCHEMA.app_role, db.name
        )))
        .execute(&admin)
        .await
        .expect("auto_explain for the runtime role");
    }

    let config = inventory::config::Config::for_tests(&db.url_as(SCHEMA.app_role), &identity.url());
    let server =
        Server::start(|listener, shutdown| inventory::app::run(config, listener, shutdown))
            .await
            .expect("inventory serving");
    let mut client = InventoryServiceClient::new(server.channel().await.expect("channel"));
    let token = identity.admin_token.clone();

    let first = client
        .list_stock_levels(authed(&token, pb::ListStockLevelsRequest::default()))
        .await
        .expect("first page of levels")
        .into_inner();
    let level = first.levels.last().cloned().expect("a level");
    let mut token_deep = first.next_page_token.clone();
    for _ in 0..20 {
        token_deep = client
            .list_stock_levels(authed(
                &token,
                pb::ListStockLevelsRequest {
                    page_size: 1000,
                    page_token: token_deep,
                    ..Default::default()
                },
            ))
            .await
            .expect("a page deep in the levels")
            .into_inner()
            .next_page_token;
    }
    let (warehouse_id, material_id) = (level.warehouse_id.clone(), level.material_id.clone());
    client
        .get_material(authed(
            &token,
            pb::GetMaterialRequest {
                id: material_id.clone(),
            },
        ))
        .await
        .expect("material");
    client
        .get_warehouse(authed(
            &token,
            pb::GetWarehouseRequest {
                id: warehouse_id.clone(),
            },
        ))
        .await
        .expect("warehouse");
    client
        .get_stock_level(authed(
            &token,
            pb::GetStockLevelRequest {
                warehouse_id: warehouse_id.clone(),
                material_id: material_id.clone(),
            },
        ))
        .await
        .expect("level");
    for (filter, order_by) in [
        ("", ""),
        ("", "name"),
        ("", "sku desc"),
        ("", "create_time desc"),
        ("sku = \"BENCH-MAT-0042*\"", ""),
        ("status = MATERIAL_STATUS_ACTIVE", "name desc"),
    ] {
        let page = client
            .list_materials(authed(
                &token,
                pb::ListMaterialsRequest {
                    filter: filter.to_owned(),
                    order_by: order_by.to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .expect("materials")
            .into_inner();
        client
            .list_materials(authed(
                &token,
                pb::ListMaterialsRequest {
                    filter: filter.to_owned(),
                    order_by: order_by.to_owned(),
                    page_token: page.next_page_token,
                    ..Default::default()
                },
            ))
            .await
            .expect("second page of materials");
    }
    for request in [
        pb::ListStockLevelsRequest {
            page_token: token_deep,
            ..Default::default()
        },
        pb::ListStockLevelsRequest {
            warehouse_id: warehouse_id.clone(),
            ..Default::default()
        },
        pb::ListStockLevelsRequest {
            material_id: material_id.clone(),
            ..Default::default()
        },
        pb::ListStockLevelsRequest {
            warehouse_id: warehouse_id.clone(),
            below_reorder_point: true,
            ..Default::default()
        },
    ] {
        client
            .list_stock_levels(authed(&token, request))
            .await
            .expect("levels");
    }
    for request in [
        pb::ListStockMovementsRequest::default(),
        pb::ListStockMovementsRequest {
            warehouse_id: warehouse_id.clone(),
            material_id: material_id.clone(),
            ..Default::default()
        },
        pb::ListStockMovementsRequest {
            warehouse_id: warehouse_id.clone(),
            ..Default::default()
        },
    ] {
        let page = client
            .list_stock_movements(authed(&token, request.clone()))
            .await
            .expect("movements")
            .into_inner();
        client
            .list_stock_movements(authed(
                &token,
                pb::ListStockMovementsRequest {
                    page_token: page.next_page_token,
                    ..request
                },
            ))
            .await
            .expect("next page of movements");
    }
    let shipment_id = Uuid::now_v7().to_string();
    client
        .reserve_stock(authed(
            &token,
            pb::ReserveStockRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                shipment_id: shipment_id.clone(),
                lines: vec![pb::ReservationLine {
                    warehouse_id: warehouse_id.clone(),
                    material_id: material_id.clone(),
                    quantity: Some(Decimal {
                        value: "3".to_owned(),
                    }),
                }],
            },
        ))
        .await
        .expect("reserve");
    client
        .list_reservations(authed(
            &token,
            pb::ListReservationsRequest {
                shipment_id: shipment_id.clone(),
            },
        ))
        .await
        .expect("reservations");
    client
        .release_reservation(authed(
            &token,
            pb::ReleaseReservationRequest {
                idempotency_key: Uuid::now_v7().to_string(),
                shipment_id,
                ..Default::default()
            },
        ))
        .await
        .expect("release");
    server.stop().await;

    let plans = explained(&logs.contents());
    assert!(
        plans.len() > 30,
        "auto_explain reported {} plans; is it preloaded?",
        plans.len()
    );
    let sizes: BTreeMap<String, f32> = sqlx::query_as::<_, (String, f32)>(
        "SELECT c.relname::text, c.reltuples FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname = 'inventory' AND c.relkind = 'r'",
    )
    .fetch_all(&admin)
    .await
    .expect("table sizes")
    .into_iter()
    .collect();
    let mut scans = Vec::new();
    for (query, plan) in &plans {
        let mut relations = Vec::new();
        seq_scans(plan, &mut relations);
        for relation in relations {
            let rows = sizes.get(&relation).copied().unwrap_or(0.0);
            if rows > SMALL_TABLE_ROWS {
                scans.push(format!("{relation} ({rows} rows) in: {query}"));
            }
        }
    }
    scans.sort();
    scans.dedup();
    assert!(
        scans.is_empty(),
        "sequential scans of big tables:\n{}",
        scans.join("\n")
    );
    // The queries seen include the ones the paths above must have run.
    for needle in [
        "inventory.stock_levels",
        "inventory.stock_movements",
        "inventory.materials",
    ] {
        assert!(
            plans.iter().any(|(q, _)| q.contains(needle)),
            "no plan of a query on {needle}"
        );
    }
}

/// The (query text, plan) pairs auto_explain sent as notices, from the captured JSON log.
fn explained(log: &str) -> Vec<(String, Value)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "sqlx::postgres::notice")
        .filter_map(|line| {
            let message = line["fields"]["message"].as_str()?.to_owned();
            let json = &message[message.find('{')?..];
            let explained: Value = serde_json::from_str(json).ok()?;
            Some((
                explained["Query Text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                explained["Plan"].clone(),
            ))
        })
        .collect()
}

/// The relations `plan` reads with a sequential scan.
fn seq_scans(plan: &Value, into: &mut Vec<String>) {
    if plan["Node Type"] == "Seq Scan"
        && let Some(relation) = plan["Relation Name"].as_str()
    {
        into.push(relation.to_owned());
    }
    for child in plan["Plans"].as_array().into_iter().flatten() {
        seq_scans(child, into);
    }
}
