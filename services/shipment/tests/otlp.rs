#![allow(clippy::unwrap_used)]

//! Traces exported over OTLP to a real (in-process) collector: a plan across the five servers
//! arrives as one tree of spans, and a call's logged trace id is its exported span's.
//!
//! The tracer provider is global to the process and every test here shares it: the first test
//! to ask for [`Collector::global`] points the exporter at a collector on 127.0.0.1:0 and
//! installs telemetry, on a runtime of its own that outlives every test's. Spans are told apart
//! by trace id and `rpc.service`, since all servers share the process (and the service name).
//! The batch delay is set far beyond every deadline below, so spans reach the collector only
//! through the flush a server does when it stops: these tests check that flush too.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use common::*;
use logistics_proto::shipment::v1 as pb;
use logistics_testkit::LogBuffer;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use tonic::{Request, Response, Status};
use uuid::Uuid;

const SHIPMENT: &str = "logistics.shipment.v1.ShipmentService";
const PARTNER: &str = "logistics.partner.v1.PartnerService";
const INVENTORY: &str = "logistics.inventory.v1.InventoryService";
const FLEET: &str = "logistics.fleet.v1.FleetService";
const SERVICE_NAME: &str = "shipment-otlp-test";

/// What the planning of one shipment calls, as (`rpc.service`, `rpc.method`).
const PLAN_CALLS: [(&str, &str); 3] = [
    (PARTNER, "GetPartner"),
    (INVENTORY, "ReserveStock"),
    (FLEET, "AssignAvailable"),
];

/// An OTLP trace collector that keeps every span it is sent, with the logs of the process.
#[derive(Clone, Default)]
struct Collector {
    /// Spans received, each with its resource's `service.name`.
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    /// Everything the process logged since telemetry was installed.
    logs: LogBuffer,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut kept = self.kept();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .map(|r| attr(&r.attributes, "service.name"))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                kept.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// The process's collector, started (and telemetry pointed at it) by the first caller.
    fn global() -> &'static Collector {
        static COLLECTOR: OnceLock<Collector> = OnceLock::new();
        COLLECTOR.get_or_init(Collector::start)
    }

    /// Serves a collector on 127.0.0.1:0, points the exporter at it and installs telemetry, on
    /// a thread and runtime of its own that outlive every test's.
    #[allow(unsafe_code)]
    fn start() -> Collector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        // SAFETY: every test of this binary calls `Collector::global` first, so the others wait
        // in `OnceLock::get_or_init` while this runs: no thread reads the environment meanwhile.
        unsafe {
            std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint);
            std::env::set_var("OTEL_SERVICE_NAME", SERVICE_NAME);
            std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "600000");
            std::env::set_var("OTEL_BSP_MAX_QUEUE_SIZE", "65536");
        }
        let collector = Collector::default();
        let serving = collector.clone();
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                // The exporter's connection lives on this runtime, which lives as the process.
                logistics_platform::telemetry::init_with_writer(true, serving.logs.clone());
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                ready.send(()).unwrap();
                tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(serving))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                    .await
                    .unwrap();
            });
        });
        started.recv().unwrap();
        assert!(
            logistics_platform::otel::enabled(),
            "telemetry did not install the exporter for {endpoint}"
        );
        collector
    }

    /// The received spans; a test that failed while holding them does not fail the others.
    fn kept(&self) -> MutexGuard<'_, Vec<(String, Span)>> {
        self.spans.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The spans received so far of the trace `trace_id` (hex).
    fn trace(&self, trace_id: &str) -> Vec<Span> {
        self.kept()
            .iter()
            .filter(|(_, span)| hex(&span.trace_id) == trace_id)
            .map(|(_, span)| span.clone())
            .collect()
    }

    /// Every span received so far.
    fn all(&self) -> Vec<Span> {
        self.kept().iter().map(|(_, span)| span.clone()).collect()
    }

    /// Returns once `arrived` holds; fails, naming `what`, after a deadline.
    async fn until(&self, what: &str, arrived: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !arrived() {
            if Instant::now() >= deadline {
                let held = self.kept().len();
                panic!("{what} never arrived; the collector holds {held} spans");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A string or integer attribute's value as text ("" when absent).
fn attr(attributes: &[KeyValue], key: &str) -> String {
    let value = attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref());
    match value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        _ => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The server span of `service`/`method` among `spans`.
fn server_span<'a>(spans: &'a [Span], service: &str, method: &str) -> Option<&'a Span> {
    spans.iter().find(|s| {
        attr(&s.attributes, "rpc.service") == service && attr(&s.attributes, "rpc.method") == method
    })
}

/// The nearest server span above `span`, following parent ids through `spans`; an error names
/// the first parent id that is not among them.
fn calling_server<'a>(spans: &'a [Span], span: &Span) -> Result<&'a Span, String> {
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (&s.span_id[..], s)).collect();
    let mut parent_id = &span.parent_span_id[..];
    loop {
        let parent = by_id
            .get(parent_id)
            .ok_or_else(|| format!("parent {} was never exported", hex(parent_id)))?;
        if !attr(&parent.attributes, "rpc.service").is_empty() {
            return Ok(parent);
        }
        parent_id = &parent.parent_span_id;
    }
}

