//! Secure messaging over HTTP, on each backend: a patient and their doctor
//! exchange messages, unread counts fall as messages are read, archive and
//! the reply that undoes it; an outsider gets 403 and writes nothing;
//! compliance reads, recorded; who may take part (the care team and the
//! front desk, never under a break-the-glass grant) and bounded text.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::schedule::account;
use anamnesis_tests::server::{Reply, TestServer};
use serde_json::{json, Value};

on_both_backends!(
    a_patient_and_their_doctor_exchange_messages,
    only_the_care_team_and_the_front_desk_take_part,
);

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> anyhow::Result<Reply> {
    s.call("POST", path, Some(token), Some(body), &[]).await
}

/// GET once the read models have seen every event so far.
async fn get(s: &TestServer, token: &str, path: &str) -> anyhow::Result<Reply> {
    let head = [("X-Min-Position", s.event_count().await?.to_string())];
    s.call("GET", path, Some(token), None, &head).await
}

/// (unread in the thread, unread in total) in `token`'s inbox.
async fn unread(s: &TestServer, token: &str, thread: &str) -> anyhow::Result<(i64, i64)> {
    let inbox = get(s, token, "/v1/me/threads").await?;
    assert_eq!(inbox.status, 200, "{inbox:?}");
    let item = inbox.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["thread_id"] == thread)
        .map_or(-1, |i| i["unread"].as_i64().unwrap());
    Ok((item, inbox.body["unread_total"].as_i64().unwrap()))
}

