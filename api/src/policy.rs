//! The access policy: who may do what to which record, decided here and
//! nowhere else (DESIGN.md, "Access control").
//!
//! Known gap: doctors and nurses may reach every patient; there is no care-team
//! relation yet (it arrives with appointments and encounters).

use anamnesis_domain::user::Role;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::ApiError;

/// Something a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RegisterPatient,
    SearchPatients,
    ReadPatient,
    UpdateDemographics,
    RecordAllergy,
    RemoveAllergy,
    ManageConditions,
    MarkDeceased,
    ManageUsers,
}

impl Action {
    /// Every action, for tables and tests.
    pub const ALL: [Action; 9] = [
        Action::RegisterPatient,
        Action::SearchPatients,
        Action::ReadPatient,
        Action::UpdateDemographics,
        Action::RecordAllergy,
        Action::RemoveAllergy,
        Action::ManageConditions,
        Action::MarkDeceased,
        Action::ManageUsers,
    ];
}

/// How much of a patient record a permitted read may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Demographics, allergies and history.
    Clinical,
    /// Demographics only.
    Demographics,
}

/// Whom the rule allows: everyone in `roles`, and the patient themself when `own`.
struct Rule {
    roles: &'static [Role],
    own: bool,
}

fn rule(action: Action) -> Rule {
    use Role::*;
    let (roles, own): (&'static [Role], bool) = match action {
        Action::RegisterPatient => (&[Doctor, Staff], false),
        Action::SearchPatients => (&[Doctor, Nurse, Staff, Compliance], false),
        Action::ReadPatient => (&[Doctor, Nurse, Staff, Compliance], true),
        Action::UpdateDemographics => (&[Doctor, Staff], true),
        Action::RecordAllergy => (&[Doctor, Nurse], false),
        Action::RemoveAllergy | Action::ManageConditions | Action::MarkDeceased => {
            (&[Doctor], false)
        }
        Action::ManageUsers => (&[Admin], false),
    };
    Rule { roles, own }
}

/// Allows or forbids `action` on the patient record `patient` (if any).
pub fn authorize(who: &Principal, action: Action, patient: Option<Uuid>) -> Result<View, ApiError> {
    let r = rule(action);
    let own = r.own && who.role == Role::Patient && patient.is_some() && who.patient_id == patient;
    if !(own || r.roles.contains(&who.role)) {
        return Err(ApiError::Forbidden);
    }
    Ok(match who.role {
        Role::Staff => View::Demographics,
        _ => View::Clinical,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, patient_id: Option<Uuid>) -> Principal {
        Principal {
            user_id: Uuid::from_u128(1),
            role,
            patient_id,
            session_id: Uuid::from_u128(2),
        }
    }

    const MINE: Uuid = Uuid::from_u128(10);
    const THEIRS: Uuid = Uuid::from_u128(11);

    #[test]
    fn a_patient_reads_and_edits_only_their_own_record() {
        let me = principal(Role::Patient, Some(MINE));
        assert_eq!(
            authorize(&me, Action::ReadPatient, Some(MINE)).ok(),
            Some(View::Clinical)
        );
        assert!(authorize(&me, Action::UpdateDemographics, Some(MINE)).is_ok());
        assert!(authorize(&me, Action::ReadPatient, Some(THEIRS)).is_err());
        assert!(authorize(&me, Action::SearchPatients, None).is_err());
        assert!(authorize(&me, Action::RecordAllergy, Some(MINE)).is_err());
    }

    #[test]
    fn staff_see_demographics_but_not_history() {
        let staff = principal(Role::Staff, None);
        assert_eq!(
            authorize(&staff, Action::ReadPatient, Some(THEIRS)).ok(),
            Some(View::Demographics)
        );
        assert!(authorize(&staff, Action::RecordAllergy, Some(THEIRS)).is_err());
    }

    #[test]
    fn admin_and_analyst_read_no_patient_data() {
        for role in [Role::Admin, Role::Analyst] {
            let p = principal(role, None);
            assert!(authorize(&p, Action::ReadPatient, Some(THEIRS)).is_err());
            assert!(authorize(&p, Action::SearchPatients, None).is_err());
        }
    }

    #[test]
    fn compliance_reads_but_never_writes() {
        let c = principal(Role::Compliance, None);
        assert!(authorize(&c, Action::ReadPatient, Some(THEIRS)).is_ok());
        for action in Action::ALL {
            if !matches!(action, Action::ReadPatient | Action::SearchPatients) {
                assert!(authorize(&c, action, Some(THEIRS)).is_err(), "{action:?}");
            }
        }
    }
}
