//! The HTTP routes, each documented in the OpenAPI document it is registered with.

pub mod access_log;
pub mod analytics;
pub mod auth;
pub mod billing;
pub mod cards;
pub mod chart;
pub mod compliance;
pub mod deliveries;
pub mod medications;
pub mod messaging;
pub mod mfa;
pub mod notifications;
pub mod ops;
pub mod patients;
pub mod schedule;
pub mod users;

use serde::Serialize;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// What every command answers: the id it acted on and the global position of
/// its last event, to pass back as `X-Min-Position` for read-your-writes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub id: String,
    pub position: i64,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Anamnesis", description = "Event-sourced clinical records: command and query API."),
    components(schemas(crate::error::Problem)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every route, with its OpenAPI description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::register))
        .routes(routes!(auth::change_password))
        .routes(routes!(mfa::login_mfa))
        .routes(routes!(mfa::start_enrolment))
        .routes(routes!(mfa::confirm_enrolment))
        .routes(routes!(mfa::disable))
        .routes(routes!(mfa::reset))
        .routes(routes!(users::create_user))
        .routes(routes!(users::deactivate))
        .routes(routes!(users::reactivate))
        .routes(routes!(
            patients::register_patient,
            patients::search_patients
        ))
        .routes(routes!(patients::get_patient))
        .routes(routes!(cards::patient_card))
        .routes(routes!(patients::update_demographics))
        .routes(routes!(patients::record_allergy))
        .routes(routes!(patients::remove_allergy))
        .routes(routes!(patients::add_condition))
        .routes(routes!(patients::resolve_condition))
        .routes(routes!(patients::mark_deceased))
        .routes(routes!(schedule::enroll_provider, schedule::list_providers))
        .routes(routes!(schedule::get_provider))
        .routes(routes!(schedule::set_availability))
        .routes(routes!(schedule::add_time_off))
        .routes(routes!(schedule::remove_time_off))
        .routes(routes!(schedule::add_holiday))
        .routes(routes!(schedule::remove_holiday))
        .routes(routes!(schedule::provider_slots))
        .routes(routes!(schedule::next_slots))
        .routes(routes!(
            schedule::book_appointment,
            schedule::list_appointments
        ))
        .routes(routes!(schedule::overbook_appointment))
        .routes(routes!(schedule::get_appointment))
        .routes(routes!(schedule::cancel_appointment))
        .routes(routes!(schedule::reschedule_appointment))
        .routes(routes!(schedule::check_in))
        .routes(routes!(schedule::start_visit))
        .routes(routes!(schedule::complete_visit))
        .routes(routes!(schedule::no_show))
        .routes(routes!(schedule::provider_schedule))
        .routes(routes!(schedule::patient_appointments))
        .routes(routes!(schedule::my_provider))
        .routes(routes!(chart::write_entry, chart::timeline))
        .routes(routes!(chart::upload_document))
        .routes(routes!(chart::get_entry, chart::revise_draft))
        .routes(routes!(chart::entry_versions))
        .routes(routes!(chart::document_content))
        .routes(routes!(chart::sign_note))
        .routes(routes!(chart::amend_entry))
        .routes(routes!(chart::enter_in_error))
        .routes(routes!(chart::care_team, chart::add_member))
        .routes(routes!(chart::remove_member))
        .routes(routes!(chart::break_glass))
        .routes(routes!(chart::list_grants))
        .routes(routes!(medications::prescribe, medications::list))
        .routes(routes!(medications::get_medication))
        .routes(routes!(medications::history))
        .routes(routes!(medications::change_dose))
        .routes(routes!(medications::stop))
        .routes(routes!(medications::request_refill))
        .routes(routes!(medications::decide_refill))
        .routes(routes!(medications::administer))
        .routes(routes!(medications::doses))
        .routes(routes!(notifications::my_notifications))
        .routes(routes!(notifications::mark_notification_read))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(deliveries::get_delivery))
        .routes(routes!(messaging::start_thread))
        .routes(routes!(messaging::get_thread))
        .routes(routes!(messaging::post_message))
        .routes(routes!(messaging::add_participant))
        .routes(routes!(messaging::mark_read))
        .routes(routes!(messaging::archive_thread))
        .routes(routes!(messaging::inbox))
        .routes(routes!(access_log::access_log))
        .routes(routes!(access_log::my_access_log))
        .routes(routes!(billing::list_prices))
        .routes(routes!(billing::set_price))
        .routes(routes!(billing::retire_price))
        .routes(routes!(billing::coverage, billing::add_coverage))
        .routes(routes!(billing::end_coverage))
        .routes(routes!(billing::open_bill, billing::list_bills))
        .routes(routes!(billing::get_bill))
        .routes(routes!(billing::add_line))
        .routes(routes!(billing::remove_line))
        .routes(routes!(billing::issue_bill))
        .routes(routes!(billing::void_bill))
        .routes(routes!(billing::submit_claim))
        .routes(routes!(billing::claim_response))
        .routes(routes!(billing::resubmit_claim))
        .routes(routes!(billing::withdraw_claim))
        .routes(routes!(billing::pay_bill))
        .routes(routes!(billing::settle_payment))
        .routes(routes!(billing::adjust_bill))
        .routes(routes!(billing::refund_bill))
        .routes(routes!(billing::patient_bills))
        .routes(routes!(billing::aging))
        .routes(routes!(analytics::appointment_analytics))
        .routes(routes!(analytics::patient_analytics))
        .routes(routes!(analytics::prescription_analytics))
        .routes(routes!(analytics::billing_analytics))
        .routes(routes!(compliance::patient_history))
        .routes(routes!(compliance::patient_as_of))
        .routes(routes!(compliance::export_patient))
        .routes(routes!(compliance::erase_patient))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
}

