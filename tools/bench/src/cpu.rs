//! Where a scenario's CPU goes: user + system time of each service (pids from the stack's pid
//! files), of every PostgreSQL process (with those that exited), and of the benchmark itself,
//! read from `/proc/<pid>/stat` before and after a scenario, divided by the operations it
//! finished (warm-up included, since the CPU of the warm-up is in the same window).

use std::collections::BTreeMap;
use std::path::Path;

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`: 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks so far, by process group ("identity", …, "postgres", "bench").
#[derive(Debug, Clone, Default)]
pub struct Snapshot(BTreeMap<String, u64>);

/// `utime + stime + cutime + cstime` of `pid` (fields 14 to 17; the name in field 2 may hold
/// spaces): its own CPU and that of its children that exited and were reaped. PostgreSQL's
/// short-lived processes (autovacuum workers, backends of closed connections) vanish from
/// `/proc` when they exit and their CPU moves to the postmaster's child times, so the sum over
/// every PostgreSQL process only grows. Counting own times alone, a worker that ran across a
/// snapshot and then exited took its CPU out of the group's difference.
fn ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut total = 0;
    for field in after_name.split_whitespace().skip(11).take(4) {
        total += field.parse::<u64>().ok()?;
    }
    Some(total)
}

fn is_postgres(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
}

/// The services whose pid files are in a directory.
#[derive(Debug, Clone, Default)]
pub struct Processes {
    services: BTreeMap<String, String>,
}

impl Processes {
    /// Reads `<dir>/<service>.pid` for each of `services` that has one.
    pub fn of(dir: &Path, services: &[&str]) -> Self {
        let services = services
            .iter()
            .filter_map(|s| {
                let pid = std::fs::read_to_string(dir.join(format!("{s}.pid"))).ok()?;
                Some(((*s).to_owned(), pid.trim().to_owned()))
            })
            .collect();
        Self { services }
    }

    /// The ticks of every group now.
    pub fn snapshot(&self) -> Snapshot {
        let mut groups = BTreeMap::new();
        for (name, pid) in &self.services {
            groups.insert(name.clone(), ticks(pid).unwrap_or_default());
        }
        let postgres = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()) && is_postgres(pid))
            .filter_map(|pid| ticks(&pid))
            .sum();
        groups.insert("postgres".to_owned(), postgres);
        groups.insert("bench".to_owned(), ticks("self").unwrap_or_default());
        Snapshot(groups)
    }
}

impl Snapshot {
    /// Milliseconds of CPU per operation by group between `self` and `later`, for `operations`
    /// operations (empty when there were none). Backends that exited in between are not counted.
    pub fn per_operation(&self, later: &Snapshot, operations: u64) -> BTreeMap<String, f64> {
        if operations == 0 {
            return BTreeMap::new();
        }
        later
            .0
            .iter()
            .map(|(group, &after)| {
                let before = self.0.get(group).copied().unwrap_or_default();
                let ms = after.saturating_sub(before) as f64 * 1000.0 / TICKS_PER_SECOND;
                (group.clone(), ms / operations as f64)
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn work_done_by_the_benchmark_shows_as_its_own_cpu() {
        let processes = Processes::default();
        let before = processes.snapshot();
        let start = ticks("self").unwrap();
        let mut x = 0u64;
        // Spin until this process has used 300 ms of CPU, however busy the machine is.
        while ticks("self").unwrap() < start + 30 {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        let per_op = before.per_operation(&processes.snapshot(), 10);
        let bench = per_op["bench"];
        assert!((30.0..100.0).contains(&bench), "{per_op:?}");
        assert!(per_op.contains_key("postgres"));
        assert!(before.per_operation(&processes.snapshot(), 0).is_empty());
    }

    /// The CPU of a child that has exited and been waited for still counts for its parent, as
    /// an exited PostgreSQL process counts for the postmaster.
    #[test]
    fn a_reaped_childs_cpu_counts_for_its_parent() {
        let start = ticks("self").unwrap();
        let status = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(status.success());
        // The loop takes well over 100 ms of CPU on any machine this runs on; this process
        // itself only waited.
        let gained = ticks("self").unwrap() - start;
        assert!(gained >= 10, "{gained} ticks");
    }
}
