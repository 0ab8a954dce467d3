//! Billing commands that read other streams (ADR 0016): a bill opened for
//! an appointment reads the appointment, a line reads the price list, a
//! claim reads the patient's coverage. Each is decided on what was read
//! and fences that stream: if it moved before the bill's append commits,
//! the command is decided again (bounded, as scheduling's are).

use chrono::NaiveDate;
use cqrs_es::Aggregate;
use uuid::Uuid;

use anamnesis_domain::billing::{
    AppointmentRef, Bill, BillCommand, BillingError, Coverage, Currency, PriceList, PRICE_LIST_ID,
};
use anamnesis_domain::schedule::{Appointment, ClinicZone};

use crate::dispatch::{retry_or_fail, CommandBus, CommandError, Decision, Executed, MAX_ATTEMPTS};
use crate::log::{EventMetadata, StreamAt};

type Result<T> = std::result::Result<T, CommandError<BillingError>>;

/// A bill as requested.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub bill_id: Uuid,
    pub patient_id: Uuid,
    pub appointment_id: Option<Uuid>,
    /// `None`: the appointment's day, or today.
    pub service_date: Option<NaiveDate>,
    pub today: NaiveDate,
}

/// A line as requested.
#[derive(Debug, Clone)]
pub struct LineRequest {
    pub line_id: Uuid,
    pub code: String,
    pub quantity: i64,
    /// `None`: the price list's.
    pub unit_price: Option<i64>,
}

/// A claim as requested.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub claim_id: Uuid,
    pub coverage_id: Uuid,
    pub amount: i64,
    pub today: NaiveDate,
}

/// Runs billing commands in the clinic's currency and zone.
#[derive(Clone)]
pub struct Billing {
    bus: CommandBus,
    currency: Currency,
    zone: ClinicZone,
}

impl Billing {
    pub fn new(bus: CommandBus, currency: Currency, zone: ClinicZone) -> Self {
        Self {
            bus,
            currency,
            zone,
        }
    }

    /// The clinic's currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Opens a draft bill, for an appointment of the patient's when one is named.
    pub async fn open(&self, request: OpenRequest, metadata: &EventMetadata) -> Result<Executed> {
        let bill_id = request.bill_id.to_string();
        for _ in 0..MAX_ATTEMPTS {
            let mut fences = Vec::new();
            let mut appointment = None;
            let mut service_date = request.service_date;
            if let Some(id) = request.appointment_id {
                let (a, sequence, _) = self
                    .bus
                    .load::<Appointment>(&id.to_string())
                    .await
                    .map_err(|e| e.map_rejected(|_| BillingError::UnknownAppointment))?;
                let booking = a.booking();
                appointment = Some(AppointmentRef {
                    appointment_id: id,
                    patient_id: booking.map(|b| b.patient_id),
                    cancelled: a.status() == anamnesis_domain::schedule::Status::Cancelled,
                });
                if service_date.is_none() {
                    service_date = booking.map(|b| self.zone.date_of(b.period.start));
                }
                fences.push(fence::<Appointment>(&id.to_string(), sequence));
            }
            let command = BillCommand::Open {
                patient_id: request.patient_id,
                appointment,
                currency: self.currency,
                service_date: service_date.unwrap_or(request.today),
            };
            let decided = self
                .bus
                .decide::<Bill>(&bill_id, command, &(), metadata)
                .await?;
            match self.bus.commit(fenced(decided, fences)).await {
                Ok(done) => return Ok(done),
                Err(e) => {
                    retry_or_fail::<BillingError>(e)?;
                }
            }
        }
        Err(CommandError::Conflict)
    }

