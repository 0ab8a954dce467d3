//! The scheduling read models: `providers`, `closures` (clinic holidays and
//! providers' time off) and `appointments`, and their queries. Times are
//! whole seconds since the epoch (migration 0007).
//!
//! These tables answer lists and calendars; no booking is decided from them
//! (the write side decides from the log and the calendar keys, ADR 0008).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use anamnesis_commands::Db;
use anamnesis_domain::codec::{DecodeError, StoredForm};
use anamnesis_domain::schedule::{
    AppointmentEvent, Booking, ClinicEvent, Closure, Period, Profile, ProviderEvent, Status,
};

use crate::runner::{Decode, Envelope, ProjectionError, Projector, Tx};
use crate::sql::{self, Value};

/// The projector's checkpoint name.
pub const NAME: &str = "schedule";

/// An event of any scheduling aggregate.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleEvent {
    Provider(ProviderEvent),
    Clinic(ClinicEvent),
    Appointment(AppointmentEvent),
}

impl Decode for ScheduleEvent {
    fn decode(event_type: &str, version: &str, payload: &str) -> Result<Self, DecodeError> {
        let kind = event_type.split('.').next().unwrap_or("");
        Ok(match kind {
            "provider" => Self::Provider(ProviderEvent::from_stored(event_type, version, payload)?),
            "clinic_calendar" => {
                Self::Clinic(ClinicEvent::from_stored(event_type, version, payload)?)
            }
            "appointment" => {
                Self::Appointment(AppointmentEvent::from_stored(event_type, version, payload)?)
            }
            _ => {
                return Err(DecodeError::Unknown {
                    event_type: event_type.to_owned(),
                    version: version.to_owned(),
                })
            }
        })
    }
}

/// Projects providers, closures and appointments.
#[derive(Debug, Clone, Copy, Default)]
pub struct Schedule;

impl Projector for Schedule {
    type Event = ScheduleEvent;

    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["provider", "clinic_calendar", "appointment"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["providers", "closures", "appointments"]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<ScheduleEvent>],
    ) -> Result<(), ProjectionError> {
        let fold = Fold::of(events)?;
        fold.write(tx).await
    }

    /// The patient's appointments go (their times are free again).
    async fn erase(&self, tx: &mut Tx, patient: uuid::Uuid) -> Result<(), ProjectionError> {
        crate::sql::erase_patient(
            tx,
            &["DELETE FROM appointments WHERE patient_id = $1"],
            patient,
        )
        .await?;
        Ok(())
    }
}

fn seconds(t: DateTime<Utc>) -> Value {
    t.timestamp().into()
}

fn flag(b: bool) -> Value {
    i64::from(b).into()
}

/// An appointment's row as the batch leaves it.
#[derive(Default)]
struct AppointmentChange {
    /// Booked in this batch: the whole row.
    booked: Option<(Booking, String, i64)>,
    period: Option<Period>,
    status: Option<Status>,
    cancelled: Option<(String, bool, bool)>,
    first: i64,
    last: i64,
}

/// A batch folded per row.
#[derive(Default)]
struct Fold {
    profiles: BTreeMap<String, (Profile, i64)>,
    slot_lengths: BTreeMap<String, (i64, i64)>,
    closures_added: Vec<(Closure, Option<String>, i64)>,
    closures_removed: Vec<String>,
    appointments: BTreeMap<String, AppointmentChange>,
}