#[tokio::test]
async fn a_plan_arrives_as_one_tree_from_shipment_down_to_partner_inventory_and_fleet() {
    let collector = Collector::global();
    let mut stack = Stack::spawn().await;
    let world = stack.world().await;
    let draft = stack.draft(&world, &[(&world.bolts, "2")]).await;
    let trace = format!("{:032x}", Uuid::now_v7().as_u128());
    let callers_span = "00f067aa0ba902b7";
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
        format!("00-{trace}-{callers_span}-01").parse().unwrap(),
    );
    stack.client().await.plan_shipment(request).await.unwrap();
    stack.stop_shipment().await;
    stack.stop_inventory().await;
    stack.stop_fleet().await;

    collector
        .until("the server spans of the plan's trace", || {
            let spans = collector.trace(&trace);
            std::iter::once((SHIPMENT, "PlanShipment"))
                .chain(PLAN_CALLS)
                .all(|(service, method)| server_span(&spans, service, method).is_some())
        })
        .await;
    let spans = collector.trace(&trace);

    let plan = server_span(&spans, SHIPMENT, "PlanShipment").unwrap();
    assert_eq!(hex(&plan.parent_span_id), callers_span);
    assert_eq!(plan.kind, SpanKind::Server as i32);
    assert_eq!(plan.name, format!("{SHIPMENT}/PlanShipment"));
    assert_eq!(attr(&plan.attributes, "rpc.system"), "grpc");
    assert_eq!(attr(&plan.attributes, "rpc.grpc.status_code"), "0");
    for (service, method) in PLAN_CALLS {
        let call = server_span(&spans, service, method).unwrap();
        assert_eq!(call.kind, SpanKind::Server as i32, "{service}/{method}");
        let caller = calling_server(&spans, call).unwrap_or_else(|e| {
            panic!("{service}/{method} hangs off no shipment span: {e}");
        });
        assert_eq!(
            caller.span_id, plan.span_id,
            "{service}/{method} is not below PlanShipment"
        );
    }
    let services: Vec<String> = collector.kept().iter().map(|(s, _)| s.clone()).collect();
    assert!(services.iter().all(|service| service == SERVICE_NAME));
}

#[tokio::test]
async fn a_call_without_traceparent_starts_a_trace_and_logs_that_trace_id() {
    let collector = Collector::global();
    let mut stack = Stack::spawn().await;
    let draft = stack.draft(&stack.world().await, &[]).await;
    let request_id = Uuid::now_v7().to_string();
    let mut request = authed(&stack.admin_token, pb::GetShipmentRequest { id: draft.id });
    request
        .metadata_mut()
        .insert("x-request-id", request_id.parse().unwrap());
    stack.client().await.get_shipment(request).await.unwrap();
    stack.stop_shipment().await;

    let ours = |span: &Span| attr(&span.attributes, "request_id") == request_id;
    collector
        .until("the GetShipment span", || collector.all().iter().any(ours))
        .await;
    let spans = collector.all();
    let span = spans.iter().find(|span| ours(span)).unwrap();
    assert!(
        span.parent_span_id.is_empty(),
        "a new trace has a root span"
    );
    assert_eq!(attr(&span.attributes, "rpc.method"), "GetShipment");
    let trace = hex(&span.trace_id);
    let logs = collector.logs.contents();
    let finished = logs
        .lines()
        .find(|line| line.contains("rpc finished") && line.contains(&request_id))
        .unwrap();
    assert!(
        finished.contains(&format!("\"trace_id\":\"{trace}\"")),
        "{finished}"
    );
}
