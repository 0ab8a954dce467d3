//! The virtual users: who they are, what they do and how often. Each signs
//! in as a seeded account of its role (patients as their own portal
//! account; clinicians as the provider whose patients they care for; front
//! desk and billing as the clinic's staff accounts, shared), then loops:
//! one operation drawn from its role's mix, then a think time.
//!
//! Answers a real user meets and the system must give (a slot someone else
//! took, an appointment another desk already checked in, a claim another
//! clerk already worked) count as expected conflicts; any other answer
//! than the one asked for is an error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anamnesis_tests::bench::BenchServer;
use anamnesis_tests::fixtures::claim_of;
use anyhow::Context;
use chrono::{Duration as Days, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::record::{Outcome, Recorder};

/// The password of every seeded account (`anamnesis seed`'s default).
const PASSWORD: &str = anamnesis_api::seed::DEFAULT_PASSWORD;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Patient,
    Desk,
    Doctor,
    Nurse,
    Billing,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Patient => "patients",
            Role::Desk => "front desk",
            Role::Doctor => "doctors",
            Role::Nurse => "nurses",
            Role::Billing => "billing",
        }
    }
}

/// A seeded patient.
struct Seeded {
    id: String,
    /// Its MRN's number: patient `n - 1` of the seed's plan.
    number: u64,
    family_name: String,
}

/// What the whole clinic's users share: who is who, set up before the run.
struct Clinic {
    providers: Vec<String>,
    /// Provider ids by their user's id.
    by_user: HashMap<String, String>,
    patients: Vec<Seeded>,
    /// A fresh number for each registration and each drug name.
    counter: AtomicU64,
    today: NaiveDate,
}

/// One virtual user.
pub struct User {
    role: Role,
    token: Arc<String>,
    /// A patient's own patient id; a clinician's provider id.
    me: String,
    /// A patient's own provider: (provider id, user id).
    provider: Option<(String, String)>,
    /// A clinician's patients (on their care team).
    in_care: Arc<Vec<String>>,
}

/// A signed-in account: its token and user id.
struct Account {
    token: Arc<String>,
    user_id: String,
}

async fn login(s: &BenchServer, username: &str) -> anyhow::Result<Account> {
    let token = s.login(username, PASSWORD).await?;
    let user_id = claim_of(&token, "sub")?;
    Ok(Account {
        token: Arc::new(token),
        user_id,
    })
}

/// Signs in as the first seeded account of `role` (`admin`, `staff`,
/// `compliance`...) in the seed's `summary`.
pub async fn login_as(s: &BenchServer, summary: &Value, role: &str) -> anyhow::Result<String> {
    let username = summary["logins"]
        .as_array()
        .context("the seed's logins")?
        .iter()
        .find(|l| l["role"] == role)
        .and_then(|l| l["username"].as_str())
        .with_context(|| format!("the seed made no {role} account"))?;
    s.login(username, PASSWORD).await
}

/// The number at the end of a seeded name (`seed1-dr-004`: 4).
fn trailing_number(name: &str) -> Option<u64> {
    name.rsplit('-').next()?.parse().ok()
}

/// The users of a role, by the shares of a clinic: 70% patients, 10%
/// front desk, 10% doctors, 5% nurses, 5% billing.
fn roles(n: usize) -> Vec<Role> {
    let shares = [
        (Role::Patient, 70),
        (Role::Desk, 10),
        (Role::Doctor, 10),
        (Role::Nurse, 5),
        (Role::Billing, 5),
    ];
    let mut roles = Vec::with_capacity(n);
    for (role, percent) in shares {
        roles.extend(std::iter::repeat_n(role, (n * percent).div_ceil(100)));
    }
    roles.truncate(n);
    roles
}

