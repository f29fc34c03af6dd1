//! Drives one operation at a fixed concurrency for a fixed time and measures it: throughput,
//! latency percentiles (HDR histogram, microseconds), errors by message.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// What one scenario did at one concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Scenario name, e.g. `GetMaterial`.
    pub scenario: String,
    /// What ran it: `grpc`, `database` (the handler in-process) or `bare-grpc`.
    pub path: String,
    /// Callers running at once.
    pub concurrency: u32,
    /// Operations that succeeded.
    pub ok: u64,
    /// Operations that failed.
    pub errors: u64,
    /// Measured seconds (after the warm-up).
    pub seconds: f64,
    /// Successful operations per second.
    pub throughput: f64,
    /// Latency percentiles of successful operations, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The first few distinct error messages, with their counts.
    pub error_kinds: BTreeMap<String, u64>,
    /// Operations finished, warm-up and failures included (what the CPU figures divide by).
    pub finished: u64,
    /// Milliseconds of CPU per finished operation, by process group (see [`crate::cpu`]);
    /// empty unless the run knows the services' pids.
    pub cpu_ms_per_op: BTreeMap<String, f64>,
    /// Why the scenario stopped before its time was up, if it did: an operation ran out of
    /// what it works on (see [`EXHAUSTED`]). Its figures cover the time until then.
    pub exhausted: Option<String>,
}

/// How an operation's error message starts when it has nothing left to work on (every loaded
/// draft planned): every worker stops there, rather than counting instant failures until the
/// time is up, and the throughput is of the time until then.
pub const EXHAUSTED: &str = "exhausted: ";

/// How long to run.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Not measured: connections and caches warm up.
    pub warmup: Duration,
    /// Measured.
    pub measure: Duration,
}

/// Runs `op(worker, iteration)` from `concurrency` workers until the time is up. `op` returns
/// the error's message on failure (a status code and message, never a token).
pub async fn drive<F, Fut>(
    scenario: &str,
    path: &str,
    concurrency: u32,
    timing: Timing,
    op: F,
) -> anyhow::Result<Outcome>
where
    F: Fn(u32, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let measure_from = started + timing.warmup;
    let until = measure_from + timing.measure;
    let done = Arc::new(AtomicU64::new(0));
    let exhausted = Arc::new(OnceLock::<String>::new());
    let progress = progress(
        format!("{scenario} {path} c={concurrency}"),
        until - started,
        done.clone(),
    );
    let mut workers = Vec::with_capacity(concurrency as usize);
    for worker in 0..concurrency {
        let op = op.clone();
        let done = done.clone();
        let exhausted = exhausted.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = histogram()?;
            let mut errors = BTreeMap::<String, u64>::new();
            let mut failed = 0u64;
            let mut iteration = 0u64;
            loop {
                let begun = Instant::now();
                if begun >= until || exhausted.get().is_some() {
                    break;
                }
                let result = op(worker, iteration).await;
                iteration += 1;
                if let Err(message) = &result
                    && let Some(why) = message.strip_prefix(EXHAUSTED)
                {
                    let _ = exhausted.set(why.to_owned());
                    break;
                }
                done.fetch_add(1, Ordering::Relaxed);
                if begun < measure_from {
                    continue;
                }
                match result {
                    Ok(()) => {
                        let micros = u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX);
                        latencies.saturating_record(micros.max(1));
                    }
                    Err(message) => {
                        failed += 1;
                        if errors.len() < 5 || errors.contains_key(&message) {
                            *errors.entry(message).or_default() += 1;
                        }
                    }
                }
            }
            anyhow::Ok((latencies, failed, errors))
        }));
    }
    let mut latencies = histogram()?;
    let mut errors = 0;
    let mut error_kinds = BTreeMap::new();
    for worker in workers {
        let (worker_latencies, failed, kinds) = worker.await??;
        latencies.add(worker_latencies)?;
        errors += failed;
        for (kind, n) in kinds {
            *error_kinds.entry(kind).or_default() += n;
        }
    }
    // Operations still running at the deadline (or when the work ran out) finish after it;
    // they count, so does their time. Work that ran out during the warm-up measured nothing.
    let seconds = Instant::now()
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    progress.abort();
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    Ok(Outcome {
        scenario: scenario.to_owned(),
        path: path.to_owned(),
        concurrency,
        ok: latencies.len(),
        errors,
        seconds,
        throughput: if seconds > 0.0 {
            latencies.len() as f64 / seconds
        } else {
            0.0
        },
        p50_ms: ms(0.50),
        p95_ms: ms(0.95),
        p99_ms: ms(0.99),
        error_kinds,
        finished: done.load(Ordering::Relaxed),
        cpu_ms_per_op: BTreeMap::new(),
        exhausted: exhausted.get().cloned(),
    })
}

