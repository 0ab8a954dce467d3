//! Given/when/then tests of prescriptions: the allergy check (by name, by
//! class, overridden), validation, dose changes as versions, the life of
//! an order, refills, administration, the active-list key and the dose
//! schedule across a daylight-saving change. "Now" is always given.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use cqrs_es::test::{AggregateResultValidator, TestFramework};
use uuid::Uuid;

use super::*;
use crate::codec::StoredForm;
use crate::schedule::ClinicZone;
use crate::unique::UniqueKeys;
use cqrs_es::Aggregate;

const PATIENT: Uuid = Uuid::from_u128(0xCA7);
const DOCTOR: Uuid = Uuid::from_u128(0xD0C);
const PENICILLIN: Uuid = Uuid::from_u128(0xA11);
const LATEX: Uuid = Uuid::from_u128(0xA12);
const REQUEST: Uuid = Uuid::from_u128(0x4EF);
const GIVEN: Uuid = Uuid::from_u128(0x61);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap()
}

fn at(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap()
}

fn origin() -> Prescriber {
    Prescriber {
        patient_id: PATIENT,
        prescriber: DOCTOR,
    }
}

fn order(name: &str) -> Order {
    Order {
        medication: Drug {
            name: name.into(),
            rxnorm: None,
        },
        dose: Dose {
            amount: 500.0,
            unit: DoseUnit::Mg,
        },
        route: Route::Oral,
        frequency: Frequency::TimesADay {
            times: vec![at(20, 0), at(8, 0)],
        },
        starts_at: now(),
        ends_at: None,
        duration_days: Some(10),
        refills: 1,
        instructions: Some("  Take with food ".into()),
    }
}

fn patient(allergies: &[(Uuid, &str)]) -> PatientFacts {
    PatientFacts {
        registered: true,
        deceased: false,
        allergies: allergies.iter().map(|(i, s)| (*i, s.to_string())).collect(),
    }
}

fn prescribe(order: Order, facts: PatientFacts, reason: Option<&str>) -> MedicationCommand {
    MedicationCommand::Prescribe {
        origin: origin(),
        order,
        patient: facts,
        override_reason: reason.map(Into::into),
        now: now(),
        zone: ClinicZone::default(),
    }
}

/// The order as the domain keeps it: times sorted, duration as an end,
/// text trimmed.
fn kept(name: &str) -> Order {
    Order {
        frequency: Frequency::TimesADay {
            times: vec![at(8, 0), at(20, 0)],
        },
        ends_at: Some(now() + Duration::days(10)),
        duration_days: None,
        instructions: Some("Take with food".into()),
        ..order(name)
    }
}

fn prescribed(name: &str) -> MedicationEvent {
    MedicationEvent::Prescribed {
        origin: origin(),
        order: kept(name),
        allergy_override: None,
    }
}

async fn medication(
    events: Vec<MedicationEvent>,
    command: MedicationCommand,
) -> AggregateResultValidator<Medication> {
    TestFramework::<Medication>::with(())
        .given(events)
        .when_async(command)
        .await
}

fn folded(events: Vec<MedicationEvent>) -> Medication {
    let mut m = Medication::default();
    for e in events {
        m.apply(e);
    }
    m
}

// --- prescribing and the allergy check -------------------------------------

#[tokio::test]
async fn a_medication_is_prescribed_with_its_order_normalized() {
    medication(
        vec![],
        prescribe(order("Amoxicillin"), patient(&[(LATEX, "latex")]), None),
    )
    .await
    .then_expect_events(vec![prescribed("Amoxicillin")]);
}

#[tokio::test]
async fn an_allergy_to_the_drug_itself_is_a_conflict_naming_it() {
    medication(
        vec![],
        prescribe(
            order("Amoxicillin 500 mg capsule"),
            patient(&[(LATEX, "latex"), (PENICILLIN, "amoxicillin")]),
            None,
        ),
    )
    .await
    .then_expect_error(MedicationError::AllergyConflict(vec![AllergyConflict {
        allergy_id: PENICILLIN,
        substance: "amoxicillin".into(),
        class: None,
    }]));
}

