//! The one settings struct every subcommand takes, from flags or environment.

use std::fmt;
use std::path::PathBuf;

use anamnesis_projections::deliveries::{DeliverySettings, EmailSettings, WebhookSettings};

/// Where Anamnesis keeps its data.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Postgres URL for the event log and read models. When unset, everything
    /// lives in the embedded SQLite database under --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// Directory of the embedded database.
    #[arg(
        long,
        env = "ANAMNESIS_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,

    /// Log lines as JSON objects instead of text.
    #[arg(long, env = "ANAMNESIS_LOG_JSON", global = true)]
    pub log_json: bool,

    /// Address the HTTP API listens on.
    #[arg(
        long,
        env = "ANAMNESIS_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: std::net::SocketAddr,

    /// Secret (32 bytes or more) that signs access tokens. When unset, a key is
    /// generated once and kept in <data-dir>/token.key; every instance serving
    /// the same clinic needs the same key.
    #[arg(
        long,
        env = "ANAMNESIS_TOKEN_KEY",
        global = true,
        hide_env_values = true
    )]
    pub token_key: Option<Secret>,

    /// Key (32 bytes, as 64 hex digits) that wraps every patient's data key
    /// (docs/adr/0024-encryption.md). When unset, one is generated once and
    /// kept in <data-dir>/master.key; every instance and command of one
    /// clinic needs the same key, and it must be kept apart from the
    /// database and its backups: whoever holds both reads every record.
    #[arg(
        long,
        env = "ANAMNESIS_MASTER_KEY",
        global = true,
        hide_env_values = true
    )]
    pub master_key: Option<Secret>,

    /// Whether new events about a patient are stored encrypted with the
    /// patient's data key (`true`, the default; `false` only to measure what
    /// it costs: a patient with events in the clear cannot be erased).
    #[arg(
        long,
        env = "ANAMNESIS_ENCRYPT_PAYLOADS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub encrypt_payloads: bool,

    /// The clinic's time zone, an IANA name (`America/Los_Angeles`): working
    /// hours and whole-day closures are local time in it.
    #[arg(
        long,
        env = "ANAMNESIS_TIME_ZONE",
        default_value = "UTC",
        global = true
    )]
    pub time_zone: String,

    /// Ed25519 key that signs checkpoints of the event log: a 32-byte seed
    /// as 64 hex digits. When unset, one is generated once and kept in
    /// <data-dir>/checkpoint.key. Keep it away from the database's
    /// administrators: whoever holds both can rewrite the log unnoticed.
    #[arg(
        long,
        env = "ANAMNESIS_SIGNING_KEY",
        global = true,
        hide_env_values = true
    )]
    pub signing_key: Option<Secret>,

    /// Directory (outside the database) where the server writes signed
    /// checkpoints of the log. Default: <data-dir>/checkpoints.
    #[arg(long, env = "ANAMNESIS_CHECKPOINT_DIR", global = true)]
    pub checkpoint_dir: Option<PathBuf>,

    /// The server signs a checkpoint every this many events...
    #[arg(long, env = "ANAMNESIS_CHECKPOINT_EVERY_EVENTS", default_value_t = 10_000,
          global = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub checkpoint_every_events: i64,

    /// ...or every this many minutes while the log grows, whichever comes first.
    #[arg(long, env = "ANAMNESIS_CHECKPOINT_EVERY_MINUTES", default_value_t = 10,
          global = true, value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub checkpoint_every_minutes: u64,

    /// With no checkpoint yet, the server verifies the log from genesis at
    /// start-up only up to this many events (about 10 s per million);
    /// a larger log is verified from its head on.
    #[arg(long, env = "ANAMNESIS_FULL_VERIFY_LIMIT", default_value_t = 1_000_000,
          global = true, value_parser = clap::value_parser!(i64).range(0..))]
    pub full_verify_limit: i64,

    /// How far ahead free-slot queries reach, in weeks.
    #[arg(long, env = "ANAMNESIS_SLOT_HORIZON_WEEKS", default_value_t = 12, global = true,
          value_parser = clap::value_parser!(i64).range(1..=104))]
    pub slot_horizon_weeks: i64,

    /// How long after a visit its provider stays on the patient's care
    /// team, in days.
    #[arg(long, env = "ANAMNESIS_CARE_AFTER_VISIT_DAYS", default_value_t = 90, global = true,
          value_parser = clap::value_parser!(i64).range(0..=3650))]
    pub care_after_visit_days: i64,

    /// How long a break-the-glass grant lasts, in seconds (up to 86400).
    #[arg(long, env = "ANAMNESIS_BREAK_GLASS_SECONDS", default_value_t = 3600, global = true,
          value_parser = clap::value_parser!(i64).range(1..=86_400))]
    pub break_glass_seconds: i64,

    /// Where chart documents' bytes are kept: a directory, or
    /// `s3://bucket[/prefix]` for an S3-compatible store (credentials,
    /// region and endpoint from the usual AWS_* variables). Default:
    /// <data-dir>/documents.
    #[arg(long, env = "ANAMNESIS_DOCUMENT_STORE", global = true)]
    pub document_store: Option<String>,

    /// The largest document accepted, in bytes.
    #[arg(long, env = "ANAMNESIS_MAX_DOCUMENT_BYTES", default_value_t = 10 * 1024 * 1024,
          global = true, value_parser = clap::value_parser!(u64).range(1..=1_073_741_824))]
    pub max_document_bytes: u64,

    /// NATS server (with JetStream) for the fan-out relay, e.g.
    /// `nats://127.0.0.1:4222`. When set, `serve` publishes every event to
    /// it (`anamnesis relay` does only that).
    #[arg(long, env = "NATS_URL", global = true)]
    pub nats_url: Option<String>,

    /// The JetStream stream the relay publishes to (created if missing).
    #[arg(
        long,
        env = "ANAMNESIS_NATS_STREAM",
        default_value = "CLINIC_EVENTS",
        global = true
    )]
    pub nats_stream: String,

    /// The first token of the relay's subjects (`clinic.<aggregate>.<event>`).
    #[arg(
        long,
        env = "ANAMNESIS_NATS_SUBJECT_PREFIX",
        default_value = "clinic",
        global = true
    )]
    pub nats_subject_prefix: String,

    /// The most the stream keeps, in bytes, when the relay creates it (the
    /// oldest go first). JetStream reserves it on the server's disk.
    #[arg(long, env = "ANAMNESIS_NATS_MAX_BYTES", default_value_t = 8 * 1024 * 1024 * 1024,
          global = true, value_parser = clap::value_parser!(i64).range(1_048_576..))]
    pub nats_max_bytes: i64,

    /// Origins browser clients may call the API from, comma-separated
    /// (`https://portal.example.org,http://localhost:5173`); none by default.
    #[arg(
        long,
        env = "ANAMNESIS_CORS_ORIGINS",
        default_value = "",
        global = true
    )]
    pub cors_origins: String,

    /// Requests per minute to sign-in, registration and password endpoints
    /// from one client address (0: no limit).
    #[arg(
        long,
        env = "ANAMNESIS_AUTH_RATE_PER_MINUTE",
        default_value_t = 30,
        global = true
    )]
    pub auth_rate_per_minute: u32,

    /// Sign-in attempts per minute for one account name (0: no limit).
    #[arg(
        long,
        env = "ANAMNESIS_ACCOUNT_RATE_PER_MINUTE",
        default_value_t = 10,
        global = true
    )]
    pub account_rate_per_minute: u32,

    /// Requests per second with one token, sustained (0: no limit)...
    #[arg(
        long,
        env = "ANAMNESIS_TOKEN_RATE_PER_SECOND",
        default_value_t = 50,
        global = true
    )]
    pub token_rate_per_second: u32,

    /// ...and at once.
    #[arg(
        long,
        env = "ANAMNESIS_TOKEN_BURST",
        default_value_t = 200,
        global = true
    )]
    pub token_burst: u32,

    /// Roles that must log in with a second factor (TOTP), comma-separated;
    /// empty: nobody must (anyone may enrol). ADR 0025.
    #[arg(
        long,
        env = "ANAMNESIS_MFA_ROLES",
        default_value = "admin,compliance",
        global = true
    )]
    pub mfa_roles: String,

    /// `serve` runs no fan-out consumer (notifications, alerts, reminders):
    /// for a deployment that runs them apart with `anamnesis consume`.
    #[arg(long, env = "ANAMNESIS_NO_CONSUMERS", global = true)]
    pub no_consumers: bool,
    /// Redis for the read models kept there (free slots per provider and
    /// day, patient summary cards), e.g. `redis://127.0.0.1:6379`, with a
    /// password `redis://:PASSWORD@host:6379`. When unset, queries read the
    /// database only. Values hold patient data (ADR 0022).
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// The first part of every Redis key (`<prefix>:slots:…`,
    /// `<prefix>:card:…`): letters, digits, `_`, `-` and `.`.
    #[arg(
        long,
        env = "ANAMNESIS_REDIS_PREFIX",
        default_value = "anamnesis",
        global = true
    )]
    pub redis_prefix: String,
    /// The clinic's one currency, an ISO 4217 code (`USD`, `EUR`): every
    /// bill is in its minor units and records it.
    #[arg(long, env = "ANAMNESIS_CURRENCY", default_value = "USD", global = true)]
    pub currency: String,

    /// SMTP server for e-mailing notifications to patients (ADR 0023):
    /// `smtps://user:password@host:465`, `smtp://host:587?tls=required`, or
    /// `smtp://host:25` (no TLS: a relay on the same host only). Needs
    /// --smtp-from. When unset, no e-mail is sent.
    #[arg(
        long,
        env = "ANAMNESIS_SMTP_URL",
        global = true,
        hide_env_values = true
    )]
    pub smtp_url: Option<Secret>,

    /// The From address of notification e-mails.
    #[arg(long, env = "ANAMNESIS_SMTP_FROM", global = true)]
    pub smtp_from: Option<String>,

    /// URL every notification is POSTed to as signed JSON. Needs
    /// --webhook-secret. When unset, no webhook is called.
    #[arg(long, env = "ANAMNESIS_WEBHOOK_URL", global = true)]
    pub webhook_url: Option<String>,

    /// The key (16 bytes or more) that signs webhooks (HMAC-SHA256, header
    /// `Anamnesis-Signature: t=<unix>,v1=<hex>` over `<t>.<body>`).
    #[arg(
        long,
        env = "ANAMNESIS_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub webhook_secret: Option<Secret>,

    /// Attempts per delivery before it is dead (admins are told).
    #[arg(long, env = "ANAMNESIS_DELIVERY_MAX_ATTEMPTS", default_value_t = 8, global = true,
          value_parser = clap::value_parser!(i64).range(1..=100))]
    pub delivery_max_attempts: i64,

    /// The first retry's delay in milliseconds; each next one doubles it
    /// (drawn between half and all of it)...
    #[arg(long, env = "ANAMNESIS_DELIVERY_BACKOFF_MS", default_value_t = 2_000, global = true,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub delivery_backoff_ms: u64,

    /// ...up to this many milliseconds.
    #[arg(long, env = "ANAMNESIS_DELIVERY_BACKOFF_MAX_MS", default_value_t = 900_000, global = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub delivery_backoff_max_ms: u64,

    /// A notification whose cause was recorded longer ago than this many
    /// seconds is not e-mailed or posted (`expired`): no backlog of old news
    /// after a rebuild, a restore, an outage or turning a channel on.
    #[arg(long, env = "ANAMNESIS_DELIVERY_MAX_AGE_SECONDS", default_value_t = 3600, global = true,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub delivery_max_age_seconds: u64,
}

