//! The endpoint × role table: for every route of the served OpenAPI document,
//! who may call it and what a permitted call answers. It is the one hand-kept
//! list of routes in the tests: `tests/tests/access/` runs it against a
//! real server and `tests/tests/openapi.rs` holds the document to it, so a
//! route added to the API without a row here (or a row for a route that is
//! gone) fails both.
//!
//! A new domain adds its routes here as it lands (docs: "adding a domain").

use std::collections::BTreeSet;

use serde_json::Value;

/// Whom a route allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Everyone, without a token too.
    Anyone,
    /// Every signed-in account, whatever its role.
    SignedIn,
    /// These roles only; `patient` means a patient on their own record.
    Roles(&'static [&'static str]),
}

/// Whose patient record a route acts on: the one its `{id}` names, or, for
/// an appointment, the patient it books or names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// The route names no patient record.
    None,
    /// The calling patient's own record.
    Own,
    /// Another patient's record.
    Other,
    /// A record registered for this one call (for commands that end a record).
    Fresh,
    /// A record in the doctor's care only (the doctor registered it); the
    /// nurse is outside it.
    Doctors,
    /// A record in no one's care, for which the doctor broke the glass.
    Glass,
}

/// Whose provider calendar a scheduling route acts on: the provider its
/// `{id}` names, or the provider of the appointment it books or names. It
/// is what `+ provider` in the policy asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    /// The route acts on no provider's calendar, or the policy does not ask whose.
    None,
    /// The doctor account's own provider record: the nurse's is another's.
    Doctor,
    /// The nurse account's own provider record: to the doctor, another
    /// provider's calendar.
    Nurse,
}

/// One row: a route as the document names it (`METHOD /path/{param}`), the
/// records it acts on, who may call it, and what a permitted call answers.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub route: &'static str,
    pub record: Record,
    pub calendar: Calendar,
    pub who: Who,
    /// The status a permitted call succeeds with.
    pub ok: u16,
    /// For a call that cannot succeed in a test: the problem code of the
    /// domain rule that answers every caller the policy lets through with
    /// `422` (a no-show needs its start time to have passed, and the test
    /// does not wait). The policy is decided before the domain, so that
    /// `422` shows the caller was permitted, while a caller who is not still
    /// gets `403`. Such a row says where the success itself is tested.
    pub refusal: Option<&'static str>,
    /// Which request of the route this row makes, where one route takes
    /// several (a chart entry's kind: `note`, `vitals`); empty otherwise.
    pub variant: &'static str,
}

const fn row(route: &'static str, record: Record, who: Who, ok: u16) -> Row {
    Row {
        route,
        record,
        calendar: Calendar::None,
        who,
        ok,
        refusal: None,
        variant: "",
    }
}

impl Row {
    /// This row, acting on `calendar`.
    const fn on(self, calendar: Calendar) -> Row {
        Row { calendar, ..self }
    }

    /// This row, making the route's `variant` request.
    const fn variant(self, variant: &'static str) -> Row {
        Row { variant, ..self }
    }

    /// This row, whose permitted calls the domain refuses in a test with
    /// `422 code` (see [`Row::refusal`]).
    const fn refused_by_domain(self, code: &'static str) -> Row {
        Row {
            refusal: Some(code),
            ..self
        }
    }

    /// The status a permitted call answers in the test: `ok`, or `422` for
    /// a row with a `refusal`.
    pub fn permitted_status(&self) -> u16 {
        match self.refusal {
            Some(_) => 422,
            None => self.ok,
        }
    }

    /// Whether `role` (`None`: no token) may make this call.
    pub fn allows(&self, role: Option<&str>) -> bool {
        match (self.who, role) {
            (Who::Anyone, _) => true,
            (_, None) => false,
            (Who::SignedIn, Some(_)) => true,
            (Who::Roles(roles), Some(role)) => roles.contains(&role),
        }
    }
}

/// Every role an account can have, in the order the test calls them.
pub const ROLES: [&str; 7] = [
    "patient",
    "admin",
    "doctor",
    "nurse",
    "staff",
    "compliance",
    "analyst",
];

