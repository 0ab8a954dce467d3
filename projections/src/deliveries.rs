//! E-mail and webhook delivery of notifications (ADR 0023).
//!
//! **The outbox is written with the notification.** [`enqueue`] runs inside
//! the projector's batch transaction, right after a notification's row: one
//! `deliveries` row per configured channel, unique on (notification,
//! channel), so a rebuild or a redelivered event never enqueues twice, and
//! a rolled-back batch enqueues nothing. Which channels exist is read from
//! `delivery_channels` (the server writes it at start from its settings),
//! inside the same transaction: no global.
//!
//! **Never a backlog.** A notification whose cause was recorded longer ago
//! than the configured age is enqueued `expired` (visible, never sent), and
//! a row that waited that long without a first attempt expires too: a
//! rebuild, a restore, turning e-mail on or a sender down for a day never
//! mails old news.
//!
//! **The sender** ([`run`], one per [`Lane`]) claims due rows in small
//! batches, records the attempt (`sending`) and commits before it calls
//! the channel, then records the outcome ([`sender`]). Urgent notifications
//! have a lane of their own.

mod channels;
mod sender;
mod views;

use std::time::Duration;

use chrono::{DateTime, Utc};

use anamnesis_commands::Db;

use crate::runner::{ProjectionError, Tx};
use crate::sql;

pub use channels::{signature, ChannelError, Channels};
pub use sender::{run, Lane, LANES, ORDINARY, URGENT};
pub use views::{attempts, get, list, AttemptView, DeliveryView, STATUSES};

/// The e-mail channel's name.
pub const EMAIL: &str = "email";
/// The webhook channel's name.
pub const WEBHOOK: &str = "webhook";

/// A notification to deliver, as its maker knows it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub notification_id: &'a str,
    /// The user it is for.
    pub recipient_id: &'a str,
    pub kind: &'a str,
    /// Generic words (an e-mail's subject): never a name.
    pub title: &'a str,
    pub urgent: bool,
    /// The patient it is about, if any: e-mail goes only to a patient
    /// about their own record, at the address on it.
    pub patient_id: Option<&'a str>,
    /// What a client opens: its type and id.
    pub subject_type: &'a str,
    pub subject_id: &'a str,
    /// Its place in the inbox (the log position that made it).
    pub position: i64,
    /// When its cause was recorded in the log.
    pub caused_at: DateTime<Utc>,
}

/// Enqueues `n` on every configured channel, inside the projector's
/// transaction `tx` (so with the notification or not at all). Once per
/// notification and channel, whatever happens: a second call does nothing.
/// E-mail is enqueued only for a patient's notification about their own
/// record (staff accounts have no address).
pub async fn enqueue(tx: &mut Tx, n: &Outgoing<'_>) -> Result<(), ProjectionError> {
    enqueue_rows(tx, &[row(n, Utc::now())]).await
}

/// `n` as a row for [`enqueue_rows`], enqueued at `now`.
pub(crate) fn row(n: &Outgoing<'_>, now: DateTime<Utc>) -> Vec<sql::Value> {
    vec![
        n.notification_id.into(),
        n.recipient_id.into(),
        n.kind.into(),
        n.title.into(),
        i64::from(n.urgent).into(),
        n.patient_id.map(str::to_owned).into(),
        n.subject_type.into(),
        n.subject_id.into(),
        n.position.into(),
        n.caused_at.timestamp_millis().into(),
        now.timestamp_millis().into(),
    ]
}

