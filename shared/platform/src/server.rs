//! Server bootstrap: every service serves its routes behind the same layers (request id and
//! logging outermost, then authentication), next to gRPC health and server reflection, from a
//! listener the caller bound, optionally over TLS or mutual TLS.
//!
//! Shutdown: when the shutdown future resolves, health turns NOT_SERVING, the listener stops
//! accepting, and in-flight calls get `grace` to finish; the spans that ended are then flushed
//! to the trace collector (when there is one) before the server returns.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::auth::AuthLayer;
use crate::telemetry::RequestIdLayer;

/// Everything but the routes that a server needs.
pub struct ServeOptions {
    /// TLS settings; `None` serves plaintext.
    pub tls: Option<ServerTlsConfig>,
    /// The authentication layer with the service's open methods.
    pub auth: AuthLayer,
    /// Health reporter from [`health`], shared with the database watcher.
    pub health: HealthReporter,
    /// The gRPC service names (`logistics.identity.v1.IdentityService`) whose health to report.
    pub services: Vec<&'static str>,
    /// How long in-flight calls may run after shutdown begins.
    pub grace: Duration,
}

/// A health reporter and routes holding the `grpc.health.v1.Health` service it drives; the
/// service adds its own to these routes. Every service starts NOT_SERVING until something
/// (usually [`crate::db::watch_health`]) says otherwise.
pub async fn health() -> (HealthReporter, Routes) {
    let (reporter, service) = tonic_health::server::health_reporter();
    // tonic-health starts the whole server ("") as SERVING; nothing is known yet.
    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    (reporter, Routes::new(service))
}

/// Serves `routes` (from [`health`], plus the service's own) and reflection on `listener` until
/// `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Reflection lists only what this server hosts, though the descriptor set holds every
    // package of the platform (so that message types of other services still resolve).
    let reflection = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(logistics_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for name in &options.services {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let all = routes
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let mut builder = Server::builder();
    if let Some(tls) = options.tls {
        builder = builder.tls_config(tls)?;
    }
    let layers = tower::ServiceBuilder::new()
        .layer(RequestIdLayer)
        .layer(options.auth)
        .into_inner();

    let reporter = options.health.clone();
    let services = options.services.clone();
    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, draining in-flight calls");
        reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in &services {
            reporter
                .set_service_status(*name, ServingStatus::NotServing)
                .await;
        }
        let _ = draining_tx.send(());
    };

    let server = builder
        .layer(layers)
        .add_routes(all)
        .serve_with_incoming_shutdown(accepted(listener), shutdown);
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        () = async {
            let _ = draining_rx.await;
            tokio::time::sleep(options.grace).await;
        } => {
            tracing::warn!(grace = ?options.grace, "calls still running after the grace period; stopping anyway");
        }
    }
    crate::otel::flush().await;
    Ok(())
}

/// Connections accepted on `listener` with `TCP_NODELAY` (a bound listener gets none of the
/// builder's socket options): without it, a response larger than one segment waits for the
/// peer's delayed ACK, 40 ms on Linux, on every call. Keep-alive finds dead peers.
fn accepted(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio_stream::StreamExt as _;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_do_not_wait_for_delayed_acks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = accepted(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let server_side = incoming.next().await.unwrap().unwrap();
        assert!(server_side.nodelay().unwrap());
    }
}