/// `n` virtual users signed in as the seeded clinic's accounts (its
/// `summary`): each patient user as a portal account of its own while there
/// are enough, staff accounts shared.
pub async fn sign_in(s: &Arc<BenchServer>, summary: &Value, n: usize) -> anyhow::Result<Vec<User>> {
    let logins = summary["logins"].as_array().context("the seed's logins")?;
    let names = |role: &str| -> Vec<String> {
        logins
            .iter()
            .filter(|l| l["role"] == role)
            .filter_map(|l| l["username"].as_str().map(str::to_owned))
            .collect()
    };
    let staff = names("staff");
    let desk_names: Vec<&String> = staff.iter().filter(|u| u.contains("-desk-")).collect();
    let billing_name = staff
        .iter()
        .find(|u| u.contains("-billing-"))
        .context("the seed made no billing account")?;
    anyhow::ensure!(!desk_names.is_empty(), "the seed made no front desk");
    let mut clinician_names = names("doctor");
    clinician_names.extend(names("nurse"));
    let portal: Vec<String> = summary["patient_logins"]
        .as_array()
        .context("the seed's patient logins")?
        .iter()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    anyhow::ensure!(!portal.is_empty(), "the seed made no portal accounts");

    let mut desks = Vec::new();
    for name in &desk_names {
        desks.push(login(s, name).await?);
    }
    let billing = login(s, billing_name).await?;
    let clinic = Arc::new(discover(s, &desks[0].token).await?);
    let by_user = &clinic.by_user;
    let count = by_user.len() as u64;
    anyhow::ensure!(count > 0, "the clinic has no providers");

    // Clinician `k` (its username's number) is the seed's provider `k - 1`,
    // on the care team of the patients `j` with `j % providers == k - 1`.
    struct Clinician {
        role: Role,
        account: Account,
        provider: String,
        in_care: Arc<Vec<String>>,
    }
    let mut clinicians = Vec::new();
    let mut provider_of_index: HashMap<u64, (String, String)> = HashMap::new();
    for name in &clinician_names {
        let account = login(s, name).await?;
        let k = trailing_number(name).context("a clinician's number")?;
        let provider = by_user
            .get(&account.user_id)
            .with_context(|| format!("{name} is no provider"))?
            .clone();
        let in_care: Vec<String> = clinic
            .patients
            .iter()
            .filter(|p| p.number >= 1 && (p.number - 1) % count == (k - 1) % count)
            .map(|p| p.id.clone())
            .collect();
        provider_of_index.insert(k - 1, (provider.clone(), account.user_id.clone()));
        let role = if name.contains("-nurse-") {
            Role::Nurse
        } else {
            Role::Doctor
        };
        clinicians.push(Clinician {
            role,
            account,
            provider,
            in_care: Arc::new(in_care),
        });
    }
    let roles = roles(n);
    let patient_users = roles.iter().filter(|r| **r == Role::Patient).count();
    let wanted = patient_users.min(portal.len());
    eprintln!("signing in {wanted} patient accounts (one password hash each)");
    let patient_accounts: Vec<(u64, Account)> = {
        use futures::stream::{self, StreamExt, TryStreamExt};
        stream::iter(portal.into_iter().take(wanted))
            .map(|name| {
                let s = s.clone();
                async move {
                    let number = trailing_number(&name).context("a patient's number")?;
                    anyhow::Ok((number, login(&s, &name).await?))
                }
            })
            .buffered(4)
            .try_collect()
            .await?
    };
    let doctors: Vec<&Clinician> = clinicians
        .iter()
        .filter(|c| c.role == Role::Doctor)
        .collect();
    let nurses: Vec<&Clinician> = clinicians
        .iter()
        .filter(|c| c.role == Role::Nurse)
        .collect();
    anyhow::ensure!(!doctors.is_empty(), "the clinic has no doctors");
    let mut taken: HashMap<Role, usize> = HashMap::new();
    let mut users = Vec::with_capacity(n);
    for role in roles {
        let i = {
            let next = taken.entry(role).or_default();
            *next += 1;
            *next - 1
        };
        let user = match role {
            Role::Patient => {
                let (number, account) = &patient_accounts[i % patient_accounts.len()];
                User {
                    role,
                    token: account.token.clone(),
                    me: claim_of(&account.token, "pid")?,
                    provider: provider_of_index.get(&((number - 1) % count)).cloned(),
                    in_care: Arc::default(),
                }
            }
            Role::Desk | Role::Billing => {
                let account = if role == Role::Desk {
                    &desks[i % desks.len()]
                } else {
                    &billing
                };
                User {
                    role,
                    token: account.token.clone(),
                    me: account.user_id.clone(),
                    provider: None,
                    in_care: Arc::default(),
                }
            }
            Role::Doctor | Role::Nurse => {
                let pool = if role == Role::Nurse && !nurses.is_empty() {
                    &nurses
                } else {
                    &doctors
                };
                let c = pool[i % pool.len()];
                User {
                    role: c.role,
                    token: c.account.token.clone(),
                    me: c.provider.clone(),
                    provider: None,
                    in_care: c.in_care.clone(),
                }
            }
        };
        users.push(user);
    }
    CLINIC
        .set(clinic)
        .map_err(|_| anyhow::anyhow!("signed in twice"))?;
    Ok(users)
}

