//! What a batch of events touches (which patients' cards, which
//! providers' local days), and waiting for the read models the new values
//! are computed from.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anamnesis_commands::{Db, StoredEvent};
use anamnesis_domain::schedule::{
    AppointmentEvent, ClinicEvent, ClinicZone, Period, ProviderEvent,
};
use chrono::{DateTime, NaiveDate};
use tokio::sync::watch;
use uuid::Uuid;

use super::slots::days_of;
use super::RedisError;
use crate::runner::{checkpoint, Decode};
use crate::schedule::ScheduleEvent;

/// How long a batch waits for the `patients` and `schedule` read models.
const UPSTREAM_WAIT: Duration = Duration::from_secs(30);

/// Where the read models the values are computed from stand: a value is
/// computed only once they reflect the batch it is for.
pub enum Upstream {
    /// Their runners' progress in this process (`serve`).
    Watching(Vec<(&'static str, watch::Receiver<i64>)>),
    /// Their checkpoints in the database (`rebuild`, with the server
    /// keeping them current elsewhere).
    Polling(Db),
}

impl Upstream {
    /// Waits until each read model named in `targets` holds the position
    /// given with it (its own events up to there: a read model's committed
    /// checkpoint may lag behind other domains' events).
    pub(super) async fn reach(
        &mut self,
        targets: &[(&'static str, i64)],
    ) -> Result<(), RedisError> {
        for &(name, position) in targets {
            if position <= 0 {
                continue;
            }
            match self {
                Upstream::Watching(all) => {
                    let Some((_, progress)) = all.iter_mut().find(|(n, _)| *n == name) else {
                        continue;
                    };
                    let reached =
                        tokio::time::timeout(UPSTREAM_WAIT, progress.wait_for(|p| *p >= position))
                            .await
                            .is_ok_and(|r| r.is_ok());
                    if !reached {
                        return Err(RedisError::Upstream { name, position });
                    }
                }
                Upstream::Polling(db) => {
                    let deadline = tokio::time::Instant::now() + UPSTREAM_WAIT;
                    while checkpoint(db, name).await? < position {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(RedisError::Upstream { name, position });
                        }
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What the read models must hold before `events` are computed from them:
/// the `patients` model its last patient event, `schedule` its last
/// scheduling event.
pub(super) fn targets(events: &[StoredEvent]) -> [(&'static str, i64); 2] {
    let last = |patient: bool| {
        events
            .iter()
            .rev()
            .find(|e| (e.aggregate_type == "patient") == patient)
            .map_or(0, |e| e.global_position)
    };
    [
        (crate::patients::NAME, last(true)),
        (crate::schedule::NAME, last(false)),
    ]
}

/// Which local days of a provider need computing again.
#[derive(Debug, Clone, Default)]
pub(super) enum Days {
    #[default]
    Nothing,
    Some(BTreeSet<NaiveDate>),
    /// Every day within the horizon.
    All,
}

impl Days {
    pub(super) fn add(&mut self, days: impl IntoIterator<Item = NaiveDate>) {
        match self {
            Days::All => {}
            Days::Some(set) => set.extend(days),
            Days::Nothing => *self = Days::Some(days.into_iter().collect()),
        }
    }

    pub(super) fn merge(&mut self, other: &Days) {
        match other {
            Days::Nothing => {}
            Days::All => *self = Days::All,
            Days::Some(set) => self.add(set.iter().copied()),
        }
    }

    /// The days within `window` (inclusive), sorted.
    pub(super) fn within(&self, (first, last): (NaiveDate, NaiveDate)) -> Vec<NaiveDate> {
        match self {
            Days::Nothing => Vec::new(),
            Days::All => first.iter_days().take_while(|d| *d <= last).collect(),
            Days::Some(set) => set.range(first..=last).copied().collect(),
        }
    }
}

/// What a batch touches.
#[derive(Default)]
pub(super) struct Touched {
    /// Every provider's days (a clinic holiday).
    pub(super) every_provider: Days,
    pub(super) providers: BTreeMap<Uuid, Days>,
    pub(super) patients: BTreeSet<Uuid>,
    /// Appointments whose provider and time the read model knows: their
    /// days, and these periods' days too.
    pub(super) appointments: Vec<(String, Vec<Period>)>,
}

fn bad(e: &StoredEvent, detail: impl ToString) -> RedisError {
    RedisError::Event {
        position: e.global_position,
        detail: detail.to_string(),
    }
}

fn uuid_of(e: &StoredEvent) -> Result<Uuid, RedisError> {
    Uuid::parse_str(&e.aggregate_id).map_err(|_| bad(e, "its stream is not named by a UUID"))
}

impl Touched {
    pub(super) fn of(events: &[StoredEvent], zone: ClinicZone) -> Result<Self, RedisError> {
        let mut t = Touched::default();
        for e in events {
            if e.aggregate_type == "patient" {
                t.patients
                    .insert(e.patient_id.map_or_else(|| uuid_of(e), Ok)?);
                if e.event_type == anamnesis_domain::subject::ERASURE_EVENT {
                    // The patient's appointments left the schedule: which
                    // days they held is no longer known.
                    t.every_provider = Days::All;
                }
                continue;
            }
            let event = match ScheduleEvent::decode(&e.event_type, &e.event_version, &e.payload) {
                Ok(event) => event,
                // The erasure that follows in the log recomputes every day.
                Err(anamnesis_domain::codec::DecodeError::Erased { .. }) => continue,
                Err(err) => return Err(bad(e, err)),
            };
            match event {
                ScheduleEvent::Provider(p) => {
                    let days = t.providers.entry(uuid_of(e)?).or_default();
                    match p {
                        ProviderEvent::TimeOffAdded { closure } => {
                            days.add(days_of(zone, &closure.period))
                        }
                        // The appointment's own `Booked` touches its days.
                        ProviderEvent::Overbooked { .. } => {}
                        // Hours changed, a new provider, time off gone
                        // (its period is no longer known): every day.
                        _ => *days = Days::All,
                    }
                }
                ScheduleEvent::Clinic(c) => match c {
                    ClinicEvent::HolidayAdded { closure } => {
                        t.every_provider.add(days_of(zone, &closure.period))
                    }
                    ClinicEvent::HolidayRemoved { .. } => t.every_provider = Days::All,
                },
                ScheduleEvent::Appointment(a) => {
                    if let Some(patient) = e.patient_id {
                        t.patients.insert(patient);
                    }
                    match a {
                        AppointmentEvent::Booked { booking } => {
                            t.patients.insert(booking.patient_id);
                            t.providers
                                .entry(booking.provider_id)
                                .or_default()
                                .add(days_of(zone, &booking.period));
                        }
                        AppointmentEvent::Rescheduled { from, to } => t
                            .appointments
                            .push((e.aggregate_id.clone(), vec![from, to])),
                        _ => t.appointments.push((e.aggregate_id.clone(), Vec::new())),
                    }
                }
            }
        }
        Ok(t)
    }

    /// Adds the days of the appointments whose provider the batch did not
    /// name, from the `schedule` read model (which has reached the batch).
    pub(super) async fn resolve(&mut self, db: &Db, zone: ClinicZone) -> Result<(), RedisError> {
        for (id, periods) in std::mem::take(&mut self.appointments) {
            let row = crate::schedule::appointment(db, &id)
                .await?
                .ok_or_else(|| RedisError::Unknown(format!("appointment {id}")))?;
            let provider = Uuid::parse_str(&row.provider_id).map_err(|_| RedisError::Damaged {
                key: format!("appointments/{id}"),
            })?;
            if let Ok(patient) = Uuid::parse_str(&row.patient_id) {
                self.patients.insert(patient);
            }
            let days = self.providers.entry(provider).or_default();
            if let (Some(start), Some(end)) = (
                DateTime::from_timestamp(row.starts_at, 0),
                DateTime::from_timestamp(row.ends_at, 0),
            ) {
                days.add(days_of(zone, &Period { start, end }));
            }
            for p in periods {
                days.add(days_of(zone, &p));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn date(d: &str) -> NaiveDate {
        NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn an_appointment_over_local_midnight_touches_both_days() {
        let zone = ClinicZone::parse("America/Los_Angeles").unwrap();
        // 23:30 to 00:30 local (PST, UTC-8).
        let period = Period {
            start: Utc.with_ymd_and_hms(2026, 12, 8, 7, 30, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 12, 8, 8, 30, 0).unwrap(),
        };
        assert_eq!(
            days_of(zone, &period),
            vec![date("2026-12-07"), date("2026-12-08")]
        );
    }

    #[test]
    fn an_appointment_ending_at_midnight_touches_its_day_only() {
        let zone = ClinicZone::parse("UTC").unwrap();
        let period = Period {
            start: Utc.with_ymd_and_hms(2026, 12, 7, 23, 30, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 12, 8, 0, 0, 0).unwrap(),
        };
        assert_eq!(days_of(zone, &period), vec![date("2026-12-07")]);
    }

    #[test]
    fn only_days_within_the_horizon_are_computed() {
        let window = (date("2026-12-01"), date("2026-12-03"));
        let mut days = Days::default();
        assert!(days.within(window).is_empty());
        days.add([date("2026-11-30"), date("2026-12-02"), date("2026-12-09")]);
        assert_eq!(days.within(window), vec![date("2026-12-02")]);
        days.merge(&Days::All);
        assert_eq!(
            days.within(window),
            vec![date("2026-12-01"), date("2026-12-02"), date("2026-12-03")]
        );
    }

    #[test]
    fn a_batch_waits_for_each_read_model_on_its_own_last_event() {
        let event = |position: i64, aggregate_type: &str| StoredEvent {
            global_position: position,
            event_id: Uuid::nil(),
            aggregate_type: aggregate_type.to_owned(),
            aggregate_id: String::new(),
            sequence: 1,
            event_type: String::new(),
            event_version: String::new(),
            payload: String::new(),
            metadata: String::new(),
            recorded_at: Utc::now(),
            actor_id: String::new(),
            actor_role: String::new(),
            reason: None,
            correlation_id: None,
            causation_id: None,
            patient_id: None,
            prev_hash: Vec::new(),
            hash: Vec::new(),
        };
        let batch = [
            event(3, "patient"),
            event(5, "appointment"),
            event(6, "patient"),
            event(9, "provider"),
        ];
        assert_eq!(
            targets(&batch),
            [(crate::patients::NAME, 6), (crate::schedule::NAME, 9)]
        );
    }
}
