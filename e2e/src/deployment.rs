//! The system a scenario runs against, and what a scenario may ask of it.
//!
//! By default the harness starts one process per service for the scenario, in a test
//! environment of its own (fresh database, NATS prefix, Redis prefix). With `E2E_BASE_URL` the
//! scenario runs against a deployment that is already running — the local topology
//! (`scripts/cluster-up`), `ticketing up`, or a Kubernetes cluster — reached through its ingress,
//! with identity tokens signed with `E2E_JWT_PRIVATE_KEY` (or `E2E_JWT_SECRET`), its NATS and database named by the
//! `TICKETING_*` settings that `scripts/cluster-up` prints (used to read and inject events and to
//! run `ticketing audit`'s checks), and, when `E2E_CONTROL` names a control command
//! (`scripts/cluster-ctl`), settings and faults asked of it. A scenario that needs what the
//! deployment does not offer is skipped with a printed reason.
//!
//! Against one deployment the scenarios share it, so they run one at a time (the README's
//! command passes `--test-threads 1`), each on its own concert and its own users.

use crate::{api::Api, cluster::Cluster};
use anyhow::Context as _;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use contracts::{Envelope, Event, Stream};
use futures::StreamExt as _;
use messaging::Bus;
use platform::{
    Config, Secret,
    auth::{JwtKeys, TokenRules},
    config::SagaClocks,
};
use sea_orm::DatabaseConnection;
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    time::Duration,
};
use testkit::TestEnv;
use tokio::process::Command;

/// Settings every scenario runs with where the deployment can be configured (a scenario's own
/// win): the waiting room admits quickly, so scenarios about the saga do not wait on it. A
/// deployment that cannot be configured runs the scenarios at its own pace.
pub const SCENARIO_DEFAULTS: &[(&str, &str)] =
    &[("TICKETING_QUEUE_TICK_MS", "50"), ("TICKETING_QUEUE_ADMIT_PER_TICK", "1000")];

/// How long the checks at the end of a scenario wait for the system to settle.
const SETTLE: Duration = Duration::from_secs(60);

/// What a scenario may need beyond HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Its own settings (short holds, a small waiting room, an external platform's URL).
    Settings,
    /// Stopping a service (every replica of it) and starting it again.
    StopServices,
    /// Killing single replicas, NATS nodes, Redis and Postgres: the local topology's faults.
    Faults,
}

enum Control {
    /// The in-test processes, one per service, in the scenario's own environment.
    Harness { env: Box<TestEnv>, cluster: Cluster },
    /// A running deployment's control command (`E2E_CONTROL`).
    Command(PathBuf),
    /// A running deployment that offers no control.
    None,
}

/// A running system for one scenario.
pub struct Deployment {
    pub base_url: String,
    pub api: Api,
    /// The deployment's NATS, under its namespace.
    pub bus: Bus,
    db: DatabaseConnection,
    config: Config,
    /// Each stream's last sequence when the scenario started: the events it reads are those
    /// published after.
    since: HashMap<Stream, u64>,
    control: Control,
}

impl Deployment {
    /// The system for a scenario that needs `needs` and runs with `settings`, or `None` (with
    /// the reason printed) when the deployment cannot offer them.
    pub async fn start(settings: &[(&str, &str)], needs: &[Need]) -> anyhow::Result<Option<Self>> {
        let Some(base_url) = std::env::var("E2E_BASE_URL").ok().filter(|u| !u.is_empty()) else {
            return Self::harness(settings, needs).await;
        };
        let control = control_from_env();
        let mut needs = needs.to_vec();
        if !settings.is_empty() {
            needs.push(Need::Settings);
        }
        if let Some(missing) = needs.iter().find(|n| !offers(&control, **n)) {
            skip(&format!("the deployment at {base_url} offers no {missing:?} (E2E_CONTROL is not set)"));
            return Ok(None);
        }
        if needs.contains(&Need::Faults) && !ctl_names(&control).await?.iter().any(|n| n == "nats.1") {
            skip("the deployment's control offers no NATS nodes to kill");
            return Ok(None);
        }
        let applied: Vec<(&str, &str)> = match control {
            Control::Command(_) => SCENARIO_DEFAULTS.iter().chain(settings).copied().collect(),
            _ => Vec::new(),
        };
        Self::connect(&base_url, &applied).await.map(Some)
    }

