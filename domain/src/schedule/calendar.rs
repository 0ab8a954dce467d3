//! Calendar arithmetic: the clinic's time zone, weekly working hours, closures
//! and free slots. Working hours are local wall-clock times in the clinic's
//! zone; everything stored and compared is an instant (UTC). The zone database
//! is `chrono-tz` (IANA), never a fixed offset.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::unique::UniqueKey;

use super::error::ScheduleError;

/// The calendar's grain: every appointment and working-hours boundary falls
/// on a multiple of five minutes, and overlap is checked per five minutes.
pub const GRANULE_MINUTES: i64 = 5;

/// The longest appointment.
pub const MAX_APPOINTMENT_MINUTES: i64 = 8 * 60;

/// The longest single closure (a longer absence is several, or an end date
/// on the working hours).
pub const MAX_CLOSURE_DAYS: i64 = 62;

/// How far ahead anything may be booked or closed.
pub const MAX_DAYS_AHEAD: i64 = 2 * 366;

/// Unique-key scope of a provider's calendar: one key per provider per
/// five minutes held by an active appointment.
pub const PROVIDER_SCOPE: &str = "calendar.provider";

/// Unique-key scope of a patient's calendar.
pub const PATIENT_SCOPE: &str = "calendar.patient";

/// The clinic's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClinicZone(Tz);

impl Default for ClinicZone {
    fn default() -> Self {
        Self(Tz::UTC)
    }
}

impl ClinicZone {
    /// A zone from its IANA name (`America/Los_Angeles`); `None` when unknown.
    pub fn parse(name: &str) -> Option<Self> {
        name.parse::<Tz>().ok().map(Self)
    }

    /// The IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The instant a wall-clock `time` on `date` names in this zone. In a
    /// gap (clocks spring forward) it is the first instant after the gap; when
    /// ambiguous (clocks fall back) the earlier of the two.
    pub fn instant(&self, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
        let mut local = date.and_time(time);
        // Gaps are at most a day long (Samoa skipped one in 2011).
        for _ in 0..=(24 * 60) {
            if let Some(t) = self.0.from_local_datetime(&local).earliest() {
                return t.with_timezone(&Utc);
            }
            local += Duration::minutes(1);
        }
        Utc.from_utc_datetime(&date.and_time(time))
    }

    /// The local calendar date of an instant.
    pub fn date_of(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.0).date_naive()
    }

    /// The instant as local time, with its offset (for RFC 3339 answers).
    pub fn local(&self, t: DateTime<Utc>) -> DateTime<chrono::FixedOffset> {
        t.with_timezone(&self.0).fixed_offset()
    }

    /// Local midnight at the start of `date`, and of the day after.
    pub fn day(&self, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
        let next = date.succ_opt().unwrap_or(date);
        (
            self.instant(date, NaiveTime::MIN),
            self.instant(next, NaiveTime::MIN),
        )
    }
}

/// A day of the week, as the API and the log spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Day {
    /// The day `date` falls on.
    pub fn of(date: NaiveDate) -> Self {
        match date.weekday() {
            chrono::Weekday::Mon => Day::Monday,
            chrono::Weekday::Tue => Day::Tuesday,
            chrono::Weekday::Wed => Day::Wednesday,
            chrono::Weekday::Thu => Day::Thursday,
            chrono::Weekday::Fri => Day::Friday,
            chrono::Weekday::Sat => Day::Saturday,
            chrono::Weekday::Sun => Day::Sunday,
        }
    }
}

/// Local working time within one day: `start` before `end`, both on the
/// five-minute grain. Night shifts across midnight are two intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Interval {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// The working intervals of one weekday.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayHours {
    pub day: Day,
    pub intervals: Vec<Interval>,
}

/// Weekly working hours as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AvailabilityInput {
    pub hours: Vec<DayHours>,
    pub slot_minutes: i64,
    pub effective_from: Option<NaiveDate>,
    pub effective_to: Option<NaiveDate>,
}

/// A provider's weekly working hours (local time), the length of the slots
/// they are offered in, and the dates they hold between (inclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// At most one entry per day, intervals sorted and apart.
    pub hours: Vec<DayHours>,
    pub slot_minutes: i64,
    pub effective_from: Option<NaiveDate>,
    pub effective_to: Option<NaiveDate>,
}

fn on_grain(t: NaiveTime) -> bool {
    t.second() == 0 && t.nanosecond() == 0 && i64::from(t.minute()) % GRANULE_MINUTES == 0
}

