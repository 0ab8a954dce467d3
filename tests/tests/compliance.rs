//! The compliance officer's view over HTTP, on each backend: a patient's
//! history (who, role, when, why, what changed, across aggregates) and their
//! record as it was known at a time or a log position, folded from the log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::schedule::*;
use anamnesis_tests::server::Reply;
use chrono::Duration;
use serde_json::{json, Value};

on_both_backends!(
    history_and_as_of_follow_the_record_through_time,
    only_compliance_reads_history_and_as_of,
);

fn events(history: &Value) -> Vec<String> {
    history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}

fn position(r: &Reply) -> i64 {
    r.body["position"].as_i64().unwrap()
}

async fn history_and_as_of_follow_the_record_through_time(backend: Backend) -> anyhow::Result<()> {
    let s = start_in(backend, "America/Los_Angeles").await?;
    let admin = admin(&s).await?;
    let (doctor, doctor_id) = account(&s, &admin, "dr.grey", "doctor").await?;
    let (staff, _) = account(&s, &admin, "desk", "staff").await?;
    let (officer, _) = account(&s, &admin, "officer", "compliance").await?;
    let provider = enroll(&s, &admin, &doctor_id, "Dr Grey", "General practice").await?;
    set_hours(
        &s,
        &admin,
        &provider,
        hours(&EVERY_DAY, &[("00:00", "23:55")]),
        30,
    )
    .await?;

    // Day 1: registered, an allergy recorded.
    let registered = post(&s, &doctor, "/v1/patients", Some(patient("Curie"))).await?;
    assert_eq!(registered.status, 201, "{registered:?}");
    let patient_id = registered.body["id"].as_str().unwrap().to_owned();
    let allergy = post(
        &s,
        &doctor,
        &format!("/v1/patients/{patient_id}/allergies"),
        Some(json!({"substance": "Penicillin", "reaction": "hives", "severity": "moderate"})),
    )
    .await?;
    assert_eq!(allergy.status, 201, "{allergy:?}");
    let before_change = position(&allergy);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    // Later: the name changes, an appointment is booked and cancelled.
    let mut renamed = patient("Curie");
    renamed["family_name"] = json!("Skłodowska-Curie");
    let updated = s
        .call(
            "PUT",
            &format!("/v1/patients/{patient_id}/demographics"),
            Some(&doctor),
            Some(renamed),
            &[],
        )
        .await?;
    assert_eq!(updated.status, 200, "{updated:?}");
    // A fixed local time, three days ahead: "now + 3 days" would cross the
    // end of the working day when the test runs late in the evening.
    let clinic = Clinic::new("America/Los_Angeles")?;
    let slot = clinic.at(clinic.today() + Duration::days(3), "10:00");
    let booked = book(&s, &staff, &provider, &patient_id, &slot).await?;
    assert_eq!(booked.status, 201, "{booked:?}");
    let appointment = booked.body["id"].as_str().unwrap().to_owned();
    let cancelled = post(
        &s,
        &staff,
        &format!("/v1/appointments/{appointment}/cancel"),
        Some(json!({"reason": "Patient travelling"})),
    )
    .await?;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");

    // History: every event about the patient, across aggregates, in order.
    let history = s
        .call(
            "GET",
            &format!("/v1/patients/{patient_id}/history"),
            Some(&officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(history.status, 200, "{history:?}");
    assert_eq!(
        events(&history.body),
        [
            "patient.registered",
            "care_team.member_added",
            "patient.allergy_recorded",
            "patient.demographics_updated",
            "appointment.booked",
            "appointment.cancelled",
        ]
    );
    let items = history.body["items"].as_array().unwrap();
    assert_eq!(items[0]["actor_role"], "doctor");
    assert_eq!(items[4]["actor_role"], "staff");
    assert_eq!(items[5]["aggregate_id"], appointment.as_str());
    let rename = &items[3]["changes"];
    assert_eq!(
        rename,
        &json!([{"field": "demographics.name.family", "before": "Curie",
                 "after": "Skłodowska-Curie"}]),
        "only the name changed"
    );
    let cancel: Vec<&str> = items[5]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(cancel.contains(&"reason"), "{cancel:?}");

    // A window: only what was recorded from `between` on.
    let since = s
        .call(
            "GET",
            &format!(
                "/v1/patients/{patient_id}/history?from={}",
                between
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    .replace('+', "%2B")
            ),
            Some(&officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(since.status, 200, "{since:?}");
    assert_eq!(events(&since.body)[0], "patient.demographics_updated");

    // As of `between`: the old name, the allergy, no appointment yet.
    let then = s
        .call(
            "GET",
            &format!(
                "/v1/patients/{patient_id}/as-of?at={}",
                between
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    .replace('+', "%2B")
            ),
            Some(&officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(then.status, 200, "{then:?}");
    assert_eq!(then.body["position"], before_change);
    assert_eq!(then.body["patient"]["family_name"], "Curie");
    assert_eq!(
        then.body["patient"]["allergies"][0]["substance"],
        "Penicillin"
    );
    assert_eq!(then.body["appointments"], json!([]));

    // As of the booking's position: the new name and the booked appointment.
    let at_booking = s
        .call(
            "GET",
            &format!(
                "/v1/patients/{patient_id}/as-of?position={}",
                position(&booked)
            ),
            Some(&officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(at_booking.status, 200, "{at_booking:?}");
    assert_eq!(
        at_booking.body["patient"]["family_name"],
        "Skłodowska-Curie"
    );
    assert_eq!(at_booking.body["appointments"][0]["status"], "booked");

    // As of now: cancelled.
    let now = s
        .call(
            "GET",
            &format!(
                "/v1/patients/{patient_id}/as-of?position={}",
                position(&cancelled)
            ),
            Some(&officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(now.body["appointments"][0]["status"], "cancelled");
    assert_eq!(
        now.body["appointments"][0]["cancel_reason"],
        "Patient travelling"
    );

    // The same from the command line: history as JSON and as a table, as-of.
    let out = s
        .cli(
            &[
                "replay",
                "history",
                "--patient",
                &patient_id,
                "--format",
                "json",
            ],
            "",
        )
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout)?;
    let cli_types: Vec<&str> = cli
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    // The reads since (the history and as-of calls above) are in it too,
    // and this one: recorded before anything is shown.
    let (reads, changes): (Vec<&str>, Vec<&str>) =
        cli_types.iter().partition(|t| **t == "access.read");
    assert_eq!(changes, events(&history.body));
    assert_eq!(reads.len(), 6, "{cli_types:?}");
    let out = s
        .cli(&["replay", "history", "--patient", &patient_id], "")
        .await?;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("demographics.name.family: Curie → Skłodowska-Curie"),
        "{table}"
    );
    let position_then = before_change.to_string();
    let out = s
        .cli(
            &[
                "replay",
                "as-of",
                "--patient",
                &patient_id,
                "--position",
                &position_then,
            ],
            "",
        )
        .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(record["patient"]["family_name"], "Curie");
    let out = s
        .cli(&["replay", "as-of", "--patient", &patient_id], "")
        .await?;
    assert!(!out.status.success(), "as-of needs --at or --position");
    // The command line's reads are in the access log, as the operator's
    // (they once left no trace); an unknown patient is refused unrecorded.
    let stranger = uuid::Uuid::now_v7().to_string();
    let out = s
        .cli(&["replay", "history", "--patient", &stranger], "")
        .await?;
    assert!(!out.status.success(), "history of no patient");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no patient"));
    let reads = s
        .call(
            "GET",
            &format!("/v1/patients/{patient_id}/history?kind=reads"),
            Some(&officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(reads.status, 200, "{reads:?}");
    let by_operator = reads.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_role"] == "operator")
        .count();
    // History as JSON, as a table, and as-of at a position.
    assert_eq!(by_operator, 3, "{reads:?}");

    // Before registration there is no record.
    let before = s
        .call(
            "GET",
            &format!("/v1/patients/{patient_id}/as-of?position=1"),
            Some(&officer),
            None,
            &[],
        )
        .await?;
    assert_eq!(before.status, 200, "{before:?}");
    assert_eq!(before.body["patient"], Value::Null);
    s.stop().await
}

async fn only_compliance_reads_history_and_as_of(backend: Backend) -> anyhow::Result<()> {
    let s = start_in(backend, "UTC").await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.who", "doctor").await?;
    let officer = user(&s, &admin, "officer", "compliance").await?;
    let (me, my_id) = patient_account(&s, "marie", "Curie").await?;
    for token in [&doctor, &admin, &me] {
        for path in ["history", "as-of?position=10"] {
            let r = s
                .call(
                    "GET",
                    &format!("/v1/patients/{my_id}/{path}"),
                    Some(token),
                    None,
                    &[],
                )
                .await?;
            assert_eq!((r.status, r.code()), (403, "forbidden"), "{path}: {r:?}");
        }
    }
    // Bad input is a 400 naming it; an unknown patient has no history.
    for (path, status) in [
        (format!("/v1/patients/{my_id}/as-of"), 400),
        (format!("/v1/patients/{my_id}/as-of?at=yesterday"), 400),
        (
            format!("/v1/patients/{my_id}/as-of?at=2026-01-01T00:00:00Z&position=3"),
            400,
        ),
        (format!("/v1/patients/{my_id}/history?from=soon"), 400),
    ] {
        let r = s.call("GET", &path, Some(&officer), None, &[]).await?;
        assert_eq!(r.status, status, "{path}: {r:?}");
        assert_eq!(r.content_type, "application/problem+json", "{path}");
    }
    // A patient the log has no record of: 404 for history and as-of, with
    // or without a window, and no read is recorded (such reads once
    // answered 200, and their access records then made the unfiltered
    // history "find" the made-up patient).
    let nobody = uuid::Uuid::now_v7();
    let before = s.event_count().await?;
    for query in [
        "history",
        "history?from=2020-01-01T00:00:00Z",
        "as-of?position=100000",
        "as-of?at=2026-01-01T00:00:00Z",
        "history",
    ] {
        let path = format!("/v1/patients/{nobody}/{query}");
        let r = s.call("GET", &path, Some(&officer), None, &[]).await?;
        assert_eq!((r.status, r.code()), (404, "not_found"), "{path}: {r:?}");
    }
    assert_eq!(
        s.event_count().await?,
        before,
        "a read of nobody was recorded"
    );
    // The patient's own sign-up is in their history (their account names them).
    let r = s
        .call(
            "GET",
            &format!("/v1/patients/{my_id}/history"),
            Some(&officer),
            None,
            &[],
        )
        .await?;
    let types = events(&r.body);
    assert!(
        types.contains(&"patient.registered".to_owned()),
        "{types:?}"
    );
    assert!(types.contains(&"user.created".to_owned()), "{types:?}");
    s.stop().await
}
