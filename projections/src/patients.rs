//! The `patients` read model: one row per patient with demographics,
//! allergies and history, searchable by name prefix, birth date and identifier.

use std::collections::{BTreeMap, HashMap};

use anamnesis_commands::log::describe_json_error;
use anamnesis_commands::Db;
use anamnesis_domain::patient::{Allergy, Condition, Demographics, PatientEvent};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::runner::{Envelope, ProjectionError, Projector, Tx};
use crate::sql::{self, Value as Bound};

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

mod search;

pub use search::{search, Resume, Search};

impl Projector for Patients {
    type Event = PatientEvent;

    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["patient"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "patients",
            "patient_identifiers",
            "patient_allergies",
            "patient_conditions",
        ]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<PatientEvent>],
    ) -> Result<(), ProjectionError> {
        let fold = Fold::of(events);
        fold.check_known(tx).await?;
        fold.write(tx).await
    }

    /// The record, its identifiers, allergies and history go.
    async fn erase(&self, tx: &mut Tx, patient: uuid::Uuid) -> Result<(), ProjectionError> {
        crate::sql::erase_patient(
            tx,
            &[
                "DELETE FROM patient_identifiers WHERE patient_id = $1",
                "DELETE FROM patient_allergies WHERE patient_id = $1",
                "DELETE FROM patient_conditions WHERE patient_id = $1",
                "DELETE FROM patients WHERE patient_id = $1",
            ],
            patient,
        )
        .await?;
        Ok(())
    }
}

/// A batch folded per row: what each statement of [`Fold::write`] writes.
#[derive(Default)]
struct Fold {
    /// Demographics to upsert, one per patient (the batch's last), with
    /// registration time and account link when the batch registered them.
    demographics: BTreeMap<String, DemographicsRow>,
    /// Every patient the batch touched: its last position and time, and a
    /// date of death if one was recorded; first position, for errors.
    touched: BTreeMap<String, Touched>,
    allergies: Vec<AllergyRow>,
    allergies_removed: Vec<String>,
    conditions: Vec<ConditionRow>,
    /// (condition id, resolved on) for conditions recorded before the batch.
    resolutions: Vec<(String, NaiveDate)>,
}

struct DemographicsRow {
    demographics: Demographics,
    /// When this version was recorded.
    at: DateTime<Utc>,
    user_id: Option<Uuid>,
    registered_at: DateTime<Utc>,
    /// Registered in this batch: no identifiers to clear.
    new: bool,
    position: i64,
}

struct Touched {
    first: i64,
    last: i64,
    at: DateTime<Utc>,
    deceased_on: Option<NaiveDate>,
}

struct AllergyRow {
    id: String,
    patient: String,
    allergy: Allergy,
    at: DateTime<Utc>,
    by: String,
    position: i64,
}

struct ConditionRow {
    id: String,
    patient: String,
    condition: Condition,
    resolved_on: Option<NaiveDate>,
    by: String,
    position: i64,
}

