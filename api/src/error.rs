//! The one error type of the HTTP API, written as RFC 7807
//! `application/problem+json` with a stable `code`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use anamnesis_commands::dispatch::CommandError;
use anamnesis_commands::identity::{LoginError, RegistrationError};
use anamnesis_commands::StoreError;
use anamnesis_domain::patient::PatientError;
use anamnesis_domain::schedule;
use anamnesis_domain::user::UserError;

/// A problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for a human; never patient data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code.
    pub code: String,
    /// The request field at fault, where one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The appointments a refused closure covers (`closure_over_bookings`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appointments: Option<Vec<String>>,
    /// The recorded allergies a prescription conflicts with (`allergy_conflict`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allergies: Option<Vec<anamnesis_domain::medication::AllergyConflict>>,
}

/// Every way a request can fail.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request could not be read (malformed JSON, wrong type, unknown field).
    BadRequest {
        code: &'static str,
        field: Option<String>,
        detail: String,
    },
    /// 422: well-formed, but a rule refuses it.
    Unprocessable {
        code: &'static str,
        field: Option<String>,
        detail: String,
    },
    /// 401: no usable credentials.
    Unauthorized {
        code: &'static str,
        detail: &'static str,
    },
    /// 403: authenticated, not allowed.
    Forbidden,
    /// 404.
    NotFound,
    /// 409: the record changed under the command after every retry, or a name is taken.
    Conflict { code: &'static str, detail: String },
    /// 409: a closure over booked appointments, naming them.
    OverBookings { appointments: Vec<String> },
    /// 422: a prescription over recorded allergies, naming them.
    AllergyConflict {
        allergies: Vec<anamnesis_domain::medication::AllergyConflict>,
    },
    /// 410: the record's patient was erased (docs/adr/0024-encryption.md).
    Gone,
    /// 413.
    PayloadTooLarge,
    /// 429: over a rate limit (`crate::limits`); try again after this many
    /// seconds.
    RateLimited { retry_after: u64 },
    /// 415.
    UnsupportedMediaType,
    /// 405: the path exists, not with this method (axum adds `Allow`).
    MethodNotAllowed,
    /// 503: the service cannot do this now (the log failed an integrity
    /// check, the database does not answer).
    Unavailable { code: &'static str, detail: String },
    /// 503: the read model has not reached the requested position in time.
    NotCaughtUp { position: i64, reached: i64 },
    /// 500: logged, never detailed to the client.
    Internal(String),
    /// Not a failure: a command with this idempotency key committed before;
    /// answered with its first outcome.
    Replay(anamnesis_commands::Outcome),
}

impl ApiError {
    /// The HTTP status of each variant.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } | ApiError::AllergyConflict { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } | ApiError::OverBookings { .. } => StatusCode::CONFLICT,
            ApiError::Gone => StatusCode::GONE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotCaughtUp { .. } | ApiError::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Replay(o) => StatusCode::from_u16(o.status).unwrap_or(StatusCode::OK),
        }
    }

    fn parts(&self) -> (&'static str, Option<String>, Option<String>) {
        match self {
            ApiError::BadRequest {
                code,
                field,
                detail,
            }
            | ApiError::Unprocessable {
                code,
                field,
                detail,
            } => (code, field.clone(), Some(detail.clone())),
            ApiError::Unauthorized { code, detail } => (code, None, Some((*detail).to_owned())),
            ApiError::Forbidden => ("forbidden", None, Some("your role may not do this".into())),
            ApiError::NotFound => ("not_found", None, None),
            ApiError::Conflict { code, detail } | ApiError::Unavailable { code, detail } => {
                (code, None, Some(detail.clone()))
            }
            ApiError::OverBookings { appointments } => (
                "closure_over_bookings",
                None,
                Some(format!(
                    "the closure covers {} booked appointment(s); cancel them, or send \
                     cancel_affected: true to have the clinic cancel them",
                    appointments.len()
                )),
            ),
            ApiError::AllergyConflict { allergies } => (
                "allergy_conflict",
                Some("order.medication".into()),
                Some(format!(
                    "the medication conflicts with {} recorded allerg{} (listed in allergies); \
                     prescribe with allergy_override_reason if intended",
                    allergies.len(),
                    if allergies.len() == 1 { "y" } else { "ies" }
                )),
            ),
            ApiError::Gone => (
                "patient_erased",
                None,
                Some(
                    "the patient was erased; their record can no longer be read or changed".into(),
                ),
            ),
            ApiError::PayloadTooLarge => ("body_too_large", None, None),
            ApiError::RateLimited { retry_after } => (
                "rate_limited",
                None,
                Some(format!("too many requests; retry after {retry_after} s")),
            ),
            ApiError::UnsupportedMediaType => (
                "unsupported_media_type",
                None,
                Some("send application/json".into()),
            ),
            ApiError::MethodNotAllowed => (
                "method_not_allowed",
                None,
                Some("this path does not take that method".into()),
            ),
            ApiError::NotCaughtUp { position, reached } => (
                "not_caught_up",
                None,
                Some(format!(
                    "the read model is at position {reached}, not yet {position}; retry shortly"
                )),
            ),
            ApiError::Internal(_) => ("internal", None, None),
            ApiError::Replay(_) => ("replayed", None, None),
        }
    }

    /// A rule violation on `field`.
    pub fn invalid(code: &'static str, field: Option<&str>, detail: impl ToString) -> Self {
        ApiError::Unprocessable {
            code,
            field: field.map(str::to_owned),
            detail: detail.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Replay(outcome) = &self {
            return crate::idempotency::replay(outcome);
        }
        let status = self.status_code();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let (code, field, detail) = self.parts();
        let problem = Problem {
            kind: format!("/problems/{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            field,
            appointments: match &self {
                ApiError::OverBookings { appointments } => Some(appointments.clone()),
                _ => None,
            },
            allergies: match &self {
                ApiError::AllergyConflict { allergies } => Some(allergies.clone()),
                _ => None,
            },
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::Unauthorized { .. } => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::NotCaughtUp { .. } | ApiError::Unavailable { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RateLimited { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            _ => {}
        }
        response
    }
}

/// A domain's rule violations as problems: each domain error type says
/// once, here at the HTTP edge, which stable code (and field) each of its
/// variants is. Every command failure of a domain whose error implements
/// it maps to a problem through the one `From<CommandError<E>>` below.
pub trait Rule: std::error::Error + Sized {
    fn problem(self) -> ApiError;
}

impl<E: Rule> From<CommandError<E>> for ApiError {
    fn from(e: CommandError<E>) -> Self {
        command_failure(e)
    }
}

/// Command failures that are not rule violations.
fn command_failure<E: Rule>(e: CommandError<E>) -> ApiError {
    match e {
        CommandError::Rejected(e) => e.problem(),
        CommandError::Conflict => ApiError::Conflict {
            code: "conflict",
            detail: "the record kept changing; try again".into(),
        },
        CommandError::Taken { scope } => ApiError::Conflict {
            code: taken_code(scope),
            detail: taken_detail(scope).into(),
        },
        CommandError::Busy => busy(),
        CommandError::Repeated(outcome) => ApiError::Replay(outcome),
        CommandError::Invalid(why) => ApiError::Internal(why.to_owned()),
        CommandError::Store(store) => store.into(),
        CommandError::Erased => ApiError::Gone,
        other => ApiError::Internal(other.to_string()),
    }
}

/// Password hashing is saturated: come back in a second.
fn busy() -> ApiError {
    ApiError::Unavailable {
        code: "busy",
        detail: "too many logins at once; retry shortly".into(),
    }
}

/// The problem code for a unique value held by another record.
fn taken_code(scope: &str) -> &'static str {
    match scope {
        anamnesis_domain::patient::IDENTIFIER_SCOPE => "identifier_taken",
        anamnesis_domain::user::USERNAME_SCOPE => "username_taken",
        schedule::PROVIDER_SCOPE => "slot_taken",
        schedule::PATIENT_SCOPE => "patient_double_booked",
        schedule::USER_SCOPE => "already_a_provider",
        anamnesis_domain::medication::ACTIVE_SCOPE => "duplicate_medication",
        anamnesis_domain::billing::APPOINTMENT_SCOPE => "appointment_billed",
        _ => "already_taken",
    }
}

/// What a client is told about a unique value held by another record.
fn taken_detail(scope: &str) -> &'static str {
    match scope {
        schedule::PROVIDER_SCOPE => "the provider is already booked at that time",
        schedule::PATIENT_SCOPE => "the patient already has an appointment at that time",
        schedule::USER_SCOPE => "this user is already a provider",
        anamnesis_domain::billing::APPOINTMENT_SCOPE => {
            "the appointment has a bill already; void it to bill the visit again"
        }
        anamnesis_domain::medication::ACTIVE_SCOPE => {
            "the patient already has this medication active; change its dose or discontinue it"
        }
        _ => "this value already belongs to another record",
    }
}

/// The stable code and field of each scheduling rule.
pub(crate) fn schedule_rule(e: schedule::ScheduleError) -> ApiError {
    use schedule::ScheduleError as S;
    let (code, field) = match &e {
        S::EmptyField(f) => ("empty_field", Some(*f)),
        S::TooLong(f) => ("too_long", Some(*f)),
        S::InvalidCharacters(f) => ("invalid_characters", Some(*f)),
        S::OffGrain(f) => ("off_grain", Some(*f)),
        S::InvalidSlotLength => ("invalid_slot_length", Some("slot_minutes")),
        S::InvalidDefaultLength => ("invalid_default_length", Some("default_minutes")),
        S::EffectiveDatesReversed => ("effective_dates_reversed", Some("effective_to")),
        S::DayTwice => ("day_twice", Some("hours")),
        S::InvalidInterval => ("invalid_interval", Some("hours")),
        S::OverlappingHours => ("overlapping_hours", Some("hours")),
        S::InvalidPeriod => ("invalid_period", Some("ends_at")),
        S::ClosureTooLong => ("closure_too_long", None),
        S::InThePast => ("in_the_past", Some("starts_at")),
        S::TooFarAhead => ("too_far_ahead", Some("starts_at")),
        S::NotAClinician => ("not_a_clinician", Some("user_id")),
        S::UnknownUser => ("unknown_user", Some("user_id")),
        S::AlreadyEnrolled => ("already_enrolled", None),
        S::UnknownProvider => ("unknown_provider", Some("provider_id")),
        S::UnknownClosure => return ApiError::NotFound,
        S::UnknownPatient => ("unknown_patient", Some("patient_id")),
        S::PatientDeceased => ("patient_deceased", Some("patient_id")),
        S::ProviderInactive => ("provider_inactive", Some("provider_id")),
        S::OutsideWorkingHours => ("outside_working_hours", Some("starts_at")),
        S::Closed { .. } => ("closed", Some("starts_at")),
        S::UnknownAppointment => return ApiError::NotFound,
        S::AlreadyBooked => ("already_booked", None),
        S::InvalidTransition { .. } => ("invalid_transition", None),
        S::NotStartedYet => ("not_started_yet", None),
        S::AlreadyBegun => ("already_begun", None),
        S::OverBookings { appointments } => {
            return ApiError::OverBookings {
                appointments: appointments.iter().map(|a| a.to_string()).collect(),
            }
        }
    };
    ApiError::invalid(code, field, e)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Integrity(detail) => {
                // The operator's message goes to the log; the client learns
                // only that writes are stopped.
                tracing::error!(%detail, "append refused: event log integrity");
                ApiError::Unavailable {
                    code: "log_integrity",
                    detail: "the event log failed an integrity check; writes are stopped \
                             until an operator resolves it"
                        .into(),
                }
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "append refused: database unavailable");
                ApiError::Unavailable {
                    code: "database_unavailable",
                    detail: "the database did not answer in time; retry shortly".into(),
                }
            }
            StoreError::Database(e) if unavailable(&e) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::Unavailable {
                    code: "database_unavailable",
                    detail: "the database did not answer in time; retry shortly".into(),
                }
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A database failure that says nothing about the request: retrying later
/// may work (503), unlike a bug (500).
fn unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => true,
        // lock_not_available (lock_timeout), SQLite busy/locked.
        sqlx::Error::Database(d) => matches!(d.code().as_deref(), Some("55P03" | "5" | "6")),
        _ => false,
    }
}

