//! The `patients` read model: one row per patient with demographics,
//! allergies and history, searchable by name prefix, birth date and identifier.

use anamnesis_commands::log::describe_json_error;
use anamnesis_commands::{Db, StoredEvent};
use anamnesis_domain::codec::StoredForm;
use anamnesis_domain::patient::{Demographics, PatientEvent};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use crate::execute_on;
use crate::runner::{ProjectionError, Projector, Tx};

/// Projects patient events into `patients` and `patient_identifiers`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Patients;

/// The projector's checkpoint name.
pub const NAME: &str = "patients";

/// Runs a query builder expression on whichever pool `db` is.
macro_rules! on_pool {
    ($db:expr, |$q:ident| $body:expr) => {
        match $db {
            Db::Postgres($q) => $body,
            Db::Sqlite($q) => $body,
        }
    };
}

/// Runs a query builder expression in whichever transaction `tx` is.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            Tx::Postgres($c) => $body,
            Tx::Sqlite($c) => $body,
        }
    };
}

impl Projector for Patients {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn apply(&self, tx: &mut Tx, e: &StoredEvent) -> Result<(), ProjectionError> {
        if e.aggregate_type != "patient" {
            return Ok(());
        }
        let event = PatientEvent::from_stored(&e.event_type, &e.event_version, &e.payload)
            .map_err(|err| ProjectionError::Event {
                position: e.global_position,
                detail: err.to_string(),
            })?;
        let id = e.aggregate_id.as_str();
        // Registration and demographics updates are one guarded upsert
        // (plus identifiers): no read of the row first.
        match &event {
            PatientEvent::PatientRegistered {
                demographics,
                user_id,
            } => return write_demographics(tx, e, demographics, *user_id).await,
            PatientEvent::DemographicsUpdated { demographics } => {
                return write_demographics(tx, e, demographics, None).await
            }
            _ => {}
        }
        let current: Option<(String, String, i64)> = on_tx!(&mut *tx, |c| sqlx::query_as(
            "SELECT allergies, conditions, version FROM patients WHERE patient_id = $1"
        )
        .bind(id)
        .fetch_optional(&mut **c)
        .await)?;
        let Some((allergies, conditions, version)) = current else {
            // Never skipped: a record whose registration was not projected
            // would be shown without this fact.
            return Err(ProjectionError::Event {
                position: e.global_position,
                detail: "a patient event for a patient the read model does not hold".into(),
            });
        };
        if version >= e.global_position {
            return Ok(()); // already applied
        }
        let parse = |text: &str| -> Result<Vec<Value>, ProjectionError> {
            serde_json::from_str(text).map_err(|err| ProjectionError::Event {
                position: e.global_position,
                detail: format!("stored read-model list: {}", describe_json_error(&err)),
            })
        };
        let (mut allergies, mut conditions) = (parse(&allergies)?, parse(&conditions)?);
        let mut deceased_on: Option<NaiveDate> = None;
        match event {
            PatientEvent::PatientRegistered { .. } | PatientEvent::DemographicsUpdated { .. } => {}
            PatientEvent::AllergyRecorded {
                allergy_id,
                allergy,
            } => allergies.push(json!({
                "id": allergy_id,
                "substance": allergy.substance,
                "reaction": allergy.reaction,
                "severity": allergy.severity,
                "recorded_at": e.recorded_at,
                "recorded_by": e.actor_id,
            })),
            PatientEvent::AllergyRemoved { allergy_id } => {
                let id = allergy_id.to_string();
                allergies.retain(|a| a["id"] != Value::String(id.clone()));
            }
            PatientEvent::ConditionAdded {
                condition_id,
                condition,
            } => conditions.push(json!({
                "id": condition_id,
                "code": condition.code,
                "description": condition.description,
                "onset": condition.onset,
                "resolved_on": null,
                "recorded_by": e.actor_id,
            })),
            PatientEvent::ConditionResolved {
                condition_id,
                resolved_on,
            } => {
                let id = Value::String(condition_id.to_string());
                for c in conditions.iter_mut().filter(|c| c["id"] == id) {
                    c["resolved_on"] = json!(resolved_on);
                }
            }
            PatientEvent::PatientDeceased { deceased_on: d } => deceased_on = Some(d),
        }
        execute_on!(
            &mut *tx,
            sqlx::query(
                "UPDATE patients SET allergies = $2, conditions = $3, \
                     deceased_on = COALESCE($4, deceased_on), updated_at = $5, version = $6 \
                 WHERE patient_id = $1 AND version < $6"
            )
            .bind(id)
            .bind(Value::Array(allergies).to_string())
            .bind(Value::Array(conditions).to_string())
            .bind(deceased_on)
            .bind(e.recorded_at)
            .bind(e.global_position)
        )?;
        Ok(())
    }
}

