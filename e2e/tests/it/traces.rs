//! One trace per saga: every span a saga makes — its HTTP requests, each outbox publish, each
//! consume and what each hop writes — lands in the trace its client started, even when the
//! consumers apply the saga's events in batches. The spans are collected by a real OTLP/HTTP
//! endpoint run here (protobuf, decoded with `opentelemetry-proto`).

use crate::scenario_needing;
use contracts::{ReservationId, UserId};
use e2e::{api::id_of, deployment::Need};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use reqwest::Method;
use serde_json::json;
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

/// A span as the receiver got it.
#[derive(Clone, Debug)]
struct Got {
    trace: String,
    id: String,
    parent: String,
    name: String,
    service: String,
    attributes: HashMap<String, String>,
    /// The trace ids of the spans it links to.
    links: Vec<String>,
}

type Spans = Arc<Mutex<Vec<Got>>>;

/// An OTLP/HTTP trace receiver on 127.0.0.1; answers its endpoint (the exporters append
/// `/v1/traces`) and what it received.
async fn otlp_receiver() -> (String, Spans) {
    let got: Spans = Arc::default();
    let record = got.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let record = record.clone();
            async move {
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return (axum::http::StatusCode::BAD_REQUEST, Vec::new());
                };
                let mut spans = record.lock().unwrap();
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .as_ref()
                        .and_then(|r| text_of(&r.attributes, "service.name"))
                        .unwrap_or_default();
                    for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                        spans.push(Got {
                            trace: hex(&span.trace_id),
                            id: hex(&span.span_id),
                            parent: hex(&span.parent_span_id),
                            name: span.name.clone(),
                            service: service.clone(),
                            attributes: span
                                .attributes
                                .iter()
                                .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?)?)))
                                .collect(),
                            links: span.links.iter().map(|l| hex(&l.trace_id)).collect(),
                        });
                    }
                }
                (axum::http::StatusCode::OK, ExportTraceServiceResponse::default().encode_to_vec())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &AnyValue) -> Option<String> {
    match value.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn text_of(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| text(kv.value.as_ref()?))
}

/// One saga: its user, its reservation, and the trace its client started.
struct Saga {
    user: UserId,
    id: ReservationId,
    trace: String,
    /// The client's own span, the parent of the saga's first spans.
    client_span: String,
}

impl Saga {
    fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace, self.client_span)
    }
}