impl Availability {
    /// Checks submitted hours: each day once, intervals on the grain, in
    /// order and apart; a slot length of 5 minutes to 8 hours on the grain;
    /// effective dates in order.
    pub fn parse(input: AvailabilityInput) -> Result<Self, ScheduleError> {
        let AvailabilityInput {
            mut hours,
            slot_minutes,
            effective_from,
            effective_to,
        } = input;
        if !(GRANULE_MINUTES..=MAX_APPOINTMENT_MINUTES).contains(&slot_minutes)
            || slot_minutes % GRANULE_MINUTES != 0
        {
            return Err(ScheduleError::InvalidSlotLength);
        }
        if let (Some(from), Some(to)) = (effective_from, effective_to) {
            if to < from {
                return Err(ScheduleError::EffectiveDatesReversed);
            }
        }
        hours.sort_by_key(|d| d.day);
        for pair in hours.windows(2) {
            if pair[0].day == pair[1].day {
                return Err(ScheduleError::DayTwice);
            }
        }
        for day in &mut hours {
            day.intervals.sort();
            for i in &day.intervals {
                if !on_grain(i.start) || !on_grain(i.end) {
                    return Err(ScheduleError::OffGrain("hours"));
                }
                if i.start >= i.end {
                    return Err(ScheduleError::InvalidInterval);
                }
            }
            if day.intervals.windows(2).any(|p| p[1].start < p[0].end) {
                return Err(ScheduleError::OverlappingHours);
            }
            // Touching intervals (09:00–12:00, 12:00–17:00) are one span: a
            // booking across the seam is inside working hours.
            day.intervals.dedup_by(|later, earlier| {
                let touching = later.start == earlier.end;
                if touching {
                    earlier.end = later.end;
                }
                touching
            });
        }
        hours.retain(|d| !d.intervals.is_empty());
        Ok(Self {
            hours,
            slot_minutes,
            effective_from,
            effective_to,
        })
    }

    /// Whether the hours apply on `date`.
    fn in_effect(&self, date: NaiveDate) -> bool {
        self.effective_from.is_none_or(|f| date >= f) && self.effective_to.is_none_or(|t| date <= t)
    }

    /// The working periods of local `date`, as instants: DST-correct (a
    /// 01:00–03:00 shift on the night clocks fall back lasts three hours).
    pub fn working(&self, zone: ClinicZone, date: NaiveDate) -> Vec<Period> {
        if !self.in_effect(date) {
            return Vec::new();
        }
        let day = Day::of(date);
        self.hours
            .iter()
            .filter(|d| d.day == day)
            .flat_map(|d| d.intervals.iter())
            .map(|i| Period {
                start: zone.instant(date, i.start),
                end: zone.instant(date, i.end),
            })
            .filter(|p| p.start < p.end)
            .collect()
    }
}

/// A half-open span of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    /// Whether the two share any instant.
    pub fn overlaps(&self, other: &Period) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `other` lies wholly inside this one.
    pub fn contains(&self, other: &Period) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Length in minutes.
    pub fn minutes(&self) -> i64 {
        (self.end - self.start).num_minutes()
    }

    /// The five-minute granules the period covers, as minutes since the
    /// epoch divided by five.
    fn granules(&self) -> impl Iterator<Item = i64> {
        let first = self.start.timestamp().div_euclid(60 * GRANULE_MINUTES);
        let last = (self.end.timestamp() - 1).div_euclid(60 * GRANULE_MINUTES);
        first..=last
    }

    /// The unique keys of `owner`'s calendar in `scope` over this period.
    pub fn calendar_keys(&self, scope: &'static str, owner: Uuid) -> Vec<UniqueKey> {
        self.granules()
            .map(|g| UniqueKey {
                scope,
                key: format!("{owner}@{g}"),
            })
            .collect()
    }
}

fn instant_on_grain(t: DateTime<Utc>) -> bool {
    t.timestamp_subsec_nanos() == 0 && t.timestamp() % (60 * GRANULE_MINUTES) == 0
}

/// `OffGrain(field)` unless `t` is on the grain: the error names the field
/// that is off, start or end.
fn on_grain_or(field: &'static str, t: DateTime<Utc>) -> Result<(), ScheduleError> {
    if instant_on_grain(t) {
        Ok(())
    } else {
        Err(ScheduleError::OffGrain(field))
    }
}