/// Inserts the row on registration, replaces the demographics on an update.
/// The version guard makes a replayed event (or one older than the row) a
/// no-op; registration time and account link are never overwritten.
async fn write_demographics(
    tx: &mut Tx,
    e: &StoredEvent,
    d: &Demographics,
    user_id: Option<uuid::Uuid>,
) -> Result<(), ProjectionError> {
    let written = execute_on!(
        &mut *tx,
        sqlx::query(
            "INSERT INTO patients (patient_id, family_name, given_name, family_key, given_key, \
                 birth_date, sex, phone, email, address, identifiers, allergies, conditions, \
                 user_id, registered_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '[]', '[]', $12, $13, $13, $14) \
             ON CONFLICT (patient_id) DO UPDATE SET family_name = excluded.family_name, \
                 given_name = excluded.given_name, family_key = excluded.family_key, \
                 given_key = excluded.given_key, birth_date = excluded.birth_date, \
                 sex = excluded.sex, phone = excluded.phone, email = excluded.email, \
                 address = excluded.address, identifiers = excluded.identifiers, \
                 updated_at = excluded.updated_at, version = excluded.version \
             WHERE patients.version < excluded.version"
        )
        .bind(&e.aggregate_id)
        .bind(storable(&d.name.family))
        .bind(storable(&d.name.given))
        .bind(storable(&d.name.family.to_lowercase()))
        .bind(storable(&d.name.given.to_lowercase()))
        .bind(d.birth_date.date())
        .bind(d.sex.as_str())
        .bind(d.contact.phone.as_deref().map(storable))
        .bind(d.contact.email.as_deref().map(storable))
        .bind(d.address.as_ref().map(json_text))
        .bind(json_text(&d.identifiers))
        .bind(user_id.map(|u| u.to_string()))
        .bind(e.recorded_at)
        .bind(e.global_position)
    )?;
    if written == 1 {
        // A registration (event 1 of its stream) has none to clear.
        if e.sequence > 1 {
            execute_on!(
                &mut *tx,
                sqlx::query("DELETE FROM patient_identifiers WHERE patient_id = $1")
                    .bind(&e.aggregate_id)
            )?;
        }
        write_identifiers(tx, &e.aggregate_id, d).await?;
    }
    Ok(())
}

async fn write_identifiers(tx: &mut Tx, id: &str, d: &Demographics) -> Result<(), ProjectionError> {
    for i in &d.identifiers {
        execute_on!(
            &mut *tx,
            sqlx::query(
                "INSERT INTO patient_identifiers (patient_id, system, value) VALUES ($1, $2, $3)"
            )
            .bind(id)
            .bind(storable(&i.system))
            .bind(storable(&i.value))
        )?;
    }
    Ok(())
}

/// Text as a database column can hold it. The domain refuses NUL since
/// ADR 0003, but events recorded before then may hold one, and a Postgres
/// `text` column refuses it: it is shown as U+FFFD instead, so that the read
/// model can apply those events without the log being rewritten.
fn storable(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

/// Domain values as JSON text (plain data: serializing cannot fail).
fn json_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// A patient as the read model holds it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PatientView {
    pub id: String,
    pub family_name: String,
    pub given_name: String,
    pub birth_date: NaiveDate,
    /// `female`, `male`, `other` or `unknown`.
    pub sex: String,
    pub phone: Option<String>,
    pub email: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub address: Option<Value>,
    /// `[{"system": "mrn", "value": "000123"}]`
    #[schema(value_type = Vec<Object>)]
    pub identifiers: Vec<Value>,
    pub deceased_on: Option<NaiveDate>,
    /// Clinical: absent for roles that may not see it.
    #[schema(value_type = Option<Vec<Object>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allergies: Option<Vec<Value>>,
    /// Clinical: absent for roles that may not see it.
    #[schema(value_type = Option<Vec<Object>>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Value>>,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Global position of the last event reflected here.
    pub version: i64,
}

