//! `tracing` with OpenTelemetry: every span gets a W3C trace id; spans are exported over OTLP
//! only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The trace context helpers here are the one
//! piece of code that moves `traceparent` in and out of HTTP requests, outbox rows and NATS headers.
//!
//! Log lines are text for people, or JSON for a log pipeline ([`LogFormat::Json`]): one object
//! per line, with the `trace_id` and `span_id` of the span it was logged in, so a line leads to
//! its trace and a trace to its lines.

use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use std::{collections::HashMap, fmt};
use tracing::field::{Field, Visit};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::FilterExt as _,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    layer::SubscriberExt,
    registry::LookupSpan,
    util::SubscriberInitExt,
};

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Compact text, for a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `span`, `trace_id`, `span_id`,
    /// `message` and the event's fields.
    Json,
}

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

/// Installs the global subscriber (log lines as `format` says, and OpenTelemetry) and the W3C
/// propagator. A second call in the same process (tests) keeps the first subscriber.
pub fn init(
    service_name: &str,
    otlp_endpoint: Option<&str>,
    format: LogFormat,
) -> Result<Telemetry, TelemetryError> {
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

    // Each layer has its own filter: the pool's waits are read at a level no log shows, and a
    // statement's span is traced only inside the span that runs it.
    // Statement spans only where traces are exported: elsewhere their callsites stay disabled
    // and cost nothing (made and dropped, they cost about 5% of a hold's throughput).
    let exported = otlp_endpoint.is_some();
    let filter = |statements: bool| {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            let base = "info,sqlx=warn,sea_orm=warn,async_nats=warn,tower_http=warn";
            EnvFilter::new(if statements {
                format!("{base},sea_orm::database=info")
            } else {
                base.to_owned()
            })
        })
    };
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().compact().with_writer(std::io::stderr).boxed(),
        LogFormat::Json => {
            tracing_subscriber::fmt::layer().event_format(JsonLines).with_writer(std::io::stderr).boxed()
        }
    };
    let _ = tracing_subscriber::registry()
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(filter(exported).and(statements_in_spans())),
        )
        .with(lines.with_filter(filter(false)))
        .with(PoolWaits::layer())
        .try_init();
    Ok(Telemetry { provider })
}

/// sea-orm gives every statement a span (`sea_orm.query_all`, .., with `db.statement`, its text
/// without the values). One run inside a request, a consume or a batch write joins that trace;
/// one run outside any span (a relay's claim, a gauge's sample, a sweep) would start a trace of
/// its own every few milliseconds, so it is not traced.
fn statements_in_spans<S>() -> impl tracing_subscriber::layer::Filter<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    const STATEMENTS: &str = "sea_orm::database";
    tracing_subscriber::filter::dynamic_filter_fn(|meta: &tracing::Metadata<'_>, cx| {
        !meta.target().starts_with(STATEMENTS) || cx.lookup_current().is_some()
    })
    .with_callsite_filter(|meta: &'static tracing::Metadata<'static>| {
        if meta.target().starts_with(STATEMENTS) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    })
}

/// The database pool's waits as a histogram, `db_pool_acquire_duration_seconds`: how long each
/// connection the pool handed out was waited for (sqlx reports every one, `pools::connect_db`
/// asks it to). sqlx does not say how many tasks are waiting at a moment; how long they waited
/// is what a saturated pool shows first.
pub struct PoolWaits;

/// sqlx's event for a connection handed out, with `acquired_after_secs`.
const POOL_ACQUIRE: &str = "sqlx::pool::acquire";

impl PoolWaits {
    /// The layer, reading only sqlx's acquire events.
    pub fn layer<S>() -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        PoolWaits.with_filter(
            tracing_subscriber::filter::Targets::new().with_target(POOL_ACQUIRE, tracing::Level::TRACE),
        )
    }
}

impl<S: tracing::Subscriber> Layer<S> for PoolWaits {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Waited(Option<f64>);
        impl Visit for Waited {
            fn record_f64(&mut self, field: &Field, value: f64) {
                if field.name() == "acquired_after_secs" {
                    self.0 = Some(value);
                }
            }
            fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
        }
        let mut waited = Waited(None);
        event.record(&mut waited);
        if let Some(secs) = waited.0 {
            metrics::histogram!("db_pool_acquire_duration_seconds").record(secs);
        }
    }
}

/// [`LogFormat::Json`]'s lines. The trace and span ids are those of the OpenTelemetry context
/// active where the event was logged (entering a span activates its context).
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(span) = ctx.lookup_current() {
            line.insert("span".into(), span.name().into());
        }
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let ids = span.span_context();
        if ids.is_valid() {
            line.insert("trace_id".into(), ids.trace_id().to_string().into());
            line.insert("span_id".into(), ids.span_id().to_string().into());
        }
        event.record(&mut JsonFields(&mut line));
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Puts an event's fields into its JSON line.
struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl Visit for JsonFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// The W3C trace context of the current span, as header pairs (`traceparent`, `tracestate`).
pub fn current_trace_headers() -> Vec<(String, String)> {
    trace_headers(&tracing::Span::current())
}

/// The W3C trace context of `span`, as header pairs (`traceparent`, `tracestate`); none when it
/// has none.
pub fn trace_headers(span: &tracing::Span) -> Vec<(String, String)> {
    let cx = span.context();
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

/// Links `span` to the span `other` (a batch span to each message's, say).
pub fn link(span: &tracing::Span, other: &tracing::Span) {
    let cx = other.context();
    let linked = cx.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
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
        let _t = init("test", None, LogFormat::Text).unwrap();
        let producer = tracing::info_span!("producer");
        let headers = producer.in_scope(current_trace_headers);
        assert!(headers.iter().any(|(k, _)| k == "traceparent"), "{headers:?}");

        let consumer = tracing::info_span!("consumer");
        set_parent_from(&consumer, headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(trace_id(&consumer), trace_id(&producer));
        assert_ne!(trace_id(&producer), "00000000000000000000000000000000");
    }

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
            Ok(b.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_json_line_names_the_trace_and_span_it_was_logged_in() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let tracer = SdkTracerProvider::builder().build().tracer("test");
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer))
            .with(tracing_subscriber::fmt::layer().event_format(JsonLines).with_writer(move || out.clone()));
        let (trace, lines) = tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside any span");
            let span = tracing::info_span!("consume", consumer = "seat__RESERVATION");
            span.in_scope(|| tracing::warn!(reservation = "r-1", n = 3, "released"));
            let text =
                String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
            (trace_id(&span), text)
        });
        let lines: Vec<serde_json::Value> =
            lines.lines().map(|l| serde_json::from_str(l).unwrap_or_default()).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["message"], "outside any span");
        assert!(lines[0].get("trace_id").is_none(), "no span, no trace: {}", lines[0]);
        let line = &lines[1];
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["span"], "consume");
        assert_eq!(line["message"], "released");
        assert_eq!(line["reservation"], "r-1");
        assert_eq!(line["n"], 3);
        assert_ne!(trace, "00000000000000000000000000000000");
        assert_eq!(line["trace_id"], trace.as_str(), "{line}");
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{line}");
    }
}
