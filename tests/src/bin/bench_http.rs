//! HTTP load: login, patient registration and patient point reads, each at
//! 1,000 concurrent clients (maximum rate), then at half that rate with a
//! fixed arrival schedule (latency). A real server on a fresh Postgres
//! database, spoken to over TCP.
//!
//! cargo run --release -p anamnesis-tests --bin bench-http -- --clients 1000 --seconds 10
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use anamnesis_tests::bench::{
    catch_up, closed_loop, fan_out, open_loop, server_histogram, server_share, BenchServer,
    Figures, Lag, LagSampler,
};
use anamnesis_tests::db::Backend;
use anyhow::Context;
use clap::Parser;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
struct Args {
    /// Concurrent clients in the maximum-rate runs.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Accounts for the login clients (default: one per client; clients
    /// sharing an account race on its stream, which real users do not).
    #[arg(long)]
    users: Option<usize>,
    /// Patients seeded for the reads.
    #[arg(long, default_value_t = 2000)]
    patients: usize,
    /// `postgres` or `sqlite`.
    #[arg(long, default_value = "postgres")]
    backend: String,
    /// Which phases to run: any of `login`, `register`, `read`.
    #[arg(long, value_delimiter = ',', default_value = "login,register,read")]
    phases: Vec<String>,
    /// Run every phase twice in this run, on a server with payload
    /// encryption off and then on (ADR 0024), and print the p99 ratios.
    #[arg(long)]
    compare_encryption: bool,
}

const PASSWORD: &str = "benchmark password";

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status.is_success(), "{path}: {status} {body}");
        Ok(body)
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        let status = r.status();
        let _ = r.bytes().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status}");
        Ok(())
    }

    async fn login(&self, username: &str) -> anyhow::Result<String> {
        let r = self
            .post(
                "/v1/auth/login",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await?;
        Ok(r["access_token"].as_str().context("token")?.to_owned())
    }
}

fn patient(i: u64) -> Value {
    json!({"family_name": format!("Bench{i}"), "given_name": "Load", "birth_date": "1980-01-01",
           "sex": "unknown", "identifiers": [{"system": "mrn", "value": format!("B-{i}")}]})
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let backend = anamnesis_tests::bench::backend_and_logs(&args.backend)?;
    if !args.compare_encryption {
        run(&args, backend, &[]).await?;
        return Ok(());
    }
    let off = run(
        &args,
        backend,
        &["--encrypt-payloads".into(), "false".into()],
    )
    .await?;
    let on = run(&args, backend, &[]).await?;
    println!();
    println!("payload encryption, on vs off (same run; p99 at half the sustained rate):");
    for ((route, off), (_, on)) in off.iter().zip(&on) {
        println!(
            "  {route:<28} off p50 {:>6.2} ms p99 {:>6.2} ms | on p50 {:>6.2} ms p99 {:>6.2} ms | p99 on/off {:.2}",
            off.0,
            off.1,
            on.0,
            on.1,
            on.1 / off.1
        );
    }
    Ok(())
}