impl Settings {
    /// The rate limits (`crate::limits`).
    pub fn limits(&self) -> crate::limits::LimitSettings {
        crate::limits::LimitSettings {
            auth_per_minute: self.auth_rate_per_minute,
            account_per_minute: self.account_rate_per_minute,
            token_per_second: self.token_rate_per_second,
            token_burst: self.token_burst,
        }
    }

    /// The roles that must use a second factor, or an error naming the setting.
    pub fn mfa_roles(&self) -> anyhow::Result<Vec<anamnesis_domain::user::Role>> {
        self.mfa_roles
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(|r| {
                anamnesis_domain::user::Role::parse(r).map_err(|_| {
                    anyhow::anyhow!(
                        "--mfa-roles / ANAMNESIS_MFA_ROLES: {r:?} is not a role (patient, \
                         doctor, nurse, staff, admin, compliance, analyst)"
                    )
                })
            })
            .collect()
    }

    /// The clinic's zone, or an error naming the setting.
    pub fn zone(&self) -> anyhow::Result<anamnesis_domain::schedule::ClinicZone> {
        anamnesis_domain::schedule::ClinicZone::parse(&self.time_zone).ok_or_else(|| {
            anyhow::anyhow!(
                "--time-zone / ANAMNESIS_TIME_ZONE: {:?} is not an IANA time zone name \
                 (e.g. UTC, Europe/Paris, America/Los_Angeles)",
                self.time_zone
            )
        })
    }
}