impl Rule for PatientError {
    fn problem(self) -> ApiError {
        patient_rule(self)
    }
}

impl Rule for UserError {
    fn problem(self) -> ApiError {
        user_rule(self)
    }
}

impl Rule for RegistrationError {
    fn problem(self) -> ApiError {
        match self {
            RegistrationError::User(u) => u.problem(),
            RegistrationError::Patient(p) => p.problem(),
        }
    }
}

/// The stable code and field of each patient rule.
fn patient_rule(e: PatientError) -> ApiError {
    use PatientError as P;
    let (code, field) = match &e {
        P::AlreadyRegistered => ("already_registered", None),
        P::NotRegistered => return ApiError::NotFound,
        P::EmptyField(f) => ("empty_field", Some(*f)),
        P::TooLong(f) => ("too_long", Some(*f)),
        P::Malformed(f) => ("malformed", Some(*f)),
        P::BornInTheFuture => ("born_in_the_future", Some("birth_date")),
        P::ImplausibleBirthDate => ("implausible_birth_date", Some("birth_date")),
        P::DateInTheFuture(f) => ("date_in_the_future", Some(*f)),
        P::DuplicateIdentifierSystem => ("duplicate_identifier_system", Some("identifiers")),
        P::InvalidCharacters(f) => ("invalid_characters", Some(*f)),
        P::ImplausibleDate(f) => ("implausible_date", Some(*f)),
        P::BeforeBirth(f) => ("before_birth", Some(*f)),
        P::UnknownAllergy => return ApiError::NotFound,
        P::DuplicateAllergy => ("duplicate_allergy", Some("substance")),
        P::UnknownCondition => return ApiError::NotFound,
        P::ConditionAlreadyResolved => ("condition_already_resolved", None),
        P::ResolvedBeforeOnset => ("resolved_before_onset", Some("resolved_on")),
        P::AlreadyDeceased => ("already_deceased", None),
        P::DeathBeforeBirth => ("death_before_birth", Some("deceased_on")),
        P::Deceased => ("patient_deceased", None),
        P::Erased => return ApiError::Gone,
    };
    ApiError::invalid(code, field, e)
}

