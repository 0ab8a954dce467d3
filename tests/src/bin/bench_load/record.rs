//! What the virtual users measured: every answer's latency, by operation,
//! with the second of the run it started in (for the chart), and the
//! answers counted as successes, expected conflicts or errors.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// How one request ended.
pub enum Outcome {
    /// The answer the user wanted.
    Done,
    /// A refusal a real user meets and the system must give: the slot was
    /// taken by someone else, the appointment moved on meanwhile.
    Conflict,
}

/// One operation's samples.
#[derive(Default)]
struct Samples {
    /// (second of the run, latency in µs, whether a conflict) of every
    /// answered request.
    answered: Vec<(u32, u32, bool)>,
    /// Errors, whenever they came: the warm-up is no excuse for one.
    errors: u64,
    sample_error: Option<String>,
}

/// Shared by every virtual user of a phase.
pub struct Recorder {
    started: Instant,
    ops: Mutex<BTreeMap<&'static str, Samples>>,
}

/// One operation's figures.
pub struct OpFigures {
    pub name: &'static str,
    pub ok: u64,
    pub conflicts: u64,
    pub errors: u64,
    pub rate: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub sample_error: Option<String>,
    /// (second, p99 ms) over the run.
    pub timeline: Vec<(u32, f64)>,
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            ops: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one request of `op` that started at `at`.
    pub fn record(&self, op: &'static str, at: Instant, result: &anyhow::Result<Outcome>) {
        let took = at.elapsed().as_micros().clamp(1, u128::from(u32::MAX)) as u32;
        let second = at.saturating_duration_since(self.started).as_secs() as u32;
        let Ok(mut ops) = self.ops.lock() else {
            return;
        };
        let s = ops.entry(op).or_default();
        match result {
            Ok(outcome) => {
                s.answered
                    .push((second, took, matches!(outcome, Outcome::Conflict)));
            }
            Err(e) => {
                s.errors += 1;
                s.sample_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }

    /// Requests recorded so far.
    pub fn count(&self) -> usize {
        self.ops
            .lock()
            .map(|ops| {
                ops.values()
                    .map(|s| s.answered.len() + s.errors as usize)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The figures of every operation over the `elapsed` after the first
    /// `warm_up` seconds (requests that started in those count only in the
    /// timeline and in [`Recorder::warm_up`]).
    pub fn figures(&self, warm_up: u32, elapsed: Duration) -> anyhow::Result<Vec<OpFigures>> {
        let ops = self
            .ops
            .lock()
            .map_err(|_| anyhow::anyhow!("a virtual user panicked while recording"))?;
        let mut out = Vec::new();
        for (&name, s) in ops.iter() {
            let mut all = histogram()?;
            let mut by_second: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            let mut measured = 0u64;
            let mut conflicts = 0u64;
            for &(second, us, conflict) in &s.answered {
                by_second.entry(second).or_default().push(us);
                if second >= warm_up {
                    all.record(u64::from(us))?;
                    measured += 1;
                    conflicts += u64::from(conflict);
                }
            }
            let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
            let timeline = by_second
                .into_iter()
                .map(|(second, mut v)| {
                    v.sort_unstable();
                    let i = ((v.len() - 1) as f64 * 0.99).round() as usize;
                    (second, f64::from(v[i]) / 1000.0)
                })
                .collect();
            out.push(OpFigures {
                name,
                ok: measured - conflicts,
                conflicts,
                errors: s.errors,
                rate: measured as f64 / elapsed.as_secs_f64().max(1e-9),
                p50: ms(0.50),
                p95: ms(0.95),
                p99: ms(0.99),
                max: all.max() as f64 / 1000.0,
                sample_error: s.sample_error.clone(),
                timeline,
            });
        }
        Ok(out)
    }
}

impl Recorder {
    /// p99 and max (ms) of every request of every operation that started in
    /// the first `warm_up` seconds, and how many there were.
    pub fn warm_up(&self, warm_up: u32) -> anyhow::Result<(f64, f64, u64)> {
        let ops = self
            .ops
            .lock()
            .map_err(|_| anyhow::anyhow!("a virtual user panicked while recording"))?;
        let mut all = histogram()?;
        for s in ops.values() {
            for &(second, us, _) in &s.answered {
                if second < warm_up {
                    all.record(u64::from(us))?;
                }
            }
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Ok((ms(all.value_at_quantile(0.99)), ms(all.max()), all.len()))
    }
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs to ~71 min (u32 µs), 3 significant digits.
    Ok(Histogram::new_with_bounds(1, u64::from(u32::MAX), 3)?)
}

impl OpFigures {
    pub fn json(&self) -> Value {
        json!({
            "operation": self.name,
            "ok": self.ok,
            "expected_conflicts": self.conflicts,
            "errors": self.errors,
            "requests_per_second": self.rate,
            "p50_ms": self.p50,
            "p95_ms": self.p95,
            "p99_ms": self.p99,
            "max_ms": self.max,
            "sample_error": self.sample_error,
            "p99_ms_by_second": self.timeline.iter().map(|(s, v)| json!([s, v])).collect::<Vec<_>>(),
        })
    }
}