async fn a_patient_and_their_doctor_exchange_messages(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let (doctor, doctor_id) = account(&s, &admin, "dr.house", "doctor").await?;
    let nurse = user(&s, &admin, "nurse.joy", "nurse").await?;
    let officer = user(&s, &admin, "officer", "compliance").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let (other, _) = patient_account(&s, "pierre", "Other").await?;
    join_care(&s, &admin, &marie_id, &doctor).await?;

    // Marie writes to her doctor.
    let started = post(
        &s,
        &marie,
        "/v1/threads",
        json!({"patient_id": marie_id, "subject": "My blood test",
               "body": "Is my potassium normal?\nI feel tired.", "participants": [doctor_id]}),
    )
    .await?;
    assert_eq!(started.status, 201, "{started:?}");
    let thread = started.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/threads/{thread}");

    // The doctor has one unread message; Marie, none (she wrote it).
    assert_eq!(unread(&s, &doctor, &thread).await?, (1, 1));
    assert_eq!(unread(&s, &marie, &thread).await?, (0, 0));
    let read = get(&s, &doctor, &path).await?;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.body["thread"]["subject"], "My blood test");
    assert_eq!(read.body["thread"]["patient_id"], marie_id.as_str());
    assert_eq!(
        read.body["messages"][0]["body"],
        "Is my potassium normal?\nI feel tired."
    );
    assert_eq!(read.body["participants"].as_array().unwrap().len(), 2);
    let r = post(&s, &doctor, &format!("{path}/read"), json!({"up_to": 1})).await?;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(unread(&s, &doctor, &thread).await?, (0, 0));

    // Two answers: Marie's unread count rises, then falls as she reads.
    for body in ["It is 4.1, within range.", "Let us check your iron too."] {
        let r = post(
            &s,
            &doctor,
            &format!("{path}/messages"),
            json!({"body": body}),
        )
        .await?;
        assert_eq!(r.status, 201, "{r:?}");
    }
    assert_eq!(unread(&s, &marie, &thread).await?, (2, 2));
    post(&s, &marie, &format!("{path}/read"), json!({"up_to": 2})).await?;
    assert_eq!(unread(&s, &marie, &thread).await?, (1, 1));
    post(&s, &marie, &format!("{path}/read"), json!({"up_to": 3})).await?;
    assert_eq!(unread(&s, &marie, &thread).await?, (0, 0));
    // A receipt never moves back.
    let back = post(&s, &marie, &format!("{path}/read"), json!({"up_to": 1})).await?;
    assert_eq!(back.status, 200, "{back:?}");
    assert_eq!(unread(&s, &marie, &thread).await?, (0, 0));
    let receipts = get(&s, &doctor, &path).await?;
    let marie_read = receipts.body["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["party"] == "patient")
        .map(|p| p["read_up_to"].as_i64().unwrap());
    assert_eq!(marie_read, Some(3), "{receipts:?}");
    assert_eq!(receipts.body["messages"].as_array().unwrap().len(), 3);
    let unknown = post(&s, &marie, &format!("{path}/read"), json!({"up_to": 9})).await?;
    assert_eq!((unknown.status, unknown.code()), (422, "unknown_message"));

    // Outsiders: a nurse not in her care, another patient. 403, nothing written.
    let before = s.event_count().await?;
    for token in [&nurse, &other] {
        let r = get(&s, token, &path).await?;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{r:?}");
        let r = post(
            &s,
            token,
            &format!("{path}/messages"),
            json!({"body": "hi"}),
        )
        .await?;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{r:?}");
        let r = post(&s, token, &format!("{path}/read"), json!({"up_to": 1})).await?;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{r:?}");
        assert_eq!(unread(&s, token, &thread).await?, (-1, 0));
    }
    assert_eq!(
        s.event_count().await?,
        before,
        "a refused call wrote events"
    );
    let missing = format!("/v1/threads/{}", uuid::Uuid::now_v7());
    assert_eq!(get(&s, &doctor, &missing).await?.status, 404);

    // Archive hides it from Marie's inbox; the doctor's reply brings it back.
    let r = post(
        &s,
        &marie,
        &format!("{path}/archive"),
        json!({"archived": true}),
    )
    .await?;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(unread(&s, &marie, &thread).await?, (-1, 0));
    let archived = get(&s, &marie, "/v1/me/threads?archived=true").await?;
    assert_eq!(archived.body["items"][0]["thread_id"], thread.as_str());
    post(
        &s,
        &doctor,
        &format!("{path}/messages"),
        json!({"body": "Results attached."}),
    )
    .await?;
    assert_eq!(unread(&s, &marie, &thread).await?, (1, 1));

    // Compliance reads it, and every read of the thread is in the access log.
    assert_eq!(get(&s, &officer, &path).await?.status, 200);
    let log = get(
        &s,
        &officer,
        &format!("/v1/access-log?patient_id={marie_id}&user_id={doctor_id}&limit=500"),
    )
    .await?;
    let whats: Vec<&str> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert!(whats.contains(&"GET /v1/threads/{id}"), "{log:?}");
    assert!(whats.contains(&"GET /v1/me/threads"), "{log:?}");
    // Every message names the patient in the log: it is in her history.
    let history = get(&s, &officer, &format!("/v1/patients/{marie_id}/history")).await?;
    assert_eq!(history.status, 200, "{history:?}");
    let posted = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "message_thread.message_posted")
        .count();
    assert_eq!(posted, 4, "{history:?}");
    // As-of shows the thread as it was: one message, then all four.
    let first = started.body["position"].as_i64().unwrap();
    let then = get(
        &s,
        &officer,
        &format!("/v1/patients/{marie_id}/as-of?position={first}"),
    )
    .await?;
    assert_eq!(then.status, 200, "{then:?}");
    let threads = then.body["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 1, "{then:?}");
    assert_eq!(threads[0]["thread"]["subject"], "My blood test");
    assert_eq!(threads[0]["messages"].as_array().unwrap().len(), 1);
    let now = get(
        &s,
        &officer,
        &format!("/v1/patients/{marie_id}/as-of?position=1000000"),
    )
    .await?;
    assert_eq!(
        now.body["threads"][0]["messages"].as_array().unwrap().len(),
        4
    );
    s.stop().await
}

