//! The clinical record's read models: `chart_entries` (each entry's current
//! version: the timeline), `chart_versions` (every version),
//! `care_team_members` and `break_glass_grants`; and their queries. Times
//! are whole seconds since the epoch (migration 0010).
//!
//! No access is decided from these tables: the care team and grants are
//! read from the log by the policy layer (ADR 0013). They answer the
//! timeline, an entry's history and compliance's list of grants.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value as Json;

use anamnesis_commands::Db;
use anamnesis_domain::chart::{CareEvent, EntryBody, EntryEvent};
use anamnesis_domain::codec::{DecodeError, StoredForm};

use crate::runner::{Decode, Envelope, ProjectionError, Projector, Tx};
use crate::sql::{self, Value};

/// The projector's checkpoint name.
pub const NAME: &str = "chart";

/// An event of a chart entry or of a care team.
#[derive(Debug, Clone, PartialEq)]
pub enum ChartEvent {
    Entry(EntryEvent),
    Care(CareEvent),
}

impl Decode for ChartEvent {
    fn decode(event_type: &str, version: &str, payload: &str) -> Result<Self, DecodeError> {
        Ok(match event_type.split('.').next().unwrap_or("") {
            "chart_entry" => Self::Entry(EntryEvent::from_stored(event_type, version, payload)?),
            "care_team" => Self::Care(CareEvent::from_stored(event_type, version, payload)?),
            _ => {
                return Err(DecodeError::Unknown {
                    event_type: event_type.to_owned(),
                    version: version.to_owned(),
                })
            }
        })
    }
}

/// Projects chart entries, their versions, care teams and grants.
#[derive(Debug, Clone, Copy, Default)]
pub struct Chart;

