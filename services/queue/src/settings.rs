//! The waiting room's admission settings (DESIGN §7), read from `TICKETING_QUEUE_*`.

use platform::config::Vars;
use std::time::Duration;

/// How fast and how far the waiting room admits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How many tokens may be ACTIVE at once.
    pub max_active: u32,
    /// How many tokens one tick admits at most.
    pub admit_per_tick: u32,
    /// How often admission runs.
    pub tick: Duration,
    /// How long an ACTIVE token stays active unused.
    pub active_ttl: Duration,
    /// The least time a token restored after a failed reservation stays active.
    pub restore_min: Duration,
    /// How often the rooms that requests wait on (`Prefer: wait`, a token's events) are read:
    /// how soon a waiting user learns of admission or of the end of the sale.
    pub live_every: Duration,
}

impl platform::config::Settings for Settings {
    fn read(vars: &mut Vars<'_>) -> Self {
        let settings = Self {
            max_active: vars.positive("TICKETING_QUEUE_MAX_ACTIVE", 1000),
            admit_per_tick: vars.positive("TICKETING_QUEUE_ADMIT_PER_TICK", 100),
            tick: vars.millis("TICKETING_QUEUE_TICK_MS", 1000),
            active_ttl: vars.secs("TICKETING_QUEUE_ACTIVE_TTL_SECS", 600),
            restore_min: vars.secs("TICKETING_QUEUE_RESTORE_MIN_SECS", 60),
            live_every: vars.millis("TICKETING_QUEUE_LIVE_MS", 250),
        };
        if settings.tick < Duration::from_millis(10) {
            vars.fail("TICKETING_QUEUE_TICK_MS", "must be at least 10");
        }
        if settings.live_every < Duration::from_millis(50) {
            vars.fail("TICKETING_QUEUE_LIVE_MS", "must be at least 50");
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::config::read_settings;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Settings, platform::ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        read_settings(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn defaults_admit_a_hundred_a_second_up_to_a_thousand() {
        let s = read(&[]).unwrap();
        assert_eq!((s.max_active, s.admit_per_tick, s.tick), (1000, 100, Duration::from_secs(1)));
    }

    #[test]
    fn every_malformed_variable_is_named() {
        let e = read(&[
            ("TICKETING_QUEUE_MAX_ACTIVE", "0"),
            ("TICKETING_QUEUE_TICK_MS", "5"),
            ("TICKETING_QUEUE_ACTIVE_TTL_SECS", "ten minutes"),
        ])
        .unwrap_err();
        for var in
            ["TICKETING_QUEUE_MAX_ACTIVE", "TICKETING_QUEUE_TICK_MS", "TICKETING_QUEUE_ACTIVE_TTL_SECS"]
        {
            assert!(e.names(var), "{var} not named in {e}");
        }
    }
}
