//! The `access_log` read model: who read which patient's data, what, when
//! (ADR 0012), from the `access.read` events; and its queries.

use chrono::{DateTime, Utc};
use serde::Serialize;

use anamnesis_commands::Db;
use anamnesis_domain::access::{AccessEvent, ACCESS_TYPE};

use crate::runner::{Envelope, ProjectionError, Projector, Tx};
use crate::sql;

/// The projector's checkpoint name.
pub const NAME: &str = "access_log";

/// Projects access records.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLog;

impl Projector for AccessLog {
    type Event = AccessEvent;

    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[ACCESS_TYPE]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["access_log"]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<AccessEvent>],
    ) -> Result<(), ProjectionError> {
        let mut rows = Vec::with_capacity(events.len());
        for e in events {
            let patient = e.stored.patient_id.ok_or_else(|| ProjectionError::Event {
                position: e.position(),
                detail: "an access record names no patient".into(),
            })?;
            let AccessEvent::Read { what, break_glass } = &e.event;
            rows.push(vec![
                e.position().into(),
                patient.to_string().into(),
                e.stored.actor_id.as_str().into(),
                e.stored.actor_role.as_str().into(),
                what.as_str().into(),
                i64::from(*break_glass).into(),
                e.stored.recorded_at.into(),
            ]);
        }
        sql::insert_rows(
            tx,
            "access_log (position, patient_id, actor_id, actor_role, what, break_glass, \
             recorded_at)",
            "ON CONFLICT (position) DO NOTHING",
            &rows,
        )
        .await?;
        Ok(())
    }

    /// Access records hold who read what of whom, no clinical content: audit
    /// data that outlives the erasure (ADR 0024).
    async fn erase(&self, _: &mut Tx, _: uuid::Uuid) -> Result<(), ProjectionError> {
        Ok(())
    }
}

/// One recorded read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct AccessEntry {
    /// Log position of the record (also the cursor).
    pub position: i64,
    pub patient_id: String,
    /// Who read: their user id, and their role then.
    pub actor_id: String,
    pub actor_role: String,
    /// What was read (the route).
    pub what: String,
    /// 1 when read by breaking the glass.
    pub break_glass: i64,
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: DateTime<Utc>,
}

/// Which records a query wants.
#[derive(Debug, Clone, Default)]
pub struct AccessFilter {
    pub patient_id: Option<String>,
    pub actor_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Records after this position.
    pub after: Option<i64>,
    pub limit: i64,
}

/// Records in log order; one more than `limit` tells whether there is more.
pub async fn entries(db: &Db, f: &AccessFilter) -> Result<(Vec<AccessEntry>, bool), sqlx::Error> {
    let sql = "SELECT position, patient_id, actor_id, actor_role, what, break_glass, recorded_at \
               FROM access_log \
               WHERE ($1 IS NULL OR patient_id = $1) AND ($2 IS NULL OR actor_id = $2) \
                 AND ($3 IS NULL OR recorded_at >= $3) AND ($4 IS NULL OR recorded_at <= $4) \
                 AND position > $5 \
               ORDER BY position LIMIT $6";
    let mut rows: Vec<AccessEntry> = match db {
        Db::Postgres(p) => {
            sqlx::query_as(sql)
                .bind(f.patient_id.as_deref())
                .bind(f.actor_id.as_deref())
                .bind(f.from)
                .bind(f.to)
                .bind(f.after.unwrap_or(0))
                .bind(f.limit + 1)
                .fetch_all(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_as(sql)
                .bind(f.patient_id.as_deref())
                .bind(f.actor_id.as_deref())
                .bind(f.from)
                .bind(f.to)
                .bind(f.after.unwrap_or(0))
                .bind(f.limit + 1)
                .fetch_all(p)
                .await?
        }
    };
    let more = rows.len() as i64 > f.limit;
    rows.truncate(f.limit as usize);
    Ok((rows, more))
}