impl Fold {
    fn of(events: &[Envelope<ScheduleEvent>]) -> Result<Self, ProjectionError> {
        let mut f = Fold::default();
        for e in events {
            let id = e.id().to_owned();
            let position = e.position();
            match &e.event {
                ScheduleEvent::Provider(p) => match p {
                    ProviderEvent::Enrolled { profile } => {
                        f.profiles.insert(id, (profile.clone(), position));
                    }
                    ProviderEvent::AvailabilitySet { availability } => {
                        f.slot_lengths
                            .insert(id, (availability.slot_minutes, position));
                    }
                    ProviderEvent::TimeOffAdded { closure } => {
                        f.closures_added.push((closure.clone(), Some(id), position))
                    }
                    ProviderEvent::TimeOffRemoved { closure_id } => {
                        f.remove_closure(closure_id.to_string())
                    }
                    // The appointment's own `Booked` carries the overbooking
                    // to the read model; the provider's note is for closures.
                    ProviderEvent::Overbooked { .. } => {}
                },
                ScheduleEvent::Clinic(c) => match c {
                    ClinicEvent::HolidayAdded { closure } => {
                        f.closures_added.push((closure.clone(), None, position))
                    }
                    ClinicEvent::HolidayRemoved { closure_id } => {
                        f.remove_closure(closure_id.to_string())
                    }
                },
                ScheduleEvent::Appointment(a) => {
                    let change = f.appointments.entry(id).or_insert(AppointmentChange {
                        first: position,
                        ..Default::default()
                    });
                    change.last = position;
                    match a {
                        AppointmentEvent::Booked { booking } => {
                            change.booked =
                                Some((booking.clone(), e.stored.actor_id.clone(), position));
                        }
                        AppointmentEvent::Rescheduled { to, .. } => change.period = Some(*to),
                        AppointmentEvent::Cancelled {
                            reason,
                            late,
                            by_clinic,
                        } => {
                            change.status = Some(Status::Cancelled);
                            change.cancelled = Some((reason.clone(), *late, *by_clinic));
                        }
                        AppointmentEvent::CheckedIn { .. } => {
                            change.status = Some(Status::CheckedIn)
                        }
                        AppointmentEvent::Started { .. } => {
                            change.status = Some(Status::InProgress)
                        }
                        AppointmentEvent::Completed { .. } => {
                            change.status = Some(Status::Completed)
                        }
                        AppointmentEvent::NoShow { .. } => change.status = Some(Status::NoShow),
                    }
                }
            }
        }
        Ok(f)
    }

    /// A closure removed: dropped from this batch's additions, and from the table.
    fn remove_closure(&mut self, id: String) {
        self.closures_added
            .retain(|(c, _, _)| c.closure_id.to_string() != id);
        self.closures_removed.push(id);
    }

    async fn write(self, tx: &mut Tx) -> Result<(), ProjectionError> {
        let providers: Vec<Vec<Value>> = self
            .profiles
            .iter()
            .map(|(id, (p, position))| {
                vec![
                    id.as_str().into(),
                    p.user_id.to_string().into(),
                    p.kind.as_str().into(),
                    p.display_name.as_str().into(),
                    p.specialty.as_str().into(),
                    p.specialty.to_lowercase().into(),
                    p.default_minutes.into(),
                    (*position).into(),
                ]
            })
            .collect();
        sql::insert_rows(
            tx,
            "providers (provider_id, user_id, kind, display_name, specialty, specialty_key, \
             default_minutes, version)",
            "ON CONFLICT (provider_id) DO NOTHING",
            &providers,
        )
        .await?;
        let slots: Vec<Vec<Value>> = self
            .slot_lengths
            .iter()
            .map(|(id, (minutes, position))| {
                vec![id.as_str().into(), (*minutes).into(), (*position).into()]
            })
            .collect();
        if !slots.is_empty() {
            sql::with_values(
                tx,
                "provider_id, slot_minutes, version",
                &slots,
                "UPDATE providers SET slot_minutes = v.slot_minutes, version = v.version \
                 FROM v WHERE providers.provider_id = v.provider_id \
                 AND providers.version <= v.version",
            )
            .await?;
        }
        if !self.closures_removed.is_empty() {
            let rows: Vec<Vec<Value>> = self
                .closures_removed
                .iter()
                .map(|id| vec![id.as_str().into()])
                .collect();
            sql::with_values(
                tx,
                "closure_id",
                &rows,
                "DELETE FROM closures WHERE closure_id IN (SELECT closure_id FROM v)",
            )
            .await?;
        }
        let closures: Vec<Vec<Value>> = self
            .closures_added
            .iter()
            .map(|(c, provider, position)| {
                vec![
                    c.closure_id.to_string().into(),
                    provider.clone().into(),
                    seconds(c.period.start),
                    seconds(c.period.end),
                    flag(c.whole_days),
                    c.reason.as_str().into(),
                    (*position).into(),
                ]
            })
            .collect();
        sql::insert_rows(
            tx,
            "closures (closure_id, provider_id, starts_at, ends_at, whole_days, reason, position)",
            "ON CONFLICT (closure_id) DO NOTHING",
            &closures,
        )
        .await?;
        self.write_appointments(tx).await
    }

