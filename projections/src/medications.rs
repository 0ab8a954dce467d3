//! Prescriptions' read models (migration 0011): `medications` (each order
//! as now in effect: the active medication list), `medication_history`
//! (every event of every order, with its actor) and
//! `medication_administrations`; and their queries. The dose schedule is
//! computed from the active orders by the domain (`Order::doses`), in the
//! clinic's zone, when asked: it depends on the clock, not only on events.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value as Json;

use anamnesis_commands::Db;
use anamnesis_domain::medication::{MedicationEvent, Order};

use crate::chart::Seconds;
use crate::runner::{Envelope, ProjectionError, Projector, Tx};
use crate::sql::{self, Value};

/// The projector's checkpoint name.
pub const NAME: &str = "medications";

/// Projects medication orders, their history and administrations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Medications;

impl Projector for Medications {
    type Event = MedicationEvent;

    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["medication"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "medications",
            "medication_history",
            "medication_administrations",
        ]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<MedicationEvent>],
    ) -> Result<(), ProjectionError> {
        // An order changes a few times in its life: a statement or two per
        // event, in the batch's one transaction.
        for e in events {
            apply(tx, e).await?;
        }
        Ok(())
    }

    /// Orders, their history and administrations go.
    async fn erase(&self, tx: &mut Tx, patient: uuid::Uuid) -> Result<(), ProjectionError> {
        crate::sql::erase_patient(
            tx,
            &[
            "DELETE FROM medication_history WHERE medication_id IN (SELECT medication_id FROM medications WHERE patient_id = $1)",
            "DELETE FROM medication_administrations WHERE patient_id = $1",
            "DELETE FROM medications WHERE patient_id = $1",
            ],
            patient,
        )
        .await?;
        Ok(())
    }
}

fn seconds(t: DateTime<Utc>) -> Value {
    t.timestamp().into()
}

fn damaged(e: &Envelope<MedicationEvent>, detail: impl Into<String>) -> ProjectionError {
    ProjectionError::Event {
        position: e.position(),
        detail: detail.into(),
    }
}

fn json(e: &Envelope<MedicationEvent>, v: &impl Serialize) -> Result<String, ProjectionError> {
    serde_json::to_string(v).map_err(|err| damaged(e, err.to_string()))
}

async fn apply(tx: &mut Tx, e: &Envelope<MedicationEvent>) -> Result<(), ProjectionError> {
    use MedicationEvent as E;
    let at = e.stored.recorded_at;
    match &e.event {
        E::Prescribed {
            origin,
            order,
            allergy_override,
        } => {
            let overridden = allergy_override.as_ref().map(|o| json(e, o)).transpose()?;
            let inserted = sql::execute(
                tx,
                "INSERT INTO medications (medication_id, patient_id, drug_key, name, rxnorm, \
                 status, body, versions, refills, refills_used, pending_refill, \
                 allergy_override, prescriber_id, prescribed_at, starts_at, ends_at, \
                 ended_reason, updated_at, position) \
                 VALUES ($1, $2, $3, $4, $5, 'active', $6, 1, $7, 0, NULL, $8, $9, $10, $11, \
                 $12, NULL, $10, $13) ON CONFLICT (medication_id) DO NOTHING",
                &[
                    e.id().into(),
                    origin.patient_id.to_string().into(),
                    order.medication.key().into(),
                    order.medication.name.as_str().into(),
                    order.medication.rxnorm.clone().into(),
                    json(e, order)?.into(),
                    i64::from(order.refills).into(),
                    overridden.into(),
                    origin.prescriber.to_string().into(),
                    seconds(at),
                    seconds(order.starts_at),
                    Value::Int(order.ends_at.map(|t| t.timestamp())),
                    e.position().into(),
                ],
            )
            .await?;
            if inserted == 0 {
                return Err(damaged(e, "a medication prescribed twice"));
            }
        }
        E::DoseChanged {
            dose, frequency, ..
        } => {
            let body = sql::returning(
                tx,
                "SELECT body FROM medications WHERE medication_id = $1",
                &[e.id().into()],
            )
            .await?;
            let body = body
                .first()
                .ok_or_else(|| damaged(e, "a dose change of an order the list does not hold"))?;
            let mut order: Order =
                serde_json::from_str(body).map_err(|err| damaged(e, err.to_string()))?;
            order.dose = *dose;
            order.frequency = frequency.clone();
            update(
                tx,
                e,
                "UPDATE medications SET body = $2, versions = versions + 1, updated_at = $3, \
                 position = $4 WHERE medication_id = $1",
                vec![json(e, &order)?.into(), seconds(at)],
            )
            .await?;
        }
        E::Discontinued { reason, .. } => {
            update(
                tx,
                e,
                "UPDATE medications SET status = 'discontinued', ended_reason = $2, \
                 pending_refill = NULL, updated_at = $3, position = $4 WHERE medication_id = $1",
                vec![reason.as_str().into(), seconds(at)],
            )
            .await?;
        }
        E::Completed { .. } => {
            update(
                tx,
                e,
                "UPDATE medications SET status = 'completed', pending_refill = NULL, \
                 updated_at = $2, position = $3 WHERE medication_id = $1",
                vec![seconds(at)],
            )
            .await?;
        }
        E::RefillRequested { request_id, .. } => {
            update(
                tx,
                e,
                "UPDATE medications SET pending_refill = $2, updated_at = $3, position = $4 \
                 WHERE medication_id = $1",
                vec![request_id.to_string().into(), seconds(at)],
            )
            .await?;
        }
        E::RefillApproved { .. } => {
            update(
                tx,
                e,
                "UPDATE medications SET pending_refill = NULL, refills_used = refills_used + 1, \
                 updated_at = $2, position = $3 WHERE medication_id = $1",
                vec![seconds(at)],
            )
            .await?;
        }
        E::RefillDenied { .. } => {
            update(
                tx,
                e,
                "UPDATE medications SET pending_refill = NULL, updated_at = $2, position = $3 \
                 WHERE medication_id = $1",
                vec![seconds(at)],
            )
            .await?;
        }
        E::Administered {
            administration_id,
            outcome,
            at: given_at,
            note,
        } => {
            let patient = sql::returning(
                tx,
                "SELECT patient_id FROM medications WHERE medication_id = $1",
                &[e.id().into()],
            )
            .await?;
            let patient = patient
                .first()
                .ok_or_else(|| damaged(e, "an administration of an order the list does not hold"))?
                .clone();
            let inserted = sql::execute(
                tx,
                "INSERT INTO medication_administrations (administration_id, medication_id, \
                 patient_id, outcome, given_at, note, actor_id, recorded_at, position) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (administration_id) DO NOTHING",
                &[
                    administration_id.to_string().into(),
                    e.id().into(),
                    patient.into(),
                    outcome.as_str().into(),
                    seconds(*given_at),
                    note.clone().into(),
                    e.stored.actor_id.as_str().into(),
                    seconds(at),
                    e.position().into(),
                ],
            )
            .await?;
            if inserted == 0 {
                return Err(damaged(e, "an administration recorded twice"));
            }
        }
    }
    history(tx, e).await
}

