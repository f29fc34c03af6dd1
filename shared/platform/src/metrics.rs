//! Prometheus metrics of a service process, served as text on `GET /metrics`:
//!
//! - `rpc_calls_total{service, method, code}`: every gRPC call that finished, by status code
//!   (health and reflection included);
//! - `rpc_duration_seconds{service, method}`: a latency histogram per method;
//! - `db_pool_acquire_seconds{pool}`: how long requests wait for a pooled connection (and the
//!   `BEGIN` that opens their transaction): the pool's waits;
//! - `db_pool_connections{pool, state}` (`idle`, `in_use`) and `db_pool_max_connections{pool}`,
//!   read from the pools at each scrape.
//!
//! - `build_info{version}`: 1, labelled with the platform's version, so a scrape (and `ops
//!   status`) tells which build answers.
//!
//! One registry per process: a test process running several services tells them apart by the
//! `service` and `pool` labels.
//!
//! Method labels come only from the platform's contract (every method of the descriptor sets the
//! servers register, health and reflection included); a call to any other path counts as
//! service and method `unknown`, so a client inventing paths cannot grow the registry without
//! bound. Labels are static strings: recording a call allocates nothing.

use std::collections::HashMap;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    service: &'static str,
    method: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolStateLabels {
    pool: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to about 33 s, doubling.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    durations: Histograms<MethodLabels>,
    acquires: Histograms<PoolLabels>,
    connections: Family<PoolStateLabels, Gauge>,
    max_connections: Family<PoolLabels, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        let durations: Histograms<MethodLabels> = Family::new_with_constructor(latency_buckets);
        let acquires: Histograms<PoolLabels> = Family::new_with_constructor(latency_buckets);
        let connections = Family::<PoolStateLabels, Gauge>::default();
        let max_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "rpc_calls",
            "gRPC calls finished, by service, method and status code",
            calls.clone(),
        );
        registry.register(
            "rpc_duration_seconds",
            "gRPC call latency, by service and method",
            durations.clone(),
        );
        registry.register(
            "db_pool_acquire_seconds",
            "Time to get a pooled connection and open a transaction",
            acquires.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Pooled database connections, idle or in use",
            connections.clone(),
        );
        registry.register(
            "db_pool_max_connections",
            "Largest number of pooled database connections",
            max_connections.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "Always 1, labelled with the version of the build serving",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        Self {
            registry,
            calls,
            durations,
            acquires,
            connections,
            max_connections,
        }
    }

    /// Records a finished call of `path` (`/package.Service/Method`) with gRPC status `code`
    /// (its number as sent in `grpc-status`) after `seconds`.
    pub fn record_call(&self, path: &str, code: &str, seconds: f64) {
        let (service, method) = known_methods()
            .get(path)
            .copied()
            .unwrap_or((UNKNOWN, UNKNOWN));
        self.calls
            .get_or_create(&CallLabels {
                service,
                method,
                code: code_name(code),
            })
            .inc();
        self.durations
            .get_or_create(&MethodLabels { service, method })
            .observe(seconds);
    }

    /// Records how long a request waited for a connection of `pool` (and its `BEGIN`).
    pub fn record_acquire(&self, pool: &str, seconds: f64) {
        self.acquires
            .get_or_create(&PoolLabels {
                pool: pool.to_owned(),
            })
            .observe(seconds);
    }

    /// Reads the pool's current size into the gauges.
    pub fn observe_pool(&self, pool: &PgPool) {
        let name = pool_name(pool);
        let size = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        let gauge = |state| {
            self.connections.get_or_create(&PoolStateLabels {
                pool: name.clone(),
                state,
            })
        };
        gauge("idle").set(idle);
        gauge("in_use").set((size - idle).max(0));
        self.max_connections
            .get_or_create(&PoolLabels { pool: name.clone() })
            .set(i64::from(pool.options().get_max_connections()));
    }

    /// Everything, in the Prometheus / OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The pool's name: the application name its connections carry (the service's name).
pub fn pool_name(pool: &PgPool) -> String {
    pool.connect_options()
        .get_application_name()
        .unwrap_or("unnamed")
        .to_owned()
}

