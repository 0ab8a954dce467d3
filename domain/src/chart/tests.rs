//! Given/when/then tests of the clinical record: every entry rule (draft,
//! sign, amend, entered in error, ranges, the critical flag) and the care
//! team (membership, grants and their expiry). "Now" is always given.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::{AggregateResultValidator, TestFramework};
use uuid::Uuid;

use super::*;
use crate::codec::StoredForm;

const PATIENT: Uuid = Uuid::from_u128(0xCA7);
const DOCTOR: Uuid = Uuid::from_u128(0xD0C);
const NURSE: Uuid = Uuid::from_u128(0x4E5);
const GRANT: Uuid = Uuid::from_u128(0x61A55);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap()
}

fn origin() -> Origin {
    Origin {
        patient_id: PATIENT,
        author: DOCTOR,
    }
}

fn note(assessment: &str) -> EntryBody {
    EntryBody::Note(Note {
        subjective: Some("Tired for two weeks".into()),
        objective: None,
        assessment: Some(assessment.into()),
        plan: None,
        appointment_id: None,
    })
}

fn vitals() -> Vitals {
    Vitals {
        taken_at: now() - Duration::minutes(10),
        systolic_mmhg: Some(128),
        diastolic_mmhg: Some(82),
        heart_rate_bpm: Some(72),
        temperature_c: Some(36.8),
        respiratory_rate: None,
        spo2_percent: Some(98),
        weight_kg: Some(80.0),
        height_cm: Some(180.0),
    }
}

fn potassium(value: f64, interpretation: Interpretation) -> EntryBody {
    EntryBody::Lab(LabResult {
        test: "Potassium".into(),
        loinc: Some("2823-3".into()),
        value: LabValue::Number(value),
        unit: Some("mmol/L".into()),
        reference_range: Some("3.5-5.1".into()),
        interpretation,
        specimen_at: now() - Duration::hours(2),
    })
}

async fn entry(
    events: Vec<EntryEvent>,
    command: EntryCommand,
) -> AggregateResultValidator<ChartEntry> {
    TestFramework::<ChartEntry>::with(())
        .given(events)
        .when_async(command)
        .await
}

fn drafted() -> EntryEvent {
    EntryEvent::Drafted {
        origin: origin(),
        body: note("Iron deficiency"),
    }
}

fn signed() -> EntryEvent {
    EntryEvent::Signed { at: now() }
}

fn record(body: EntryBody) -> EntryCommand {
    EntryCommand::Record {
        origin: origin(),
        body,
        now: now(),
    }
}

fn amend(body: EntryBody, reason: &str) -> EntryCommand {
    EntryCommand::Amend {
        body,
        reason: reason.into(),
        now: now(),
    }
}

// --- draft, revise, sign ---------------------------------------------------

#[tokio::test]
async fn a_note_is_drafted_with_its_text_trimmed() {
    let mut body = note("  Iron deficiency \n");
    if let EntryBody::Note(n) = &mut body {
        n.objective = Some("   ".into());
    }
    entry(
        vec![],
        EntryCommand::Draft {
            origin: origin(),
            body,
            now: now(),
        },
    )
    .await
    .then_expect_error(ChartError::EmptyField("objective"));
    entry(
        vec![],
        EntryCommand::Draft {
            origin: origin(),
            body: note("  Iron deficiency \n"),
            now: now(),
        },
    )
    .await
    .then_expect_events(vec![drafted()]);
}

#[tokio::test]
async fn a_note_with_no_section_is_refused() {
    let empty = EntryBody::Note(Note {
        subjective: None,
        objective: None,
        assessment: None,
        plan: None,
        appointment_id: None,
    });
    entry(
        vec![],
        EntryCommand::Draft {
            origin: origin(),
            body: empty,
            now: now(),
        },
    )
    .await
    .then_expect_error(ChartError::EmptyNote);
}

#[tokio::test]
async fn a_note_is_drafted_not_recorded_and_nothing_else_is_drafted() {
    entry(vec![], record(note("x")))
        .await
        .then_expect_error(ChartError::NoteMustBeDrafted);
    entry(
        vec![],
        EntryCommand::Draft {
            origin: origin(),
            body: EntryBody::Vitals(vitals()),
            now: now(),
        },
    )
    .await
    .then_expect_error(ChartError::NotANote);
}

