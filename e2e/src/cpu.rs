//! What a load run costs the machine: CPU time by program, read from `/proc` (Linux) before and
//! after a measured window. CPU time per operation moves less than a rate when another tenant of
//! the host slows the machine down, but it moves too (caches and memory bandwidth are shared),
//! so the line also says how much of the machine the host took away (steal): two builds compare
//! on runs alternated close together, on the ones the host left alone.

use std::{collections::BTreeMap, time::Duration};

/// The programs a run is made of, as `/proc/<pid>/stat` names them.
pub const PROGRAMS: [&str; 6] = ["postgres", "ticketing", "nats-server", "redis-server", "nginx", "load"];

/// Kernel ticks per second of `/proc`'s CPU times (`USER_HZ`: 100 on every Linux ABI we run on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks (user + system) used so far by each process of [`PROGRAMS`], and the machine's
/// busy, stolen and total ticks over all cores.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// By program and process id: a window counts each process's own ticks, so a process that
    /// ended within it takes nothing away from those that did not.
    by_process: BTreeMap<(String, u32), u64>,
    machine: Machine,
}

/// Ticks of all cores from `/proc/stat`'s `cpu` line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Machine {
    /// Neither idle nor waiting for I/O (steal included: the core was not ours to idle).
    busy: u64,
    /// Taken by the hypervisor for other guests while this one had work.
    stolen: u64,
    total: u64,
}

impl Snapshot {
    /// Reads `/proc` now; empty where it cannot be read (another OS).
    pub fn now() -> Self {
        let mut by_process = BTreeMap::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            if let Some((name, ticks)) = program_ticks(&stat)
                && PROGRAMS.contains(&name)
            {
                by_process.insert((name.to_owned(), pid), ticks);
            }
        }
        let machine =
            std::fs::read_to_string("/proc/stat").ok().and_then(|s| machine_ticks(&s)).unwrap_or_default();
        Self { by_process, machine }
    }

    /// What happened between `self` and `later`.
    pub fn until(&self, later: &Snapshot) -> Usage {
        let mut ticks = BTreeMap::<&str, u64>::new();
        for (process, t) in &later.by_process {
            // A process started within the window counts from 0. (A pid reused within it by
            // another process of the same program would count from the first one's ticks.)
            let used = t.saturating_sub(self.by_process.get(process).copied().unwrap_or(0));
            *ticks.entry(process.0.as_str()).or_default() += used;
        }
        let by_program = ticks
            .into_iter()
            .map(|(name, used)| (name.to_owned(), Duration::from_secs_f64(used as f64 / TICKS_PER_SECOND)))
            .collect();
        let total = later.machine.total.saturating_sub(self.machine.total);
        let share = |t: u64| if total == 0 { 0.0 } else { t as f64 / total as f64 };
        Usage {
            by_program,
            busy_share: share(later.machine.busy.saturating_sub(self.machine.busy)),
            stolen_share: share(later.machine.stolen.saturating_sub(self.machine.stolen)),
        }
    }
}

/// CPU used over a window.
#[derive(Clone, Debug)]
pub struct Usage {
    /// CPU time by program. Processes that ended inside the window are not counted.
    pub by_program: BTreeMap<String, Duration>,
    /// How busy all cores were together (0..1).
    pub busy_share: f64,
    /// How much of all cores' time the host gave to other guests (0..1): a slow run with much
    /// stolen is the host's doing.
    pub stolen_share: f64,
}

impl Usage {
    /// One line: CPU milliseconds per operation by program, and how busy the machine was.
    pub fn per_op(&self, ops: u64, what: &str) -> String {
        if ops == 0 || self.by_program.is_empty() {
            return format!("CPU per {what}: not measured");
        }
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0 / ops as f64;
        let parts: Vec<String> = PROGRAMS
            .iter()
            .filter_map(|p| self.by_program.get(*p).map(|d| format!("{p} {:.2}", ms(d))))
            .collect();
        let all: f64 = self.by_program.values().map(ms).sum();
        format!(
            "CPU ms per {what}: {} = {all:.2}; machine {:.0}% busy, {:.0}% stolen by the host",
            parts.join(", "),
            self.busy_share * 100.0,
            self.stolen_share * 100.0
        )
    }
}