    /// A running deployment at `base_url`, configured with `settings` through `E2E_CONTROL`
    /// when there is one (and as it is otherwise). Tokens are signed with `E2E_JWT_PRIVATE_KEY`
    /// (or `E2E_JWT_SECRET`, where the deployment accepts a shared secret); its NATS and
    /// database are those the `TICKETING_*` variables name.
    pub async fn connect(base_url: &str, settings: &[(&str, &str)]) -> anyhow::Result<Self> {
        let control = control_from_env();
        let signer = suite_signer()?;
        let applied: &[(&str, &str)] = if matches!(control, Control::Command(_)) { settings } else { &[] };
        let config = exported_config(applied)?;
        if let Control::Command(path) = &control {
            let mut args = vec!["configure".to_owned()];
            args.extend(applied.iter().map(|(k, v)| format!("{k}={v}")));
            run(path, &args).await?;
        }
        let bus = Bus::connect_as(&config.nats_url, config.prefix.clone(), config.nats_login.as_ref())
            .await
            .context("the deployment's NATS (TICKETING_NATS_URL)")?;
        let db = platform::pools::connect_db(config.database_url.expose(), 2)
            .await
            .context("the deployment's database (TICKETING_DATABASE_URL)")?;
        let base_url = base_url.trim_end_matches('/').to_owned();
        let api = Api::new(&base_url, signer);
        let since = last_sequences(&bus).await?;
        Ok(Self { base_url, api, bus, db, config, since, control })
    }

    async fn harness(settings: &[(&str, &str)], needs: &[Need]) -> anyhow::Result<Option<Self>> {
        if needs.contains(&Need::Faults) {
            skip(
                "the in-test processes run one replica per service and one NATS server (run it against scripts/cluster-up)",
            );
            return Ok(None);
        }
        let env = TestEnv::new().await?;
        let settings: Vec<(&str, &str)> = SCENARIO_DEFAULTS.iter().chain(settings).copied().collect();
        let cluster = Cluster::start(&env, &settings).await?;
        let api = Api::new(&cluster.base_url, env.jwt());
        let config = env.config_with(&settings);
        let since = last_sequences(&env.bus).await?;
        // The test environment's bus, with the partitions the scenario's system runs with.
        let bus = Bus { ns: config.prefix.clone(), ..env.bus.clone() };
        Ok(Some(Self {
            base_url: cluster.base_url.clone(),
            api,
            bus,
            db: env.db.clone(),
            config,
            since,
            control: Control::Harness { env: Box::new(env), cluster },
        }))
    }

    /// The settings the system runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs the rest of the scenario with `settings` (on top of [`SCENARIO_DEFAULTS`]) instead of
    /// those it started with: every service restarts with them.
    pub async fn configure(&mut self, settings: &[(&str, &str)]) -> anyhow::Result<()> {
        let applied: Vec<(&str, &str)> = SCENARIO_DEFAULTS.iter().chain(settings).copied().collect();
        match &mut self.control {
            Control::Harness { env, cluster } => {
                cluster.reconfigure(env, &applied).await?;
                self.config = env.config_with(&applied);
            }
            Control::Command(path) => {
                let mut args = vec!["configure".to_owned()];
                args.extend(applied.iter().map(|(k, v)| format!("{k}={v}")));
                run(path, &args).await?;
                self.config = exported_config(&applied)?;
            }
            Control::None => anyhow::bail!("the deployment offers no control"),
        }
        Ok(())
    }

