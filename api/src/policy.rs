//! The access policy: who may do what to which record, decided here and
//! nowhere else (DESIGN.md, "Access control").
//!
//! Doctors and nurses reach a patient's clinical data only while on the
//! patient's care team (by assignment or an appointment) or under an
//! unexpired break-the-glass grant: [`Care`], which the handler looks up
//! (`crate::care`) and passes in (ADR 0013).

use anamnesis_domain::user::Role;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::ApiError;

/// Declares the whole policy in one place: each action once, with the
/// roles it is open to and the conditions that open it to others. It
/// generates [`Action`], [`Action::ALL`] and the rule table, so that the
/// three cannot disagree.
///
/// `Action => [roles]` opens the action to those roles; `in care [roles]`
/// also to those roles while they are on the patient's care team or hold
/// a break-the-glass grant for them; `+ own` also to a patient acting on
/// their own record; `+ provider` also to the doctor or nurse whose
/// provider calendar the action is about (their own schedule, an
/// appointment with them); `+ participant` also to whoever takes part in
/// the message thread the action is about. A condition that depends on data becomes a
/// keyword here and a fact on [`Context`], which the handler passes in or
/// the policy layer looks up; `domain/` never decides access.
macro_rules! policy {
    ($($action:ident => [$($role:ident),* $(,)?] $(in care [$($carer:ident),* $(,)?])? $(+ $cond:ident)*;)*) => {
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
                    carers: &[$($(Role::$carer),*)?],
                    own: policy!(@has own; $($cond)*),
                    provider: policy!(@has provider; $($cond)*),
                    participant: policy!(@has participant; $($cond)*),
                },)*
            }
        }
    };
    (@has own; own $($rest:ident)*) => { true };
    (@has provider; provider $($rest:ident)*) => { true };
    (@has participant; participant $($rest:ident)*) => { true };
    (@has $want:ident; $first:ident $($rest:ident)*) => { policy!(@has $want; $($rest)*) };
    (@has $want:ident;) => { false };
}

policy! {
    RegisterPatient => [Doctor, Staff];
    SearchPatients => [Doctor, Nurse, Staff, Compliance];
    ReadPatient => [Doctor, Nurse, Staff, Compliance] + own;
    UpdateDemographics => [Doctor, Staff] + own;
    RecordAllergy => [] in care [Doctor, Nurse];
    RemoveAllergy => [] in care [Doctor];
    ManageConditions => [] in care [Doctor];
    MarkDeceased => [] in care [Doctor];
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
    // A patient's whole record to take elsewhere (portability).
    ExportRecord => [Compliance] + own;
    // Erasure by crypto-shredding (ADR 0024), with a legal reason.
    ErasePatient => [Compliance];
    ReadAccessLog => [Compliance];
    OwnAccessLog => [] + own;
    // The clinical record (ADR 0013). Staff, admin and analysts read none.
    ReadChart => [Compliance] in care [Doctor, Nurse] + own;
    WriteEntry => [] in care [Doctor];
    RecordVitals => [] in care [Doctor, Nurse];
    // An author amends their own entries; a doctor any (`may_change`).
    AmendEntry => [] in care [Doctor, Nurse];
    ReadCareTeam => [Staff, Compliance] in care [Doctor, Nurse];
    ManageCareTeam => [Staff] in care [Doctor];
    // Any doctor or nurse, stating a reason; the grant is the way in.
    BreakGlass => [Doctor, Nurse];
    ListGrants => [Compliance];
    // Prescriptions (ADR 0015): doctors in care prescribe and change;
    // nurses in care record administrations; the patient asks for refills.
    Prescribe => [] in care [Doctor];
    ReadMedications => [Compliance] in care [Doctor, Nurse] + own;
    ChangeMedication => [] in care [Doctor];
    RequestRefill => [] + own;
    RecordAdministration => [] in care [Doctor, Nurse];
    // Everyone reads their own notifications (ADR 0019).
    ReadNotifications => [Patient, Doctor, Nurse, Staff, Admin, Compliance, Analyst];
    // E-mail and webhook deliveries (ADR 0023): ids, statuses, errors; no patient data.
    ReadDeliveries => [Admin];
    // Secure messaging (ADR 0017): only a thread's participants read and
    // write it (a doctor or nurse while still in the patient's care);
    // compliance reads, recorded. Break-the-glass opens no thread.
    StartThread => [Staff] in care [Doctor, Nurse] + own;
    ReadThread => [Compliance] + participant;
    PostMessage => [] + participant;
    ManageThread => [] + participant;
    ReadInbox => [Patient, Doctor, Nurse, Staff];
    // Billing (ADR 0016): staff run it; the patient reads and pays their
    // own bills; compliance reads. Doctors and nurses have no part in the
    // revenue cycle; admin keeps the price list, which holds no patient data.
    ReadPriceList => [Doctor, Nurse, Staff, Admin, Compliance];
    ManagePriceList => [Admin, Staff];
    ReadCoverage => [Staff, Compliance] + own;
    ManageCoverage => [Staff];
    ManageBill => [Staff];
    ReadBill => [Staff, Compliance] + own;
    ListBills => [Staff, Compliance];
    ManageClaims => [Staff];
    PayBill => [Staff] + own;
    AdjustBill => [Staff];
    // De-identified analytics (ADR 0021): counts and sums with small cells
    // suppressed and no patient ids. Analysts; compliance oversees them;
    // admin runs the clinic on them. Nothing clinical opens them.
    ReadAnalytics => [Analyst, Compliance, Admin];
}

