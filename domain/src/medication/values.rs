//! What a prescription says: the drug, the dose, the route, when it is
//! taken and for how long. Parsed once here; the dose schedule is computed
//! from it in the clinic's time zone ([`Order::doses`]).

use chrono::{DateTime, Duration, NaiveTime, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::error::{text, text_opt, MedicationError};
use crate::schedule::ClinicZone;
use crate::text::Lines;

/// The drug prescribed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Drug {
    /// Its name (`amoxicillin`, `Lisinopril 10 mg tablet`).
    pub name: String,
    /// Its RxNorm concept id, when known (digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rxnorm: Option<String>,
}

impl Drug {
    fn parse(self) -> Result<Self, MedicationError> {
        let name = text("medication.name", &self.name, Lines::Single, 200)?;
        let rxnorm = match self.rxnorm {
            None => None,
            Some(code) => {
                let code = code.trim().to_owned();
                if code.is_empty() || code.len() > 10 || !code.chars().all(|c| c.is_ascii_digit()) {
                    return Err(MedicationError::InvalidRxNorm);
                }
                Some(code)
            }
        };
        Ok(Drug { name, rxnorm })
    }

    /// The drug as compared for the active list: its ingredients, without
    /// strength or form (`super::classes::ingredient_key`).
    pub fn key(&self) -> String {
        super::classes::ingredient_key(&self.name)
    }
}

/// The lower-case alphanumeric words of `s`.
pub(crate) fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The unit a dose is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DoseUnit {
    Mg,
    G,
    Mcg,
    Ml,
    Units,
    Mmol,
    Tablet,
    Capsule,
    Puff,
    Drop,
    Patch,
    Spray,
    Application,
}

/// How much is taken each time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Dose {
    /// Above 0, at most 100,000, at most 4 decimals.
    pub amount: f64,
    pub unit: DoseUnit,
}

impl Dose {
    pub(crate) fn parse(self) -> Result<Self, MedicationError> {
        let scaled = self.amount * 10_000.0;
        // At least 0.0001: a positive amount that rounds to no ten-thousandth
        // (1e-11) is a slip, not a dose.
        if !self.amount.is_finite()
            || self.amount <= 0.0
            || self.amount > 100_000.0
            || scaled.round() < 1.0
            || (scaled - scaled.round()).abs() > 1e-6
        {
            return Err(MedicationError::InvalidDose);
        }
        Ok(self)
    }
}

/// How a medication is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Oral,
    Sublingual,
    Intravenous,
    Intramuscular,
    Subcutaneous,
    Topical,
    Transdermal,
    Inhaled,
    Nasal,
    Ophthalmic,
    Otic,
    Rectal,
    Vaginal,
}

/// When doses are due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Frequency {
    /// At these local clinic times every day (`08:00`, `20:00`): 1 to 12
    /// distinct times.
    TimesADay {
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["08:00", "20:00"])))]
        times: Vec<NaiveTime>,
    },
    /// Every `hours` hours (1 to 72) from the course's start.
    EveryHours { hours: u32 },
}

impl Frequency {
    pub(crate) fn parse(self) -> Result<Self, MedicationError> {
        match self {
            Frequency::TimesADay { mut times } => {
                if times.is_empty() || times.len() > 12 {
                    return Err(MedicationError::InvalidFrequency(
                        "times_a_day needs 1 to 12 times",
                    ));
                }
                if times.iter().any(|t| t.second() != 0 || t.nanosecond() != 0) {
                    return Err(MedicationError::InvalidFrequency(
                        "times_a_day takes whole minutes (08:00)",
                    ));
                }
                times.sort();
                let before = times.len();
                times.dedup();
                if times.len() != before {
                    return Err(MedicationError::InvalidFrequency(
                        "times_a_day names a time twice",
                    ));
                }
                Ok(Frequency::TimesADay { times })
            }
            Frequency::EveryHours { hours } => {
                if !(1..=72).contains(&hours) {
                    return Err(MedicationError::InvalidFrequency(
                        "every_hours must be 1 to 72 hours",
                    ));
                }
                Ok(Frequency::EveryHours { hours })
            }
        }
    }
}