#[tokio::test]
async fn a_draft_is_revised_then_signed_once() {
    entry(
        vec![drafted()],
        EntryCommand::Revise {
            body: note("Iron deficiency anaemia"),
            now: now(),
        },
    )
    .await
    .then_expect_events(vec![EntryEvent::Revised {
        body: note("Iron deficiency anaemia"),
    }]);
    entry(vec![drafted()], EntryCommand::Sign { now: now() })
        .await
        .then_expect_events(vec![signed()]);
    entry(vec![drafted(), signed()], EntryCommand::Sign { now: now() })
        .await
        .then_expect_error(ChartError::NotADraft);
}

#[tokio::test]
async fn a_signed_note_can_only_be_amended() {
    entry(
        vec![drafted(), signed()],
        EntryCommand::Revise {
            body: note("changed quietly"),
            now: now(),
        },
    )
    .await
    .then_expect_error(ChartError::NotADraft);
    entry(
        vec![drafted(), signed()],
        amend(note("Iron deficiency anaemia"), "ferritin came back low"),
    )
    .await
    .then_expect_events(vec![EntryEvent::Amended {
        body: note("Iron deficiency anaemia"),
        reason: "ferritin came back low".into(),
    }]);
}

#[tokio::test]
async fn a_draft_is_not_amended_and_an_amendment_needs_a_reason() {
    entry(vec![drafted()], amend(note("y"), "because"))
        .await
        .then_expect_error(ChartError::StillADraft);
    entry(vec![drafted(), signed()], amend(note("y"), "  "))
        .await
        .then_expect_error(ChartError::EmptyField("reason"));
    entry(
        vec![drafted(), signed()],
        amend(note("y"), "bad\u{0}reason"),
    )
    .await
    .then_expect_error(ChartError::InvalidCharacters("reason"));
}

#[tokio::test]
async fn an_amendment_keeps_the_kind() {
    entry(
        vec![drafted(), signed()],
        amend(EntryBody::Vitals(vitals()), "wrong form"),
    )
    .await
    .then_expect_error(ChartError::KindChanged("note"));
}

#[tokio::test]
async fn versions_accumulate_and_the_last_is_current() {
    let mut e = ChartEntry::default();
    for ev in [
        drafted(),
        EntryEvent::Revised { body: note("two") },
        signed(),
        EntryEvent::Amended {
            body: note("three"),
            reason: "r".into(),
        },
    ] {
        cqrs_es::Aggregate::apply(&mut e, ev);
    }
    assert_eq!(e.version_count(), 3);
    assert_eq!(e.current(), Some(&note("three")));
    assert_eq!(e.status(), EntryStatus::Signed);
    assert_eq!(crate::subject::Subject::patient(&e, "x"), Some(PATIENT));
}

// --- entered in error --------------------------------------------------------

#[tokio::test]
async fn entered_in_error_needs_a_reason_and_ends_the_entry() {
    let withdrawn = EntryEvent::EnteredInError {
        reason: "wrong patient".into(),
    };
    entry(
        vec![drafted(), signed()],
        EntryCommand::EnterInError {
            reason: "wrong patient".into(),
        },
    )
    .await
    .then_expect_events(vec![withdrawn.clone()]);
    entry(
        vec![drafted()],
        EntryCommand::EnterInError { reason: "".into() },
    )
    .await
    .then_expect_error(ChartError::EmptyField("reason"));
    for command in [
        amend(note("z"), "r"),
        EntryCommand::Sign { now: now() },
        EntryCommand::EnterInError {
            reason: "again".into(),
        },
    ] {
        entry(vec![drafted(), signed(), withdrawn.clone()], command)
            .await
            .then_expect_error(ChartError::Withdrawn);
    }
}

#[tokio::test]
async fn nothing_is_done_to_an_entry_that_does_not_exist() {
    entry(vec![], EntryCommand::Sign { now: now() })
        .await
        .then_expect_error(ChartError::UnknownEntry);
    entry(vec![], amend(note("x"), "r"))
        .await
        .then_expect_error(ChartError::UnknownEntry);
    entry(vec![drafted()], record(EntryBody::Vitals(vitals())))
        .await
        .then_expect_error(ChartError::AlreadyExists);
}

// --- ranges ----------------------------------------------------------------

#[tokio::test]
async fn vitals_in_range_are_recorded_with_a_derived_bmi() {
    entry(vec![], record(EntryBody::Vitals(vitals())))
        .await
        .then_expect_events(vec![EntryEvent::Recorded {
            origin: origin(),
            body: EntryBody::Vitals(vitals()),
        }]);
    assert_eq!(vitals().bmi(), Some(24.7));
    let no_height = Vitals {
        height_cm: None,
        ..vitals()
    };
    assert_eq!(no_height.bmi(), None);
}

