//! A bill's events and commands.

use chrono::NaiveDate;
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::StoredForm;

use super::coverage::CoverageEntry;
use super::money::{Currency, Money};
use super::price_list::ListedPrice;
use super::values::AdjustmentKind;

/// One line of a bill: a service code, how many, at what price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Line {
    pub line_id: Uuid,
    pub code: String,
    pub description: String,
    pub quantity: i64,
    pub unit_price: Money,
    /// `quantity × unit_price`.
    pub amount: Money,
}

/// A fact about a bill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum BillEvent {
    /// A draft bill was opened for a patient (and an appointment).
    #[serde(rename = "bill.opened")]
    Opened {
        patient_id: Uuid,
        appointment_id: Option<Uuid>,
        currency: Currency,
        service_date: NaiveDate,
    },
    /// A line was added to the draft.
    #[serde(rename = "bill.line_added")]
    LineAdded(Line),
    /// A line was taken off the draft.
    #[serde(rename = "bill.line_removed")]
    LineRemoved { line_id: Uuid },
    /// The bill was issued: its lines are final.
    #[serde(rename = "bill.issued")]
    Issued { issued_on: NaiveDate, total: Money },
    /// The bill was voided, for a reason.
    #[serde(rename = "bill.voided")]
    Voided { reason: String },
    /// A claim was sent to a payer for part of the bill.
    #[serde(rename = "bill.claim_submitted")]
    ClaimSubmitted {
        claim_id: Uuid,
        coverage_id: Uuid,
        payer: String,
        amount: Money,
        submitted_on: NaiveDate,
    },
    /// The payer accepted the claim for adjudication.
    #[serde(rename = "bill.claim_accepted")]
    ClaimAccepted { claim_id: Uuid },
    /// The payer rejected the claim (it may be corrected and resubmitted).
    #[serde(rename = "bill.claim_rejected")]
    ClaimRejected {
        claim_id: Uuid,
        reason_codes: Vec<String>,
    },
    /// A rejected claim was sent again, for `amount`.
    #[serde(rename = "bill.claim_resubmitted")]
    ClaimResubmitted {
        claim_id: Uuid,
        amount: Money,
        submitted_on: NaiveDate,
    },
    /// A rejected claim was given up: its amount is the patient's again.
    #[serde(rename = "bill.claim_withdrawn")]
    ClaimWithdrawn { claim_id: Uuid, reason: String },
    /// The payer paid the claim in full.
    #[serde(rename = "bill.claim_paid")]
    ClaimPaid { claim_id: Uuid, amount: Money },
    /// The payer paid part of the claim; the rest is the patient's.
    #[serde(rename = "bill.claim_partly_paid")]
    ClaimPartlyPaid {
        claim_id: Uuid,
        amount: Money,
        reason_codes: Vec<String>,
    },
    /// The payer denied the claim; all of it is the patient's.
    #[serde(rename = "bill.claim_denied")]
    ClaimDenied {
        claim_id: Uuid,
        reason_codes: Vec<String>,
    },
    /// The patient paid (recorded by staff, or a payment the patient
    /// started, confirmed by staff).
    #[serde(rename = "bill.payment_received")]
    PaymentReceived {
        payment_id: Uuid,
        amount: Money,
        method: String,
        received_on: NaiveDate,
    },
    /// The patient started a payment (the portal): it counts once staff
    /// confirm the money arrived, and holds its amount meanwhile.
    #[serde(rename = "bill.payment_started")]
    PaymentStarted {
        payment_id: Uuid,
        amount: Money,
        method: String,
        started_on: NaiveDate,
    },
    /// A payment the patient started did not arrive.
    #[serde(rename = "bill.payment_failed")]
    PaymentFailed { payment_id: Uuid, reason: String },
    /// The patient's balance was reduced without payment.
    #[serde(rename = "bill.adjusted")]
    Adjusted {
        adjustment_id: Uuid,
        kind: AdjustmentKind,
        amount: Money,
        reason: String,
    },
    /// Money was paid back to the patient.
    #[serde(rename = "bill.refunded")]
    Refunded {
        refund_id: Uuid,
        amount: Money,
        reason: String,
        refunded_on: NaiveDate,
    },
}