/// The stable code and field of each user rule.
fn user_rule(e: UserError) -> ApiError {
    use UserError as U;
    let (code, field) = match &e {
        U::AlreadyExists => {
            return ApiError::Conflict {
                code: "username_taken",
                detail: e.to_string(),
            }
        }
        U::NotFound | U::UnknownSession => return ApiError::NotFound,
        U::InvalidUsername => ("invalid_username", Some("username")),
        U::UnknownRole => ("unknown_role", Some("role")),
        U::PasswordTooShort => ("password_too_short", Some("password")),
        U::PasswordTooLong => ("password_too_long", Some("password")),
        U::Deactivated => ("deactivated", None),
        U::AlreadyActive => ("already_active", None),
        U::Locked { .. } => ("login_locked", None),
        U::PatientLink => ("patient_link", Some("role")),
        U::UnknownChallenge => return LoginError::ChallengeClosed.into(),
        U::MfaEnrolmentRequired => return LoginError::MfaEnrolmentRequired.into(),
        U::MfaCodeReplayed | U::RecoveryCodeUsed => return LoginError::InvalidMfaCode.into(),
        U::MfaAlreadyEnrolled => {
            return ApiError::Conflict {
                code: "mfa_already_enrolled",
                detail: e.to_string(),
            }
        }
        U::MfaNotEnrolled => ("mfa_not_enrolled", None),
        U::MfaNotStarted => ("mfa_not_started", None),
        U::MfaRequired => ("mfa_required", None),
    };
    ApiError::invalid(code, field, e)
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::BadCredentials => ApiError::Unauthorized {
                code: "invalid_credentials",
                detail: "wrong username or password",
            },
            LoginError::Deactivated => ApiError::Unauthorized {
                code: "account_deactivated",
                detail: "the account is deactivated",
            },
            // A locked account answers exactly as a wrong password does:
            // the lock is not a way to learn that an account exists.
            LoginError::Locked { .. } => ApiError::Unauthorized {
                code: "invalid_credentials",
                detail: "wrong username or password",
            },
            LoginError::InvalidMfaCode => ApiError::Unauthorized {
                code: "invalid_mfa_code",
                detail: "the code is wrong or was used already",
            },
            LoginError::ChallengeClosed => ApiError::Unauthorized {
                code: "mfa_challenge_closed",
                detail: "the login challenge was answered, has expired or is unknown; log in again",
            },
            LoginError::MfaEnrolmentRequired => ApiError::Unauthorized {
                code: "mfa_enrolment_required",
                detail: "enrol an authenticator with this challenge first (POST /v1/me/mfa/totp)",
            },
            LoginError::Busy(_) => busy(),
            LoginError::Command(c) => c.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e).into()
    }
}

