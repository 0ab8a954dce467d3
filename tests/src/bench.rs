//! Shared benchmark harness: closed-loop throughput and open-loop latency.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::Value;

use crate::db::{Backend, TestDb};

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

/// A real server on a runtime of its own (as in production: the load
/// generator's tasks do not queue in front of its requests), over a fresh
/// database, and an HTTP client for it.
pub struct BenchServer {
    pub http: reqwest::Client,
    pub base: String,
    pub db: TestDb,
    /// The server's configuration (for in-process commands beside it).
    pub settings: anamnesis_api::config::Settings,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<anyhow::Result<()>>,
}

/// The token signing key of benchmark servers.
pub const BENCH_KEY: &str = "bench-signing-key-0123456789abcdef0123456789";

impl BenchServer {
    /// Starts a server on `backend` for up to `clients` concurrent clients
    /// and waits until it answers.
    pub async fn start(backend: Backend, clients: usize) -> anyhow::Result<Self> {
        Self::start_with(backend, clients, &[]).await
    }

    /// [`BenchServer::start`] with `extra` settings before `serve`.
    pub async fn start_with(
        backend: Backend,
        clients: usize,
        extra: &[String],
    ) -> anyhow::Result<Self> {
        Self::start_seeded(backend, clients, extra, &[]).await
    }

    /// [`BenchServer::start_with`] over a database that `anamnesis seed`
    /// with the arguments `seed` fills first (none when `seed` is empty).
    pub async fn start_seeded(
        backend: Backend,
        clients: usize,
        extra: &[String],
        seed: &[String],
    ) -> anyhow::Result<Self> {
        let db = TestDb::with_pool(backend, 2)
            .await
            .context("creating the benchmark database")?;
        let data_dir = db
            .data_dir()
            .map(|d| d.to_path_buf())
            .unwrap_or_else(std::env::temp_dir);
        let mut cli = vec![
            "anamnesis".to_owned(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--token-key".into(),
            BENCH_KEY.into(),
        ];
        if let Some(url) = &db.url {
            cli.extend(["--database-url".to_owned(), url.clone()]);
        }
        // A load generator is one client address with a few tokens, at
        // thousands of requests a second: no rate limits.
        for limit in [
            "--auth-rate-per-minute",
            "--account-rate-per-minute",
            "--token-rate-per-second",
        ] {
            cli.extend([limit.to_owned(), "0".to_owned()]);
        }
        // The load signs admins in in one step (no second factor).
        cli.extend(["--mfa-roles".to_owned(), String::new()]);
        cli.extend(extra.iter().cloned());
        if !seed.is_empty() {
            let mut seeding = cli.clone();
            seeding.push("seed".into());
            seeding.extend(seed.iter().cloned());
            let parsed = <anamnesis_api::cli::Cli as clap::Parser>::try_parse_from(seeding)?;
            let anamnesis_api::cli::Command::Seed(args) = parsed.command else {
                anyhow::bail!("not the seed command");
            };
            anamnesis_api::seed::run(&parsed.settings, &args)
                .await
                .context("seeding the benchmark clinic")?;
        }
        cli.push("serve".into());
        let settings = <anamnesis_api::cli::Cli as clap::Parser>::try_parse_from(cli)?.settings;
        let kept = settings.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listener = listener.into_std()?;
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            // The binary's runtime, so that the server is measured as it runs.
            let runtime = anamnesis_api::server::runtime()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                anamnesis_api::server::launch(&settings, listener, async {
                    let _ = stopped.await;
                })
                .await
            })
        });
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .timeout(Duration::from_secs(120))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/readyz")).send().await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            http,
            base,
            db,
            settings: kept,
            stop,
            thread,
        })
    }

    /// Creates the account `admin` with `password` on the write side (as
    /// the command line does) and signs it in.
    pub async fn admin(&self, password: &str) -> anyhow::Result<String> {
        use anamnesis_commands as c;
        let identity = c::identity::Identity::new(c::dispatch::CommandBus::new(
            c::EventLog::open(self.db.db.clone()).await?,
        ));
        let operator = c::EventMetadata::by(c::Actor::new("bench", "operator"));
        identity
            .create(
                c::identity::NewAccount {
                    user_id: uuid::Uuid::now_v7(),
                    username: "admin".into(),
                    password: password.into(),
                    role: anamnesis_domain::user::Role::Admin,
                    patient_id: None,
                },
                &operator,
            )
            .await
            .map_err(|e| anyhow::anyhow!("creating the admin: {e}"))?;
        self.login("admin", password).await
    }

    /// An access token for `username`.
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({"username": username, "password": password});
        let (status, r) = self
            .call("POST", "/v1/auth/login", None, Some(&body), &[])
            .await?;
        anyhow::ensure!(status == 200, "login {username}: {status} {r}");
        Ok(r["access_token"].as_str().context("token")?.to_owned())
    }

    /// One request; the status and the JSON body (`Null` if none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// A GET whose answer is only counted: the status, the body read and
    /// dropped unparsed (parsing it would load the generator, not the server).
    pub async fn get_status(&self, path: &str, token: &str) -> anyhow::Result<u16> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        let status = r.status().as_u16();
        let _ = r.bytes().await?;
        Ok(status)
    }

    /// A request that must answer `expected`; its body.
    pub async fn expect(
        &self,
        expected: u16,
        (method, path): (&str, &str),
        token: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, r) = self.call(method, path, Some(token), body, &[]).await?;
        anyhow::ensure!(status == expected, "{method} {path}: {status} {r}");
        Ok(r)
    }

    /// Stops the server and drops the database.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
        self.db.cleanup().await
    }
}

