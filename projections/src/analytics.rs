//! De-identified analytics (ADR 0021): fact tables of appointments,
//! prescriptions, bills and claims, and lookups of patients' age band, sex
//! and region and providers' specialty, folded from the log by one
//! projector; the queries behind the analyst API, with small-cell
//! suppression, are in [`queries`].
//!
//! Nothing here holds a name, a contact detail, a birth date, free text or
//! an identifier of a patient: the opaque ids needed to fold (and to count
//! distinct patients for suppression), the age band at the date of the
//! event that carried the birth date, sex, the first three characters of
//! the postal code, a drug class from the built-in table (never the drug's
//! name), money and days. A bill is folded with the domain's own `apply`
//! from its events with every text field blanked first ([`blanked`]).
//!
//! Local days are the clinic's (`--time-zone`), so the projector carries
//! the zone: rebuilt with the same zone, it makes the same rows.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};

use anamnesis_domain::billing::BillEvent;
use anamnesis_domain::codec::{DecodeError, StoredForm};
use anamnesis_domain::medication::{drug_class, MedicationEvent};
use anamnesis_domain::patient::{Address, Demographics, PatientEvent};
use anamnesis_domain::schedule::{AppointmentEvent, ClinicZone, ProviderEvent};

use crate::billing::day_number;
use crate::runner::{Decode, Envelope, ProjectionError, Projector, Tx};
use crate::sql;

mod bills;
pub mod queries;
mod revenue;

pub use bills::{blanked, month_of};
use bills::{fits, load, write, Folded};

pub use queries::{
    appointments, patients, prescriptions, AppointmentGroup, AppointmentRow, Count, PatientGroup,
    PatientRow, PrescriptionRow, Rate, THRESHOLD,
};
pub use revenue::{billing, BillingGroup, BillingRow};

/// The projector's checkpoint name.
pub const NAME: &str = "analytics";

/// The age bands, youngest first.
pub const AGE_BANDS: [&str; 6] = ["0-17", "18-34", "35-49", "50-64", "65-79", "80+"];

/// The band of someone born on `birth`, on `on`.
pub fn age_band(birth: NaiveDate, on: NaiveDate) -> &'static str {
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    match age {
        i32::MIN..=17 => AGE_BANDS[0],
        18..=34 => AGE_BANDS[1],
        35..=49 => AGE_BANDS[2],
        50..=64 => AGE_BANDS[3],
        65..=79 => AGE_BANDS[4],
        _ => AGE_BANDS[5],
    }
}

/// The coarse region of an address: the first three letters or digits of
/// its postal code, upper-cased (a US ZIP3, a UK outward code's start, a
/// Canadian FSA); `unknown` without an address or a usable code.
pub fn region(address: Option<&Address>) -> String {
    let code: String = address
        .map(|a| {
            a.postal_code
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(3)
                .collect::<String>()
                .to_ascii_uppercase()
        })
        .unwrap_or_default();
    if code.chars().count() == 3 {
        code
    } else {
        "unknown".to_owned()
    }
}

/// The class a prescription is counted under.
pub fn class_of(medication_name: &str) -> &'static str {
    drug_class(medication_name).unwrap_or("other")
}

/// An event of any aggregate analytics reads.
#[derive(Debug, Clone, PartialEq)]
pub enum AnalyticsEvent {
    Patient(PatientEvent),
    Provider(ProviderEvent),
    Appointment(AppointmentEvent),
    Medication(MedicationEvent),
    Bill(BillEvent),
}

impl Decode for AnalyticsEvent {
    fn decode(event_type: &str, version: &str, payload: &str) -> Result<Self, DecodeError> {
        Ok(match event_type.split('.').next().unwrap_or("") {
            "patient" => Self::Patient(PatientEvent::from_stored(event_type, version, payload)?),
            "provider" => Self::Provider(ProviderEvent::from_stored(event_type, version, payload)?),
            "appointment" => {
                Self::Appointment(AppointmentEvent::from_stored(event_type, version, payload)?)
            }
            "medication" => {
                Self::Medication(MedicationEvent::from_stored(event_type, version, payload)?)
            }
            "bill" => Self::Bill(BillEvent::from_stored(event_type, version, payload)?),
            _ => {
                return Err(DecodeError::Unknown {
                    event_type: event_type.to_owned(),
                    version: version.to_owned(),
                })
            }
        })
    }
}

/// Folds the analytics tables, local days in the clinic's `zone`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Analytics {
    zone: ClinicZone,
}

impl Analytics {
    /// Analytics whose days are local days in `zone`.
    pub fn new(zone: ClinicZone) -> Self {
        Self { zone }
    }
}