/// The stable code and field of each clinical-record rule.
impl Rule for anamnesis_domain::chart::ChartError {
    fn problem(self) -> ApiError {
        use anamnesis_domain::chart::ChartError as C;
        let (code, field) = match &self {
            C::EmptyField(f) => ("empty_field", Some(*f)),
            C::TooLong(f) => ("too_long", Some(*f)),
            C::InvalidCharacters(f) => ("invalid_characters", Some(*f)),
            C::Implausible { field, .. } => ("implausible_value", Some(*field)),
            C::BloodPressure => ("invalid_blood_pressure", Some("systolic_mmhg")),
            C::NoMeasurement => ("no_measurement", None),
            C::EmptyNote => ("empty_note", None),
            C::InvalidCode(f) => ("invalid_code", Some(*f)),
            C::NotANumber(f) => ("not_a_number", Some(*f)),
            C::ImplausibleTime(f) => ("implausible_time", Some(*f)),
            C::NotANote => ("not_a_note", Some("kind")),
            C::NoteMustBeDrafted => ("note_must_be_drafted", Some("kind")),
            C::DocumentMustBeUploaded => ("document_must_be_uploaded", Some("kind")),
            C::KindChanged(_) => ("kind_changed", Some("kind")),
            C::NotAmendable => ("not_amendable", None),
            C::UnknownEntry => return ApiError::NotFound,
            C::AlreadyExists => ("already_exists", None),
            C::NotADraft => ("not_a_draft", None),
            C::StillADraft => ("still_a_draft", None),
            C::Withdrawn => ("entered_in_error", None),
            C::AlreadyMember => {
                return ApiError::Conflict {
                    code: "already_member",
                    detail: self.to_string(),
                }
            }
            C::NotMember => return ApiError::NotFound,
            C::NotAClinician => ("not_a_clinician", Some("user_id")),
            C::InvalidDuration => ("invalid_duration", None),
        };
        ApiError::invalid(code, field, self)
    }
}