/// Runs an update of the order's row (`$1` its id, the last parameter the
/// position); an order the list does not hold is an error.
async fn update(
    tx: &mut Tx,
    e: &Envelope<MedicationEvent>,
    statement: &str,
    values: Vec<Value>,
) -> Result<(), ProjectionError> {
    let mut params = vec![e.id().into()];
    params.extend(values);
    params.push(e.position().into());
    if sql::execute(tx, statement, &params).await? == 0 {
        return Err(damaged(e, "an event of an order the list does not hold"));
    }
    Ok(())
}

/// The event's line in the order's history: what it says, who, when.
async fn history(tx: &mut Tx, e: &Envelope<MedicationEvent>) -> Result<(), ProjectionError> {
    let mut detail = serde_json::to_value(&e.event).map_err(|err| damaged(e, err.to_string()))?;
    let detail = detail.get_mut("data").map(Json::take).unwrap_or(Json::Null);
    let inserted = sql::execute(
        tx,
        "INSERT INTO medication_history (position, medication_id, event_type, detail, actor_id, \
         actor_role, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (position) DO NOTHING",
        &[
            e.position().into(),
            e.id().into(),
            e.stored.event_type.as_str().into(),
            detail.to_string().into(),
            e.stored.actor_id.as_str().into(),
            e.stored.actor_role.as_str().into(),
            seconds(e.stored.recorded_at),
        ],
    )
    .await?;
    if inserted == 0 {
        return Err(damaged(e, "an event in a medication's history twice"));
    }
    Ok(())
}

// --- queries -------------------------------------------------------------------

fn decode<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.into(),
        source: Box::new(e),
    })
}

/// A medication order as now in effect.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MedicationView {
    pub id: String,
    pub patient_id: String,
    /// active, discontinued or completed.
    pub status: String,
    /// The order: drug, dose, route, frequency, course, refills, instructions.
    #[schema(value_type = Object)]
    pub order: Json,
    /// How many versions (the prescription and each dose change).
    pub versions: i64,
    pub refills: i64,
    pub refills_used: i64,
    /// The refill request waiting for a doctor, if any.
    pub pending_refill: Option<String>,
    /// The allergies prescribed over, and why.
    #[schema(value_type = Option<Object>)]
    pub allergy_override: Option<Json>,
    pub prescriber_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub prescribed_at: Seconds,
    /// Why it was discontinued.
    pub ended_reason: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Seconds,
}