impl Settings {
    /// The clinic's currency, or an error naming the setting.
    pub fn currency(&self) -> anyhow::Result<anamnesis_domain::billing::Currency> {
        anamnesis_domain::billing::Currency::parse(&self.currency).map_err(|_| {
            anyhow::anyhow!(
                "--currency / ANAMNESIS_CURRENCY: {:?} is not an ISO 4217 code \
                 (three capital letters, e.g. USD, EUR)",
                self.currency
            )
        })
    }

    /// The patients' keys: --master-key, or the key file in the data
    /// directory (generated on first use), and whether to encrypt.
    pub fn keyring(&self) -> anyhow::Result<anamnesis_commands::Keyring> {
        use anamnesis_commands::MasterKey;
        let master = match &self.master_key {
            Some(key) => MasterKey::from_hex(key.expose())
                .map_err(|e| anyhow::anyhow!("--master-key / ANAMNESIS_MASTER_KEY: {e}"))?,
            None => {
                let path = self.data_dir.join("master.key");
                if !path.exists() {
                    use std::io::Write;
                    std::fs::create_dir_all(&self.data_dir)?;
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                    match options.open(&path) {
                        Ok(mut f) => {
                            f.write_all(MasterKey::generate_hex().as_bytes())?;
                            f.sync_all()?;
                        }
                        // Another process made it first: use theirs.
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => {
                            return Err(anyhow::anyhow!("{}: {e}", path.display()));
                        }
                    }
                }
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                MasterKey::from_hex(&text)
                    .map_err(|e| anyhow::anyhow!("the key in {}: {e}", path.display()))?
            }
        };
        Ok(anamnesis_commands::Keyring::new(
            master,
            self.encrypt_payloads,
        ))
    }

