use chrono::NaiveDate;
use cqrs_es::test::TestFramework;
use uuid::Uuid;

use super::*;

type Patients = TestFramework<Patient>;

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn today() -> NaiveDate {
    day(2026, 11, 23)
}

fn input() -> DemographicsInput {
    DemographicsInput {
        family_name: "Curie".into(),
        given_name: "Marie".into(),
        birth_date: day(1967, 11, 7),
        sex: Some(Sex::Female),
        phone: Some("+33 1 23 45 67".into()),
        email: Some("marie@example.org".into()),
        address: None,
        identifiers: vec![("MRN".into(), "000123".into())],
    }
}

fn register_with(demographics: DemographicsInput) -> PatientCommand {
    PatientCommand::Register {
        demographics,
        user_id: None,
        today: today(),
    }
}

fn registered() -> PatientEvent {
    PatientEvent::PatientRegistered {
        demographics: parse_demographics(&input(), today()).unwrap(),
        user_id: None,
    }
}

const PEANUT: Uuid = Uuid::from_u128(1);
const ASTHMA: Uuid = Uuid::from_u128(2);

fn peanut_allergy() -> PatientEvent {
    PatientEvent::AllergyRecorded {
        allergy_id: PEANUT,
        allergy: Allergy::parse("Peanut", "anaphylaxis", Severity::LifeThreatening).unwrap(),
    }
}

fn asthma_since_2001() -> PatientEvent {
    PatientEvent::ConditionAdded {
        condition_id: ASTHMA,
        condition: Condition::parse(Some("J45"), "asthma", Some(day(2001, 3, 1)), None, today())
            .unwrap(),
    }
}

fn deceased() -> PatientEvent {
    PatientEvent::PatientDeceased {
        deceased_on: day(2026, 11, 1),
    }
}

async fn given(
    events: Vec<PatientEvent>,
    command: PatientCommand,
) -> cqrs_es::test::AggregateResultValidator<Patient> {
    Patients::with(()).given(events).when_async(command).await
}

#[tokio::test]
async fn a_new_patient_is_registered() {
    given(vec![], register_with(input()))
        .await
        .then_expect_events(vec![registered()]);
}

#[tokio::test]
async fn a_patient_cannot_be_registered_twice() {
    given(vec![registered()], register_with(input()))
        .await
        .then_expect_error(PatientError::AlreadyRegistered);
}

#[tokio::test]
async fn a_patient_born_in_the_future_is_rejected() {
    let mut d = input();
    d.birth_date = day(2027, 1, 1);
    given(vec![], register_with(d))
        .await
        .then_expect_error(PatientError::BornInTheFuture);
}

#[tokio::test]
async fn an_empty_given_name_is_rejected() {
    let mut d = input();
    d.given_name = "   ".into();
    given(vec![], register_with(d))
        .await
        .then_expect_error(PatientError::EmptyField("given_name"));
}

#[tokio::test]
async fn two_identifiers_from_one_system_are_rejected() {
    let mut d = input();
    d.identifiers.push(("mrn".into(), "999".into()));
    given(vec![], register_with(d))
        .await
        .then_expect_error(PatientError::DuplicateIdentifierSystem);
}

#[tokio::test]
async fn a_malformed_email_is_rejected() {
    let mut d = input();
    d.email = Some("not-an-address".into());
    given(vec![], register_with(d))
        .await
        .then_expect_error(PatientError::Malformed("email"));
}

#[tokio::test]
async fn an_unregistered_patient_cannot_be_changed() {
    given(vec![], PatientCommand::RemoveAllergy { allergy_id: PEANUT })
        .await
        .then_expect_error(PatientError::NotRegistered);
}

#[tokio::test]
async fn demographics_are_replaced() {
    let mut d = input();
    d.family_name = "Skłodowska-Curie".into();
    let expected = parse_demographics(&d, today()).unwrap();
    given(
        vec![registered()],
        PatientCommand::UpdateDemographics {
            demographics: d,
            today: today(),
        },
    )
    .await
    .then_expect_events(vec![PatientEvent::DemographicsUpdated {
        demographics: expected,
    }]);
}

#[tokio::test]
async fn an_allergy_is_recorded() {
    given(
        vec![registered()],
        PatientCommand::RecordAllergy {
            allergy_id: PEANUT,
            substance: " Peanut ".into(),
            reaction: "anaphylaxis".into(),
            severity: Severity::LifeThreatening,
        },
    )
    .await
    .then_expect_events(vec![peanut_allergy()]);
}