/// The service and method label of a path outside the contract.
const UNKNOWN: &str = "unknown";

/// Every `/package.Service/Method` path of the platform's contract, with its service and method
/// names: built once from the descriptor sets the servers register.
fn known_methods() -> &'static HashMap<&'static str, (&'static str, &'static str)> {
    static KNOWN: OnceLock<HashMap<&'static str, (&'static str, &'static str)>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        use prost::Message as _;
        let sets = [
            logistics_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        let mut known = HashMap::new();
        for set in sets {
            // Compiled into the binary by the build: a set that does not decode is a build bug.
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
                continue;
            };
            for file in set.file {
                for service in &file.service {
                    let service_name: &'static str =
                        leak(format!("{}.{}", file.package(), service.name()));
                    for method in &service.method {
                        let method_name: &'static str = leak(method.name().to_owned());
                        let path = leak(format!("/{service_name}/{method_name}"));
                        known.insert(path, (service_name, method_name));
                    }
                }
            }
        }
        known
    })
}

/// A name kept for the life of the process (the contract's, read once).
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// The name of a gRPC status code sent as its number in `grpc-status`, as tonic spells it.
fn code_name(code: &str) -> &'static str {
    const NAMES: [&str; 17] = [
        "Ok",
        "Cancelled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    code.parse::<usize>()
        .ok()
        .and_then(|n| NAMES.get(n).copied())
        .unwrap_or("Unknown")
}

/// Serves `GET /metrics` on `listener` (with `pools` read at each scrape) until the task is
/// dropped.
pub async fn serve(listener: TcpListener, pools: Vec<PgPool>) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let pools = pools.clone();
            async move {
                let metrics = global();
                for pool in &pools {
                    metrics.observe_pool(pool);
                }
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }
        }),
    );
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_service_method_and_code_name() {
        let metrics = Metrics::new();
        metrics.record_call("/logistics.fleet.v1.FleetService/GetTruck", "0", 0.004);
        metrics.record_call("/logistics.fleet.v1.FleetService/GetTruck", "5", 0.002);
        metrics.record_call("/logistics.fleet.v1.FleetService/GetTruck", "5", 0.003);
        let text = metrics.encode();
        assert!(text.contains(
            "rpc_calls_total{service=\"logistics.fleet.v1.FleetService\",method=\"GetTruck\",code=\"Ok\"} 1"
        ), "{text}");
        assert!(text.contains(
            "rpc_calls_total{service=\"logistics.fleet.v1.FleetService\",method=\"GetTruck\",code=\"NotFound\"} 2"
        ), "{text}");
        assert!(text.contains(
            "rpc_duration_seconds_count{service=\"logistics.fleet.v1.FleetService\",method=\"GetTruck\"} 3"
        ), "{text}");
    }

    #[test]
    fn paths_outside_the_contract_share_one_series() {
        let metrics = Metrics::new();
        for i in 0..50 {
            metrics.record_call(&format!("/made.Up/Method{i}"), "12", 0.001);
        }
        metrics.record_call("/grpc.health.v1.Health/Check", "0", 0.001);
        metrics.record_call("/logistics.fleet.v1.FleetService/GetTruck", "99", 0.001);
        let text = metrics.encode();
        assert!(
            text.contains(
                "rpc_calls_total{service=\"unknown\",method=\"unknown\",code=\"Unimplemented\"} 50"
            ),
            "{text}"
        );
        assert!(!text.contains("made.Up"), "{text}");
        assert!(
            text.contains(
                "rpc_calls_total{service=\"grpc.health.v1.Health\",method=\"Check\",code=\"Ok\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "rpc_calls_total{service=\"logistics.fleet.v1.FleetService\",method=\"GetTruck\",code=\"Unknown\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn every_code_is_named_as_tonic_names_it() {
        for n in 0..17 {
            assert_eq!(
                code_name(&n.to_string()),
                format!("{:?}", tonic::Code::from(n))
            );
        }
        assert_eq!(code_name("x"), "Unknown");
    }
}