/// The clinic the users signed in to.
static CLINIC: std::sync::OnceLock<Arc<Clinic>> = std::sync::OnceLock::new();

/// "700 patients, 100 front desk, ...".
pub fn mix(users: &[User]) -> String {
    let mut counts: Vec<(Role, usize)> = Vec::new();
    for u in users {
        match counts.iter_mut().find(|(r, _)| *r == u.role) {
            Some((_, n)) => *n += 1,
            None => counts.push((u.role, 1)),
        }
    }
    counts.sort();
    counts
        .iter()
        .map(|(r, n)| format!("{n} {}", r.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pages through `path` (a list answering `items` and `next_cursor`).
async fn all_pages(s: &BenchServer, path: &str, token: &str) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_path = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_owned(),
        };
        let mut page = s.expect(200, ("GET", &page_path), token, None).await?;
        if let Some(items) = page["items"].as_array_mut() {
            out.append(items);
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return Ok(out);
        }
    }
}

/// Every provider and seeded patient, read as the front desk reads them.
async fn discover(s: &BenchServer, desk: &str) -> anyhow::Result<Clinic> {
    let mut by_user = HashMap::new();
    for p in all_pages(s, "/v1/providers?limit=100", desk).await? {
        let user = p["user_id"].as_str().context("a provider's user id")?;
        let provider = p["provider_id"].as_str().context("a provider id")?;
        by_user.insert(user.to_owned(), provider.to_owned());
    }
    let mut providers: Vec<String> = by_user.values().cloned().collect();
    // In a fixed order, so that the users' seeded choices repeat.
    providers.sort();
    let mut patients = Vec::new();
    for p in all_pages(s, "/v1/patients?limit=100", desk).await? {
        let mrn = p["identifiers"]
            .as_array()
            .and_then(|ids| ids.iter().find(|i| i["system"] == "mrn"))
            .and_then(|i| i["value"].as_str())
            .and_then(trailing_number);
        // At sign-in every patient is the seed's, with the MRN `S<seed>-<n>`.
        let number = mrn.context("a seeded patient without an MRN")?;
        patients.push(Seeded {
            id: p["id"].as_str().context("a patient id")?.to_owned(),
            number,
            family_name: p["family_name"]
                .as_str()
                .context("a patient's family name")?
                .to_owned(),
        });
    }
    anyhow::ensure!(!providers.is_empty(), "the clinic has no providers");
    anyhow::ensure!(!patients.is_empty(), "the clinic has no seeded patients");
    Ok(Clinic {
        providers,
        by_user,
        patients,
        counter: AtomicU64::new(0),
        today: Utc::now().date_naive(),
    })
}