/// 24 sagas, each with its own trace, run to CONFIRMED; the seat service is stopped while they
/// are requested, so that it takes their requests in batches when it starts. Each saga's trace
/// then holds every span it made, as one tree under the client's span.
#[tokio::test]
async fn every_span_of_a_saga_is_in_its_one_trace_while_consumers_batch() {
    let (endpoint, spans) = otlp_receiver().await;
    let settings = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "65536"),
    ];
    let Some(mut s) = scenario_needing(&settings, &[Need::StopServices]).await else { return };
    let (_, schedule) = s.api.schedule(50, 1_000).await.unwrap();
    let users: Vec<UserId> = (0..24).map(|_| UserId::new()).collect();
    for user in &users {
        s.api.charge(*user, 10_000).await.unwrap();
    }

    s.stop_service("seat").await.unwrap();
    let requested = users.iter().enumerate().map(|(n, user)| {
        let api = &s.api;
        async move {
            let trace = hex(uuid::Uuid::new_v4().as_bytes());
            let client_span = trace[..16].to_owned();
            let seats = [2 * n as i32 + 1, 2 * n as i32 + 2];
            let queue = api.admitted(*user).await.unwrap();
            let traceparent = format!("00-{trace}-{client_span}-01");
            let headers = [("X-Queue-Token", queue.as_str()), ("traceparent", traceparent.as_str())];
            let body = json!({"scheduleId": schedule, "seatNos": seats});
            let answer = api
                .send(Method::POST, "/reservations", Some(&api.token(*user)), Some(body), &headers)
                .await
                .unwrap();
            assert_eq!(answer.status, 202, "{answer:?}");
            Saga { user: *user, id: id_of(&answer).unwrap(), trace, client_span }
        }
    });
    let sagas: Vec<Saga> = futures::future::join_all(requested).await;
    s.start_service("seat").await.unwrap();

    let paid = sagas.iter().map(|saga| {
        let api = &s.api;
        async move {
            api.eventually("the reservation HELD", || async {
                Ok(api.reservation(saga.user, saga.id).await?["status"] == "HELD")
            })
            .await
            .unwrap();
            let queue = api.admitted(saga.user).await.unwrap();
            let traceparent = saga.traceparent();
            let headers = [("X-Queue-Token", queue.as_str()), ("traceparent", traceparent.as_str())];
            let path = format!("/reservations/{}/payment", saga.id);
            let answer =
                api.send(Method::POST, &path, Some(&api.token(saga.user)), None, &headers).await.unwrap();
            assert_eq!(answer.status, 202, "{answer:?}");
            api.eventually("the reservation CONFIRMED", || async {
                Ok(api.reservation(saga.user, saga.id).await?["status"] == "CONFIRMED")
            })
            .await
            .unwrap();
        }
    });
    futures::future::join_all(paid).await;

    // Every hop of a saga: the events published, and each consumer that takes one.
    let published = [
        "reservation.0.requested",
        "seat.0.reserved",
        "reservation.0.payment_requested",
        "wallet.0.payment.completed",
        "reservation.0.completed",
    ];
    let consumed = [
        ("seat", "ReservationRequested"),
        ("reservation", "SeatReserved"),
        ("wallet", "PaymentRequested"),
        ("reservation", "PaymentCompleted"),
        ("seat", "ReservationCompleted"),
        ("queue", "ReservationCompleted"),
        ("wallet-history", "PaymentCompleted"),
        ("ranking", "ReservationCompleted"),
    ];
    let mut missing = Vec::new();
    for _ in 0..150 {
        let got = spans.lock().unwrap().clone();
        missing = sagas.iter().flat_map(|saga| gaps(saga, &got, &published, &consumed)).collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        missing.is_empty(),
        "spans missing from their saga's trace (first of {}): {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );

    // The seat service took the requests in batches: a batch's span links to the traces of
    // the messages it applied, while what it wrote went to each message's own trace.
    let got = spans.lock().unwrap().clone();
    let traces: HashSet<&str> = sagas.iter().map(|saga| saga.trace.as_str()).collect();
    let linked: HashSet<&str> = got
        .iter()
        .filter(|span| span.name == "consume batch" && span.service == "seat")
        .flat_map(|span| span.links.iter().map(String::as_str))
        .filter(|trace| traces.contains(trace))
        .collect();
    assert!(linked.len() > 1, "the seat service applied no two of the sagas' requests in one batch");

    // Every database statement has a span inside the span that ran it (a request, a consume, a
    // batch write), with its text: the seat service's holds among them.
    let statements: Vec<&Got> = got.iter().filter(|span| span.name.starts_with("sea_orm.")).collect();
    let held = statements.iter().any(|span| {
        span.service == "seat"
            && span.attributes.get("db.statement").is_some_and(|q| q.contains("UPDATE seat.seats"))
    });
    assert!(held, "no statement span of the seat service's holds among {} statement spans", statements.len());
    let roots: Vec<&str> =
        statements.iter().filter(|span| span.parent.is_empty()).map(|span| span.name.as_str()).collect();
    assert!(roots.is_empty(), "statement spans outside any span: {roots:?}");
    s.check().await.unwrap();
}

/// What `saga`'s trace lacks among `got`: a span whose parent is not in the trace (a broken
/// link), the HTTP requests, a publish of each of `published`, and a consume of each of
/// `consumed` (by service and event type).
fn gaps(saga: &Saga, got: &[Got], published: &[&str], consumed: &[(&str, &str)]) -> Vec<String> {
    let trace: Vec<&Got> = got.iter().filter(|span| span.trace == saga.trace).collect();
    let ids: HashSet<&str> = trace.iter().map(|span| span.id.as_str()).collect();
    let mut gaps = Vec::new();
    for span in &trace {
        if span.parent != saga.client_span && !ids.contains(span.parent.as_str()) {
            gaps.push(format!(
                "{}: {} of {} has a parent outside the trace (not yet received?)",
                saga.id, span.name, span.service
            ));
        }
    }
    let http = trace
        .iter()
        .filter(|span| {
            span.name == "http" && span.attributes.get("method").map(String::as_str) == Some("POST")
        })
        .count();
    if http < 2 {
        gaps.push(format!("{}: {http} of its 2 POST requests", saga.id));
    }
    for subject in published {
        let found = trace.iter().any(|span| {
            span.name == "publish" && span.attributes.get("subject").is_some_and(|s| s.ends_with(subject))
        });
        if !found {
            gaps.push(format!("{}: no publish of {subject}", saga.id));
        }
    }
    for (service, kind) in consumed {
        let found = trace.iter().any(|span| {
            span.name == "consume"
                && span.service == *service
                && span.attributes.get("event_type").map(String::as_str) == Some(*kind)
        });
        if !found {
            gaps.push(format!("{}: {service} consuming {kind}", saga.id));
        }
    }
    gaps
}