impl Projector for Chart {
    type Event = ChartEvent;

    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["chart_entry", "care_team"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "chart_entries",
            "chart_versions",
            "care_team_members",
            "break_glass_grants",
        ]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<ChartEvent>],
    ) -> Result<(), ProjectionError> {
        // Entries change a few times in their life: one statement or two per
        // event, in the batch's one transaction. Care-team members added
        // (a registration adds its provider) are one insert, up to the next
        // removal of a member.
        let mut added = sql::Run::unchecked(
            "care_team_members (patient_id, user_id, reason, added_by, added_at)",
            "ON CONFLICT (patient_id, user_id) DO NOTHING",
        );
        // Entries created in the batch stay in memory until its end (later
        // events about them change them there); every version is a row of
        // one insert.
        let mut entries = Entries {
            created: BTreeMap::new(),
            versions: sql::Run::unchecked(
                "chart_versions (entry_id, version, event_type, body, reason, actor_id, \
                 actor_role, recorded_at, position)",
                "ON CONFLICT (entry_id, version) DO NOTHING",
            ),
        };
        for e in events {
            // Only a removal touches the members' table: the run goes in
            // before it, and grows across every other event.
            if matches!(e.event, ChartEvent::Care(CareEvent::MemberRemoved { .. })) {
                added.flush(tx).await?;
            }
            match &e.event {
                ChartEvent::Entry(event) => entry(tx, e, event, &mut entries).await?,
                ChartEvent::Care(event) => care(tx, e, event, &mut added).await?,
            }
        }
        added.flush(tx).await?;
        entries.write(tx).await
    }

    /// Every chart entry and version, the care team and the grants go.
    async fn erase(&self, tx: &mut Tx, patient: uuid::Uuid) -> Result<(), ProjectionError> {
        crate::sql::erase_patient(
            tx,
            &[
            "DELETE FROM chart_versions WHERE entry_id IN (SELECT entry_id FROM chart_entries WHERE patient_id = $1)",
            "DELETE FROM chart_entries WHERE patient_id = $1",
            "DELETE FROM care_team_members WHERE patient_id = $1",
            "DELETE FROM break_glass_grants WHERE patient_id = $1",
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

/// An entry's body as shown: as stored, with what is derived from it (BMI).
pub fn shown(body: &EntryBody) -> Result<Json, serde_json::Error> {
    let mut json = serde_json::to_value(body)?;
    if let (EntryBody::Vitals(v), Some(map)) = (body, json.as_object_mut()) {
        map.insert("bmi".into(), v.bmi().into());
    }
    Ok(json)
}

fn damaged(e: &Envelope<ChartEvent>, detail: impl Into<String>) -> ProjectionError {
    ProjectionError::Event {
        position: e.position(),
        detail: detail.into(),
    }
}

/// A chart entry created in the batch, as its row will be written.
struct Created {
    /// The position of the event that created it.
    created: i64,
    patient_id: String,
    kind: &'static str,
    status: &'static str,
    author_id: String,
    appointment_id: Option<String>,
    title: String,
    search: String,
    body: String,
    versions: i64,
    critical: i64,
    effective_at: i64,
    recorded_at: i64,
    updated_at: i64,
    signed_at: Option<i64>,
    signed_by: Option<String>,
    withdrawn_reason: Option<String>,
    position: i64,
}

/// What a batch writes of chart entries at its end.
struct Entries {
    created: BTreeMap<String, Created>,
    versions: sql::Run,
}

impl Entries {
    /// Adds version `n` of entry `e.id()`.
    fn version(&mut self, e: &Envelope<ChartEvent>, n: i64, json: &str, reason: Option<String>) {
        self.versions.push(
            String::new(),
            e.position(),
            vec![
                e.id().into(),
                n.into(),
                e.stored.event_type.as_str().into(),
                json.into(),
                reason.into(),
                e.stored.actor_id.as_str().into(),
                e.stored.actor_role.as_str().into(),
                seconds(e.stored.recorded_at),
                e.position().into(),
            ],
        );
    }

    /// The created entries in one insert (an entry the table holds already
    /// stops the projector at the event that created it again), then the
    /// versions.
    async fn write(mut self, tx: &mut Tx) -> Result<(), ProjectionError> {
        let mut created = sql::Run::new_rows(
            "chart_entries (entry_id, patient_id, kind, status, author_id, appointment_id, \
             title, search, body, versions, critical, effective_at, recorded_at, updated_at, \
             signed_at, signed_by, withdrawn_reason, position)",
            "entry_id",
            "a chart entry created twice",
        );
        for (id, c) in self.created {
            let row = vec![
                id.as_str().into(),
                c.patient_id.into(),
                c.kind.into(),
                c.status.into(),
                c.author_id.into(),
                Value::Text(c.appointment_id),
                c.title.into(),
                c.search.into(),
                c.body.into(),
                c.versions.into(),
                c.critical.into(),
                c.effective_at.into(),
                c.recorded_at.into(),
                c.updated_at.into(),
                Value::Int(c.signed_at),
                Value::Text(c.signed_by),
                Value::Text(c.withdrawn_reason),
                c.position.into(),
            ];
            created.push(id, c.created, row);
        }
        created.flush(tx).await?;
        self.versions.flush(tx).await
    }
}

async fn entry(
    tx: &mut Tx,
    e: &Envelope<ChartEvent>,
    event: &EntryEvent,
    entries: &mut Entries,
) -> Result<(), ProjectionError> {
    use EntryEvent as E;
    let at = e.stored.recorded_at;
    let body_json = |b: &EntryBody| {
        shown(b)
            .map(|j| j.to_string())
            .map_err(|err| damaged(e, err.to_string()))
    };
    match event {
        E::Drafted { origin, body }
        | E::Recorded { origin, body }
        | E::CriticalResultRecorded { origin, body } => {
            let status = match event {
                E::Drafted { .. } => "draft",
                _ => "final",
            };
            let appointment = match body {
                EntryBody::Note(n) => n.appointment_id.map(|a| a.to_string()),
                _ => None,
            };
            let title = body.title();
            let search = format!("{title}\n{}", body.search_text()).to_lowercase();
            let json = body_json(body)?;
            let effective = body.clinical_time().unwrap_or(at);
            if entries.created.contains_key(e.id()) {
                return Err(damaged(e, "a chart entry created twice"));
            }
            entries.version(e, 1, &json, None);
            entries.created.insert(
                e.id().to_owned(),
                Created {
                    created: e.position(),
                    patient_id: origin.patient_id.to_string(),
                    kind: body.kind().as_str(),
                    status,
                    author_id: origin.author.to_string(),
                    appointment_id: appointment,
                    title: title.to_string(),
                    search,
                    body: json,
                    versions: 1,
                    critical: i64::from(body.is_critical()),
                    effective_at: effective.timestamp(),
                    recorded_at: at.timestamp(),
                    updated_at: at.timestamp(),
                    signed_at: None,
                    signed_by: None,
                    withdrawn_reason: None,
                    position: e.position(),
                },
            );
        }
        E::Revised { body } | E::Amended { body, .. } | E::CriticalResultAmended { body, .. } => {
            let reason = match event {
                E::Amended { reason, .. } | E::CriticalResultAmended { reason, .. } => {
                    Some(reason.clone())
                }
                _ => None,
            };
            let title = body.title();
            let search = format!("{title}\n{}", body.search_text()).to_lowercase();
            let json = body_json(body)?;
            let effective = body.clinical_time();
            if let Some(c) = entries.created.get_mut(e.id()) {
                c.title = title.to_string();
                c.search = search;
                c.body = json.clone();
                c.versions += 1;
                c.critical = i64::from(body.is_critical());
                c.effective_at = effective.map_or(c.effective_at, |t| t.timestamp());
                c.updated_at = at.timestamp();
                c.position = e.position();
                let n = c.versions;
                entries.version(e, n, &json, reason);
                return Ok(());
            }
            let versions = sql::returning(
                tx,
                "UPDATE chart_entries SET title = $2, search = $3, body = $4, \
                 versions = versions + 1, critical = $5, \
                 effective_at = COALESCE($6, effective_at), updated_at = $7, position = $8 \
                 WHERE entry_id = $1 RETURNING CAST(versions AS TEXT)",
                &[
                    e.id().into(),
                    title.into(),
                    search.into(),
                    json.clone().into(),
                    i64::from(body.is_critical()).into(),
                    Value::Int(effective.map(|t| t.timestamp())),
                    seconds(at),
                    e.position().into(),
                ],
            )
            .await?;
            let n = versions
                .first()
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| damaged(e, "a version of an entry the chart does not hold"))?;
            entries.version(e, n, &json, reason);
        }
        E::Signed { at: signed_at } => {
            if let Some(c) = entries.created.get_mut(e.id()) {
                c.status = "signed";
                c.signed_at = Some(signed_at.timestamp());
                c.signed_by = Some(e.stored.actor_id.clone());
                c.updated_at = at.timestamp();
                c.position = e.position();
                return Ok(());
            }
            update(
                tx,
                e,
                "UPDATE chart_entries SET status = 'signed', signed_at = $2, signed_by = $3, \
                 updated_at = $4, position = $5 WHERE entry_id = $1",
                vec![
                    seconds(*signed_at),
                    e.stored.actor_id.as_str().into(),
                    seconds(at),
                ],
            )
            .await?;
        }
        E::EnteredInError { reason } => {
            if let Some(c) = entries.created.get_mut(e.id()) {
                c.status = "entered_in_error";
                c.withdrawn_reason = Some(reason.clone());
                c.updated_at = at.timestamp();
                c.position = e.position();
                return Ok(());
            }
            update(
                tx,
                e,
                "UPDATE chart_entries SET status = 'entered_in_error', withdrawn_reason = $2, \
                 updated_at = $3, position = $4 WHERE entry_id = $1",
                vec![reason.as_str().into(), seconds(at)],
            )
            .await?;
        }
    }
    Ok(())
}

/// Runs an update of the entry's row (`$1` its id, the last parameter the
/// position); an entry the chart does not hold is an error.
async fn update(
    tx: &mut Tx,
    e: &Envelope<ChartEvent>,
    statement: &str,
    values: Vec<Value>,
) -> Result<(), ProjectionError> {
    let mut params = vec![e.id().into()];
    params.extend(values);
    params.push(e.position().into());
    if sql::execute(tx, statement, &params).await? == 0 {
        return Err(damaged(e, "an event of an entry the chart does not hold"));
    }
    Ok(())
}

/// A care-team member's row, as `MemberAdded` makes it.
fn member(e: &Envelope<ChartEvent>, user_id: &uuid::Uuid, reason: &str) -> Vec<Value> {
    vec![
        e.id().into(),
        user_id.to_string().into(),
        reason.into(),
        e.stored.actor_id.as_str().into(),
        seconds(e.stored.recorded_at),
    ]
}

/// Applies a care-team event; a member added goes into the run `added`.
async fn care(
    tx: &mut Tx,
    e: &Envelope<ChartEvent>,
    event: &CareEvent,
    added: &mut sql::Run,
) -> Result<(), ProjectionError> {
    let patient = e.id();
    match event {
        CareEvent::MemberAdded { user_id, reason } => {
            added.push(String::new(), e.position(), member(e, user_id, reason));
        }
        CareEvent::MemberRemoved { user_id, .. } => {
            sql::execute(
                tx,
                "DELETE FROM care_team_members WHERE patient_id = $1 AND user_id = $2",
                &[patient.into(), user_id.to_string().into()],
            )
            .await?;
        }
        CareEvent::GlassBroken {
            grant_id,
            user_id,
            reason,
            at,
            expires_at,
        } => {
            sql::execute(
                tx,
                "INSERT INTO break_glass_grants (grant_id, patient_id, user_id, user_role, reason, \
                 granted_at, expires_at, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (grant_id) DO NOTHING",
                &[
                    grant_id.to_string().into(),
                    patient.into(),
                    user_id.to_string().into(),
                    e.stored.actor_role.as_str().into(),
                    reason.as_str().into(),
                    seconds(*at),
                    seconds(*expires_at),
                    e.position().into(),
                ],
            )
            .await?;
        }
    }
    Ok(())
}

// --- queries -------------------------------------------------------------------

/// Seconds since the epoch as an instant; a value no instant has is
/// damage, never read as 1970.
fn time(secs: i64) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::from_timestamp(secs, 0).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "seconds".into(),
        source: format!("{secs} is no instant").into(),
    })
}

