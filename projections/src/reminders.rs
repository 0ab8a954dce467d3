//! Reminders (ADR 0020): 24 h and 1 h before an appointment, and at each
//! dose of an active medication, to the patient's account.
//!
//! A reminder is a row keyed on what it is about, the occurrence and the
//! offset (`appointment.<id>.<start>.<24h|1h>`, `dose.<id>.<time>`), so it
//! exists once however often it is scheduled. The notifications consumer
//! schedules appointment reminders as it reads bookings, and withdraws the
//! pending ones when the appointment is moved, cancelled or over; the
//! sender plans dose reminders a little ahead from the active orders.
//!
//! The sender, every few seconds, takes the due ones (at most a capped
//! number per round, oldest first) and **re-checks each on the log** before
//! it sends: the appointment still booked at that time, the medication
//! still active. A reminder due while nothing ran is sent late, but never
//! after the appointment starts (it is `missed` then). Sending is one
//! transaction that moves the row from `pending` to `sent` (compare-and-set:
//! two senders never both send) and hands it to the other channels
//! (`crate::deliveries`); a restart neither loses nor repeats one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use tokio::sync::watch;

use anamnesis_commands::{Db, LogReader, StoreError};
use anamnesis_domain::codec::{DecodeError, StoredForm};
use anamnesis_domain::medication::{Medication, MedicationStatus, Order};
use anamnesis_domain::schedule::{Appointment, ClinicZone, Status};

use crate::runner::{self, Lease, ProjectionError, Report, Tx};
use crate::sql::{self, Value};

/// The sender's name (its lease and its entry in `/readyz`).
pub const NAME: &str = "reminders";

/// How long before an appointment its reminders are due.
pub const APPOINTMENT_OFFSETS: [(&str, i64); 2] = [("24h", 24 * 3600), ("1h", 3600)];

/// How late a dose reminder may still be sent.
const DOSE_GRACE: i64 = 30 * 60;

/// How the sender runs.
#[derive(Debug, Clone, Copy)]
pub struct ReminderConfig {
    /// The clinic's zone (dose times of day are local).
    pub zone: ClinicZone,
    /// How often it looks for due reminders.
    pub every: Duration,
    /// At most this many sent per round: a backlog drains over rounds.
    pub cap: i64,
    /// Dose reminders are planned this far ahead.
    pub lookahead: Duration,
}

impl ReminderConfig {
    /// Every 5 s, 200 a round, doses planned 2 h ahead.
    pub fn new(zone: ClinicZone) -> Self {
        Self {
            zone,
            every: Duration::from_secs(5),
            cap: 200,
            lookahead: Duration::from_secs(2 * 3600),
        }
    }
}

// --- scheduling, inside the notifications consumer's transaction ------------

/// A reminder of an appointment, as scheduled: pending, or withdrawn at
/// `withdrawn_at` before it was written (moved or cancelled in the same
/// batch as it was scheduled).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppointmentReminder {
    pub(crate) id: String,
    pub(crate) appointment: String,
    pub(crate) patient: String,
    pub(crate) occurrence: i64,
    pub(crate) due_at: i64,
    pub(crate) withdrawn_at: Option<i64>,
}

