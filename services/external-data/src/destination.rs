//! Where deliveries go: the external platform's URL, the key they are signed with, and the
//! roots its TLS certificate may chain to besides the system's, read from
//! `TICKETING_EXTERNAL_DATA_URL`, `TICKETING_EXTERNAL_DATA_SECRET` and
//! `TICKETING_EXTERNAL_DATA_CA_FILE`.

use crate::{deliverer::Target, domain::Signer, sender::Sender};
use platform::config::Vars;

const URL: &str = "TICKETING_EXTERNAL_DATA_URL";
const SECRET: &str = "TICKETING_EXTERNAL_DATA_SECRET";
const CA_FILE: &str = "TICKETING_EXTERNAL_DATA_CA_FILE";

/// The platform deliveries are POSTed to; none means they are recorded but not sent.
pub struct Destination(pub(crate) Option<Target>);

impl platform::config::Settings for Destination {
    fn read(vars: &mut Vars<'_>) -> Self {
        let Some(raw) = vars.raw(URL) else { return Self(None) };
        let url = match reqwest::Url::parse(&raw) {
            Ok(url) if ["http", "https"].contains(&url.scheme()) && url.host_str().is_some() => Some(url),
            Ok(_) => {
                vars.fail(URL, "expected an http:// or https:// URL with a host");
                None
            }
            Err(e) => {
                vars.fail(URL, format!("not a valid URL: {e}"));
                None
            }
        };
        let ca_file = vars.raw(CA_FILE).map(std::path::PathBuf::from);
        let sender = match Sender::new(ca_file.as_deref()) {
            Ok(sender) => Some(sender),
            Err(e) => {
                vars.fail(CA_FILE, format!("cannot trust its certificates: {e}"));
                None
            }
        };
        let signer = match vars.raw(SECRET) {
            // Unsigned deliveries would let anyone who finds the platform's endpoint forge them.
            None => {
                vars.fail(
                    SECRET,
                    format!("is required when {URL} is set (every delivery is signed with it)"),
                );
                None
            }
            Some(s) => {
                vars.secret_allowed(SECRET, &s);
                match Signer::new(&s) {
                    Ok(signer) => Some(signer),
                    Err(e) => {
                        vars.fail(SECRET, e);
                        None
                    }
                }
            }
        };
        Self(url.zip(signer).zip(sender).map(|((url, signer), sender)| Target { url, signer, sender }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::config::read_settings;
    use std::collections::HashMap;

    fn read(url: Option<&str>, secret: Option<&str>) -> Result<Destination, platform::ConfigError> {
        let map: HashMap<&str, &str> =
            [(URL, url), (SECRET, secret)].into_iter().filter_map(|(k, v)| Some((k, v?))).collect();
        read_settings(&|k: &str| map.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn no_url_means_no_destination() {
        assert!(read(None, None).unwrap().0.is_none());
        assert!(read(None, Some("0123456789abcdef")).unwrap().0.is_none());
    }

    #[test]
    fn the_destination_needs_an_http_url_and_a_long_enough_secret() {
        let ok = read(Some("http://127.0.0.1:9/in"), Some("0123456789abcdef")).unwrap().0.unwrap();
        assert_eq!(ok.url.as_str(), "http://127.0.0.1:9/in");
        let tls = read(Some("https://example.com/in"), Some("0123456789abcdef")).unwrap().0.unwrap();
        assert_eq!(tls.url.as_str(), "https://example.com/in");
        for (url, secret, var, says) in [
            ("ftp://example.com/in", Some("0123456789abcdef"), URL, "expected an http:// or https:// URL"),
            ("http://", Some("0123456789abcdef"), URL, "not a valid URL"),
            ("http://127.0.0.1:9/in", None, SECRET, "required when TICKETING_EXTERNAL_DATA_URL is set"),
            ("http://127.0.0.1:9/in", Some("short"), SECRET, "at least 16 bytes"),
            (
                "http://127.0.0.1:9/in",
                Some("dev-only-external-data-signing-key"),
                SECRET,
                "development secret",
            ),
        ] {
            let e = read(Some(url), secret).err().unwrap_or_else(|| panic!("{url} {secret:?} accepted"));
            assert!(e.names(var) && e.to_string().contains(says), "{url} {secret:?}: {e}");
        }
    }
}
