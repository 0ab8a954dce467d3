//! The analyst API (ADR 0021): de-identified counts, sums and rates from
//! the analytics projector, as JSON or CSV (`Accept: text/csv` or
//! `?format=csv`). Every cell behind 1 to 4 distinct patients is
//! suppressed: `{"value": null, "suppressed": true}` in JSON, an empty
//! field named in the `suppressed` column in CSV. No answer names a
//! patient, so none is recorded in the access log.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use anamnesis_projections::analytics::{
    self as read_model, AppointmentGroup, AppointmentRow, BillingGroup, BillingRow, PatientGroup,
    PatientRow, PrescriptionRow, THRESHOLD,
};

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::extract::{bad_param, bad_query, parse_iso_date, MinPosition};
use crate::policy::{authorize, Action, Context};
use crate::state::AppState;

/// The longest date range one question may cover, in days (both ends in).
pub const MAX_RANGE_DAYS: i64 = 731;

/// A range of local dates, both ends included.
fn range(from: Option<String>, to: Option<String>) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let date = |field: &str, raw: Option<String>| {
        let raw = raw.ok_or_else(|| bad_param(field, "from and to are required (YYYY-MM-DD)"))?;
        parse_iso_date(&raw).ok_or_else(|| bad_param(field, "a date is YYYY-MM-DD"))
    };
    let (from, to) = (date("from", from)?, date("to", to)?);
    let invalid = |detail: String| ApiError::BadRequest {
        code: "invalid_range",
        field: Some("to".into()),
        detail,
    };
    if to < from {
        return Err(invalid("to is before from".into()));
    }
    if (to - from).num_days() + 1 > MAX_RANGE_DAYS {
        return Err(invalid(format!(
            "a range covers at most {MAX_RANGE_DAYS} days"
        )));
    }
    Ok((from, to))
}

/// Whether the caller asked for CSV (`format` wins over `Accept`).
fn wants_csv(format: Option<&str>, headers: &HeaderMap) -> Result<bool, ApiError> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(_) => Err(bad_param("format", "format is json or csv")),
        None => Ok(headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|m| m.split(';').next().map(str::trim) == Some("text/csv"))),
    }
}

/// The rows as CSV: the group's column, `columns` in order (a cell's
/// value, empty when suppressed or undefined), then `suppressed`: the
/// columns of the row that are suppressed, separated by `;`.
fn csv(key_column: &str, columns: &[&str], rows: &[Value]) -> Result<Response, ApiError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| ApiError::Internal(format!("writing CSV: {e}"));
    let mut header = vec![key_column];
    header.extend_from_slice(columns);
    header.push("suppressed");
    out.write_record(&header).map_err(failed)?;
    for row in rows {
        let mut record = vec![row["key"].as_str().unwrap_or_default().to_owned()];
        let mut suppressed = Vec::new();
        for &column in columns {
            let cell = &row[column];
            if cell["suppressed"].as_bool() == Some(true) {
                suppressed.push(column);
            }
            record.push(match &cell["value"] {
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            });
        }
        record.push(suppressed.join(";"));
        out.write_record(&record).map_err(failed)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| ApiError::Internal(format!("writing CSV: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        )],
        bytes,
    )
        .into_response())
}

/// The report as JSON, or its rows as CSV.
fn answer<R: Serialize, T: Serialize>(
    report: R,
    rows: &[T],
    as_csv: bool,
    (key_column, columns): (&str, &[&str]),
) -> Result<Response, ApiError> {
    if !as_csv {
        return Ok(Json(report).into_response());
    }
    let rows: Vec<Value> = rows
        .iter()
        .map(serde_json::to_value)
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::Internal(format!("a row as JSON: {e}")))?;
    csv(key_column, columns, &rows)
}

// --- appointments --------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AppointmentParams {
    /// `YYYY-MM-DD`: first local day of the range (required).
    #[param(value_type = String, format = Date)]
    pub from: Option<String>,
    /// `YYYY-MM-DD`: last local day of the range (required; at most 731 days in all).
    #[param(value_type = String, format = Date)]
    pub to: Option<String>,
    /// day (default), provider or specialty.
    pub group_by: Option<String>,
    /// json (default) or csv.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppointmentReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// day, provider or specialty.
    pub group_by: String,
    /// Cells behind fewer distinct patients than this (and more than none) are suppressed.
    pub threshold: i64,
    pub rows: Vec<AppointmentRow>,
}

