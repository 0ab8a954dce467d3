//! The patient record: demographics, allergies and medical history.

mod commands;
mod error;
mod events;
mod values;

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::subject::Subject;
use crate::unique::{UniqueKey, UniqueKeys};

pub use commands::{AddressInput, DemographicsInput, PatientCommand};
pub use error::PatientError;
pub use events::{Demographics, PatientEvent};
pub use values::{
    Address, Allergy, BirthDate, Condition, Contact, Identifier, PersonName, Severity, Sex,
};

/// A patient record's state, rebuilt from its events: what its rules need.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    birth_date: Option<NaiveDate>,
    allergies: BTreeMap<Uuid, String>,
    /// Condition id → (onset, resolved?).
    conditions: BTreeMap<Uuid, (Option<NaiveDate>, bool)>,
    deceased: bool,
    /// Identifiers as last registered or updated: unique across patients.
    identifiers: Vec<Identifier>,
    /// The user account that is this patient, when they registered themselves.
    #[serde(default)]
    account: Option<Uuid>,
    /// Erased: refuses every command.
    #[serde(default)]
    erased: bool,
}

impl Patient {
    /// The patient's own user account, when they registered themselves.
    pub fn account(&self) -> Option<Uuid> {
        self.account
    }

    fn registered(&self) -> bool {
        self.birth_date.is_some()
    }

    /// Whether the record exists.
    pub fn is_registered(&self) -> bool {
        self.registered()
    }

    /// Whether the patient is recorded as deceased.
    pub fn is_deceased(&self) -> bool {
        self.deceased
    }

    /// Recorded allergies: id and substance (lower case).
    pub fn allergies(&self) -> Vec<(Uuid, String)> {
        self.allergies
            .iter()
            .map(|(id, substance)| (*id, substance.clone()))
            .collect()
    }
}

/// Parses submitted demographics into their checked form.
pub fn parse_demographics(
    input: &DemographicsInput,
    today: NaiveDate,
) -> Result<Demographics, PatientError> {
    let name = PersonName::parse(&input.family_name, &input.given_name)?;
    let birth_date = BirthDate::parse(input.birth_date, today)?;
    let contact = Contact::parse(input.phone.as_deref(), input.email.as_deref())?;
    let address = input
        .address
        .as_ref()
        .map(|a| {
            Address::parse(
                &a.line,
                &a.city,
                &a.postal_code,
                a.region.as_deref(),
                &a.country,
            )
        })
        .transpose()?;
    let mut systems = HashSet::new();
    let mut identifiers = Vec::with_capacity(input.identifiers.len());
    for (system, value) in &input.identifiers {
        let id = Identifier::parse(system, value)?;
        if !systems.insert(id.system.clone()) {
            return Err(PatientError::DuplicateIdentifierSystem);
        }
        identifiers.push(id);
    }
    Ok(Demographics {
        name,
        birth_date,
        sex: input.sex.unwrap_or(Sex::Unknown),
        contact,
        address,
        identifiers,
    })
}

impl Aggregate for Patient {
    const TYPE: &'static str = "patient";
    type Command = PatientCommand;
    type Event = PatientEvent;
    type Error = PatientError;
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
        if let PatientEvent::PatientRegistered {
            user_id: Some(user_id),
            ..
        } = &event
        {
            self.account = Some(*user_id);
        }
        match event {
            PatientEvent::PatientRegistered { demographics, .. }
            | PatientEvent::DemographicsUpdated { demographics } => {
                self.birth_date = Some(demographics.birth_date.date());
                self.identifiers = demographics.identifiers;
            }
            PatientEvent::AllergyRecorded {
                allergy_id,
                allergy,
            } => {
                self.allergies
                    .insert(allergy_id, allergy.substance.to_lowercase());
            }
            PatientEvent::AllergyRemoved { allergy_id } => {
                self.allergies.remove(&allergy_id);
            }
            PatientEvent::ConditionAdded {
                condition_id,
                condition,
            } => {
                self.conditions
                    .insert(condition_id, (condition.onset, false));
            }
            PatientEvent::ConditionResolved { condition_id, .. } => {
                if let Some(c) = self.conditions.get_mut(&condition_id) {
                    c.1 = true;
                }
            }
            PatientEvent::PatientDeceased { .. } => self.deceased = true,
            PatientEvent::Erased => {
                self.erased = true;
                self.identifiers = Vec::new();
                self.account = None;
            }
        }
    }
}

