//! Value types of a user account.

use serde::{Deserialize, Serialize};

use super::UserError;

/// What a user may do, per DESIGN.md's access matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A patient, reaching their own record.
    Patient,
    /// A physician.
    Doctor,
    /// A nurse.
    Nurse,
    /// Front desk and billing.
    Staff,
    /// Users, roles, schedules, settings; no clinical data.
    Admin,
    /// Read-only history, replay, verification, access logs.
    Compliance,
    /// De-identified analytics only.
    Analyst,
}

impl Role {
    /// Every role, for tables and tests.
    pub const ALL: [Role; 7] = [
        Role::Patient,
        Role::Doctor,
        Role::Nurse,
        Role::Staff,
        Role::Admin,
        Role::Compliance,
        Role::Analyst,
    ];

    /// The stable name used in events, tokens and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Doctor => "doctor",
            Role::Nurse => "nurse",
            Role::Staff => "staff",
            Role::Admin => "admin",
            Role::Compliance => "compliance",
            Role::Analyst => "analyst",
        }
    }

    /// The role with that name.
    pub fn parse(name: &str) -> Result<Self, UserError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .ok_or(UserError::UnknownRole)
    }
}

/// A login name: 3 to 64 characters of `a-z 0-9 . _ -`, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Lowercases and checks the characters and length.
    pub fn parse(raw: &str) -> Result<Self, UserError> {
        let name = raw.trim().to_lowercase();
        let allowed = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@".contains(c));
        if name.len() < 3 || name.len() > 64 || !allowed {
            return Err(UserError::InvalidUsername);
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Rules for a new password, checked before it is hashed.
pub fn check_password(password: &str) -> Result<(), UserError> {
    let chars = password.chars().count();
    if chars < 10 {
        return Err(UserError::PasswordTooShort);
    }
    if chars > 256 {
        return Err(UserError::PasswordTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_username_is_lowercased() {
        assert_eq!(Username::parse(" Dr.House ").unwrap().as_str(), "dr.house");
    }

    #[test]
    fn a_username_with_spaces_is_rejected() {
        assert_eq!(Username::parse("dr house"), Err(UserError::InvalidUsername));
    }

    #[test]
    fn a_two_letter_username_is_rejected() {
        assert_eq!(Username::parse("ab"), Err(UserError::InvalidUsername));
    }

    #[test]
    fn a_nine_character_password_is_too_short() {
        assert_eq!(
            check_password("123456789"),
            Err(UserError::PasswordTooShort)
        );
    }

    #[test]
    fn a_257_character_password_is_too_long() {
        assert_eq!(
            check_password(&"p".repeat(257)),
            Err(UserError::PasswordTooLong)
        );
    }

    #[test]
    fn every_role_parses_from_its_name() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert_eq!(Role::parse("root"), Err(UserError::UnknownRole));
    }
}
