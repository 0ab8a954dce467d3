//! Bills as read: one bill, lists with totals, a patient's own, aging.
//! Every read of a patient's bills is recorded in the access log.

use super::*;

// --- reads ----------------------------------------------------------------------

/// One bill with its lines, claims, payments, adjustments and refunds.
#[utoipa::path(get, path = "/v1/bills/{id}", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = BillDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn get_bill(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
) -> Result<Json<BillDetail>, ApiError> {
    let bill_id = id_of(&id)?;
    min.wait(state.progress(read_model::NAME)).await?;
    let detail = read_model::bill(state.reads(), &bill_id.to_string())
        .await?
        .ok_or(ApiError::NotFound)?;
    let patient = ids([detail.bill.patient_id.as_str()])?;
    let context = Context {
        patient: patient.first().copied(),
        ..Context::NONE
    };
    authorize(&who, Action::ReadBill, &context)?;
    record(&state, &who, "GET /v1/bills/{id}", patient).await?;
    Ok(Json(detail))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BillParams {
    /// Bills of this patient.
    pub patient_id: Option<String>,
    /// draft, issued or void.
    pub status: Option<String>,
    /// Bills with a claim to this payer (exact name).
    pub payer: Option<String>,
    /// `YYYY-MM-DD`: date of service at or after.
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// `YYYY-MM-DD`: date of service at or before.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BillPage {
    pub items: Vec<BillSummary>,
    /// The sums over every bill the filters match, not only this page's.
    pub totals: Totals,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn date_param(field: &str, raw: Option<String>) -> Result<Option<NaiveDate>, ApiError> {
    raw.map(|d| parse_iso_date(&d).ok_or_else(|| bad_param(field, "a date is YYYY-MM-DD")))
        .transpose()
}

fn status_param(raw: Option<String>) -> Result<Option<BillStatus>, ApiError> {
    raw.map(|s| match s.as_str() {
        "draft" => Ok(BillStatus::Draft),
        "issued" => Ok(BillStatus::Issued),
        "void" => Ok(BillStatus::Void),
        _ => Err(bad_param("status", "status is draft, issued or void")),
    })
    .transpose()
}

fn bill_cursor(raw: Option<String>) -> Result<Option<(i64, String)>, ApiError> {
    raw.map(|c| {
        c.split_once('_')
            .and_then(|(d, id)| {
                Some((
                    d.parse::<i64>().ok()?,
                    Uuid::parse_str(id).ok()?.to_string(),
                ))
            })
            .ok_or_else(|| bad_param("cursor", "cursor is the next_cursor of a previous page"))
    })
    .transpose()
}

/// Runs a bill query, records the read of every patient on the page.
async fn page(
    state: &AppState,
    who: &Principal,
    (min, what): (MinPosition, &'static str),
    query: BillQuery,
) -> Result<Json<BillPage>, ApiError> {
    min.wait(state.progress(read_model::NAME)).await?;
    let (items, totals, more) = read_model::bills(state.reads(), &query).await?;
    let patients = ids(items.iter().map(|b| b.patient_id.as_str()))?;
    // The totals speak of the patient filtered on, even on an empty page.
    let filtered = query
        .patient_id
        .as_deref()
        .map(|p| ids([p]))
        .transpose()?
        .unwrap_or_default();
    record(state, who, what, patients.into_iter().chain(filtered)).await?;
    let next_cursor = more
        .then(|| items.last())
        .flatten()
        .map(|b| format!("{}_{}", read_model::day_number(b.service_date), b.bill_id));
    Ok(Json(BillPage {
        items,
        totals,
        next_cursor,
    }))
}

/// Bills by patient, status, payer and date of service, newest first, with
/// the totals of all that match (minor units, summed as integers).
#[utoipa::path(get, path = "/v1/bills", tag = "billing", security(("bearer" = [])),
    params(BillParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = BillPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn list_bills(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<BillParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<BillPage>, ApiError> {
    authorize(&who, Action::ListBills, &Context::NONE)?;
    let Query(p) = params.map_err(|_| {
        bad_query("query parameters are patient_id, status, payer, from, to, cursor, limit")
    })?;
    let payer = p
        .payer
        .map(|q| {
            anamnesis_domain::text::parse(&q, anamnesis_domain::text::Lines::Single, 120)
                .map_err(|_| bad_param("payer", "payer is one line of up to 120 characters"))
        })
        .transpose()?;
    let query = BillQuery {
        patient_id: uuid_param("patient_id", p.patient_id)?,
        status: status_param(p.status)?,
        payer,
        from: date_param("from", p.from)?,
        to: date_param("to", p.to)?,
        before: bill_cursor(p.cursor)?,
        limit: page_size(p.limit, 50, 200)?,
    };
    page(&state, &who, (min, "GET /v1/bills"), query).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PatientBillParams {
    /// draft, issued or void.
    pub status: Option<String>,
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
    pub cursor: Option<String>,
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
}

/// A patient's bills, newest first, with their totals (the patient's own).
#[utoipa::path(get, path = "/v1/patients/{id}/bills", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), PatientBillParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = BillPage), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 503, body = Problem)))]
pub async fn patient_bills(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    Path(id): Path<String>,
    params: Result<Query<PatientBillParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<BillPage>, ApiError> {
    let patient = id_of(&id)?;
    authorize(&who, Action::ReadBill, &Context::patient(patient))?;
    let Query(p) =
        params.map_err(|_| bad_query("query parameters are status, from, to, cursor, limit"))?;
    let query = BillQuery {
        patient_id: Some(patient.to_string()),
        status: status_param(p.status)?,
        payer: None,
        from: date_param("from", p.from)?,
        to: date_param("to", p.to)?,
        before: bill_cursor(p.cursor)?,
        limit: page_size(p.limit, 50, 200)?,
    };
    page(&state, &who, (min, "GET /v1/patients/{id}/bills"), query).await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgingParams {
    /// `YYYY-MM-DD`; default today.
    #[param(value_type = Option<String>, format = Date)]
    pub as_of: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Aging {
    pub as_of: NaiveDate,
    pub currency: String,
    /// 0-30, 31-60, 61-90 and 90+ days since issue.
    pub buckets: Vec<AgingBucket>,
}

/// Receivables aging: what is owed on issued bills by days since issue (no
/// patient data: counts and sums only).
#[utoipa::path(get, path = "/v1/billing/aging", tag = "billing", security(("bearer" = [])),
    params(AgingParams, ("X-Min-Position" = Option<i64>, Header, description = "wait for this log position")),
    responses((status = 200, body = Aging), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 503, body = Problem)))]
pub async fn aging(
    State(state): State<AppState>,
    who: Principal,
    min: MinPosition,
    params: Result<Query<AgingParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Aging>, ApiError> {
    authorize(&who, Action::ListBills, &Context::NONE)?;
    let Query(p) = params.map_err(|_| bad_query("the query parameter is as_of"))?;
    let as_of = date_param("as_of", p.as_of)?.unwrap_or_else(|| today(&state));
    min.wait(state.progress(read_model::NAME)).await?;
    let buckets = read_model::aging(state.reads(), as_of).await?;
    Ok(Json(Aging {
        as_of,
        currency: state.billing().currency().to_string(),
        buckets,
    }))
}
