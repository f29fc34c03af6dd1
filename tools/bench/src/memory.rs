//! Resident memory of the services under test, read from `/proc/<pid>/status` (pids from the
//! stack's pid files): idle before the scenarios (once the fixtures have settled), and the peak sampled every 100 ms while they run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// One service's memory, in MiB.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    /// Resident before any scenario ran, after the fixtures settled.
    pub idle_mib: f64,
    /// Highest resident size sampled while the scenarios ran.
    pub peak_mib: f64,
    /// The kernel's high-water mark at the end (includes start-up and loading).
    pub high_water_mib: f64,
}

/// Samples the services whose pid files are in a directory.
pub struct Sampler {
    pids: BTreeMap<String, u32>,
    memory: Arc<Mutex<BTreeMap<String, Memory>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// `VmRSS` or `VmHWM` of `pid`, MiB.
fn read(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

impl Sampler {
    /// Reads `<dir>/<service>.pid` for each of `services` that has one, records idle memory and
    /// starts sampling.
    pub fn start(dir: &Path, services: &[&str]) -> Self {
        let mut pids = BTreeMap::new();
        for service in services {
            let file: PathBuf = dir.join(format!("{service}.pid"));
            if let Some(pid) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                pids.insert((*service).to_owned(), pid);
            }
        }
        let memory: BTreeMap<String, Memory> = pids
            .iter()
            .map(|(name, &pid)| {
                let idle = read(pid, "VmRSS:").unwrap_or_default();
                (
                    name.clone(),
                    Memory {
                        idle_mib: idle,
                        peak_mib: idle,
                        high_water_mib: 0.0,
                    },
                )
            })
            .collect();
        let memory = Arc::new(Mutex::new(memory));
        let task = {
            let (pids, memory) = (pids.clone(), memory.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let mut memory = memory.lock().unwrap_or_else(|e| e.into_inner());
                    for (name, &pid) in &pids {
                        if let (Some(rss), Some(m)) = (read(pid, "VmRSS:"), memory.get_mut(name)) {
                            m.peak_mib = m.peak_mib.max(rss);
                        }
                    }
                }
            })
        };
        Self {
            pids,
            memory,
            task: Some(task),
        }
    }

    /// Stops sampling and returns what was seen.
    pub fn finish(mut self) -> BTreeMap<String, Memory> {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (name, &pid) in &self.pids {
            if let Some(m) = memory.get_mut(name) {
                m.high_water_mib = read(pid, "VmHWM:").unwrap_or_default();
            }
        }
        memory
    }
}
