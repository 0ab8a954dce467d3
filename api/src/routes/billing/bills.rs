//! Bills as commands: draft, lines, issue, void; claims and a payer's
//! answers; payments, adjustments, write-offs and refunds.

use super::*;

// --- bills: draft, issue, void --------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenBody {
    pub patient_id: Uuid,
    /// The appointment (encounter) billed; it must be the patient's.
    pub appointment_id: Option<Uuid>,
    /// `YYYY-MM-DD`; default: the appointment's day, or today.
    #[serde(default, deserialize_with = "iso_date_opt")]
    #[schema(value_type = Option<String>, format = Date)]
    pub service_date: Option<NaiveDate>,
}

/// Open a draft bill for a patient, optionally for one of their appointments.
#[utoipa::path(post, path = "/v1/bills", tag = "billing", security(("bearer" = [])),
    request_body = OpenBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn open_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Body(body): Body<OpenBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    authorize(&who, Action::ManageBill, &Context::patient(body.patient_id))?;
    registered(&state, body.patient_id).await?;
    let bill_id = Uuid::now_v7();
    let m = metadata(
        &key,
        &who,
        (StatusCode::CREATED, &bill_id.to_string()),
        None,
    );
    let request = OpenRequest {
        bill_id,
        patient_id: body.patient_id,
        appointment_id: body.appointment_id,
        service_date: body.service_date,
        today: today(&state),
    };
    let done = state.billing().open(request, &m).await?;
    Ok((StatusCode::CREATED, accepted(bill_id, done)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    /// A service code on the price list.
    pub code: String,
    pub quantity: i64,
    /// Minor units; default: the price list's.
    pub unit_price: Option<i64>,
}

/// Add a line to a draft bill.
#[utoipa::path(post, path = "/v1/bills/{id}/lines", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = LineBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_line(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<LineBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (bill_id, patient) = patient_of(&state, &id).await?;
    authorize(&who, Action::ManageBill, &Context::patient(patient))?;
    let line_id = Uuid::now_v7();
    let m = metadata(
        &key,
        &who,
        (StatusCode::CREATED, &line_id.to_string()),
        None,
    );
    let request = LineRequest {
        line_id,
        code: body.code,
        quantity: body.quantity,
        unit_price: body.unit_price,
    };
    let done = state.billing().add_line(bill_id, request, &m).await?;
    Ok((StatusCode::CREATED, accepted(line_id, done)))
}

/// Remove a line from a draft bill.
#[utoipa::path(delete, path = "/v1/bills/{id}/lines/{line_id}", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("line_id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn remove_line(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, line_id)): Path<(String, String)>,
) -> Result<Json<Accepted>, ApiError> {
    let line_id = id_of(&line_id)?;
    let command = BillCommand::RemoveLine { line_id };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageBill),
        command,
        None,
    )
    .await
}

/// Issue a draft bill: its lines are final and it can be claimed and paid.
#[utoipa::path(post, path = "/v1/bills/{id}/issue", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Accepted), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn issue_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
) -> Result<Json<Accepted>, ApiError> {
    let command = BillCommand::Issue {
        today: today(&state),
    };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageBill),
        command,
        None,
    )
    .await
}

/// Void a bill, for a reason (not one with an open or paid claim).
#[utoipa::path(post, path = "/v1/bills/{id}/void", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ReasonBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn void_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<ReasonBody>,
) -> Result<Json<Accepted>, ApiError> {
    let reason = body.reason.clone();
    let command = BillCommand::Void {
        reason: body.reason,
    };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageBill),
        command,
        Some(&reason),
    )
    .await
}

// --- claims ---------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    /// One of the patient's coverages, valid on the date of service.
    pub coverage_id: Uuid,
    /// Minor units claimed: at most what the patient still owes.
    pub amount: i64,
}