impl Fold {
    fn of(events: &[Envelope<PatientEvent>]) -> Self {
        let mut f = Fold::default();
        // An erasure was applied before it, by `erase`.
        for e in events.iter().filter(|e| e.event != PatientEvent::Erased) {
            let id = e.id().to_owned();
            let position = e.position();
            let at = e.stored.recorded_at;
            let touched = f.touched.entry(id.clone()).or_insert(Touched {
                first: position,
                last: position,
                at,
                deceased_on: None,
            });
            touched.last = position;
            touched.at = at;
            match &e.event {
                PatientEvent::PatientRegistered {
                    demographics,
                    user_id,
                } => {
                    f.demographics.insert(
                        id,
                        DemographicsRow {
                            demographics: demographics.clone(),
                            at,
                            user_id: *user_id,
                            registered_at: at,
                            new: e.stored.sequence == 1,
                            position,
                        },
                    );
                }
                PatientEvent::DemographicsUpdated { demographics } => {
                    let row = f.demographics.entry(id).or_insert(DemographicsRow {
                        demographics: demographics.clone(),
                        at,
                        user_id: None,
                        registered_at: at,
                        new: false,
                        position,
                    });
                    row.demographics = demographics.clone();
                    row.at = at;
                    row.position = position;
                }
                PatientEvent::AllergyRecorded {
                    allergy_id,
                    allergy,
                } => f.allergies.push(AllergyRow {
                    id: allergy_id.to_string(),
                    patient: id,
                    allergy: allergy.clone(),
                    at,
                    by: e.stored.actor_id.clone(),
                    position,
                }),
                PatientEvent::AllergyRemoved { allergy_id } => {
                    let gone = allergy_id.to_string();
                    let before = f.allergies.len();
                    f.allergies.retain(|a| a.id != gone);
                    if f.allergies.len() == before {
                        f.allergies_removed.push(gone);
                    }
                }
                PatientEvent::ConditionAdded {
                    condition_id,
                    condition,
                } => f.conditions.push(ConditionRow {
                    id: condition_id.to_string(),
                    patient: id,
                    condition: condition.clone(),
                    resolved_on: None,
                    by: e.stored.actor_id.clone(),
                    position,
                }),
                PatientEvent::ConditionResolved {
                    condition_id,
                    resolved_on,
                } => {
                    let which = condition_id.to_string();
                    match f.conditions.iter_mut().find(|c| c.id == which) {
                        Some(c) => c.resolved_on = Some(*resolved_on),
                        None => f.resolutions.push((which, *resolved_on)),
                    }
                }
                PatientEvent::PatientDeceased { deceased_on } => {
                    touched.deceased_on = Some(*deceased_on)
                }
                PatientEvent::Erased => {}
            }
        }
        f
    }

    /// Every patient the batch touches without registering them must be in
    /// the read model: never skipped, or the record would be shown without
    /// this fact.
    async fn check_known(&self, tx: &mut Tx) -> Result<(), ProjectionError> {
        let unknown: Vec<(&String, &Touched)> = self
            .touched
            .iter()
            .filter(|(id, _)| !self.demographics.get(*id).is_some_and(|r| r.new))
            .collect();
        for chunk in unknown.chunks(400) {
            let ids: Vec<String> = chunk.iter().map(|(id, _)| (*id).clone()).collect();
            let found: Vec<String> = match &mut *tx {
                // One statement text whatever the count: prepared once.
                Tx::Postgres(c) => {
                    sqlx::query_scalar("SELECT patient_id FROM patients WHERE patient_id = ANY($1)")
                        .bind(&ids)
                        .fetch_all(&mut **c)
                        .await?
                }
                Tx::Sqlite(c) => {
                    let sql = format!(
                        "SELECT patient_id FROM patients WHERE patient_id IN ({})",
                        sql::list(ids.len())
                    );
                    let mut q = sqlx::query_scalar(&sql);
                    for id in &ids {
                        q = q.bind(id.as_str());
                    }
                    q.fetch_all(&mut **c).await?
                }
            };
            let found: std::collections::HashSet<String> = found.into_iter().collect();
            if let Some((_, t)) = chunk.iter().find(|(id, _)| !found.contains(*id)) {
                return Err(ProjectionError::Event {
                    position: t.first,
                    detail: "a patient event for a patient the read model does not hold".into(),
                });
            }
        }
        Ok(())
    }