/// A bar on the terminal (none when stderr is not one, as in CI) filling over the run's time,
/// with the operations done so far; it clears itself when the task is aborted.
fn progress(label: String, length: Duration, done: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    let bar = ProgressBar::new(u64::try_from(length.as_millis()).unwrap_or(u64::MAX));
    if let Ok(style) = ProgressStyle::with_template("{msg:40} [{bar:30}] {elapsed}/{duration}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let started = Instant::now();
    tokio::spawn(async move {
        let _clear = Clear(bar.clone());
        loop {
            bar.set_position(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
            bar.set_message(format!("{label}: {} calls", done.load(Ordering::Relaxed)));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// Clears the bar when the ticker is dropped (aborted).
struct Clear(ProgressBar);

impl Drop for Clear {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Latencies in microseconds: 1 µs to 60 s, 3 significant digits.
fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_successes_errors_and_latency() {
        let timing = Timing {
            warmup: Duration::from_millis(20),
            measure: Duration::from_millis(200),
        };
        let outcome = drive("Sleep", "test", 4, timing, |_, i| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if i % 10 == 9 {
                Err("UNAVAILABLE: every tenth".to_owned())
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        assert!(outcome.ok > 100, "{outcome:?}");
        assert!(
            outcome.errors > 0 && outcome.errors < outcome.ok,
            "{outcome:?}"
        );
        assert_eq!(
            outcome.error_kinds.keys().collect::<Vec<_>>(),
            ["UNAVAILABLE: every tenth"]
        );
        assert!(
            outcome.p50_ms >= 2.0 && outcome.p99_ms >= outcome.p50_ms,
            "{outcome:?}"
        );
        assert_eq!(outcome.exhausted, None);
    }

    #[tokio::test]
    async fn work_that_runs_out_stops_every_worker_and_is_measured_until_then() {
        let timing = Timing {
            warmup: Duration::from_millis(20),
            measure: Duration::from_secs(30),
        };
        let left = Arc::new(std::sync::atomic::AtomicI64::new(200));
        let calls = Arc::new(AtomicU64::new(0));
        let counted = calls.clone();
        let outcome = drive("Drafts", "test", 4, timing, move |_, _| {
            let (left, calls) = (left.clone(), counted.clone());
            async move {
                calls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
                if left.fetch_sub(1, Ordering::Relaxed) > 0 {
                    Ok(())
                } else {
                    Err(format!("{EXHAUSTED}no draft left"))
                }
            }
        })
        .await
        .unwrap();
        // Every worker stopped when the drafts ran out (at most one more call each), instead of
        // failing for the 30 s it was given; what ran out is said, not counted as errors.
        assert!(calls.load(Ordering::Relaxed) <= 200 + 4, "{outcome:?}");
        assert_eq!(outcome.exhausted.as_deref(), Some("no draft left"));
        assert_eq!(outcome.errors, 0, "{outcome:?}");
        assert!(outcome.ok > 0 && outcome.ok <= 200, "{outcome:?}");
    }
}