/// Submit a claim for part or all of an issued bill to a coverage's payer.
#[utoipa::path(post, path = "/v1/bills/{id}/claims", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ClaimBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn submit_claim(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<ClaimBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (bill_id, patient) = patient_of(&state, &id).await?;
    authorize(&who, Action::ManageClaims, &Context::patient(patient))?;
    let claim_id = Uuid::now_v7();
    let m = metadata(
        &key,
        &who,
        (StatusCode::CREATED, &claim_id.to_string()),
        None,
    );
    let request = ClaimRequest {
        claim_id,
        coverage_id: body.coverage_id,
        amount: body.amount,
        today: today(&state),
    };
    let done = state
        .billing()
        .submit_claim(bill_id, patient, request, &m)
        .await?;
    Ok((StatusCode::CREATED, accepted(claim_id, done)))
}

/// What a payer answered to a claim.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClaimResponseBody {
    /// Accepted for adjudication.
    Accepted,
    /// Rejected, with the payer's reason codes; it may be resubmitted.
    Rejected { reason_codes: Vec<String> },
    /// Decided and paid: `paid` (minor units) equal to the claim is paid,
    /// less is partly paid, zero is denied (both with reason codes).
    Adjudicated {
        paid: i64,
        #[serde(default)]
        reason_codes: Vec<String>,
    },
}

/// Record a payer's response to a claim: accepted, rejected, or adjudicated
/// with what it paid.
#[utoipa::path(post, path = "/v1/bills/{id}/claims/{claim_id}/response", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("claim_id" = Uuid, Path)), request_body = ClaimResponseBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn claim_response(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, claim_id)): Path<(String, String)>,
    Body(body): Body<ClaimResponseBody>,
) -> Result<Json<Accepted>, ApiError> {
    let claim_id = id_of(&claim_id)?;
    let command = match body {
        ClaimResponseBody::Accepted => BillCommand::AcceptClaim { claim_id },
        ClaimResponseBody::Rejected { reason_codes } => BillCommand::RejectClaim {
            claim_id,
            reason_codes,
        },
        ClaimResponseBody::Adjudicated { paid, reason_codes } => BillCommand::Adjudicate {
            claim_id,
            paid,
            reason_codes,
        },
    };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageClaims),
        command,
        None,
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResubmitBody {
    /// Minor units claimed this time.
    pub amount: i64,
}

/// Resubmit a rejected claim (corrected), for an amount.
#[utoipa::path(post, path = "/v1/bills/{id}/claims/{claim_id}/resubmit", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("claim_id" = Uuid, Path)), request_body = ResubmitBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn resubmit_claim(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, claim_id)): Path<(String, String)>,
    Body(body): Body<ResubmitBody>,
) -> Result<Json<Accepted>, ApiError> {
    let (bill_id, patient) = patient_of(&state, &id).await?;
    authorize(&who, Action::ManageClaims, &Context::patient(patient))?;
    let claim_id = id_of(&claim_id)?;
    let m = metadata(&key, &who, (StatusCode::OK, &bill_id.to_string()), None);
    let done = state
        .billing()
        .resubmit_claim(
            (bill_id, patient),
            (claim_id, body.amount, today(&state)),
            &m,
        )
        .await?;
    Ok(accepted(bill_id, done))
}

/// Give up a rejected claim, for a reason: its amount is the patient's again.
#[utoipa::path(post, path = "/v1/bills/{id}/claims/{claim_id}/withdraw", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("claim_id" = Uuid, Path)), request_body = ReasonBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn withdraw_claim(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, claim_id)): Path<(String, String)>,
    Body(body): Body<ReasonBody>,
) -> Result<Json<Accepted>, ApiError> {
    let reason = body.reason.clone();
    let command = BillCommand::WithdrawClaim {
        claim_id: id_of(&claim_id)?,
        reason: body.reason,
    };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageClaims),
        command,
        Some(&reason),
    )
    .await
}

// --- money ----------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    /// Minor units: at most what the patient owes.
    pub amount: i64,
    /// How it was paid (card, cash, transfer, ...).
    pub method: String,
}

