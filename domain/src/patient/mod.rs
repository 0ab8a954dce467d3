//! The patient record: demographics, allergies and medical history.

mod commands;
mod error;
mod events;
mod values;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

pub use commands::PatientCommand;
pub use error::PatientError;
pub use events::PatientEvent;
pub use values::{BirthDate, PersonName, Sex};

/// A patient record's state, rebuilt from its events.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    registered: bool,
    name: Option<PersonName>,
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
        match command {
            PatientCommand::Register {
                family_name,
                given_name,
                birth_date,
                sex,
                today,
            } => {
                if self.registered {
                    return Err(PatientError::AlreadyRegistered);
                }
                let name = PersonName::parse(&family_name, &given_name)?;
                let birth_date = BirthDate::parse(birth_date, today)?;
                sink.write(
                    PatientEvent::PatientRegistered {
                        name,
                        birth_date,
                        sex,
                    },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PatientEvent::PatientRegistered { name, .. } => {
                self.registered = true;
                self.name = Some(name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use cqrs_es::test::TestFramework;

    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn register() -> PatientCommand {
        register_born(day(1967, 11, 7))
    }

    fn register_born(birth_date: NaiveDate) -> PatientCommand {
        PatientCommand::Register {
            family_name: "Curie".into(),
            given_name: "Marie".into(),
            birth_date,
            sex: Sex::Female,
            today: day(2026, 11, 23),
        }
    }

    fn registered() -> PatientEvent {
        PatientEvent::PatientRegistered {
            name: PersonName::parse("Curie", "Marie").unwrap(),
            birth_date: BirthDate::parse(day(1967, 11, 7), day(2026, 11, 23)).unwrap(),
            sex: Sex::Female,
        }
    }

    #[tokio::test]
    async fn a_new_patient_is_registered() {
        TestFramework::<Patient>::with(())
            .given_no_previous_events()
            .when_async(register())
            .await
            .then_expect_events(vec![registered()]);
    }

    #[tokio::test]
    async fn a_patient_cannot_be_registered_twice() {
        TestFramework::<Patient>::with(())
            .given(vec![registered()])
            .when_async(register())
            .await
            .then_expect_error(PatientError::AlreadyRegistered);
    }

    #[tokio::test]
    async fn a_patient_born_in_the_future_is_rejected() {
        TestFramework::<Patient>::with(())
            .given_no_previous_events()
            .when_async(register_born(day(2027, 1, 1)))
            .await
            .then_expect_error(PatientError::BornInTheFuture);
    }
}