#[derive(sqlx::FromRow)]
struct MedicationRow {
    medication_id: String,
    patient_id: String,
    status: String,
    body: String,
    versions: i64,
    refills: i64,
    refills_used: i64,
    pending_refill: Option<String>,
    allergy_override: Option<String>,
    prescriber_id: String,
    prescribed_at: i64,
    ended_reason: Option<String>,
    updated_at: i64,
}

impl MedicationRow {
    fn view(self) -> Result<MedicationView, sqlx::Error> {
        Ok(MedicationView {
            order: decode("body", &self.body)?,
            allergy_override: self
                .allergy_override
                .as_deref()
                .map(|o| decode("allergy_override", o))
                .transpose()?,
            id: self.medication_id,
            patient_id: self.patient_id,
            status: self.status,
            versions: self.versions,
            refills: self.refills,
            refills_used: self.refills_used,
            pending_refill: self.pending_refill,
            prescriber_id: self.prescriber_id,
            prescribed_at: Seconds::try_from(self.prescribed_at)?,
            ended_reason: self.ended_reason,
            updated_at: Seconds::try_from(self.updated_at)?,
        })
    }
}

const COLUMNS: &str = "medication_id, patient_id, status, body, versions, refills, refills_used, \
     pending_refill, allergy_override, prescriber_id, prescribed_at, ended_reason, updated_at";

/// A patient's medications, active first then by drug; only the active
/// ones when `active_only`.
pub async fn list(
    db: &Db,
    patient_id: &str,
    active_only: bool,
) -> Result<Vec<MedicationView>, sqlx::Error> {
    let filter = if active_only {
        " AND status = 'active'"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM medications WHERE patient_id = $1{filter} \
         ORDER BY CASE status WHEN 'active' THEN 0 ELSE 1 END, drug_key, prescribed_at"
    );
    let rows: Vec<MedicationRow> = match db {
        Db::Postgres(p) => sqlx::query_as(&sql).bind(patient_id).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(&sql).bind(patient_id).fetch_all(p).await?,
    };
    rows.into_iter().map(MedicationRow::view).collect()
}

/// One order, whatever its status.
pub async fn view(db: &Db, medication_id: &str) -> Result<Option<MedicationView>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM medications WHERE medication_id = $1");
    let row: Option<MedicationRow> = match db {
        Db::Postgres(p) => {
            sqlx::query_as(&sql)
                .bind(medication_id)
                .fetch_optional(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_as(&sql)
                .bind(medication_id)
                .fetch_optional(p)
                .await?
        }
    };
    row.map(MedicationRow::view).transpose()
}

/// The active orders of a patient, as the domain reads them (for the dose
/// schedule).
pub async fn active_orders(db: &Db, patient_id: &str) -> Result<Vec<(String, Order)>, sqlx::Error> {
    let sql = "SELECT medication_id, body FROM medications \
               WHERE patient_id = $1 AND status = 'active' ORDER BY drug_key";
    let rows: Vec<(String, String)> = match db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(patient_id).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(patient_id).fetch_all(p).await?,
    };
    rows.into_iter()
        .map(|(id, body)| Ok((id, decode("body", &body)?)))
        .collect()
}

/// One event in an order's history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryView {
    pub position: i64,
    /// medication.prescribed, medication.dose_changed, ...
    pub event_type: String,
    /// What the event says.
    #[schema(value_type = Object)]
    pub detail: Json,
    pub actor_id: String,
    pub actor_role: String,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: Seconds,
}

/// An order's history, oldest first.
pub async fn history_of(db: &Db, medication_id: &str) -> Result<Vec<HistoryView>, sqlx::Error> {
    let sql = "SELECT position, event_type, detail, actor_id, actor_role, recorded_at \
               FROM medication_history WHERE medication_id = $1 ORDER BY position";
    let rows: Vec<(i64, String, String, String, String, i64)> = match db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(medication_id).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(medication_id).fetch_all(p).await?,
    };
    rows.into_iter()
        .map(
            |(position, event_type, detail, actor_id, actor_role, recorded_at)| {
                Ok(HistoryView {
                    position,
                    event_type,
                    detail: decode("detail", &detail)?,
                    actor_id,
                    actor_role,
                    recorded_at: Seconds::try_from(recorded_at)?,
                })
            },
        )
        .collect()
}

/// A dose given, held or refused.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct AdministrationView {
    pub administration_id: String,
    pub medication_id: String,
    /// given, held or refused.
    pub outcome: String,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String, format = DateTime)]
    pub given_at: Seconds,
    pub note: Option<String>,
    pub actor_id: String,
}

/// An order's administrations, newest first.
pub async fn administrations(
    db: &Db,
    medication_id: &str,
) -> Result<Vec<AdministrationView>, sqlx::Error> {
    let sql = "SELECT administration_id, medication_id, outcome, given_at, note, actor_id \
               FROM medication_administrations WHERE medication_id = $1 \
               ORDER BY given_at DESC, administration_id";
    Ok(match db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(medication_id).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(medication_id).fetch_all(p).await?,
    })
}