/// The operations that write (commands); the rest read.
const COMMANDS: &[&str] = &[
    "patient: book",
    "patient: cancel",
    "patient: message",
    "desk: book",
    "desk: check in",
    "desk: register",
    "doctor: write note",
    "doctor: prescribe",
    "nurse: vitals",
    "billing: work claim",
];

/// Whether operation `name` is a command.
pub fn is_command(name: &str) -> bool {
    COMMANDS.contains(&name)
}

/// What one user remembers between requests.
#[derive(Default)]
struct Memory {
    /// Free slots last seen: (provider id, starts_at).
    slots: Vec<(String, String)>,
    /// Appointments this user booked and may cancel.
    booked: Vec<String>,
    /// Appointments seen booked on a schedule (to check in).
    to_check_in: Vec<String>,
    /// A thread of this patient's.
    thread: Option<String>,
    /// Claims seen: (bill id, claim id, status, amount).
    claims: Vec<(String, String, String, i64)>,
    /// Bills seen.
    bills: Vec<String>,
}

/// Runs every user for `phase`, each waiting a think time (exponential,
/// mean `think`) before each request, the first one spread over `think`.
pub async fn run(
    s: Arc<BenchServer>,
    users: Vec<User>,
    recorder: Arc<Recorder>,
    phase: Duration,
    think: Duration,
) -> anyhow::Result<()> {
    let clinic = CLINIC.get().context("no user signed in")?.clone();
    let stop_at = Instant::now() + phase;
    let progress = tokio::spawn({
        let recorder = recorder.clone();
        async move {
            let started = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!(
                    "  mixed phase: {} s, {} requests",
                    started.elapsed().as_secs(),
                    recorder.count()
                );
            }
        }
    });
    let mut tasks = Vec::with_capacity(users.len());
    for (n, user) in users.into_iter().enumerate() {
        let (s, recorder, clinic) = (s.clone(), recorder.clone(), clinic.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(n as u64);
            let mut memory = Memory::default();
            let mean = think.as_secs_f64();
            tokio::time::sleep(Duration::from_secs_f64(rng.gen::<f64>() * mean)).await;
            while Instant::now() < stop_at {
                let v = Visit {
                    s: &s,
                    user: &user,
                    clinic: &clinic,
                    recorder: &recorder,
                };
                v.act(&mut rng, &mut memory).await;
                // Exponential think time, capped at five means.
                let pause = -mean * (1.0 - rng.gen::<f64>()).ln();
                let pause = Duration::from_secs_f64(pause.min(5.0 * mean));
                let left = stop_at.saturating_duration_since(Instant::now());
                tokio::time::sleep(pause.min(left)).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    progress.abort();
    Ok(())
}

/// One user's turn.
struct Visit<'a> {
    s: &'a BenchServer,
    user: &'a User,
    clinic: &'a Clinic,
    recorder: &'a Recorder,
}

/// Picks by weight.
fn pick<'a>(rng: &mut StdRng, choices: &[(u32, &'a str)]) -> &'a str {
    let total: u32 = choices.iter().map(|c| c.0).sum();
    let mut x = rng.gen_range(0..total.max(1));
    for (w, name) in choices {
        if x < *w {
            return name;
        }
        x -= w;
    }
    choices.last().map_or("", |c| c.1)
}