/// A prescription's content: what, how much, how, when and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Order {
    pub medication: Drug,
    pub dose: Dose,
    pub route: Route,
    pub frequency: Frequency,
    /// When the course starts: from a day ago to a year ahead.
    pub starts_at: DateTime<Utc>,
    /// When it ends (exclusive); absent with no `duration_days`: ongoing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// Instead of `ends_at`: the course's length in days (1 to 366). Kept as
    /// `ends_at` once parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_days: Option<u32>,
    /// Refills authorized (0 to 12).
    #[serde(default)]
    pub refills: u32,
    /// Directions for the patient (`take with food`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// The most doses one schedule query lists.
pub const MAX_DOSES: usize = 1_000;

impl Order {
    /// Checks every field; a duration becomes an end: the same local time
    /// of day `duration_days` calendar days later in the clinic's zone (so
    /// that a 7-day course across a daylight-saving change holds 7 days of
    /// doses, not one more or one less).
    pub fn parse(self, now: DateTime<Utc>, zone: ClinicZone) -> Result<Self, MedicationError> {
        let medication = self.medication.parse()?;
        let dose = self.dose.parse()?;
        let frequency = self.frequency.parse()?;
        if self.starts_at < now - Duration::days(1) || self.starts_at > now + Duration::days(366) {
            return Err(MedicationError::InvalidPeriod(
                "starts_at must be from a day ago to a year ahead",
            ));
        }
        let ends_at = match (self.ends_at, self.duration_days) {
            (Some(_), Some(_)) => {
                return Err(MedicationError::InvalidPeriod(
                    "give ends_at or duration_days, not both",
                ))
            }
            (None, Some(days)) if (1..=366).contains(&days) => {
                let local = zone.local(self.starts_at);
                let end_date = zone.date_of(self.starts_at) + Duration::days(i64::from(days));
                Some(zone.instant(end_date, local.time()))
            }
            (None, Some(_)) => {
                return Err(MedicationError::InvalidPeriod(
                    "duration_days must be 1 to 366",
                ))
            }
            (Some(end), None) => {
                if end <= self.starts_at || end > self.starts_at + Duration::days(3660) {
                    return Err(MedicationError::InvalidPeriod(
                        "ends_at must be after starts_at and within ten years of it",
                    ));
                }
                Some(end)
            }
            (None, None) => None,
        };
        if self.refills > 12 {
            return Err(MedicationError::InvalidRefills);
        }
        Ok(Order {
            medication,
            dose,
            route: self.route,
            frequency,
            starts_at: self.starts_at,
            ends_at,
            duration_days: None,
            refills: self.refills,
            instructions: text_opt("instructions", self.instructions, Lines::Multi, 2000)?,
        })
    }

    /// Whether `t` falls within the course.
    pub fn covers(&self, t: DateTime<Utc>) -> bool {
        t >= self.starts_at && self.ends_at.is_none_or(|end| t < end)
    }

    /// The doses due in `[from, to)`, in order, at most [`MAX_DOSES`].
    /// Local times of day are read in the clinic's zone, so an 08:00 dose
    /// stays at 08:00 across a daylight-saving change.
    pub fn doses(
        &self,
        zone: ClinicZone,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<DateTime<Utc>> {
        let from = from.max(self.starts_at);
        let to = self.ends_at.map_or(to, |end| end.min(to));
        let mut out = Vec::new();
        if from >= to {
            return out;
        }
        match &self.frequency {
            Frequency::EveryHours { hours } => {
                let step = Duration::hours(i64::from(*hours));
                let elapsed = (from - self.starts_at).num_seconds();
                let step_s = step.num_seconds();
                let k = (elapsed + step_s - 1) / step_s;
                let mut t = self.starts_at + Duration::seconds(k * step_s);
                while t < to && out.len() < MAX_DOSES {
                    out.push(t);
                    t += step;
                }
            }
            Frequency::TimesADay { times } => {
                let mut date = zone.date_of(from);
                let last = zone.date_of(to);
                while date <= last && out.len() < MAX_DOSES {
                    for time in times {
                        let t = zone.instant(date, *time);
                        if t >= from && t < to && out.last().is_none_or(|l| *l < t) {
                            out.push(t);
                        }
                    }
                    match date.succ_opt() {
                        Some(next) => date = next,
                        None => break,
                    }
                }
                out.truncate(MAX_DOSES);
            }
        }
        out
    }
}

/// What happened when a dose was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Given,
    Held,
    Refused,
}

impl Outcome {
    /// The stored and shown spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Given => "given",
            Outcome::Held => "held",
            Outcome::Refused => "refused",
        }
    }
}