/// DESIGN.md's access matrix, per route. A call by anyone not allowed is
/// `403 forbidden` (the policy never hides a record behind a 404); a call
/// without a token to a route that needs one is `401 unauthenticated`.
pub const TABLE: &[Row] = {
    use Calendar::{Doctor, Nurse};
    use Record::*;
    use Who::*;
    const CLINICAL_READERS: Who = Roles(&["doctor", "nurse", "staff", "compliance"]);
    // Scheduling: `+ own` is the patient on their own appointment, `+
    // provider` the doctor or nurse on their own calendar. A route with
    // either has a row for the patient account's appointment with the
    // doctor and one for another patient's with the nurse, so that each of
    // the three is seen both permitted and refused.
    const OWN_WITH_DOCTOR: Who = Roles(&["patient", "doctor", "staff"]);
    const OTHER_WITH_NURSE: Who = Roles(&["nurse", "staff"]);
    const CALENDAR_KEEPERS_DOCTOR: Who = Roles(&["admin", "doctor", "staff"]);
    const CALENDAR_KEEPERS_NURSE: Who = Roles(&["admin", "nurse", "staff"]);
    const VISIT_DOCTOR: Who = Roles(&["doctor", "staff"]);
    // Doctors and nurses read any provider's schedule by role.
    const SCHEDULE_READERS: Who = Roles(&["admin", "doctor", "nurse", "staff", "compliance"]);
    // The chart: the care team (here the doctor) and compliance; on the
    // patient's own record, the patient and the nurse too.
    const CHART_READERS: Who = Roles(&["doctor", "compliance"]);
    const CHART_READERS_OWN: Who = Roles(&["patient", "doctor", "nurse", "compliance"]);
    // Messaging: a thread's participants, and compliance reads.
    const THREAD_PARTIES: Who = Roles(&["patient", "doctor", "staff"]);
    const THREAD_READERS: Who = Roles(&["patient", "doctor", "staff", "compliance"]);
    &[
        row("POST /v1/auth/login", None, Anyone, 200),
        row("POST /v1/auth/refresh", None, Anyone, 200),
        row("POST /v1/auth/register", None, Anyone, 201),
        row("POST /v1/auth/logout", None, SignedIn, 204),
        row("POST /v1/auth/password", None, SignedIn, 204),
        row("POST /v1/users", None, Roles(&["admin"]), 201),
        row(
            "POST /v1/users/{username}/deactivate",
            None,
            Roles(&["admin"]),
            200,
        ),
        row(
            "POST /v1/users/{username}/reactivate",
            None,
            Roles(&["admin"]),
            200,
        ),
        row("POST /v1/patients", None, Roles(&["doctor", "staff"]), 201),
        row("GET /v1/patients", None, CLINICAL_READERS, 200),
        row("GET /v1/patients/{id}", Other, CLINICAL_READERS, 200),
        row(
            "GET /v1/patients/{id}",
            Own,
            Roles(&["patient", "doctor", "nurse", "staff", "compliance"]),
            200,
        ),
        row("GET /v1/patients/{id}/card", Other, CLINICAL_READERS, 200),
        row(
            "GET /v1/patients/{id}/card",
            Own,
            Roles(&["patient", "doctor", "nurse", "staff", "compliance"]),
            200,
        ),
        row(
            "PUT /v1/patients/{id}/demographics",
            Other,
            Roles(&["doctor", "staff"]),
            200,
        ),
        row(
            "PUT /v1/patients/{id}/demographics",
            Own,
            Roles(&["patient", "doctor", "staff"]),
            200,
        ),
        row(
            "POST /v1/patients/{id}/allergies",
            Own,
            Roles(&["doctor", "nurse"]),
            201,
        ),
        row(
            "DELETE /v1/patients/{id}/allergies/{allergy_id}",
            Own,
            Roles(&["doctor"]),
            200,
        ),
        row(
            "POST /v1/patients/{id}/conditions",
            Own,
            Roles(&["doctor"]),
            201,
        ),
        row(
            "POST /v1/patients/{id}/conditions/{condition_id}/resolve",
            Own,
            Roles(&["doctor"]),
            200,
        ),
        row(
            "POST /v1/patients/{id}/deceased",
            Fresh,
            Roles(&["doctor"]),
            200,
        ),
        row("POST /v1/providers", None, Roles(&["admin"]), 201),
        row("GET /v1/providers", None, SignedIn, 200),
        row("GET /v1/providers/{id}", None, SignedIn, 200).on(Doctor),
        row(
            "PUT /v1/providers/{id}/availability",
            None,
            CALENDAR_KEEPERS_DOCTOR,
            200,
        )
        .on(Doctor),
        row(
            "PUT /v1/providers/{id}/availability",
            None,
            CALENDAR_KEEPERS_NURSE,
            200,
        )
        .on(Nurse),
        row(
            "POST /v1/providers/{id}/time-off",
            None,
            CALENDAR_KEEPERS_DOCTOR,
            201,
        )
        .on(Doctor),
        row(
            "POST /v1/providers/{id}/time-off",
            None,
            CALENDAR_KEEPERS_NURSE,
            201,
        )
        .on(Nurse),
        row(
            "DELETE /v1/providers/{id}/time-off/{closure_id}",
            None,
            CALENDAR_KEEPERS_DOCTOR,
            200,
        )
        .on(Doctor),
        row(
            "DELETE /v1/providers/{id}/time-off/{closure_id}",
            None,
            CALENDAR_KEEPERS_NURSE,
            200,
        )
        .on(Nurse),
        row("POST /v1/holidays", None, Roles(&["admin"]), 201),
        row(
            "DELETE /v1/holidays/{closure_id}",
            None,
            Roles(&["admin"]),
            200,
        ),
        row("GET /v1/providers/{id}/slots", None, SignedIn, 200).on(Doctor),
        row("GET /v1/slots", None, SignedIn, 200),
        row("POST /v1/appointments", Own, OWN_WITH_DOCTOR, 201).on(Doctor),
        row("POST /v1/appointments", Other, OTHER_WITH_NURSE, 201).on(Nurse),
        // Neither the patient nor the provider may overbook, not even their own.
        row(
            "POST /v1/appointments/overbook",
            Own,
            Roles(&["staff"]),
            201,
        )
        .on(Doctor),
        row(
            "GET /v1/appointments/{id}",
            Own,
            Roles(&["patient", "doctor", "staff", "compliance"]),
            200,
        )
        .on(Doctor),
        row(
            "GET /v1/appointments/{id}",
            Other,
            Roles(&["nurse", "staff", "compliance"]),
            200,
        )
        .on(Nurse),
        row(
            "POST /v1/appointments/{id}/cancel",
            Own,
            OWN_WITH_DOCTOR,
            200,
        )
        .on(Doctor),
        row(
            "POST /v1/appointments/{id}/cancel",
            Other,
            OTHER_WITH_NURSE,
            200,
        )
        .on(Nurse),
        row(
            "POST /v1/appointments/{id}/reschedule",
            Own,
            OWN_WITH_DOCTOR,
            200,
        )
        .on(Doctor),
        row(
            "POST /v1/appointments/{id}/reschedule",
            Other,
            OTHER_WITH_NURSE,
            200,
        )
        .on(Nurse),
        // The visit is run by staff and the provider; the patient, even on
        // their own appointment, may not.
        row(
            "POST /v1/appointments/{id}/check-in",
            Own,
            VISIT_DOCTOR,
            200,
        )
        .on(Doctor),
        row(
            "POST /v1/appointments/{id}/check-in",
            Other,
            OTHER_WITH_NURSE,
            200,
        )
        .on(Nurse),
        row("POST /v1/appointments/{id}/start", Own, VISIT_DOCTOR, 200).on(Doctor),
        row(
            "POST /v1/appointments/{id}/start",
            Other,
            OTHER_WITH_NURSE,
            200,
        )
        .on(Nurse),
        row(
            "POST /v1/appointments/{id}/complete",
            Own,
            VISIT_DOCTOR,
            200,
        )
        .on(Doctor),
        row(
            "POST /v1/appointments/{id}/complete",
            Other,
            OTHER_WITH_NURSE,
            200,
        )
        .on(Nurse),
        // Recorded only after the start time: the success is tested in
        // domain/src/schedule/tests/appointment_transitions.rs
        // (a_no_show_is_recorded_after_the_start_time).
        row("POST /v1/appointments/{id}/no-show", Own, VISIT_DOCTOR, 200)
            .on(Doctor)
            .refused_by_domain("not_started_yet"),
        row(
            "POST /v1/appointments/{id}/no-show",
            Other,
            OTHER_WITH_NURSE,
            200,
        )
        .on(Nurse)
        .refused_by_domain("not_started_yet"),
        row(
            "GET /v1/appointments",
            None,
            Roles(&["staff", "compliance"]),
            200,
        ),
        row(
            "GET /v1/providers/{id}/schedule",
            None,
            SCHEDULE_READERS,
            200,
        )
        .on(Doctor),
        row(
            "GET /v1/providers/{id}/schedule",
            None,
            SCHEDULE_READERS,
            200,
        )
        .on(Nurse),
        row(
            "GET /v1/patients/{id}/appointments",
            Own,
            Roles(&["patient", "doctor", "nurse", "staff", "compliance"]),
            200,
        ),
        row(
            "GET /v1/patients/{id}/appointments",
            Other,
            CLINICAL_READERS,
            200,
        ),
        row("GET /v1/me/provider", None, SignedIn, 200),
        row("GET /v1/access-log", None, Roles(&["compliance"]), 200),
        row("GET /v1/me/access-log", None, Roles(&["patient"]), 200),
        row(
            "GET /v1/patients/{id}/history",
            Other,
            Roles(&["compliance"]),
            200,
        ),
        row(
            "GET /v1/patients/{id}/as-of",
            Other,
            Roles(&["compliance"]),
            200,
        ),
        row(
            "GET /v1/patients/{id}/export",
            Other,
            Roles(&["compliance"]),
            200,
        ),
        row(
            "GET /v1/patients/{id}/export",
            Own,
            Roles(&["patient", "compliance"]),
            200,
        ),
        row(
            "POST /v1/patients/{id}/erasure",
            Fresh,
            Roles(&["compliance"]),
            200,
        ),
        // The clinical record (ADR 0013). On `Own`, the doctor and the
        // nurse are on the care team; on `Doctors`, only the doctor; on
        // `Glass`, no one, and the doctor holds a break-the-glass grant.
        // Nurses record vitals, not notes; an author amends their own
        // entries and a doctor any; the patient reads their signed entries.
        row("POST /v1/patients/{id}/chart", Own, Roles(&["doctor"]), 201).variant("note"),
        row(
            "POST /v1/patients/{id}/chart",
            Own,
            Roles(&["doctor", "nurse"]),
            201,
        )
        .variant("vitals"),
        row(
            "POST /v1/patients/{id}/chart",
            Doctors,
            Roles(&["doctor"]),
            201,
        )
        .variant("vitals"),
        row(
            "POST /v1/patients/{id}/chart",
            Glass,
            Roles(&["doctor"]),
            201,
        )
        .variant("vitals"),
        row(
            "POST /v1/patients/{id}/chart/documents",
            Own,
            Roles(&["doctor"]),
            201,
        ),
        row("GET /v1/patients/{id}/chart", Own, CHART_READERS_OWN, 200),
        row("GET /v1/patients/{id}/chart", Doctors, CHART_READERS, 200),
        row("GET /v1/patients/{id}/chart", Glass, CHART_READERS, 200),
        row("GET /v1/chart/{entry_id}", Own, CHART_READERS_OWN, 200),
        row("GET /v1/chart/{entry_id}", Doctors, CHART_READERS, 200),
        row(
            "GET /v1/chart/{entry_id}/versions",
            Own,
            CHART_READERS_OWN,
            200,
        ),
        row(
            "GET /v1/chart/{entry_id}/content",
            Own,
            CHART_READERS_OWN,
            200,
        ),
        row("PUT /v1/chart/{entry_id}", Own, Roles(&["doctor"]), 200),
        row(
            "POST /v1/chart/{entry_id}/sign",
            Own,
            Roles(&["doctor"]),
            200,
        ),
        row(
            "POST /v1/chart/{entry_id}/amend",
            Own,
            Roles(&["doctor"]),
            200,
        )
        .variant("note"),
        row(
            "POST /v1/chart/{entry_id}/amend",
            Own,
            Roles(&["doctor", "nurse"]),
            200,
        )
        .variant("vitals"),
        row(
            "POST /v1/chart/{entry_id}/entered-in-error",
            Own,
            Roles(&["doctor"]),
            200,
        ),
        row(
            "GET /v1/patients/{id}/care-team",
            Own,
            Roles(&["doctor", "nurse", "staff", "compliance"]),
            200,
        ),
        row(
            "GET /v1/patients/{id}/care-team",
            Doctors,
            Roles(&["doctor", "staff", "compliance"]),
            200,
        ),
        row(
            "POST /v1/patients/{id}/care-team",
            Doctors,
            Roles(&["doctor", "staff"]),
            201,
        ),
        row(
            "POST /v1/patients/{id}/care-team/{user_id}/removal",
            Doctors,
            Roles(&["doctor", "staff"]),
            200,
        ),
        row(
            "POST /v1/patients/{id}/break-glass",
            Fresh,
            Roles(&["doctor", "nurse"]),
            201,
        ),
        row("GET /v1/break-glass", None, Roles(&["compliance"]), 200),
        // Prescriptions (ADR 0015): the chart's readers read them; a doctor
        // in care prescribes and changes; a nurse in care records
        // administrations; the patient asks for refills of their own.
        row(
            "POST /v1/patients/{id}/medications",
            Own,
            Roles(&["doctor"]),
            201,
        ),
        row(
            "POST /v1/patients/{id}/medications",
            Glass,
            Roles(&["doctor"]),
            201,
        ),
        row(
            "GET /v1/patients/{id}/medications",
            Own,
            CHART_READERS_OWN,
            200,
        ),
        row(
            "GET /v1/patients/{id}/medications",
            Doctors,
            CHART_READERS,
            200,
        ),
        row("GET /v1/patients/{id}/doses", Own, CHART_READERS_OWN, 200),
        row(
            "GET /v1/medications/{medication_id}",
            Own,
            CHART_READERS_OWN,
            200,
        ),
        row(
            "GET /v1/medications/{medication_id}",
            Doctors,
            CHART_READERS,
            200,
        ),
        row(
            "GET /v1/medications/{medication_id}/history",
            Own,
            CHART_READERS_OWN,
            200,
        ),
        row(
            "POST /v1/medications/{medication_id}/dose",
            Own,
            Roles(&["doctor"]),
            200,
        ),
        row(
            "POST /v1/medications/{medication_id}/stop",
            Own,
            Roles(&["doctor"]),
            200,
        ),
        row(
            "POST /v1/medications/{medication_id}/refill-requests",
            Own,
            Roles(&["patient"]),
            201,
        ),
        row(
            "POST /v1/medications/{medication_id}/refill-decision",
            Own,
            Roles(&["doctor"]),
            200,
        ),
        row(
            "POST /v1/medications/{medication_id}/administrations",
            Own,
            Roles(&["doctor", "nurse"]),
            201,
        ),
        row(
            "POST /v1/medications/{medication_id}/administrations",
            Doctors,
            Roles(&["doctor"]),
            201,
        ),
        // Secure messaging (ADR 0017). On `Own`, the thread is between the
        // patient, the doctor and the front desk: the nurse, on the care
        // team, takes no part. A thread needs the patient's own account:
        // the records `Doctors` and `Glass` have none, so a permitted start
        // there is refused by the domain; break-the-glass opens no thread.
        row(
            "POST /v1/threads",
            Own,
            Roles(&["patient", "doctor", "nurse", "staff"]),
            201,
        ),
        row(
            "POST /v1/threads",
            Doctors,
            Roles(&["doctor", "staff"]),
            201,
        )
        .refused_by_domain("no_patient"),
        row("POST /v1/threads", Glass, Roles(&["staff"]), 201).refused_by_domain("no_patient"),
        row("GET /v1/threads/{id}", Own, THREAD_READERS, 200),
        row("POST /v1/threads/{id}/messages", Own, THREAD_PARTIES, 201),
        row(
            "POST /v1/threads/{id}/participants",
            Own,
            THREAD_PARTIES,
            201,
        ),
        row("POST /v1/threads/{id}/read", Own, THREAD_PARTIES, 200),
        row("POST /v1/threads/{id}/archive", Own, THREAD_PARTIES, 200),
        row(
            "GET /v1/me/threads",
            None,
            Roles(&["patient", "doctor", "nurse", "staff"]),
            200,
        ),
        // Billing (ADR 0016): staff run it; the patient reads and pays their
        // own bills and reads their coverage; compliance reads; admin keeps
        // the price list; doctors and nurses only read the price list.
        row(
            "GET /v1/billing/price-list",
            None,
            Roles(&["admin", "doctor", "nurse", "staff", "compliance"]),
            200,
        ),
        row(
            "PUT /v1/billing/price-list/{code}",
            None,
            Roles(&["admin", "staff"]),
            200,
        ),
        row(
            "POST /v1/billing/price-list/{code}/retire",
            None,
            Roles(&["admin", "staff"]),
            200,
        ),
        row(
            "GET /v1/patients/{id}/coverage",
            Own,
            Roles(&["patient", "staff", "compliance"]),
            200,
        ),
        row(
            "GET /v1/patients/{id}/coverage",
            Other,
            Roles(&["staff", "compliance"]),
            200,
        ),
        row(
            "POST /v1/patients/{id}/coverage",
            Own,
            Roles(&["staff"]),
            201,
        ),
        row(
            "POST /v1/patients/{id}/coverage/{coverage_id}/end",
            Own,
            Roles(&["staff"]),
            200,
        ),
        row("POST /v1/bills", Own, Roles(&["staff"]), 201),
        row("GET /v1/bills", None, Roles(&["staff", "compliance"]), 200),
        row(
            "GET /v1/bills/{id}",
            Own,
            Roles(&["patient", "staff", "compliance"]),
            200,
        ),
        row(
            "GET /v1/bills/{id}",
            Other,
            Roles(&["staff", "compliance"]),
            200,
        ),
        row("POST /v1/bills/{id}/lines", Own, Roles(&["staff"]), 201),
        row(
            "DELETE /v1/bills/{id}/lines/{line_id}",
            Own,
            Roles(&["staff"]),
            200,
        ),
        row("POST /v1/bills/{id}/issue", Own, Roles(&["staff"]), 200),
        row("POST /v1/bills/{id}/void", Own, Roles(&["staff"]), 200),
        row("POST /v1/bills/{id}/claims", Own, Roles(&["staff"]), 201),
        row(
            "POST /v1/bills/{id}/claims/{claim_id}/response",
            Own,
            Roles(&["staff"]),
            200,
        ),
        row(
            "POST /v1/bills/{id}/claims/{claim_id}/resubmit",
            Own,
            Roles(&["staff"]),
            200,
        ),
        row(
            "POST /v1/bills/{id}/claims/{claim_id}/withdraw",
            Own,
            Roles(&["staff"]),
            200,
        ),
        row(
            "POST /v1/bills/{id}/payments",
            Own,
            Roles(&["patient", "staff"]),
            201,
        ),
        row(
            "POST /v1/bills/{id}/payments",
            Other,
            Roles(&["staff"]),
            201,
        ),
        row(
            "POST /v1/bills/{id}/payments/{payment_id}/settlement",
            Own,
            Roles(&["staff"]),
            200,
        ),
        row(
            "POST /v1/bills/{id}/adjustments",
            Own,
            Roles(&["staff"]),
            201,
        ),
        row("POST /v1/bills/{id}/refunds", Own, Roles(&["staff"]), 201),
        row(
            "GET /v1/patients/{id}/bills",
            Own,
            Roles(&["patient", "staff", "compliance"]),
            200,
        ),
        row(
            "GET /v1/patients/{id}/bills",
            Other,
            Roles(&["staff", "compliance"]),
            200,
        ),
        row(
            "GET /v1/billing/aging",
            None,
            Roles(&["staff", "compliance"]),
            200,
        ),
        // De-identified analytics (ADR 0021): analysts, compliance, admin.
        row(
            "GET /v1/analytics/appointments",
            None,
            Roles(&["admin", "compliance", "analyst"]),
            200,
        ),
        row(
            "GET /v1/analytics/patients",
            None,
            Roles(&["admin", "compliance", "analyst"]),
            200,
        ),
        row(
            "GET /v1/analytics/prescriptions",
            None,
            Roles(&["admin", "compliance", "analyst"]),
            200,
        ),
        row(
            "GET /v1/analytics/billing",
            None,
            Roles(&["admin", "compliance", "analyst"]),
            200,
        ),
        row("GET /v1/me/notifications", None, SignedIn, 200),
        // Every account may mark its own notifications read; the row names
        // one that is no one's, so a permitted call is 404 (never 403): a
        // real one is marked in tests/tests/notifications.rs.
        row("POST /v1/me/notifications/{id}/read", None, SignedIn, 404),
        // Deliveries by e-mail and webhook (ADR 0023): admins only. The
        // access test's server has no channel, so the one named is no
        // delivery: a permitted call is 404; real ones in tests/tests/deliveries.rs.
        row("GET /v1/admin/deliveries", None, Roles(&["admin"]), 200),
        row(
            "GET /v1/admin/deliveries/{id}",
            None,
            Roles(&["admin"]),
            404,
        ),
        row("GET /healthz", None, Anyone, 200),
        row("GET /readyz", None, Anyone, 200),
        row("GET /metrics", None, Anyone, 200),
        // Multi-factor authentication (ADR 0025), last: the confirmation
        // leaves every account enrolled, so that a later login of the test
        // would get a challenge. Each account's own enrolment; an admin
        // resets anyone's.
        row("POST /v1/auth/login/mfa", None, Anyone, 200),
        row("POST /v1/me/mfa/totp", None, SignedIn, 200),
        row("POST /v1/me/mfa/totp/disable", None, SignedIn, 200),
        row("POST /v1/me/mfa/totp/confirm", None, SignedIn, 200),
        row(
            "POST /v1/users/{username}/mfa/reset",
            None,
            Roles(&["admin"]),
            200,
        ),
    ]
};

/// The routes the table has rows for.
pub fn routes() -> BTreeSet<String> {
    TABLE.iter().map(|r| r.route.to_owned()).collect()
}

/// The routes an OpenAPI document lists, as `METHOD /path/{param}`.
pub fn documented(doc: &Value) -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|(m, _)| m) {
            routes.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    routes
}

/// What differs between the table and a served document: routes documented
/// without a row, and rows for routes the document does not list.
pub fn differences(doc: &Value) -> Option<String> {
    let (documented, table) = (documented(doc), routes());
    let missing: Vec<&String> = documented.difference(&table).collect();
    let stale: Vec<&String> = table.difference(&documented).collect();
    if missing.is_empty() && stale.is_empty() {
        return None;
    }
    Some(format!(
        "the endpoint × role table (tests/src/access.rs) and the served OpenAPI document \
         disagree: documented routes without a row: {missing:?}; rows for routes the \
         document does not list: {stale:?}"
    ))
}
