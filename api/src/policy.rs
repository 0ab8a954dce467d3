//! The access policy: who may do what to which record, decided here and
//! nowhere else (DESIGN.md, "Access control").
//!
//! Known gap: doctors and nurses may reach every patient; there is no care-team
//! relation yet (it arrives with appointments and encounters).

use anamnesis_domain::user::Role;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::ApiError;

/// Declares the whole policy in one place: each action once, with the
/// roles it is open to and the conditions that open it to others. It
/// generates [`Action`], [`Action::ALL`] and the rule table, so that the
/// three cannot disagree.
///
/// `Action => [roles]` opens the action to those roles; `+ own` also to a
/// patient acting on their own record; `+ provider` also to the doctor or
/// nurse whose provider calendar the action is about (their own schedule,
/// an appointment with them). A condition that depends on data
/// (the care team, a break-the-glass grant, the provider of an
/// appointment) becomes a keyword here and a fact on [`Context`], which
/// the handler passes in or the policy layer looks up; `domain/` never
/// decides access.
macro_rules! policy {
    ($($action:ident => [$($role:ident),* $(,)?] $(+ $cond:ident)*;)*) => {
        /// Something a request wants to do.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Action { $($action),* }

        impl Action {
            /// Every action, for tables and tests.
            pub const ALL: &'static [Action] = &[$(Action::$action),*];
        }

        fn rule(action: Action) -> Rule {
            match action {
                $(Action::$action => Rule {
                    roles: &[$(Role::$role),*],
                    own: policy!(@has own; $($cond)*),
                    provider: policy!(@has provider; $($cond)*),
                },)*
            }
        }
    };
    (@has own; own $($rest:ident)*) => { true };
    (@has provider; provider $($rest:ident)*) => { true };
    (@has $want:ident; $first:ident $($rest:ident)*) => { policy!(@has $want; $($rest)*) };
    (@has $want:ident;) => { false };
}

policy! {
    RegisterPatient => [Doctor, Staff];
    SearchPatients => [Doctor, Nurse, Staff, Compliance];
    ReadPatient => [Doctor, Nurse, Staff, Compliance] + own;
    UpdateDemographics => [Doctor, Staff] + own;
    RecordAllergy => [Doctor, Nurse];
    RemoveAllergy => [Doctor];
    ManageConditions => [Doctor];
    MarkDeceased => [Doctor];
    ManageUsers => [Admin];
    EnrollProvider => [Admin];
    // Provider lists, hours, closures and free slots hold no patient data.
    ListProviders => [Patient, Doctor, Nurse, Staff, Admin, Compliance, Analyst];
    ManageAvailability => [Admin, Staff] + provider;
    ManageHolidays => [Admin];
    BookAppointment => [Staff] + own + provider;
    Overbook => [Staff];
    ReadAppointment => [Staff, Compliance] + own + provider;
    ChangeAppointment => [Staff] + own + provider;
    RunVisit => [Staff] + provider;
    ListAppointments => [Staff, Compliance];
    ReadSchedule => [Doctor, Nurse, Staff, Admin, Compliance] + provider;
    PatientAppointments => [Doctor, Nurse, Staff, Compliance] + own;
    ReadHistory => [Compliance];
    ReadAccessLog => [Compliance];
    OwnAccessLog => [] + own;
}

/// How much of a patient record a permitted read may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Demographics, allergies and history.
    Clinical,
    /// Demographics only.
    Demographics,
}

/// Whom the rule allows: everyone in `roles`, the patient themself when
/// `own`, the provider themself when `provider`.
struct Rule {
    roles: &'static [Role],
    own: bool,
    provider: bool,
}

/// What the decision may depend on besides the caller and the action: the
/// record acted on, and the facts that relate the caller to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Context {
    /// The patient record the action is about, if any.
    pub patient: Option<Uuid>,
    /// The user account of the provider whose calendar the action is
    /// about (their schedule, an appointment with them), if any.
    pub provider_user: Option<Uuid>,
}

impl Context {
    /// An action about no particular record (search, user management).
    pub const NONE: Context = Context {
        patient: None,
        provider_user: None,
    };

    /// An action on patient `id`'s record.
    pub fn patient(id: Uuid) -> Self {
        Context {
            patient: Some(id),
            provider_user: None,
        }
    }

    /// An action on the calendar of the provider who is user `user_id`.
    pub fn provider(user_id: Option<Uuid>) -> Self {
        Context {
            patient: None,
            provider_user: user_id,
        }
    }