/// One entry on the timeline: its current version.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    pub id: String,
    pub patient_id: String,
    /// note, vitals, lab, diagnosis, procedure, immunization or document.
    pub kind: String,
    /// draft, signed, final or entered_in_error.
    pub status: String,
    pub author_id: String,
    pub appointment_id: Option<String>,
    pub title: String,
    /// The current version (with derived values such as `bmi`).
    #[schema(value_type = Object)]
    pub current: Json,
    /// How many versions it has had (1 until amended).
    pub versions: i64,
    /// A critical lab result.
    pub critical: bool,
    #[schema(value_type = String, format = DateTime)]
    pub effective_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub signed_at: Option<DateTime<Utc>>,
    pub signed_by: Option<String>,
    /// Why it was entered in error, if it was.
    pub withdrawn_reason: Option<String>,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    entry_id: String,
    patient_id: String,
    kind: String,
    status: String,
    author_id: String,
    appointment_id: Option<String>,
    title: String,
    body: String,
    versions: i64,
    critical: i64,
    effective_at: i64,
    recorded_at: i64,
    updated_at: i64,
    signed_at: Option<i64>,
    signed_by: Option<String>,
    withdrawn_reason: Option<String>,
}

impl EntryRow {
    fn view(self) -> Result<EntryView, sqlx::Error> {
        let current = serde_json::from_str(&self.body).map_err(|e| sqlx::Error::ColumnDecode {
            index: "body".into(),
            source: Box::new(e),
        })?;
        Ok(EntryView {
            id: self.entry_id,
            patient_id: self.patient_id,
            kind: self.kind,
            status: self.status,
            author_id: self.author_id,
            appointment_id: self.appointment_id,
            title: self.title,
            current,
            versions: self.versions,
            critical: self.critical != 0,
            effective_at: time(self.effective_at)?,
            recorded_at: time(self.recorded_at)?,
            updated_at: time(self.updated_at)?,
            signed_at: self.signed_at.map(time).transpose()?,
            signed_by: self.signed_by,
            withdrawn_reason: self.withdrawn_reason,
        })
    }
}

