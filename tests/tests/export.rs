//! A patient's export (issue 13, item 6), on each backend: the patient
//! takes their whole record and its history as one JSON document; so does
//! compliance; no one else; every export is in the access log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::TestServer;
use serde_json::{json, Value};

on_both_backends!(a_patient_takes_her_whole_record);

async fn export(s: &TestServer, token: &str, id: &str) -> anyhow::Result<(u16, String, Value)> {
    let (status, content_type, bytes) = s
        .get_bytes(&format!("/v1/patients/{id}/export"), Some(token), &[])
        .await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, content_type, body))
}

async fn a_patient_takes_her_whole_record(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let wilson = user(&s, &admin, "dr.wilson", "doctor").await?;
    let staff = user(&s, &admin, "front.desk", "staff").await?;
    let officer = user(&s, &admin, "auditor", "compliance").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let (pierre, _) = patient_account(&s, "pierre", "Dupont").await?;
    join_care(&s, &admin, &marie_id, &doctor).await?;
    join_care(&s, &admin, &marie_id, &wilson).await?;
    let allergy = record_allergy(
        &s,
        &doctor,
        &marie_id,
        json!({"substance": "Penicillin", "reaction": "hives", "severity": "severe"}),
    )
    .await?;
    assert_eq!(allergy.status, 201, "{allergy:?}");
    // Two threads about her (she is in every thread about her).
    for (token, participants, subject) in [
        (&marie, vec![user_id_of(&doctor)?], "Her question"),
        (&doctor, vec![user_id_of(&wilson)?], "Between clinicians"),
    ] {
        let r = s
            .call(
                "POST",
                "/v1/threads",
                Some(token),
                Some(json!({"patient_id": marie_id, "subject": subject,
                            "body": "Hello", "participants": participants})),
                &[],
            )
            .await?;
        assert_eq!(r.status, 201, "{r:?}");
    }

    // A note her doctor has drafted and not signed is his until signed.
    let draft = s
        .call(
            "POST",
            &format!("/v1/patients/{marie_id}/chart"),
            Some(&doctor),
            Some(json!({"kind": "note", "subjective": "Draft thoughts, unsigned"})),
            &[],
        )
        .await?;
    assert_eq!(draft.status, 201, "{draft:?}");

    let (status, content_type, mine) = export(&s, &marie, &marie_id).await?;
    assert_eq!(status, 200, "{mine}");
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(mine["format"], "anamnesis.export.v1");
    assert_eq!(mine["patient_id"], marie_id.as_str());
    assert_eq!(mine["record"]["patient"]["family_name"], "Curie");
    assert!(mine.to_string().contains("Penicillin"));
    let subjects: Vec<&str> = mine["record"]["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["thread"]["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["Her question", "Between clinicians"]);
    let history = mine["history"].as_array().unwrap();
    assert!(history.len() >= 3, "{history:?}");
    let types: Vec<&str> = history
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for t in [
        "user.created",
        "patient.registered",
        "patient.allergy_recorded",
    ] {
        assert!(types.contains(&t), "{types:?}");
    }

    // Her export shows what the API shows her: no unsigned draft (not in
    // the chart, not in the history), no care team (she once got both).
    assert!(!mine.to_string().contains("Draft thoughts"), "{mine}");
    assert_eq!(mine["record"]["chart"], json!([]));
    assert_eq!(mine["record"]["care_team"], json!([]));
    assert!(
        !types.iter().any(|t| t.starts_with("care_team.")),
        "{types:?}"
    );

    // Compliance exports the same record, and all of it.
    let (status, _, theirs) = export(&s, &officer, &marie_id).await?;
    assert_eq!(status, 200);
    for part in ["patient", "threads", "medications"] {
        assert_eq!(theirs["record"][part], mine["record"][part], "{part}");
    }
    assert!(theirs.to_string().contains("Draft thoughts"));
    assert!(!theirs["record"]["care_team"].as_array().unwrap().is_empty());

    // No one else: not her husband, not her doctor, not the front desk.
    for token in [&pierre, &doctor, &staff] {
        let (status, _, body) = export(&s, token, &marie_id).await?;
        assert_eq!(status, 403, "{body}");
    }
    // Each export is on her access log, once the access log holds every
    // record written so far (its projector gathers records for 30 ms).
    let head = s.event_count().await?.to_string();
    let log = s
        .call(
            "GET",
            "/v1/me/access-log",
            Some(&marie),
            None,
            &[("X-Min-Position", head)],
        )
        .await?;
    let exports = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["what"] == "GET /v1/patients/{id}/export")
        .count();
    assert_eq!(exports, 2, "{}", log.body);
    s.stop().await
}
