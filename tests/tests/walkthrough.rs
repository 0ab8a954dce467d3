//! The API walked through as its users would: the first admin, a doctor, a
//! patient, searches, views per role, and read-your-writes, on each backend.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::TestServer;
use serde_json::json;

on_both_backends!(
    walk_through_from_first_admin_to_read_your_writes,
    read_your_writes_right_after_a_restart_without_a_new_write
);

async fn walk_through_from_first_admin_to_read_your_writes(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    join_care(&s, &admin, &marie_id, &doctor).await?;

    // The doctor records an allergy and reads it back at once.
    let recorded = s
        .call(
            "POST",
            &format!("/v1/patients/{marie_id}/allergies"),
            Some(&doctor),
            Some(json!({"substance": "Penicillin", "reaction": "hives", "severity": "moderate"})),
            &[],
        )
        .await?;
    assert_eq!(recorded.status, 201, "{recorded:?}");
    let read = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}"),
            Some(&doctor),
            None,
            &at(&recorded),
        )
        .await?;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body["allergies"][0]["substance"], "Penicillin");
    assert_eq!(read.body["family_name"], "Curie");
    assert!(read.body["version"].as_i64().unwrap() >= recorded.body["position"].as_i64().unwrap());

    // The patient sees their own record, allergy included.
    let own = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}"),
            Some(&marie),
            None,
            &at(&recorded),
        )
        .await?;
    assert_eq!(own.status, 200);
    assert_eq!(own.body["allergies"].as_array().unwrap().len(), 1);

    // Another patient's record is forbidden to her.
    let other = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(patient("Lovelace")),
            &[],
        )
        .await?;
    assert_eq!(other.status, 201, "{other:?}");
    let other_id = other.body["id"].as_str().unwrap();
    let theirs = s
        .call(
            "GET",
            &format!("/v1/patients/{other_id}"),
            Some(&marie),
            None,
            &[],
        )
        .await?;
    assert_eq!((theirs.status, theirs.code()), (403, "forbidden"));
    assert_eq!(theirs.content_type, "application/problem+json");

    // Analysts see no patient data; no token is 401.
    let analyst = user(&s, &admin, "ann.alyst", "analyst").await?;
    let denied = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}"),
            Some(&analyst),
            None,
            &[],
        )
        .await?;
    assert_eq!(denied.status, 403);
    let anonymous = s
        .call("GET", &format!("/v1/patients/{marie_id}"), None, None, &[])
        .await?;
    assert_eq!(
        (anonymous.status, anonymous.code()),
        (401, "unauthenticated")
    );

    // Search by name prefix, birth date and identifier, paged.
    let found = s
        .call(
            "GET",
            "/v1/patients?name=cur&limit=1",
            Some(&doctor),
            None,
            &at(&other),
        )
        .await?;
    assert_eq!(found.status, 200, "{found:?}");
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(found.body["items"][0]["id"], marie_id.as_str());
    let by_date = s
        .call(
            "GET",
            "/v1/patients?birth_date=1967-11-07&limit=1",
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    let cursor = by_date.body["next_cursor"].as_str().unwrap().to_owned();
    let page2 = s
        .call(
            "GET",
            &format!("/v1/patients?birth_date=1967-11-07&limit=1&cursor={cursor}"),
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    assert_eq!(page2.body["items"].as_array().unwrap().len(), 1);
    assert!(page2.body["next_cursor"].is_null());
    assert_ne!(page2.body["items"][0]["id"], by_date.body["items"][0]["id"]);
    let by_mrn = s
        .call(
            "GET",
            "/v1/patients?identifier=MRN-Lovelace",
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    assert_eq!(by_mrn.body["items"][0]["id"], other_id);

    // Staff see demographics without history.
    let clerk = user(&s, &admin, "front.desk", "staff").await?;
    let demographics = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}"),
            Some(&clerk),
            None,
            &[],
        )
        .await?;
    assert_eq!(demographics.status, 200);
    assert!(demographics.body.get("allergies").is_none());

    // Every event names its actor: the allergy was recorded by the doctor.
    let events = s.db.db.clone();
    let actors: Vec<(String, String)> = match &events {
        anamnesis_commands::Db::Postgres(p) => {
            sqlx::query_as("SELECT event_type, actor_role FROM events ORDER BY global_position")
                .fetch_all(p)
                .await?
        }
        anamnesis_commands::Db::Sqlite(p) => {
            sqlx::query_as("SELECT event_type, actor_role FROM events ORDER BY global_position")
                .fetch_all(p)
                .await?
        }
    };
    assert!(actors.contains(&("patient.allergy_recorded".into(), "doctor".into())));
    assert!(actors.contains(&("user.created".into(), "operator".into())));
    s.stop().await
}

/// A restarted server publishes its projectors' committed positions from the
/// start: a read that waits for a position written before the restart is
/// answered at once, with nothing written in between to wake anything.
async fn read_your_writes_right_after_a_restart_without_a_new_write(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let registered = s
        .call(
            "POST",
            "/v1/patients",
            Some(&doctor),
            Some(patient("Curie")),
            &[],
        )
        .await?;
    assert_eq!(registered.status, 201, "{registered:?}");
    let id = registered.body["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Projected before the restart, so that nothing is left to catch up.
    assert_eq!(
        read_patient(&s, &doctor, &id, Some(&registered))
            .await?
            .status,
        200
    );

    let s = s.restart().await?;
    let events = s.event_count().await?;
    let read = read_patient(&s, &doctor, &id, Some(&registered)).await?;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body["family_name"], "Curie");
    // The read wrote nothing but its access record (ADR 0012).
    assert_eq!(s.event_count().await?, events + 1);
    s.stop().await
}