impl Projector for Analytics {
    type Event = AnalyticsEvent;

    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["patient", "provider", "appointment", "medication", "bill"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "analytics_patients",
            "analytics_providers",
            "analytics_appointments",
            "analytics_prescriptions",
            "analytics_bills",
            "analytics_claims",
        ]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<AnalyticsEvent>],
    ) -> Result<(), ProjectionError> {
        // Bills touched by the batch: read in one statement, folded in
        // memory, written together at the end.
        let mut first: BTreeMap<&str, i64> = BTreeMap::new();
        for e in events {
            if let AnalyticsEvent::Bill(_) = e.event {
                first.entry(e.id()).or_insert(e.position());
            }
        }
        let mut bills: BTreeMap<String, Folded> = if first.is_empty() {
            BTreeMap::new()
        } else {
            let ids = first
                .into_iter()
                .map(|(id, p)| (id.to_owned(), p))
                .collect();
            load(tx, ids).await?
        };
        // Registrations are one insert, up to the next other patient event
        // (the only statements on analytics_patients).
        let mut registered = sql::Run::new_rows(
            "analytics_patients (patient_id, age_band, sex, region, position, deceased)",
            "patient_id",
            "demographics of a patient registered twice",
        );
        // Appointments booked in the batch stay in memory until its end
        // (later events about them change them there).
        let mut booked: BTreeMap<String, Booked> = BTreeMap::new();
        for e in events {
            if matches!(&e.event, AnalyticsEvent::Patient(p)
                if !matches!(p, PatientEvent::PatientRegistered { .. }))
            {
                registered.flush(tx).await?;
            }
            match &e.event {
                AnalyticsEvent::Patient(event) => {
                    self.patient(tx, e, event, &mut registered).await?
                }
                AnalyticsEvent::Provider(event) => provider(tx, event, e.id()).await?,
                AnalyticsEvent::Appointment(event) => {
                    self.appointment(tx, e, event, &mut booked).await?
                }
                AnalyticsEvent::Medication(event) => self.medication(tx, e, event).await?,
                AnalyticsEvent::Bill(event) => {
                    let folded = bills
                        .get_mut(e.id())
                        .ok_or_else(|| damaged(e, "a bill lost from the batch"))?;
                    if !fits(&folded.bill, event) {
                        return Err(damaged(e, "a bill event that does not fit its bill"));
                    }
                    folded.bill.fold(blanked(event.clone()));
                    folded.position = e.position();
                }
            }
        }
        registered.flush(tx).await?;
        write_booked(tx, booked).await?;
        if !bills.is_empty() {
            write(tx, &bills).await?;
        }
        Ok(())
    }

    /// De-identified counts stay (ADR 0024): the patient's rows lose their
    /// link to the patient, replaced by a pseudonym no other table knows.
    /// A rebuild after the erasure no longer counts them.
    async fn erase(&self, tx: &mut Tx, patient: uuid::Uuid) -> Result<(), ProjectionError> {
        let pseudonym = format!("erased-{}", uuid::Uuid::now_v7());
        for table in [
            "analytics_patients",
            "analytics_appointments",
            "analytics_prescriptions",
            "analytics_bills",
            "analytics_claims",
        ] {
            crate::sql::execute(
                tx,
                &format!("UPDATE {table} SET patient_id = $2 WHERE patient_id = $1"),
                &[patient.to_string().into(), pseudonym.clone().into()],
            )
            .await?;
        }
        Ok(())
    }
}

fn damaged(e: &Envelope<AnalyticsEvent>, detail: impl Into<String>) -> ProjectionError {
    ProjectionError::Event {
        position: e.position(),
        detail: detail.into(),
    }
}

/// Fails unless exactly one row was written.
fn one_row(e: &Envelope<AnalyticsEvent>, n: u64, what: &str) -> Result<(), ProjectionError> {
    if n == 1 {
        Ok(())
    } else {
        Err(damaged(e, what))
    }
}

impl Analytics {
    /// Applies a patient event; a registration goes into the run
    /// `registered`.
    async fn patient(
        &self,
        tx: &mut Tx,
        e: &Envelope<AnalyticsEvent>,
        event: &PatientEvent,
        registered: &mut sql::Run,
    ) -> Result<(), ProjectionError> {
        let demographics: &Demographics = match event {
            PatientEvent::PatientRegistered { demographics, .. }
            | PatientEvent::DemographicsUpdated { demographics } => demographics,
            // Applied before it, by `erase`.
            PatientEvent::Erased => return Ok(()),
            PatientEvent::PatientDeceased { .. } => {
                let n = sql::execute(
                    tx,
                    "UPDATE analytics_patients SET deceased = 1, position = $2 \
                     WHERE patient_id = $1",
                    &[e.id().into(), e.position().into()],
                )
                .await?;
                return one_row(e, n, "a death of a patient analytics does not hold");
            }
            _ => return Ok(()),
        };
        let mut row = self.demographics(e, demographics);
        if matches!(event, PatientEvent::PatientRegistered { .. }) {
            row.push(0_i64.into());
            registered.push(e.id().to_owned(), e.position(), row);
            return Ok(());
        }
        let n = sql::execute(
            tx,
            "UPDATE analytics_patients SET age_band = $2, sex = $3, region = $4, \
             position = $5 WHERE patient_id = $1",
            &row,
        )
        .await?;
        one_row(e, n, "demographics of a patient never registered")
    }

