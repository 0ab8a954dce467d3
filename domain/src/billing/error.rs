//! Every rule a billing command can break, one variant each.

use crate::text::{self, Lines, TextError};

/// Why a price-list, coverage or bill command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    /// A required field is empty.
    #[error("{0} must not be empty")]
    EmptyField(&'static str),
    /// A field is longer than allowed.
    #[error("{0} is too long")]
    TooLong(&'static str),
    /// A text field holds control or formatting characters.
    #[error("{0} contains characters that are not allowed (control or formatting characters)")]
    InvalidCharacters(&'static str),
    /// An amount below zero, zero where something is due, or beyond the largest.
    #[error("{0} must be a whole number of minor units between 0 and 10000000000 (more than 0 where something moves)")]
    InvalidAmount(&'static str),
    /// A sum that does not fit in 64 bits.
    #[error("the amounts do not fit in the bill")]
    Overflow,
    /// Not an ISO 4217 code.
    #[error("currency must be an ISO 4217 code (three capital letters)")]
    InvalidCurrency,
    /// A service or reason code of the wrong shape.
    #[error("{0} is not a valid code (letters, digits, '.', '-')")]
    InvalidCode(&'static str),
    /// A quantity out of range.
    #[error("quantity must be between 1 and 1000")]
    InvalidQuantity,
    /// A date out of the plausible range.
    #[error("{0} must be between 1900-01-01 and 2199-12-31")]
    ImplausibleDate(&'static str),
    /// A period that ends before it starts.
    #[error("valid_to must not be before valid_from")]
    InvalidPeriod,
    /// The service code is not on the price list (or was retired).
    #[error("no such service code on the price list")]
    UnknownCode,
    /// The bill does not exist.
    #[error("no such bill")]
    UnknownBill,
    /// The bill exists already.
    #[error("the bill exists already")]
    AlreadyExists,
    /// The appointment does not exist or is another patient's.
    #[error("no appointment of this patient has that id")]
    UnknownAppointment,
    /// Lines are added, removed and the bill issued only while it is a draft.
    #[error("the bill is not a draft")]
    NotADraft,
    /// A bill is issued with at least one line.
    #[error("a bill is issued with at least one line")]
    NoLines,
    /// Too many lines on one bill.
    #[error("a bill holds at most 200 lines")]
    TooManyLines,
    /// The line does not exist.
    #[error("no such line on this bill")]
    UnknownLine,
    /// Claims, payments and adjustments are made on an issued bill.
    #[error("the bill is not issued")]
    NotIssued,
    /// The bill is void.
    #[error("the bill is void")]
    Void,
    /// A bill with an open claim or a payer's payment is not voided.
    #[error("a bill with an open or paid claim cannot be voided")]
    ClaimsOnBill,
    /// The coverage does not exist or is not the patient's.
    #[error("no coverage of this patient has that id")]
    UnknownCoverage,
    /// The coverage was ended.
    #[error("the coverage was ended")]
    CoverageEnded,
    /// The coverage is not valid on the bill's date of service.
    #[error("the coverage is not valid on the date of service")]
    CoverageNotValid,
    /// Another coverage of the same rank is valid over part of the period.
    #[error("another coverage of this rank is valid over part of that period")]
    RankTaken,
    /// The claim does not exist.
    #[error("no such claim on this bill")]
    UnknownClaim,
    /// A second claim to one coverage for one bill.
    #[error("this bill has a claim to that coverage already: resubmit it if rejected")]
    CoverageClaimed,
    /// A bill for a cancelled appointment.
    #[error("the appointment was cancelled; nothing took place to bill")]
    AppointmentCancelled,
    /// No started payment has that id (or it was settled already).
    #[error("no payment waiting for confirmation has that id")]
    UnknownPayment,
    /// The claim is not in the state the command needs.
    #[error("the claim is {actual}; this needs a {needed} claim")]
    ClaimState {
        actual: &'static str,
        needed: &'static str,
    },
    /// Rejections, partial payments and denials state reason codes.
    #[error("state at least one reason code")]
    ReasonCodesRequired,
    /// A payer paying more than was claimed.
    #[error("the payer cannot pay more than was claimed")]
    MoreThanClaimed,
    /// An amount larger than what is owed on that side.
    #[error("{0} is more than is owed")]
    MoreThanOwed(&'static str),
    /// A refund larger than the patient's payments not yet refunded.
    #[error("a refund cannot exceed what the patient paid and was not refunded")]
    MoreThanPaid,
}

/// A free-text field, parsed with the one text rule.
pub(crate) fn text(field: &'static str, value: &str, max: usize) -> Result<String, BillingError> {
    let lines = if max > 200 {
        Lines::Multi
    } else {
        Lines::Single
    };
    text::parse(value, lines, max).map_err(|e| match e {
        TextError::Empty => BillingError::EmptyField(field),
        TextError::TooLong => BillingError::TooLong(field),
        TextError::InvalidCharacters => BillingError::InvalidCharacters(field),
    })
}
