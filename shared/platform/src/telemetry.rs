//! Logs and per-call context: JSON `tracing` output, and a tower layer that gives every call a
//! request id (taken from `x-request-id` or made up), a trace id (from a W3C `traceparent`
//! header, or new), a span carrying both, and one log line when the call ends. A service that
//! calls others passes the trace id on (see `current_trace_id`), so one trace id follows a
//! request across services in the logs.
//!
//! Traces: with `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` set (e.g.
//! `http://collector:4317`), spans also go to that OTLP/gRPC collector as service
//! `OTEL_SERVICE_NAME` (default: the binary's name), each call's span a child of its caller's
//! (see [`crate::otel`]); unset, nothing is exported.
//!
//! Nothing here logs a request or response body, or any header but the request id: bodies and
//! the `authorization` header hold passwords and tokens.

use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use http::{HeaderMap, HeaderValue, Request, Response};
use tracing::{Instrument, Span};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, fmt::MakeWriter};

use crate::otel;

/// Header that carries the request id in both directions.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The W3C trace-context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

tokio::task_local! {
    static REQUEST_ID: String;
    static TRACE_ID: String;
}

/// The id of the call being served by this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// The trace id (32 lower-case hex digits) of the call being served by this task, if any.
pub fn current_trace_id() -> Option<String> {
    TRACE_ID.try_with(Clone::clone).ok()
}

/// The trace id of a valid `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, not all zeros).
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    match parts.as_slice() {
        [version, trace, parent, flags]
            if hex(version, 2)
                && *version != "ff"
                && hex(trace, 32)
                && hex(parent, 16)
                && hex(flags, 2)
                && trace.bytes().any(|b| b != b'0') =>
        {
            Some((*trace).to_owned())
        }
        _ => None,
    }
}

/// `bytes` random bytes as lower-case hex (a new trace or span id).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The OS source failing is not worth failing a call over: the id only correlates logs.
    if getrandom::fill(&mut buf).is_err() {
        buf = uuid::Uuid::now_v7().as_bytes()[..bytes.min(16)].to_vec();
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(2 * buf.len());
    for b in buf {
        hex.push(char::from(HEX[usize::from(b >> 4)]));
        hex.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    hex
}

/// Installs the global subscriber: JSON lines to stdout, filtered by `RUST_LOG` (default `info`),
/// and spans to an OTLP collector when one is configured (see the module's note). Calling it
/// twice keeps the first subscriber.
pub fn init(json: bool) {
    init_with_writer(json, std::io::stdout);
}

/// Like [`init`], writing to `writer`: tests capture the logs to check what never appears in them.
pub fn init_with_writer<W>(json: bool, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // PostgreSQL notices ("already exists, skipping") are not news at info level.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = if json {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        fmt.boxed()
    };
    let (provider, otel_error) = match otel::provider_from_env() {
        Ok(provider) => (provider, None),
        Err(err) => (None, Some(err)),
    };
    let result = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(provider.as_ref().map(otel::layer))
        .try_init();
    // Already initialised (a second server in the same test process): keep the first, and its
    // provider; an unused one shuts down as it is dropped.
    if let (Ok(()), Some(provider)) = (result, provider) {
        otel::install(provider);
    }
    if let Some(err) = otel_error {
        tracing::warn!(error = format!("{err:#}"), "not exporting traces");
    }
}

/// Tower layer that assigns request ids and logs each call's outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service made by [`RequestIdLayer`].
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, RB> tower::Service<Request<B>> for RequestIdService<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let request_id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_acceptable_request_id(v))
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            request.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let method = request.uri().path().to_owned();
        let (span, trace_id) = call_span(&method, &request_id, request.headers());
        let outcome_span = span.clone();
        // Clone-and-swap: the clone is ready only if polled; the ready one serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let id_for_scope = request_id.clone();
        Box::pin(
            REQUEST_ID
                .scope(
                    id_for_scope,
                    TRACE_ID.scope(trace_id, async move {
                        let started = Instant::now();
                        let result = inner.call(request).await;
                        // Whole microseconds: a float product would log artifacts such as
                        // 107.34574500000001, noise that can even look like an id or a number.
                        let elapsed_ms = started.elapsed().as_micros() as f64 / 1000.0;
                        match &result {
                            Ok(response) => {
                                // Errors travel as trailers-only responses, so the code is in the headers;
                                // a successful unary call carries it in the trailers as 0.
                                let code = response
                                    .headers()
                                    .get("grpc-status")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("0")
                                    .to_owned();
                                otel::record_status(&outcome_span, &code);
                                tracing::info!(grpc_code = %code, elapsed_ms, "rpc finished");
                                crate::metrics::global().record_call(
                                    &method,
                                    &code,
                                    elapsed_ms / 1000.0,
                                );
                            }
                            Err(err) => {
                                otel::record_transport_error(&outcome_span);
                                tracing::warn!(error = %err, elapsed_ms, "rpc transport error")
                            }
                        }
                        result.map(|mut response| {
                            if let Ok(value) = HeaderValue::from_str(&request_id) {
                                response.headers_mut().insert(REQUEST_ID_HEADER, value);
                            }
                            response
                        })
                    }),
                )
                .instrument(span),
        )
    }
}

/// The span of one served call and the trace id it logs. While traces are exported the span is
/// an OpenTelemetry server span continuing the caller's trace, and its trace id is that span's;
/// otherwise the trace id is the caller's `traceparent`'s, or new.
fn call_span(method: &str, request_id: &str, headers: &HeaderMap) -> (Span, String) {
    let incoming_or_new = || {
        headers
            .get(TRACEPARENT_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(trace_id_of)
            .unwrap_or_else(|| random_hex(16))
    };
    if otel::enabled() {
        let span = otel::server_span(method, request_id);
        let trace_id = otel::continue_trace(&span, headers).unwrap_or_else(incoming_or_new);
        span.record("trace_id", trace_id.as_str());
        return (span, trace_id);
    }
    let trace_id = incoming_or_new();
    let span = tracing::info_span!(
        "rpc",
        %method,
        request_id = %request_id,
        trace_id = %trace_id,
        user_id = tracing::field::Empty
    );
    (span, trace_id)
}

/// A caller-supplied request id is echoed only if it is short and printable, so logs stay clean.
fn is_acceptable_request_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_gives_its_trace_id_and_a_bad_one_none() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            trace_id_of(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(),
            Some(id)
        );
        assert_eq!(
            trace_id_of("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(
            trace_id_of(&format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase())),
            None
        );
        assert_eq!(trace_id_of("garbage"), None);
        let id = random_hex(16);
        assert_eq!(id.len(), 32);
        assert!(trace_id_of(&format!("00-{id}-00f067aa0ba902b7-01")).is_some());
    }

    #[test]
    fn request_ids_with_odd_characters_are_replaced() {
        assert!(is_acceptable_request_id(
            "0192a4c2-1f0e-7c3d-9d1a-3f1e2d3c4b5a"
        ));
        assert!(!is_acceptable_request_id("line\nbreak"));
        assert!(!is_acceptable_request_id(&"x".repeat(65)));
        assert!(!is_acceptable_request_id(""));
    }
}