    /// Stops every replica of a service (SIGTERM, as Kubernetes stops a pod) until
    /// [`Self::start_service`].
    pub async fn stop_service(&mut self, service: &'static str) -> anyhow::Result<()> {
        match &mut self.control {
            Control::Harness { cluster, .. } => cluster.stop_service(service).await,
            Control::Command(path) => {
                for replica in replicas(path, service).await? {
                    run(path, &["stop".to_owned(), replica]).await?;
                }
                Ok(())
            }
            Control::None => anyhow::bail!("the deployment offers no control"),
        }
    }

    /// Starts every replica of a service again and waits until each is ready.
    pub async fn start_service(&mut self, service: &'static str) -> anyhow::Result<()> {
        match &mut self.control {
            Control::Harness { env, cluster } => cluster.start_service(env, service),
            Control::Command(path) => {
                for replica in replicas(path, service).await? {
                    run(path, &["start".to_owned(), replica]).await?;
                }
                Ok(())
            }
            Control::None => anyhow::bail!("the deployment offers no control"),
        }
    }

    /// Asks the deployment's control for a fault or a recovery: `["kill", "seat.1"]`,
    /// `["restart", "redis"]`, `["kill", "nats.2", "--down", "10"]` (see `scripts/cluster-ctl`).
    pub async fn control(&self, args: &[&str]) -> anyhow::Result<String> {
        match &self.control {
            Control::Command(path) => {
                run(path, &args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>()).await
            }
            _ => anyhow::bail!("the deployment offers no control for {args:?}"),
        }
    }

    /// The replica names of a service, as the control knows them (`seat.1`, `seat.2`).
    pub async fn replicas(&self, service: &str) -> anyhow::Result<Vec<String>> {
        match &self.control {
            Control::Command(path) => replicas(path, service).await,
            _ => Ok(vec![service.to_owned()]),
        }
    }

    /// Every event of `stream` published since the scenario started, oldest first.
    pub async fn events(&self, stream: Stream) -> anyhow::Result<Vec<Envelope<serde_json::Value>>> {
        Ok(self.stored(stream).await?.into_iter().map(|(_, e)| e).collect())
    }

    /// Like [`Deployment::events`], each with the stream sequence JetStream stored it under.
    pub async fn stored(&self, stream: Stream) -> anyhow::Result<Vec<(u64, Envelope<serde_json::Value>)>> {
        let stored = self.events_on(stream, self.bus.ns.stream_subjects(stream)).await?;
        Ok(stored.into_iter().map(|(sequence, _, event)| (sequence, event)).collect())
    }

    /// The payloads of every distinct `E` published since the scenario started, oldest first;
    /// a copy published again with the same event id is the same event and counts once.
    pub async fn events_of<E: Event>(&self) -> anyhow::Result<Vec<E>> {
        Ok(self.published::<E>().await?.into_iter().map(|(_, e)| e).collect())
    }

    /// Like [`Deployment::events_of`], each with the subject it was published on (unprefixed:
    /// `seat.1.reserved`).
    pub async fn published<E: Event>(&self) -> anyhow::Result<Vec<(String, E)>> {
        let mut seen = HashSet::new();
        self.events_on(E::STREAM, self.bus.ns.subject(E::SUBJECT))
            .await?
            .into_iter()
            .filter(|(_, _, e)| e.kind == E::TYPE && seen.insert(e.id))
            .map(|(_, subject, e)| {
                Ok((self.bus.ns.unprefix_subject(&subject).to_owned(), e.decode::<E>()?.payload))
            })
            .collect()
    }

