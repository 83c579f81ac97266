//! An `https://` platform: deliveries go over TLS (rustls), to a real TLS server here whose
//! certificate (`tls/cert.pem`, self-signed for 127.0.0.1) is trusted only when
//! `TICKETING_EXTERNAL_DATA_CA_FILE` names it.

use crate::{SECRET, Service, fast};
use bytes::Bytes;
use external_data::DeliverySettings;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/tls/cert.pem");
const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/tls/key.pem");

/// What the TLS platform received: each request's headers and body.
type Got = Arc<Mutex<Vec<(hyper::HeaderMap, Bytes)>>>;

/// A TLS server on 127.0.0.1 answering 200 to every request; its `https://` URL.
async fn tls_platform() -> (String, Got) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(CERT).unwrap().collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(KEY).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://127.0.0.1:{}/deliveries", listener.local_addr().unwrap().port());
    let got: Got = Arc::default();
    let record = got.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, record) = (acceptor.clone(), record.clone());
            tokio::spawn(async move {
                // A client that does not trust the certificate ends the handshake here.
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = service_fn(move |req: Request<Incoming>| {
                    let record = record.clone();
                    async move {
                        let headers = req.headers().clone();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        record.lock().unwrap().push((headers, body));
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (url, got)
}

#[tokio::test]
async fn an_https_platform_gets_its_delivery_over_tls_once_its_certificate_is_trusted() {
    let (url, got) = tls_platform().await;
    let trusted = Service::delivering_to(&url, fast(), &[("TICKETING_EXTERNAL_DATA_CA_FILE", CERT)]).await;
    let event = trusted.complete().await;
    let delivered = trusted.wait_status(event.payload.reservation_id, "DELIVERED").await;
    assert_eq!(delivered["attempts"], 1, "{delivered}");
    let received = got.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (headers, body) = &received[0];
    standardwebhooks::Webhook::from_bytes(SECRET.as_bytes().to_vec())
        .unwrap()
        .verify(body, headers)
        .expect("signed as Standard Webhooks does");
    let body: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["reservationId"], serde_json::json!(event.payload.reservation_id));

    // Without the CA file the certificate is no one the system trusts: nothing is delivered,
    // and the delivery log says why.
    let one_try = DeliverySettings { max_attempts: 1, ..fast() };
    let untrusted = Service::delivering_to(&url, one_try, &[]).await;
    let event = untrusted.complete().await;
    let failed = untrusted.wait_status(event.payload.reservation_id, "FAILED").await;
    let error = failed["lastError"].as_str().unwrap_or_default();
    assert!(error.starts_with("TLS with 127.0.0.1") && error.contains("certificate"), "{failed}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(got.lock().unwrap().len(), 1, "the untrusted attempt sent nothing");
}