async fn only_the_care_team_and_the_front_desk_take_part(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let (doctor, doctor_id) = account(&s, &admin, "dr.house", "doctor").await?;
    let (stranger, stranger_id) = account(&s, &admin, "dr.wilson", "doctor").await?;
    let (desk, desk_id) = account(&s, &admin, "front.desk", "staff").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    join_care(&s, &admin, &marie_id, &doctor).await?;
    let start = |participants: Value, body: &str| {
        json!({"patient_id": marie_id, "subject": "Appointment", "body": body,
               "participants": participants})
    };

    // A doctor outside her care neither starts a thread nor is invited.
    let before = s.event_count().await?;
    let r = post(&s, &stranger, "/v1/threads", start(json!([]), "Hello")).await?;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{r:?}");
    let r = post(
        &s,
        &marie,
        "/v1/threads",
        start(json!([stranger_id]), "Hello"),
    )
    .await?;
    assert_eq!((r.status, r.code()), (422, "not_eligible"), "{r:?}");
    // Alone, she has no one to write to.
    let r = post(&s, &marie, "/v1/threads", start(json!([]), "Hello")).await?;
    assert_eq!((r.status, r.code()), (422, "no_counterpart"), "{r:?}");
    // Bounded text, without control characters.
    let long = "x".repeat(10_001);
    let r = post(&s, &marie, "/v1/threads", start(json!([desk_id]), &long)).await?;
    assert_eq!((r.status, r.code(), r.field()), (422, "too_long", "body"));
    let r = post(
        &s,
        &marie,
        "/v1/threads",
        start(json!([desk_id]), "a\u{1b}[2Jb"),
    )
    .await?;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (422, "invalid_characters", "body")
    );
    assert!(!r.body.to_string().contains("\u{1b}"), "{r:?}");
    assert_eq!(
        s.event_count().await?,
        before,
        "a refused start wrote events"
    );

    // The front desk starts one with her and the doctor.
    let r = post(
        &s,
        &desk,
        "/v1/threads",
        start(json!([doctor_id]), "Your visit is moved."),
    )
    .await?;
    assert_eq!(r.status, 201, "{r:?}");
    let path = format!("/v1/threads/{}", r.body["id"].as_str().unwrap());
    // Break-the-glass opens the record, not the correspondence.
    let glass = post(
        &s,
        &stranger,
        &format!("/v1/patients/{marie_id}/break-glass"),
        json!({"reason": "unconscious in the emergency department"}),
    )
    .await?;
    assert_eq!(glass.status, 201, "{glass:?}");
    let r = get(&s, &stranger, &path).await?;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{r:?}");
    let r = post(&s, &stranger, "/v1/threads", start(json!([]), "Hello")).await?;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{r:?}");
    // Nor can a participant invite him.
    let r = post(
        &s,
        &desk,
        &format!("{path}/participants"),
        json!({"user_id": stranger_id}),
    )
    .await?;
    assert_eq!((r.status, r.code()), (422, "not_eligible"), "{r:?}");
    let r = post(
        &s,
        &desk,
        &format!("{path}/participants"),
        json!({"user_id": doctor_id}),
    )
    .await?;
    assert_eq!((r.status, r.code()), (409, "already_participant"), "{r:?}");

    // Taken off her care team, the doctor no longer reads the thread.
    assert_eq!(get(&s, &doctor, &path).await?.status, 200);
    let r = post(
        &s,
        &desk,
        &format!("/v1/patients/{marie_id}/care-team/{doctor_id}/removal"),
        json!({"reason": "moved away"}),
    )
    .await?;
    assert_eq!(r.status, 200, "{r:?}");
    let r = get(&s, &doctor, &path).await?;
    assert_eq!((r.status, r.code()), (403, "forbidden"), "{r:?}");
    // Nor is its subject in his inbox any more.
    let inbox = get(&s, &doctor, "/v1/me/threads").await?;
    assert_eq!(inbox.body["items"], json!([]), "{inbox:?}");
    assert_eq!(inbox.body["unread_total"], 0, "{inbox:?}");
    // Marie and the desk still do.
    let r = post(
        &s,
        &marie,
        &format!("{path}/messages"),
        json!({"body": "Thanks"}),
    )
    .await?;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(get(&s, &desk, &path).await?.status, 200);

    // The desk's inbox pages, newest message first.
    let second = post(
        &s,
        &marie,
        "/v1/threads",
        start(json!([desk_id]), "Parking?"),
    )
    .await?;
    assert_eq!(second.status, 201, "{second:?}");
    let first_page = get(&s, &desk, "/v1/me/threads?limit=1").await?;
    assert_eq!(first_page.status, 200, "{first_page:?}");
    assert_eq!(first_page.body["items"][0]["thread_id"], second.body["id"]);
    assert_eq!(first_page.body["unread_total"], 2, "{first_page:?}");
    let cursor = first_page.body["next_cursor"].as_str().unwrap();
    let next = get(
        &s,
        &desk,
        &format!("/v1/me/threads?limit=1&cursor={cursor}"),
    )
    .await?;
    assert_eq!(
        next.body["items"][0]["thread_id"].as_str(),
        path.strip_prefix("/v1/threads/")
    );
    assert_eq!(next.body["next_cursor"], Value::Null, "{next:?}");
    s.stop().await
}