    /// The envelopes stored on `subject` since the scenario started, each with its stream
    /// sequence and the subject it was published on.
    async fn events_on(
        &self,
        stream: Stream,
        subject: String,
    ) -> anyhow::Result<Vec<(u64, String, Envelope<serde_json::Value>)>> {
        let start_sequence = self.since.get(&stream).copied().unwrap_or(0) + 1;
        let stream = self.bus.js.get_stream(self.bus.ns.stream(stream)).await?;
        let consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: subject,
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
                ..Default::default()
            })
            .await?;
        let pending = consumer.cached_info().num_pending;
        let mut out = Vec::new();
        if pending == 0 {
            return Ok(out);
        }
        let mut messages = consumer.messages().await?;
        while let Some(message) = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .context("reading events: nothing arrived within 10 s")?
        {
            let message = message?;
            let info = message.info().map_err(|e| anyhow::anyhow!("reading events: {e}"))?;
            let (sequence, pending) = (info.stream_sequence, info.pending);
            // An ordered consumer that resets resumes after what it delivered; a message it
            // delivers again is the reader's repeat, not a second copy in the stream. A message
            // that is no envelope is no event: another scenario sharing the deployment published
            // it to see it dead-lettered.
            if out.last().is_none_or(|(last, ..)| sequence > *last)
                && let Ok(event) = serde_json::from_slice(&message.payload)
            {
                out.push((sequence, message.subject.to_string(), event));
            }
            if pending == 0 {
                break;
            }
        }
        Ok(out)
    }

    /// Publishes raw bytes to an (unprefixed) subject with the given `Nats-Msg-Id`.
    pub async fn publish_raw(&self, subject: &str, msg_id: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(contracts::HEADER_MSG_ID, msg_id);
        self.bus
            .js
            .send_publish(
                self.bus.ns.subject(subject),
                async_nats::jetstream::message::PublishMessage::build().payload(body.into()).headers(headers),
            )
            .await?
            .await?;
        Ok(())
    }

    /// Publishes an event on its subject as another service would (message id = event id).
    pub async fn publish<E: Event>(&self, event: &Envelope<E>) -> anyhow::Result<()> {
        self.publish_raw(
            &self.bus.ns.partitions().subject(&event.payload),
            &event.id.to_string(),
            serde_json::to_vec(event)?,
        )
        .await
    }

    /// The end of every scenario: its users leave the waiting room (their tokens no longer hold
    /// an active slot), then `ticketing audit`'s checks run once the system has settled. The
    /// error is the audit's report.
    pub async fn check(&self) -> anyhow::Result<()> {
        self.api.leave_all().await?;
        audit_settled(&self.db, &self.bus, &self.config.settings()?).await
    }
}

/// `ticketing audit`'s checks once the system has settled (at most a minute); the error is the
/// audit's report.
pub async fn audit_settled(db: &DatabaseConnection, bus: &Bus, clocks: &SagaClocks) -> anyhow::Result<()> {
    let mut opts = audit::Options::new(clocks.clone());
    opts.settle = Some(SETTLE);
    // A pooled connection that Postgres closed (a restart in a fault scenario) fails once.
    let mut tries = 0;
    let report = loop {
        tries += 1;
        match audit::audit(db, bus, &opts).await {
            Ok(report) => break report,
            Err(e) if tries < 3 => eprintln!("the audit could not run ({e}); trying again"),
            Err(e) => return Err(e.into()),
        }
    };
    anyhow::ensure!(report.is_clean(), "ticketing audit found violations:\n{report}");
    Ok(())
}

fn control_from_env() -> Control {
    match std::env::var("E2E_CONTROL").ok().filter(|c| !c.is_empty()) {
        Some(path) => Control::Command(PathBuf::from(path)),
        None => Control::None,
    }
}

