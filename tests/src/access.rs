//! The endpoint × role table: for every route of the served OpenAPI document,
//! who may call it and what a permitted call answers. It is the one hand-kept
//! list of routes in the tests: `tests/tests/access.rs` runs it against a
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

/// Whose patient record a route's `{id}` names.
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
}

/// One row: a route as the document names it (`METHOD /path/{param}`), the
/// record it acts on, who may call it, and the status a permitted call gets.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub route: &'static str,
    pub record: Record,
    pub who: Who,
    pub ok: u16,
}

const fn row(route: &'static str, record: Record, who: Who, ok: u16) -> Row {
    Row {
        route,
        record,
        who,
        ok,
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
    use Record::*;
    use Who::*;
    const CLINICAL_READERS: Who = Roles(&["doctor", "nurse", "staff", "compliance"]);
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
        row("GET /healthz", None, Anyone, 200),
        row("GET /readyz", None, Anyone, 200),
        row("GET /metrics", None, Anyone, 200),
    ]
};

impl Row {
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
