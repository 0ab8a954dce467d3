//! The scheduling part of the access test: a provider record for the doctor
//! account and one for the nurse account, appointments booked as setup, and
//! the request each scheduling route makes.
//!
//! Every booking, reschedule and closure takes a free slot of its own, two
//! days ahead (as the clinic lists them, so in its time zone), so no call
//! collides with another's and none is in the past while the test runs.

use chrono::{Days, Utc};
use serde_json::{json, Value};

use anamnesis_tests::access::{Calendar, Record, Row};
use anamnesis_tests::fixtures::at;

use super::World;

/// The specialty of the two providers; providers the calls enroll get
/// another, so that the slot search sees these two only.
const SPECIALTY: &str = "Cardiology";

/// Weekly hours of both providers: every day 00:00–23:55 in five-minute
/// slots, so that every day has bookable time.
fn all_day() -> Value {
    let days = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let hours: Vec<Value> = days
        .iter()
        .map(|day| json!({"day": day, "intervals": [{"start": "00:00", "end": "23:55"}]}))
        .collect();
    json!({"hours": hours, "slot_minutes": 5})
}

/// The providers and appointments the scheduling routes act on.
#[derive(Default)]
pub struct Clinic {
    /// The doctor account's provider record.
    doctor: String,
    /// The nurse account's provider record.
    nurse: String,
    /// The local day (`YYYY-MM-DD`) the free slots are on.
    day: String,
    /// Free slots (`starts_at`, `ends_at`) no call has taken yet.
    free: Vec<(String, String)>,
    /// Appointments that calls only read or cannot change (a no-show before
    /// the start), by patient and calendar.
    shared: Vec<((Record, Calendar), String)>,
}

