//! One appointment, from booking to its end: completed visits get their
//! chart (vitals by a nurse, a signed note by the provider, sometimes a
//! diagnosis or a lab result), sometimes a prescription, and a bill with,
//! for insured patients, a claim the payer answers; older bills are mostly
//! paid.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use anamnesis_commands::billing::{ClaimRequest, LineRequest, OpenRequest};
use anamnesis_commands::medication::{prescribe, Prescription};
use anamnesis_commands::schedule::BookingRequest;
use anamnesis_commands::EventMetadata;
use anamnesis_domain::billing::{Bill, BillCommand};
use anamnesis_domain::chart::{
    ChartEntry, Diagnosis, DiagnosisStatus, EntryBody, EntryCommand, Interpretation, LabResult,
    LabValue, Note, Origin, Vitals,
};
use anamnesis_domain::medication::{conflicts, Dose, Drug, Frequency, Order};
use anamnesis_domain::schedule::{Appointment, AppointmentCommand};
use anamnesis_domain::user::Role;

use super::names;
use super::plan::{self, Clinician, Outcome, PatientPlan, Visit};
use super::setup::by;
use super::story::{Clinic, Written};

impl Clinic {
    /// Books `v` and plays it out.
    pub(super) async fn visit(
        &self,
        plan: &PatientPlan,
        written: &mut Written,
        v: &Visit,
    ) -> anyhow::Result<()> {
        let mut r = plan::rng(
            self.sizes.seed,
            "visit",
            &[v.provider as u64, v.number as u64],
        );
        let minutes = self.providers[v.provider].minutes;
        let start = self.at(v, v.start);
        let end = start + Duration::minutes(minutes);
        let (reason, assessment) = plan::pick(&mut r, names::VISITS);
        let id = Uuid::now_v7();
        // Booked days ahead (or, ahead of today, now); by the patient on
        // the portal about half the time, else by the front desk.
        let booked_at = if v.outcome == Outcome::Booked {
            self.now
        } else {
            start - Duration::hours(r.gen_range(20..24 * 21))
        };
        let booker = match written.account {
            Some(account) if r.gen_bool(0.5) => by(account, Role::Patient),
            _ => by(self.desk(plan.index), Role::Staff),
        };
        let (_, provider_id, _) = self.staff.providers[v.provider];
        let request = BookingRequest {
            provider_id,
            patient_id: written.patient_id,
            starts_at: start,
            ends_at: Some(end),
            reason_for_visit: reason.to_owned(),
            overbook_reason: None,
            // The seed deactivates no provider.
            provider_active: true,
        };
        let done = self
            .scheduler
            .book(id, request, &booker, booked_at)
            .await
            .map_err(|e| anyhow::anyhow!("booking a visit: {e}"))?;
        self.tally.events(done.events);
        self.tally.appointment(v.outcome);
        let desk = by(self.desk(plan.index), Role::Staff);
        let (clinician, role) = self.clinician(v.provider);
        let as_clinician = by(clinician, role);
        match v.outcome {
            Outcome::Booked => Ok(()),
            Outcome::Cancelled => {
                let cancel = AppointmentCommand::Cancel {
                    reason: plan::pick(&mut r, names::CANCEL_REASONS).to_owned(),
                    by_clinic: false,
                    now: booked_at + (start - booked_at) / 2,
                };
                self.appointment(id, cancel, &booker).await
            }
            Outcome::NoShow => {
                let now = start + Duration::minutes(30);
                self.appointment(id, AppointmentCommand::NoShow { now }, &desk)
                    .await
            }
            Outcome::Completed => {
                let arrived = start - Duration::minutes(r.gen_range(0..15));
                self.appointment(id, AppointmentCommand::CheckIn { now: arrived }, &desk)
                    .await?;
                self.appointment(id, AppointmentCommand::Start { now: start }, &as_clinician)
                    .await?;
                self.appointment(id, AppointmentCommand::Complete { now: end }, &as_clinician)
                    .await?;
                let at = (start, end);
                self.chart(&mut r, written, v, id, at, assessment).await?;
                if self.providers[v.provider].kind == Clinician::Doctor && r.gen_bool(0.35) {
                    self.prescription(&mut r, written, clinician, end).await?;
                }
                self.bill(&mut r, written, v, id).await
            }
        }
    }

    async fn appointment(
        &self,
        id: Uuid,
        command: AppointmentCommand,
        metadata: &EventMetadata,
    ) -> anyhow::Result<()> {
        let done = self
            .bus
            .execute::<Appointment>(&id.to_string(), command, &(), metadata)
            .await
            .map_err(|e| anyhow::anyhow!("an appointment: {e}"))?;
        self.tally.events(done.events);
        Ok(())
    }