/// Parses an appointment's time: on the grain, start before end, at most
/// [`MAX_APPOINTMENT_MINUTES`] long, in the future and not too far ahead.
pub fn appointment_period(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Period, ScheduleError> {
    on_grain_or("starts_at", start)?;
    on_grain_or("ends_at", end)?;
    let period = Period { start, end };
    if end <= start || period.minutes() > MAX_APPOINTMENT_MINUTES {
        return Err(ScheduleError::InvalidPeriod);
    }
    if start <= now {
        return Err(ScheduleError::InThePast);
    }
    if start > now + Duration::days(MAX_DAYS_AHEAD) {
        return Err(ScheduleError::TooFarAhead);
    }
    Ok(period)
}

/// A closure as submitted: whole local days (inclusive), or a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosureSpan {
    Days {
        from: NaiveDate,
        to: NaiveDate,
    },
    Period {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// A time when no one (a clinic holiday) or one provider (time off) can be
/// booked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closure {
    pub closure_id: Uuid,
    pub period: Period,
    /// Whole local days, when it was given as days.
    pub whole_days: bool,
    pub reason: String,
}

impl Closure {
    /// Checks a submitted closure: whole days are local midnight to local
    /// midnight in the clinic's zone (23 or 25 hours on DST days); a period
    /// is on the grain; at most [`MAX_CLOSURE_DAYS`] long (local days, or
    /// 24-hour days for a period), ending in the future, not too far ahead.
    pub fn parse(
        closure_id: Uuid,
        span: ClosureSpan,
        reason: &str,
        zone: ClinicZone,
        now: DateTime<Utc>,
    ) -> Result<Self, ScheduleError> {
        let (period, whole_days) = match span {
            ClosureSpan::Days { from, to } => {
                if to < from {
                    return Err(ScheduleError::InvalidPeriod);
                }
                // Counted in local days: a day the clocks fall back is
                // 25 hours, and 62 such days are still 62 days.
                if (to - from).num_days() >= MAX_CLOSURE_DAYS {
                    return Err(ScheduleError::ClosureTooLong);
                }
                let period = Period {
                    start: zone.day(from).0,
                    end: zone.day(to).1,
                };
                (period, true)
            }
            ClosureSpan::Period { start, end } => {
                on_grain_or("starts_at", start)?;
                on_grain_or("ends_at", end)?;
                if end <= start {
                    return Err(ScheduleError::InvalidPeriod);
                }
                if end - start > Duration::days(MAX_CLOSURE_DAYS) {
                    return Err(ScheduleError::ClosureTooLong);
                }
                (Period { start, end }, false)
            }
        };
        if period.end <= now {
            return Err(ScheduleError::InThePast);
        }
        if period.start > now + Duration::days(MAX_DAYS_AHEAD) {
            return Err(ScheduleError::TooFarAhead);
        }
        let reason = super::error::text("reason", reason, 500)?;
        Ok(Self {
            closure_id,
            period,
            whole_days,
            reason,
        })
    }
}

/// Everything that decides whether a provider can be booked at a time: their
/// hours, their time off and the clinic's holidays, in the clinic's zone.
/// Commands carry it (the domain reads no store); the write side loads it
/// from the provider's and the clinic's streams.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Calendar {
    pub zone: ClinicZone,
    pub availability: Option<Availability>,
    /// The provider's time off and the clinic's holidays.
    pub closures: Vec<Closure>,
}

impl Calendar {
    /// Whether `period` lies inside one working period of its local day and
    /// outside every closure.
    pub fn check(&self, period: &Period) -> Result<(), ScheduleError> {
        let Some(hours) = &self.availability else {
            return Err(ScheduleError::OutsideWorkingHours);
        };
        let date = self.zone.date_of(period.start);
        if !hours
            .working(self.zone, date)
            .iter()
            .any(|w| w.contains(period))
        {
            return Err(ScheduleError::OutsideWorkingHours);
        }
        if let Some(c) = self.closures.iter().find(|c| c.period.overlaps(period)) {
            return Err(ScheduleError::Closed {
                closure_id: c.closure_id,
            });
        }
        Ok(())
    }

    /// The free slots on local dates `from..=to`: slot-length steps through
    /// each working period, after `now`, outside closures, overlapping none
    /// of `busy` (the provider's active appointments, sorted or not).
    pub fn free_slots(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        now: DateTime<Utc>,
        busy: &[Period],
    ) -> Vec<Period> {
        let Some(hours) = &self.availability else {
            return Vec::new();
        };
        let step = Duration::minutes(hours.slot_minutes);
        let busy = merged(busy);
        // Slots come in time order, so one cursor walks the busy spans.
        let mut next_busy = 0;
        let mut slots = Vec::new();
        let mut date = from;
        while date <= to {
            for work in hours.working(self.zone, date) {
                let mut start = work.start;
                while start + step <= work.end {
                    let slot = Period {
                        start,
                        end: start + step,
                    };
                    start += step;
                    while busy.get(next_busy).is_some_and(|b| b.end <= slot.start) {
                        next_busy += 1;
                    }
                    let taken = busy.get(next_busy).is_some_and(|b| b.start < slot.end);
                    if taken
                        || slot.start <= now
                        || self.closures.iter().any(|c| c.period.overlaps(&slot))
                    {
                        continue;
                    }
                    slots.push(slot);
                }
            }
            let Some(next) = date.succ_opt() else { break };
            date = next;
        }
        slots
    }
}

/// `periods` as sorted, disjoint spans covering the same time.
fn merged(periods: &[Period]) -> Vec<Period> {
    let mut sorted = periods.to_vec();
    sorted.sort();
    let mut spans: Vec<Period> = Vec::with_capacity(sorted.len());
    for p in sorted {
        match spans.last_mut() {
            Some(last) if p.start <= last.end => last.end = last.end.max(p.end),
            _ => spans.push(p),
        }
    }
    spans
}