    /// Adds a line priced from the price list (unless a price is given).
    pub async fn add_line(
        &self,
        bill_id: Uuid,
        request: LineRequest,
        metadata: &EventMetadata,
    ) -> Result<Executed> {
        for _ in 0..MAX_ATTEMPTS {
            let (list, sequence, _) = self.bus.load::<PriceList>(PRICE_LIST_ID).await?;
            let command = BillCommand::AddLine {
                line_id: request.line_id,
                listed: list.find(&request.code).cloned(),
                quantity: request.quantity,
                unit_price: request.unit_price,
            };
            let decided = self
                .bus
                .decide::<Bill>(&bill_id.to_string(), command, &(), metadata)
                .await?;
            let fences = vec![fence::<PriceList>(PRICE_LIST_ID, sequence)];
            match self.bus.commit(fenced(decided, fences)).await {
                Ok(done) => return Ok(done),
                Err(e) => {
                    retry_or_fail::<BillingError>(e)?;
                }
            }
        }
        Err(CommandError::Conflict)
    }

    /// Submits a claim to the payer of one of the patient's coverages.
    pub async fn submit_claim(
        &self,
        bill_id: Uuid,
        patient_id: Uuid,
        request: ClaimRequest,
        metadata: &EventMetadata,
    ) -> Result<Executed> {
        let patient = patient_id.to_string();
        for _ in 0..MAX_ATTEMPTS {
            let (coverage, sequence, _) = self.bus.load::<Coverage>(&patient).await?;
            let command = BillCommand::SubmitClaim {
                claim_id: request.claim_id,
                coverage: coverage.entry(request.coverage_id).cloned(),
                amount: request.amount,
                today: request.today,
            };
            let loaded = self.bus.load::<Bill>(&bill_id.to_string()).await?;
            // The coverage read must be the bill's patient's.
            if loaded.0.opening().map(|o| o.patient_id) != Some(patient_id) {
                return Err(CommandError::Rejected(BillingError::UnknownBill));
            }
            let decided = self
                .bus
                .decide_from(loaded, &bill_id.to_string(), command, &(), metadata)
                .await?;
            let fences = vec![fence::<Coverage>(&patient, sequence)];
            match self.bus.commit(fenced(decided, fences)).await {
                Ok(done) => return Ok(done),
                Err(e) => {
                    retry_or_fail::<BillingError>(e)?;
                }
            }
        }
        Err(CommandError::Conflict)
    }
}

impl Billing {
    /// Resubmits rejected claim `claim_id` of bill `bill_id` (of patient
    /// `patient_id`), checking its coverage again as now on record, and
    /// fencing it as a first submission does.
    pub async fn resubmit_claim(
        &self,
        (bill_id, patient_id): (Uuid, Uuid),
        (claim_id, amount, today): (Uuid, i64, NaiveDate),
        metadata: &EventMetadata,
    ) -> Result<Executed> {
        let patient = patient_id.to_string();
        for _ in 0..MAX_ATTEMPTS {
            let (coverage, sequence, _) = self.bus.load::<Coverage>(&patient).await?;
            let loaded = self.bus.load::<Bill>(&bill_id.to_string()).await?;
            if loaded.0.opening().map(|o| o.patient_id) != Some(patient_id) {
                return Err(CommandError::Rejected(BillingError::UnknownBill));
            }
            let entry = loaded
                .0
                .claims()
                .iter()
                .find(|c| c.claim_id == claim_id)
                .and_then(|c| coverage.entry(c.coverage_id).cloned());
            let command = BillCommand::ResubmitClaim {
                claim_id,
                amount,
                today,
                coverage: entry,
            };
            let decided = self
                .bus
                .decide_from(loaded, &bill_id.to_string(), command, &(), metadata)
                .await?;
            let fences = vec![fence::<Coverage>(&patient, sequence)];
            match self.bus.commit(fenced(decided, fences)).await {
                Ok(done) => return Ok(done),
                Err(e) => {
                    retry_or_fail::<BillingError>(e)?;
                }
            }
        }
        Err(CommandError::Conflict)
    }
}

fn fence<A: Aggregate>(id: &str, sequence: i64) -> StreamAt {
    StreamAt {
        aggregate_type: A::TYPE.to_owned(),
        aggregate_id: id.to_owned(),
        sequence,
    }
}

fn fenced(decided: Decision, fences: Vec<StreamAt>) -> Decision {
    match decided {
        Decision::Append(mut request) => {
            request.guards.streams = fences;
            Decision::Append(request)
        }
        nothing => nothing,
    }
}