#[tokio::test]
async fn a_penicillin_allergy_conflicts_with_amoxicillin_through_its_class() {
    medication(
        vec![],
        prescribe(
            order("Amoxicillin"),
            patient(&[(PENICILLIN, "penicillin")]),
            None,
        ),
    )
    .await
    .then_expect_error(MedicationError::AllergyConflict(vec![AllergyConflict {
        allergy_id: PENICILLIN,
        substance: "penicillin".into(),
        class: Some("penicillins".into()),
    }]));
}

#[test]
fn the_class_table_matches_members_of_one_class_and_nothing_else() {
    let drug = |n: &str| Drug {
        name: n.into(),
        rxnorm: None,
    };
    let allergies = vec![(PENICILLIN, "Ampicillin".to_string())];
    assert_eq!(conflicts(&drug("amoxicillin"), &allergies).len(), 1);
    let sulfa = vec![(LATEX, "sulfa drugs".to_string())];
    assert_eq!(
        conflicts(&drug("Sulfamethoxazole/trimethoprim"), &sulfa)[0].class,
        Some("sulfonamides".into())
    );
    assert!(conflicts(&drug("azithromycin"), &allergies).is_empty());
    assert!(conflicts(&drug("ibuprofen"), &allergies).is_empty());
    // A word of the name, not a substring of a word.
    let iron = vec![(LATEX, "iron".to_string())];
    assert!(conflicts(&drug("Ironwood extract"), &iron).is_empty());
    assert_eq!(conflicts(&drug("Ferrous iron tablets"), &iron).len(), 1);
}

#[tokio::test]
async fn an_override_reason_prescribes_over_the_conflict_and_is_kept() {
    medication(
        vec![],
        prescribe(
            order("Amoxicillin"),
            patient(&[(PENICILLIN, "Penicillin")]),
            Some(" Tolerated a full course in 2024 "),
        ),
    )
    .await
    .then_expect_events(vec![MedicationEvent::Prescribed {
        origin: origin(),
        order: kept("Amoxicillin"),
        allergy_override: Some(AllergyOverride {
            reason: "Tolerated a full course in 2024".into(),
            conflicts: vec![AllergyConflict {
                allergy_id: PENICILLIN,
                substance: "penicillin".into(),
                class: Some("penicillins".into()),
            }],
        }),
    }]);
}

#[tokio::test]
async fn an_override_with_nothing_to_override_records_none() {
    medication(
        vec![],
        prescribe(order("Amoxicillin"), patient(&[]), Some("just in case")),
    )
    .await
    .then_expect_events(vec![prescribed("Amoxicillin")]);
}

#[tokio::test]
async fn an_empty_override_reason_is_refused() {
    medication(
        vec![],
        prescribe(
            order("Amoxicillin"),
            patient(&[(PENICILLIN, "penicillin")]),
            Some("   "),
        ),
    )
    .await
    .then_expect_error(MedicationError::EmptyField("reason"));
}

#[tokio::test]
async fn no_prescription_for_an_unknown_or_deceased_patient() {
    let mut unknown = patient(&[]);
    unknown.registered = false;
    medication(vec![], prescribe(order("Amoxicillin"), unknown, None))
        .await
        .then_expect_error(MedicationError::UnknownPatient);
    let mut deceased = patient(&[]);
    deceased.deceased = true;
    medication(vec![], prescribe(order("Amoxicillin"), deceased, None))
        .await
        .then_expect_error(MedicationError::PatientDeceased);
}

#[tokio::test]
async fn a_medication_is_prescribed_once() {
    medication(
        vec![prescribed("Amoxicillin")],
        prescribe(order("Amoxicillin"), patient(&[]), None),
    )
    .await
    .then_expect_error(MedicationError::AlreadyExists);
}

// --- validation ------------------------------------------------------------

