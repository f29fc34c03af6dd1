//! Every Get and List query of the shipment service's big tables uses an index at the
//! benchmark's size: 100,000 shipments with 300,000 items in the tenant (and a fifth of that in
//! another), the plans read back from auto_explain as in `explain.rs`.

use bench::explain;
use bench::load::shipments::{self, Shipments};
use bench::load::{self, Size};
use logistics_harness::{Identity, Server, authed};
use logistics_proto::shipment::v1 as pb;
use pb::shipment_service_client::ShipmentServiceClient;
use uuid::Uuid;

#[tokio::test]
async fn shipment_list_and_get_queries_use_indexes() {
    let logs = logistics_testkit::captured_logs();
    let specs = [
        &partner::app::SCHEMA,
        &inventory::schema::SCHEMA,
        &shipment::schema::SCHEMA,
    ];
    let identity = Identity::start(&specs).await.expect("identity");
    let db = &identity.db;
    for (spec, migrator) in [
        (&partner::app::SCHEMA, &partner::app::MIGRATOR),
        (&inventory::schema::SCHEMA, &inventory::schema::MIGRATOR),
        (&shipment::schema::SCHEMA, &shipment::schema::MIGRATOR),
    ] {
        logistics_platform::db::migrate(&db.url_as(spec.owner_role), spec.schema, migrator)
            .await
            .expect("migrations");
    }
    let tenant = identity.tenant_id;
    for (t, factor) in [(tenant, 1.0), (Uuid::now_v7(), 0.2)] {
        load::inventory(&db.admin_url(), t, "BENCH", Size::scaled(0.05))
            .await
            .expect("stock");
        shipments::plain_customers(&db.admin_url(), t, 200)
            .await
            .expect("customers");
        shipments::load(&db.admin_url(), t, Shipments::scaled(factor))
            .await
            .expect("shipments");
    }
    let admin = db.admin_pool().await.expect("admin pool");
    explain::enable(&admin, shipment::schema::SCHEMA.app_role, &db.name)
        .await
        .expect("auto_explain for the runtime role");
    let (customer_id, driver_id): (Uuid, Uuid) = (
        sqlx::query_scalar(
            "SELECT customer_id FROM shipment.shipments WHERE tenant_id = $1 LIMIT 1",
        )
        .bind(tenant)
        .fetch_one(&admin)
        .await
        .expect("a customer"),
        Uuid::now_v7(),
    );

    // Nothing here calls a peer: they point at a port nobody listens on.
    let nowhere = "http://127.0.0.1:9";
    let config = shipment::config::Config::for_tests(
        &db.url_as(shipment::schema::SCHEMA.app_role),
        &identity.url(),
        [nowhere; 3],
    );
    let server = Server::start(|listener, shutdown| shipment::app::run(config, listener, shutdown))
        .await
        .expect("shipment serving");
    let mut client = ShipmentServiceClient::new(server.channel().await.expect("channel"));
    let token = identity.admin_token.clone();

    let mut shipment_id = String::new();
    for (filter, order_by) in [
        (String::new(), ""),
        (String::new(), "create_time"),
        (String::new(), "reference"),
        (String::new(), "reference desc"),
        ("status = SHIPMENT_STATUS_CANCELLED".to_owned(), ""),
        ("priority = PRIORITY_URGENT".to_owned(), "create_time"),
        (format!("customer_id = \"{customer_id}\""), ""),
        (format!("driver_id = \"{driver_id}\""), ""),
        ("reference = \"SO-00012*\"".to_owned(), "reference"),
        (
            "reference = \"PLAN-*\" AND status = SHIPMENT_STATUS_DRAFT".to_owned(),
            "reference",
        ),
    ] {
        let page = client
            .list_shipments(authed(
                &token,
                pb::ListShipmentsRequest {
                    filter: filter.clone(),
                    order_by: order_by.to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .expect("shipments")
            .into_inner();
        if shipment_id.is_empty()
            && let Some(first) = page.shipments.first()
        {
            shipment_id = first.id.clone();
        }
        client
            .list_shipments(authed(
                &token,
                pb::ListShipmentsRequest {
                    filter,
                    order_by: order_by.to_owned(),
                    page_token: page.next_page_token,
                    ..Default::default()
                },
            ))
            .await
            .expect("second page of shipments");
    }
    client
        .get_shipment(authed(
            &token,
            pb::GetShipmentRequest {
                id: shipment_id.clone(),
            },
        ))
        .await
        .expect("shipment");
    client
        .list_shipment_items(authed(
            &token,
            pb::ListShipmentItemsRequest {
                shipment_id: shipment_id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("items");
    server.stop().await;

    explain::check(
        &admin,
        "shipment",
        &logs.contents(),
        20,
        &["shipment.shipments", "shipment.shipment_items"],
    )
    .await
    .expect("every query of the big tables uses an index");
}