    async fn write(self, tx: &mut Tx) -> Result<(), ProjectionError> {
        // Demographics: one guarded upsert for every patient registered or
        // updated. The version guard makes a replayed event (or one older
        // than the row) a no-op; registration time and account link are
        // never overwritten.
        let rows: Vec<Vec<Bound>> = self
            .demographics
            .iter()
            .map(|(id, r)| {
                let d = &r.demographics;
                vec![
                    id.as_str().into(),
                    storable(&d.name.family).into(),
                    storable(&d.name.given).into(),
                    storable(&d.name.family.to_lowercase()).into(),
                    storable(&d.name.given.to_lowercase()).into(),
                    d.birth_date.date().into(),
                    d.sex.as_str().into(),
                    d.contact.phone.as_deref().map(storable).into(),
                    d.contact.email.as_deref().map(storable).into(),
                    d.address.as_ref().map(json_text).into(),
                    r.user_id.map(|u| u.to_string()).into(),
                    r.registered_at.into(),
                    r.at.into(),
                    r.position.into(),
                ]
            })
            .collect();
        let written = if rows.is_empty() {
            Vec::new()
        } else {
            sql::insert_rows_returning(
                tx,
                "patients (patient_id, family_name, given_name, family_key, given_key, \
                 birth_date, sex, phone, email, address, user_id, registered_at, updated_at, \
                 version)",
                "ON CONFLICT (patient_id) DO UPDATE SET family_name = excluded.family_name, \
                 given_name = excluded.given_name, family_key = excluded.family_key, \
                 given_key = excluded.given_key, birth_date = excluded.birth_date, \
                 sex = excluded.sex, phone = excluded.phone, email = excluded.email, \
                 address = excluded.address, updated_at = excluded.updated_at, \
                 version = excluded.version \
                 WHERE patients.version < excluded.version RETURNING patient_id",
                &rows,
            )
            .await?
        };
        // Identifiers of the rows just written replace the old ones (a
        // registration has none to clear).
        let replaced: Vec<Vec<Bound>> = written
            .iter()
            .filter(|id| self.demographics.get(*id).is_some_and(|r| !r.new))
            .map(|id| vec![id.as_str().into()])
            .collect();
        if !replaced.is_empty() {
            sql::with_values(
                tx,
                "patient_id",
                &replaced,
                "DELETE FROM patient_identifiers WHERE patient_id IN (SELECT patient_id FROM v)",
            )
            .await?;
        }
        let identifiers: Vec<Vec<Bound>> = written
            .iter()
            .filter_map(|id| self.demographics.get(id).map(|r| (id, r)))
            .flat_map(|(id, r)| {
                r.demographics
                    .identifiers
                    .iter()
                    .enumerate()
                    .map(move |(n, i)| {
                        vec![
                            id.as_str().into(),
                            storable(&i.system).into(),
                            storable(&i.value).into(),
                            (n as i64).into(),
                        ]
                    })
            })
            .collect();
        if !identifiers.is_empty() {
            sql::insert_rows(
                tx,
                "patient_identifiers (patient_id, system, value, ordinal)",
                "",
                &identifiers,
            )
            .await?;
        }
        let allergies: Vec<Vec<Bound>> = self
            .allergies
            .iter()
            .map(|a| {
                vec![
                    a.id.as_str().into(),
                    a.patient.as_str().into(),
                    storable(&a.allergy.substance).into(),
                    storable(&a.allergy.reaction).into(),
                    severity_name(&a.allergy).into(),
                    a.at.into(),
                    a.by.as_str().into(),
                    a.position.into(),
                ]
            })
            .collect();
        if !allergies.is_empty() {
            sql::insert_rows(
                tx,
                "patient_allergies (allergy_id, patient_id, substance, reaction, severity, \
                 recorded_at, recorded_by, position)",
                "ON CONFLICT (allergy_id) DO NOTHING",
                &allergies,
            )
            .await?;
        }
        if !self.allergies_removed.is_empty() {
            let gone: Vec<Vec<Bound>> = self
                .allergies_removed
                .iter()
                .map(|id| vec![id.as_str().into()])
                .collect();
            sql::with_values(
                tx,
                "allergy_id",
                &gone,
                "DELETE FROM patient_allergies WHERE allergy_id IN (SELECT allergy_id FROM v)",
            )
            .await?;
        }
        let conditions: Vec<Vec<Bound>> = self
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.id.as_str().into(),
                    c.patient.as_str().into(),
                    c.condition.code.as_deref().map(storable).into(),
                    storable(&c.condition.description).into(),
                    c.condition.onset.into(),
                    c.resolved_on.into(),
                    c.by.as_str().into(),
                    c.position.into(),
                ]
            })
            .collect();
        if !conditions.is_empty() {
            sql::insert_rows(
                tx,
                "patient_conditions (condition_id, patient_id, code, description, onset, \
                 resolved_on, recorded_by, position)",
                "ON CONFLICT (condition_id) DO NOTHING",
                &conditions,
            )
            .await?;
        }
        if !self.resolutions.is_empty() {
            let resolved: Vec<Vec<Bound>> = self
                .resolutions
                .iter()
                .map(|(id, on)| vec![id.as_str().into(), (*on).into()])
                .collect();
            sql::with_values(
                tx,
                "condition_id, resolved_on",
                &resolved,
                "UPDATE patient_conditions SET resolved_on = v.resolved_on FROM v \
                 WHERE patient_conditions.condition_id = v.condition_id",
            )
            .await?;
        }
        // Every touched row records the last event it reflects (and a death).
        let bumps: Vec<Vec<Bound>> = self
            .touched
            .iter()
            .filter(|(id, t)| {
                t.deceased_on.is_some()
                    || self
                        .demographics
                        .get(*id)
                        .is_none_or(|r| r.position < t.last)
            })
            .map(|(id, t)| {
                vec![
                    id.as_str().into(),
                    t.last.into(),
                    t.at.into(),
                    t.deceased_on.into(),
                ]
            })
            .collect();
        if !bumps.is_empty() {
            sql::with_values(
                tx,
                "patient_id, version, updated_at, deceased_on",
                &bumps,
                // `<=`: the upsert above may already have moved the row to
                // this batch's last position (a death, then a demographics
                // update); the death must still be written. Equal values on
                // a replay change nothing.
                "UPDATE patients SET version = v.version, updated_at = v.updated_at, \
                 deceased_on = COALESCE(v.deceased_on, patients.deceased_on) FROM v \
                 WHERE patients.patient_id = v.patient_id AND patients.version <= v.version",
            )
            .await?;
        }
        Ok(())
    }
}