    async fn entry(
        &self,
        command: EntryCommand,
        id: &str,
        metadata: &EventMetadata,
        fresh: bool,
    ) -> anyhow::Result<()> {
        let done = if fresh {
            self.bus
                .create::<ChartEntry>(id, command, &(), metadata)
                .await
        } else {
            self.bus
                .execute::<ChartEntry>(id, command, &(), metadata)
                .await
        }
        .map_err(|e| anyhow::anyhow!("a chart entry: {e}"))?;
        self.tally.events(done.events);
        Ok(())
    }

    async fn chart(
        &self,
        r: &mut ChaCha8Rng,
        written: &Written,
        v: &Visit,
        appointment: Uuid,
        (start, end): (DateTime<Utc>, DateTime<Utc>),
        assessment: &str,
    ) -> anyhow::Result<()> {
        let (clinician, role) = self.clinician(v.provider);
        // Vitals by a nurse of the clinic when there is one, else the provider.
        let nurses: Vec<usize> = (0..self.staff.providers.len())
            .filter(|p| self.staff.providers[*p].2 == Clinician::Nurse)
            .collect();
        let (taker, taker_role) = match nurses.get(v.number % nurses.len().max(1)) {
            Some(n) => self.clinician(*n),
            None => (clinician, role),
        };
        let vitals = EntryBody::Vitals(Vitals {
            taken_at: start + Duration::minutes(2),
            systolic_mmhg: Some(r.gen_range(100..160)),
            diastolic_mmhg: Some(r.gen_range(60..100)),
            heart_rate_bpm: Some(r.gen_range(55..100)),
            temperature_c: Some(f64::from(r.gen_range(361..378)) / 10.0),
            respiratory_rate: Some(r.gen_range(12..20)),
            spo2_percent: Some(r.gen_range(94..100)),
            weight_kg: Some(f64::from(r.gen_range(450..1100)) / 10.0),
            height_cm: Some(f64::from(r.gen_range(1500..1950)) / 10.0),
        });
        let origin = |author| Origin {
            patient_id: written.patient_id,
            author,
        };
        let recorded = EntryCommand::Record {
            origin: origin(taker),
            body: vitals,
            now: start + Duration::minutes(5),
        };
        let id = Uuid::now_v7().to_string();
        self.entry(recorded, &id, &by(taker, taker_role), true)
            .await?;
        let as_clinician = by(clinician, role);
        let note = EntryBody::Note(Note {
            subjective: Some("Patient reports symptoms as described at booking.".into()),
            objective: Some("Vitals recorded; examination unremarkable.".into()),
            assessment: Some(assessment.to_owned()),
            plan: Some("Continue current care; return if symptoms worsen.".into()),
            appointment_id: Some(appointment),
        });
        let id = Uuid::now_v7().to_string();
        let draft = EntryCommand::Draft {
            origin: origin(clinician),
            body: note,
            now: end - Duration::minutes(2),
        };
        self.entry(draft, &id, &as_clinician, true).await?;
        self.entry(EntryCommand::Sign { now: end }, &id, &as_clinician, false)
            .await?;
        let mut entries = 2;
        if r.gen_bool(0.3) {
            let (code, description) = plan::pick(r, names::CONDITIONS);
            let body = EntryBody::Diagnosis(Diagnosis {
                description: description.to_owned(),
                icd10: Some(code.to_owned()),
                status: DiagnosisStatus::Active,
                onset: Some(self.zone.date_of(start)),
            });
            let record = EntryCommand::Record {
                origin: origin(clinician),
                body,
                now: end,
            };
            self.entry(record, &Uuid::now_v7().to_string(), &as_clinician, true)
                .await?;
            entries += 1;
        }
        if r.gen_bool(0.25) {
            let (loinc, test, unit, low, high) = plan::pick(r, names::LABS);
            let abnormal = r.gen_bool(0.2);
            let value = if abnormal {
                high * 1.2
            } else {
                low + (high - low) * r.gen_range(0.1..0.9)
            };
            let body = EntryBody::Lab(LabResult {
                test: test.to_owned(),
                loinc: Some(loinc.to_owned()),
                value: LabValue::Number((value * 10.0).round() / 10.0),
                unit: Some(unit.to_owned()),
                reference_range: Some(format!("{low}-{high}")),
                interpretation: if abnormal {
                    Interpretation::Abnormal
                } else {
                    Interpretation::Normal
                },
                specimen_at: start + Duration::minutes(10),
            });
            let record = EntryCommand::Record {
                origin: origin(clinician),
                body,
                now: end,
            };
            self.entry(record, &Uuid::now_v7().to_string(), &as_clinician, true)
                .await?;
            entries += 1;
        }
        self.tally.chart(entries);
        Ok(())
    }