#[tokio::test]
async fn every_field_of_an_order_is_checked() {
    let cases: Vec<(Order, MedicationError)> = vec![
        (
            Order {
                medication: Drug {
                    name: "Amoxi\u{0}cillin".into(),
                    rxnorm: None,
                },
                ..order("x")
            },
            MedicationError::InvalidCharacters("medication.name"),
        ),
        (
            Order {
                medication: Drug {
                    name: "Amoxicillin".into(),
                    rxnorm: Some("72a".into()),
                },
                ..order("x")
            },
            MedicationError::InvalidRxNorm,
        ),
        (
            Order {
                dose: Dose {
                    amount: 0.0,
                    unit: DoseUnit::Mg,
                },
                ..order("Amoxicillin")
            },
            MedicationError::InvalidDose,
        ),
        (
            Order {
                dose: Dose {
                    amount: 0.12345,
                    unit: DoseUnit::Mg,
                },
                ..order("Amoxicillin")
            },
            MedicationError::InvalidDose,
        ),
        (
            Order {
                dose: Dose {
                    amount: f64::NAN,
                    unit: DoseUnit::Mg,
                },
                ..order("Amoxicillin")
            },
            MedicationError::InvalidDose,
        ),
        (
            Order {
                frequency: Frequency::TimesADay { times: vec![] },
                ..order("Amoxicillin")
            },
            MedicationError::InvalidFrequency("times_a_day needs 1 to 12 times"),
        ),
        (
            Order {
                frequency: Frequency::TimesADay {
                    times: vec![at(8, 0), at(8, 0)],
                },
                ..order("Amoxicillin")
            },
            MedicationError::InvalidFrequency("times_a_day names a time twice"),
        ),
        (
            Order {
                frequency: Frequency::EveryHours { hours: 0 },
                ..order("Amoxicillin")
            },
            MedicationError::InvalidFrequency("every_hours must be 1 to 72 hours"),
        ),
        (
            Order {
                ends_at: Some(now() + Duration::days(3)),
                ..order("Amoxicillin")
            },
            MedicationError::InvalidPeriod("give ends_at or duration_days, not both"),
        ),
        (
            Order {
                ends_at: Some(now()),
                duration_days: None,
                ..order("Amoxicillin")
            },
            MedicationError::InvalidPeriod(
                "ends_at must be after starts_at and within ten years of it",
            ),
        ),
        (
            Order {
                starts_at: now() - Duration::days(3),
                ..order("Amoxicillin")
            },
            MedicationError::InvalidPeriod("starts_at must be from a day ago to a year ahead"),
        ),
        (
            Order {
                duration_days: Some(0),
                ..order("Amoxicillin")
            },
            MedicationError::InvalidPeriod("duration_days must be 1 to 366"),
        ),
        (
            Order {
                refills: 13,
                ..order("Amoxicillin")
            },
            MedicationError::InvalidRefills,
        ),
        (
            Order {
                instructions: Some("x".repeat(2001)),
                ..order("Amoxicillin")
            },
            MedicationError::TooLong("instructions"),
        ),
    ];
    for (bad, error) in cases {
        medication(vec![], prescribe(bad, patient(&[]), None))
            .await
            .then_expect_error(error);
    }
}

// --- the active list -------------------------------------------------------

#[test]
fn an_active_order_holds_its_drug_on_the_patients_list_until_it_ends() {
    let mut with_code = prescribed("Amoxicillin");
    if let MedicationEvent::Prescribed { order, .. } = &mut with_code {
        order.medication.rxnorm = Some("723".into());
    }
    let active = folded(vec![with_code.clone()]);
    let keys: Vec<String> = active.unique_keys().into_iter().map(|k| k.key).collect();
    assert_eq!(
        keys,
        vec![
            format!("{PATIENT}/name/amoxicillin"),
            format!("{PATIENT}/rxnorm/723"),
        ]
    );
    // Spelled differently, the same drug holds the same key.
    let shouted = folded(vec![prescribed("  AMOXICILLIN ")]);
    assert_eq!(shouted.unique_keys()[0].key, keys[0]);
    for end in [
        MedicationEvent::Discontinued {
            reason: "rash".into(),
            at: now(),
        },
        MedicationEvent::Completed { at: now() },
    ] {
        assert!(folded(vec![with_code.clone(), end])
            .unique_keys()
            .is_empty());
    }
}

// --- dose changes ----------------------------------------------------------

