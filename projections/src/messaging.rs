//! Secure messaging's read models (ADR 0017): `message_threads`,
//! `thread_participants` (the read receipts and archive flags, by user: the
//! inbox) and `thread_messages`; and their queries. Times are whole seconds
//! since the epoch (migration 0013).
//!
//! No access is decided from these tables: who takes part is read from the
//! thread's stream by the policy layer. They answer the inbox with its
//! unread counts, a thread and its messages.

use chrono::{DateTime, Utc};
use serde::Serialize;

use anamnesis_commands::Db;
use anamnesis_domain::messaging::{Participant, ThreadEvent};

use crate::chart::Seconds;
use crate::runner::{Envelope, ProjectionError, Projector, Tx};
use crate::sql::{self, Value};

/// The projector's checkpoint name.
pub const NAME: &str = "messaging";

/// Projects threads, their participants and their messages.
#[derive(Debug, Clone, Copy, Default)]
pub struct Messaging;

impl Projector for Messaging {
    type Event = ThreadEvent;

    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &["message_thread"]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["message_threads", "thread_participants", "thread_messages"]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<ThreadEvent>],
    ) -> Result<(), ProjectionError> {
        // A thread's events are a handful of one-row statements each, in the
        // batch's one transaction.
        for e in events {
            thread(tx, e).await?;
        }
        Ok(())
    }

    /// Threads about the patient and every message in them go.
    async fn erase(&self, tx: &mut Tx, patient: uuid::Uuid) -> Result<(), ProjectionError> {
        crate::sql::erase_patient(
            tx,
            &[
            "DELETE FROM thread_messages WHERE thread_id IN (SELECT thread_id FROM message_threads WHERE patient_id = $1)",
            "DELETE FROM thread_participants WHERE thread_id IN (SELECT thread_id FROM message_threads WHERE patient_id = $1)",
            "DELETE FROM message_threads WHERE patient_id = $1",
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

fn damaged(e: &Envelope<ThreadEvent>, detail: &str) -> ProjectionError {
    ProjectionError::Event {
        position: e.position(),
        detail: detail.to_owned(),
    }
}

/// Runs `statement` over `params`; no row touched is an event the read
/// model cannot apply (ADR 0007).
async fn one(
    tx: &mut Tx,
    e: &Envelope<ThreadEvent>,
    statement: &str,
    params: &[Value],
    what: &str,
) -> Result<(), ProjectionError> {
    if sql::execute(tx, statement, params).await? == 0 {
        return Err(damaged(e, what));
    }
    Ok(())
}

async fn join(
    tx: &mut Tx,
    e: &Envelope<ThreadEvent>,
    p: &Participant,
) -> Result<(), ProjectionError> {
    one(
        tx,
        e,
        "INSERT INTO thread_participants (thread_id, user_id, party, read_up_to, archived, \
         joined_at) VALUES ($1, $2, $3, 0, 0, $4) ON CONFLICT (thread_id, user_id) DO NOTHING",
        &[
            e.id().into(),
            p.user_id.to_string().into(),
            p.party.as_str().into(),
            seconds(e.stored.recorded_at),
        ],
        "a participant added twice",
    )
    .await
}

async fn thread(tx: &mut Tx, e: &Envelope<ThreadEvent>) -> Result<(), ProjectionError> {
    let id = e.id();
    let at = e.stored.recorded_at;
    match &e.event {
        ThreadEvent::Started {
            patient_id,
            subject,
            participants,
        } => {
            one(
                tx,
                e,
                "INSERT INTO message_threads (thread_id, patient_id, subject, started_by, \
                 started_at, last_message_at, message_count, position) \
                 VALUES ($1, $2, $3, $4, $5, $5, 0, $6) ON CONFLICT (thread_id) DO NOTHING",
                &[
                    id.into(),
                    patient_id.to_string().into(),
                    subject.as_str().into(),
                    e.stored.actor_id.as_str().into(),
                    seconds(at),
                    e.position().into(),
                ],
                "a thread started twice",
            )
            .await?;
            for p in participants {
                join(tx, e, p).await?;
            }
        }
        ThreadEvent::ParticipantAdded { participant } => {
            one(
                tx,
                e,
                "UPDATE message_threads SET position = $2 WHERE thread_id = $1",
                &[id.into(), e.position().into()],
                "a participant of a thread the read model does not hold",
            )
            .await?;
            join(tx, e, participant).await?;
        }
        ThreadEvent::MessagePosted {
            number,
            author,
            body,
            at: posted_at,
        } => {
            let number = i64::from(*number);
            one(
                tx,
                e,
                "UPDATE message_threads SET message_count = $2, last_message_at = $3, \
                 position = $4 WHERE thread_id = $1 AND message_count = $2 - 1",
                &[
                    id.into(),
                    number.into(),
                    seconds(*posted_at),
                    e.position().into(),
                ],
                "a message out of its thread's order, or of a thread the read model does not hold",
            )
            .await?;
            one(
                tx,
                e,
                "INSERT INTO thread_messages (thread_id, number, author_id, author_role, body, \
                 posted_at, position) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    id.into(),
                    number.into(),
                    author.to_string().into(),
                    e.stored.actor_role.as_str().into(),
                    body.as_str().into(),
                    seconds(*posted_at),
                    e.position().into(),
                ],
                "a message not written",
            )
            .await?;
            // The author has read up to their own message; a new message
            // brings the thread back to every inbox.
            one(
                tx,
                e,
                "UPDATE thread_participants SET archived = 0, \
                 read_up_to = CASE WHEN user_id = $2 AND read_up_to < $3 THEN $3 \
                 ELSE read_up_to END WHERE thread_id = $1",
                &[id.into(), author.to_string().into(), number.into()],
                "a message in a thread without participants",
            )
            .await?;
        }
        ThreadEvent::Read { user_id, up_to } => {
            one(
                tx,
                e,
                "UPDATE thread_participants SET read_up_to = CASE WHEN read_up_to < $3 THEN $3 \
                 ELSE read_up_to END WHERE thread_id = $1 AND user_id = $2",
                &[
                    id.into(),
                    user_id.to_string().into(),
                    i64::from(*up_to).into(),
                ],
                "a receipt of someone the thread does not hold",
            )
            .await?;
        }
        ThreadEvent::Archived { user_id } | ThreadEvent::Unarchived { user_id } => {
            let archived = i64::from(matches!(e.event, ThreadEvent::Archived { .. }));
            one(
                tx,
                e,
                "UPDATE thread_participants SET archived = $3 WHERE thread_id = $1 AND user_id = $2",
                &[id.into(), user_id.to_string().into(), archived.into()],
                "an archive flag of someone the thread does not hold",
            )
            .await?;
        }
    }
    Ok(())
}

// --- queries -------------------------------------------------------------------

/// A thread in a user's inbox.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct InboxItem {
    pub thread_id: String,
    pub patient_id: String,
    pub subject: String,
    pub message_count: i64,
    /// Messages after the user's read receipt.
    pub unread: i64,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String, format = DateTime)]
    pub last_message_at: Seconds,
}

