//! Billing's value types: codes, reason codes, dates of service.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::error::{text, BillingError};

/// A code: letters, digits, `.` and `-`, upper-cased, 1 to `max` characters.
pub(crate) fn code(field: &'static str, raw: &str, max: usize) -> Result<String, BillingError> {
    let value = text(field, raw, max)?;
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        Ok(value.to_ascii_uppercase())
    } else {
        Err(BillingError::InvalidCode(field))
    }
}

/// A service code of the price list (`99213`, `LAB-CBC`).
pub fn service_code(raw: &str) -> Result<String, BillingError> {
    code("code", raw, 20)
}

/// A payer's reason codes (`CO-45`, `PR-1`, `N290`): one to ten, each up to
/// ten characters, kept in the order given without repeats.
pub fn reason_codes(raw: &[String]) -> Result<Vec<String>, BillingError> {
    if raw.is_empty() {
        return Err(BillingError::ReasonCodesRequired);
    }
    if raw.len() > 10 {
        return Err(BillingError::InvalidCode("reason_codes"));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for r in raw {
        let c = code("reason_codes", r, 10)?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// A date in the plausible range of billing (1900 to 2199).
pub fn plausible(field: &'static str, date: NaiveDate) -> Result<NaiveDate, BillingError> {
    let low = NaiveDate::from_ymd_opt(1900, 1, 1);
    let high = NaiveDate::from_ymd_opt(2199, 12, 31);
    match (low, high) {
        (Some(low), Some(high)) if (low..=high).contains(&date) => Ok(date),
        _ => Err(BillingError::ImplausibleDate(field)),
    }
}

/// Whether a coverage pays first or second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Rank {
    Primary,
    Secondary,
}

impl Rank {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Rank::Primary => "primary",
            Rank::Secondary => "secondary",
        }
    }
}

/// What reduces a patient's balance without money: a courtesy or
/// contractual adjustment, or a write-off of a debt not collected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    Adjustment,
    WriteOff,
}

impl AdjustmentKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AdjustmentKind::Adjustment => "adjustment",
            AdjustmentKind::WriteOff => "write_off",
        }
    }
}