const ENTRY_COLUMNS: &str = "entry_id, patient_id, kind, status, author_id, appointment_id, \
     title, body, versions, critical, effective_at, recorded_at, updated_at, signed_at, \
     signed_by, withdrawn_reason";

/// Which entries of a patient's timeline a query wants.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub patient_id: String,
    pub kind: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub author_id: Option<String>,
    pub appointment_id: Option<String>,
    /// Free text over titles and notes (any case).
    pub text: Option<String>,
    /// Only signed and final entries (the patient's own view).
    pub signed_only: bool,
    /// Entries before this one in timeline order (`effective_at`, id).
    pub before: Option<(i64, String)>,
    pub limit: i64,
}

/// `%text%` for LIKE, with the pattern characters escaped.
fn contains(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A page of a patient's timeline, newest first, without entries entered in
/// error; one more than `limit` tells whether there is more. Only the
/// filters given are in the statement, so that the planner walks the
/// `(patient_id, effective_at, entry_id)` index in order and stops at the
/// page's end, however long the chart.
pub async fn timeline(db: &Db, t: &Timeline) -> Result<(Vec<EntryView>, bool), sqlx::Error> {
    let mut clauses = vec![
        "patient_id = $1".to_owned(),
        "status <> 'entered_in_error'".to_owned(),
    ];
    let mut params: Vec<Value> = vec![t.patient_id.as_str().into()];
    let mut param = |v: Value| {
        params.push(v);
        format!("${}", params.len())
    };
    if t.signed_only {
        clauses.push("status IN ('signed', 'final')".to_owned());
    }
    if let Some(kind) = &t.kind {
        clauses.push(format!("kind = {}", param(kind.as_str().into())));
    }
    if let Some(from) = t.from {
        clauses.push(format!(
            "effective_at >= {}",
            param(from.timestamp().into())
        ));
    }
    if let Some(to) = t.to {
        clauses.push(format!("effective_at <= {}", param(to.timestamp().into())));
    }
    if let Some(author) = &t.author_id {
        clauses.push(format!("author_id = {}", param(author.as_str().into())));
    }
    if let Some(appointment) = &t.appointment_id {
        clauses.push(format!(
            "appointment_id = {}",
            param(appointment.as_str().into())
        ));
    }
    if let Some(text) = &t.text {
        clauses.push(format!(
            "search LIKE {} ESCAPE '\\'",
            param(contains(text).into())
        ));
    }
    if let Some((at, id)) = &t.before {
        let (at, id) = (param((*at).into()), param(id.as_str().into()));
        clauses.push(format!("(effective_at, entry_id) < ({at}, {id})"));
    }
    let limit = param((t.limit + 1).into());
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM chart_entries WHERE {} \
         ORDER BY effective_at DESC, entry_id DESC LIMIT {limit}",
        clauses.join(" AND ")
    );
    let rows: Vec<EntryRow> = match db {
        Db::Postgres(p) => bind(sqlx::query_as(&sql), &params).fetch_all(p).await?,
        Db::Sqlite(p) => bind(sqlx::query_as(&sql), &params).fetch_all(p).await?,
    };
    let more = rows.len() as i64 > t.limit;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows.into_iter().take(t.limit as usize) {
        out.push(r.view()?);
    }
    Ok((out, more))
}

