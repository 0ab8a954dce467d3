//! A chart entry: one note, set of vitals, lab result, diagnosis,
//! procedure, immunization or document, as an immutable history of
//! versions. A note is drafted (and may be revised) until its author signs
//! it; every other kind is recorded final. After that the only changes are
//! an amendment (a new version, with a reason) and entered-in-error
//! (withdrawn, with a reason: kept in history, hidden from the chart).
//!
//! A critical lab result is recorded (or amended) as its own event type, so
//! that the urgent-alert consumer reacts to the type, not to values.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::StoredForm;
use crate::subject::Subject;
use crate::unique::{UniqueKey, UniqueKeys};

use super::error::{text, ChartError};
use super::values::{EntryBody, Kind};

/// Where an entry is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// A note not yet signed: its author's, invisible to the patient.
    #[default]
    Draft,
    /// A signed note.
    Signed,
    /// Any other kind, recorded.
    Final,
    /// Withdrawn: kept in history, hidden from the chart.
    EnteredInError,
}

impl EntryStatus {
    /// The stored and shown spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            EntryStatus::Draft => "draft",
            EntryStatus::Signed => "signed",
            EntryStatus::Final => "final",
            EntryStatus::EnteredInError => "entered_in_error",
        }
    }
}

/// Who an entry is about and who wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub patient_id: Uuid,
    /// The user who wrote the first version.
    pub author: Uuid,
}

/// A fact about a chart entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EntryEvent {
    /// A note was drafted (version 1).
    #[serde(rename = "chart_entry.drafted")]
    Drafted { origin: Origin, body: EntryBody },
    /// A draft was rewritten by its author (a new version).
    #[serde(rename = "chart_entry.revised")]
    Revised { body: EntryBody },
    /// The author signed the note.
    #[serde(rename = "chart_entry.signed")]
    Signed { at: DateTime<Utc> },
    /// An entry other than a note was recorded, final (version 1).
    #[serde(rename = "chart_entry.recorded")]
    Recorded { origin: Origin, body: EntryBody },
    /// A critical lab result was recorded (version 1).
    #[serde(rename = "chart_entry.critical_result_recorded")]
    CriticalResultRecorded { origin: Origin, body: EntryBody },
    /// A new version replaced a signed or final one, for a reason.
    #[serde(rename = "chart_entry.amended")]
    Amended { body: EntryBody, reason: String },
    /// An amendment that reads critical (a lab result).
    #[serde(rename = "chart_entry.critical_result_amended")]
    CriticalResultAmended { body: EntryBody, reason: String },
    /// Withdrawn as entered in error, for a reason.
    #[serde(rename = "chart_entry.entered_in_error")]
    EnteredInError { reason: String },
}

impl DomainEvent for EntryEvent {
    fn event_type(&self) -> String {
        match self {
            EntryEvent::Drafted { .. } => "chart_entry.drafted",
            EntryEvent::Revised { .. } => "chart_entry.revised",
            EntryEvent::Signed { .. } => "chart_entry.signed",
            EntryEvent::Recorded { .. } => "chart_entry.recorded",
            EntryEvent::CriticalResultRecorded { .. } => "chart_entry.critical_result_recorded",
            EntryEvent::Amended { .. } => "chart_entry.amended",
            EntryEvent::CriticalResultAmended { .. } => "chart_entry.critical_result_amended",
            EntryEvent::EnteredInError { .. } => "chart_entry.entered_in_error",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::codec::CURRENT_VERSION.to_owned()
    }
}

impl StoredForm for EntryEvent {}

/// What may be asked of a chart entry. Time comes in with the command;
/// whether the caller may ask is the policy's (authorship and the care
/// team are decided before the command is built).
#[derive(Debug, Clone, PartialEq)]
pub enum EntryCommand {
    /// Draft a note.
    Draft {
        origin: Origin,
        body: EntryBody,
        now: DateTime<Utc>,
    },
    /// Rewrite a draft.
    Revise { body: EntryBody, now: DateTime<Utc> },
    /// Sign a draft.
    Sign { now: DateTime<Utc> },
    /// Record any kind but a note (documents come with their stored hash).
    Record {
        origin: Origin,
        body: EntryBody,
        now: DateTime<Utc>,
    },
    /// Replace a signed or final version, for a reason.
    Amend {
        body: EntryBody,
        reason: String,
        now: DateTime<Utc>,
    },
    /// Withdraw as entered in error, for a reason.
    EnterInError { reason: String },
}

/// A chart entry's state: its origin, status and every version.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartEntry {
    origin: Option<Origin>,
    status: EntryStatus,
    versions: Vec<EntryBody>,
}