/// The reminders of an appointment of `patient` starting at `start`,
/// booked (or moved) at `at`: an offset already past when it was booked is
/// not scheduled (the booking confirmation said it).
pub(crate) fn appointment_reminders(
    appointment: &str,
    patient: &str,
    start: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Vec<AppointmentReminder> {
    let occurrence = start.timestamp();
    APPOINTMENT_OFFSETS
        .iter()
        .filter(|(_, before)| occurrence - before > at.timestamp())
        .map(|(offset, before)| AppointmentReminder {
            id: format!("appointment.{appointment}.{occurrence}.{offset}"),
            appointment: appointment.to_owned(),
            patient: patient.to_owned(),
            occurrence,
            due_at: occurrence - before,
            withdrawn_at: None,
        })
        .collect()
}

/// Writes appointment reminders scheduled in one batch. One already there
/// (same appointment, time and offset) stays as it is (sent, missed,
/// pending), unless it was withdrawn: then the appointment moved away and
/// back, and the reminder is as the batch left it (pending again, or
/// withdrawn again later in the batch).
pub(crate) async fn insert_appointment_reminders(
    tx: &mut Tx,
    reminders: &[AppointmentReminder],
) -> Result<(), ProjectionError> {
    if reminders.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<Value>> = reminders
        .iter()
        .map(|r| {
            let status = if r.withdrawn_at.is_some() {
                "cancelled"
            } else {
                "pending"
            };
            vec![
                r.id.as_str().into(),
                "appointment_reminder".into(),
                "Appointment reminder".into(),
                "appointment".into(),
                r.appointment.as_str().into(),
                r.patient.as_str().into(),
                r.occurrence.into(),
                r.due_at.into(),
                status.into(),
                Value::Int(r.withdrawn_at),
            ]
        })
        .collect();
    sql::insert_rows(
        tx,
        "reminders (reminder_id, kind, title, subject_type, subject_id, patient_id, \
         occurrence, due_at, status, decided_at)",
        "ON CONFLICT (reminder_id) DO UPDATE \
         SET status = excluded.status, decided_at = excluded.decided_at \
         WHERE reminders.status = 'cancelled'",
        &rows,
    )
    .await?;
    Ok(())
}

/// Withdraws the pending reminders of `subject` (cancelled, over), or only
/// those of one `occurrence` (moved away from it): a rebuild replaying an
/// old move must not withdraw the reminders of the time it moved to.
pub(crate) async fn withdraw(
    tx: &mut Tx,
    subject: &str,
    occurrence: Option<DateTime<Utc>>,
    at: i64,
) -> Result<(), ProjectionError> {
    let only = occurrence.map_or(-1, |o| o.timestamp());
    sql::execute(
        tx,
        "UPDATE reminders SET status = 'cancelled', decided_at = $2 \
         WHERE subject_id = $1 AND status = 'pending' AND ($3 = -1 OR occurrence = $3)",
        &[subject.into(), at.into(), only.into()],
    )
    .await?;
    Ok(())
}

/// The pending reminders of each of `subjects`, as (id, occurrence), in
/// one statement; every subject has an entry, empty when it has none. A
/// damaged row is named at `position` (the batch's first event).
///
/// Nothing on SQLite: there a rebuild folds a page in a deferred transaction
/// that writes temporary tables, and `reminders`, which is live. Reading it
/// first would give the transaction a read snapshot that cannot become a
/// write once the server commits in between (`SQLITE_BUSY_SNAPSHOT`, which
/// no busy timeout waits out), so there each withdrawal updates the table at
/// once, a write first.
pub(crate) async fn pending_of(
    tx: &mut Tx,
    subjects: &std::collections::BTreeSet<String>,
    position: i64,
) -> Result<std::collections::HashMap<String, Vec<(String, i64)>>, ProjectionError> {
    if matches!(tx, Tx::Sqlite(_)) {
        return Ok(std::collections::HashMap::new());
    }
    let mut found: std::collections::HashMap<String, Vec<(String, i64)>> =
        subjects.iter().map(|s| (s.clone(), Vec::new())).collect();
    if subjects.is_empty() {
        return Ok(found);
    }
    let keys: Vec<Vec<Value>> = subjects.iter().map(|s| vec![s.as_str().into()]).collect();
    let rows = sql::select_with_values(
        tx,
        "subject_id",
        &keys,
        "SELECT r.subject_id || ' ' || r.occurrence || ' ' || r.reminder_id \
         FROM reminders r JOIN v ON r.subject_id = v.subject_id WHERE r.status = 'pending'",
    )
    .await?;
    for row in rows {
        let mut parts = row.splitn(3, ' ');
        let (Some(subject), Some(occurrence), Some(id)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(damaged_row(position));
        };
        let occurrence = occurrence.parse().map_err(|_| damaged_row(position))?;
        found
            .get_mut(subject)
            .ok_or_else(|| damaged_row(position))?
            .push((id.to_owned(), occurrence));
    }
    Ok(found)
}

fn damaged_row(position: i64) -> ProjectionError {
    ProjectionError::Event {
        position,
        detail: "a stored reminder without its subject, occurrence or id".into(),
    }
}

/// Withdraws reminders by id, each at its own time (`rows`: id, when),
/// those still pending; one statement.
pub(crate) async fn withdraw_rows(tx: &mut Tx, rows: &[Vec<Value>]) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    sql::with_values(
        tx,
        "reminder_id, decided_at",
        rows,
        "UPDATE reminders SET status = 'cancelled', decided_at = v.decided_at FROM v \
         WHERE reminders.reminder_id = v.reminder_id AND reminders.status = 'pending'",
    )
    .await?;
    Ok(())
}

// --- the sender -------------------------------------------------------------

/// Why a round failed (never patient data).
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("reminder {0}: {1}")]
    Reminder(String, String),
}