const APPOINTMENT_COLUMNS: &[&str] = &[
    "patients",
    "appointments",
    "completed",
    "cancelled",
    "late_cancelled",
    "no_show",
    "open",
    "completion_rate",
    "cancellation_rate",
    "late_cancellation_rate",
    "no_show_rate",
    "avg_lead_days",
];

/// Appointments by the local day of their start, provider or specialty:
/// how many, what became of them (rates over those completed, cancelled or
/// missed), and the mean days from booking to start.
#[utoipa::path(get, path = "/v1/analytics/appointments", tag = "analytics", security(("bearer" = [])),
    params(AppointmentParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, description = "JSON, or CSV when asked",
                content((AppointmentReport = "application/json"), (String = "text/csv"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn appointment_analytics(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    headers: HeaderMap,
    params: Result<Query<AppointmentParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&who, Action::ReadAnalytics, &Context::NONE)?;
    let Query(p) =
        params.map_err(|_| bad_query("query parameters are from, to, group_by, format"))?;
    let (from, to) = range(p.from, p.to)?;
    let (group, name) = match p.group_by.as_deref().unwrap_or("day") {
        "day" => (AppointmentGroup::Day, "day"),
        "provider" => (AppointmentGroup::Provider, "provider_id"),
        "specialty" => (AppointmentGroup::Specialty, "specialty"),
        _ => {
            return Err(bad_param(
                "group_by",
                "group_by is day, provider or specialty",
            ))
        }
    };
    let as_csv = wants_csv(p.format.as_deref(), &headers)?;
    min.wait(state.progress(read_model::NAME)).await?;
    let rows = read_model::appointments(state.reads(), from, to, group).await?;
    let report = AppointmentReport {
        from,
        to,
        group_by: p.group_by.unwrap_or_else(|| "day".into()),
        threshold: THRESHOLD,
        rows: rows.clone(),
    };
    answer(report, &rows, as_csv, (name, APPOINTMENT_COLUMNS))
}

// --- patients ------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PatientParams {
    /// age_band (default), sex or region.
    pub group_by: Option<String>,
    /// json (default) or csv.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PatientReport {
    /// age_band, sex or region.
    pub group_by: String,
    pub threshold: i64,
    pub rows: Vec<PatientRow>,
}

/// Living patients by age band (0-17, 18-34, 35-49, 50-64, 65-79, 80+, at
/// their latest demographics), sex, or region (the first three characters
/// of the postal code).
#[utoipa::path(get, path = "/v1/analytics/patients", tag = "analytics", security(("bearer" = [])),
    params(PatientParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, description = "JSON, or CSV when asked",
                content((PatientReport = "application/json"), (String = "text/csv"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn patient_analytics(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    headers: HeaderMap,
    params: Result<Query<PatientParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&who, Action::ReadAnalytics, &Context::NONE)?;
    let Query(p) = params.map_err(|_| bad_query("query parameters are group_by, format"))?;
    let (group, name) = match p.group_by.as_deref().unwrap_or("age_band") {
        "age_band" => (PatientGroup::AgeBand, "age_band"),
        "sex" => (PatientGroup::Sex, "sex"),
        "region" => (PatientGroup::Region, "region"),
        _ => return Err(bad_param("group_by", "group_by is age_band, sex or region")),
    };
    let as_csv = wants_csv(p.format.as_deref(), &headers)?;
    min.wait(state.progress(read_model::NAME)).await?;
    let rows = read_model::patients(state.reads(), group).await?;
    let report = PatientReport {
        group_by: name.to_owned(),
        threshold: THRESHOLD,
        rows: rows.clone(),
    };
    answer(report, &rows, as_csv, (name, &["patients"]))
}

// --- prescriptions ---------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PrescriptionParams {
    /// `YYYY-MM-DD`: first local day prescribed on (required).
    #[param(value_type = String, format = Date)]
    pub from: Option<String>,
    /// `YYYY-MM-DD`: last local day prescribed on (required).
    #[param(value_type = String, format = Date)]
    pub to: Option<String>,
    /// json (default) or csv.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrescriptionReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub threshold: i64,
    pub rows: Vec<PrescriptionRow>,
}

/// Prescriptions by drug class (the built-in class table; `other` for
/// drugs it does not know), with how many are still active or were
/// discontinued.
#[utoipa::path(get, path = "/v1/analytics/prescriptions", tag = "analytics", security(("bearer" = [])),
    params(PrescriptionParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, description = "JSON, or CSV when asked",
                content((PrescriptionReport = "application/json"), (String = "text/csv"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn prescription_analytics(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    headers: HeaderMap,
    params: Result<Query<PrescriptionParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&who, Action::ReadAnalytics, &Context::NONE)?;
    let Query(p) = params.map_err(|_| bad_query("query parameters are from, to, format"))?;
    let (from, to) = range(p.from, p.to)?;
    let as_csv = wants_csv(p.format.as_deref(), &headers)?;
    min.wait(state.progress(read_model::NAME)).await?;
    let rows = read_model::prescriptions(state.reads(), from, to).await?;
    let report = PrescriptionReport {
        from,
        to,
        threshold: THRESHOLD,
        rows: rows.clone(),
    };
    let columns = [
        "patients",
        "prescriptions",
        "active",
        "discontinued",
        "completed",
    ];
    answer(report, &rows, as_csv, ("drug_class", &columns))
}

// --- billing -------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BillingParams {
    /// `YYYY-MM-DD`: first date of service (required).
    #[param(value_type = String, format = Date)]
    pub from: Option<String>,
    /// `YYYY-MM-DD`: last date of service (required).
    #[param(value_type = String, format = Date)]
    pub to: Option<String>,
    /// month (default) or payer.
    pub group_by: Option<String>,
    /// json (default) or csv.
    pub format: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BillingReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// month or payer.
    pub group_by: String,
    /// The clinic's currency: every amount is an integer of its minor units.
    pub currency: String,
    pub threshold: i64,
    pub rows: Vec<BillingRow>,
}

const BILLING_COLUMNS: &[&str] = &[
    "patients",
    "bills",
    "billed",
    "patient_paid",
    "adjusted",
    "receivable",
    "claims",
    "claimed",
    "payer_paid",
    "approved",
    "denied",
    "pending",
    "pending_amount",
    "approval_rate",
    "denial_rate",
];

/// Revenue, collections, receivables and claims by month of service, or
/// claims by payer (approval and denial rates over adjudicated claims).
/// Amounts are integers of minor units.
#[utoipa::path(get, path = "/v1/analytics/billing", tag = "analytics", security(("bearer" = [])),
    params(BillingParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, description = "JSON, or CSV when asked",
                content((BillingReport = "application/json"), (String = "text/csv"))),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn billing_analytics(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    headers: HeaderMap,
    params: Result<Query<BillingParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&who, Action::ReadAnalytics, &Context::NONE)?;
    let Query(p) =
        params.map_err(|_| bad_query("query parameters are from, to, group_by, format"))?;
    let (from, to) = range(p.from, p.to)?;
    let (group, name) = match p.group_by.as_deref().unwrap_or("month") {
        "month" => (BillingGroup::Month, "month"),
        "payer" => (BillingGroup::Payer, "payer"),
        _ => return Err(bad_param("group_by", "group_by is month or payer")),
    };
    let as_csv = wants_csv(p.format.as_deref(), &headers)?;
    min.wait(state.progress(read_model::NAME)).await?;
    let rows = read_model::billing(state.reads(), from, to, group).await?;
    let report = BillingReport {
        from,
        to,
        group_by: name.to_owned(),
        currency: state.billing().currency().to_string(),
        threshold: THRESHOLD,
        rows: rows.clone(),
    };
    // By payer, the bills' own columns do not apply and are left out.
    let columns: Vec<&str> = BILLING_COLUMNS
        .iter()
        .copied()
        .filter(|c| {
            group == BillingGroup::Month
                || !matches!(
                    *c,
                    "bills" | "billed" | "patient_paid" | "adjusted" | "receivable"
                )
        })
        .collect();
    answer(report, &rows, as_csv, (name, &columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reversed_or_too_long_range_is_refused() {
        let d = |s: &str| Some(s.to_owned());
        assert!(range(d("2026-01-01"), d("2026-12-31")).is_ok());
        assert!(range(d("2026-02-01"), d("2026-01-31")).is_err());
        assert!(range(d("2024-01-01"), d("2026-01-02")).is_err());
        assert!(range(None, d("2026-01-02")).is_err());
        assert!(range(d("2026-13-01"), d("2026-12-02")).is_err());
    }

    #[test]
    fn csv_is_asked_for_by_format_or_accept() {
        let mut headers = HeaderMap::new();
        assert!(!wants_csv(None, &headers).unwrap());
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json;q=0.5, text/csv"),
        );
        assert!(wants_csv(None, &headers).unwrap());
        assert!(!wants_csv(Some("json"), &headers).unwrap());
        assert!(wants_csv(Some("csv"), &HeaderMap::new()).unwrap());
        assert!(wants_csv(Some("xml"), &headers).is_err());
    }
}