/// Pay a bill. Staff record a payment that arrived (at the desk, by
/// transfer): it counts at once. A patient paying their own starts a
/// payment: it holds its share of the balance and counts once staff
/// confirm the money arrived (`…/payments/{payment_id}/settlement`), since
/// nothing here can see the money move.
#[utoipa::path(post, path = "/v1/bills/{id}/payments", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = PaymentBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn pay_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<PaymentBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let payment_id = Uuid::now_v7();
    let command = if who.role == anamnesis_domain::user::Role::Patient {
        BillCommand::StartPayment {
            payment_id,
            amount: body.amount,
            method: body.method,
            today: today(&state),
        }
    } else {
        BillCommand::Pay {
            payment_id,
            amount: body.amount,
            method: body.method,
            today: today(&state),
        }
    };
    money(
        &state,
        (&who, &key),
        (&id, Action::PayBill),
        payment_id,
        command,
        None,
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettlementBody {
    /// Whether the money of the payment the patient started arrived.
    pub arrived: bool,
    /// Why it did not (required then).
    pub reason: Option<String>,
}

/// Settle a payment the patient started (staff): it arrived, and counts as
/// paid; or it did not, for a reason, and frees its share of the balance.
#[utoipa::path(post, path = "/v1/bills/{id}/payments/{payment_id}/settlement", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("payment_id" = Uuid, Path)), request_body = SettlementBody,
    responses((status = 200, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn settle_payment(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path((id, payment_id)): Path<(String, String)>,
    Body(body): Body<SettlementBody>,
) -> Result<Json<Accepted>, ApiError> {
    let payment_id = Uuid::parse_str(&payment_id).map_err(|_| ApiError::NotFound)?;
    let reason = body.reason.clone();
    let command = BillCommand::SettlePayment {
        payment_id,
        arrived: body.arrived,
        reason: body.reason,
        today: today(&state),
    };
    on_bill(
        &state,
        (&who, &key),
        (&id, Action::ManageBill),
        command,
        reason.as_deref().filter(|_| !body.arrived),
    )
    .await
}

/// Runs a command that moves money under a new id: 201 with that id.
async fn money(
    state: &AppState,
    (who, key): (&Principal, &RequestKey),
    (raw, action): (&str, Action),
    movement_id: Uuid,
    command: BillCommand,
    reason: Option<&str>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (bill_id, patient) = patient_of(state, raw).await?;
    authorize(who, action, &Context::patient(patient))?;
    let m = metadata(
        key,
        who,
        (StatusCode::CREATED, &movement_id.to_string()),
        reason,
    );
    let done = state
        .bus()
        .execute::<Bill>(&bill_id.to_string(), command, &(), &m)
        .await?;
    Ok((StatusCode::CREATED, accepted(movement_id, done)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentBody {
    #[schema(value_type = String, example = "write_off")]
    pub kind: AdjustmentKind,
    /// Minor units: at most what the patient owes.
    pub amount: i64,
    pub reason: String,
}

/// Adjust or write off part of what the patient owes, for a reason.
#[utoipa::path(post, path = "/v1/bills/{id}/adjustments", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = AdjustmentBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn adjust_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<AdjustmentBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let adjustment_id = Uuid::now_v7();
    let reason = body.reason.clone();
    let command = BillCommand::Adjust {
        adjustment_id,
        kind: body.kind,
        amount: body.amount,
        reason: body.reason,
    };
    let target = (id.as_str(), Action::AdjustBill);
    money(
        &state,
        (&who, &key),
        target,
        adjustment_id,
        command,
        Some(&reason),
    )
    .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    /// Minor units: at most what the patient paid and was not refunded.
    pub amount: i64,
    pub reason: String,
}

/// Pay money back to the patient, for a reason.
#[utoipa::path(post, path = "/v1/bills/{id}/refunds", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RefundBody,
    responses((status = 201, body = Accepted), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn refund_bill(
    State(state): State<AppState>,
    who: Principal,
    key: RequestKey,
    Path(id): Path<String>,
    Body(body): Body<RefundBody>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let refund_id = Uuid::now_v7();
    let reason = body.reason.clone();
    let command = BillCommand::Refund {
        refund_id,
        amount: body.amount,
        reason: body.reason,
        today: today(&state),
    };
    let target = (id.as_str(), Action::AdjustBill);
    money(
        &state,
        (&who, &key),
        target,
        refund_id,
        command,
        Some(&reason),
    )
    .await
}
