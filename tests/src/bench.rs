//! Shared benchmark harness: closed-loop throughput and open-loop latency.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// What one phase measured.
pub struct Figures {
    pub ops: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub latency_us: Histogram<u64>,
    /// One failure's message, to say why failures happened.
    pub sample_error: Option<String>,
}

impl Figures {
    /// Operations per second.
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency at quantile `q`, in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    /// One line: rate, p50, p99, counts.
    pub fn print(&self, name: &str, unit: &str) {
        println!(
            "{name:<50} {:>9.0} {unit}/s   p50 {:>8.2} ms   p99 {:>8.2} ms   ({} ok, {} failed, {:.1} s)",
            self.rate(),
            self.ms(0.50),
            self.ms(0.99),
            self.ops,
            self.errors,
            self.elapsed.as_secs_f64()
        );
        if let Some(e) = &self.sample_error {
            println!("{:<50} e.g. {e}", "");
        }
    }
}

#[allow(clippy::expect_used)] // constant arguments: provably valid
fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// `concurrency` tasks each run `op` back to back: one warm-up second, then
/// `seconds` measured. The maximum rate the system sustains at that concurrency.
pub async fn closed_loop<F, Fut>(
    name: &'static str,
    concurrency: usize,
    seconds: u64,
    op: F,
) -> anyhow::Result<Figures>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    eprintln!("{name}: {concurrency} tasks, 1 s warm-up, {seconds} s measured");
    let op = Arc::new(op);
    let warm_until = Instant::now() + Duration::from_secs(1);
    let stop_at = warm_until + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut errors = 0u64;
            let mut sample = None;
            let mut i = 0u64;
            loop {
                let started = Instant::now();
                if started >= stop_at {
                    return (h, errors, sample);
                }
                let result = op((t as u64) << 32 | i).await;
                i += 1;
                if started >= warm_until {
                    match result {
                        Ok(()) => {
                            let _ = h.record(started.elapsed().as_micros().max(1) as u64);
                        }
                        Err(e) => {
                            errors += 1;
                            sample.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
            }
        }));
    }
    let progress = tokio::spawn(progress(name, seconds + 1));
    let mut latency_us = histogram();
    let mut errors = 0;
    let mut sample_error = None;
    for t in tasks {
        let (h, e, s) = t.await?;
        latency_us.add(h)?;
        errors += e;
        sample_error = sample_error.or(s);
    }
    progress.abort();
    Ok(Figures {
        ops: latency_us.len(),
        errors,
        elapsed: Duration::from_secs(seconds),
        latency_us,
        sample_error,
    })
}

/// `op` gets `slot << 32 | sequence`, as in [`closed_loop`].
/// Starts `op` at a fixed `rate` for `seconds`, whatever the answers' pace
/// (at most `max_in_flight` at once). Latency counts from each operation's
/// scheduled start, so a stall shows up in the figures instead of hiding.
pub async fn open_loop<F, Fut>(
    name: &'static str,
    rate: f64,
    seconds: u64,
    max_in_flight: usize,
    op: F,
) -> anyhow::Result<Figures>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    eprintln!("{name}: {rate:.0}/s for {seconds} s");
    let op = Arc::new(op);
    let seen = Arc::new(Mutex::new((histogram(), 0u64, None::<String>)));
    let slots = Arc::new(tokio::sync::Semaphore::new(max_in_flight));
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let start = tokio::time::Instant::now();
    let end = start + Duration::from_secs(seconds);
    let progress = tokio::spawn(progress(name, seconds));
    let mut n: u64 = 0;
    loop {
        let scheduled = start + interval.mul_f64(n as f64);
        if scheduled >= end {
            break;
        }
        tokio::time::sleep_until(scheduled).await;
        let permit = slots.clone().acquire_owned().await?;
        let (op, seen) = (op.clone(), seen.clone());
        tokio::spawn(async move {
            // Ids as in `closed_loop`: the slot in the high half, so no two
            // operations in flight share the high half.
            let slots = max_in_flight as u64;
            let result = op(((n % slots) << 32) | (n / slots)).await;
            let took = scheduled.elapsed().as_micros().max(1) as u64;
            if let Ok(mut s) = seen.lock() {
                match result {
                    Ok(()) => {
                        let _ = s.0.record(took);
                    }
                    Err(e) => {
                        s.1 += 1;
                        s.2.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            drop(permit);
        });
        n += 1;
    }
    let _ = slots.acquire_many(max_in_flight as u32).await?;
    progress.abort();
    let (latency_us, errors, sample_error) = seen
        .lock()
        .map(|s| (s.0.clone(), s.1, s.2.clone()))
        .unwrap_or_else(|_| (histogram(), 0, None));
    Ok(Figures {
        ops: latency_us.len(),
        errors,
        elapsed: Duration::from_secs(seconds),
        latency_us,
        sample_error,
    })
}

async fn progress(name: &'static str, seconds: u64) {
    let mut n = 0;
    while n + 5 < seconds {
        tokio::time::sleep(Duration::from_secs(5)).await;
        n += 5;
        eprintln!("  {name}: {n} s");
    }
}