    /// A patient's row as `demographics` make it: id, age band, sex,
    /// region, position.
    fn demographics(
        &self,
        e: &Envelope<AnalyticsEvent>,
        demographics: &Demographics,
    ) -> Vec<sql::Value> {
        let on = self.zone.date_of(e.stored.recorded_at);
        vec![
            e.id().into(),
            age_band(demographics.birth_date.date(), on).into(),
            demographics.sex.as_str().into(),
            region(demographics.address.as_ref()).into(),
            e.position().into(),
        ]
    }

    /// Applies an appointment event: a booking goes into `booked`, and so
    /// do later changes of an appointment booked in the batch.
    async fn appointment(
        &self,
        tx: &mut Tx,
        e: &Envelope<AnalyticsEvent>,
        event: &AppointmentEvent,
        booked: &mut BTreeMap<String, Booked>,
    ) -> Result<(), ProjectionError> {
        use AppointmentEvent as A;
        if let A::Booked { booking } = event {
            let start = booking.period.start;
            let new = Booked {
                booked: e.position(),
                patient_id: booking.patient_id.to_string(),
                provider_id: booking.provider_id.to_string(),
                day: day_number(self.zone.date_of(start)),
                starts_at: start.timestamp(),
                booked_at: e.stored.recorded_at.timestamp(),
                status: "booked",
                late: 0,
                position: e.position(),
            };
            if booked.insert(e.id().to_owned(), new).is_some() {
                return Err(damaged(e, "an appointment booked twice"));
            }
            return Ok(());
        }
        let status = match event {
            A::Booked { .. } | A::Rescheduled { .. } => None,
            A::CheckedIn { .. } => Some("checked_in"),
            A::Started { .. } => Some("in_progress"),
            A::Completed { .. } => Some("completed"),
            A::NoShow { .. } => Some("no_show"),
            A::Cancelled { .. } => Some("cancelled"),
        };
        if let Some(b) = booked.get_mut(e.id()) {
            match event {
                A::Rescheduled { to, .. } => {
                    b.day = day_number(self.zone.date_of(to.start));
                    b.starts_at = to.start.timestamp();
                }
                A::Cancelled { late, .. } => b.late = i64::from(*late),
                _ => {}
            }
            if let Some(status) = status {
                b.status = status;
            }
            b.position = e.position();
            return Ok(());
        }
        let n =
            match (event, status) {
                (A::Rescheduled { to, .. }, _) => sql::execute(
                    tx,
                    "UPDATE analytics_appointments SET day = $2, starts_at = $3, position = $4 \
                     WHERE appointment_id = $1",
                    &[
                        e.id().into(),
                        day_number(self.zone.date_of(to.start)).into(),
                        to.start.timestamp().into(),
                        e.position().into(),
                    ],
                )
                .await?,
                (A::Cancelled { late, .. }, _) => {
                    sql::execute(
                        tx,
                        "UPDATE analytics_appointments SET status = 'cancelled', late = $2, \
                     position = $3 WHERE appointment_id = $1",
                        &[e.id().into(), i64::from(*late).into(), e.position().into()],
                    )
                    .await?
                }
                (_, Some(status)) => {
                    sql::execute(
                        tx,
                        "UPDATE analytics_appointments SET status = $2, position = $3 \
                     WHERE appointment_id = $1",
                        &[e.id().into(), status.into(), e.position().into()],
                    )
                    .await?
                }
                // A booking went into `booked` above.
                (_, None) => return Err(damaged(e, "a booking taken for a change")),
            };
        one_row(e, n, "a change of an appointment analytics does not hold")
    }