/// What the suite signs its users' tokens with: the private key of the identity provider the
/// deployment trusts (`E2E_JWT_PRIVATE_KEY`, a PEM file), or the shared secret it accepts
/// (`E2E_JWT_SECRET`), with the deployment's issuer and audience (`TICKETING_JWT_ISSUER`,
/// `TICKETING_JWT_AUDIENCE`, when they are not the defaults).
fn suite_signer() -> anyhow::Result<JwtKeys> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let defaults = TokenRules::default();
    let rules = TokenRules {
        issuer: var("TICKETING_JWT_ISSUER").unwrap_or(defaults.issuer),
        audience: var("TICKETING_JWT_AUDIENCE").unwrap_or(defaults.audience),
        ..defaults
    };
    if let Some(path) = var("E2E_JWT_PRIVATE_KEY") {
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("E2E_JWT_PRIVATE_KEY: cannot read {path}"))?;
        return JwtKeys::signing(&pem, rules).with_context(|| format!("E2E_JWT_PRIVATE_KEY: {path}"));
    }
    let secret = var("E2E_JWT_SECRET").context(
        "set E2E_JWT_PRIVATE_KEY, the private key of the identity provider the deployment trusts \
         (scripts/cluster-up prints it), or E2E_JWT_SECRET, the shared secret it accepts",
    )?;
    Ok(JwtKeys::new(rules, Some(&Secret::new(secret)), None, None)?)
}

/// A deployment's settings as its operator exported them (`TICKETING_*`), with `applied` on top.
/// The suite verifies no token: its configuration holds a secret of its own instead of the
/// deployment's keys.
fn exported_config(applied: &[(&str, &str)]) -> anyhow::Result<Config> {
    let applied: Vec<(String, String)> =
        applied.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let own_secret = format!("e2e-suite-{}", uuid::Uuid::new_v4().simple());
    Config::from_lookup(move |k| {
        applied.iter().rev().find(|(name, _)| name == k).map(|(_, v)| v.clone()).or_else(|| match k {
            "TICKETING_JWT_SECRET" => Some(own_secret.clone()),
            "TICKETING_JWT_PUBLIC_KEY" | "TICKETING_JWT_PRIVATE_KEY" => None,
            _ => std::env::var(k).ok(),
        })
    })
    .context("the TICKETING_* settings of the deployment (as scripts/cluster-up prints them)")
}

/// Each stream's last sequence now.
async fn last_sequences(bus: &Bus) -> anyhow::Result<HashMap<Stream, u64>> {
    let mut out = HashMap::new();
    for stream in Stream::ALL {
        let mut s =
            bus.js.get_stream(bus.ns.stream(stream)).await.with_context(|| format!("stream {stream}"))?;
        out.insert(stream, s.info().await?.state.last_sequence);
    }
    Ok(out)
}

fn offers(control: &Control, need: Need) -> bool {
    match (control, need) {
        (Control::Harness { .. }, Need::Faults) => false,
        (Control::Harness { .. }, _) | (Control::Command(_), _) => true,
        (Control::None, _) => false,
    }
}

async fn ctl_names(control: &Control) -> anyhow::Result<Vec<String>> {
    match control {
        Control::Command(path) => Ok(run(path, &["status".to_owned()])
            .await?
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()),
        _ => Ok(Vec::new()),
    }
}

/// A service's replicas from `<control> services` (`seat seat.1 seat.2` lines).
async fn replicas(path: &PathBuf, service: &str) -> anyhow::Result<Vec<String>> {
    let out = run(path, &["services".to_owned()]).await?;
    let by_service: BTreeMap<&str, Vec<String>> = out
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?, words.map(str::to_owned).collect()))
        })
        .collect();
    by_service.get(service).cloned().with_context(|| format!("the control knows no service {service}: {out}"))
}

/// Runs the control command; its output, or an error with what it printed.
async fn run(path: &PathBuf, args: &[String]) -> anyhow::Result<String> {
    let out = Command::new(path)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {}", path.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{} {} failed: {}",
        path.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Says why a scenario does not run here (the test then passes without running).
fn skip(reason: &str) {
    let name = std::thread::current().name().unwrap_or("scenario").to_owned();
    eprintln!("SKIPPED {name}: {reason}");
}
