//! The channels: e-mail over SMTP (lettre, rustls) and signed webhooks
//! (reqwest). What goes out holds no patient data: an e-mail's subject is
//! the notification's generic title and its body says to sign in; a
//! webhook carries ids. What comes back as an error is reduced to a status
//! code or a kind of failure (an SMTP server's reply can quote the address).

use hmac::{Hmac, Mac};
use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use sha2::Sha256;

use anamnesis_commands::Db;

use super::sender::Claimed;
use super::DeliverySettings;

/// What one call to a channel came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Sent,
    /// Nothing to send to (no address on record): not an attempt that failed.
    Skipped(String),
    /// Failed; the text says how, without patient data.
    Failed(String),
}

/// Why the channels cannot be set up (a setting is wrong).
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("--smtp-url: {0}")]
    SmtpUrl(String),
    #[error("--smtp-from: not an e-mail address")]
    From,
    #[error("--webhook-url: {0}")]
    WebhookUrl(String),
}

/// The configured channels, ready to send.
pub struct Channels {
    email: Option<Email>,
    webhook: Option<Webhook>,
}

struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

struct Webhook {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
}

impl Channels {
    /// Sets up what `settings` configure; an unusable setting is an error
    /// here, at start, not at the first delivery.
    pub fn open(settings: &DeliverySettings) -> Result<Self, ChannelError> {
        let email = match &settings.email {
            None => None,
            Some(e) => {
                // Never echo the URL: it may hold a password.
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&e.url)
                    .map_err(|err| ChannelError::SmtpUrl(smtp_error(&err)))?
                    .timeout(Some(settings.timeout))
                    .build();
                let from = e.from.parse::<Mailbox>().map_err(|_| ChannelError::From)?;
                Some(Email { transport, from })
            }
        };
        let webhook = match &settings.webhook {
            None => None,
            Some(w) => {
                let url = reqwest::Url::parse(&w.url)
                    .map_err(|e| ChannelError::WebhookUrl(e.to_string()))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(ChannelError::WebhookUrl("not an http(s) URL".into()));
                }
                let client = reqwest::Client::builder()
                    .timeout(settings.timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| ChannelError::WebhookUrl(e.to_string()))?;
                Some(Webhook {
                    client,
                    url: w.url.clone(),
                    secret: w.secret.as_bytes().to_vec(),
                })
            }
        };
        Ok(Self { email, webhook })
    }

    /// The channels set up, by name.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.email.is_some() {
            names.push(super::EMAIL);
        }
        if self.webhook.is_some() {
            names.push(super::WEBHOOK);
        }
        names
    }

    /// Delivers `d` over its channel.
    pub(crate) async fn send(&self, db: &Db, d: &Claimed) -> Outcome {
        match (d.channel.as_str(), &self.email, &self.webhook) {
            (super::EMAIL, Some(email), _) => email.send(db, d).await,
            (super::WEBHOOK, _, Some(webhook)) => webhook.send(d).await,
            _ => Outcome::Failed("the channel is not configured".into()),
        }
    }
}

impl Email {
    async fn send(&self, db: &Db, d: &Claimed) -> Outcome {
        // Resolved now, from the patient's record as it stands.
        let address = match address(db, d).await {
            Ok(Some(a)) => a,
            Ok(None) => return Outcome::Skipped("no e-mail address on record".into()),
            Err(_) => return Outcome::Failed("the address could not be read".into()),
        };
        let Ok(to) = address.parse::<Mailbox>() else {
            return Outcome::Skipped("the e-mail address on record is not usable".into());
        };
        let body = format!(
            "You have a new notification; sign in to read it.\n\nKind: {}\n",
            d.kind
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(d.title.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(body);
        let message = match message {
            Ok(m) => m,
            Err(_) => return Outcome::Failed("the message could not be built".into()),
        };
        match self.transport.send(message).await {
            Ok(_) => Outcome::Sent,
            Err(e) => Outcome::Failed(smtp_error(&e)),
        }
    }
}

/// The address on the record of the patient `d` is about, when that
/// patient is its recipient.
async fn address(db: &Db, d: &Claimed) -> Result<Option<String>, sqlx::Error> {
    let Some(patient) = &d.patient_id else {
        return Ok(None);
    };
    let sql = "SELECT email FROM patients WHERE patient_id = $1 AND user_id = $2";
    let found: Option<Option<String>> = match db {
        Db::Postgres(p) => {
            sqlx::query_scalar(sql)
                .bind(patient)
                .bind(&d.recipient_id)
                .fetch_optional(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_scalar(sql)
                .bind(patient)
                .bind(&d.recipient_id)
                .fetch_optional(p)
                .await?
        }
    };
    Ok(found.flatten().filter(|a| !a.is_empty()))
}

/// An SMTP failure as a code or a kind, never the server's words.
fn smtp_error(e: &lettre::transport::smtp::Error) -> String {
    if let Some(code) = e.status() {
        format!("SMTP {code}")
    } else if e.is_timeout() {
        "SMTP timed out".into()
    } else if e.is_tls() {
        "SMTP TLS failed".into()
    } else if e.is_client() {
        "SMTP client error".into()
    } else {
        "SMTP connection failed".into()
    }
}

/// A webhook's body.
#[derive(Debug, Serialize)]
struct Body<'a> {
    notification_id: &'a str,
    kind: &'a str,
    title: &'a str,
    urgent: bool,
    recipient_id: &'a str,
    subject_type: Option<&'a str>,
    subject_id: Option<&'a str>,
    created_at: String,
}

impl Webhook {
    async fn send(&self, d: &Claimed) -> Outcome {
        let body = Body {
            notification_id: &d.notification_id,
            kind: &d.kind,
            title: &d.title,
            urgent: d.urgent != 0,
            recipient_id: &d.recipient_id,
            subject_type: d.subject_type.as_deref(),
            subject_id: d.subject_id.as_deref(),
            created_at: match chrono::DateTime::from_timestamp_millis(d.caused_at_ms) {
                Some(t) => t.to_rfc3339(),
                None => return Outcome::Failed("the notification's time is out of range".into()),
            },
        };
        let Ok(body) = serde_json::to_vec(&body) else {
            return Outcome::Failed("the body could not be written".into());
        };
        let t = chrono::Utc::now().timestamp();
        let sent = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("idempotency-key", d.notification_id.as_str())
            .header(
                "anamnesis-signature",
                format!("t={t},v1={}", signature(&self.secret, t, &body)),
            )
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Outcome::Sent,
            Ok(r) => Outcome::Failed(format!("HTTP {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Outcome::Failed("timed out".into()),
            Err(e) if e.is_connect() => Outcome::Failed("connection failed".into()),
            Err(_) => Outcome::Failed("request failed".into()),
        }
    }
}

/// The hex HMAC-SHA256, under `secret`, of `"<t>.<body>"`: what a webhook's
/// `Anamnesis-Signature: t=<t>,v1=<hex>` header carries.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_time_dot_body() {
        let sig = signature(b"Jefe", 1, b"x");
        assert_eq!(sig.len(), 64);
        assert_eq!(sig, signature(b"Jefe", 1, b"x"));
        assert_ne!(sig, signature(b"Jefe", 2, b"x"));
        assert_ne!(sig, signature(b"other", 1, b"x"));
    }
}