#[tokio::test]
async fn implausible_vitals_are_refused_naming_the_field() {
    let cases: Vec<(Vitals, ChartError)> = vec![
        (
            Vitals {
                heart_rate_bpm: Some(720),
                ..vitals()
            },
            ChartError::Implausible {
                field: "heart_rate_bpm",
                min: "20",
                max: "300",
            },
        ),
        (
            Vitals {
                temperature_c: Some(98.6),
                ..vitals()
            },
            ChartError::Implausible {
                field: "temperature_c",
                min: "25",
                max: "45",
            },
        ),
        (
            Vitals {
                temperature_c: Some(f64::NAN),
                ..vitals()
            },
            ChartError::NotANumber("temperature_c"),
        ),
        (
            Vitals {
                spo2_percent: Some(101),
                ..vitals()
            },
            ChartError::Implausible {
                field: "spo2_percent",
                min: "50",
                max: "100",
            },
        ),
        (
            Vitals {
                weight_kg: Some(0.0),
                ..vitals()
            },
            ChartError::Implausible {
                field: "weight_kg",
                min: "0.2",
                max: "500",
            },
        ),
        (
            Vitals {
                diastolic_mmhg: None,
                ..vitals()
            },
            ChartError::BloodPressure,
        ),
        (
            Vitals {
                systolic_mmhg: Some(80),
                diastolic_mmhg: Some(90),
                ..vitals()
            },
            ChartError::BloodPressure,
        ),
        (
            Vitals {
                taken_at: now() + Duration::hours(1),
                ..vitals()
            },
            ChartError::ImplausibleTime("taken_at"),
        ),
        (
            Vitals {
                taken_at: now(),
                systolic_mmhg: None,
                diastolic_mmhg: None,
                heart_rate_bpm: None,
                temperature_c: None,
                respiratory_rate: None,
                spo2_percent: None,
                weight_kg: None,
                height_cm: None,
            },
            ChartError::NoMeasurement,
        ),
    ];
    for (v, error) in cases {
        entry(vec![], record(EntryBody::Vitals(v)))
            .await
            .then_expect_error(error);
    }
}

#[tokio::test]
async fn codes_are_checked_against_their_system() {
    let mut bad_loinc = potassium(4.0, Interpretation::Normal);
    if let EntryBody::Lab(l) = &mut bad_loinc {
        l.loinc = Some("potassium".into());
    }
    entry(vec![], record(bad_loinc))
        .await
        .then_expect_error(ChartError::InvalidCode("loinc"));
    let diagnosis = |code: &str| {
        EntryBody::Diagnosis(Diagnosis {
            description: "Type 2 diabetes".into(),
            icd10: Some(code.into()),
            status: DiagnosisStatus::Active,
            onset: None,
        })
    };
    entry(vec![], record(diagnosis("diabetes")))
        .await
        .then_expect_error(ChartError::InvalidCode("icd10"));
    // Codes are kept upper case.
    entry(vec![], record(diagnosis("e11.9")))
        .await
        .then_expect_events(vec![EntryEvent::Recorded {
            origin: origin(),
            body: diagnosis("E11.9"),
        }]);
}

#[tokio::test]
async fn a_lab_value_is_a_finite_number_or_clean_text() {
    entry(
        vec![],
        record(potassium(f64::INFINITY, Interpretation::Normal)),
    )
    .await
    .then_expect_error(ChartError::NotANumber("value"));
    let mut text_value = potassium(0.0, Interpretation::Abnormal);
    if let EntryBody::Lab(l) = &mut text_value {
        l.value = LabValue::Text("haemolysed\u{7}".into());
    }
    entry(vec![], record(text_value))
        .await
        .then_expect_error(ChartError::InvalidCharacters("value"));
}

// --- the critical flag -------------------------------------------------------

#[tokio::test]
async fn a_critical_result_is_its_own_event_type() {
    entry(vec![], record(potassium(6.8, Interpretation::Critical)))
        .await
        .then_expect_events(vec![EntryEvent::CriticalResultRecorded {
            origin: origin(),
            body: potassium(6.8, Interpretation::Critical),
        }]);
    entry(vec![], record(potassium(4.1, Interpretation::Normal)))
        .await
        .then_expect_events(vec![EntryEvent::Recorded {
            origin: origin(),
            body: potassium(4.1, Interpretation::Normal),
        }]);
}