#[derive(sqlx::FromRow)]
struct PatientRow {
    patient_id: String,
    family_name: String,
    given_name: String,
    birth_date: NaiveDate,
    sex: String,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    identifiers: String,
    allergies: String,
    conditions: String,
    deceased_on: Option<NaiveDate>,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
}

/// A read-model column that does not hold what it should: an error, never
/// shown as empty (a patient shown with no allergies is a clinical hazard).
fn corrupt(column: &'static str, e: &serde_json::Error) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: describe_json_error(e).into(),
    }
}

impl PatientRow {
    fn view(self) -> Result<PatientView, sqlx::Error> {
        let array = |column: &'static str, t: &str| {
            serde_json::from_str::<Vec<Value>>(t).map_err(|e| corrupt(column, &e))
        };
        let address = self
            .address
            .map(|a| serde_json::from_str(&a).map_err(|e| corrupt("address", &e)))
            .transpose()?;
        Ok(PatientView {
            id: self.patient_id,
            family_name: self.family_name,
            given_name: self.given_name,
            birth_date: self.birth_date,
            sex: self.sex,
            phone: self.phone,
            email: self.email,
            address,
            identifiers: array("identifiers", &self.identifiers)?,
            deceased_on: self.deceased_on,
            allergies: Some(array("allergies", &self.allergies)?),
            conditions: Some(array("conditions", &self.conditions)?),
            registered_at: self.registered_at,
            updated_at: self.updated_at,
            version: self.version,
        })
    }
}

const COLUMNS: &str = "patient_id, family_name, given_name, birth_date, sex, phone, email, \
    address, identifiers, allergies, conditions, deceased_on, registered_at, updated_at, version";

/// One patient, if the read model has them.
pub async fn get(db: &Db, id: &str) -> Result<Option<PatientView>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM patients WHERE patient_id = $1 AND version > 0");
    let row: Option<PatientRow> = on_pool!(db, |p| sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(p)
        .await)?;
    row.map(PatientRow::view).transpose()
}

/// Search filters; all given ones must match.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Prefix of the family or given name, any case.
    pub name: Option<String>,
    pub birth_date: Option<NaiveDate>,
    /// An identifier's value (MRN, insurance number).
    pub identifier: Option<String>,
    /// Return patients whose id sorts after this one (the previous page's cursor).
    pub after: Option<String>,
    pub limit: i64,
}

enum Param {
    Text(String),
    Date(NaiveDate),
}

/// One page of matching patients, ordered by id (registration order), and
/// whether more follow.
pub async fn search(db: &Db, s: &Search) -> Result<(Vec<PatientView>, bool), sqlx::Error> {
    let mut clauses = vec!["version > 0".to_owned()];
    let mut params = Vec::new();
    // Pushes a parameter and returns its `$n` number.
    let next = |p: Param, params: &mut Vec<Param>| {
        params.push(p);
        params.len()
    };
    if let Some(name) = &s.name {
        let prefix = name.trim().to_lowercase();
        let low = next(Param::Text(prefix.clone()), &mut params);
        let high = next(Param::Text(format!("{prefix}\u{10FFFF}")), &mut params);
        clauses.push(format!(
            "((family_key >= ${low} AND family_key < ${high}) \
              OR (given_key >= ${low} AND given_key < ${high}))"
        ));
    }
    if let Some(date) = s.birth_date {
        let n = next(Param::Date(date), &mut params);
        clauses.push(format!("birth_date = ${n}"));
    }
    if let Some(identifier) = &s.identifier {
        let n = next(Param::Text(identifier.trim().to_owned()), &mut params);
        clauses.push(format!(
            "patient_id IN (SELECT patient_id FROM patient_identifiers WHERE value = ${n})"
        ));
    }
    if let Some(after) = &s.after {
        let n = next(Param::Text(after.clone()), &mut params);
        clauses.push(format!("patient_id > ${n}"));
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM patients WHERE {} ORDER BY patient_id LIMIT {}",
        clauses.join(" AND "),
        s.limit + 1
    );
    let rows: Vec<PatientRow> = on_pool!(db, |p| {
        let mut q = sqlx::query_as(&sql);
        for param in &params {
            q = match param {
                Param::Text(t) => q.bind(t.as_str()),
                Param::Date(d) => q.bind(*d),
            };
        }
        q.fetch_all(p).await
    })?;
    let more = rows.len() as i64 > s.limit;
    let page = rows
        .into_iter()
        .take(s.limit as usize)
        .map(PatientRow::view)
        .collect::<Result<_, _>>()?;
    Ok((page, more))
}