    async fn write_appointments(&self, tx: &mut Tx) -> Result<(), ProjectionError> {
        let mut inserts = Vec::new();
        let mut updates = Vec::new();
        for (id, c) in &self.appointments {
            match &c.booked {
                Some((b, by, booked_at)) => {
                    let period = c.period.unwrap_or(b.period);
                    let (cancel_reason, late, by_clinic) = match &c.cancelled {
                        Some((r, late, clinic)) => (Some(r.clone()), *late, *clinic),
                        None => (None, false, false),
                    };
                    inserts.push(vec![
                        id.as_str().into(),
                        b.provider_id.to_string().into(),
                        b.patient_id.to_string().into(),
                        seconds(period.start),
                        seconds(period.end),
                        c.status.unwrap_or(Status::Booked).as_str().into(),
                        b.reason_for_visit.as_str().into(),
                        // A reschedule goes through the full check: the
                        // appointment is no overbooking after it.
                        b.overbook_reason
                            .clone()
                            .filter(|_| c.period.is_none())
                            .into(),
                        cancel_reason.into(),
                        flag(late),
                        flag(by_clinic),
                        by.as_str().into(),
                        (*booked_at).into(),
                        c.last.into(),
                    ]);
                }
                None => {
                    let (cancel_reason, late, by_clinic) = match &c.cancelled {
                        Some((r, late, clinic)) => (
                            Some(r.clone()),
                            Some(i64::from(*late)),
                            Some(i64::from(*clinic)),
                        ),
                        None => (None, None, None),
                    };
                    updates.push((
                        id.clone(),
                        c.first,
                        vec![
                            id.as_str().into(),
                            Value::Int(c.period.map(|p| p.start.timestamp())),
                            Value::Int(c.period.map(|p| p.end.timestamp())),
                            Value::Text(c.status.map(|s| s.as_str().to_owned())),
                            cancel_reason.into(),
                            Value::Int(late),
                            Value::Int(by_clinic),
                            i64::from(c.period.is_some()).into(),
                            c.last.into(),
                        ],
                    ));
                }
            }
        }
        sql::insert_rows(
            tx,
            "appointments (appointment_id, provider_id, patient_id, starts_at, ends_at, status, \
             reason_for_visit, overbook_reason, cancel_reason, late, by_clinic, booked_by, \
             booked_position, version)",
            "ON CONFLICT (appointment_id) DO NOTHING",
            &inserts,
        )
        .await?;
        if updates.is_empty() {
            return Ok(());
        }
        let rows: Vec<Vec<Value>> = updates.iter().map(|(_, _, r)| r.clone()).collect();
        sql::with_values(
            tx,
            "appointment_id, starts_at, ends_at, status, cancel_reason, late, by_clinic, \
             rescheduled, version",
            &rows,
            "UPDATE appointments SET \
                 starts_at = COALESCE(v.starts_at, appointments.starts_at), \
                 ends_at = COALESCE(v.ends_at, appointments.ends_at), \
                 overbook_reason = CASE WHEN v.rescheduled = 1 THEN NULL \
                     ELSE appointments.overbook_reason END, \
                 status = COALESCE(v.status, appointments.status), \
                 cancel_reason = COALESCE(v.cancel_reason, appointments.cancel_reason), \
                 late = COALESCE(v.late, appointments.late), \
                 by_clinic = COALESCE(v.by_clinic, appointments.by_clinic), \
                 version = v.version \
             FROM v WHERE appointments.appointment_id = v.appointment_id \
             AND appointments.version <= v.version",
        )
        .await?;
        // Every updated appointment must have been booked earlier: one
        // that is not in the table is damage, not something to skip.
        let ids: Vec<String> = updates.iter().map(|(id, _, _)| id.clone()).collect();
        let known = known_appointments(tx, &ids).await?;
        if let Some((_, first, _)) = updates.iter().find(|(id, _, _)| !known.contains(id)) {
            return Err(ProjectionError::Event {
                position: *first,
                detail: "an appointment event for an appointment that was never booked".into(),
            });
        }
        Ok(())
    }
}