    /// The key that signs checkpoints: --signing-key, or the key file in the
    /// data directory (generated on first use).
    pub fn checkpoint_key(&self) -> anyhow::Result<anamnesis_replay::CheckpointKey> {
        Ok(match &self.signing_key {
            Some(key) => anamnesis_replay::CheckpointKey::from_hex(key.expose())
                .map_err(|e| anyhow::anyhow!("--signing-key / ANAMNESIS_SIGNING_KEY: {e}"))?,
            None => anamnesis_replay::CheckpointKey::from_data_dir(&self.data_dir)?,
        })
    }

    /// The clinical record's settings, with its document store opened.
    pub fn clinical(&self) -> anyhow::Result<crate::care::ClinicalSettings> {
        let location = match &self.document_store {
            Some(l) => l.clone(),
            None => self.data_dir.join("documents").display().to_string(),
        };
        Ok(crate::care::ClinicalSettings {
            care_after_visit: chrono::Duration::days(self.care_after_visit_days),
            break_glass: chrono::Duration::seconds(self.break_glass_seconds),
            currency: self.currency()?,
            documents: crate::documents::Documents::open(
                &location,
                usize::try_from(self.max_document_bytes)?,
            )?,
        })
    }

    /// The relay's settings when NATS is configured, or an error naming
    /// the setting that cannot be used.
    pub fn relay(&self) -> anyhow::Result<Option<anamnesis_projections::relay::RelayConfig>> {
        let Some(url) = &self.nats_url else {
            return Ok(None);
        };
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        anyhow::ensure!(
            name_ok(&self.nats_stream),
            "--nats-stream / ANAMNESIS_NATS_STREAM: {:?} is not a stream name \
             (letters, digits, _ and -)",
            self.nats_stream
        );
        anyhow::ensure!(
            name_ok(&self.nats_subject_prefix),
            "--nats-subject-prefix / ANAMNESIS_NATS_SUBJECT_PREFIX: {:?} is not one subject \
             token (letters, digits, _ and -)",
            self.nats_subject_prefix
        );
        let mut config = anamnesis_projections::relay::RelayConfig::new(url.clone());
        config.stream = self.nats_stream.clone();
        config.prefix = self.nats_subject_prefix.clone();
        config.max_bytes = self.nats_max_bytes;
        Ok(Some(config))
    }

