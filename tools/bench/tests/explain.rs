//! Every Get and List query of inventory's big tables uses an index at the benchmark's sizes.
//!
//! The plans are the real ones: auto_explain is preloaded for the runtime role in this test's
//! database and sends the plan of every statement (nested ones too: `move_stock`,
//! `lock_levels`) back to the service's connection as a NOTICE, which sqlx logs and the test
//! captures. Then the RPCs run over gRPC, and any sequential scan of a table holding more than
//! a few thousand rows fails the test, naming the query.

use bench::explain;
use bench::load::{self, Size};
use inventory::schema::{MIGRATOR, SCHEMA};
use logistics_harness::{Identity, Server, authed};
use logistics_proto::inventory::v1 as pb;
use logistics_proto::r#type::v1::Decimal;
use pb::inventory_service_client::InventoryServiceClient;
use uuid::Uuid;

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
    explain::enable(&admin, SCHEMA.app_role, &db.name)
        .await
        .expect("auto_explain for the runtime role");

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
    // Every filter alone and together, each with its next page (the cursor), besides the
    // deep page: the plans that ListStockLevels' generic plans must keep on an index.
    let mut filtered_pages = 0;
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
            material_id: material_id.clone(),
            ..Default::default()
        },
        pb::ListStockLevelsRequest {
            warehouse_id: warehouse_id.clone(),
            below_reorder_point: true,
            ..Default::default()
        },
        pb::ListStockLevelsRequest {
            material_id: material_id.clone(),
            below_reorder_point: true,
            ..Default::default()
        },
        pb::ListStockLevelsRequest {
            below_reorder_point: true,
            ..Default::default()
        },
    ] {
        let page = client
            .list_stock_levels(authed(&token, request.clone()))
            .await
            .expect("levels")
            .into_inner();
        filtered_pages += 1;
        if !page.next_page_token.is_empty() {
            client
                .list_stock_levels(authed(
                    &token,
                    pb::ListStockLevelsRequest {
                        page_token: page.next_page_token,
                        ..request
                    },
                ))
                .await
                .expect("next page of levels");
            filtered_pages += 1;
        }
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
        pb::ListStockMovementsRequest {
            material_id: material_id.clone(),
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

    explain::check(
        &admin,
        "inventory",
        &logs.contents(),
        30,
        &[
            "inventory.stock_levels",
            "inventory.stock_movements",
            "inventory.materials",
        ],
    )
    .await
    .expect("every query of the big tables uses an index");

    // ListStockLevels runs its page queries from their generic plans (planning one cost more
    // than running it), so the plans above are the ones every call runs. A generic plan's
    // index condition on stock_levels names the parameters ($1, ...) where a custom plan has
    // their values. The first page without filters has no parameter but its LIMIT: left out.
    let pages: Vec<(String, serde_json::Value)> = explain::explained(&logs.contents())
        .into_iter()
        .filter(|(q, _)| q.contains("ORDER BY l.warehouse_id, l.material_id LIMIT $"))
        .filter(|(q, _)| q.contains("$2"))
        .collect();
    // The 20 deep pages of 1,000 and the filtered pages, except below_reorder_point alone
    // on its first page.
    assert_eq!(
        pages.len(),
        20 + filtered_pages - 1,
        "plans of levels pages"
    );
    for (query, plan) in &pages {
        let conditions: Vec<&str> = explain::nodes(plan)
            .into_iter()
            .filter(|node| node["Relation Name"] == "stock_levels")
            .filter_map(|node| node["Index Cond"].as_str())
            .collect();
        assert!(
            conditions.iter().any(|c| c.contains('$')),
            "planned for its values instead of generically ({conditions:?}): {query}"
        );
    }
}