/// One full benchmark on a fresh server started with `extra` settings;
/// returns each phase's (p50, p99) in ms at half the sustained rate.
async fn run(
    args: &Args,
    backend: Backend,
    extra: &[String],
) -> anyhow::Result<Vec<(&'static str, (f64, f64))>> {
    let user_count = args.users.unwrap_or(args.clients).max(1);
    if !extra.is_empty() {
        eprintln!("server settings: {}", extra.join(" "));
    }
    let server = BenchServer::start_with(backend, args.clients, extra).await?;
    let client = Arc::new(Client {
        http: server.http.clone(),
        base: server.base.clone(),
    });

    eprintln!(
        "seeding: an admin, {user_count} accounts, {} patients",
        args.patients
    );
    let admin = server.admin(PASSWORD).await?;
    fan_out(user_count, 8, |i| {
        let (client, admin) = (client.clone(), admin.clone());
        async move {
            client
                .post("/v1/users", Some(&admin), json!({"username": format!("doctor{i}"), "password": PASSWORD, "role": "doctor"}))
                .await
        }
    })
    .await?;
    let doctor = Arc::new(client.login("doctor0").await?);
    let ids: Vec<String> = fan_out(args.patients, 32, |i| {
        let (client, doctor) = (client.clone(), doctor.clone());
        async move {
            client
                .post("/v1/patients", Some(&doctor), patient(i as u64))
                .await
        }
    })
    .await?
    .iter()
    .filter_map(|r| r["id"].as_str().map(str::to_owned))
    .collect();
    let ids = Arc::new(ids);
    // Let the read model catch up with the seed before reading.
    let last = ids.last().context("no patients")?.clone();
    for _ in 0..1000 {
        if client
            .get(&format!("/v1/patients/{last}"), &doctor)
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let users = user_count as u64;
    let login = {
        let client = client.clone();
        move |i: u64| {
            let client = client.clone();
            async move {
                client
                    .login(&format!("doctor{}", (i >> 32) % users))
                    .await
                    .map(|_| ())
            }
        }
    };
    // Identifiers are unique across patients: every registration of every
    // phase gets a number of its own.
    let registered = Arc::new(std::sync::atomic::AtomicU64::new(1_000_000));
    let register = {
        let (client, doctor) = (client.clone(), doctor.clone());
        move |_: u64| {
            let (client, doctor) = (client.clone(), doctor.clone());
            let i = registered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                client
                    .post("/v1/patients", Some(&doctor), patient(i))
                    .await
                    .map(|_| ())
            }
        }
    };
    let read = {
        let (client, doctor, ids) = (client.clone(), doctor.clone(), ids.clone());
        move |i: u64| {
            let (client, doctor, ids) = (client.clone(), doctor.clone(), ids.clone());
            async move {
                let id =
                    &ids[((i ^ (i >> 32)).wrapping_mul(2654435761) % ids.len() as u64) as usize];
                client.get(&format!("/v1/patients/{id}"), &doctor).await
            }
        }
    };

    // The maximum rate of a command leaves projection work behind. What the
    // system sustains is the commands over the time until the read models
    // have caught up too; "half rate" is half of that.
    let mut rows: Vec<(&str, Figures, f64, Figures, Lag, Lag, String)> = Vec::new();
    let phases: [(&'static str, &'static str, &'static str); 3] = [
        ("POST /v1/auth/login", "login: max", "login: half rate"),
        ("POST /v1/patients", "register: max", "register: half rate"),
        ("GET /v1/patients/{id}", "read: max", "read: half rate"),
    ];
    for (k, (route, max_name, half_name)) in phases.into_iter().enumerate() {
        let wanted = ["login", "register", "read"][k];
        if !args.phases.iter().any(|p| p == wanted) {
            continue;
        }
        let sampler = LagSampler::start(
            client.http.clone(),
            client.base.clone(),
            Duration::from_millis(20),
        );
        let max = match k {
            0 => closed_loop(max_name, args.clients, args.seconds, login.clone()).await?,
            1 => closed_loop(max_name, args.clients, args.seconds, register.clone()).await?,
            _ => closed_loop(max_name, args.clients, args.seconds, read.clone()).await?,
        };
        let sustained =
            max.ops as f64 / (args.seconds as f64 + catch_up(&client.http, &client.base).await?);
        let max_lag = sampler.finish().await?;
        let rate = sustained / 2.0;
        let sampler = LagSampler::start(
            client.http.clone(),
            client.base.clone(),
            Duration::from_millis(20),
        );
        let server = ["POST", "POST", "GET"][k];
        let status = [200, 201, 200][k];
        let server_before = server_histogram(
            &client.http,
            &client.base,
            (server, route_of(route), status),
        )
        .await?;
        let half = match k {
            0 => open_loop(half_name, rate, args.seconds, args.clients, login.clone()).await?,
            1 => {
                open_loop(
                    half_name,
                    rate,
                    args.seconds,
                    args.clients,
                    register.clone(),
                )
                .await?
            }
            _ => open_loop(half_name, rate, args.seconds, args.clients, read.clone()).await?,
        };
        let server_after = server_histogram(
            &client.http,
            &client.base,
            (server, route_of(route), status),
        )
        .await?;
        catch_up(&client.http, &client.base).await?;
        let half_lag = sampler.finish().await?;
        let server_side = server_share(&server_before, &server_after, 25.0);
        rows.push((route, max, sustained, half, max_lag, half_lag, server_side));
    }

    println!();
    println!(
        "backend {}, {} clients, {} s per run",
        args.backend, args.clients, args.seconds
    );
    let lag = |(p50, p99, max, n): &Lag| {
        format!("projection lag p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms ({n} samples)")
    };
    for (route, max, sustained, half, max_lag, half_lag, server_side) in &rows {
        max.print(
            &format!("{route} at {} clients (command-only)", args.clients),
            "req",
        );
        println!(
            "{:<50} {sustained:>9.0} req/s   with read models caught up: {:.2} x command-only",
            "",
            sustained / max.rate()
        );
        println!("{:<50} {}", "", lag(max_lag));
        half.print(&format!("{route} at half the sustained rate"), "req");
        println!("{:<50} {}", "", lag(half_lag));
        println!("{:<50} server side: {server_side}", "");
    }
    server.stop().await?;
    Ok(rows
        .iter()
        .map(|(route, _, _, half, _, _, _)| (*route, (half.ms(0.5), half.ms(0.99))))
        .collect())
}

/// The route template of a phase's name ("POST /v1/patients" → "/v1/patients").
fn route_of(phase: &str) -> &str {
    phase.split_once(' ').map_or(phase, |(_, route)| route)
}