    /// The delivery channels and their limits, or an error naming the
    /// setting that cannot be used.
    pub fn deliveries(&self) -> anyhow::Result<DeliverySettings> {
        let mut d = DeliverySettings::new();
        d.email = match (&self.smtp_url, &self.smtp_from) {
            (None, None) => None,
            (Some(url), Some(from)) => Some(EmailSettings {
                url: url.expose().to_owned(),
                from: from.clone(),
            }),
            _ => anyhow::bail!(
                "--smtp-url / ANAMNESIS_SMTP_URL and --smtp-from / ANAMNESIS_SMTP_FROM go together"
            ),
        };
        d.webhook = match (&self.webhook_url, &self.webhook_secret) {
            (None, None) => None,
            (Some(url), Some(secret)) => {
                anyhow::ensure!(
                    secret.expose().len() >= 16,
                    "--webhook-secret / ANAMNESIS_WEBHOOK_SECRET: 16 bytes or more"
                );
                Some(WebhookSettings {
                    url: url.clone(),
                    secret: secret.expose().to_owned(),
                })
            }
            _ => anyhow::bail!(
                "--webhook-url / ANAMNESIS_WEBHOOK_URL and --webhook-secret / \
                 ANAMNESIS_WEBHOOK_SECRET go together"
            ),
        };
        d.max_attempts = self.delivery_max_attempts;
        d.backoff = std::time::Duration::from_millis(self.delivery_backoff_ms);
        d.backoff_max = std::time::Duration::from_millis(
            self.delivery_backoff_max_ms.max(self.delivery_backoff_ms),
        );
        d.max_age = std::time::Duration::from_secs(self.delivery_max_age_seconds);
        Ok(d)
    }

    /// The Redis read models' settings when Redis is configured, or an
    /// error naming the setting that cannot be used.
    pub fn redis(&self) -> anyhow::Result<Option<anamnesis_projections::redis::RedisConfig>> {
        let Some(url) = &self.redis_url else {
            return Ok(None);
        };
        anyhow::ensure!(
            !self.redis_prefix.is_empty()
                && self
                    .redis_prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')),
            "--redis-prefix / ANAMNESIS_REDIS_PREFIX: {:?} is not a key prefix \
             (letters, digits, _, - and .)",
            self.redis_prefix
        );
        Ok(Some(anamnesis_projections::redis::RedisConfig {
            url: url.expose().to_owned(),
            prefix: self.redis_prefix.clone(),
            zone: self.zone()?,
            horizon_days: self.slot_horizon_weeks * 7,
        }))
    }

    /// Where checkpoints go.
    pub fn checkpoint_dir(&self) -> PathBuf {
        self.checkpoint_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("checkpoints"))
    }
}

/// `serve` takes the common settings as they are.
pub type ServeSettings = Settings;

/// A value that must not appear in logs or `Debug` output (it may hold a password).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_not_printed_by_debug() {
        let s: Secret = "postgres://u:hunter2@db/x".parse().unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