impl Patient {
    /// Every patient command yields exactly one event or an error.
    fn decide(&self, command: PatientCommand) -> Result<PatientEvent, PatientError> {
        use PatientCommand as C;
        if self.erased {
            return Err(PatientError::Erased);
        }
        if !matches!(command, C::Register { .. }) && !self.registered() {
            return Err(PatientError::NotRegistered);
        }
        match command {
            C::Register {
                demographics,
                user_id,
                today,
            } => {
                if self.registered() {
                    return Err(PatientError::AlreadyRegistered);
                }
                Ok(PatientEvent::PatientRegistered {
                    demographics: parse_demographics(&demographics, today)?,
                    user_id,
                })
            }
            C::UpdateDemographics {
                demographics,
                today,
            } => Ok(PatientEvent::DemographicsUpdated {
                demographics: parse_demographics(&demographics, today)?,
            }),
            C::RecordAllergy {
                allergy_id,
                substance,
                reaction,
                severity,
            } => {
                self.alive()?;
                let allergy = Allergy::parse(&substance, &reaction, severity)?;
                let key = allergy.substance.to_lowercase();
                if self.allergies.values().any(|s| *s == key) {
                    return Err(PatientError::DuplicateAllergy);
                }
                Ok(PatientEvent::AllergyRecorded {
                    allergy_id,
                    allergy,
                })
            }
            C::RemoveAllergy { allergy_id } => {
                if !self.allergies.contains_key(&allergy_id) {
                    return Err(PatientError::UnknownAllergy);
                }
                Ok(PatientEvent::AllergyRemoved { allergy_id })
            }
            C::AddCondition {
                condition_id,
                code,
                description,
                onset,
                today,
            } => {
                self.alive()?;
                let condition =
                    Condition::parse(code.as_deref(), &description, onset, self.birth_date, today)?;
                Ok(PatientEvent::ConditionAdded {
                    condition_id,
                    condition,
                })
            }
            C::ResolveCondition {
                condition_id,
                resolved_on,
                today,
            } => {
                let (onset, resolved) = self
                    .conditions
                    .get(&condition_id)
                    .ok_or(PatientError::UnknownCondition)?;
                if *resolved {
                    return Err(PatientError::ConditionAlreadyResolved);
                }
                let resolved_on = values::past(resolved_on, "resolved_on", today)?;
                if self.birth_date.is_some_and(|b| resolved_on < b) {
                    return Err(PatientError::BeforeBirth("resolved_on"));
                }
                if onset.is_some_and(|o| resolved_on < o) {
                    return Err(PatientError::ResolvedBeforeOnset);
                }
                Ok(PatientEvent::ConditionResolved {
                    condition_id,
                    resolved_on,
                })
            }
            C::MarkDeceased { deceased_on, today } => {
                self.alive().map_err(|_| PatientError::AlreadyDeceased)?;
                let deceased_on = values::past(deceased_on, "deceased_on", today)?;
                if self.birth_date.is_some_and(|b| deceased_on < b) {
                    return Err(PatientError::DeathBeforeBirth);
                }
                Ok(PatientEvent::PatientDeceased { deceased_on })
            }
            C::Erase => Ok(PatientEvent::Erased),
        }
    }

    fn alive(&self) -> Result<(), PatientError> {
        if self.deceased {
            return Err(PatientError::Deceased);
        }
        Ok(())
    }
}

/// The scope of patient identifiers among unique keys.
pub const IDENTIFIER_SCOPE: &str = "patient.identifier";

impl UniqueKeys for Patient {
    /// Each identifier (system, value) belongs to at most one patient.
    fn unique_keys(&self) -> Vec<UniqueKey> {
        self.identifiers
            .iter()
            .map(|i| UniqueKey {
                scope: IDENTIFIER_SCOPE,
                key: format!("{}\u{0}{}", i.system, i.value),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;

impl Subject for Patient {
    /// A patient record's stream is the patient's.
    fn patient(&self, aggregate_id: &str) -> Option<Uuid> {
        Uuid::parse_str(aggregate_id).ok()
    }
}
