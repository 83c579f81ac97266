//! The services this binary can run. Each registers a name and a `start` that spawns its
//! workers on the runtime and returns its router; `up` mounts them all on one port, `serve`
//! the chosen ones, so a path means the same thing in one process and behind the ingress.

use axum::Router;
use messaging::Runtime;
use platform::{Config, ConfigError};

/// One service of DESIGN §3.
pub struct ServiceDef {
    pub name: &'static str,
    pub about: &'static str,
    /// Spawns the service's consumers, relay and tickers; returns its routes.
    pub start: fn(&Runtime) -> anyhow::Result<Router>,
    /// The OpenAPI document of its routes.
    pub openapi: fn() -> utoipa::openapi::OpenApi,
    /// Reads its own settings from the configuration's variables, to report every problem
    /// before anything starts.
    pub settings: fn(&Config) -> Result<(), ConfigError>,
}

/// A service with no settings of its own.
fn none(_: &Config) -> Result<(), ConfigError> {
    Ok(())
}

/// Every service, in start order. Services are added here as they are built.
pub const SERVICES: &[ServiceDef] = &[
    ServiceDef {
        name: queue::NAME,
        about: "the waiting room: queue tokens, fair admission",
        start: |rt| Ok(queue::start(rt)?),
        openapi: queue::openapi,
        settings: |c| c.settings::<queue::Settings>().map(drop),
    },
    ServiceDef {
        name: concert::NAME,
        about: "the catalog: concerts and schedules",
        start: |rt| Ok(concert::start(rt)?),
        openapi: concert::openapi,
        settings: none,
    },
    ServiceDef {
        name: reservation::NAME,
        about: "the saga: reservations, deadlines, compensations",
        start: |rt| Ok(reservation::start(rt)?),
        openapi: reservation::openapi,
        settings: |c| c.settings::<platform::queue_guard::GateSettings>().map(drop),
    },
    ServiceDef {
        name: seat::NAME,
        about: "seat inventory: holds, sales, releases, sell-outs",
        start: |rt| Ok(seat::start(rt)?),
        openapi: seat::openapi,
        settings: none,
    },
    ServiceDef {
        name: wallet::NAME,
        about: "prepaid wallets: charges, payments, refunds",
        start: |rt| Ok(wallet::start(rt)?),
        openapi: wallet::openapi,
        settings: none,
    },
    ServiceDef {
        name: ranking::NAME,
        about: "read side: concert and sell-out rankings",
        start: |rt| Ok(ranking::start(rt)?),
        openapi: ranking::openapi,
        settings: none,
    },
    ServiceDef {
        name: wallet_history::NAME,
        about: "read side: each user's wallet history",
        start: |rt| Ok(wallet_history::start(rt)?),
        openapi: wallet_history::openapi,
        settings: none,
    },
    ServiceDef {
        name: external_data::NAME,
        about: "delivers completed reservations to the external data platform",
        start: |rt| Ok(external_data::start(rt)?),
        openapi: external_data::openapi,
        settings: |c| c.settings::<external_data::Destination>().map(drop),
    },
];

/// Looks up services by name, naming the unknown ones and the known ones in the error.
pub fn resolve(names: &[String]) -> anyhow::Result<Vec<&'static ServiceDef>> {
    let mut out = Vec::new();
    for name in names {
        match SERVICES.iter().find(|s| s.name == name) {
            Some(s) if !out.iter().any(|o: &&ServiceDef| o.name == s.name) => out.push(s),
            Some(_) => {}
            None => {
                let known: Vec<_> = SERVICES.iter().map(|s| s.name).collect();
                anyhow::bail!(
                    "unknown service {name:?}; this binary has: {}",
                    if known.is_empty() { "none yet".to_owned() } else { known.join(", ") }
                );
            }
        }
    }
    Ok(out)
}