/// Whose threads an inbox lists: every thread the user takes part in, or,
/// for a doctor or nurse, only those about patients still in their care by
/// assignment or by an appointment ending at or after `since` (seconds), as
/// the care-team and appointment read models say (ADR 0017).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    All,
    InCareSince(i64),
}

/// The `WHERE` condition of [`Reach`] (`$1` the user, `$2` the `since`).
fn reach(reach: Reach) -> &'static str {
    match reach {
        // `$2` is bound either way; here it asks nothing.
        Reach::All => "$2 >= 0",
        Reach::InCareSince(_) => {
            "(p.party <> 'care_team' OR t.patient_id IN ( \
               SELECT patient_id FROM care_team_members WHERE user_id = $1 \
               UNION \
               SELECT a.patient_id FROM appointments a \
               JOIN providers pr ON pr.provider_id = a.provider_id \
               WHERE pr.user_id = $1 AND a.status <> 'cancelled' AND a.ends_at >= $2))"
        }
    }
}

fn since(r: Reach) -> i64 {
    match r {
        Reach::All => 0,
        Reach::InCareSince(s) => s,
    }
}

/// A page of `user_id`'s threads within `reach`, newest message first,
/// archived or not; after the cursor `(last_message_at, thread_id)`; one
/// more than `limit` tells whether there is more.
pub async fn inbox(
    db: &Db,
    (user_id, within): (&str, Reach),
    archived: bool,
    before: Option<(i64, String)>,
    limit: i64,
) -> Result<(Vec<InboxItem>, bool), sqlx::Error> {
    let (secs, id) = before.unwrap_or((i64::MAX, String::new()));
    let sql = format!(
        "SELECT t.thread_id, t.patient_id, t.subject, t.message_count, \
         t.message_count - p.read_up_to AS unread, t.last_message_at \
         FROM thread_participants p JOIN message_threads t ON t.thread_id = p.thread_id \
         WHERE p.user_id = $1 AND {} AND p.archived = $3 \
           AND (t.last_message_at < $4 OR (t.last_message_at = $4 AND ($5 = '' OR t.thread_id < $5))) \
         ORDER BY t.last_message_at DESC, t.thread_id DESC LIMIT $6",
        reach(within)
    );
    let archived = i64::from(archived);
    macro_rules! run {
        ($pool:expr) => {
            sqlx::query_as(&sql)
                .bind(user_id)
                .bind(since(within))
                .bind(archived)
                .bind(secs)
                .bind(&id)
                .bind(limit + 1)
                .fetch_all($pool)
                .await?
        };
    }
    let mut rows: Vec<InboxItem> = match db {
        Db::Postgres(p) => run!(p),
        Db::Sqlite(p) => run!(p),
    };
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok((rows, more))
}