    /// An appointment of patient `patient` with the provider who is user
    /// `provider_user`.
    pub fn appointment(patient: Uuid, provider_user: Option<Uuid>) -> Self {
        Context {
            patient: Some(patient),
            provider_user,
        }
    }

    /// Whether `who` is the provider the action is about.
    pub fn is_provider(&self, who: &Principal) -> bool {
        matches!(who.role, Role::Doctor | Role::Nurse) && self.provider_user == Some(who.user_id)
    }
}

/// Allows or forbids `action` in `context`.
pub fn authorize(who: &Principal, action: Action, context: &Context) -> Result<View, ApiError> {
    let r = rule(action);
    let own = r.own
        && who.role == Role::Patient
        && context.patient.is_some()
        && who.patient_id == context.patient;
    let provider = r.provider && context.is_provider(who);
    if !(own || provider || r.roles.contains(&who.role)) {
        return Err(ApiError::Forbidden);
    }
    Ok(match who.role {
        Role::Staff => View::Demographics,
        _ => View::Clinical,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_provider_reaches_their_own_calendar_only() {
        let doctor = principal(Role::Doctor, None);
        let mine = Context::provider(Some(doctor.user_id));
        let theirs = Context::provider(Some(Uuid::from_u128(99)));
        assert!(authorize(&doctor, Action::ManageAvailability, &mine).is_ok());
        assert!(authorize(&doctor, Action::ManageAvailability, &theirs).is_err());
        let with_me = Context::appointment(THEIRS, Some(doctor.user_id));
        assert!(authorize(&doctor, Action::RunVisit, &with_me).is_ok());
        let with_another = Context::appointment(THEIRS, Some(Uuid::from_u128(99)));
        assert!(authorize(&doctor, Action::RunVisit, &with_another).is_err());
        // Being the provider opens nothing to a patient with the same id.
        let patient = principal(Role::Patient, None);
        assert!(authorize(&patient, Action::RunVisit, &with_me).is_err());
        // Staff manage every booking; admin none.
        let staff = principal(Role::Staff, None);
        assert!(authorize(&staff, Action::ChangeAppointment, &with_me).is_ok());
        let admin = principal(Role::Admin, None);
        assert!(authorize(&admin, Action::ChangeAppointment, &with_me).is_err());
        assert!(authorize(&admin, Action::ManageAvailability, &theirs).is_ok());
    }

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
            authorize(&me, Action::ReadPatient, &Context::patient(MINE)).ok(),
            Some(View::Clinical)
        );
        assert!(authorize(&me, Action::UpdateDemographics, &Context::patient(MINE)).is_ok());
        assert!(authorize(&me, Action::ReadPatient, &Context::patient(THEIRS)).is_err());
        assert!(authorize(&me, Action::SearchPatients, &Context::NONE).is_err());
        assert!(authorize(&me, Action::RecordAllergy, &Context::patient(MINE)).is_err());
    }

    #[test]
    fn staff_see_demographics_but_not_history() {
        let staff = principal(Role::Staff, None);
        assert_eq!(
            authorize(&staff, Action::ReadPatient, &Context::patient(THEIRS)).ok(),
            Some(View::Demographics)
        );
        assert!(authorize(&staff, Action::RecordAllergy, &Context::patient(THEIRS)).is_err());
    }

    #[test]
    fn admin_and_analyst_read_no_patient_data() {
        for role in [Role::Admin, Role::Analyst] {
            let p = principal(role, None);
            assert!(authorize(&p, Action::ReadPatient, &Context::patient(THEIRS)).is_err());
            assert!(authorize(&p, Action::SearchPatients, &Context::NONE).is_err());
        }
    }

    #[test]
    fn compliance_reads_but_never_writes() {
        let c = principal(Role::Compliance, None);
        assert!(authorize(&c, Action::ReadPatient, &Context::patient(THEIRS)).is_ok());
        for &action in Action::ALL {
            if !matches!(
                action,
                Action::ReadPatient
                    | Action::SearchPatients
                    | Action::ListProviders
                    | Action::ReadAppointment
                    | Action::ListAppointments
                    | Action::ReadSchedule
                    | Action::PatientAppointments
                    | Action::ReadHistory
                    | Action::ReadAccessLog
            ) {
                assert!(
                    authorize(&c, action, &Context::patient(THEIRS)).is_err(),
                    "{action:?}"
                );
            }
        }
    }
}