#[tokio::test]
async fn an_amendment_that_reads_critical_is_its_own_event_type() {
    let recorded = EntryEvent::Recorded {
        origin: origin(),
        body: potassium(5.0, Interpretation::Normal),
    };
    entry(
        vec![recorded],
        amend(potassium(6.9, Interpretation::Critical), "re-run"),
    )
    .await
    .then_expect_events(vec![EntryEvent::CriticalResultAmended {
        body: potassium(6.9, Interpretation::Critical),
        reason: "re-run".into(),
    }]);
}

#[tokio::test]
async fn a_document_is_recorded_by_hash_and_never_amended() {
    let doc = |sha: &str| {
        EntryBody::Document(Document {
            title: "Discharge letter".into(),
            media_type: "application/pdf".into(),
            sha256: sha.into(),
            size_bytes: 1024,
        })
    };
    entry(vec![], record(doc("ABC")))
        .await
        .then_expect_error(ChartError::InvalidCode("sha256"));
    let sha = "a".repeat(64);
    let recorded = EntryEvent::Recorded {
        origin: origin(),
        body: doc(&sha),
    };
    entry(vec![], record(doc(&sha)))
        .await
        .then_expect_events(vec![recorded.clone()]);
    entry(vec![recorded], amend(doc(&sha), "retitle"))
        .await
        .then_expect_error(ChartError::NotAmendable);
}

// --- the care team -------------------------------------------------------------

async fn team(events: Vec<CareEvent>, command: CareCommand) -> AggregateResultValidator<CareTeam> {
    TestFramework::<CareTeam>::with(())
        .given(events)
        .when_async(command)
        .await
}

fn added(user_id: Uuid) -> CareEvent {
    CareEvent::MemberAdded {
        user_id,
        reason: "primary care".into(),
    }
}

fn break_glass(lasts: Duration) -> CareCommand {
    CareCommand::BreakGlass {
        grant_id: GRANT,
        user_id: DOCTOR,
        clinician: true,
        reason: "unconscious in the emergency department".into(),
        now: now(),
        lasts,
    }
}

fn glass_broken() -> CareEvent {
    CareEvent::GlassBroken {
        grant_id: GRANT,
        user_id: DOCTOR,
        reason: "unconscious in the emergency department".into(),
        at: now(),
        expires_at: now() + Duration::hours(1),
    }
}

#[tokio::test]
async fn clinicians_join_the_team_once_with_a_reason() {
    let add = |user_id, clinician, reason: &str| CareCommand::Add {
        user_id,
        clinician,
        reason: reason.into(),
    };
    team(vec![], add(NURSE, true, "primary care"))
        .await
        .then_expect_events(vec![added(NURSE)]);
    team(vec![added(NURSE)], add(NURSE, true, "again"))
        .await
        .then_expect_error(ChartError::AlreadyMember);
    team(vec![], add(NURSE, false, "staff"))
        .await
        .then_expect_error(ChartError::NotAClinician);
    team(vec![], add(NURSE, true, ""))
        .await
        .then_expect_error(ChartError::EmptyField("reason"));
}

#[tokio::test]
async fn a_member_is_removed_with_a_reason_and_loses_standing() {
    team(
        vec![],
        CareCommand::Remove {
            user_id: NURSE,
            reason: "moved".into(),
        },
    )
    .await
    .then_expect_error(ChartError::NotMember);
    let removed = CareEvent::MemberRemoved {
        user_id: NURSE,
        reason: "moved".into(),
    };
    team(
        vec![added(NURSE)],
        CareCommand::Remove {
            user_id: NURSE,
            reason: "moved".into(),
        },
    )
    .await
    .then_expect_events(vec![removed.clone()]);
    let mut t = CareTeam::default();
    cqrs_es::Aggregate::apply(&mut t, added(NURSE));
    assert_eq!(t.standing(NURSE, now()), Some(Standing::Member));
    cqrs_es::Aggregate::apply(&mut t, removed);
    assert_eq!(t.standing(NURSE, now()), None);
}