/// Completes the document the routes built with what every operation shares
/// and no route states one by one: a description for each response (OpenAPI
/// requires one; a route that states none gets the status's reason phrase);
/// problems as `application/problem+json`, as they are served; the
/// `Idempotency-Key` header on every command that takes one (ADR 0005); and
/// the answers of the layers in front of every handler: `401` for a signed-in
/// operation, `429` where a rate limit applies, `413` and `415` for a body.
pub fn finish(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (false, &mut item.get),
            (true, &mut item.put),
            (true, &mut item.post),
            (true, &mut item.delete),
            (true, &mut item.patch),
        ];
        for (command, operation) in operations {
            if let Some(operation) = operation {
                complete(path, command, operation);
            }
        }
    }
}

/// [`finish`] for one operation on `path`; `command` for any method but GET.
fn complete(path: &str, command: bool, operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::RefOr;
    if command && !crate::idempotency::takes_no_key(path) {
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(RefOr::T(idempotency_key()));
    }
    let signed_in = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut shared: Vec<(&str, &str)> = Vec::new();
    if operation.request_body.is_some() {
        shared.push(("413", "The body is larger than this operation takes."));
        shared.push((
            "415",
            "The body is not of a media type this operation takes.",
        ));
    }
    if signed_in {
        shared.push(("401", "No valid access token, or its session has ended."));
    }
    if signed_in || crate::limits::AUTH_PATHS.contains(&path) {
        shared.push((
            "429",
            "Too many requests; retry after `Retry-After` seconds.",
        ));
    }
    for (status, description) in shared {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem(description)));
    }
    for (status, response) in operation.responses.responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if response.description.is_empty() {
            response.description = status
                .parse::<u16>()
                .ok()
                .and_then(|s| axum::http::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Response")
                .to_owned();
        }
        let failure = status.starts_with('4') || status.starts_with('5');
        if failure {
            if let Some(body) = response.content.shift_remove("application/json") {
                response
                    .content
                    .insert("application/problem+json".to_owned(), body);
            }
        }
    }
}

/// A problem response with `description`.
fn problem(description: &str) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// The optional `Idempotency-Key` header of a command.
fn idempotency_key() -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, Type};
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "1 to 255 visible ASCII characters, the caller's own: a retry with the same \
             key and request answers the first outcome and writes nothing (ADR 0005)",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255)),
        ))
        .build()
}