/// Which of `ids` are in the `appointments` table.
async fn known_appointments(
    tx: &mut Tx,
    ids: &[String],
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let mut known = std::collections::HashSet::new();
    for chunk in ids.chunks(400) {
        let sql = format!(
            "SELECT appointment_id FROM appointments WHERE appointment_id IN ({})",
            sql::list(chunk.len())
        );
        let params: Vec<Value> = chunk.iter().map(|i| i.as_str().into()).collect();
        known.extend(sql::returning(tx, &sql, &params).await?);
    }
    Ok(known)
}

/// Runs a query builder expression on whichever pool `db` is.
macro_rules! on_pool {
    ($db:expr, |$q:ident| $body:expr) => {
        match $db {
            Db::Postgres($q) => $body,
            Db::Sqlite($q) => $body,
        }
    };
}

/// A provider as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ProviderView {
    pub provider_id: String,
    pub user_id: String,
    /// doctor or nurse.
    pub kind: String,
    pub display_name: String,
    pub specialty: String,
    pub default_minutes: i64,
    /// Slot length of the current working hours; absent until hours are set.
    pub slot_minutes: Option<i64>,
}

const PROVIDER_COLUMNS: &str =
    "provider_id, user_id, kind, display_name, specialty, default_minutes, slot_minutes";

/// One provider.
pub async fn provider(db: &Db, id: &str) -> Result<Option<ProviderView>, sqlx::Error> {
    let sql = format!("SELECT {PROVIDER_COLUMNS} FROM providers WHERE provider_id = $1");
    on_pool!(db, |p| sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(p)
        .await)
}

/// Providers, by specialty (exact, any case) when given, in id order after
/// `after`; one more than `limit` tells whether there is a next page.
pub async fn providers(
    db: &Db,
    specialty: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<ProviderView>, bool), sqlx::Error> {
    let sql = format!(
        "SELECT {PROVIDER_COLUMNS} FROM providers \
         WHERE ($1 IS NULL OR specialty_key = $1) AND ($2 IS NULL OR provider_id > $2) \
         ORDER BY provider_id LIMIT $3"
    );
    let key = specialty.map(str::to_lowercase);
    let mut rows: Vec<ProviderView> = on_pool!(db, |p| sqlx::query_as(&sql)
        .bind(key.as_deref())
        .bind(after)
        .bind(limit + 1)
        .fetch_all(p)
        .await)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// An appointment as the read model holds it (times in seconds since the epoch).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AppointmentRow {
    pub appointment_id: String,
    pub provider_id: String,
    pub patient_id: String,
    pub starts_at: i64,
    pub ends_at: i64,
    pub status: String,
    pub reason_for_visit: String,
    pub overbook_reason: Option<String>,
    pub cancel_reason: Option<String>,
    pub late: i64,
    pub by_clinic: i64,
    /// The patient's name, where the query joined it.
    pub family_name: Option<String>,
    pub given_name: Option<String>,
}

const APPOINTMENT_COLUMNS: &str = "a.appointment_id, a.provider_id, a.patient_id, a.starts_at, \
     a.ends_at, a.status, a.reason_for_visit, a.overbook_reason, a.cancel_reason, a.late, \
     a.by_clinic, p.family_name, p.given_name";

/// One appointment.
pub async fn appointment(db: &Db, id: &str) -> Result<Option<AppointmentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {APPOINTMENT_COLUMNS} FROM appointments a \
         LEFT JOIN patients p ON p.patient_id = a.patient_id WHERE a.appointment_id = $1"
    );
    on_pool!(db, |p| sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(p)
        .await)
}

/// Which appointments a query wants.
#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    pub provider_id: Option<String>,
    pub patient_id: Option<String>,
    /// Status spellings (`booked`, …); any when empty.
    pub statuses: Vec<String>,
    /// Starting at or after (seconds).
    pub from: Option<i64>,
    /// Starting before (seconds).
    pub to: Option<i64>,
    /// Cursor: (starts_at, appointment_id) of the last row of the previous page.
    pub after: Option<(i64, String)>,
    pub limit: i64,
}

