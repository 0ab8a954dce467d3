//! What admins see of deliveries: every row and every attempt, with no
//! patient data (no patient id, no address, no subject: the kind, the
//! recipient's user id, the status and what went wrong).

use chrono::{DateTime, Utc};
use serde::Serialize;

use anamnesis_commands::Db;

/// Every status a delivery can have.
pub const STATUSES: [&str; 7] = [
    "pending", "sending", "sent", "dead", "expired", "unknown", "skipped",
];

/// A delivery of one notification over one channel.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub notification_id: String,
    /// email or webhook.
    pub channel: String,
    /// The user the notification is for.
    pub recipient_id: String,
    pub kind: String,
    pub urgent: bool,
    /// pending, sending, sent, dead, expired, unknown or skipped.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    pub enqueued_at: DateTime<Utc>,
    /// When a pending delivery is next tried.
    pub next_attempt_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The last failure (an HTTP status, an SMTP code): never patient data.
    pub last_error: Option<String>,
}

/// One attempt.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    /// 1 for the first.
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    /// Absent while under way.
    pub finished_at: Option<DateTime<Utc>>,
    /// sent, failed, skipped, unknown or interrupted; absent while under way.
    pub outcome: Option<String>,
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    notification_id: String,
    channel: String,
    recipient_id: String,
    kind: String,
    urgent: i64,
    status: String,
    attempts: i64,
    enqueued_at_ms: i64,
    next_at_ms: i64,
    updated_at_ms: i64,
    last_error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    attempt: i64,
    started_at_ms: i64,
    finished_at_ms: Option<i64>,
    outcome: Option<String>,
    error: Option<String>,
}

/// A stored time; one out of range is damage, said so, never shown as 1970.
fn at(ms: i64) -> Result<DateTime<Utc>, sqlx::Error> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| sqlx::Error::Decode(format!("a delivery time out of range: {ms}").into()))
}

impl TryFrom<Row> for DeliveryView {
    type Error = sqlx::Error;

    fn try_from(r: Row) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.id,
            notification_id: r.notification_id,
            channel: r.channel,
            recipient_id: r.recipient_id,
            kind: r.kind,
            urgent: r.urgent != 0,
            status: r.status,
            attempts: r.attempts,
            enqueued_at: at(r.enqueued_at_ms)?,
            next_attempt_at: at(r.next_at_ms)?,
            updated_at: at(r.updated_at_ms)?,
            last_error: r.last_error,
        })
    }
}

const COLUMNS: &str = "id, notification_id, channel, recipient_id, kind, urgent, status, \
                       attempts, enqueued_at_ms, next_at_ms, updated_at_ms, last_error";

/// A page of deliveries, newest first, with ids below `before`, of
/// `status` when given; whether more follow.
pub async fn list(
    db: &Db,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<DeliveryView>, bool), sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM deliveries WHERE id < $1 AND ($2 IS NULL OR status = $2) \
         ORDER BY id DESC LIMIT $3"
    );
    let before = before.unwrap_or(i64::MAX);
    let rows: Vec<Row> = match db {
        Db::Postgres(p) => {
            sqlx::query_as(&sql)
                .bind(before)
                .bind(status)
                .bind(limit + 1)
                .fetch_all(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_as(&sql)
                .bind(before)
                .bind(status)
                .bind(limit + 1)
                .fetch_all(p)
                .await?
        }
    };
    let more = rows.len() as i64 > limit;
    let page = rows
        .into_iter()
        .take(limit as usize)
        .map(DeliveryView::try_from)
        .collect::<Result<_, _>>()?;
    Ok((page, more))
}

/// Delivery `id`, if there is one.
pub async fn get(db: &Db, id: i64) -> Result<Option<DeliveryView>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM deliveries WHERE id = $1");
    let row: Option<Row> = match db {
        Db::Postgres(p) => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?,
        Db::Sqlite(p) => sqlx::query_as(&sql).bind(id).fetch_optional(p).await?,
    };
    row.map(DeliveryView::try_from).transpose()
}

/// Every attempt of delivery `id`, first first.
pub async fn attempts(db: &Db, id: i64) -> Result<Vec<AttemptView>, sqlx::Error> {
    let sql = "SELECT attempt, started_at_ms, finished_at_ms, outcome, error \
               FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt";
    let rows: Vec<AttemptRow> = match db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(id).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(id).fetch_all(p).await?,
    };
    rows.into_iter()
        .map(|r| {
            Ok(AttemptView {
                attempt: r.attempt,
                started_at: at(r.started_at_ms)?,
                finished_at: r.finished_at_ms.map(at).transpose()?,
                outcome: r.outcome,
                error: r.error,
            })
        })
        .collect()
}