/// [`enqueue`] for many notifications ([`row`]s) in one statement.
pub(crate) async fn enqueue_rows(
    tx: &mut Tx,
    rows: &[Vec<sql::Value>],
) -> Result<(), ProjectionError> {
    sql::with_values(
        tx,
        "notification_id, recipient_id, kind, title, urgent, patient_id, subject_type, \
         subject_id, position, caused_at_ms, now_ms",
        rows,
        "INSERT INTO deliveries (notification_id, channel, recipient_id, kind, title, urgent, \
         patient_id, subject_type, subject_id, position, caused_at_ms, enqueued_at_ms, status, \
         attempts, next_at_ms, updated_at_ms) \
         SELECT v.notification_id, c.channel, v.recipient_id, v.kind, v.title, v.urgent, \
         v.patient_id, v.subject_type, v.subject_id, v.position, v.caused_at_ms, v.now_ms, \
         CASE WHEN v.caused_at_ms < v.now_ms - c.max_age_ms THEN 'expired' ELSE 'pending' END, \
         0, v.now_ms, v.now_ms \
         FROM v CROSS JOIN delivery_channels c \
         WHERE c.channel <> 'email' OR EXISTS (SELECT 1 FROM notify_accounts a \
         WHERE a.patient_id = v.patient_id AND a.user_id = v.recipient_id) \
         ON CONFLICT (notification_id, channel) DO NOTHING",
    )
    .await?;
    Ok(())
}

/// Where and how notifications are delivered.
#[derive(Clone)]
pub struct DeliverySettings {
    /// E-mail over SMTP, when configured.
    pub email: Option<EmailSettings>,
    /// A webhook, when configured.
    pub webhook: Option<WebhookSettings>,
    /// Attempts before a delivery is `dead`.
    pub max_attempts: i64,
    /// The first retry's delay; each next one doubles it (with jitter)...
    pub backoff: Duration,
    /// ...up to this.
    pub backoff_max: Duration,
    /// A notification caused longer ago is not sent (`expired`).
    pub max_age: Duration,
    /// Rows claimed per batch.
    pub batch: i64,
    /// How often an idle lane looks for due rows.
    pub poll: Duration,
    /// The longest one call to a channel may take.
    pub timeout: Duration,
}

impl DeliverySettings {
    /// No channel, the default limits.
    pub fn new() -> Self {
        Self {
            email: None,
            webhook: None,
            max_attempts: 8,
            backoff: Duration::from_secs(2),
            backoff_max: Duration::from_secs(15 * 60),
            max_age: Duration::from_secs(3600),
            batch: 10,
            poll: Duration::from_millis(200),
            timeout: Duration::from_secs(10),
        }
    }

    /// The configured channels' names.
    pub fn channels(&self) -> Vec<&'static str> {
        let mut c = Vec::new();
        if self.email.is_some() {
            c.push(EMAIL);
        }
        if self.webhook.is_some() {
            c.push(WEBHOOK);
        }
        c
    }
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for DeliverySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliverySettings")
            .field("channels", &self.channels())
            .field("max_attempts", &self.max_attempts)
            .field("backoff", &self.backoff)
            .field("backoff_max", &self.backoff_max)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// The SMTP server and the sender's address.
#[derive(Clone)]
pub struct EmailSettings {
    /// `smtps://user:pass@host:465`, `smtp://host:587?tls=required`, or
    /// `smtp://host:25` (no TLS: a local relay only). May hold a password.
    pub url: String,
    /// The From address.
    pub from: String,
}

/// Where webhooks go and the key that signs them.
#[derive(Clone)]
pub struct WebhookSettings {
    pub url: String,
    pub secret: String,
}

/// Makes `delivery_channels` say what `settings` configure (none: nothing
/// is enqueued from now on), with their age limit.
pub async fn configure(db: &Db, settings: &DeliverySettings) -> Result<(), sqlx::Error> {
    let _turn = db.write_turn().await;
    let mut tx = crate::runner::begin(db).await?;
    sql::execute(&mut tx, "DELETE FROM delivery_channels", &[]).await?;
    let max_age = i64::try_from(settings.max_age.as_millis()).unwrap_or(i64::MAX);
    for channel in settings.channels() {
        sql::execute(
            &mut tx,
            "INSERT INTO delivery_channels (channel, max_age_ms) VALUES ($1, $2)",
            &[channel.into(), max_age.into()],
        )
        .await?;
    }
    match tx {
        Tx::Postgres(t) => t.commit().await?,
        Tx::Sqlite(t) => t.commit().await?,
    }
    Ok(())
}