impl DomainEvent for BillEvent {
    fn event_type(&self) -> String {
        use BillEvent as E;
        match self {
            E::Opened { .. } => "bill.opened",
            E::LineAdded(_) => "bill.line_added",
            E::LineRemoved { .. } => "bill.line_removed",
            E::Issued { .. } => "bill.issued",
            E::Voided { .. } => "bill.voided",
            E::ClaimSubmitted { .. } => "bill.claim_submitted",
            E::ClaimAccepted { .. } => "bill.claim_accepted",
            E::ClaimRejected { .. } => "bill.claim_rejected",
            E::ClaimResubmitted { .. } => "bill.claim_resubmitted",
            E::ClaimWithdrawn { .. } => "bill.claim_withdrawn",
            E::ClaimPaid { .. } => "bill.claim_paid",
            E::ClaimPartlyPaid { .. } => "bill.claim_partly_paid",
            E::ClaimDenied { .. } => "bill.claim_denied",
            E::PaymentReceived { .. } => "bill.payment_received",
            E::PaymentStarted { .. } => "bill.payment_started",
            E::PaymentFailed { .. } => "bill.payment_failed",
            E::Adjusted { .. } => "bill.adjusted",
            E::Refunded { .. } => "bill.refunded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::codec::CURRENT_VERSION.to_owned()
    }
}

impl StoredForm for BillEvent {}

/// The appointment a bill is for, as the write side found it: `patient_id`
/// is its patient (`None`: no such appointment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppointmentRef {
    pub appointment_id: Uuid,
    pub patient_id: Option<Uuid>,
    /// Cancelled: nothing took place to bill.
    pub cancelled: bool,
}

/// What may be asked of a bill. Dates (`today`) and new ids come in here;
/// what other streams hold (the price list, the coverage, the appointment)
/// is looked up by the write side and passed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillCommand {
    /// Open a draft bill.
    Open {
        patient_id: Uuid,
        appointment: Option<AppointmentRef>,
        currency: Currency,
        service_date: NaiveDate,
    },
    /// Add a line. `listed` is the code as the price list has it (`None`:
    /// not listed); `unit_price` overrides the list's price.
    AddLine {
        line_id: Uuid,
        listed: Option<ListedPrice>,
        quantity: i64,
        unit_price: Option<i64>,
    },
    /// Remove a line from the draft.
    RemoveLine { line_id: Uuid },
    /// Issue the bill.
    Issue { today: NaiveDate },
    /// Void the bill, for a reason.
    Void { reason: String },
    /// Claim `amount` from the payer of `coverage` (the patient's entry
    /// with that id, as found; `None`: not theirs or no such entry).
    SubmitClaim {
        claim_id: Uuid,
        coverage: Option<CoverageEntry>,
        amount: i64,
        today: NaiveDate,
    },
    /// The payer accepted a submitted claim.
    AcceptClaim { claim_id: Uuid },
    /// The payer rejected a submitted claim.
    RejectClaim {
        claim_id: Uuid,
        reason_codes: Vec<String>,
    },
    /// Send a rejected claim again, for `amount`.
    ResubmitClaim {
        claim_id: Uuid,
        amount: i64,
        today: NaiveDate,
        /// The claim's coverage as now on record (ended or changed since?).
        coverage: Option<CoverageEntry>,
    },
    /// Give up a rejected claim.
    WithdrawClaim { claim_id: Uuid, reason: String },
    /// The payer's decision on an accepted claim and what it paid:
    /// everything (paid), part (partly paid) or nothing (denied).
    Adjudicate {
        claim_id: Uuid,
        paid: i64,
        reason_codes: Vec<String>,
    },
    /// Staff record a payment that arrived (at the desk, by transfer).
    Pay {
        payment_id: Uuid,
        amount: i64,
        method: String,
        today: NaiveDate,
    },
    /// The patient starts a payment: it counts once confirmed.
    StartPayment {
        payment_id: Uuid,
        amount: i64,
        method: String,
        today: NaiveDate,
    },
    /// Staff settle a started payment: it arrived, or it did not (why).
    SettlePayment {
        payment_id: Uuid,
        arrived: bool,
        reason: Option<String>,
        today: NaiveDate,
    },
    /// Reduce the patient's balance without payment.
    Adjust {
        adjustment_id: Uuid,
        kind: AdjustmentKind,
        amount: i64,
        reason: String,
    },
    /// Pay money back to the patient.
    Refund {
        refund_id: Uuid,
        amount: i64,
        reason: String,
        today: NaiveDate,
    },
}