impl Visit<'_> {
    /// One request of `op`, timed and recorded.
    async fn timed<F>(&self, op: &'static str, request: F) -> Option<Value>
    where
        F: std::future::Future<Output = anyhow::Result<(Outcome, Value)>>,
    {
        let started = Instant::now();
        let result = request.await;
        let (outcome, body) = match result {
            Ok((o, b)) => (Ok(o), Some(b)),
            Err(e) => (Err(e), None),
        };
        self.recorder.record(op, started, &outcome);
        match outcome {
            Ok(Outcome::Done) => body,
            _ => None,
        }
    }

    /// `method path` as this user; `ok` is the wanted status, `conflicts`
    /// the refusals a real user meets (by problem code).
    async fn call(
        &self,
        (method, path): (&str, &str),
        body: Option<&Value>,
        ok: u16,
        conflicts: &[&str],
    ) -> anyhow::Result<(Outcome, Value)> {
        let (status, answer) = self
            .s
            .call(method, path, Some(&self.user.token), body, &[])
            .await?;
        if status == ok {
            return Ok((Outcome::Done, answer));
        }
        let code = answer["code"].as_str().unwrap_or_default();
        if conflicts.contains(&code) {
            return Ok((Outcome::Conflict, answer));
        }
        anyhow::bail!("{method} {}: {status} {code}", shape(path))
    }

    /// A GET whose body is not needed.
    async fn get(&self, path: &str) -> anyhow::Result<(Outcome, Value)> {
        let status = self.s.get_status(path, &self.user.token).await?;
        anyhow::ensure!(status == 200, "GET {}: {status}", shape(path));
        Ok((Outcome::Done, Value::Null))
    }

    async fn act(&self, rng: &mut StdRng, m: &mut Memory) {
        match self.user.role {
            Role::Patient => self.patient(rng, m).await,
            Role::Desk => self.desk(rng, m).await,
            Role::Doctor | Role::Nurse => self.clinician(rng).await,
            Role::Billing => self.billing(rng, m).await,
        }
    }

    /// A day to look at: one to `weeks` weeks ahead.
    fn day_ahead(&self, rng: &mut StdRng, weeks: i64) -> NaiveDate {
        self.clinic.today + Days::days(rng.gen_range(1..=7 * weeks))
    }

    async fn free_slots(&self, op: &'static str, rng: &mut StdRng, provider: &str, m: &mut Memory) {
        let from = self.day_ahead(rng, 6);
        let to = from + Days::days(6);
        let path = format!("/v1/providers/{provider}/slots?from={from}&to={to}");
        let answer = self
            .timed(op, self.call(("GET", &path), None, 200, &[]))
            .await;
        if let Some(items) = answer.as_ref().and_then(|a| a["items"].as_array()) {
            m.slots = items
                .iter()
                .filter_map(|i| i["starts_at"].as_str())
                .map(|t| (provider.to_owned(), t.to_owned()))
                .collect();
        }
    }

    async fn book(&self, op: &'static str, rng: &mut StdRng, patient: &str, m: &mut Memory) {
        if m.slots.is_empty() {
            return;
        }
        let (provider, starts_at) = m.slots.swap_remove(rng.gen_range(0..m.slots.len()));
        let body = json!({"provider_id": provider, "patient_id": patient,
            "starts_at": starts_at, "reason_for_visit": "Follow-up"});
        let conflicts = ["slot_taken", "patient_double_booked", "conflict"];
        let answer = self
            .timed(
                op,
                self.call(("POST", "/v1/appointments"), Some(&body), 201, &conflicts),
            )
            .await;
        if let Some(id) = answer.as_ref().and_then(|a| a["id"].as_str()) {
            m.booked.push(id.to_owned());
        }
    }

    async fn patient(&self, rng: &mut StdRng, m: &mut Memory) {
        let me = &self.user.me;
        let provider = self.user.provider.clone();
        let op = pick(
            rng,
            &[
                (25, "slots"),
                (8, "book"),
                (4, "cancel"),
                (20, "record"),
                (15, "appointments"),
                (10, "bills"),
                (10, "threads"),
                (8, "message"),
            ],
        );
        match (op, &provider) {
            ("slots", Some((p, _))) => self.free_slots("patient: free slots", rng, p, m).await,
            ("book", Some((p, _))) if m.slots.is_empty() => {
                self.free_slots("patient: free slots", rng, p, m).await
            }
            ("book", Some(_)) => self.book("patient: book", rng, me, m).await,
            ("cancel", _) if !m.booked.is_empty() => {
                let id = m.booked.swap_remove(rng.gen_range(0..m.booked.len()));
                let body = json!({"reason": "Feeling better"});
                let path = format!("/v1/appointments/{id}/cancel");
                self.timed(
                    "patient: cancel",
                    self.call(("POST", &path), Some(&body), 200, &[]),
                )
                .await;
            }
            ("bills", _) => {
                let path = format!("/v1/patients/{me}/bills");
                self.timed("patient: my bills", self.get(&path)).await;
            }
            ("threads", _) => self.threads(m).await,
            ("message", Some((_, provider_user))) => match m.thread.clone() {
                Some(thread) => {
                    let body = json!({"body": "Thank you, see you then."});
                    let path = format!("/v1/threads/{thread}/messages");
                    self.timed(
                        "patient: message",
                        self.call(("POST", &path), Some(&body), 201, &[]),
                    )
                    .await;
                }
                None => {
                    let body = json!({"patient_id": me, "subject": "A question",
                        "body": "Should I fast before the blood test?",
                        "participants": [provider_user]});
                    let answer = self
                        .timed(
                            "patient: message",
                            self.call(("POST", "/v1/threads"), Some(&body), 201, &[]),
                        )
                        .await;
                    m.thread = answer.and_then(|a| a["id"].as_str().map(str::to_owned));
                }
            },
            ("appointments", _) | ("cancel", _) => {
                let path = format!("/v1/patients/{me}/appointments");
                self.timed("patient: my appointments", self.get(&path))
                    .await;
            }
            _ => {
                let path = format!("/v1/patients/{me}");
                self.timed("patient: my record", self.get(&path)).await;
            }
        }
    }

    async fn threads(&self, m: &mut Memory) {
        let answer = self
            .timed(
                "patient: my threads",
                self.call(("GET", "/v1/me/threads"), None, 200, &[]),
            )
            .await;
        if let Some(first) = answer
            .as_ref()
            .and_then(|a| a["items"].as_array())
            .and_then(|items| items.first())
        {
            m.thread = first["thread_id"].as_str().map(str::to_owned);
        }
    }

    fn any_patient(&self, rng: &mut StdRng) -> &Seeded {
        &self.clinic.patients[rng.gen_range(0..self.clinic.patients.len())]
    }

    fn any_provider(&self, rng: &mut StdRng) -> &str {
        &self.clinic.providers[rng.gen_range(0..self.clinic.providers.len())]
    }

    async fn desk(&self, rng: &mut StdRng, m: &mut Memory) {
        let op = pick(
            rng,
            &[
                (30, "search"),
                (25, "day"),
                (15, "check in"),
                (20, "book"),
                (5, "register"),
            ],
        );
        match op {
            "search" => {
                let name = &self.any_patient(rng).family_name;
                let prefix: String = name.chars().take(3).collect();
                let path = format!(
                    "/v1/patients?name={}&limit=20",
                    anamnesis_tests::bench::query_value(&prefix)
                );
                self.timed("desk: search patients", self.get(&path)).await;
            }
            "check in" if !m.to_check_in.is_empty() => {
                let id = m
                    .to_check_in
                    .swap_remove(rng.gen_range(0..m.to_check_in.len()));
                let path = format!("/v1/appointments/{id}/check-in");
                // Another desk (or the patient's cancellation) got there first.
                let conflicts = ["invalid_transition"];
                self.timed(
                    "desk: check in",
                    self.call(("POST", &path), None, 200, &conflicts),
                )
                .await;
            }
            "book" if !m.slots.is_empty() => {
                let patient = self.any_patient(rng).id.clone();
                self.book("desk: book", rng, &patient, m).await;
            }
            "book" => {
                let provider = self.any_provider(rng).to_owned();
                self.free_slots("desk: free slots", rng, &provider, m).await;
            }
            "register" => {
                let n = self.clinic.counter.fetch_add(1, Ordering::Relaxed);
                let body = json!({"family_name": format!("Walkin{n}"), "given_name": "Load",
                    "birth_date": "1975-06-15", "sex": "unknown",
                    "identifiers": [{"system": "mrn", "value": format!("LOAD-{n}")}]});
                self.timed(
                    "desk: register",
                    self.call(("POST", "/v1/patients"), Some(&body), 201, &[]),
                )
                .await;
            }
            _ => {
                // A provider's day, soon: booked visits there are checked in.
                let provider = self.any_provider(rng).to_owned();
                let day = self.clinic.today + Days::days(rng.gen_range(1..=3));
                let path = format!("/v1/providers/{provider}/schedule?date={day}");
                let answer = self
                    .timed(
                        "desk: provider day",
                        self.call(("GET", &path), None, 200, &[]),
                    )
                    .await;
                if let Some(list) = answer.as_ref().and_then(|a| a["appointments"].as_array()) {
                    m.to_check_in = list
                        .iter()
                        .filter(|a| a["status"] == "booked")
                        .filter_map(|a| a["appointment_id"].as_str().map(str::to_owned))
                        .collect();
                }
            }
        }
    }

    async fn clinician(&self, rng: &mut StdRng) {
        let in_care = &self.user.in_care;
        if in_care.is_empty() {
            let path = format!(
                "/v1/providers/{}/schedule?date={}",
                self.user.me, self.clinic.today
            );
            self.timed("clinician: my day", self.get(&path)).await;
            return;
        }
        let patient = in_care[rng.gen_range(0..in_care.len())].clone();
        let doctor = self.user.role == Role::Doctor;
        let choices: &[(u32, &str)] = if doctor {
            &[
                (20, "day"),
                (35, "chart"),
                (15, "patient"),
                (15, "note"),
                (5, "prescribe"),
                (10, "medications"),
            ]
        } else {
            &[(30, "day"), (35, "chart"), (35, "vitals")]
        };
        match pick(rng, choices) {
            "chart" => {
                let path = format!("/v1/patients/{patient}/chart");
                let op = if doctor {
                    "doctor: read chart"
                } else {
                    "nurse: read chart"
                };
                self.timed(op, self.get(&path)).await;
            }
            "patient" => {
                let path = format!("/v1/patients/{patient}");
                self.timed("doctor: read patient", self.get(&path)).await;
            }
            "medications" => {
                let path = format!("/v1/patients/{patient}/medications?status=active");
                self.timed("doctor: medications", self.get(&path)).await;
            }
            "note" => {
                let body = json!({"kind": "note", "subjective": "Feels better since the last visit",
                    "assessment": "Improving", "plan": "Review in four weeks"});
                let path = format!("/v1/patients/{patient}/chart");
                self.timed(
                    "doctor: write note",
                    self.call(("POST", &path), Some(&body), 201, &[]),
                )
                .await;
            }
            "prescribe" => {
                let n = self.clinic.counter.fetch_add(1, Ordering::Relaxed);
                let body = json!({"order": {
                    "medication": {"name": format!("{} 10 mg tablet", drug_name(n))},
                    "dose": {"amount": 10, "unit": "mg"}, "route": "oral",
                    "frequency": {"kind": "times_a_day", "times": ["08:00"]},
                    "starts_at": Utc::now().to_rfc3339(), "duration_days": 30, "refills": 1}});
                let path = format!("/v1/patients/{patient}/medications");
                let conflicts = ["duplicate_medication", "allergy_conflict"];
                self.timed(
                    "doctor: prescribe",
                    self.call(("POST", &path), Some(&body), 201, &conflicts),
                )
                .await;
            }
            "vitals" => {
                let body = json!({"kind": "vitals", "taken_at": Utc::now().to_rfc3339(),
                    "systolic_mmhg": rng.gen_range(105..140), "diastolic_mmhg": rng.gen_range(65..90),
                    "heart_rate_bpm": rng.gen_range(55..95), "temperature_c": 36.8,
                    "spo2_percent": rng.gen_range(95..100)});
                let path = format!("/v1/patients/{patient}/chart");
                self.timed(
                    "nurse: vitals",
                    self.call(("POST", &path), Some(&body), 201, &[]),
                )
                .await;
            }
            _ => {
                let day = self.clinic.today + Days::days(rng.gen_range(0..=2));
                let path = format!("/v1/providers/{}/schedule?date={day}", self.user.me);
                let op = if doctor {
                    "doctor: my day"
                } else {
                    "nurse: my day"
                };
                self.timed(op, self.get(&path)).await;
            }
        }
    }

    async fn billing(&self, rng: &mut StdRng, m: &mut Memory) {
        let op = pick(
            rng,
            &[(30, "bills"), (30, "bill"), (15, "aging"), (25, "claim")],
        );
        let workable = m
            .claims
            .iter()
            .position(|c| c.2 == "submitted" || c.2 == "accepted");
        match (op, workable) {
            ("claim", Some(i)) => {
                let (bill, claim, status, amount) = m.claims.swap_remove(i);
                let body = if status == "submitted" {
                    json!({"outcome": "accepted"})
                } else {
                    json!({"outcome": "adjudicated", "paid": amount})
                };
                let path = format!("/v1/bills/{bill}/claims/{claim}/response");
                let answer = self
                    .timed(
                        "billing: work claim",
                        self.call(("POST", &path), Some(&body), 200, &["claim_state"]),
                    )
                    .await;
                if answer.is_some() && status == "submitted" {
                    m.claims.push((bill, claim, "accepted".into(), amount));
                }
            }
            ("bill", _) | ("claim", None) if !m.bills.is_empty() => {
                let bill = m.bills[rng.gen_range(0..m.bills.len())].clone();
                let path = format!("/v1/bills/{bill}");
                let answer = self
                    .timed(
                        "billing: read bill",
                        self.call(("GET", &path), None, 200, &[]),
                    )
                    .await;
                for c in answer
                    .as_ref()
                    .and_then(|a| a["claims"].as_array())
                    .into_iter()
                    .flatten()
                {
                    // A claim as the bill shows it; one without an amount
                    // is not worked (a payer answer needs it).
                    if let (Some(claim), Some(status), Some(amount)) = (
                        c["claim_id"].as_str(),
                        c["status"].as_str(),
                        c["amount"].as_i64(),
                    ) {
                        m.claims.retain(|k| k.1 != claim);
                        m.claims
                            .push((bill.clone(), claim.to_owned(), status.to_owned(), amount));
                    }
                }
            }
            ("aging", _) => {
                self.timed("billing: aging", self.get("/v1/billing/aging"))
                    .await;
            }
            _ => {
                // Recent issued bills: their claims are still open.
                let from = self.clinic.today - Days::days(rng.gen_range(3..=14));
                let path = format!("/v1/bills?status=issued&from={from}&limit=50");
                let answer = self
                    .timed(
                        "billing: list bills",
                        self.call(("GET", &path), None, 200, &[]),
                    )
                    .await;
                if let Some(items) = answer.as_ref().and_then(|a| a["items"].as_array()) {
                    m.bills = items
                        .iter()
                        .filter_map(|b| b["bill_id"].as_str().map(str::to_owned))
                        .collect();
                }
            }
        }
    }
}

/// A made-up drug name per number, letters only (drugs are told apart by
/// the words of their names).
fn drug_name(mut n: u64) -> String {
    let mut name = String::from("Loadi");
    loop {
        name.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            return name;
        }
    }
}

/// A path with its ids and query left out: what an error message may say
/// (no patient data, a bounded set of shapes).
fn shape(path: &str) -> String {
    path.split('?')
        .next()
        .unwrap_or_default()
        .split('/')
        .map(|part| {
            if part.len() == 36 && part.chars().filter(|c| *c == '-').count() == 4 {
                "{id}"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