impl ChartEntry {
    /// Whom it is about and who wrote it, once it exists.
    pub fn origin(&self) -> Option<Origin> {
        self.origin
    }

    pub fn status(&self) -> EntryStatus {
        self.status
    }

    /// The current version.
    pub fn current(&self) -> Option<&EntryBody> {
        self.versions.last()
    }

    /// How many versions it has had.
    pub fn version_count(&self) -> usize {
        self.versions.len()
    }

    /// Its kind, once it exists.
    pub fn kind(&self) -> Option<Kind> {
        self.current().map(EntryBody::kind)
    }

    fn existing(&self) -> Result<Kind, ChartError> {
        let kind = self.kind().ok_or(ChartError::UnknownEntry)?;
        if self.status == EntryStatus::EnteredInError {
            return Err(ChartError::Withdrawn);
        }
        Ok(kind)
    }

    fn same_kind(kind: Kind, body: &EntryBody) -> Result<(), ChartError> {
        if body.kind() != kind {
            return Err(ChartError::KindChanged(kind.as_str()));
        }
        Ok(())
    }

    fn decide(&self, command: EntryCommand) -> Result<EntryEvent, ChartError> {
        use EntryCommand as C;
        match command {
            C::Draft { origin, body, now } => {
                if self.origin.is_some() {
                    return Err(ChartError::AlreadyExists);
                }
                if body.kind() != Kind::Note {
                    return Err(ChartError::NotANote);
                }
                Ok(EntryEvent::Drafted {
                    origin,
                    body: body.parse(now)?,
                })
            }
            C::Revise { body, now } => {
                let kind = self.existing()?;
                if self.status != EntryStatus::Draft {
                    return Err(ChartError::NotADraft);
                }
                Self::same_kind(kind, &body)?;
                Ok(EntryEvent::Revised {
                    body: body.parse(now)?,
                })
            }
            C::Sign { now } => {
                self.existing()?;
                if self.status != EntryStatus::Draft {
                    return Err(ChartError::NotADraft);
                }
                Ok(EntryEvent::Signed { at: now })
            }
            C::Record { origin, body, now } => {
                if self.origin.is_some() {
                    return Err(ChartError::AlreadyExists);
                }
                if body.kind() == Kind::Note {
                    return Err(ChartError::NoteMustBeDrafted);
                }
                let body = body.parse(now)?;
                Ok(if body.is_critical() {
                    EntryEvent::CriticalResultRecorded { origin, body }
                } else {
                    EntryEvent::Recorded { origin, body }
                })
            }
            C::Amend { body, reason, now } => {
                let kind = self.existing()?;
                if self.status == EntryStatus::Draft {
                    return Err(ChartError::StillADraft);
                }
                if kind == Kind::Document {
                    return Err(ChartError::NotAmendable);
                }
                Self::same_kind(kind, &body)?;
                let body = body.parse(now)?;
                let reason = text("reason", &reason, 500)?;
                Ok(if body.is_critical() {
                    EntryEvent::CriticalResultAmended { body, reason }
                } else {
                    EntryEvent::Amended { body, reason }
                })
            }
            C::EnterInError { reason } => {
                self.existing()?;
                Ok(EntryEvent::EnteredInError {
                    reason: text("reason", &reason, 500)?,
                })
            }
        }
    }
}

impl Aggregate for ChartEntry {
    const TYPE: &'static str = "chart_entry";
    type Command = EntryCommand;
    type Event = EntryEvent;
    type Error = ChartError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use EntryEvent as E;
        match event {
            E::Drafted { origin, body } => {
                self.origin = Some(origin);
                self.status = EntryStatus::Draft;
                self.versions.push(body);
            }
            E::Recorded { origin, body } | E::CriticalResultRecorded { origin, body } => {
                self.origin = Some(origin);
                self.status = EntryStatus::Final;
                self.versions.push(body);
            }
            E::Revised { body }
            | E::Amended { body, .. }
            | E::CriticalResultAmended { body, .. } => self.versions.push(body),
            E::Signed { .. } => self.status = EntryStatus::Signed,
            E::EnteredInError { .. } => self.status = EntryStatus::EnteredInError,
        }
    }
}

impl UniqueKeys for ChartEntry {
    fn unique_keys(&self) -> Vec<UniqueKey> {
        Vec::new()
    }
}

impl Subject for ChartEntry {
    fn patient(&self, _aggregate_id: &str) -> Option<Uuid> {
        self.origin.map(|o| o.patient_id)
    }
}