/// The stable code and field of each prescription rule.
impl Rule for anamnesis_domain::medication::MedicationError {
    fn problem(self) -> ApiError {
        use anamnesis_domain::medication::MedicationError as M;
        let (code, field) = match &self {
            M::EmptyField(f) => ("empty_field", Some(*f)),
            M::TooLong(f) => ("too_long", Some(*f)),
            M::InvalidCharacters(f) => ("invalid_characters", Some(*f)),
            M::InvalidRxNorm => ("invalid_code", Some("medication.rxnorm")),
            M::InvalidDose => ("invalid_dose", Some("dose.amount")),
            M::InvalidFrequency(_) => ("invalid_frequency", Some("frequency")),
            M::InvalidPeriod(_) => ("invalid_period", None),
            M::InvalidRefills => ("invalid_refills", Some("refills")),
            M::AllergyConflict(allergies) => {
                return ApiError::AllergyConflict {
                    allergies: allergies.clone(),
                }
            }
            M::UnknownPatient | M::UnknownMedication => return ApiError::NotFound,
            M::PatientDeceased => ("patient_deceased", None),
            M::AlreadyExists => ("already_exists", None),
            M::NotActive => ("medication_not_active", None),
            M::Unchanged => ("unchanged", Some("dose")),
            M::RefillPending => {
                return ApiError::Conflict {
                    code: "refill_pending",
                    detail: self.to_string(),
                }
            }
            M::NoRefillRequest => {
                return ApiError::Conflict {
                    code: "no_refill_request",
                    detail: self.to_string(),
                }
            }
            M::NoRefillsLeft => ("no_refills_left", None),
            M::ImplausibleTime => ("implausible_time", Some("at")),
            M::OutsideCourse => ("outside_course", Some("at")),
            M::ReasonRequired => ("empty_field", Some("note")),
        };
        ApiError::invalid(code, field, self)
    }
}

