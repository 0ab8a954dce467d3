//! Value types of a patient record, each parsed once at the edge.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::PatientError;
use crate::dates::{self, DateError};
use crate::text::{self, Lines, TextError};

fn text(
    value: &str,
    field: &'static str,
    lines: Lines,
    max_chars: usize,
) -> Result<String, PatientError> {
    text::parse(value, lines, max_chars).map_err(|e| match e {
        TextError::Empty => PatientError::EmptyField(field),
        TextError::TooLong => PatientError::TooLong(field),
        TextError::InvalidCharacters => PatientError::InvalidCharacters(field),
    })
}

fn trimmed(value: &str, field: &'static str, max_chars: usize) -> Result<String, PatientError> {
    text(value, field, Lines::Single, max_chars)
}

fn optional(
    value: Option<&str>,
    field: &'static str,
    max_chars: usize,
) -> Result<Option<String>, PatientError> {
    value.map(|v| trimmed(v, field, max_chars)).transpose()
}

/// A date of something that happened: not after `today`, not implausibly early.
pub(crate) fn past(
    date: NaiveDate,
    field: &'static str,
    today: NaiveDate,
) -> Result<NaiveDate, PatientError> {
    dates::past(date, today).map_err(|e| match e {
        DateError::InTheFuture => PatientError::DateInTheFuture(field),
        DateError::Implausible => PatientError::ImplausibleDate(field),
    })
}

/// A person's name: family name and given names, trimmed, non-empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonName {
    /// Family (last) name.
    pub family: String,
    /// Given (first and middle) names.
    pub given: String,
}

impl PersonName {
    /// Trims both parts and rejects empty or overlong ones.
    pub fn parse(family: &str, given: &str) -> Result<Self, PatientError> {
        Ok(Self {
            family: trimmed(family, "family_name", 200)?,
            given: trimmed(given, "given_name", 200)?,
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

impl Sex {
    /// The stable name used in events, read models and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
            Sex::Other => "other",
            Sex::Unknown => "unknown",
        }
    }
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
        if date < dates::earliest() {
            return Err(PatientError::ImplausibleBirthDate);
        }
        Ok(Self(date))
    }

    /// The date itself.
    pub fn date(&self) -> NaiveDate {
        self.0
    }
}

/// How to reach the patient. Both parts optional; what is given is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Phone number: digits, spaces and `+-()`.
    pub phone: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
}

impl Contact {
    /// Checks the shape of each part given.
    pub fn parse(phone: Option<&str>, email: Option<&str>) -> Result<Self, PatientError> {
        let phone = optional(phone, "phone", 40)?;
        if let Some(p) = &phone {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            let allowed = p
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
            if !allowed || digits < 3 {
                return Err(PatientError::Malformed("phone"));
            }
        }
        let email = optional(email, "email", 254)?;
        if let Some(e) = &email {
            let well_formed = e
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
                && !e.contains(char::is_whitespace);
            if !well_formed {
                return Err(PatientError::Malformed("email"));
            }
        }
        Ok(Self { phone, email })
    }
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Street and number.
    pub line: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// Region or state, where there is one (analytics group by it).
    pub region: Option<String>,
    /// Country (ISO 3166 code or name).
    pub country: String,
}

impl Address {
    /// Trims every part; line, city, postal code and country are required.
    pub fn parse(
        line: &str,
        city: &str,
        postal_code: &str,
        region: Option<&str>,
        country: &str,
    ) -> Result<Self, PatientError> {
        Ok(Self {
            line: trimmed(line, "address.line", 200)?,
            city: trimmed(city, "address.city", 100)?,
            postal_code: trimmed(postal_code, "address.postal_code", 20)?,
            region: optional(region, "address.region", 100)?,
            country: trimmed(country, "address.country", 100)?,
        })
    }
}

/// An identifier issued by some system: a medical record number, an insurance
/// member id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifier {
    /// Which system issued it (`mrn`, `ssn`, an insurer's code).
    pub system: String,
    /// The identifier within that system.
    pub value: String,
}

