//! A bill: a draft of lines for a patient (and an appointment), issued,
//! then settled by claims to payers, the patient's payments, adjustments
//! and write-offs, and refunds; or voided. Its claims and money live in
//! its own stream, so every balance rule is decided in one consistency
//! boundary (ADR 0016).
//!
//! Balances: what is claimed and not yet decided is the insurer's
//! responsibility; everything else the payers have not paid is the
//! patient's. Nothing takes either below zero; only a void leaves the
//! patient a credit, which only a refund settles.

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::subject::Subject;
use crate::unique::{UniqueKey, UniqueKeys};

use super::bill_events::{BillCommand, BillEvent, Line};
use super::error::{text, BillingError};
use super::money::{Currency, Money};
use super::values::{plausible, reason_codes};

/// The most lines one bill holds.
pub const MAX_LINES: usize = 200;

/// Where a bill stands.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BillStatus {
    /// Not opened (no such bill).
    #[default]
    None,
    Draft,
    Issued,
    Void,
}

impl BillStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            BillStatus::None => "none",
            BillStatus::Draft => "draft",
            BillStatus::Issued => "issued",
            BillStatus::Void => "void",
        }
    }
}

/// Where a claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    Submitted,
    Accepted,
    Rejected,
    Withdrawn,
    Paid,
    PartlyPaid,
    Denied,
}

impl ClaimStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStatus::Submitted => "submitted",
            ClaimStatus::Accepted => "accepted",
            ClaimStatus::Rejected => "rejected",
            ClaimStatus::Withdrawn => "withdrawn",
            ClaimStatus::Paid => "paid",
            ClaimStatus::PartlyPaid => "partly_paid",
            ClaimStatus::Denied => "denied",
        }
    }

    /// Whether its amount is still the insurer's to decide.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ClaimStatus::Submitted | ClaimStatus::Accepted | ClaimStatus::Rejected
        )
    }
}

/// A claim to a payer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Claim {
    pub claim_id: Uuid,
    pub coverage_id: Uuid,
    pub payer: String,
    /// What is claimed (the latest submission's amount).
    pub amount: Money,
    pub status: ClaimStatus,
    /// What the payer paid.
    pub paid: Money,
    /// The payer's reason codes of its last rejection or decision.
    pub reason_codes: Vec<String>,
    /// How often it was sent.
    pub submissions: i64,
    pub submitted_on: NaiveDate,
}

/// A bill's money, split by who owes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Balance {
    /// The sum of the lines.
    pub total: Money,
    /// Claimed and not yet decided by the payers.
    pub insurer: Money,
    /// What the patient owes; below zero only as a credit after a void,
    /// to be refunded.
    pub patient: Money,
    /// What payers paid.
    pub payer_paid: Money,
    /// What the patient paid, less refunds.
    pub patient_paid: Money,
    /// Adjustments and write-offs.
    pub adjusted: Money,
    /// Refunds.
    pub refunded: Money,
    /// Payments the patient started, not yet confirmed: not yet paid, but
    /// no other payment may take their share of the balance.
    #[serde(default)]
    pub pending: Money,
}

/// The facts a bill was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opening {
    pub patient_id: Uuid,
    pub appointment_id: Option<Uuid>,
    pub currency: Currency,
    pub service_date: NaiveDate,
}

/// A bill.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bill {
    opening: Option<Opening>,
    status: BillStatus,
    lines: Vec<Line>,
    issued_on: Option<NaiveDate>,
    void_reason: Option<String>,
    claims: Vec<Claim>,
    paid: Money,
    refunded: Money,
    adjusted: Money,
    /// Payments started by the patient, waiting for confirmation.
    #[serde(default)]
    started: Vec<StartedPayment>,
}

/// A payment the patient started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedPayment {
    pub payment_id: Uuid,
    pub amount: Money,
    pub method: String,
}

impl Bill {
    /// What it was opened with (`None`: no such bill).
    pub fn opening(&self) -> Option<&Opening> {
        self.opening.as_ref()
    }

    /// Where it stands.
    pub fn status(&self) -> BillStatus {
        self.status
    }

    /// Its lines.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Its claims, in the order submitted.
    pub fn claims(&self) -> &[Claim] {
        &self.claims
    }

    /// When it was issued.
    pub fn issued_on(&self) -> Option<NaiveDate> {
        self.issued_on
    }