#[tokio::test]
async fn a_dose_change_is_a_new_version_with_its_reason() {
    medication(
        vec![prescribed("Amoxicillin")],
        MedicationCommand::ChangeDose {
            dose: Dose {
                amount: 250.0,
                unit: DoseUnit::Mg,
            },
            frequency: None,
            reason: "renal function".into(),
        },
    )
    .await
    .then_expect_events(vec![MedicationEvent::DoseChanged {
        dose: Dose {
            amount: 250.0,
            unit: DoseUnit::Mg,
        },
        frequency: Frequency::TimesADay {
            times: vec![at(8, 0), at(20, 0)],
        },
        reason: "renal function".into(),
    }]);
    let m = folded(vec![
        prescribed("Amoxicillin"),
        MedicationEvent::DoseChanged {
            dose: Dose {
                amount: 250.0,
                unit: DoseUnit::Mg,
            },
            frequency: Frequency::EveryHours { hours: 8 },
            reason: "renal function".into(),
        },
    ]);
    assert_eq!(m.versions(), 2);
    assert_eq!(m.order().unwrap().dose.amount, 250.0);
    assert_eq!(
        m.order().unwrap().frequency,
        Frequency::EveryHours { hours: 8 }
    );
}

#[tokio::test]
async fn a_dose_change_that_changes_nothing_or_needs_no_reason_is_refused() {
    medication(
        vec![prescribed("Amoxicillin")],
        MedicationCommand::ChangeDose {
            dose: Dose {
                amount: 500.0,
                unit: DoseUnit::Mg,
            },
            frequency: None,
            reason: "same".into(),
        },
    )
    .await
    .then_expect_error(MedicationError::Unchanged);
    medication(
        vec![prescribed("Amoxicillin")],
        MedicationCommand::ChangeDose {
            dose: Dose {
                amount: 250.0,
                unit: DoseUnit::Mg,
            },
            frequency: None,
            reason: "".into(),
        },
    )
    .await
    .then_expect_error(MedicationError::EmptyField("reason"));
    medication(
        vec![prescribed("Amoxicillin")],
        MedicationCommand::ChangeDose {
            dose: Dose {
                amount: -1.0,
                unit: DoseUnit::Mg,
            },
            frequency: None,
            reason: "x".into(),
        },
    )
    .await
    .then_expect_error(MedicationError::InvalidDose);
}

// --- ending ----------------------------------------------------------------

#[tokio::test]
async fn an_order_is_discontinued_with_a_reason_or_completed_and_then_changes_no_more() {
    medication(
        vec![prescribed("Amoxicillin")],
        MedicationCommand::Discontinue {
            reason: "rash on day 3".into(),
            now: now(),
        },
    )
    .await
    .then_expect_events(vec![MedicationEvent::Discontinued {
        reason: "rash on day 3".into(),
        at: now(),
    }]);
    medication(
        vec![prescribed("Amoxicillin")],
        MedicationCommand::Complete { now: now() },
    )
    .await
    .then_expect_events(vec![MedicationEvent::Completed { at: now() }]);
    for command in [
        MedicationCommand::Complete { now: now() },
        MedicationCommand::Discontinue {
            reason: "x".into(),
            now: now(),
        },
        MedicationCommand::RequestRefill {
            request_id: REQUEST,
            note: None,
        },
    ] {
        medication(
            vec![
                prescribed("Amoxicillin"),
                MedicationEvent::Completed { at: now() },
            ],
            command,
        )
        .await
        .then_expect_error(MedicationError::NotActive);
    }
    medication(vec![], MedicationCommand::Complete { now: now() })
        .await
        .then_expect_error(MedicationError::UnknownMedication);
}

// --- refills ---------------------------------------------------------------

fn requested() -> MedicationEvent {
    MedicationEvent::RefillRequested {
        request_id: REQUEST,
        note: None,
    }
}