#[tokio::test]
async fn breaking_the_glass_grants_access_until_it_expires() {
    team(vec![], break_glass(Duration::hours(1)))
        .await
        .then_expect_events(vec![glass_broken()]);
    let mut t = CareTeam::default();
    cqrs_es::Aggregate::apply(&mut t, glass_broken());
    let grant = Grant {
        grant_id: GRANT,
        user_id: DOCTOR,
        expires_at: now() + Duration::hours(1),
    };
    assert_eq!(t.standing(DOCTOR, now()), Some(Standing::Glass(grant)));
    assert_eq!(
        t.standing(DOCTOR, now() + Duration::minutes(59)),
        Some(Standing::Glass(grant))
    );
    // Expired: nothing, and nothing for anyone else at any time.
    assert_eq!(t.standing(DOCTOR, now() + Duration::hours(1)), None);
    assert_eq!(t.standing(NURSE, now()), None);
}

#[tokio::test]
async fn a_grant_needs_a_reason_a_clinician_and_a_sane_duration() {
    team(vec![], break_glass(Duration::milliseconds(500)))
        .await
        .then_expect_error(ChartError::InvalidDuration);
    team(vec![], break_glass(Duration::hours(25)))
        .await
        .then_expect_error(ChartError::InvalidDuration);
    let mut no_reason = break_glass(Duration::hours(1));
    if let CareCommand::BreakGlass { reason, .. } = &mut no_reason {
        *reason = " ".into();
    }
    team(vec![], no_reason)
        .await
        .then_expect_error(ChartError::EmptyField("reason"));
    let mut staff = break_glass(Duration::hours(1));
    if let CareCommand::BreakGlass { clinician, .. } = &mut staff {
        *clinician = false;
    }
    team(vec![], staff)
        .await
        .then_expect_error(ChartError::NotAClinician);
}

#[tokio::test]
async fn the_care_team_stream_is_about_its_patient() {
    let t = CareTeam::default();
    assert_eq!(
        crate::subject::Subject::patient(&t, &PATIENT.to_string()),
        Some(PATIENT)
    );
}

// --- stored forms --------------------------------------------------------------

#[test]
fn every_event_has_a_stable_stored_form() {
    let entries = vec![
        (drafted(), "chart_entry.drafted"),
        (
            EntryEvent::Revised { body: note("r") },
            "chart_entry.revised",
        ),
        (signed(), "chart_entry.signed"),
        (
            EntryEvent::Recorded {
                origin: origin(),
                body: EntryBody::Vitals(vitals()),
            },
            "chart_entry.recorded",
        ),
        (
            EntryEvent::CriticalResultRecorded {
                origin: origin(),
                body: potassium(6.8, Interpretation::Critical),
            },
            "chart_entry.critical_result_recorded",
        ),
        (
            EntryEvent::Amended {
                body: note("a"),
                reason: "r".into(),
            },
            "chart_entry.amended",
        ),
        (
            EntryEvent::CriticalResultAmended {
                body: potassium(7.0, Interpretation::Critical),
                reason: "r".into(),
            },
            "chart_entry.critical_result_amended",
        ),
        (
            EntryEvent::EnteredInError { reason: "r".into() },
            "chart_entry.entered_in_error",
        ),
    ];
    for (event, name) in entries {
        let stored = event.to_stored().unwrap();
        assert_eq!(stored.event_type, name);
        let back = EntryEvent::from_stored(
            &stored.event_type,
            &stored.event_version,
            &stored.payload.to_string(),
        )
        .unwrap();
        assert_eq!(back, event);
    }
    for (event, name) in [
        (added(NURSE), "care_team.member_added"),
        (
            CareEvent::MemberRemoved {
                user_id: NURSE,
                reason: "r".into(),
            },
            "care_team.member_removed",
        ),
        (glass_broken(), "care_team.glass_broken"),
    ] {
        let stored = event.to_stored().unwrap();
        assert_eq!(stored.event_type, name);
        let back = CareEvent::from_stored(
            &stored.event_type,
            &stored.event_version,
            &stored.payload.to_string(),
        )
        .unwrap();
        assert_eq!(back, event);
    }
}

#[test]
fn a_lab_value_reads_as_a_number_or_text() {
    let n: LabValue = serde_json::from_str("6.8").unwrap();
    assert_eq!(n, LabValue::Number(6.8));
    let t: LabValue = serde_json::from_str("\"positive\"").unwrap();
    assert_eq!(t, LabValue::Text("positive".into()));
    // The kind tag selects the body; unknown fields are refused.
    let body: Result<EntryBody, _> = serde_json::from_str(
        r#"{"kind":"diagnosis","description":"x","status":"active","onset":null,"icd10":null,"bogus":1}"#,
    );
    assert!(body.is_err());
}