/// How many messages `user_id` has not read, over the threads in their
/// inbox (within `reach`, not archived), and in how many threads.
pub async fn unread_total(
    db: &Db,
    (user_id, within): (&str, Reach),
) -> Result<(i64, i64), sqlx::Error> {
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(t.message_count - p.read_up_to), 0) AS BIGINT), \
         CAST(COUNT(*) FILTER (WHERE t.message_count > p.read_up_to) AS BIGINT) \
         FROM thread_participants p JOIN message_threads t ON t.thread_id = p.thread_id \
         WHERE p.user_id = $1 AND {} AND p.archived = 0",
        reach(within)
    );
    let since = since(within);
    Ok(match db {
        Db::Postgres(p) => {
            sqlx::query_as(&sql)
                .bind(user_id)
                .bind(since)
                .fetch_one(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_as(&sql)
                .bind(user_id)
                .bind(since)
                .fetch_one(p)
                .await?
        }
    })
}

/// A thread: whom it is about, its subject, who takes part.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ThreadView {
    pub thread_id: String,
    pub patient_id: String,
    pub subject: String,
    pub started_by: String,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Seconds,
    pub message_count: i64,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String, format = DateTime)]
    pub last_message_at: Seconds,
}

/// A participant, with their read receipt.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct ParticipantView {
    pub user_id: String,
    /// patient, care_team or front_desk.
    pub party: String,
    /// They have read up to this message (0: none).
    pub read_up_to: i64,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: Seconds,
}

/// A message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct MessageView {
    /// Its number in the thread, from 1.
    pub number: i64,
    pub author_id: String,
    pub author_role: String,
    pub body: String,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String, format = DateTime)]
    pub posted_at: Seconds,
}

/// One thread, if the read model holds it.
pub async fn thread_view(db: &Db, thread_id: &str) -> Result<Option<ThreadView>, sqlx::Error> {
    let sql = "SELECT thread_id, patient_id, subject, started_by, started_at, message_count, \
               last_message_at FROM message_threads WHERE thread_id = $1";
    Ok(match db {
        Db::Postgres(p) => {
            sqlx::query_as(sql)
                .bind(thread_id)
                .fetch_optional(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_as(sql)
                .bind(thread_id)
                .fetch_optional(p)
                .await?
        }
    })
}

/// A thread's participants, in the order they joined.
pub async fn participants(db: &Db, thread_id: &str) -> Result<Vec<ParticipantView>, sqlx::Error> {
    let sql = "SELECT user_id, party, read_up_to, joined_at FROM thread_participants \
               WHERE thread_id = $1 ORDER BY joined_at, user_id";
    Ok(match db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(thread_id).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(thread_id).fetch_all(p).await?,
    })
}

/// Up to `limit` messages of a thread after message `after`, oldest first;
/// one more than `limit` tells whether there is more.
pub async fn messages(
    db: &Db,
    thread_id: &str,
    after: i64,
    limit: i64,
) -> Result<(Vec<MessageView>, bool), sqlx::Error> {
    let sql = "SELECT number, author_id, author_role, body, posted_at FROM thread_messages \
               WHERE thread_id = $1 AND number > $2 ORDER BY number LIMIT $3";
    macro_rules! run {
        ($pool:expr) => {
            sqlx::query_as(sql)
                .bind(thread_id)
                .bind(after)
                .bind(limit + 1)
                .fetch_all($pool)
                .await?
        };
    }
    let mut rows: Vec<MessageView> = match db {
        Db::Postgres(p) => run!(p),
        Db::Sqlite(p) => run!(p),
    };
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok((rows, more))
}

/// A thread with everyone in it and every message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ThreadRecord {
    pub thread: ThreadView,
    pub participants: Vec<ParticipantView>,
    pub messages: Vec<MessageView>,
}

/// Every thread about `patient_id`, oldest first, whole (as-of reads it
/// from a fold of one patient's events: a handful of threads).
pub async fn patient_threads(db: &Db, patient_id: &str) -> Result<Vec<ThreadRecord>, sqlx::Error> {
    let sql = "SELECT thread_id, patient_id, subject, started_by, started_at, message_count, \
               last_message_at FROM message_threads WHERE patient_id = $1 \
               ORDER BY started_at, thread_id";
    let threads: Vec<ThreadView> = match db {
        Db::Postgres(p) => sqlx::query_as(sql).bind(patient_id).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_as(sql).bind(patient_id).fetch_all(p).await?,
    };
    let mut records = Vec::with_capacity(threads.len());
    for thread in threads {
        let participants = participants(db, &thread.thread_id).await?;
        let (messages, _) = messages(db, &thread.thread_id, 0, i64::MAX / 2).await?;
        records.push(ThreadRecord {
            thread,
            participants,
            messages,
        });
    }
    Ok(records)
}