#[tokio::test]
async fn a_refill_is_requested_once_and_approved_while_refills_are_left() {
    medication(
        vec![prescribed("Amoxicillin")],
        MedicationCommand::RequestRefill {
            request_id: REQUEST,
            note: Some("running low".into()),
        },
    )
    .await
    .then_expect_events(vec![MedicationEvent::RefillRequested {
        request_id: REQUEST,
        note: Some("running low".into()),
    }]);
    medication(
        vec![prescribed("Amoxicillin"), requested()],
        MedicationCommand::RequestRefill {
            request_id: Uuid::from_u128(9),
            note: None,
        },
    )
    .await
    .then_expect_error(MedicationError::RefillPending);
    medication(
        vec![prescribed("Amoxicillin"), requested()],
        MedicationCommand::ApproveRefill {
            request_id: REQUEST,
        },
    )
    .await
    .then_expect_events(vec![MedicationEvent::RefillApproved {
        request_id: REQUEST,
    }]);
    // One refill authorized, one used: the next is refused.
    medication(
        vec![
            prescribed("Amoxicillin"),
            requested(),
            MedicationEvent::RefillApproved {
                request_id: REQUEST,
            },
            MedicationEvent::RefillRequested {
                request_id: Uuid::from_u128(9),
                note: None,
            },
        ],
        MedicationCommand::ApproveRefill {
            request_id: Uuid::from_u128(9),
        },
    )
    .await
    .then_expect_error(MedicationError::NoRefillsLeft);
}

#[tokio::test]
async fn only_the_waiting_request_is_approved_or_denied() {
    medication(
        vec![prescribed("Amoxicillin")],
        MedicationCommand::ApproveRefill {
            request_id: REQUEST,
        },
    )
    .await
    .then_expect_error(MedicationError::NoRefillRequest);
    medication(
        vec![prescribed("Amoxicillin"), requested()],
        MedicationCommand::DenyRefill {
            request_id: REQUEST,
            reason: "see me first".into(),
        },
    )
    .await
    .then_expect_events(vec![MedicationEvent::RefillDenied {
        request_id: REQUEST,
        reason: "see me first".into(),
    }]);
    let denied = folded(vec![
        prescribed("Amoxicillin"),
        requested(),
        MedicationEvent::RefillDenied {
            request_id: REQUEST,
            reason: "x".into(),
        },
    ]);
    assert_eq!(denied.pending_refill(), None);
    assert_eq!(denied.refills_used(), 0);
}

// --- administration --------------------------------------------------------

fn administer(outcome: Outcome, at: DateTime<Utc>, note: Option<&str>) -> MedicationCommand {
    MedicationCommand::Administer {
        administration_id: GIVEN,
        outcome,
        at,
        note: note.map(Into::into),
        now: now() + Duration::hours(1),
    }
}

#[tokio::test]
async fn a_nurse_records_a_dose_given_held_or_refused() {
    medication(
        vec![prescribed("Amoxicillin")],
        administer(Outcome::Given, now() + Duration::minutes(30), None),
    )
    .await
    .then_expect_events(vec![MedicationEvent::Administered {
        administration_id: GIVEN,
        outcome: Outcome::Given,
        at: now() + Duration::minutes(30),
        note: None,
    }]);
    medication(
        vec![prescribed("Amoxicillin")],
        administer(Outcome::Held, now() + Duration::minutes(30), Some("NPO")),
    )
    .await
    .then_expect_events(vec![MedicationEvent::Administered {
        administration_id: GIVEN,
        outcome: Outcome::Held,
        at: now() + Duration::minutes(30),
        note: Some("NPO".into()),
    }]);
    for outcome in [Outcome::Held, Outcome::Refused] {
        medication(
            vec![prescribed("Amoxicillin")],
            administer(outcome, now() + Duration::minutes(30), None),
        )
        .await
        .then_expect_error(MedicationError::ReasonRequired);
    }
}

