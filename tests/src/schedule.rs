//! What the scheduling tests share: a server in a clinic time zone far from
//! UTC, providers with weekly hours, local dates computed from today (so no
//! test rots), bookings and free slots.

use anamnesis_domain::schedule::ClinicZone;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use serde_json::{json, Value};

use crate::db::{Backend, TestDb};
use crate::fixtures::{at, PASSWORD};
use crate::server::{Reply, TestServer};

pub const LOS_ANGELES: &str = "America/Los_Angeles";
pub const AUCKLAND: &str = "Pacific/Auckland";

/// A server over a fresh database whose clinic is in `zone` (restarts keep it).
pub async fn start_in(backend: Backend, zone: &str) -> anyhow::Result<TestServer> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    TestServer::start_on(db, url, &["--time-zone", zone]).await
}

/// The clinic's calendar as a test sees it: local dates and times in its zone.
#[derive(Debug, Clone, Copy)]
pub struct Clinic {
    pub zone: ClinicZone,
}

impl Clinic {
    pub fn new(zone: &str) -> anyhow::Result<Self> {
        let zone = ClinicZone::parse(zone).ok_or_else(|| anyhow::anyhow!("unknown zone {zone}"))?;
        Ok(Self { zone })
    }

    /// Today's local date.
    pub fn today(&self) -> NaiveDate {
        self.zone.date_of(Utc::now())
    }

    /// The first `day` at least three days after today: every time on it is
    /// more than 24 hours ahead, so cancelling there is never late.
    pub fn next(&self, day: Weekday) -> NaiveDate {
        let mut d = self.today() + Duration::days(3);
        while d.weekday() != day {
            d += Duration::days(1);
        }
        d
    }

    /// The instant of local `hh:mm` on `date`.
    pub fn instant(&self, date: NaiveDate, hh_mm: &str) -> DateTime<Utc> {
        let time = NaiveTime::parse_from_str(hh_mm, "%H:%M").unwrap_or(NaiveTime::MIN);
        self.zone.instant(date, time)
    }

    /// Local `hh:mm` on `date` as RFC 3339 with the clinic's offset.
    pub fn at(&self, date: NaiveDate, hh_mm: &str) -> String {
        self.rfc3339(self.instant(date, hh_mm))
    }

    /// An instant as RFC 3339 with the clinic's offset.
    pub fn rfc3339(&self, t: DateTime<Utc>) -> String {
        self.zone.local(t).to_rfc3339()
    }
}

/// The instant an RFC 3339 answer names (`None` when it is not one).
pub fn instant(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The next five-minute boundary at least `ahead` from now.
pub fn on_grain_after(ahead: Duration) -> DateTime<Utc> {
    let t = (Utc::now() + ahead).timestamp();
    let step = 300;
    let up = (t + step - 1) / step * step;
    DateTime::from_timestamp(up, 0).unwrap_or_else(Utc::now)
}

/// Creates a user with `role`; returns (token, user id).
pub async fn account(
    s: &TestServer,
    admin: &str,
    username: &str,
    role: &str,
) -> anyhow::Result<(String, String)> {
    let id = user_id(s, admin, username, role).await?;
    Ok((s.login(username, PASSWORD).await?, id))
}

/// Creates a user with `role` without signing in; returns its id.
pub async fn user_id(
    s: &TestServer,
    admin: &str,
    username: &str,
    role: &str,
) -> anyhow::Result<String> {
    let r = s
        .call(
            "POST",
            "/v1/users",
            Some(admin),
            Some(json!({"username": username, "password": PASSWORD, "role": role})),
            &[],
        )
        .await?;
    anyhow::ensure!(r.status == 201, "create {username}: {r:?}");
    Ok(r.body["id"].as_str().unwrap_or_default().to_owned())
}

/// Enrolls `user_id` as a provider (admin); returns the provider id.
pub async fn enroll(
    s: &TestServer,
    admin: &str,
    user_id: &str,
    display_name: &str,
    specialty: &str,
) -> anyhow::Result<String> {
    let r = s
        .call(
            "POST",
            "/v1/providers",
            Some(admin),
            Some(json!({"user_id": user_id, "display_name": display_name,
                        "specialty": specialty, "default_minutes": 30})),
            &[],
        )
        .await?;
    anyhow::ensure!(r.status == 201, "enroll {display_name}: {r:?}");
    Ok(r.body["id"].as_str().unwrap_or_default().to_owned())
}

/// The same `intervals` (pairs of local `HH:MM`) on each of `days`.
pub fn hours(days: &[&str], intervals: &[(&str, &str)]) -> Value {
    let intervals: Vec<Value> = intervals
        .iter()
        .map(|(start, end)| json!({"start": start, "end": end}))
        .collect();
    Value::Array(
        days.iter()
            .map(|d| json!({"day": d, "intervals": intervals}))
            .collect(),
    )
}

pub const WEEKDAYS: [&str; 5] = ["monday", "tuesday", "wednesday", "thursday", "friday"];
pub const EVERY_DAY: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Sets a provider's weekly hours as `token`; returns the answer.
pub async fn set_hours(
    s: &TestServer,
    token: &str,
    provider: &str,
    hours: Value,
    slot_minutes: i64,
) -> anyhow::Result<Reply> {
    let r = s
        .call(
            "PUT",
            &format!("/v1/providers/{provider}/availability"),
            Some(token),
            Some(json!({"hours": hours, "slot_minutes": slot_minutes})),
            &[],
        )
        .await?;
    anyhow::ensure!(r.status == 200, "hours of {provider}: {r:?}");
    Ok(r)
}

/// Books `patient` with `provider` at `starts_at` as `token` (default length).
pub async fn book(
    s: &TestServer,
    token: &str,
    provider: &str,
    patient: &str,
    starts_at: &str,
) -> anyhow::Result<Reply> {
    s.call(
        "POST",
        "/v1/appointments",
        Some(token),
        Some(
            json!({"provider_id": provider, "patient_id": patient, "starts_at": starts_at,
                    "reason_for_visit": "Persistent cough"}),
        ),
        &[],
    )
    .await
}

/// The starts of `provider`'s free slots on local dates `from..=to`, read
/// after `after` (if any) was applied.
pub async fn free_slots(
    s: &TestServer,
    token: &str,
    provider: &str,
    (from, to): (NaiveDate, NaiveDate),
    after: Option<&Reply>,
) -> anyhow::Result<Vec<DateTime<Utc>>> {
    let headers = after.map(at).unwrap_or_default();
    let r = s
        .call(
            "GET",
            &format!("/v1/providers/{provider}/slots?from={from}&to={to}"),
            Some(token),
            None,
            &headers,
        )
        .await?;
    anyhow::ensure!(r.status == 200, "slots of {provider}: {r:?}");
    Ok(r.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| instant(&s["starts_at"]))
        .collect())
}

/// GET `path` as `token`, after `after` was applied; the answer must be 200.
pub async fn read(s: &TestServer, token: &str, path: &str, after: &Reply) -> anyhow::Result<Reply> {
    let r = s.call("GET", path, Some(token), None, &at(after)).await?;
    anyhow::ensure!(r.status == 200, "GET {path}: {r:?}");
    Ok(r)
}

/// POST `path` with `body` as `token`.
pub async fn post(
    s: &TestServer,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Reply> {
    s.call("POST", path, Some(token), body, &[]).await
}