    /// A payment the patient started that waits for confirmation.
    pub fn started_payment(&self, payment_id: Uuid) -> Option<&StartedPayment> {
        self.started.iter().find(|p| p.payment_id == payment_id)
    }

    /// Why it was voided.
    pub fn void_reason(&self) -> Option<&str> {
        self.void_reason.as_deref()
    }

    /// Applies one of its events, as loading it does: for read models
    /// that fold bills with the domain's own rules.
    pub fn fold(&mut self, event: BillEvent) {
        self.apply(event);
    }

    /// Its money, to the cent (an error only if a sum overflows).
    pub fn balance(&self) -> Result<Balance, BillingError> {
        let total = Money::sum(self.lines.iter().map(|l| l.amount))?;
        let insurer = Money::sum(
            self.claims
                .iter()
                .filter(|c| c.status.is_open())
                .map(|c| c.amount),
        )?;
        let payer_paid = Money::sum(self.claims.iter().map(|c| c.paid))?;
        let patient_paid = self.paid.minus(self.refunded)?;
        let patient = if matches!(self.status, BillStatus::None | BillStatus::Draft) {
            // A draft is not owed by anyone until it is issued.
            Money::ZERO
        } else if self.status == BillStatus::Void {
            // Nothing is owed on a void bill: what the patient paid and
            // was not refunded is a credit.
            Money::ZERO.minus(patient_paid)?
        } else {
            total
                .minus(insurer)?
                .minus(payer_paid)?
                .minus(patient_paid)?
                .minus(self.adjusted)?
        };
        Ok(Balance {
            total,
            insurer,
            patient,
            payer_paid,
            patient_paid,
            adjusted: self.adjusted,
            refunded: self.refunded,
            pending: Money::sum(self.started.iter().map(|p| p.amount))?,
        })
    }

    fn claim(&self, id: Uuid) -> Result<&Claim, BillingError> {
        self.claims
            .iter()
            .find(|c| c.claim_id == id)
            .ok_or(BillingError::UnknownClaim)
    }

    fn in_state(&self, id: Uuid, needed: ClaimStatus) -> Result<&Claim, BillingError> {
        let claim = self.claim(id)?;
        if claim.status != needed {
            return Err(BillingError::ClaimState {
                actual: claim.status.as_str(),
                needed: needed.as_str(),
            });
        }
        Ok(claim)
    }

    fn must_be(&self, status: BillStatus) -> Result<(), BillingError> {
        match (self.status, status) {
            (s, wanted) if s == wanted => Ok(()),
            (BillStatus::None, _) => Err(BillingError::UnknownBill),
            (BillStatus::Void, _) => Err(BillingError::Void),
            (_, BillStatus::Draft) => Err(BillingError::NotADraft),
            _ => Err(BillingError::NotIssued),
        }
    }

    /// What the patient owes now, for a movement that may not exceed it.
    fn owed(&self, field: &'static str, amount: Money) -> Result<Money, BillingError> {
        let balance = self.balance()?;
        if amount > balance.patient.minus(balance.pending)? {
            return Err(BillingError::MoreThanOwed(field));
        }
        Ok(amount)
    }

