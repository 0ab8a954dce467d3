//! Calendar dates as the domain accepts them: clinical facts happen between
//! the earliest plausible birth date and today.

use chrono::NaiveDate;

/// The earliest date any clinical fact may carry (the earliest plausible
/// birth date of a living record).
pub fn earliest() -> NaiveDate {
    NaiveDate::from_ymd_opt(1850, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// Why a date was refused. The caller names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateError {
    /// After today.
    InTheFuture,
    /// Before [`earliest`].
    Implausible,
}

/// A date of something that has already happened: not after `today`, not
/// before [`earliest`].
pub fn past(date: NaiveDate, today: NaiveDate) -> Result<NaiveDate, DateError> {
    if date > today {
        return Err(DateError::InTheFuture);
    }
    if date < earliest() {
        return Err(DateError::Implausible);
    }
    Ok(date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn year_zero_is_implausible() {
        assert_eq!(
            past(day(0, 1, 1), day(2026, 11, 23)),
            Err(DateError::Implausible)
        );
    }

    #[test]
    fn tomorrow_is_in_the_future() {
        assert_eq!(
            past(day(2026, 11, 24), day(2026, 11, 23)),
            Err(DateError::InTheFuture)
        );
    }

    #[test]
    fn today_is_accepted() {
        assert!(past(day(2026, 11, 23), day(2026, 11, 23)).is_ok());
    }
}