#[tokio::test]
async fn the_same_substance_cannot_be_recorded_twice() {
    given(
        vec![registered(), peanut_allergy()],
        PatientCommand::RecordAllergy {
            allergy_id: Uuid::from_u128(9),
            substance: "PEANUT".into(),
            reaction: "hives".into(),
            severity: Severity::Mild,
        },
    )
    .await
    .then_expect_error(PatientError::DuplicateAllergy);
}

#[tokio::test]
async fn an_allergy_without_a_reaction_is_rejected() {
    given(
        vec![registered()],
        PatientCommand::RecordAllergy {
            allergy_id: PEANUT,
            substance: "Peanut".into(),
            reaction: "".into(),
            severity: Severity::Mild,
        },
    )
    .await
    .then_expect_error(PatientError::EmptyField("reaction"));
}

#[tokio::test]
async fn an_allergy_is_removed() {
    given(
        vec![registered(), peanut_allergy()],
        PatientCommand::RemoveAllergy { allergy_id: PEANUT },
    )
    .await
    .then_expect_events(vec![PatientEvent::AllergyRemoved { allergy_id: PEANUT }]);
}

#[tokio::test]
async fn an_unknown_allergy_cannot_be_removed() {
    given(
        vec![registered()],
        PatientCommand::RemoveAllergy { allergy_id: PEANUT },
    )
    .await
    .then_expect_error(PatientError::UnknownAllergy);
}

#[tokio::test]
async fn a_condition_is_added_and_resolved() {
    given(
        vec![registered(), asthma_since_2001()],
        PatientCommand::ResolveCondition {
            condition_id: ASTHMA,
            resolved_on: day(2020, 1, 1),
            today: today(),
        },
    )
    .await
    .then_expect_events(vec![PatientEvent::ConditionResolved {
        condition_id: ASTHMA,
        resolved_on: day(2020, 1, 1),
    }]);
}

#[tokio::test]
async fn a_condition_cannot_resolve_before_its_onset() {
    given(
        vec![registered(), asthma_since_2001()],
        PatientCommand::ResolveCondition {
            condition_id: ASTHMA,
            resolved_on: day(2000, 1, 1),
            today: today(),
        },
    )
    .await
    .then_expect_error(PatientError::ResolvedBeforeOnset);
}

#[tokio::test]
async fn a_condition_cannot_resolve_twice() {
    let resolved = PatientEvent::ConditionResolved {
        condition_id: ASTHMA,
        resolved_on: day(2020, 1, 1),
    };
    given(
        vec![registered(), asthma_since_2001(), resolved],
        PatientCommand::ResolveCondition {
            condition_id: ASTHMA,
            resolved_on: day(2021, 1, 1),
            today: today(),
        },
    )
    .await
    .then_expect_error(PatientError::ConditionAlreadyResolved);
}

#[tokio::test]
async fn an_unknown_condition_cannot_resolve() {
    given(
        vec![registered()],
        PatientCommand::ResolveCondition {
            condition_id: ASTHMA,
            resolved_on: day(2021, 1, 1),
            today: today(),
        },
    )
    .await
    .then_expect_error(PatientError::UnknownCondition);
}

#[tokio::test]
async fn a_death_is_recorded() {
    given(
        vec![registered()],
        PatientCommand::MarkDeceased {
            deceased_on: day(2026, 11, 1),
            today: today(),
        },
    )
    .await
    .then_expect_events(vec![deceased()]);
}

#[tokio::test]
async fn a_death_before_birth_is_rejected() {
    given(
        vec![registered()],
        PatientCommand::MarkDeceased {
            deceased_on: day(1960, 1, 1),
            today: today(),
        },
    )
    .await
    .then_expect_error(PatientError::DeathBeforeBirth);
}

#[tokio::test]
async fn a_death_in_the_future_is_rejected() {
    given(
        vec![registered()],
        PatientCommand::MarkDeceased {
            deceased_on: day(2027, 1, 1),
            today: today(),
        },
    )
    .await
    .then_expect_error(PatientError::DateInTheFuture("deceased_on"));
}

#[tokio::test]
async fn a_patient_dies_once() {
    given(
        vec![registered(), deceased()],
        PatientCommand::MarkDeceased {
            deceased_on: day(2026, 11, 2),
            today: today(),
        },
    )
    .await
    .then_expect_error(PatientError::AlreadyDeceased);
}