/// How much of a patient record a permitted read may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Demographics, allergies and history.
    Clinical,
    /// Demographics only.
    Demographics,
}

/// Whom the rule allows: everyone in `roles`, those in `carers` while in
/// the patient's care, the patient themself when `own`, the provider
/// themself when `provider`.
struct Rule {
    roles: &'static [Role],
    carers: &'static [Role],
    own: bool,
    provider: bool,
    participant: bool,
}

/// How the caller stands to the patient the action is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Care {
    /// Not in their care (or not a doctor or nurse).
    #[default]
    None,
    /// On their care team, by assignment or an appointment.
    Team,
    /// Under an unexpired break-the-glass grant: every access is marked.
    Glass,
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
    /// Whether the caller is in the patient's care.
    pub care: Care,
    /// Whether the caller takes part in the message thread the action is
    /// about (ADR 0017).
    pub participant: bool,
}

impl Context {
    /// An action about no particular record (search, user management).
    pub const NONE: Context = Context {
        patient: None,
        provider_user: None,
        care: Care::None,
        participant: false,
    };

    /// An action on patient `id`'s record, by someone not in their care.
    pub fn patient(id: Uuid) -> Self {
        Context {
            patient: Some(id),
            ..Context::NONE
        }
    }

    /// An action on patient `id`'s record, by someone standing `care` to them.
    pub fn in_care(id: Uuid, care: Care) -> Self {
        Context {
            patient: Some(id),
            care,
            ..Context::NONE
        }
    }

    /// An action on the calendar of the provider who is user `user_id`.
    pub fn provider(user_id: Option<Uuid>) -> Self {
        Context {
            provider_user: user_id,
            ..Context::NONE
        }
    }

    /// An appointment of patient `patient` with the provider who is user
    /// `provider_user`.
    pub fn appointment(patient: Uuid, provider_user: Option<Uuid>) -> Self {
        Context {
            patient: Some(patient),
            provider_user,
            ..Context::NONE
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
    let carer = r.carers.contains(&who.role) && context.care != Care::None;
    let participant = r.participant && context.participant;
    if !(own || provider || carer || participant || r.roles.contains(&who.role)) {
        return Err(ApiError::Forbidden);
    }
    Ok(match who.role {
        Role::Staff => View::Demographics,
        // Outside their care, a doctor or nurse sees who the patient is,
        // not their clinical data.
        Role::Doctor | Role::Nurse if context.care == Care::None => View::Demographics,
        _ => View::Clinical,
    })
}

/// Whether `who` may change (amend, enter in error) an entry written by
/// `author`, once allowed to amend in this patient's care: their own
/// entries, and a doctor any entry.
pub fn may_change(who: &Principal, author: Uuid) -> Result<(), ApiError> {
    if who.role == Role::Doctor || who.user_id == author {
        return Ok(());
    }
    Err(ApiError::Forbidden)
}

/// Whether `who` may revise or sign a draft written by `author`: only its
/// author signs.
pub fn is_author(who: &Principal, author: Uuid) -> Result<(), ApiError> {
    if who.user_id == author {
        return Ok(());
    }
    Err(ApiError::Forbidden)
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
    fn analytics_are_for_analysts_compliance_and_admin_only() {
        for role in [Role::Analyst, Role::Compliance, Role::Admin] {
            let p = principal(role, None);
            assert!(authorize(&p, Action::ReadAnalytics, &Context::NONE).is_ok());
        }
        for role in [Role::Patient, Role::Doctor, Role::Nurse, Role::Staff] {
            let p = principal(role, Some(MINE).filter(|_| role == Role::Patient));
            assert!(authorize(&p, Action::ReadAnalytics, &Context::NONE).is_err());
            let care = Context::in_care(MINE, Care::Team);
            assert!(authorize(&p, Action::ReadAnalytics, &care).is_err());
        }
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
                    | Action::ExportRecord
                    // The one thing compliance writes: an erasure the law
                    // requires (ADR 0024).
                    | Action::ErasePatient
                    | Action::ReadAccessLog
                    | Action::ReadChart
                    | Action::ReadCareTeam
                    | Action::ListGrants
                    | Action::ReadThread
                    | Action::ReadMedications
                    | Action::ReadNotifications
                    | Action::ReadPriceList
                    | Action::ReadCoverage
                    | Action::ReadBill
                    | Action::ListBills
                    | Action::ReadAnalytics
            ) {
                assert!(
                    authorize(&c, action, &Context::patient(THEIRS)).is_err(),
                    "{action:?}"
                );
            }
        }
    }