/// Appointments in start order, with the patient's name joined.
pub async fn appointments(
    db: &Db,
    f: &AppointmentFilter,
) -> Result<(Vec<AppointmentRow>, bool), sqlx::Error> {
    let statuses = f.statuses.join(",");
    let (after_start, after_id) = match &f.after {
        Some((s, id)) => (Some(*s), Some(id.as_str())),
        None => (None, None),
    };
    // `status IN` over a comma list keeps one statement text for any filter.
    let sql = format!(
        "SELECT {APPOINTMENT_COLUMNS} FROM appointments a \
         LEFT JOIN patients p ON p.patient_id = a.patient_id \
         WHERE ($1 IS NULL OR a.provider_id = $1) \
           AND ($2 IS NULL OR a.patient_id = $2) \
           AND ($3 = '' OR ',' || $3 || ',' LIKE '%,' || a.status || ',%') \
           AND ($4 IS NULL OR a.starts_at >= $4) \
           AND ($5 IS NULL OR a.starts_at < $5) \
           AND ($6 IS NULL OR a.starts_at > $6 OR (a.starts_at = $6 AND a.appointment_id > $7)) \
         ORDER BY a.starts_at, a.appointment_id LIMIT $8"
    );
    let mut rows: Vec<AppointmentRow> = on_pool!(db, |p| sqlx::query_as(&sql)
        .bind(f.provider_id.as_deref())
        .bind(f.patient_id.as_deref())
        .bind(statuses.as_str())
        .bind(f.from)
        .bind(f.to)
        .bind(after_start)
        .bind(after_id)
        .bind(f.limit + 1)
        .fetch_all(p)
        .await)?;
    let more = rows.len() as i64 > f.limit;
    rows.truncate(f.limit as usize);
    Ok((rows, more))
}

/// The periods of a provider's active appointments that overlap `[from, to)`
/// (seconds), for free-slot queries.
pub async fn busy(
    db: &Db,
    provider_id: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Period>, sqlx::Error> {
    // Appointments are at most 8 hours: one starting that long before
    // `from` is the earliest that can reach into the range.
    let sql = "SELECT starts_at, ends_at FROM appointments \
               WHERE provider_id = $1 AND starts_at >= $2 AND starts_at < $3 \
               AND status IN ('booked', 'checked_in', 'in_progress')";
    let earliest = from - 8 * 3600;
    let rows: Vec<(i64, i64)> = on_pool!(db, |p| sqlx::query_as(sql)
        .bind(provider_id)
        .bind(earliest)
        .bind(to)
        .fetch_all(p)
        .await)?;
    rows.into_iter()
        .map(|(s, e)| {
            match (
                DateTime::from_timestamp(s, 0),
                DateTime::from_timestamp(e, 0),
            ) {
                (Some(start), Some(end)) => Ok(Period { start, end }),
                _ => Err(sqlx::Error::Decode(
                    "an appointment's time is out of range".into(),
                )),
            }
        })
        .collect()
}

/// Whether the user `user_id` is the provider of an appointment with
/// `patient_id` that was not cancelled and ends at or after `since`
/// (seconds): the appointment way onto a care team (ADR 0013).
pub async fn provider_of_patient(
    db: &Db,
    patient_id: &str,
    user_id: &str,
    since: i64,
) -> Result<bool, sqlx::Error> {
    let sql = "SELECT COUNT(*) FROM appointments a JOIN providers p \
               ON p.provider_id = a.provider_id \
               WHERE a.patient_id = $1 AND p.user_id = $2 AND a.status <> 'cancelled' \
                 AND a.ends_at >= $3";
    let n: i64 = match db {
        Db::Postgres(p) => {
            sqlx::query_scalar(sql)
                .bind(patient_id)
                .bind(user_id)
                .bind(since)
                .fetch_one(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_scalar(sql)
                .bind(patient_id)
                .bind(user_id)
                .bind(since)
                .fetch_one(p)
                .await?
        }
    };
    Ok(n > 0)
}