/// Plans and sends reminders until `shutdown` turns true; one process at a
/// time on Postgres. Reports like a projector, not essential to readiness;
/// `anamnesis_reminders_sent_total` counts what it sent.
pub async fn run(
    reader: LogReader,
    db: Db,
    config: ReminderConfig,
    report: Report,
    mut shutdown: watch::Receiver<bool>,
) {
    let Report {
        progress,
        failure,
        active,
    } = report;
    let mut lease = Lease::new(&db, NAME);
    let mut pause = config.every;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let held = lease.held().await;
        active.send_if_modified(|a| std::mem::replace(a, held) != held);
        let round = if held {
            round(&reader, &db, &config, Utc::now()).await
        } else {
            Ok(0)
        };
        match round {
            Ok(sent) => {
                runner::report_recovered(NAME, &failure);
                pause = config.every;
                // Its position is the log's head as of its last good round,
                // so `/readyz` and the lag metric read as for a projector.
                if let Ok(head) = reader.head().await {
                    progress.send_if_modified(|p| std::mem::replace(p, head) != head);
                }
                if sent >= config.cap {
                    // A backlog: the next round at once, still capped.
                    continue;
                }
            }
            Err(error) => {
                let at = *progress.borrow();
                runner::report_stuck(NAME, &failure, at, &error.to_string());
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One round at `now`: plans the doses ahead, then sends what is due.
/// Returns how many were sent.
pub async fn round(
    reader: &LogReader,
    db: &Db,
    config: &ReminderConfig,
    now: DateTime<Utc>,
) -> Result<i64, RoundError> {
    plan_doses(db, config, now).await?;
    let due = due(db, now.timestamp(), config.cap).await?;
    // A sent reminder's place in the inbox: the log's head this round.
    let head = if due.is_empty() {
        0
    } else {
        reader.head().await?
    };
    let mut sent = 0;
    for reminder in due {
        if decide(reader, db, &reminder, (now, head)).await? {
            sent += 1;
        }
    }
    if sent > 0 {
        metrics::counter!("anamnesis_reminders_sent_total").increment(sent as u64);
    }
    Ok(sent)
}

/// Dose reminders for the active orders' doses from a little before `now`
/// to the lookahead (kept once by their key, so planning again is harmless).
async fn plan_doses(
    db: &Db,
    config: &ReminderConfig,
    now: DateTime<Utc>,
) -> Result<(), RoundError> {
    let sql = "SELECT m.medication_id, m.patient_id, m.body FROM medications m \
               JOIN notify_accounts a ON a.patient_id = m.patient_id \
               WHERE m.status = 'active' ORDER BY m.medication_id";
    let rows: Vec<(String, String, String)> = match db {
        Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await?,
    };
    let from = now - chrono::Duration::seconds(DOSE_GRACE);
    let to = now
        + chrono::Duration::from_std(config.lookahead)
            .unwrap_or_else(|_| chrono::Duration::hours(2));
    let mut planned: Vec<Vec<Value>> = Vec::new();
    for (medication, patient, body) in rows {
        let order: Order = serde_json::from_str(&body).map_err(|e| {
            RoundError::Reminder(
                medication.clone(),
                format!(
                    "order: {}",
                    anamnesis_domain::codec::describe_json_error(&e)
                ),
            )
        })?;
        for at in order.doses(config.zone, from, to) {
            let t = at.timestamp();
            planned.push(vec![
                format!("dose.{medication}.{t}").into(),
                "dose_reminder".into(),
                "Medication reminder".into(),
                "medication".into(),
                medication.as_str().into(),
                patient.as_str().into(),
                t.into(),
                t.into(),
                "pending".into(),
            ]);
        }
    }
    if planned.is_empty() {
        return Ok(());
    }
    let _turn = db.write_turn().await;
    let mut tx = runner::begin(db).await?;
    sql::insert_rows(
        &mut tx,
        "reminders (reminder_id, kind, title, subject_type, subject_id, patient_id, \
         occurrence, due_at, status)",
        "ON CONFLICT (reminder_id) DO NOTHING",
        &planned,
    )
    .await?;
    commit(tx).await?;
    Ok(())
}

/// A reminder due to be sent.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Due {
    reminder_id: String,
    subject_type: String,
    subject_id: String,
    patient_id: String,
    occurrence: i64,
}

async fn due(db: &Db, now: i64, cap: i64) -> Result<Vec<Due>, sqlx::Error> {
    let sql = "SELECT reminder_id, subject_type, subject_id, patient_id, occurrence \
               FROM reminders WHERE status = 'pending' AND due_at <= $1 \
               ORDER BY due_at, reminder_id LIMIT $2";
    Ok(match db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(now).bind(cap).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(now).bind(cap).fetch_all(p).await?,
    })
}

/// What became of a due reminder.
enum Outcome {
    Send,
    /// Too late: the appointment started, the dose's grace passed.
    Missed,
    /// The record no longer says it: moved, cancelled, stopped.
    Withdrawn,
}

/// Re-checks `r` on the log and sends or closes it. Returns whether it
/// was sent by this call.
async fn decide(
    reader: &LogReader,
    db: &Db,
    r: &Due,
    (now, position): (DateTime<Utc>, i64),
) -> Result<bool, RoundError> {
    let outcome = match r.subject_type.as_str() {
        "appointment" => {
            let Some(a) = fold::<Appointment>(reader, "appointment", &r.subject_id).await? else {
                return withdraw_erased(db, r, now).await;
            };
            let booked_then = a.status() == Status::Booked
                && a.booking()
                    .is_some_and(|b| b.period.start.timestamp() == r.occurrence);
            if !booked_then {
                Outcome::Withdrawn
            } else if r.occurrence <= now.timestamp() {
                Outcome::Missed
            } else {
                Outcome::Send
            }
        }
        "medication" => {
            let Some(m) = fold::<Medication>(reader, "medication", &r.subject_id).await? else {
                return withdraw_erased(db, r, now).await;
            };
            if m.status() != MedicationStatus::Active || m.course_over(now) {
                Outcome::Withdrawn
            } else if r.occurrence + DOSE_GRACE <= now.timestamp() {
                Outcome::Missed
            } else {
                Outcome::Send
            }
        }
        other => {
            return Err(RoundError::Reminder(
                r.reminder_id.clone(),
                format!("unknown subject type {other:?}"),
            ))
        }
    };
    let at = now.timestamp();
    let _turn = db.write_turn().await;
    let mut tx = runner::begin(db).await?;
    let moved = match outcome {
        Outcome::Send => {
            let account = sql::returning(
                &mut tx,
                "SELECT user_id FROM notify_accounts WHERE patient_id = $1",
                &[r.patient_id.as_str().into()],
            )
            .await?
            .into_iter()
            .next();
            match account {
                Some(user) => {
                    let moved = sql::execute(
                        &mut tx,
                        "UPDATE reminders SET status = 'sent', recipient_id = $2, \
                         decided_at = $3, position = $4 \
                         WHERE reminder_id = $1 AND status = 'pending'",
                        &[
                            r.reminder_id.as_str().into(),
                            user.as_str().into(),
                            at.into(),
                            position.into(),
                        ],
                    )
                    .await?;
                    if moved == 1 {
                        // The other channels, in the same transaction.
                        let (kind, title) = match r.subject_type.as_str() {
                            "appointment" => ("appointment_reminder", "Appointment reminder"),
                            _ => ("dose_reminder", "Medication reminder"),
                        };
                        crate::deliveries::enqueue(
                            &mut tx,
                            &crate::deliveries::Outgoing {
                                notification_id: &r.reminder_id,
                                recipient_id: &user,
                                kind,
                                title,
                                urgent: false,
                                patient_id: Some(&r.patient_id),
                                subject_type: &r.subject_type,
                                subject_id: &r.subject_id,
                                position,
                                caused_at: now,
                            },
                        )
                        .await?;
                    }
                    moved
                }
                None => close(&mut tx, r, "no_account", at).await?,
            }
        }
        Outcome::Missed => close(&mut tx, r, "missed", at).await?,
        Outcome::Withdrawn => close(&mut tx, r, "cancelled", at).await?,
    };
    commit(tx).await?;
    Ok(moved == 1 && matches!(outcome, Outcome::Send))
}

async fn close(tx: &mut Tx, r: &Due, status: &str, at: i64) -> Result<u64, sqlx::Error> {
    sql::execute(
        tx,
        "UPDATE reminders SET status = $2, decided_at = $3 \
         WHERE reminder_id = $1 AND status = 'pending'",
        &[r.reminder_id.as_str().into(), status.into(), at.into()],
    )
    .await
}

/// The state of stream `id` of `aggregate_type`, folded from the log (the
/// write side's truth, never a read model that may lag); `None` when its
/// patient was erased.
async fn fold<A>(
    reader: &LogReader,
    aggregate_type: &str,
    id: &str,
) -> Result<Option<A>, RoundError>
where
    A: Aggregate + Default,
    A::Event: StoredForm,
{
    let mut state = A::default();
    for e in reader.read_stream(aggregate_type, id, 0).await? {
        let event = match A::Event::from_stored(&e.event_type, &e.event_version, &e.payload) {
            Ok(event) => event,
            Err(DecodeError::Erased { .. }) => return Ok(None),
            Err(err) => return Err(RoundError::Reminder(id.to_owned(), err.to_string())),
        };
        state.apply(event);
    }
    Ok(Some(state))
}

/// A reminder about a patient who was erased is never sent: it is closed
/// (the erasure, once the notifications consumer applies it, deletes it).
async fn withdraw_erased(db: &Db, r: &Due, now: DateTime<Utc>) -> Result<bool, RoundError> {
    let _turn = db.write_turn().await;
    let mut tx = runner::begin(db).await?;
    close(&mut tx, r, "cancelled", now.timestamp()).await?;
    commit(tx).await?;
    Ok(false)
}

async fn commit(tx: Tx) -> Result<(), sqlx::Error> {
    match tx {
        Tx::Postgres(t) => t.commit().await,
        Tx::Sqlite(t) => t.commit().await,
    }
}