/// Memory in use now by program: the proportional set size (`Pss` of
/// `/proc/<pid>/smaps_rollup`), which counts a page shared by several processes (PostgreSQL's
/// shared buffers, say) once in all rather than once per process.
pub fn memory() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((name, _)) = program_ticks(&stat) else { continue };
        if !PROGRAMS.contains(&name) {
            continue;
        }
        let rollup = std::fs::read_to_string(entry.path().join("smaps_rollup")).unwrap_or_default();
        *out.entry(name.to_owned()).or_default() += pss_bytes(&rollup);
    }
    out
}

/// One line of [`memory`]: `memory (PSS): postgres 151 MiB, ticketing 80 MiB, ...`.
pub fn memory_line(what: &str) -> String {
    let by = memory();
    let parts: Vec<String> =
        PROGRAMS.iter().filter_map(|p| by.get(*p).map(|b| format!("{p} {} MiB", b / (1 << 20)))).collect();
    format!("memory {what} (PSS): {}", parts.join(", "))
}

/// The `Pss:` line of a `smaps_rollup`, in bytes.
fn pss_bytes(rollup: &str) -> u64 {
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `(program name, user + system ticks)` of one `/proc/<pid>/stat` line. The name is in
/// parentheses and may itself contain spaces or parentheses, so fields are counted from the last
/// `)`: utime and stime are the 12th and 13th after it.
fn program_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((name, user + system))
}

/// The machine's ticks from `/proc/stat`'s `cpu` line: user nice system idle iowait irq softirq
/// steal (idle and iowait are not busy).
fn machine_ticks(stat: &str) -> Option<Machine> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
    let total: u64 = ticks.iter().take(8).sum();
    Some(Machine { busy: total - at(3) - at(4), stolen: at(7), total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_is_read_in_bytes() {
        let rollup = "55d0-7ffe ---p 00000000 00:00 0 [rollup]\nRss: 2048 kB\nPss:  1536 kB\n";
        assert_eq!(pss_bytes(rollup), 1536 * 1024);
        assert_eq!(pss_bytes(""), 0);
    }

    #[test]
    fn stat_lines_are_read_from_the_last_parenthesis() {
        let line = "4242 (tokio (rt) w) S 1 2 3 0 -1 4194304 100 0 0 0 250 37 0 0 20 0 9 0";
        assert_eq!(program_ticks(line), Some(("tokio (rt) w", 287)));
        assert_eq!(program_ticks("garbage"), None);
    }

    #[test]
    fn the_machine_line_counts_idle_and_iowait_as_not_busy_and_reads_steal() {
        let stat = "cpu  100 5 50 800 40 1 4 20 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        assert_eq!(machine_ticks(stat), Some(Machine { busy: 180, stolen: 20, total: 1020 }));
    }

    #[test]
    fn usage_is_per_operation_and_by_program() {
        let p = |name: &str, pid: u32, ticks: u64| ((name.to_owned(), pid), ticks);
        let before = Snapshot {
            by_process: [p("postgres", 1, 100), p("load", 2, 10), p("postgres", 3, 50)].into(),
            machine: Machine::default(),
        };
        // Backend 3 ended within the window and backend 4 began: neither changes what backend 1 used.
        let after = Snapshot {
            by_process: [p("postgres", 1, 280), p("load", 2, 30), p("postgres", 4, 20)].into(),
            machine: Machine { busy: 150, stolen: 20, total: 200 },
        };
        let line = before.until(&after).per_op(1000, "hold");
        assert_eq!(
            line,
            "CPU ms per hold: postgres 2.00, load 0.20 = 2.20; machine 75% busy, 10% stolen by the host"
        );
    }
}
