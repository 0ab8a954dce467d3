//! Patient summary cards: what a front-desk list or a chart header shows
//! of a patient at a glance (name, birth date, sex, MRN, date of death,
//! allergies as substance and severity, the next booked appointment),
//! from the `patients` and `schedule` read models.

use anamnesis_commands::Db;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schedule::{appointments, AppointmentFilter};

/// Booked appointments a card keeps, soonest first: the next one is the
/// first of them still ahead when the card is read.
pub const UPCOMING_KEPT: i64 = 10;

/// A card as kept and computed: the answer of `GET
/// /v1/patients/{id}/card` before the reader's role and "now" are applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardData {
    pub id: String,
    pub family_name: String,
    pub given_name: String,
    pub birth_date: NaiveDate,
    pub sex: String,
    /// The first identifier of system `mrn` (any case).
    pub mrn: Option<String>,
    pub deceased_on: Option<NaiveDate>,
    pub allergies: Vec<AllergyBrief>,
    /// Booked appointments starting after the card was computed, soonest
    /// first, at most [`UPCOMING_KEPT`].
    pub upcoming: Vec<Upcoming>,
    /// Whether more were booked than `upcoming` holds.
    pub more_upcoming: bool,
    /// The position of the patient's last event in the `patients` read model.
    pub version: i64,
}

/// An allergy as a card shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AllergyBrief {
    pub substance: String,
    /// mild, moderate, severe or life_threatening.
    pub severity: String,
}

/// A booked appointment (times in seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upcoming {
    pub appointment_id: String,
    pub provider_id: String,
    pub starts_at: i64,
    pub ends_at: i64,
}

impl CardData {
    /// The next booked appointment starting after `now` (seconds), or
    /// `None` when the card cannot tell (every kept one has begun, and it
    /// kept fewer than were booked).
    pub fn next_after(&self, now: i64) -> Option<Option<&Upcoming>> {
        match self.upcoming.iter().find(|u| u.starts_at > now) {
            Some(u) => Some(Some(u)),
            None if self.more_upcoming => None,
            None => Some(None),
        }
    }
}

/// Field `field` of a stored list item; missing is damage, said so,
/// never an empty value on a card.
fn text(v: &Value, field: &str) -> Result<String, sqlx::Error> {
    v[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| sqlx::Error::Decode(format!("a patient list item without {field}").into()))
}

/// Patient `id`'s card from the database, with the booked appointments
/// starting after `now` (seconds); `None` when the read model has no such
/// patient.
pub async fn card_from_database(
    db: &Db,
    id: &str,
    now: i64,
) -> Result<Option<CardData>, sqlx::Error> {
    let Some(patient) = crate::patients::get(db, id).await? else {
        return Ok(None);
    };
    let filter = AppointmentFilter {
        patient_id: Some(id.to_owned()),
        statuses: vec!["booked".to_owned()],
        from: Some(now + 1),
        limit: UPCOMING_KEPT,
        ..Default::default()
    };
    let (rows, more) = appointments(db, &filter).await?;
    let mrn = patient
        .identifiers
        .iter()
        .find(|i| {
            i["system"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("mrn"))
        })
        .map(|i| text(i, "value"))
        .transpose()?;
    // The read model always holds the list (only a role's view leaves it
    // out): a card never shows "no allergies" for a list it did not get.
    let allergies = patient
        .allergies
        .ok_or_else(|| sqlx::Error::Decode("a patient read without its allergies".into()))?
        .iter()
        .map(|a| {
            Ok(AllergyBrief {
                substance: text(a, "substance")?,
                severity: text(a, "severity")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Some(CardData {
        id: patient.id,
        family_name: patient.family_name,
        given_name: patient.given_name,
        birth_date: patient.birth_date,
        sex: patient.sex,
        mrn,
        deceased_on: patient.deceased_on,
        allergies,
        upcoming: rows
            .into_iter()
            .map(|r| Upcoming {
                appointment_id: r.appointment_id,
                provider_id: r.provider_id,
                starts_at: r.starts_at,
                ends_at: r.ends_at,
            })
            .collect(),
        more_upcoming: more,
        version: patient.version,
    }))
}