impl Identifier {
    /// Both parts required, no surrounding space.
    pub fn parse(system: &str, value: &str) -> Result<Self, PatientError> {
        Ok(Self {
            system: trimmed(system, "identifiers.system", 100)?.to_lowercase(),
            value: trimmed(value, "identifiers.value", 100)?,
        })
    }
}

/// How bad an allergic reaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Mild.
    Mild,
    /// Moderate.
    Moderate,
    /// Severe.
    Severe,
    /// Life-threatening (anaphylaxis).
    LifeThreatening,
}

/// A substance the patient reacts to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allergy {
    /// What the patient is allergic to.
    pub substance: String,
    /// What happens (hives, anaphylaxis, ...).
    pub reaction: String,
    /// How bad.
    pub severity: Severity,
}

impl Allergy {
    /// Substance and reaction required.
    pub fn parse(
        substance: &str,
        reaction: &str,
        severity: Severity,
    ) -> Result<Self, PatientError> {
        Ok(Self {
            substance: trimmed(substance, "substance", 200)?,
            reaction: text(reaction, "reaction", Lines::Multi, 500)?,
            severity,
        })
    }
}

/// A medical-history condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// A code (ICD-10, SNOMED CT) where known.
    pub code: Option<String>,
    /// What it is, in words.
    pub description: String,
    /// When it began, where known.
    pub onset: Option<NaiveDate>,
}

impl Condition {
    /// Description required; onset not after `today` and not before `born`.
    pub fn parse(
        code: Option<&str>,
        description: &str,
        onset: Option<NaiveDate>,
        born: Option<NaiveDate>,
        today: NaiveDate,
    ) -> Result<Self, PatientError> {
        let onset = onset.map(|d| past(d, "onset", today)).transpose()?;
        if onset.zip(born).is_some_and(|(onset, born)| onset < born) {
            return Err(PatientError::BeforeBirth("onset"));
        }
        Ok(Self {
            code: optional(code, "code", 50)?,
            description: text(description, "description", Lines::Multi, 500)?,
            onset,
        })
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

    #[test]
    fn a_phone_number_with_letters_is_rejected() {
        assert_eq!(
            Contact::parse(Some("call me"), None),
            Err(PatientError::Malformed("phone"))
        );
    }

    #[test]
    fn an_email_without_a_domain_is_rejected() {
        assert_eq!(
            Contact::parse(None, Some("marie@")),
            Err(PatientError::Malformed("email"))
        );
    }

    #[test]
    fn an_identifier_system_is_lowercased() {
        assert_eq!(Identifier::parse(" MRN ", "12-34").unwrap().system, "mrn");
    }

    #[test]
    fn a_condition_beginning_tomorrow_is_rejected() {
        assert_eq!(
            Condition::parse(
                None,
                "asthma",
                Some(day(2026, 11, 24)),
                None,
                day(2026, 11, 23)
            ),
            Err(PatientError::DateInTheFuture("onset"))
        );
    }

    #[test]
    fn a_condition_beginning_before_birth_is_rejected() {
        assert_eq!(
            Condition::parse(
                None,
                "asthma",
                Some(day(1960, 1, 1)),
                Some(day(1967, 11, 7)),
                day(2026, 11, 23)
            ),
            Err(PatientError::BeforeBirth("onset"))
        );
    }

    #[test]
    fn a_condition_beginning_in_year_zero_is_implausible() {
        assert_eq!(
            Condition::parse(None, "asthma", Some(day(0, 1, 1)), None, day(2026, 11, 23)),
            Err(PatientError::ImplausibleDate("onset"))
        );
    }

    #[test]
    fn a_nul_in_a_family_name_is_refused_naming_the_field() {
        assert_eq!(
            PersonName::parse("Cu\u{0}rie", "Marie"),
            Err(PatientError::InvalidCharacters("family_name"))
        );
    }

    #[test]
    fn a_reaction_may_span_lines() {
        assert!(Allergy::parse("Latex", "hives\nwheezing", Severity::Mild).is_ok());
    }
}
