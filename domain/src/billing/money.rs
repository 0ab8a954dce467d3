//! Money: whole minor units (cents) in an `i64`, never a float. Every sum
//! is checked: an overflow is an error, never a wrap.

use serde::{Deserialize, Serialize};

use super::error::BillingError;

/// An amount in minor units of the clinic's currency (cents for USD).
/// Serialized as a JSON integer.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Money(i64);

/// The largest amount one price, payment or line may hold: ten billion
/// minor units (100 million dollars), far below overflow even summed.
pub const MAX_AMOUNT: i64 = 10_000_000_000;

impl Money {
    /// Nothing.
    pub const ZERO: Money = Money(0);

    /// An amount of `cents` minor units, as stored (may be negative: a credit).
    pub const fn cents(cents: i64) -> Money {
        Money(cents)
    }

    /// The minor units.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// An amount a caller gives: 0 to [`MAX_AMOUNT`].
    pub fn parse(field: &'static str, cents: i64) -> Result<Money, BillingError> {
        if (0..=MAX_AMOUNT).contains(&cents) {
            Ok(Money(cents))
        } else {
            Err(BillingError::InvalidAmount(field))
        }
    }

    /// An amount a caller gives that must be more than nothing.
    pub fn positive(field: &'static str, cents: i64) -> Result<Money, BillingError> {
        match Money::parse(field, cents)? {
            Money(0) => Err(BillingError::InvalidAmount(field)),
            m => Ok(m),
        }
    }

    /// `self + other`, or an overflow error.
    pub fn plus(self, other: Money) -> Result<Money, BillingError> {
        self.0
            .checked_add(other.0)
            .map(Money)
            .ok_or(BillingError::Overflow)
    }

    /// `self - other`, or an overflow error.
    pub fn minus(self, other: Money) -> Result<Money, BillingError> {
        self.0
            .checked_sub(other.0)
            .map(Money)
            .ok_or(BillingError::Overflow)
    }

    /// `self × n`, or an overflow error.
    pub fn times(self, n: i64) -> Result<Money, BillingError> {
        self.0
            .checked_mul(n)
            .map(Money)
            .ok_or(BillingError::Overflow)
    }

    /// The sum of `amounts`, or an overflow error.
    pub fn sum(amounts: impl IntoIterator<Item = Money>) -> Result<Money, BillingError> {
        amounts.into_iter().try_fold(Money::ZERO, Money::plus)
    }

    /// Whether this is below nothing (a credit owed back).
    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

/// An ISO 4217 currency code: three capital letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// A currency code: exactly three ASCII capital letters (`USD`, `EUR`).
    pub fn parse(code: &str) -> Result<Currency, BillingError> {
        match code.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => {
                Ok(Currency([*a, *b, *c]))
            }
            _ => Err(BillingError::InvalidCurrency),
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        // Three ASCII capitals, by construction.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = BillingError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}