    fn decide(&self, command: BillCommand) -> Result<Vec<BillEvent>, BillingError> {
        use BillCommand as C;
        use BillEvent as E;
        let event = match command {
            C::Open {
                patient_id,
                appointment,
                currency,
                service_date,
            } => {
                if self.status != BillStatus::None {
                    return Err(BillingError::AlreadyExists);
                }
                if let Some(a) = appointment {
                    if a.patient_id != Some(patient_id) {
                        return Err(BillingError::UnknownAppointment);
                    }
                    if a.cancelled {
                        return Err(BillingError::AppointmentCancelled);
                    }
                }
                E::Opened {
                    patient_id,
                    appointment_id: appointment.map(|a| a.appointment_id),
                    currency,
                    service_date: plausible("service_date", service_date)?,
                }
            }
            C::AddLine {
                line_id,
                listed,
                quantity,
                unit_price,
            } => {
                self.must_be(BillStatus::Draft)?;
                let listed = listed.ok_or(BillingError::UnknownCode)?;
                if self.lines.len() >= MAX_LINES {
                    return Err(BillingError::TooManyLines);
                }
                if self.lines.iter().any(|l| l.line_id == line_id) {
                    return Err(BillingError::AlreadyExists);
                }
                if !(1..=1000).contains(&quantity) {
                    return Err(BillingError::InvalidQuantity);
                }
                let unit_price = match unit_price {
                    Some(p) => Money::parse("unit_price", p)?,
                    None => listed.unit_price,
                };
                let amount = unit_price.times(quantity)?;
                let line = Line {
                    line_id,
                    code: listed.code,
                    description: listed.description,
                    quantity,
                    unit_price,
                    amount,
                };
                // The total must fit, too.
                Money::sum(self.lines.iter().map(|l| l.amount).chain([amount]))?;
                E::LineAdded(line)
            }
            C::RemoveLine { line_id } => {
                self.must_be(BillStatus::Draft)?;
                if !self.lines.iter().any(|l| l.line_id == line_id) {
                    return Err(BillingError::UnknownLine);
                }
                E::LineRemoved { line_id }
            }
            C::Issue { today } => {
                self.must_be(BillStatus::Draft)?;
                if self.lines.is_empty() {
                    return Err(BillingError::NoLines);
                }
                E::Issued {
                    issued_on: plausible("issued_on", today)?,
                    total: self.balance()?.total,
                }
            }
            C::Void { reason } => {
                if self.status == BillStatus::None {
                    return Err(BillingError::UnknownBill);
                }
                if self.status == BillStatus::Void {
                    return Err(BillingError::Void);
                }
                let balance = self.balance()?;
                if balance.insurer != Money::ZERO || balance.payer_paid != Money::ZERO {
                    return Err(BillingError::ClaimsOnBill);
                }
                E::Voided {
                    reason: text("reason", &reason, 500)?,
                }
            }
            C::SubmitClaim {
                claim_id,
                coverage,
                amount,
                today,
            } => {
                self.must_be(BillStatus::Issued)?;
                if self.claims.iter().any(|c| c.claim_id == claim_id) {
                    return Err(BillingError::AlreadyExists);
                }
                let coverage = coverage.ok_or(BillingError::UnknownCoverage)?;
                if coverage.ended {
                    return Err(BillingError::CoverageEnded);
                }
                // One claim per coverage and bill: a rejected one is
                // resubmitted, a decided one is the payer's answer.
                if self.claims.iter().any(|c| {
                    c.coverage_id == coverage.coverage_id && c.status != ClaimStatus::Withdrawn
                }) {
                    return Err(BillingError::CoverageClaimed);
                }
                let service_date = self.opening.map(|o| o.service_date);
                if !service_date.is_some_and(|d| coverage.valid_on(d)) {
                    return Err(BillingError::CoverageNotValid);
                }
                let amount = self.owed("amount", Money::positive("amount", amount)?)?;
                E::ClaimSubmitted {
                    claim_id,
                    coverage_id: coverage.coverage_id,
                    payer: coverage.payer,
                    amount,
                    submitted_on: plausible("submitted_on", today)?,
                }
            }
            C::AcceptClaim { claim_id } => {
                self.must_be(BillStatus::Issued)?;
                self.in_state(claim_id, ClaimStatus::Submitted)?;
                E::ClaimAccepted { claim_id }
            }
            C::RejectClaim {
                claim_id,
                reason_codes: codes,
            } => {
                self.must_be(BillStatus::Issued)?;
                self.in_state(claim_id, ClaimStatus::Submitted)?;
                E::ClaimRejected {
                    claim_id,
                    reason_codes: reason_codes(&codes)?,
                }
            }
            C::ResubmitClaim {
                claim_id,
                amount,
                today,
                coverage,
            } => {
                self.must_be(BillStatus::Issued)?;
                let claim = self.in_state(claim_id, ClaimStatus::Rejected)?;
                // The coverage is checked again, as on the first submission.
                let coverage = coverage
                    .filter(|c| c.coverage_id == claim.coverage_id)
                    .ok_or(BillingError::UnknownCoverage)?;
                if coverage.ended {
                    return Err(BillingError::CoverageEnded);
                }
                let service_date = self.opening.map(|o| o.service_date);
                if !service_date.is_some_and(|d| coverage.valid_on(d)) {
                    return Err(BillingError::CoverageNotValid);
                }
                // The claim's old amount is free to claim again.
                let available = self.balance()?.patient.plus(claim.amount)?;
                let amount = Money::positive("amount", amount)?;
                if amount > available {
                    return Err(BillingError::MoreThanOwed("amount"));
                }
                E::ClaimResubmitted {
                    claim_id,
                    amount,
                    submitted_on: plausible("submitted_on", today)?,
                }
            }
            C::WithdrawClaim { claim_id, reason } => {
                self.must_be(BillStatus::Issued)?;
                self.in_state(claim_id, ClaimStatus::Rejected)?;
                E::ClaimWithdrawn {
                    claim_id,
                    reason: text("reason", &reason, 500)?,
                }
            }
            C::Adjudicate {
                claim_id,
                paid,
                reason_codes: codes,
            } => {
                self.must_be(BillStatus::Issued)?;
                let claim = self.in_state(claim_id, ClaimStatus::Accepted)?;
                let paid = Money::parse("paid", paid)?;
                if paid > claim.amount {
                    return Err(BillingError::MoreThanClaimed);
                }
                if paid == claim.amount {
                    E::ClaimPaid {
                        claim_id,
                        amount: paid,
                    }
                } else if paid == Money::ZERO {
                    E::ClaimDenied {
                        claim_id,
                        reason_codes: reason_codes(&codes)?,
                    }
                } else {
                    E::ClaimPartlyPaid {
                        claim_id,
                        amount: paid,
                        reason_codes: reason_codes(&codes)?,
                    }
                }
            }
            C::Pay {
                payment_id,
                amount,
                method,
                today,
            } => {
                self.must_be(BillStatus::Issued)?;
                E::PaymentReceived {
                    payment_id,
                    amount: self.owed("amount", Money::positive("amount", amount)?)?,
                    method: text("method", &method, 40)?,
                    received_on: plausible("received_on", today)?,
                }
            }
            C::StartPayment {
                payment_id,
                amount,
                method,
                today,
            } => {
                self.must_be(BillStatus::Issued)?;
                E::PaymentStarted {
                    payment_id,
                    amount: self.owed("amount", Money::positive("amount", amount)?)?,
                    method: text("method", &method, 40)?,
                    started_on: plausible("started_on", today)?,
                }
            }
            C::SettlePayment {
                payment_id,
                arrived,
                reason,
                today,
            } => {
                let started = self
                    .started
                    .iter()
                    .find(|p| p.payment_id == payment_id)
                    .ok_or(BillingError::UnknownPayment)?;
                if arrived {
                    E::PaymentReceived {
                        payment_id,
                        amount: started.amount,
                        method: started.method.clone(),
                        received_on: plausible("received_on", today)?,
                    }
                } else {
                    E::PaymentFailed {
                        payment_id,
                        reason: text("reason", reason.as_deref().unwrap_or(""), 500)?,
                    }
                }
            }
            C::Adjust {
                adjustment_id,
                kind,
                amount,
                reason,
            } => {
                self.must_be(BillStatus::Issued)?;
                E::Adjusted {
                    adjustment_id,
                    kind,
                    amount: self.owed("amount", Money::positive("amount", amount)?)?,
                    reason: text("reason", &reason, 500)?,
                }
            }
            C::Refund {
                refund_id,
                amount,
                reason,
                today,
            } => {
                if self.status == BillStatus::None {
                    return Err(BillingError::UnknownBill);
                }
                let amount = Money::positive("amount", amount)?;
                if amount > self.balance()?.patient_paid {
                    return Err(BillingError::MoreThanPaid);
                }
                E::Refunded {
                    refund_id,
                    amount,
                    reason: text("reason", &reason, 500)?,
                    refunded_on: plausible("refunded_on", today)?,
                }
            }
        };
        Ok(vec![event])
    }

