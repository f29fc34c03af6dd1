//! OpenTelemetry traces over OTLP/gRPC, off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set. This module owns the process's one tracer provider, the
//! layer that turns `tracing` spans into OpenTelemetry spans, and the W3C trace-context glue: a
//! served call's span continues the caller's `traceparent`, and a call made to another service
//! sends the current span as its parent. It decides nothing about logs ([`crate::telemetry`]
//! does); while export is off, none of it does anything.

use std::collections::HashMap;
use std::sync::OnceLock;

use anyhow::Context as _;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{Filtered, LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;

/// Where to export, most specific first (the order the OTLP exporter itself reads them in).
pub const ENDPOINT_VARS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The service name reported with every span; the binary's name when unset.
pub const SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";

/// The provider once export is on: kept to flush it, never replaced.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The tracing layer that exports spans through `provider`.
pub(crate) type OtelLayer<S> = Filtered<
    tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
    Targets,
    S,
>;

/// Whether spans are being exported.
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// A provider exporting to the configured endpoint in batches, or `None` when no endpoint is
/// configured. Must run on a tokio runtime that lives as long as the process: the exporter's
/// gRPC connection is driven there, while the SDK batches on a thread of its own.
pub(crate) fn provider_from_env() -> anyhow::Result<Option<SdkTracerProvider>> {
    let Some(endpoint) = configured_endpoint() else {
        return Ok(None);
    };
    tokio::runtime::Handle::try_current().context(
        "an OTLP endpoint is set, but telemetry was initialised outside a tokio runtime",
    )?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone());
    if endpoint.starts_with("https://") {
        exporter =
            exporter.with_tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots());
    }
    let exporter = exporter
        .build()
        .with_context(|| format!("building the OTLP exporter for {endpoint}"))?;
    let resource = Resource::builder()
        .with_service_name(service_name())
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// The layer exporting through `provider`. The exporter's own stack (tonic, hyper, h2, tower)
/// and the SDK's internal logs are left out, or exporting a batch would make the next one.
pub(crate) fn layer<S>(provider: &SdkTracerProvider) -> OtelLayer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let own_stack = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(
            ["opentelemetry", "tonic", "hyper", "h2", "tower"].map(|t| (t, LevelFilter::OFF)),
        );
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("logistics-platform"))
        .with_filter(own_stack)
}

/// Keeps `provider` as the process's once its layer is installed, so that [`enabled`] says so
/// and [`flush`] reaches it. The first one stays: a later one shuts down as it is dropped.
pub(crate) fn install(provider: SdkTracerProvider) {
    let _ = PROVIDER.set(provider);
}

/// The span of a served call (`path` is `/package.Service/Method`) with the OpenTelemetry
/// server-span name, kind and `rpc.*` attributes, besides the fields every call's span logs.
pub(crate) fn server_span(path: &str, request_id: &str) -> Span {
    let name = path.trim_start_matches('/');
    let (service, method) = name.rsplit_once('/').unwrap_or((name, ""));
    tracing::info_span!(
        "rpc",
        method = %path,
        request_id = %request_id,
        trace_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = tracing::field::Empty,
    )
}

/// Records a served call's gRPC status `code` on its [`server_span`]; a code that means the
/// server failed (not the caller) marks the span as an error, as the RPC conventions ask.
pub(crate) fn record_status(span: &Span, code: &str) {
    let Ok(code) = code.parse::<i64>() else {
        return;
    };
    span.record("rpc.grpc.status_code", code);
    if is_server_error(code) {
        span.record("otel.status_code", "ERROR");
    }
}

/// Marks a call that ended without any gRPC status (a transport error) as an error.
pub(crate) fn record_transport_error(span: &Span) {
    span.record("otel.status_code", "ERROR");
}

/// UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS: the codes
/// that the RPC semantic conventions count as a server span's error.
fn is_server_error(code: i64) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// Makes `span`, a served call's, the child of the caller's `traceparent` in `headers` (or the
/// root of a new trace) and returns its trace id; `None` while export is off or when `span` is
/// filtered out.
pub(crate) fn continue_trace(span: &Span, headers: &http::HeaderMap) -> Option<String> {
    if !enabled() {
        return None;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    span.set_parent(parent).ok()?;
    trace_id(span)
}

/// The trace id (32 lower-case hex digits) of `span`'s OpenTelemetry span, if it has one.
pub fn trace_id(span: &Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = span.context();
    let otel = cx.span();
    let context = otel.span_context();
    context.is_valid().then(|| context.trace_id().to_string())
}

/// The `traceparent` for a call made now to another service: this trace, with the current span
/// as the parent. `None` while export is off or outside any exported span.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut carrier);
    carrier.remove(crate::telemetry::TRACEPARENT_HEADER)
}

/// Exports the spans that have ended and wait in the batch, so that none is lost when a server
/// stops. A flush, not a shutdown: the provider is the process's, and a test process runs
/// several servers on it.
pub async fn flush() {
    let Some(provider) = PROVIDER.get().cloned() else {
        return;
    };
    // Blocks until the batch thread has exported, which needs the runtime that drives the
    // exporter's connection: keep it off the runtime's own threads.
    match tokio::task::spawn_blocking(move || provider.force_flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(error = %err, "flushing spans failed"),
        Err(err) => tracing::warn!(error = %err, "flushing spans failed"),
    }
}

/// The first endpoint variable that is set and not blank.
fn configured_endpoint() -> Option<String> {
    ENDPOINT_VARS.iter().find_map(|name| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// `OTEL_SERVICE_NAME`, else the binary's file name.
fn service_name() -> String {
    std::env::var(SERVICE_NAME_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| {
            std::env::current_exe()
                .ok()?
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "unknown_service".to_owned())
}

/// Reads trace-context headers from an HTTP request.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn while_export_is_off_no_trace_context_is_made_up() {
        // No test of this crate installs a provider.
        let span = tracing::info_span!("rpc");
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(continue_trace(&span, &headers), None);
        assert_eq!(current_traceparent(), None);
    }

    #[test]
    fn the_extractor_reads_the_traceparent_header() {
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", "00-ab-cd-01".parse().unwrap());
        let extractor = HeaderExtractor(&headers);
        assert_eq!(extractor.get("traceparent"), Some("00-ab-cd-01"));
        assert_eq!(extractor.keys(), ["traceparent"]);
    }
}
