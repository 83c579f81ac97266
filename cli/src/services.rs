//! The services this binary can run. Each is a [`servicekit::Service`]: a name and a `start` that spawns its
//! workers on the runtime and returns its router; `up` mounts them all on one port, `serve`
//! the chosen ones, so a path means the same thing in one process and behind the ingress.

pub use servicekit::ServiceDef;

/// Every service, in start order.
pub const SERVICES: &[ServiceDef] = &[
    ServiceDef::of::<queue::Queue>(),
    ServiceDef::of::<concert::Catalog>(),
    ServiceDef::of::<reservation::Reservations>(),
    ServiceDef::of::<seat::Seats>(),
    ServiceDef::of::<wallet::Wallet>(),
    ServiceDef::of::<ranking::Ranking>(),
    ServiceDef::of::<wallet_history::WalletHistory>(),
    ServiceDef::of::<external_data::ExternalData>(),
    ServiceDef::of::<user::Users>(),
    ServiceDef::of::<payment::Payments>(),
    ServiceDef::of::<dead_letters::DeadLetters>(),
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

#[cfg(test)]
mod tests {
    /// Every service has its database role, and the e2e cluster (which starts the services by
    /// that list) runs every one.
    #[test]
    fn every_service_has_a_database_role_and_nothing_else_does() {
        let mut served: Vec<&str> = super::SERVICES.iter().map(|s| s.name).collect();
        let mut owners: Vec<&str> = migrations::SERVICE_SCHEMA_OWNERS.iter().map(|(s, _)| *s).collect();
        served.sort_unstable();
        owners.sort_unstable();
        assert_eq!(served, owners);
    }
}