/// Waits until every projection of the server at `base` has caught up with
/// the log (lag 0 in `/metrics`); returns how long that took, in seconds.
pub async fn catch_up(http: &reqwest::Client, base: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    loop {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let behind: f64 = text
            .lines()
            .filter(|l| l.starts_with("anamnesis_projection_lag_events"))
            .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
            .sum();
        if behind == 0.0 {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "projections did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Projection lag (the age of the oldest event not yet in every read model,
/// from `/metrics`), sampled every `every` while a phase runs.
pub struct LagSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Vec<f64>>,
}

/// (p50, p99, max) lag in milliseconds, and the number of samples.
pub type Lag = (f64, f64, f64, usize);

impl LagSampler {
    /// Starts sampling the server at `base`.
    pub fn start(http: reqwest::Client, base: String, every: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !*stopped.borrow() {
                if let Ok(r) = http.get(format!("{base}/metrics")).send().await {
                    if let Ok(text) = r.text().await {
                        let lag = text
                            .lines()
                            .filter(|l| l.starts_with("anamnesis_projection_lag_seconds"))
                            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                            .fold(0.0, f64::max);
                        samples.push(lag * 1000.0);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => {}
                }
            }
            samples
        });
        Self { stop, task }
    }

    /// Stops sampling: (p50, p99, max) lag in milliseconds, and the number
    /// of samples.
    pub async fn finish(self) -> anyhow::Result<Lag> {
        self.stop.send_replace(true);
        let mut samples = self.task.await?;
        if samples.is_empty() {
            return Ok((0.0, 0.0, 0.0, 0));
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Ok((at(0.5), at(0.99), at(1.0), samples.len()))
    }
}

/// Runs `n` calls of `op`, `parallel` at a time, in order.
pub async fn fan_out<F, Fut>(n: usize, parallel: usize, op: F) -> anyhow::Result<Vec<Value>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(0..n)
        .map(op)
        .buffered(parallel)
        .try_collect()
        .await
}

/// The `id` of a command's answer.
pub fn id(v: &Value) -> anyhow::Result<String> {
    Ok(v["id"].as_str().context("an id")?.to_owned())
}

/// A query-string value, percent-encoded.
pub fn query_value(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The backend a benchmark's `--backend` names; installs a log subscriber
/// on stderr when `RUST_LOG` is set.
pub fn backend_and_logs(name: &str) -> anyhow::Result<Backend> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    match name {
        "postgres" => Ok(Backend::Postgres),
        "sqlite" => Ok(Backend::Sqlite),
        other => anyhow::bail!("--backend must be postgres or sqlite, not {other}"),
    }
}

/// The server's own latency histogram of one route and status, from
/// `/metrics` (`anamnesis_http_request_duration_seconds`, measured from the
/// router to the response, so without the load generator's and the
/// kernel's queues): cumulative counts by upper bound in seconds.
pub async fn server_histogram(
    http: &reqwest::Client,
    base: &str,
    (method, route, status): (&str, &str, u16),
) -> anyhow::Result<Vec<(f64, u64)>> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let wanted = [
        format!("method=\"{method}\""),
        format!("route=\"{route}\""),
        format!("status=\"{status}\""),
    ];
    let mut buckets = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("anamnesis_http_request_duration_seconds_bucket{")
        else {
            continue;
        };
        let Some((labels, count)) = rest.split_once("} ") else {
            continue;
        };
        if !wanted.iter().all(|w| labels.contains(w.as_str())) {
            continue;
        }
        let le = labels
            .split(',')
            .find_map(|l| l.strip_prefix("le=\""))
            .map(|l| l.trim_end_matches('"'))
            .context("a bucket without an upper bound")?;
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse()?
        };
        buckets.push((le, count.trim().parse::<f64>()? as u64));
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(buckets)
}

/// What the server's histogram gained between `before` and `after`
/// (`server_histogram`): "n requests, x% within `within` ms, p50 at most
/// y ms, p99 at most z ms" (the bucket bounds the median and the 99th
/// percentile fall under).
pub fn server_share(before: &[(f64, u64)], after: &[(f64, u64)], within_ms: f64) -> String {
    let gained: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(b, _)| b == le).map_or(0, |(_, m)| *m);
            (*le, n.saturating_sub(was))
        })
        .collect();
    let total = gained.last().map_or(0, |(_, n)| *n);
    if total == 0 {
        return "no requests".into();
    }
    let within = gained
        .iter()
        .filter(|(le, _)| *le <= within_ms / 1000.0)
        .map(|(_, n)| *n)
        .next_back()
        .unwrap_or(0);
    let under = |q: f64| {
        gained
            .iter()
            .find(|(_, n)| *n as f64 >= total as f64 * q)
            .map_or(f64::INFINITY, |(le, _)| *le * 1000.0)
    };
    format!(
        "{total} requests, {:.2}% within {within_ms} ms, p50 at most {} ms, p99 at most {} ms",
        within as f64 * 100.0 / total as f64,
        under(0.5),
        under(0.99)
    )
}