#[tokio::test]
async fn an_administration_is_in_the_recent_past_within_the_course_of_an_active_order() {
    medication(
        vec![prescribed("Amoxicillin")],
        administer(Outcome::Given, now() + Duration::hours(2), None),
    )
    .await
    .then_expect_error(MedicationError::ImplausibleTime);
    medication(
        vec![prescribed("Amoxicillin")],
        administer(Outcome::Given, now() - Duration::hours(3), None),
    )
    .await
    .then_expect_error(MedicationError::OutsideCourse);
    // After the order ended, only a dose given before the end is charted.
    let stopped = || {
        vec![
            prescribed("Amoxicillin"),
            MedicationEvent::Discontinued {
                reason: "x".into(),
                at: now() + Duration::minutes(10),
            },
        ]
    };
    medication(
        stopped(),
        administer(Outcome::Given, now() + Duration::minutes(20), None),
    )
    .await
    .then_expect_error(MedicationError::NotActive);
    medication(
        stopped(),
        administer(Outcome::Given, now() + Duration::minutes(5), None),
    )
    .await
    .then_expect_events(vec![MedicationEvent::Administered {
        administration_id: GIVEN,
        outcome: Outcome::Given,
        at: now() + Duration::minutes(5),
        note: None,
    }]);
}

#[tokio::test]
async fn no_refill_is_asked_for_when_none_is_authorized_or_left() {
    let mut none = kept("Amoxicillin");
    none.refills = 0;
    medication(
        vec![MedicationEvent::Prescribed {
            origin: origin(),
            order: none,
            allergy_override: None,
        }],
        MedicationCommand::RequestRefill {
            request_id: REQUEST,
            note: None,
        },
    )
    .await
    .then_expect_error(MedicationError::NoRefillsLeft);
}

#[test]
fn brand_names_are_read_as_their_ingredients() {
    let drug = |n: &str| Drug {
        name: n.into(),
        rxnorm: None,
    };
    let penicillin = vec![(PENICILLIN, "penicillin".to_string())];
    let found = conflicts(&drug("Augmentin 875 mg tablet"), &penicillin);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].class.as_deref(), Some("penicillins"));
    let nsaids = vec![(LATEX, "NSAIDs".to_string())];
    assert_eq!(conflicts(&drug("Advil"), &nsaids).len(), 1);
    let keflex = vec![(LATEX, "Keflex".to_string())];
    assert_eq!(conflicts(&drug("cephalexin 500 mg"), &keflex).len(), 1);
}

#[test]
fn one_drug_in_any_strength_or_brand_holds_one_place_on_the_list() {
    let key = |n: &str| {
        Drug {
            name: n.into(),
            rxnorm: None,
        }
        .key()
    };
    assert_eq!(key("Amoxicillin 500 mg capsule"), "amoxicillin");
    assert_eq!(key("amoxicillin 250 MG"), "amoxicillin");
    assert_eq!(key("Amoxil"), "amoxicillin");
    assert_eq!(key("Augmentin 875 mg"), "amoxicillin clavulanate");
    assert_eq!(key("Vitamin D3 1000 units"), "vitamin");
    assert_eq!(key("500 mg"), "500 mg");
}

#[test]
fn a_course_in_days_ends_at_the_same_local_time_across_a_clock_change() {
    let zone = ClinicZone::parse("America/New_York").unwrap();
    // US clocks spring forward on 2027-03-14: 08:00 EST is 13:00 UTC, 08:00 EDT 12:00 UTC.
    let start = Utc.with_ymd_and_hms(2027, 3, 10, 13, 0, 0).unwrap();
    let order = Order {
        starts_at: start,
        duration_days: Some(7),
        frequency: Frequency::TimesADay {
            times: vec![at(8, 0)],
        },
        ..order("Amoxicillin")
    }
    .parse(start, zone)
    .unwrap();
    assert_eq!(
        order.ends_at,
        Some(Utc.with_ymd_and_hms(2027, 3, 17, 12, 0, 0).unwrap())
    );
    let doses = order.doses(zone, start, start + Duration::days(30));
    assert_eq!(doses.len(), 7, "{doses:?}");
}

