//! A patient's insurance coverage: payer, member id, plan, the dates it is
//! valid and whether it pays first or second. One stream per patient, its
//! id the patient's id (as the care team's).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::StoredForm;
use crate::subject::Subject;
use crate::unique::{UniqueKey, UniqueKeys};

use super::error::{text, BillingError};
use super::values::{plausible, Rank};

/// One coverage of a patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageEntry {
    pub coverage_id: Uuid,
    /// The insurer (or other payer) that pays.
    pub payer: String,
    /// The patient's member id with the payer.
    pub member_id: String,
    /// The plan.
    pub plan: String,
    pub valid_from: NaiveDate,
    /// Open-ended when absent.
    pub valid_to: Option<NaiveDate>,
    pub rank: Rank,
    /// Ended (withdrawn) coverage pays no new claim.
    #[serde(default)]
    pub ended: bool,
}

impl CoverageEntry {
    /// Whether the coverage is valid on `day`.
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        self.valid_from <= day && self.valid_to.is_none_or(|to| day <= to)
    }

    fn overlaps(&self, other: &CoverageEntry) -> bool {
        let ends_after =
            |a: &CoverageEntry, b: &CoverageEntry| a.valid_to.is_none_or(|to| to >= b.valid_from);
        ends_after(self, other) && ends_after(other, self)
    }
}

/// A fact about a patient's coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CoverageEvent {
    /// A coverage was recorded.
    #[serde(rename = "coverage.added")]
    Added(CoverageEntry),
    /// A coverage was ended, for a reason: it pays no new claim.
    #[serde(rename = "coverage.ended")]
    Ended { coverage_id: Uuid, reason: String },
}

impl DomainEvent for CoverageEvent {
    fn event_type(&self) -> String {
        match self {
            CoverageEvent::Added(_) => "coverage.added",
            CoverageEvent::Ended { .. } => "coverage.ended",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::codec::CURRENT_VERSION.to_owned()
    }
}

impl StoredForm for CoverageEvent {}

/// What may be asked of a patient's coverage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoverageCommand {
    /// Record a coverage.
    Add {
        coverage_id: Uuid,
        payer: String,
        member_id: String,
        plan: String,
        valid_from: NaiveDate,
        valid_to: Option<NaiveDate>,
        rank: Rank,
    },
    /// End a coverage, for a reason.
    End { coverage_id: Uuid, reason: String },
}

/// A patient's coverages.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    entries: BTreeMap<Uuid, CoverageEntry>,
}

impl Coverage {
    /// The coverage `id`, if recorded.
    pub fn entry(&self, id: Uuid) -> Option<&CoverageEntry> {
        self.entries.get(&id)
    }

    fn decide(&self, command: CoverageCommand) -> Result<CoverageEvent, BillingError> {
        match command {
            CoverageCommand::Add {
                coverage_id,
                payer,
                member_id,
                plan,
                valid_from,
                valid_to,
                rank,
            } => {
                if self.entries.contains_key(&coverage_id) {
                    return Err(BillingError::AlreadyExists);
                }
                let valid_from = plausible("valid_from", valid_from)?;
                let valid_to = valid_to.map(|d| plausible("valid_to", d)).transpose()?;
                if valid_to.is_some_and(|to| to < valid_from) {
                    return Err(BillingError::InvalidPeriod);
                }
                let entry = CoverageEntry {
                    coverage_id,
                    payer: text("payer", &payer, 120)?,
                    member_id: text("member_id", &member_id, 60)?,
                    plan: text("plan", &plan, 120)?,
                    valid_from,
                    valid_to,
                    rank,
                    ended: false,
                };
                if self
                    .entries
                    .values()
                    .any(|e| !e.ended && e.rank == rank && e.overlaps(&entry))
                {
                    return Err(BillingError::RankTaken);
                }
                Ok(CoverageEvent::Added(entry))
            }
            CoverageCommand::End {
                coverage_id,
                reason,
            } => {
                let entry = self
                    .entries
                    .get(&coverage_id)
                    .ok_or(BillingError::UnknownCoverage)?;
                if entry.ended {
                    return Err(BillingError::CoverageEnded);
                }
                Ok(CoverageEvent::Ended {
                    coverage_id,
                    reason: text("reason", &reason, 500)?,
                })
            }
        }
    }
}

impl Aggregate for Coverage {
    const TYPE: &'static str = "coverage";
    type Command = CoverageCommand;
    type Event = CoverageEvent;
    type Error = BillingError;
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
        match event {
            CoverageEvent::Added(entry) => {
                self.entries.insert(entry.coverage_id, entry);
            }
            CoverageEvent::Ended { coverage_id, .. } => {
                if let Some(e) = self.entries.get_mut(&coverage_id) {
                    e.ended = true;
                }
            }
        }
    }
}

impl UniqueKeys for Coverage {
    fn unique_keys(&self) -> Vec<UniqueKey> {
        Vec::new()
    }
}

impl Subject for Coverage {
    /// The stream id is the patient's id.
    fn patient(&self, aggregate_id: &str) -> Option<Uuid> {
        Uuid::parse_str(aggregate_id).ok()
    }
}