    #[test]
    fn clinicians_reach_clinical_data_only_in_care() {
        let doctor = principal(Role::Doctor, None);
        let nurse = principal(Role::Nurse, None);
        let outside = Context::patient(THEIRS);
        let team = Context::in_care(THEIRS, Care::Team);
        let glass = Context::in_care(THEIRS, Care::Glass);
        for who in [&doctor, &nurse] {
            assert!(authorize(who, Action::ReadChart, &outside).is_err());
            assert!(authorize(who, Action::ReadChart, &team).is_ok());
            assert!(authorize(who, Action::ReadChart, &glass).is_ok());
            assert!(authorize(who, Action::RecordVitals, &team).is_ok());
            assert!(authorize(who, Action::RecordAllergy, &outside).is_err());
            assert_eq!(
                authorize(who, Action::ReadPatient, &outside).ok(),
                Some(View::Demographics)
            );
            assert_eq!(
                authorize(who, Action::ReadPatient, &team).ok(),
                Some(View::Clinical)
            );
        }
        // Nurses record vitals, not notes or diagnoses.
        assert!(authorize(&doctor, Action::WriteEntry, &team).is_ok());
        assert!(authorize(&nurse, Action::WriteEntry, &team).is_err());
        // Care opens nothing to roles that read no chart.
        for role in [Role::Staff, Role::Admin, Role::Analyst] {
            let p = principal(role, None);
            assert!(authorize(&p, Action::ReadChart, &team).is_err());
        }
        // A patient reads their own chart only.
        let me = principal(Role::Patient, Some(MINE));
        assert!(authorize(&me, Action::ReadChart, &Context::patient(MINE)).is_ok());
        assert!(authorize(
            &me,
            Action::ReadChart,
            &Context::in_care(THEIRS, Care::Team)
        )
        .is_err());
    }

    #[test]
    fn only_participants_reach_a_thread_and_compliance_reads_it() {
        let about = |participant| Context {
            participant,
            ..Context::in_care(THEIRS, Care::Team)
        };
        for role in [Role::Patient, Role::Doctor, Role::Nurse, Role::Staff] {
            let p = principal(role, Some(THEIRS).filter(|_| role == Role::Patient));
            for action in [
                Action::ReadThread,
                Action::PostMessage,
                Action::ManageThread,
            ] {
                assert!(authorize(&p, action, &about(true)).is_ok(), "{role:?}");
                // Neither the care team nor the patient's own record opens
                // a thread they take no part in.
                assert!(authorize(&p, action, &about(false)).is_err(), "{role:?}");
            }
        }
        let c = principal(Role::Compliance, None);
        assert!(authorize(&c, Action::ReadThread, &about(false)).is_ok());
        assert!(authorize(&c, Action::PostMessage, &about(false)).is_err());
        // Starting one: the patient, their care team, the front desk.
        let doctor = principal(Role::Doctor, None);
        assert!(authorize(&doctor, Action::StartThread, &Context::patient(THEIRS)).is_err());
        assert!(authorize(&doctor, Action::StartThread, &about(false)).is_ok());
        let me = principal(Role::Patient, Some(MINE));
        assert!(authorize(&me, Action::StartThread, &Context::patient(MINE)).is_ok());
        assert!(authorize(&me, Action::StartThread, &Context::patient(THEIRS)).is_err());
        for role in [Role::Admin, Role::Analyst, Role::Compliance] {
            let p = principal(role, None);
            assert!(authorize(&p, Action::StartThread, &about(true)).is_err());
            assert!(authorize(&p, Action::ReadInbox, &Context::NONE).is_err());
        }
    }

    #[test]
    fn a_patient_reads_and_pays_only_their_own_bills() {
        let me = principal(Role::Patient, Some(MINE));
        for action in [Action::ReadBill, Action::PayBill, Action::ReadCoverage] {
            assert!(authorize(&me, action, &Context::patient(MINE)).is_ok());
            assert!(authorize(&me, action, &Context::patient(THEIRS)).is_err());
        }
        for action in [Action::ManageBill, Action::ManageClaims, Action::AdjustBill] {
            assert!(authorize(&me, action, &Context::patient(MINE)).is_err());
        }
        // Care opens no bill to a doctor or nurse.
        for role in [Role::Doctor, Role::Nurse] {
            let p = principal(role, None);
            let team = Context::in_care(THEIRS, Care::Team);
            assert!(authorize(&p, Action::ReadBill, &team).is_err());
        }
    }

    #[test]
    fn authors_change_their_own_entries_and_doctors_any() {
        let doctor = principal(Role::Doctor, None);
        let nurse = principal(Role::Nurse, None);
        let someone = Uuid::from_u128(77);
        assert!(may_change(&doctor, someone).is_ok());
        assert!(may_change(&nurse, someone).is_err());
        assert!(may_change(&nurse, nurse.user_id).is_ok());
        assert!(is_author(&doctor, someone).is_err());
        assert!(is_author(&doctor, doctor.user_id).is_ok());
    }
}