#[tokio::test]
async fn a_dose_is_at_least_a_ten_thousandth_and_times_are_whole_minutes() {
    for amount in [1e-11, 5e-324, 0.00004] {
        medication(
            vec![],
            prescribe(
                Order {
                    dose: Dose {
                        amount,
                        unit: DoseUnit::Mg,
                    },
                    ..order("Amoxicillin")
                },
                patient(&[]),
                None,
            ),
        )
        .await
        .then_expect_error(MedicationError::InvalidDose);
    }
    medication(
        vec![],
        prescribe(
            Order {
                frequency: Frequency::TimesADay {
                    times: vec![NaiveTime::from_hms_opt(8, 0, 7).unwrap()],
                },
                ..order("Amoxicillin")
            },
            patient(&[]),
            None,
        ),
    )
    .await
    .then_expect_error(MedicationError::InvalidFrequency(
        "times_a_day takes whole minutes (08:00)",
    ));
}

// --- the dose schedule -----------------------------------------------------

#[test]
fn doses_at_local_times_stay_at_those_times_across_a_daylight_saving_change() {
    let zone = ClinicZone::parse("America/New_York").unwrap();
    // US clocks fall back on 2026-11-01.
    let start = Utc.with_ymd_and_hms(2026, 10, 31, 4, 0, 0).unwrap(); // midnight EDT
    let order = Order {
        starts_at: start,
        ends_at: Some(start + Duration::days(2)),
        duration_days: None,
        frequency: Frequency::TimesADay {
            times: vec![at(8, 0), at(20, 0)],
        },
        ..order("Amoxicillin")
    };
    let doses = order.doses(zone, start - Duration::days(1), start + Duration::days(5));
    let local: Vec<String> = doses
        .iter()
        .map(|t| zone.local(*t).format("%m-%d %H:%M %z").to_string())
        .collect();
    assert_eq!(
        local,
        vec![
            "10-31 08:00 -0400",
            "10-31 20:00 -0400",
            "11-01 08:00 -0500",
            "11-01 20:00 -0500",
        ]
    );
}

#[test]
fn doses_every_n_hours_count_from_the_start_and_stop_at_the_end() {
    let order = Order {
        frequency: Frequency::EveryHours { hours: 8 },
        duration_days: Some(1),
        ..order("Amoxicillin")
    }
    .parse(now(), ClinicZone::default())
    .unwrap();
    let zone = ClinicZone::default();
    let all = order.doses(zone, now() - Duration::days(1), now() + Duration::days(3));
    assert_eq!(
        all,
        vec![
            now(),
            now() + Duration::hours(8),
            now() + Duration::hours(16)
        ]
    );
    // From mid-way: the next due dose, not one in between.
    let later = order.doses(zone, now() + Duration::hours(9), now() + Duration::days(3));
    assert_eq!(later, vec![now() + Duration::hours(16)]);
    assert!(order
        .doses(zone, now() + Duration::days(2), now() + Duration::days(3))
        .is_empty());
}

// --- stored form -----------------------------------------------------------

#[test]
fn every_event_round_trips_through_its_stored_form_under_its_stable_name() {
    let events = [
        (prescribed("Amoxicillin"), "medication.prescribed"),
        (
            MedicationEvent::DoseChanged {
                dose: Dose {
                    amount: 0.5,
                    unit: DoseUnit::Tablet,
                },
                frequency: Frequency::EveryHours { hours: 6 },
                reason: "x".into(),
            },
            "medication.dose_changed",
        ),
        (
            MedicationEvent::Discontinued {
                reason: "x".into(),
                at: now(),
            },
            "medication.discontinued",
        ),
        (
            MedicationEvent::Completed { at: now() },
            "medication.completed",
        ),
        (requested(), "medication.refill_requested"),
        (
            MedicationEvent::RefillApproved {
                request_id: REQUEST,
            },
            "medication.refill_approved",
        ),
        (
            MedicationEvent::RefillDenied {
                request_id: REQUEST,
                reason: "x".into(),
            },
            "medication.refill_denied",
        ),
        (
            MedicationEvent::Administered {
                administration_id: GIVEN,
                outcome: Outcome::Refused,
                at: now(),
                note: Some("declined".into()),
            },
            "medication.administered",
        ),
    ];
    for (event, name) in events {
        let stored = event.to_stored().unwrap();
        assert_eq!(stored.event_type, name);
        let back = MedicationEvent::from_stored(
            &stored.event_type,
            &stored.event_version,
            &stored.payload.to_string(),
        )
        .unwrap();
        assert_eq!(back, event);
    }
}