/// The severity's stored name (`mild`, `life_threatening`).
fn severity_name(allergy: &Allergy) -> String {
    match serde_json::to_value(allergy.severity) {
        Ok(Value::String(name)) => name,
        _ => "unknown".into(),
    }
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
    /// Where the patient's chart is (`GET`), for those who may read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
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

/// The list-valued parts of some patients, from the child tables.
#[derive(Default)]
struct Lists {
    identifiers: HashMap<String, Vec<Value>>,
    allergies: HashMap<String, Vec<Value>>,
    conditions: HashMap<String, Vec<Value>>,
}

/// One item of one of a patient's lists: the three child tables read in
/// one round trip (`kind` 1 identifier, 2 allergy, 3 condition).
#[derive(sqlx::FromRow)]
struct ListRow {
    kind: i64,
    patient_id: String,
    item_id: Option<String>,
    t1: Option<String>,
    t2: Option<String>,
    t3: Option<String>,
    d1: Option<NaiveDate>,
    d2: Option<NaiveDate>,
    at_time: Option<DateTime<Utc>>,
    actor: Option<String>,
}

/// The lists of the patients `{ids}`, in list order. The same text on
/// both backends (`CAST(NULL AS …)` types the empty columns for Postgres).
const LISTS: &str = "\
    SELECT CAST(1 AS bigint) AS kind, patient_id, CAST(NULL AS text) AS item_id, system AS t1, value AS t2, \
        CAST(NULL AS text) AS t3, CAST(NULL AS date) AS d1, CAST(NULL AS date) AS d2, \
        CAST(NULL AS timestamptz) AS at_time, CAST(NULL AS text) AS actor, ordinal AS ord \
        FROM patient_identifiers WHERE patient_id IN ({ids}) \
    UNION ALL \
    SELECT 2, patient_id, allergy_id, substance, reaction, severity, NULL, NULL, recorded_at, \
        recorded_by, position FROM patient_allergies WHERE patient_id IN ({ids}) \
    UNION ALL \
    SELECT 3, patient_id, condition_id, code, description, NULL, onset, resolved_on, NULL, \
        recorded_by, position FROM patient_conditions WHERE patient_id IN ({ids}) \
    ORDER BY patient_id, kind, ord";

impl Lists {
    async fn of(db: &Db, ids: &[&str]) -> Result<Self, sqlx::Error> {
        let mut lists = Lists::default();
        if ids.is_empty() {
            return Ok(lists);
        }
        let sql = LISTS.replace("{ids}", &sql::list(ids.len()));
        let rows: Vec<ListRow> = on_pool!(db, |p| {
            let mut q = sqlx::query_as(&sql);
            for id in ids {
                q = q.bind(*id);
            }
            q.fetch_all(p).await
        })?;
        for r in rows {
            let missing = |column: &str| sqlx::Error::ColumnDecode {
                index: column.to_owned(),
                source: "a list item lacks a required value".into(),
            };
            match r.kind {
                1 => lists
                    .identifiers
                    .entry(r.patient_id)
                    .or_default()
                    .push(json!({"system": r.t1, "value": r.t2})),
                2 => lists
                    .allergies
                    .entry(r.patient_id)
                    .or_default()
                    .push(json!({
                        "id": r.item_id.ok_or_else(|| missing("allergy_id"))?,
                        "substance": r.t1,
                        "reaction": r.t2,
                        "severity": r.t3,
                        "recorded_at": r.at_time.ok_or_else(|| missing("recorded_at"))?,
                        "recorded_by": r.actor,
                    })),
                _ => lists
                    .conditions
                    .entry(r.patient_id)
                    .or_default()
                    .push(json!({
                        "id": r.item_id.ok_or_else(|| missing("condition_id"))?,
                        "code": r.t1,
                        "description": r.t2,
                        "onset": r.d1,
                        "resolved_on": r.d2,
                        "recorded_by": r.actor,
                    })),
            }
        }
        Ok(lists)
    }
}

impl PatientRow {
    fn view(self, lists: &mut Lists) -> Result<PatientView, sqlx::Error> {
        let address = self
            .address
            .map(|a| serde_json::from_str(&a).map_err(|e| corrupt("address", &e)))
            .transpose()?;
        let id = self.patient_id;
        Ok(PatientView {
            // No entry: no child rows, an empty list. A damaged row fails
            // decoding in `Lists::of`; it never reads as empty.
            identifiers: lists.identifiers.remove(&id).unwrap_or_default(),
            allergies: Some(lists.allergies.remove(&id).unwrap_or_default()),
            conditions: Some(lists.conditions.remove(&id).unwrap_or_default()),
            id,
            family_name: self.family_name,
            given_name: self.given_name,
            birth_date: self.birth_date,
            sex: self.sex,
            phone: self.phone,
            email: self.email,
            address,
            deceased_on: self.deceased_on,
            registered_at: self.registered_at,
            updated_at: self.updated_at,
            version: self.version,
            chart: None,
        })
    }
}

/// Patients with their lists, in the rows' order.
async fn views(db: &Db, rows: Vec<PatientRow>) -> Result<Vec<PatientView>, sqlx::Error> {
    let ids: Vec<&str> = rows.iter().map(|r| r.patient_id.as_str()).collect();
    let mut lists = Lists::of(db, &ids).await?;
    rows.into_iter().map(|r| r.view(&mut lists)).collect()
}

const COLUMNS: &str = "patient_id, family_name, given_name, birth_date, sex, phone, email, \
    address, deceased_on, registered_at, updated_at, version";

/// One patient, if the read model has them.
pub async fn get(db: &Db, id: &str) -> Result<Option<PatientView>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM patients WHERE patient_id = $1 AND version > 0");
    let row: Option<PatientRow> = on_pool!(db, |p| sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(p)
        .await)?;
    match row {
        Some(row) => Ok(views(db, vec![row]).await?.pop()),
        None => Ok(None),
    }
}