/// The stable code and field of each messaging rule.
impl Rule for anamnesis_domain::messaging::MessagingError {
    fn problem(self) -> ApiError {
        use anamnesis_domain::messaging::MessagingError as M;
        let (code, field) = match &self {
            M::EmptyField(f) => ("empty_field", Some(*f)),
            M::TooLong(f) => ("too_long", Some(*f)),
            M::InvalidCharacters(f) => ("invalid_characters", Some(*f)),
            M::AlreadyExists => ("already_exists", None),
            M::UnknownThread => return ApiError::NotFound,
            M::NoPatient => ("no_patient", Some("patient_id")),
            M::NoCounterpart => ("no_counterpart", Some("participants")),
            M::NotEligible => ("not_eligible", Some("participants")),
            M::TooManyParticipants(_) => ("too_many_participants", Some("participants")),
            M::ThreadFull(_) => ("thread_full", None),
            M::AlreadyParticipant => {
                return ApiError::Conflict {
                    code: "already_participant",
                    detail: self.to_string(),
                }
            }
            M::NotAParticipant => return ApiError::Forbidden,
            M::UnknownMessage => ("unknown_message", Some("up_to")),
        };
        ApiError::invalid(code, field, self)
    }
}

/// The stable code and field of each billing rule.
impl Rule for anamnesis_domain::billing::BillingError {
    fn problem(self) -> ApiError {
        use anamnesis_domain::billing::BillingError as B;
        let (code, field) = match &self {
            B::EmptyField(f) => ("empty_field", Some(*f)),
            B::TooLong(f) => ("too_long", Some(*f)),
            B::InvalidCharacters(f) => ("invalid_characters", Some(*f)),
            B::InvalidAmount(f) => ("invalid_amount", Some(*f)),
            B::Overflow => ("amount_overflow", None),
            B::InvalidCurrency => ("invalid_currency", Some("currency")),
            B::InvalidCode(f) => ("invalid_code", Some(*f)),
            B::InvalidQuantity => ("invalid_quantity", Some("quantity")),
            B::ImplausibleDate(f) => ("implausible_date", Some(*f)),
            B::InvalidPeriod => ("invalid_period", Some("valid_to")),
            B::UnknownCode => ("unknown_code", Some("code")),
            B::UnknownBill | B::UnknownLine | B::UnknownClaim | B::UnknownPayment => {
                return ApiError::NotFound
            }
            B::AlreadyExists => {
                return ApiError::Conflict {
                    code: "already_exists",
                    detail: self.to_string(),
                }
            }
            B::UnknownAppointment => ("unknown_appointment", Some("appointment_id")),
            B::AppointmentCancelled => ("appointment_cancelled", Some("appointment_id")),
            B::CoverageClaimed => {
                return ApiError::Conflict {
                    code: "coverage_claimed",
                    detail: self.to_string(),
                }
            }
            B::NotADraft => ("not_a_draft", None),
            B::NoLines => ("no_lines", None),
            B::TooManyLines => ("too_many_lines", None),
            B::NotIssued => ("not_issued", None),
            B::Void => ("bill_void", None),
            B::ClaimsOnBill => ("claims_on_bill", None),
            B::UnknownCoverage => ("unknown_coverage", Some("coverage_id")),
            B::CoverageEnded => ("coverage_ended", Some("coverage_id")),
            B::CoverageNotValid => ("coverage_not_valid", Some("coverage_id")),
            B::RankTaken => ("rank_taken", Some("rank")),
            B::ClaimState { .. } => ("claim_state", None),
            B::ReasonCodesRequired => ("reason_codes_required", Some("reason_codes")),
            B::MoreThanClaimed => ("more_than_claimed", Some("paid")),
            B::MoreThanOwed(f) => ("more_than_owed", Some(*f)),
            B::MoreThanPaid => ("more_than_paid", Some("amount")),
        };
        ApiError::invalid(code, field, self)
    }
}
