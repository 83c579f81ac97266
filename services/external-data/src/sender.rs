//! How a delivery goes out: one HTTP/1.1 POST on a connection of its own, over TLS for an
//! `https://` platform. TLS is rustls with the ring provider (the one the rest of the process
//! uses), trusting the system's roots and, when set, the certificates of
//! `TICKETING_EXTERNAL_DATA_CA_FILE` (a private CA's, say). Redirects are answers like any other
//! non-2xx: following one would send signed data where nobody configured it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use std::{fmt, path::Path, sync::Arc};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};

/// What the platform answered: its status and, for a failure, the start of its body.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub detail: Option<String>,
}

/// Sends deliveries.
#[derive(Clone)]
pub struct Sender {
    tls: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sender")
    }
}

impl Sender {
    /// A sender trusting the system's roots and those of `extra_roots` (a PEM file).
    pub fn new(extra_roots: Option<&Path>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        // A root the system store holds that rustls cannot read is skipped, as browsers do.
        let (_added, _skipped) =
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if let Some(path) = extra_roots {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{}: no certificate in it", path.display()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        let mut tls =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { tls: Arc::new(tls) })
    }

    /// POSTs `body` (JSON) with `headers` to `url`; reads at most `detail_bytes` of a failed
    /// answer's body. The caller bounds the whole exchange, connecting included, with its own
    /// timeout.
    pub async fn post(
        &self,
        url: &reqwest::Url,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        detail_bytes: usize,
    ) -> Result<Answer, String> {
        let host = url.host_str().ok_or("the URL has no host")?;
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let mut request = Request::post(target)
            .header(header::HOST, authority)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, concat!("ticketing-external-data/", env!("CARGO_PKG_VERSION")));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| e.to_string())?;
        match url.scheme() {
            "https" => {
                // An IP address is checked against the certificate's IP names, a name against its DNS names.
                let name =
                    ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_owned())
                        .map_err(|e| format!("{host}: {e}"))?;
                let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {host}:{port} failed: {e}"))?;
                exchange(tls, request, detail_bytes).await
            }
            "http" => exchange(tcp, request, detail_bytes).await,
            other => Err(format!("cannot deliver over {other}://")),
        }
    }
}

/// Sends `request` over `io` and reads the answer.
async fn exchange<IO>(io: IO, request: Request<Full<Bytes>>, detail_bytes: usize) -> Result<Answer, String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(|e| e.to_string())?;
    // The connection runs until the answer is read and the sender dropped.
    let connection = tokio::spawn(connection);
    let answer = async {
        let mut res = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        if res.status().is_success() {
            return Ok(Answer { status, detail: None });
        }
        let mut bytes = Vec::new();
        while bytes.len() < detail_bytes {
            match res.body_mut().frame().await {
                Some(Ok(frame)) => bytes.extend_from_slice(frame.data_ref().map_or(&[][..], |d| &d[..])),
                Some(Err(_)) | None => break,
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let text: String = text.chars().take(detail_bytes).collect();
        let text = text.trim();
        Ok(Answer { status, detail: (!text.is_empty()).then(|| text.to_owned()) })
    }
    .await;
    drop(sender);
    connection.abort();
    answer
}
