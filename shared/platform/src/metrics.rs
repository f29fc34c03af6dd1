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
    service: String,
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    service: String,
    method: String,
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
        let (service, method) = split_path(path);
        let code = code
            .parse::<i32>()
            .map(|n| format!("{:?}", tonic::Code::from(n)))
            .unwrap_or_else(|_| "Unknown".to_owned());
        self.calls
            .get_or_create(&CallLabels {
                service: service.clone(),
                method: method.clone(),
                code,
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

fn split_path(path: &str) -> (String, String) {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once('/') {
        Some((service, method)) => (service.to_owned(), method.to_owned()),
        None => (trimmed.to_owned(), String::new()),
    }
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
}
