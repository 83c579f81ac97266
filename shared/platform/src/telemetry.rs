//! `tracing` with OpenTelemetry: every span gets a W3C trace id; spans are exported over OTLP
//! only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The trace context helpers here are the one
//! piece of code that moves `traceparent` in and out of HTTP requests, outbox rows and NATS headers.

use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// Keeps the tracer provider alive; flush it on shutdown.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Flushes spans not yet exported.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("telemetry shutdown: {e}");
        }
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// Installs the global subscriber (fmt + OpenTelemetry) and the W3C propagator.
/// A second call in the same process (tests) keeps the first subscriber.
pub fn init(service_name: &str, otlp_endpoint: Option<&str>) -> Result<Telemetry, TelemetryError> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service_name.to_owned()).build());
    if otlp_endpoint.is_some() {
        // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT itself and appends /v1/traces.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    global::set_tracer_provider(provider.clone());
    let tracer = provider.tracer("ticketing");

    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,async_nats=warn,tower_http=warn"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().compact().with_writer(std::io::stderr))
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init();
    Ok(Telemetry { provider })
}

/// The W3C trace context of the current span, as header pairs (`traceparent`, `tracestate`).
pub fn current_trace_headers() -> Vec<(String, String)> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut carrier = HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut MapCarrier(&mut carrier)));
    let mut pairs: Vec<_> = carrier.into_iter().collect();
    pairs.sort();
    pairs
}

/// Makes `span` a child of the trace named by `traceparent`/`tracestate` in `headers`, if any.
pub fn set_parent_from<'a>(span: &tracing::Span, headers: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let carrier: HashMap<String, String> =
        headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned())).collect();
    if !carrier.contains_key("traceparent") {
        return;
    }
    let cx = global::get_text_map_propagator(|p| p.extract(&ReadCarrier(&carrier)));
    let _ = span.set_parent(cx);
}

/// The trace id of `span` as 32 hex digits (all zeros when it has none).
pub fn trace_id(span: &tracing::Span) -> String {
    span.context().span().span_context().trace_id().to_string()
}

struct MapCarrier<'a>(&'a mut HashMap<String, String>);

impl Injector for MapCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct ReadCarrier<'a>(&'a HashMap<String, String>);

impl Extractor for ReadCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_survives_a_round_trip_through_headers() {
        let _t = init("test", None).unwrap();
        let producer = tracing::info_span!("producer");
        let headers = producer.in_scope(current_trace_headers);
        assert!(headers.iter().any(|(k, _)| k == "traceparent"), "{headers:?}");

        let consumer = tracing::info_span!("consumer");
        set_parent_from(&consumer, headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(trace_id(&consumer), trace_id(&producer));
        assert_ne!(trace_id(&producer), "00000000000000000000000000000000");
    }
}