    fn claim_mut(&mut self, id: Uuid) -> Option<&mut Claim> {
        self.claims.iter_mut().find(|c| c.claim_id == id)
    }
}

impl Aggregate for Bill {
    const TYPE: &'static str = "bill";
    type Command = BillCommand;
    type Event = BillEvent;
    type Error = BillingError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use BillEvent as E;
        match event {
            E::Opened {
                patient_id,
                appointment_id,
                currency,
                service_date,
            } => {
                self.opening = Some(Opening {
                    patient_id,
                    appointment_id,
                    currency,
                    service_date,
                });
                self.status = BillStatus::Draft;
            }
            E::LineAdded(line) => self.lines.push(line),
            E::LineRemoved { line_id } => self.lines.retain(|l| l.line_id != line_id),
            E::Issued { issued_on, .. } => {
                self.status = BillStatus::Issued;
                self.issued_on = Some(issued_on);
            }
            E::Voided { reason } => {
                self.status = BillStatus::Void;
                self.void_reason = Some(reason);
            }
            E::ClaimSubmitted {
                claim_id,
                coverage_id,
                payer,
                amount,
                submitted_on,
            } => self.claims.push(Claim {
                claim_id,
                coverage_id,
                payer,
                amount,
                status: ClaimStatus::Submitted,
                paid: Money::ZERO,
                reason_codes: Vec::new(),
                submissions: 1,
                submitted_on,
            }),
            E::ClaimAccepted { claim_id } => {
                if let Some(c) = self.claim_mut(claim_id) {
                    c.status = ClaimStatus::Accepted;
                }
            }
            E::ClaimRejected {
                claim_id,
                reason_codes,
            } => {
                if let Some(c) = self.claim_mut(claim_id) {
                    c.status = ClaimStatus::Rejected;
                    c.reason_codes = reason_codes;
                }
            }
            E::ClaimResubmitted {
                claim_id,
                amount,
                submitted_on,
            } => {
                if let Some(c) = self.claim_mut(claim_id) {
                    c.status = ClaimStatus::Submitted;
                    c.amount = amount;
                    c.submissions += 1;
                    c.submitted_on = submitted_on;
                }
            }
            E::ClaimWithdrawn { claim_id, .. } => {
                if let Some(c) = self.claim_mut(claim_id) {
                    c.status = ClaimStatus::Withdrawn;
                }
            }
            E::ClaimPaid { claim_id, amount } => {
                if let Some(c) = self.claim_mut(claim_id) {
                    c.status = ClaimStatus::Paid;
                    c.paid = amount;
                    c.reason_codes = Vec::new();
                }
            }
            E::ClaimPartlyPaid {
                claim_id,
                amount,
                reason_codes,
            } => {
                if let Some(c) = self.claim_mut(claim_id) {
                    c.status = ClaimStatus::PartlyPaid;
                    c.paid = amount;
                    c.reason_codes = reason_codes;
                }
            }
            E::ClaimDenied {
                claim_id,
                reason_codes,
            } => {
                if let Some(c) = self.claim_mut(claim_id) {
                    c.status = ClaimStatus::Denied;
                    c.reason_codes = reason_codes;
                }
            }
            // Sums of amounts the domain checked fit; saturating keeps a
            // corrupt log from panicking a reader (the balance then errors).
            E::PaymentReceived {
                payment_id, amount, ..
            } => {
                self.started.retain(|p| p.payment_id != payment_id);
                self.paid = Money::cents(self.paid.get().saturating_add(amount.get()))
            }
            E::PaymentStarted {
                payment_id,
                amount,
                method,
                ..
            } => self.started.push(StartedPayment {
                payment_id,
                amount,
                method,
            }),
            E::PaymentFailed { payment_id, .. } => {
                self.started.retain(|p| p.payment_id != payment_id)
            }
            E::Adjusted { amount, .. } => {
                self.adjusted = Money::cents(self.adjusted.get().saturating_add(amount.get()))
            }
            E::Refunded { amount, .. } => {
                self.refunded = Money::cents(self.refunded.get().saturating_add(amount.get()))
            }
        }
    }
}

/// Unique-key scope of the appointment a bill is for: one bill per visit
/// while it is not void.
pub const APPOINTMENT_SCOPE: &str = "bill.appointment";

impl UniqueKeys for Bill {
    fn unique_keys(&self) -> Vec<UniqueKey> {
        match (&self.opening, self.status) {
            (Some(o), status) if status != BillStatus::Void => o
                .appointment_id
                .map(|a| UniqueKey {
                    scope: APPOINTMENT_SCOPE,
                    key: a.to_string(),
                })
                .into_iter()
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Subject for Bill {
    /// The patient billed.
    fn patient(&self, _aggregate_id: &str) -> Option<Uuid> {
        self.opening.map(|o| o.patient_id)
    }
}
