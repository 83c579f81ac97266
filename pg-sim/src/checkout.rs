//! The buyer's side: a checkout page with Pay and Decline, no key needed (it is a browser).
//! Plain HTML forms, no script, so a browser test can click through it.

use crate::{
    AppState,
    payment::{Action, Payment, Status},
};
use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/checkout/{id}", get(show_checkout))
        .route("/checkout/{id}/confirm", post(confirm_checkout))
        .route("/checkout/{id}/decline", post(decline_checkout))
}

async fn show_checkout(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let Some(p) = s.ledger().payments.get(id.as_str()).cloned() else {
        return not_found(&id);
    };
    let summary = format!(
        r#"<dl><dt>Order</dt><dd id="order-id">{}</dd><dt>Amount</dt><dd id="amount">{} {}</dd></dl>"#,
        escape(&p.order_id),
        grouped(p.amount),
        escape(&p.currency),
    );
    let body = if p.status == Status::Ready {
        let id = escape(p.id.as_str());
        format!(
            r#"{summary}<form method="post" action="/checkout/{id}/confirm"><button id="confirm" type="submit">Pay</button></form><form method="post" action="/checkout/{id}/decline"><button id="decline" type="submit" class="secondary">Decline</button></form>"#
        )
    } else {
        format!("{summary}{}", result_line(&p))
    };
    page(StatusCode::OK, "Checkout", &body)
}

/// Pays, or declines when `declineAll` is set.
async fn confirm_checkout(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let action = if s.settings().decline_all { Action::Decline } else { Action::Capture };
    finish(&s, &id, action)
}

async fn decline_checkout(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    finish(&s, &id, Action::Decline)
}

/// The buyer's answer: back to the merchant's `returnUrl` with the result, or a result page.
fn finish(s: &AppState, id: &str, action: Action) -> Response {
    let payment = match s.transition(id, action) {
        None => return not_found(id),
        Some(Err(status)) => {
            let line = format!(
                r#"<p id="result" data-status="{0}">This payment is {0} already; it cannot be paid or declined now.</p>"#,
                status.as_str()
            );
            return page(StatusCode::CONFLICT, "Checkout", &line);
        }
        // A replayed POST (the buyer pressed Back) would change nothing: `transition` refuses
        // anything but READY for these actions, so `changed` is always true here.
        Some(Ok(payment)) => payment,
    };
    match payment.return_url.as_deref().and_then(|raw| reqwest::Url::parse(raw).ok()) {
        Some(mut url) => {
            // `query_pairs_mut` keeps the merchant's own query and fragment.
            url.query_pairs_mut()
                .append_pair("paymentId", payment.id.as_str())
                .append_pair("status", payment.status.as_str());
            (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string())]).into_response()
        }
        None => page(StatusCode::OK, "Checkout", &result_line(&payment)),
    }
}

fn result_line(p: &Payment) -> String {
    let status = p.status.as_str();
    format!(r#"<p id="result" data-status="{status}">Payment {}: {status}</p>"#, escape(p.id.as_str()))
}

fn not_found(id: &str) -> Response {
    let body = format!(r#"<p id="result">There is no payment {}.</p>"#, escape(id));
    page(StatusCode::NOT_FOUND, "Checkout", &body)
}

/// A whole page; the CSP allows the inline style and forms posting anywhere (the redirect to
/// the merchant counts as the form's target in some browsers), and nothing else.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · pg-sim</title><style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}dt{{color:#666}}dd{{margin:0 0 1rem;font-size:1.25rem}}button{{width:100%;padding:.75rem;margin:.25rem 0;font-size:1rem;border:0;border-radius:.5rem;background:#3182f6;color:#fff}}button.secondary{{background:#e5e8eb;color:#333}}</style></head><body><h1>{title}</h1><p><small>pg-sim test gateway: no real money moves.</small></p>{body}</body></html>"#
    );
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action *"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Text made safe to put in HTML: the order id is the merchant's, the path id the browser's.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `50000` as `50,000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_groups() {
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!([1, 999, 1000, 50000, 1234567].map(grouped), ["1", "999", "1,000", "50,000", "1,234,567"]);
    }
}