    async fn prescription(
        &self,
        r: &mut ChaCha8Rng,
        written: &mut Written,
        doctor: Uuid,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        // A drug this patient has not had, and not one they are allergic to.
        let first = r.gen_range(0..names::DRUGS.len());
        let choice = (0..names::DRUGS.len())
            .map(|k| (first + k) % names::DRUGS.len())
            .find(|d| {
                let drug = Drug {
                    name: names::DRUGS[*d].0.to_owned(),
                    rxnorm: None,
                };
                !written.drugs.contains(d) && conflicts(&drug, &written.allergies).is_empty()
            });
        let Some(d) = choice else {
            return Ok(());
        };
        let (name, amount, unit, route, days) = names::DRUGS[d];
        let times = if r.gen_bool(0.6) {
            vec![NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN)]
        } else {
            vec![
                NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
                NaiveTime::from_hms_opt(20, 0, 0).unwrap_or(NaiveTime::MIN),
            ]
        };
        let order = Order {
            medication: Drug {
                name: name.to_owned(),
                rxnorm: None,
            },
            dose: Dose { amount, unit },
            route,
            frequency: Frequency::TimesADay { times },
            starts_at: at,
            ends_at: None,
            duration_days: (days > 0).then_some(days),
            refills: if days == 0 { r.gen_range(0..4) } else { 0 },
            instructions: Some("Take with water.".into()),
        };
        let request = Prescription {
            patient_id: written.patient_id,
            prescriber: doctor,
            order,
            override_reason: None,
        };
        let done = prescribe(
            &self.bus,
            Uuid::now_v7(),
            request,
            &by(doctor, Role::Doctor),
            (at, self.zone),
        )
        .await
        .map_err(|e| anyhow::anyhow!("a prescription: {e}"))?;
        written.drugs.push(d);
        self.tally.events(done.events);
        self.tally.prescription();
        Ok(())
    }

    async fn bill(
        &self,
        r: &mut ChaCha8Rng,
        written: &Written,
        v: &Visit,
        appointment: Uuid,
    ) -> anyhow::Result<()> {
        let staff = by(self.staff.billing, Role::Staff);
        let bill_id = Uuid::now_v7();
        let open = OpenRequest {
            bill_id,
            patient_id: written.patient_id,
            appointment_id: Some(appointment),
            service_date: None,
            today: v.date,
        };
        let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("a bill: {e}");
        let done = self
            .billing
            .open(open, &staff)
            .await
            .map_err(|e| fail(&e))?;
        self.tally.events(done.events);
        let (code, _, price) = names::PRICES[r.gen_range(0..2)];
        let line = LineRequest {
            line_id: Uuid::now_v7(),
            code: code.to_owned(),
            quantity: 1,
            unit_price: None,
        };
        let done = self
            .billing
            .add_line(bill_id, line, &staff)
            .await
            .map_err(|e| fail(&e))?;
        self.tally.events(done.events);
        let age = (self.sizes.today - v.date).num_days();
        let on = |days: i64| v.date + Duration::days(days.min(age));
        let issue = BillCommand::Issue { today: on(1) };
        self.run_bill(bill_id, issue, &staff).await?;
        let mut owed = price;
        if let Some(coverage_id) = written.coverage.filter(|_| r.gen_bool(0.9)) {
            let claim_id = Uuid::now_v7();
            let amount = price * 8 / 10;
            let claim = ClaimRequest {
                claim_id,
                coverage_id,
                amount,
                today: on(2),
            };
            let done = self
                .billing
                .submit_claim(bill_id, written.patient_id, claim, &staff)
                .await
                .map_err(|e| fail(&e))?;
            self.tally.events(done.events);
            self.tally.claim();
            owed -= amount;
            // The payer answers within a week or two.
            if age > 10 {
                self.run_bill(bill_id, BillCommand::AcceptClaim { claim_id }, &staff)
                    .await?;
                let (paid, codes) = match r.gen_range(0..20) {
                    0 => (0, vec!["CO-97".to_owned()]),
                    1 | 2 => (amount / 2, vec!["CO-45".to_owned()]),
                    _ => (amount, Vec::new()),
                };
                let adjudicate = BillCommand::Adjudicate {
                    claim_id,
                    paid,
                    reason_codes: codes,
                };
                self.run_bill(bill_id, adjudicate, &staff).await?;
            }
        }
        // Patients pay their part at the desk or online, most within weeks.
        if owed > 0 && age > 3 && r.gen_bool(0.75) {
            let pay = BillCommand::Pay {
                payment_id: Uuid::now_v7(),
                amount: owed,
                method: if r.gen_bool(0.6) { "card" } else { "cash" }.to_owned(),
                today: on(r.gen_range(3..30)),
            };
            self.run_bill(bill_id, pay, &staff).await?;
            self.tally.payment();
        }
        self.tally.bill();
        Ok(())
    }

    async fn run_bill(
        &self,
        bill_id: Uuid,
        command: BillCommand,
        metadata: &EventMetadata,
    ) -> anyhow::Result<()> {
        let done = self
            .bus
            .execute::<Bill>(&bill_id.to_string(), command, &(), metadata)
            .await
            .map_err(|e| anyhow::anyhow!("a bill: {e}"))?;
        self.tally.events(done.events);
        Ok(())
    }
}
