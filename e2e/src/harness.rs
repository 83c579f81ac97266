//! Starts `ticketing` processes for a test environment and finds their port-0 listeners.

use anyhow::Context as _;
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};
use testkit::{TEST_JWT_SECRET, TestEnv};

/// The `ticketing` binary: `TICKETING_BIN`, or the one cargo built beside the test binary.
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("TICKETING_BIN") {
        return PathBuf::from(bin);
    }
    // Beside this executable (a bench binary in target/<profile>), or one folder up (test
    // binaries live in target/<profile>/deps).
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("ticketing"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from("ticketing"))
}

/// A `ticketing` command with only the given environment's `TICKETING_*` variables.
pub fn command(bin: &std::path::Path, env: &TestEnv) -> Command {
    let mut cmd = Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("TICKETING_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("TICKETING_DATABASE_URL", &env.database_url)
        .env("TICKETING_NATS_URL", &env.config.nats_url)
        .env("TICKETING_REDIS_URL", env.config.redis_url.expose())
        .env("TICKETING_JWT_SECRET", TEST_JWT_SECRET)
        // The tests' secret is public: accepted only on a development machine.
        .env("TICKETING_ENV", "dev")
        .env("TICKETING_PREFIX", env.ns.as_str())
        .env("TICKETING_HTTP_ADDR", "127.0.0.1:0");
    if let Some(login) = &env.config.nats_login {
        cmd.env("TICKETING_NATS_USER", &login.user).env("TICKETING_NATS_PASSWORD", login.password.expose());
    }
    cmd
}

/// A running `ticketing` process; killed when dropped.
pub struct Process {
    pub child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Process {
    /// Spawns `cmd` (a `ticketing up`/`serve` command) and waits, bounded, for its listening line.
    pub fn spawn(mut cmd: Command) -> anyhow::Result<Self> {
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().context("spawn ticketing")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let listening =
                lines.by_ref().find(|l| l.as_ref().map_or(true, |l| l.starts_with("ticketing listening on")));
            let _ = tx.send(listening);
            // Keep draining so the process never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                anyhow::bail!("ticketing did not report a listener: {other:?}");
            }
        };
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .with_context(|| format!("no URL in {line:?}"))?
            .to_owned();
        Ok(Self { child, url })
    }

    /// Sends SIGTERM (the way Kubernetes stops a pod).
    pub fn terminate(&self) -> anyhow::Result<()> {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?.success();
        anyhow::ensure!(ok, "kill -TERM failed");
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The system under test: `E2E_BASE_URL` when set, otherwise `ticketing up` for `env`.
pub struct System {
    pub base_url: String,
    _process: Option<Process>,
}

impl System {
    /// Uses `E2E_BASE_URL`, or starts every service in one process against `env`.
    pub fn start(env: &TestEnv) -> anyhow::Result<Self> {
        if let Some(url) = std::env::var("E2E_BASE_URL").ok().filter(|u| !u.is_empty()) {
            return Ok(Self { base_url: url.trim_end_matches('/').to_owned(), _process: None });
        }
        let mut cmd = command(&binary(), env);
        cmd.arg("up");
        let process = Process::spawn(cmd)?;
        Ok(Self { base_url: process.url.clone(), _process: Some(process) })
    }
}