#[tokio::test]
async fn no_new_allergy_is_recorded_after_death() {
    given(
        vec![registered(), deceased()],
        PatientCommand::RecordAllergy {
            allergy_id: PEANUT,
            substance: "Peanut".into(),
            reaction: "hives".into(),
            severity: Severity::Mild,
        },
    )
    .await
    .then_expect_error(PatientError::Deceased);
}

#[tokio::test]
async fn no_new_condition_is_added_after_death() {
    given(
        vec![registered(), deceased()],
        PatientCommand::AddCondition {
            condition_id: ASTHMA,
            code: None,
            description: "asthma".into(),
            onset: None,
            today: today(),
        },
    )
    .await
    .then_expect_error(PatientError::Deceased);
}

#[tokio::test]
async fn an_overlong_family_name_is_rejected() {
    let mut d = input();
    d.family_name = "x".repeat(201);
    given(vec![], register_with(d))
        .await
        .then_expect_error(PatientError::TooLong("family_name"));
}

#[tokio::test]
async fn a_birth_date_before_1850_is_implausible() {
    let mut d = input();
    d.birth_date = day(1849, 12, 31);
    given(vec![], register_with(d))
        .await
        .then_expect_error(PatientError::ImplausibleBirthDate);
}

#[tokio::test]
async fn a_condition_beginning_after_today_is_rejected() {
    given(
        vec![registered()],
        PatientCommand::AddCondition {
            condition_id: ASTHMA,
            code: None,
            description: "asthma".into(),
            onset: Some(day(2027, 1, 1)),
            today: today(),
        },
    )
    .await
    .then_expect_error(PatientError::DateInTheFuture("onset"));
}

#[tokio::test]
async fn a_condition_cannot_resolve_in_the_future() {
    given(
        vec![registered(), asthma_since_2001()],
        PatientCommand::ResolveCondition {
            condition_id: ASTHMA,
            resolved_on: day(2027, 1, 1),
            today: today(),
        },
    )
    .await
    .then_expect_error(PatientError::DateInTheFuture("resolved_on"));
}

#[test]
fn every_event_is_stored_under_its_stable_name_and_reads_back() {
    use crate::codec::StoredForm;
    use cqrs_es::DomainEvent;
    let demographics = match registered() {
        PatientEvent::PatientRegistered { demographics, .. } => demographics,
        _ => unreachable!(),
    };
    let events = vec![
        registered(),
        PatientEvent::DemographicsUpdated { demographics },
        peanut_allergy(),
        PatientEvent::AllergyRemoved {
            allergy_id: Uuid::from_u128(3),
        },
        asthma_since_2001(),
        PatientEvent::ConditionResolved {
            condition_id: Uuid::from_u128(4),
            resolved_on: day(2010, 1, 1),
        },
        deceased(),
    ];
    for event in events {
        let stored = event.to_stored().unwrap();
        assert_eq!(stored.event_type, event.event_type());
        assert_eq!(stored.event_version, event.event_version());
        // Only the fields: no Rust variant name in the payload.
        assert!(
            !stored.payload.to_string().contains("Patient"),
            "{stored:?}"
        );
        let back = PatientEvent::from_stored(
            &stored.event_type,
            &stored.event_version,
            &stored.payload.to_string(),
        )
        .unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn an_unknown_version_is_refused_by_name() {
    use crate::codec::{DecodeError, StoredForm};
    let stored = peanut_allergy().to_stored().unwrap();
    assert_eq!(
        PatientEvent::from_stored("patient.allergy_recorded", "9", &stored.payload.to_string()),
        Err(DecodeError::Unknown {
            event_type: "patient.allergy_recorded".into(),
            version: "9".into()
        })
    );
    assert!(matches!(
        PatientEvent::from_stored("patient.teleported", "1", "{}"),
        Err(DecodeError::Unknown { .. })
    ));
}

#[test]
fn a_patient_who_registered_themself_is_known_by_their_account() {
    let account = Uuid::from_u128(0xACC);
    let mut p = Patient::default();
    p.apply(registered());
    assert_eq!(p.account(), None);
    let mut p = Patient::default();
    p.apply(PatientEvent::PatientRegistered {
        demographics: parse_demographics(&input(), today()).unwrap(),
        user_id: Some(account),
    });
    assert_eq!(p.account(), Some(account));
}
