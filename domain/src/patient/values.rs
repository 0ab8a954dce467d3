//! Value types of a patient record, each parsed once at the edge.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::PatientError;

/// A person's name: family name and given names, trimmed, non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName {
    /// Family (last) name.
    pub family: String,
    /// Given (first and middle) names.
    pub given: String,
}

impl PersonName {
    /// Trims both parts and rejects empty or absurdly long ones.
    pub fn parse(family: &str, given: &str) -> Result<Self, PatientError> {
        let family = family.trim();
        let given = given.trim();
        if family.is_empty() {
            return Err(PatientError::EmptyField("family_name"));
        }
        if given.is_empty() {
            return Err(PatientError::EmptyField("given_name"));
        }
        if family.chars().count() > 200 || given.chars().count() > 200 {
            return Err(PatientError::TooLong("name"));
        }
        Ok(Self {
            family: family.to_owned(),
            given: given.to_owned(),
        })
    }
}

/// Administrative sex, as FHIR's AdministrativeGender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
    /// Other.
    Other,
    /// Unknown.
    Unknown,
}

/// A birth date that is not after the day it is recorded on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BirthDate(NaiveDate);

impl BirthDate {
    /// Rejects dates after `today` and before 1850.
    pub fn parse(date: NaiveDate, today: NaiveDate) -> Result<Self, PatientError> {
        if date > today {
            return Err(PatientError::BornInTheFuture);
        }
        if date < NaiveDate::from_ymd_opt(1850, 1, 1).unwrap_or(NaiveDate::MIN) {
            return Err(PatientError::ImplausibleBirthDate);
        }
        Ok(Self(date))
    }

    /// The date itself.
    pub fn date(&self) -> NaiveDate {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn a_name_is_trimmed() {
        let n = PersonName::parse("  Curie ", " Marie").unwrap();
        assert_eq!((n.family.as_str(), n.given.as_str()), ("Curie", "Marie"));
    }

    #[test]
    fn an_empty_family_name_is_rejected() {
        assert_eq!(
            PersonName::parse("  ", "Marie"),
            Err(PatientError::EmptyField("family_name"))
        );
    }

    #[test]
    fn a_birth_date_after_today_is_rejected() {
        assert_eq!(
            BirthDate::parse(day(2030, 1, 1), day(2026, 11, 23)),
            Err(PatientError::BornInTheFuture)
        );
    }

    #[test]
    fn a_birth_date_today_is_accepted() {
        assert!(BirthDate::parse(day(2026, 11, 23), day(2026, 11, 23)).is_ok());
    }
}
