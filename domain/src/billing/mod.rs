//! Billing and insurance (ADR 0016): the clinic's price list, each
//! patient's coverage, and bills with their claims, payments,
//! adjustments and refunds. Money is whole minor units, never a float.

mod bill;
mod bill_events;
mod coverage;
mod error;
mod money;
mod price_list;
mod values;

#[cfg(test)]
mod tests;

pub use bill::{
    Balance, Bill, BillStatus, Claim, ClaimStatus, Opening, StartedPayment, APPOINTMENT_SCOPE,
    MAX_LINES,
};
pub use bill_events::{AppointmentRef, BillCommand, BillEvent, Line};
pub use coverage::{Coverage, CoverageCommand, CoverageEntry, CoverageEvent};
pub use error::BillingError;
pub use money::{Currency, Money, MAX_AMOUNT};
pub use price_list::{ListedPrice, PriceList, PriceListCommand, PriceListEvent, PRICE_LIST_ID};
pub use values::{plausible, reason_codes, service_code, AdjustmentKind, Rank};