/// Binds text and integer parameters in order.
fn bind<'q, DB, O>(
    mut q: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>,
    params: &'q [Value],
) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for p in params {
        q = match p {
            Value::Text(v) => q.bind(v.as_deref()),
            Value::Int(v) => q.bind(*v),
            // The timeline binds text and integers only.
            Value::Date(_) | Value::Time(_) => q,
        };
    }
    q
}

/// One entry, whatever its status.
pub async fn entry_view(db: &Db, entry_id: &str) -> Result<Option<EntryView>, sqlx::Error> {
    let sql = format!("SELECT {ENTRY_COLUMNS} FROM chart_entries WHERE entry_id = $1");
    let row: Option<EntryRow> = match db {
        Db::Postgres(p) => {
            sqlx::query_as(&sql)
                .bind(entry_id)
                .fetch_optional(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_as(&sql)
                .bind(entry_id)
                .fetch_optional(p)
                .await?
        }
    };
    row.map(EntryRow::view).transpose()
}

/// One version of an entry.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionView {
    pub version: i64,
    /// The event that made it (drafted, revised, recorded, amended, ...).
    pub event_type: String,
    #[schema(value_type = Object)]
    pub body: Json,
    /// Why it was amended.
    pub reason: Option<String>,
    pub actor_id: String,
    pub actor_role: String,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: DateTime<Utc>,
    pub position: i64,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    version: i64,
    event_type: String,
    body: String,
    reason: Option<String>,
    actor_id: String,
    actor_role: String,
    recorded_at: i64,
    position: i64,
}

