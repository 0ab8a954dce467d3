//! Free slots per provider and local day: computed as the database answers
//! them (`Calendar::free_slots` over the provider's calendar from the log
//! and the busy periods of the `schedule` read model), with no "now": past
//! slots are dropped when read.

use std::collections::BTreeMap;

use anamnesis_commands::{Db, LogReader};
use anamnesis_domain::codec::StoredForm;
use anamnesis_domain::schedule::{
    Calendar, ClinicCalendar, ClinicZone, Period, Provider, CLINIC_CALENDAR_ID,
};
use chrono::{DateTime, NaiveDate, Utc};
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::RedisError;

/// One local day's free slots: (start, end) in seconds since the epoch, in
/// time order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaySlots(pub Vec<(i64, i64)>);

impl DaySlots {
    /// The slots that start after `now`.
    pub fn after(&self, now: DateTime<Utc>) -> impl Iterator<Item = Period> + '_ {
        let now = now.timestamp();
        self.0
            .iter()
            .filter(move |(s, _)| *s > now)
            .filter_map(|(s, e)| {
                Some(Period {
                    start: DateTime::from_timestamp(*s, 0)?,
                    end: DateTime::from_timestamp(*e, 0)?,
                })
            })
    }
}

/// Folds one aggregate's stream from the log.
async fn load<A>(reader: &LogReader, id: &str) -> Result<A, RedisError>
where
    A: Aggregate,
    A::Event: StoredForm,
{
    let mut aggregate = A::default();
    for e in reader.read_stream(A::TYPE, id, 0).await? {
        let event =
            A::Event::from_stored(&e.event_type, &e.event_version, &e.payload).map_err(|err| {
                RedisError::Event {
                    position: e.global_position,
                    detail: err.to_string(),
                }
            })?;
        aggregate.apply(event);
    }
    Ok(aggregate)
}

/// The clinic's holidays, from the log.
pub(crate) async fn clinic(reader: &LogReader) -> Result<ClinicCalendar, RedisError> {
    load::<ClinicCalendar>(reader, CLINIC_CALENDAR_ID).await
}

/// Provider `id`'s calendar as the write side builds it (its hours, its
/// time off and the clinic's holidays); `None` when there is no such provider.
pub(crate) async fn calendar(
    reader: &LogReader,
    zone: ClinicZone,
    clinic: &ClinicCalendar,
    id: Uuid,
) -> Result<Option<Calendar>, RedisError> {
    let provider = load::<Provider>(reader, &id.to_string()).await?;
    if provider.profile().is_none() {
        return Ok(None);
    }
    let mut closures = provider.time_off().to_vec();
    closures.extend(clinic.holidays().iter().cloned());
    Ok(Some(Calendar {
        zone,
        availability: provider.availability().cloned(),
        closures,
    }))
}

/// Provider `id`'s free slots on each of `days` (sorted), none dropped as
/// past, from `calendar` and the busy periods the `schedule` read model holds.
pub async fn day_slots(
    db: &Db,
    (id, calendar): (Uuid, &Calendar),
    days: &[NaiveDate],
) -> Result<BTreeMap<NaiveDate, DaySlots>, RedisError> {
    let mut out = BTreeMap::new();
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Ok(out);
    };
    let zone = calendar.zone;
    let busy = crate::schedule::busy(
        db,
        &id.to_string(),
        zone.day(*first).0.timestamp(),
        zone.day(*last).1.timestamp(),
    )
    .await?;
    for day in days {
        let slots = calendar
            .free_slots(*day, *day, DateTime::<Utc>::MIN_UTC, &busy)
            .into_iter()
            .map(|p| (p.start.timestamp(), p.end.timestamp()))
            .collect();
        out.insert(*day, DaySlots(slots));
    }
    Ok(out)
}

/// The local days a period touches.
pub(crate) fn days_of(zone: ClinicZone, period: &Period) -> Vec<NaiveDate> {
    let first = zone.date_of(period.start);
    let last = zone
        .date_of(period.end - chrono::Duration::seconds(1))
        .max(first);
    first.iter_days().take_while(|d| *d <= last).collect()
}