    async fn medication(
        &self,
        tx: &mut Tx,
        e: &Envelope<AnalyticsEvent>,
        event: &MedicationEvent,
    ) -> Result<(), ProjectionError> {
        let n =
            match event {
                MedicationEvent::Prescribed { origin, order, .. } => sql::execute(
                    tx,
                    "INSERT INTO analytics_prescriptions (medication_id, patient_id, drug_class, \
                     day, status, position) VALUES ($1, $2, $3, $4, 'active', $5) \
                     ON CONFLICT (medication_id) DO NOTHING",
                    &[
                        e.id().into(),
                        origin.patient_id.to_string().into(),
                        class_of(&order.medication.name).into(),
                        day_number(self.zone.date_of(e.stored.recorded_at)).into(),
                        e.position().into(),
                    ],
                )
                .await?,
                MedicationEvent::Discontinued { .. } | MedicationEvent::Completed { .. } => {
                    let status = match event {
                        MedicationEvent::Discontinued { .. } => "discontinued",
                        _ => "completed",
                    };
                    sql::execute(
                        tx,
                        "UPDATE analytics_prescriptions SET status = $2, position = $3 \
                     WHERE medication_id = $1",
                        &[e.id().into(), status.into(), e.position().into()],
                    )
                    .await?
                }
                _ => return Ok(()),
            };
        one_row(
            e,
            n,
            "a prescription written twice, or ended but never written",
        )
    }
}

/// An appointment booked in the batch, as its row will be written (the
/// provider's specialty joins it then: set at enrolment, never changed).
struct Booked {
    /// The position of the booking.
    booked: i64,
    patient_id: String,
    provider_id: String,
    day: i64,
    starts_at: i64,
    booked_at: i64,
    status: &'static str,
    late: i64,
    position: i64,
}

/// Writes the appointments booked in a batch in one statement; one that
/// analytics holds already, or whose provider it does not hold, stops the
/// projector at its booking.
async fn write_booked(
    tx: &mut Tx,
    booked: BTreeMap<String, Booked>,
) -> Result<(), ProjectionError> {
    if booked.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<sql::Value>> = booked
        .iter()
        .map(|(id, b)| {
            vec![
                id.as_str().into(),
                b.patient_id.as_str().into(),
                b.provider_id.as_str().into(),
                b.day.into(),
                b.starts_at.into(),
                b.booked_at.into(),
                b.status.into(),
                b.late.into(),
                b.position.into(),
            ]
        })
        .collect();
    // `WHERE true`: SQLite reads an `ON` after a join as the join's
    // unless the SELECT has a WHERE.
    let written: std::collections::HashSet<String> = sql::select_with_values(
        tx,
        "appointment_id, patient_id, provider_id, day, starts_at, booked_at, status, late, \
         position",
        &rows,
        "INSERT INTO analytics_appointments (appointment_id, patient_id, provider_id, specialty, \
         day, starts_at, booked_at, status, late, position) \
         SELECT v.appointment_id, v.patient_id, v.provider_id, p.specialty, v.day, v.starts_at, \
         v.booked_at, v.status, v.late, v.position \
         FROM v JOIN analytics_providers p ON p.provider_id = v.provider_id WHERE true \
         ON CONFLICT (appointment_id) DO NOTHING RETURNING appointment_id",
    )
    .await?
    .into_iter()
    .collect();
    if let Some((_, b)) = booked.iter().find(|(id, _)| !written.contains(*id)) {
        return Err(ProjectionError::Event {
            position: b.booked,
            detail: "an appointment booked twice, or with a provider analytics does not hold"
                .into(),
        });
    }
    Ok(())
}

async fn provider(tx: &mut Tx, event: &ProviderEvent, id: &str) -> Result<(), ProjectionError> {
    if let ProviderEvent::Enrolled { profile } = event {
        sql::execute(
            tx,
            "INSERT INTO analytics_providers (provider_id, specialty) VALUES ($1, $2) \
             ON CONFLICT (provider_id) DO NOTHING",
            &[id.into(), profile.specialty.to_lowercase().into()],
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_age_band_turns_on_the_birthday() {
        assert_eq!(age_band(date("2008-12-01"), date("2026-11-30")), "0-17");
        assert_eq!(age_band(date("2008-12-01"), date("2026-12-01")), "18-34");
        assert_eq!(age_band(date("1967-11-07"), date("2026-11-30")), "50-64");
        assert_eq!(age_band(date("1946-01-01"), date("2026-01-01")), "80+");
        assert_eq!(age_band(date("1991-06-15"), date("2026-06-14")), "18-34");
        assert_eq!(age_band(date("1991-06-15"), date("2026-06-15")), "35-49");
    }

    #[test]
    fn the_region_is_the_start_of_the_postal_code() {
        let at = |code: &str| Address::parse("1 Main St", "Springfield", code, None, "US").unwrap();
        assert_eq!(region(Some(&at("02139"))), "021");
        assert_eq!(region(Some(&at("sw1a 1aa"))), "SW1");
        assert_eq!(region(Some(&at("K1A 0B1"))), "K1A");
        assert_eq!(region(Some(&at("1-2"))), "unknown");
        assert_eq!(region(None), "unknown");
    }

    #[test]
    fn an_unknown_drug_is_other() {
        assert_eq!(class_of("Amoxil"), "penicillins");
        assert_eq!(class_of("Salbutamol inhaler"), "other");
    }
}