impl World {
    /// Enrolls the doctor (`doctor_user`) and the nurse (`nurse_user`) as
    /// providers working every day, lists their free time, and books the
    /// shared appointments; returns once the read model holds them all.
    pub(super) async fn open_clinic(
        &mut self,
        doctor_user: &str,
        nurse_user: &str,
    ) -> anyhow::Result<()> {
        for (calendar, user_id) in [
            (Calendar::Doctor, doctor_user),
            (Calendar::Nurse, nurse_user),
        ] {
            let body = json!({
                "user_id": user_id,
                "display_name": format!("{calendar:?} On Call"),
                "specialty": SPECIALTY,
                "default_minutes": 5,
            });
            let id = self
                .as_role("admin", "POST", "/v1/providers", Some(body))
                .await?;
            let path = format!("/v1/providers/{id}/availability");
            self.as_role("admin", "PUT", &path, Some(all_day())).await?;
            match calendar {
                Calendar::Doctor => self.clinic.doctor = id,
                _ => self.clinic.nurse = id,
            }
        }
        // Both work the same hours, so the doctor's free slots are the nurse's.
        let day = (Utc::now().date_naive() + Days::new(2)).to_string();
        let path = format!(
            "/v1/providers/{}/slots?from={day}&to={day}",
            self.clinic.doctor
        );
        let token = self.account("staff").access.clone();
        let r = self.s.call("GET", &path, Some(&token), None, &[]).await?;
        anyhow::ensure!(r.status == 200, "listing free slots: {r:?}");
        let slot = |s: &Value| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (text("starts_at"), text("ends_at"))
        };
        self.clinic.free = r.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(slot)
            .collect();
        self.clinic.free.reverse();
        self.clinic.day = day;
        let mut last = None;
        for shared in [
            (Record::Own, Calendar::Doctor),
            (Record::Other, Calendar::Nurse),
        ] {
            let (starts_at, _) = self.slot()?;
            let body = self.booking(shared.0, shared.1, &starts_at)?;
            let booked = self
                .setup("staff", "POST", "/v1/appointments", Some(body))
                .await?;
            let id = booked.body["id"].as_str().unwrap_or_default().to_owned();
            self.clinic.shared.push((shared, id.clone()));
            last = Some((id, booked));
        }
        // Read back the last booking at its position: the read model then
        // holds the providers and the shared appointments.
        let (id, booked) = last.unwrap();
        let path = format!("/v1/appointments/{id}");
        let r = self
            .s
            .call("GET", &path, Some(&token), None, &at(&booked))
            .await?;
        anyhow::ensure!(r.status == 200, "reading a shared appointment: {r:?}");
        Ok(())
    }

    /// The provider record of `calendar`.
    fn provider(&self, calendar: Calendar) -> anyhow::Result<String> {
        match calendar {
            Calendar::Doctor => Ok(self.clinic.doctor.clone()),
            Calendar::Nurse => Ok(self.clinic.nurse.clone()),
            Calendar::None => anyhow::bail!("this scheduling row names no calendar"),
        }
    }

    fn patient_of(&self, record: Record) -> anyhow::Result<String> {
        match record {
            Record::Own => Ok(self.own_id.clone()),
            Record::Other => Ok(self.other_id.clone()),
            _ => {
                anyhow::bail!("an appointment row names the patient account's record or another's")
            }
        }
    }

    /// A free slot no call has taken.
    fn slot(&mut self) -> anyhow::Result<(String, String)> {
        self.clinic
            .free
            .pop()
            .ok_or_else(|| anyhow::anyhow!("the day's free slots are used up: list more days"))
    }

    fn booking(
        &self,
        record: Record,
        calendar: Calendar,
        starts_at: &str,
    ) -> anyhow::Result<Value> {
        Ok(json!({
            "provider_id": self.provider(calendar)?,
            "patient_id": self.patient_of(record)?,
            "starts_at": starts_at,
            "reason_for_visit": "Check-up",
        }))
    }

    /// An appointment of `record`'s patient on `calendar`, booked by staff.
    async fn book(&mut self, record: Record, calendar: Calendar) -> anyhow::Result<String> {
        let (starts_at, _) = self.slot()?;
        let body = self.booking(record, calendar, &starts_at)?;
        self.as_role("staff", "POST", "/v1/appointments", Some(body))
            .await
    }

    /// A new appointment for `row`, taken by staff through `steps` (visit
    /// routes) first: a call that changes an appointment gets one of its own.
    async fn fresh_appointment(&mut self, row: &Row, steps: &[&str]) -> anyhow::Result<String> {
        let id = self.book(row.record, row.calendar).await?;
        for step in steps {
            let path = format!("/v1/appointments/{id}/{step}");
            self.as_role("staff", "POST", &path, None).await?;
        }
        Ok(id)
    }

    /// A shared appointment for `row`, which the call must not change.
    fn shared_appointment(&self, row: &Row) -> anyhow::Result<String> {
        let wanted = (row.record, row.calendar);
        self.clinic
            .shared
            .iter()
            .find(|(k, _)| *k == wanted)
            .map(|(_, id)| id.clone())
            .ok_or_else(|| {
                anyhow::anyhow!("no shared appointment for {wanted:?}: book one in open_clinic")
            })
    }

    /// A time off of `calendar`'s provider, added by admin; returns its path.
    async fn time_off(&mut self, calendar: Calendar) -> anyhow::Result<String> {
        let provider = self.provider(calendar)?;
        let path = format!("/v1/providers/{provider}/time-off");
        let body = self.closure()?;
        let id = self.as_role("admin", "POST", &path, Some(body)).await?;
        Ok(format!("{path}/{id}"))
    }

    /// A closure over a free slot.
    fn closure(&mut self) -> anyhow::Result<Value> {
        let (starts_at, ends_at) = self.slot()?;
        Ok(json!({"starts_at": starts_at, "ends_at": ends_at, "reason": "Training"}))
    }

    /// The request of a scheduling row (`None`: not a scheduling route),
    /// built so that it succeeds when permitted; `patient` is the record
    /// `row.record` names.
    pub(super) async fn schedule_request(
        &mut self,
        row: &Row,
        patient: &str,
    ) -> anyhow::Result<Option<(String, Option<Value>)>> {
        let day = self.clinic.day.clone();
        let appointment = |action: &str, id: &str| format!("/v1/appointments/{id}/{action}");
        let request = match row.route {
            "POST /v1/providers" => {
                let n = self.unique();
                let name = format!("clinician{n}");
                let admin = self.account("admin").access.clone();
                let user_id = super::create_user(&self.s, &admin, &name, "doctor").await?;
                let body = json!({
                    "user_id": user_id,
                    "display_name": format!("Dr {n}"),
                    "specialty": "General practice",
                    "default_minutes": 15,
                });
                ("/v1/providers".to_owned(), Some(body))
            }
            "GET /v1/providers" => (format!("/v1/providers?specialty={SPECIALTY}"), None),
            "GET /v1/providers/{id}" => (
                format!("/v1/providers/{}", self.provider(row.calendar)?),
                None,
            ),
            "PUT /v1/providers/{id}/availability" => {
                let provider = self.provider(row.calendar)?;
                (
                    format!("/v1/providers/{provider}/availability"),
                    Some(all_day()),
                )
            }
            "POST /v1/providers/{id}/time-off" => {
                let provider = self.provider(row.calendar)?;
                (
                    format!("/v1/providers/{provider}/time-off"),
                    Some(self.closure()?),
                )
            }
            "DELETE /v1/providers/{id}/time-off/{closure_id}" => {
                (self.time_off(row.calendar).await?, None)
            }
            "POST /v1/holidays" => ("/v1/holidays".to_owned(), Some(self.closure()?)),
            "DELETE /v1/holidays/{closure_id}" => {
                let body = self.closure()?;
                let id = self
                    .as_role("admin", "POST", "/v1/holidays", Some(body))
                    .await?;
                (format!("/v1/holidays/{id}"), None)
            }
            "GET /v1/providers/{id}/slots" => {
                let provider = self.provider(row.calendar)?;
                (
                    format!("/v1/providers/{provider}/slots?from={day}&to={day}"),
                    None,
                )
            }
            "GET /v1/slots" => (
                format!("/v1/slots?specialty={SPECIALTY}&from={day}&limit=5"),
                None,
            ),
            "POST /v1/appointments" => {
                let (starts_at, _) = self.slot()?;
                let body = self.booking(row.record, row.calendar, &starts_at)?;
                ("/v1/appointments".to_owned(), Some(body))
            }
            "POST /v1/appointments/overbook" => {
                // Over another patient's appointment at the same time.
                let (starts_at, _) = self.slot()?;
                let taken = self.booking(Record::Other, row.calendar, &starts_at)?;
                self.as_role("staff", "POST", "/v1/appointments", Some(taken))
                    .await?;
                let mut body = self.booking(row.record, row.calendar, &starts_at)?;
                body["overbook_reason"] = json!("Urgent");
                ("/v1/appointments/overbook".to_owned(), Some(body))
            }
            "GET /v1/appointments/{id}" => (
                format!("/v1/appointments/{}", self.shared_appointment(row)?),
                None,
            ),
            "POST /v1/appointments/{id}/cancel" => {
                let id = self.fresh_appointment(row, &[]).await?;
                (
                    appointment("cancel", &id),
                    Some(json!({"reason": "Feeling better"})),
                )
            }
            "POST /v1/appointments/{id}/reschedule" => {
                let id = self.fresh_appointment(row, &[]).await?;
                let (starts_at, _) = self.slot()?;
                (
                    appointment("reschedule", &id),
                    Some(json!({"starts_at": starts_at})),
                )
            }
            "POST /v1/appointments/{id}/check-in" => {
                let id = self.fresh_appointment(row, &[]).await?;
                (appointment("check-in", &id), None)
            }
            "POST /v1/appointments/{id}/start" => {
                let id = self.fresh_appointment(row, &["check-in"]).await?;
                (appointment("start", &id), None)
            }
            "POST /v1/appointments/{id}/complete" => {
                let id = self.fresh_appointment(row, &["check-in", "start"]).await?;
                (appointment("complete", &id), None)
            }
            // Before its start: permitted callers get `not_started_yet` (the row says so).
            "POST /v1/appointments/{id}/no-show" => {
                (appointment("no-show", &self.shared_appointment(row)?), None)
            }
            "GET /v1/appointments" => (
                format!("/v1/appointments?provider_id={}", self.clinic.doctor),
                None,
            ),
            "GET /v1/providers/{id}/schedule" => {
                let provider = self.provider(row.calendar)?;
                (
                    format!("/v1/providers/{provider}/schedule?date={day}&days=1"),
                    None,
                )
            }
            "GET /v1/patients/{id}/appointments" => (
                format!("/v1/patients/{patient}/appointments?when=upcoming"),
                None,
            ),
            "GET /v1/me/provider" => ("/v1/me/provider".to_owned(), None),
            _ => return Ok(None),
        };
        Ok(Some(request))
    }
}
