//! Booking storms: many clients released at once on a few slots, their
//! answers counted, and the read model checked to hold exactly the winners
//! (`bench-booking`, `bench-load`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Duration, NaiveDate, Utc, Weekday};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::bench::{fan_out, id, BenchServer};

/// The password of the accounts storms make.
pub const PASSWORD: &str = "benchmark password";

pub fn at(day: NaiveDate, minutes: i64) -> anyhow::Result<DateTime<Utc>> {
    Ok(day.and_hms_opt(0, 0, 0).context("midnight")?.and_utc() + Duration::minutes(minutes))
}

pub fn day_name(d: Weekday) -> &'static str {
    crate::schedule::EVERY_DAY[d.num_days_from_monday() as usize]
}

/// A doctor account `name` enrolled as a provider with `hours`; its id.
pub async fn provider(
    s: &BenchServer,
    admin: &str,
    name: &str,
    (hours, minutes): (Value, i64),
) -> anyhow::Result<String> {
    let user = s
        .expect(
            201,
            ("POST", "/v1/users"),
            admin,
            Some(&json!({"username": name, "password": PASSWORD, "role": "doctor"})),
        )
        .await?;
    let enrolled = s
        .expect(
            201,
            ("POST", "/v1/providers"),
            admin,
            Some(&json!({
            "user_id": id(&user)?, "display_name": format!("Dr {name}"),
            "specialty": "general practice", "default_minutes": minutes})),
        )
        .await?;
    let provider = id(&enrolled)?;
    s.expect(
        200,
        ("PUT", &format!("/v1/providers/{provider}/availability")),
        admin,
        Some(&json!({"hours": hours, "slot_minutes": minutes})),
    )
    .await?;
    Ok(provider)
}

/// What one storm client got.
pub struct Answer {
    pub status: u16,
    pub code: String,
    pub id: String,
    pub position: i64,
    pub micros: u64,
}

/// A storm's answers and how long it took, from release to the last answer.
pub struct Storm {
    pub answers: Vec<Answer>,
    pub elapsed: std::time::Duration,
}

impl Storm {
    /// The log position of the last booking that landed.
    pub fn last_position(&self) -> i64 {
        self.answers.iter().map(|a| a.position).max().unwrap_or(0)
    }
}

/// One client per body, all released at once, each posting its booking as
/// `token` over a connection opened beforehand (the storm measures bookings,
/// not TCP handshakes).
pub async fn storm(
    s: &Arc<BenchServer>,
    token: &Arc<String>,
    bodies: Vec<Value>,
) -> anyhow::Result<Storm> {
    fan_out(bodies.len(), bodies.len(), |_| {
        let s = s.clone();
        async move {
            s.call("GET", "/readyz", None, None, &[])
                .await
                .map(|_| Value::Null)
        }
    })
    .await?;
    let go = Arc::new(tokio::sync::Barrier::new(bodies.len() + 1));
    let mut tasks = Vec::with_capacity(bodies.len());
    for body in bodies {
        let (s, token, go) = (s.clone(), token.clone(), go.clone());
        tasks.push(tokio::spawn(async move {
            go.wait().await;
            let started = Instant::now();
            let (status, r) = s
                .call("POST", "/v1/appointments", Some(&token), Some(&body), &[])
                .await?;
            anyhow::Ok(Answer {
                status,
                code: r["code"].as_str().unwrap_or_default().to_owned(),
                id: r["id"].as_str().unwrap_or_default().to_owned(),
                position: r["position"].as_i64().unwrap_or(0),
                micros: started.elapsed().as_micros().max(1) as u64,
            })
        }));
    }
    go.wait().await;
    let started = Instant::now();
    let mut answers = Vec::with_capacity(tasks.len());
    for t in tasks {
        answers.push(t.await??);
    }
    Ok(Storm {
        answers,
        elapsed: started.elapsed(),
    })
}

/// Prints a storm's counts by answer, rate and latency; returns (wins,
/// errors, p99 in ms). Errors are answers other than 201 and 409.
pub fn report(name: &str, storm: &Storm) -> anyhow::Result<(usize, usize, f64)> {
    let answers = &storm.answers;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut kinds: BTreeMap<(u16, &str), usize> = BTreeMap::new();
    for a in answers {
        latency.record(a.micros)?;
        *kinds.entry((a.status, a.code.as_str())).or_default() += 1;
    }
    let count = |code: u16| answers.iter().filter(|a| a.status == code).count();
    let (wins, conflicts) = (count(201), count(409));
    let errors = answers.len() - wins - conflicts;
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:<50} {:>6.0} req/s   p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms   ({:.2} s)",
        answers.len() as f64 / storm.elapsed.as_secs_f64(),
        ms(0.50),
        ms(0.99),
        ms(1.0),
        storm.elapsed.as_secs_f64()
    );
    println!(
        "{:<50} {wins} wins (201), {conflicts} conflicts (409), {errors} errors",
        ""
    );
    for ((status, code), n) in kinds {
        println!("{:<50}   {n:>5} x {status} {code}", "");
    }
    Ok((wins, errors, ms(0.99)))
}

/// The read model, once it has seen the storm's last booking, holds exactly
/// `expected` booked appointments on `day` (of `providers`, or of anyone
/// when it is empty), the winners, and no two overlap on one provider's
/// calendar.
pub async fn verify(
    s: &BenchServer,
    staff: &str,
    (day, providers): (NaiveDate, &[String]),
    storm: &Storm,
    expected: usize,
) -> anyhow::Result<()> {
    let last = storm.last_position();
    let (from, to) = (at(day, 0)?.to_rfc3339(), at(day, 24 * 60)?.to_rfc3339());
    let mut booked: Vec<(String, i64, i64, String)> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/v1/appointments?status=booked&limit=100&from={}&to={}",
            from.replace('+', "%2B"),
            to.replace('+', "%2B"),
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let at_last = [("X-Min-Position", last.to_string())];
        let (status, page) = s.call("GET", &path, Some(staff), None, &at_last).await?;
        anyhow::ensure!(status == 200, "listing appointments: {status} {page}");
        for a in page["items"].as_array().context("items")? {
            let time = |f: &str| -> anyhow::Result<i64> {
                Ok(DateTime::parse_from_rfc3339(a[f].as_str().context("a time")?)?.timestamp())
            };
            booked.push((
                a["provider_id"].as_str().unwrap_or_default().to_owned(),
                time("starts_at")?,
                time("ends_at")?,
                a["appointment_id"].as_str().unwrap_or_default().to_owned(),
            ));
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    booked.retain(|b| providers.is_empty() || providers.contains(&b.0));
    booked.sort();
    let overlaps = booked
        .windows(2)
        .filter(|w| w[0].0 == w[1].0 && w[1].1 < w[0].2)
        .count();
    let mut won: Vec<&str> = storm
        .answers
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.id.as_str())
        .collect();
    let mut listed: Vec<&str> = booked.iter().map(|b| b.3.as_str()).collect();
    won.sort_unstable();
    listed.sort_unstable();
    println!(
        "read model: {} booked, {overlaps} overlapping pairs, {} the winners",
        booked.len(),
        if won == listed { "exactly" } else { "NOT" }
    );
    anyhow::ensure!(
        booked.len() == expected && overlaps == 0 && won == listed,
        "the read model holds {} booked appointments ({overlaps} overlapping pairs), not the {expected} winners",
        booked.len()
    );
    Ok(())
}