/// Every version of an entry, oldest first.
pub async fn versions(db: &Db, entry_id: &str) -> Result<Vec<VersionView>, sqlx::Error> {
    let sql = "SELECT version, event_type, body, reason, actor_id, actor_role, recorded_at, \
               position FROM chart_versions WHERE entry_id = $1 ORDER BY version";
    let rows: Vec<VersionRow> = match db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(entry_id).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(entry_id).fetch_all(p).await?,
    };
    rows.into_iter()
        .map(|r| {
            let body = serde_json::from_str(&r.body).map_err(|e| sqlx::Error::ColumnDecode {
                index: "body".into(),
                source: Box::new(e),
            })?;
            Ok(VersionView {
                version: r.version,
                event_type: r.event_type,
                body,
                reason: r.reason,
                actor_id: r.actor_id,
                actor_role: r.actor_role,
                recorded_at: time(r.recorded_at)?,
                position: r.position,
            })
        })
        .collect()
}

/// A member of a patient's care team by assignment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct MemberView {
    pub user_id: String,
    pub reason: String,
    pub added_by: String,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String, format = DateTime)]
    pub added_at: Seconds,
}

/// Whole seconds since the epoch, shown as RFC 3339.
#[derive(Debug, Clone, Copy)]
pub struct Seconds(pub DateTime<Utc>);

impl TryFrom<i64> for Seconds {
    type Error = sqlx::Error;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        time(v).map(Seconds)
    }
}

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// A patient's assigned care team.
pub async fn members(db: &Db, patient_id: &str) -> Result<Vec<MemberView>, sqlx::Error> {
    let sql = "SELECT user_id, reason, added_by, added_at FROM care_team_members \
               WHERE patient_id = $1 ORDER BY added_at, user_id";
    Ok(match db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(patient_id).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(patient_id).fetch_all(p).await?,
    })
}

/// A break-the-glass grant, for compliance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct GrantView {
    pub grant_id: String,
    pub patient_id: String,
    /// Who broke the glass, and their role then.
    pub user_id: String,
    pub user_role: String,
    pub reason: String,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String, format = DateTime)]
    pub granted_at: Seconds,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Seconds,
    /// Log position of the grant (also the cursor).
    pub position: i64,
}

/// Grants in log order, after `after`, optionally of one patient or user;
/// one more than `limit` tells whether there is more.
pub async fn grants(
    db: &Db,
    (patient_id, user_id): (Option<&str>, Option<&str>),
    after: i64,
    limit: i64,
) -> Result<(Vec<GrantView>, bool), sqlx::Error> {
    let sql = "SELECT grant_id, patient_id, user_id, user_role, reason, granted_at, expires_at, \
               position FROM break_glass_grants \
               WHERE ($1 IS NULL OR patient_id = $1) AND ($2 IS NULL OR user_id = $2) \
                 AND position > $3 ORDER BY position LIMIT $4";
    let mut rows: Vec<GrantView> = match db {
        Db::Postgres(p) => {
            sqlx::query_as(sql)
                .bind(patient_id)
                .bind(user_id)
                .bind(after)
                .bind(limit + 1)
                .fetch_all(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_as(sql)
                .bind(patient_id)
                .bind(user_id)
                .bind(after)
                .bind(limit + 1)
                .fetch_all(p)
                .await?
        }
    };
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}

/// Which of `patients` the user `user_id` is in the care of by assignment
/// or by an appointment ending at or after `since` (seconds), as the read
/// models say: for a search page, one query for every row. Break-the-glass
/// grants are not counted here: a search shows no record under them.
pub async fn in_care(
    db: &Db,
    user_id: &str,
    patients: &[String],
    since: i64,
) -> Result<Vec<String>, sqlx::Error> {
    if patients.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = (0..patients.len()).map(|i| format!("${}", i + 3)).collect();
    let ids = ids.join(", ");
    let sql = format!(
        "SELECT patient_id FROM care_team_members WHERE user_id = $1 AND patient_id IN ({ids}) \
         UNION \
         SELECT a.patient_id FROM appointments a JOIN providers p ON p.provider_id = a.provider_id \
         WHERE p.user_id = $1 AND a.status <> 'cancelled' AND a.ends_at >= $2 \
           AND a.patient_id IN ({ids})"
    );
    macro_rules! run {
        ($pool:expr) => {{
            let mut q = sqlx::query_scalar(&sql).bind(user_id).bind(since);
            for p in patients {
                q = q.bind(p);
            }
            q.fetch_all($pool).await?
        }};
    }
    Ok(match db {
        Db::Postgres(p) => run!(p),
        Db::Sqlite(p) => run!(p),
    })
}
