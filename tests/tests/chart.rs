//! The clinical record over HTTP, on each backend, as a clinic uses it: a
//! doctor with an appointment writes and signs a note, records vitals and a
//! critical potassium result and amends the note; the chart shows current
//! versions and the history both; the patient sees signed entries only;
//! another doctor is refused, breaks the glass, reads, and is refused again
//! once the grant expires; a 1 MB document round-trips byte for byte with
//! its hash in the event.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration as StdDuration;

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::schedule::*;
use anamnesis_tests::server::{Reply, TestServer};
use chrono::{Duration, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

on_both_backends!(
    a_visit_from_booking_to_an_amended_note,
    breaking_the_glass_opens_a_record_until_the_grant_expires,
    a_document_round_trips_byte_for_byte_with_its_hash_on_the_log,
    the_timeline_filters_and_pages,
);

/// A server whose break-the-glass grants last two seconds.
async fn start(backend: Backend, extra: &[&str]) -> anyhow::Result<TestServer> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    let mut args = vec!["--time-zone", "UTC", "--break-glass-seconds", "2"];
    args.extend_from_slice(extra);
    TestServer::start_on(db, url, &args).await
}

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> anyhow::Result<Reply> {
    s.call("POST", path, Some(token), Some(body), &[]).await
}

/// GET after the position `after` answered.
async fn get(s: &TestServer, token: &str, path: &str, after: &Reply) -> anyhow::Result<Reply> {
    s.call("GET", path, Some(token), None, &at(after)).await
}

fn id(r: &Reply) -> String {
    r.body["id"].as_str().unwrap().to_owned()
}

fn ago(minutes: i64) -> String {
    (Utc::now() - Duration::minutes(minutes)).to_rfc3339()
}

fn kinds(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn potassium(value: f64, interpretation: &str) -> Value {
    json!({"kind": "lab", "test": "Potassium", "loinc": "2823-3", "value": value,
           "unit": "mmol/L", "reference_range": "3.5-5.1",
           "interpretation": interpretation, "specimen_at": ago(90)})
}

async fn a_visit_from_booking_to_an_amended_note(backend: Backend) -> anyhow::Result<()> {
    let s = start(backend, &[]).await?;
    let admin = admin(&s).await?;
    let (doctor, doctor_user) = account(&s, &admin, "dr.house", "doctor").await?;
    let nurse = user(&s, &admin, "nurse.joy", "nurse").await?;
    let staff = user(&s, &admin, "front.desk", "staff").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let chart = format!("/v1/patients/{marie_id}/chart");

    // Not in her care yet: the doctor sees who she is, not her chart.
    let early = s.call("GET", &chart, Some(&doctor), None, &[]).await?;
    assert_eq!(
        (early.status, early.code()),
        (403, "forbidden"),
        "{early:?}"
    );
    let profile = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}"),
            Some(&doctor),
            None,
            &[],
        )
        .await?;
    assert_eq!(profile.status, 200, "{profile:?}");
    assert!(
        profile.body.get("allergies").is_none_or(Value::is_null),
        "{profile:?}"
    );
    assert!(
        profile.body.get("chart").is_none(),
        "no chart link: {profile:?}"
    );
    let found = s
        .call("GET", "/v1/patients?name=Cur", Some(&doctor), None, &[])
        .await?;
    assert_eq!(
        found.body["items"].as_array().unwrap().len(),
        1,
        "{found:?}"
    );
    assert!(
        found.body["items"][0].get("allergies").is_none(),
        "{found:?}"
    );

    // The front desk books her with the doctor: he is on her care team.
    let provider = enroll(&s, &admin, &doctor_user, "Dr House", "Diagnostics").await?;
    set_hours(
        &s,
        &admin,
        &provider,
        hours(&EVERY_DAY, &[("08:00", "18:00")]),
        30,
    )
    .await?;
    let clinic = Clinic::new("UTC")?;
    let slot = clinic.at(clinic.today() + Duration::days(3), "10:00");
    let booked = book(&s, &staff, &provider, &marie_id, &slot).await?;
    assert_eq!(booked.status, 201, "{booked:?}");
    let appointment = id(&booked);

    // A note of the visit, drafted and signed.
    let drafted = post(
        &s,
        &doctor,
        &chart,
        json!({"kind": "note", "subjective": "Palpitations for a week",
               "assessment": "Suspected hypokalaemia", "plan": "Potassium level",
               "appointment_id": appointment}),
    )
    .await?;
    assert_eq!(drafted.status, 201, "{drafted:?}");
    let note = id(&drafted);
    // In her care now: a search shows him her clinical lists, not the nurse.
    let found = get(&s, &doctor, "/v1/patients?name=Cur", &drafted).await?;
    assert!(found.body["items"][0]["allergies"].is_array(), "{found:?}");
    let found = get(&s, &nurse, "/v1/patients?name=Cur", &drafted).await?;
    assert!(
        found.body["items"][0].get("allergies").is_none(),
        "{found:?}"
    );
    let signed = post(&s, &doctor, &format!("/v1/chart/{note}/sign"), json!(null)).await;
    let signed = match signed {
        Ok(r) if r.status == 200 => r,
        other => s
            .call(
                "POST",
                &format!("/v1/chart/{note}/sign"),
                Some(&doctor),
                None,
                &[],
            )
            .await
            .or(other)?,
    };
    assert_eq!(signed.status, 200, "{signed:?}");
    // A signed note is not rewritten in place.
    let rewrite = s
        .call(
            "PUT",
            &format!("/v1/chart/{note}"),
            Some(&doctor),
            Some(json!({"kind": "note", "assessment": "quietly changed"})),
            &[],
        )
        .await?;
    assert_eq!(
        (rewrite.status, rewrite.code()),
        (422, "not_a_draft"),
        "{rewrite:?}"
    );

    // Vitals, and a critical potassium result.
    let vitals = post(
        &s,
        &doctor,
        &chart,
        json!({"kind": "vitals", "taken_at": ago(30), "systolic_mmhg": 118,
               "diastolic_mmhg": 76, "heart_rate_bpm": 112, "weight_kg": 64.0,
               "height_cm": 168.0}),
    )
    .await?;
    assert_eq!(vitals.status, 201, "{vitals:?}");
    let implausible = post(
        &s,
        &doctor,
        &chart,
        json!({"kind": "vitals", "taken_at": ago(30), "temperature_c": 98.6}),
    )
    .await?;
    assert_eq!(
        (implausible.status, implausible.code(), implausible.field()),
        (422, "implausible_value", "temperature_c"),
        "{implausible:?}"
    );
    let lab = post(&s, &doctor, &chart, potassium(2.4, "critical")).await?;
    assert_eq!(lab.status, 201, "{lab:?}");

    // The note is amended, with a reason.
    let amended = post(
        &s,
        &doctor,
        &format!("/v1/chart/{note}/amend"),
        json!({"reason": "Potassium came back critically low",
               "entry": {"kind": "note", "subjective": "Palpitations for a week",
                         "assessment": "Hypokalaemia, critical (K 2.4)",
                         "plan": "IV potassium, ECG", "appointment_id": appointment}}),
    )
    .await?;
    assert_eq!(amended.status, 200, "{amended:?}");
    let no_reason = post(
        &s,
        &doctor,
        &format!("/v1/chart/{note}/amend"),
        json!({"reason": " ", "entry": {"kind": "note", "assessment": "x"}}),
    )
    .await?;
    assert_eq!(
        (no_reason.status, no_reason.field()),
        (422, "reason"),
        "{no_reason:?}"
    );

    // The timeline: current versions, newest clinical time first.
    let page = get(&s, &doctor, &chart, &amended).await?;
    assert_eq!(page.status, 200, "{page:?}");
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{page:?}");
    let by_id = |i: &str| items.iter().find(|e| e["id"] == i).unwrap().clone();
    let current = by_id(&note);
    assert_eq!(current["versions"], 2);
    assert_eq!(current["status"], "signed");
    assert_eq!(
        current["current"]["assessment"],
        "Hypokalaemia, critical (K 2.4)"
    );
    assert_eq!(current["appointment_id"], appointment.as_str());
    let lab_entry = by_id(&id(&lab));
    assert_eq!(lab_entry["critical"], true);
    assert_eq!(lab_entry["current"]["value"], 2.4);
    assert_eq!(by_id(&id(&vitals))["current"]["bmi"], 22.7);
    // The history of the note holds both versions, with the reason.
    let history = get(&s, &doctor, &format!("/v1/chart/{note}/versions"), &amended).await?;
    assert_eq!(history.status, 200, "{history:?}");
    let versions = history.body["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{history:?}");
    assert_eq!(versions[0]["body"]["assessment"], "Suspected hypokalaemia");
    assert_eq!(versions[1]["reason"], "Potassium came back critically low");
    assert_eq!(versions[1]["event_type"], "chart_entry.amended");
    // The critical result is its own event type on the log.
    let officer = user(&s, &admin, "officer", "compliance").await?;
    let log = get(
        &s,
        &officer,
        &format!("/v1/patients/{marie_id}/history"),
        &amended,
    )
    .await?;
    let types: Vec<&str> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert!(
        types.contains(&"chart_entry.critical_result_recorded"),
        "{types:?}"
    );
    // As of before the amendment, the chart held the first version; as of
    // now, the second.
    let before = signed.body["position"].as_i64().unwrap();
    let then = get(
        &s,
        &officer,
        &format!("/v1/patients/{marie_id}/as-of?position={before}"),
        &amended,
    )
    .await?;
    assert_eq!(then.status, 200, "{then:?}");
    let entries = then.body["chart"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{then:?}");
    assert_eq!(
        entries[0]["current"]["assessment"],
        "Suspected hypokalaemia"
    );
    assert_eq!(entries[0]["status"], "signed");
    let at = amended.body["position"].as_i64().unwrap();
    let now = get(
        &s,
        &officer,
        &format!("/v1/patients/{marie_id}/as-of?position={at}"),
        &amended,
    )
    .await?;
    let note_now = now.body["chart"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == note.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        note_now["current"]["assessment"],
        "Hypokalaemia, critical (K 2.4)"
    );
    assert_eq!(note_now["versions"], 2);

    // The patient reads her signed entries, never a draft.
    let draft = post(
        &s,
        &doctor,
        &chart,
        json!({"kind": "note", "assessment": "Thinking"}),
    )
    .await?;
    assert_eq!(draft.status, 201, "{draft:?}");
    let mine = get(&s, &marie, &chart, &draft).await?;
    assert_eq!(mine.status, 200, "{mine:?}");
    assert_eq!(kinds(&mine.body).len(), 3, "{mine:?}");
    assert!(!mine.body.to_string().contains("Thinking"), "{mine:?}");
    let hidden = get(&s, &marie, &format!("/v1/chart/{}", id(&draft)), &draft).await?;
    assert_eq!(hidden.status, 404, "{hidden:?}");
    let doctors_view = get(&s, &doctor, &chart, &draft).await?;
    assert_eq!(kinds(&doctors_view.body).len(), 4, "{doctors_view:?}");
    // Her profile links to it.
    let own = get(&s, &marie, &format!("/v1/patients/{marie_id}"), &draft).await?;
    assert_eq!(own.body["chart"], chart.as_str(), "{own:?}");
    // Someone else's chart is not hers.
    let (_, other_id) = patient_account(&s, "pierre", "Other").await?;
    let theirs = s
        .call(
            "GET",
            &format!("/v1/patients/{other_id}/chart"),
            Some(&marie),
            None,
            &[],
        )
        .await?;
    assert_eq!(theirs.status, 403, "{theirs:?}");

    // Entered in error: gone from the chart, kept in its history.
    let withdrawn = post(
        &s,
        &doctor,
        &format!("/v1/chart/{}/entered-in-error", id(&vitals)),
        json!({"reason": "wrong patient"}),
    )
    .await?;
    assert_eq!(withdrawn.status, 200, "{withdrawn:?}");
    let after = get(&s, &doctor, &format!("{chart}?kind=vitals"), &withdrawn).await?;
    assert_eq!(kinds(&after.body).len(), 0, "{after:?}");
    let kept = get(
        &s,
        &doctor,
        &format!("/v1/chart/{}", id(&vitals)),
        &withdrawn,
    )
    .await?;
    assert_eq!(kept.body["status"], "entered_in_error", "{kept:?}");
    assert_eq!(kept.body["withdrawn_reason"], "wrong patient");

    // A nurse outside her care records nothing; on the team, vitals but no note.
    let refused = post(
        &s,
        &nurse,
        &chart,
        json!({"kind": "vitals", "taken_at": ago(5), "spo2_percent": 97}),
    )
    .await?;
    assert_eq!(refused.status, 403, "{refused:?}");
    join_care(&s, &admin, &marie_id, &nurse).await?;
    let recorded = post(
        &s,
        &nurse,
        &chart,
        json!({"kind": "vitals", "taken_at": ago(5), "spo2_percent": 97}),
    )
    .await?;
    assert_eq!(recorded.status, 201, "{recorded:?}");
    let no_note = post(
        &s,
        &nurse,
        &chart,
        json!({"kind": "note", "assessment": "x"}),
    )
    .await?;
    assert_eq!(no_note.status, 403, "{no_note:?}");
    // The nurse may not amend the doctor's note; the doctor may amend hers.
    let not_hers = post(
        &s,
        &nurse,
        &format!("/v1/chart/{note}/amend"),
        json!({"reason": "r", "entry": {"kind": "note", "assessment": "x"}}),
    )
    .await?;
    assert_eq!(not_hers.status, 403, "{not_hers:?}");
    let corrected = post(
        &s,
        &doctor,
        &format!("/v1/chart/{}/amend", id(&recorded)),
        json!({"reason": "probe slipped",
               "entry": {"kind": "vitals", "taken_at": ago(5), "spo2_percent": 95}}),
    )
    .await?;
    assert_eq!(corrected.status, 200, "{corrected:?}");
    s.stop().await
}

async fn breaking_the_glass_opens_a_record_until_the_grant_expires(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = start(backend, &[]).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let wilson = user(&s, &admin, "dr.wilson", "doctor").await?;
    let officer = user(&s, &admin, "officer", "compliance").await?;
    let staff = user(&s, &admin, "front.desk", "staff").await?;
    // Registered by Dr House: he is on the care team, Dr Wilson is not.
    let registered = post(&s, &doctor, "/v1/patients", patient("Curie")).await?;
    assert_eq!(registered.status, 201, "{registered:?}");
    let marie = id(&registered);
    let chart = format!("/v1/patients/{marie}/chart");
    let note = post(
        &s,
        &doctor,
        &chart,
        json!({"kind": "note", "assessment": "Stable"}),
    )
    .await?;
    assert_eq!(note.status, 201, "{note:?}");

    let refused = get(&s, &wilson, &chart, &note).await?;
    assert_eq!(
        (refused.status, refused.code()),
        (403, "forbidden"),
        "{refused:?}"
    );
    // Staff cannot break the glass; a reason is required.
    let staff_try = post(
        &s,
        &staff,
        &format!("/v1/patients/{marie}/break-glass"),
        json!({"reason": "curious"}),
    )
    .await?;
    assert_eq!(staff_try.status, 403, "{staff_try:?}");
    let no_reason = post(
        &s,
        &wilson,
        &format!("/v1/patients/{marie}/break-glass"),
        json!({"reason": ""}),
    )
    .await?;
    assert_eq!(
        (no_reason.status, no_reason.field()),
        (422, "reason"),
        "{no_reason:?}"
    );
    let grant = post(
        &s,
        &wilson,
        &format!("/v1/patients/{marie}/break-glass"),
        json!({"reason": "Unconscious in the emergency department"}),
    )
    .await?;
    assert_eq!(grant.status, 201, "{grant:?}");
    let read = get(&s, &wilson, &chart, &grant).await?;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(kinds(&read.body), ["note"]);

    // Compliance sees the grant (who, whom, why, when, until) and the read
    // made under it, marked.
    let grants = get(
        &s,
        &officer,
        &format!("/v1/break-glass?patient_id={marie}"),
        &grant,
    )
    .await?;
    assert_eq!(grants.status, 200, "{grants:?}");
    let items = grants.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{grants:?}");
    assert_eq!(items[0]["user_id"], user_id_of(&wilson)?.as_str());
    assert_eq!(
        items[0]["reason"],
        "Unconscious in the emergency department"
    );
    // The list shows whole seconds.
    let until = |v: &Value| v.as_str().unwrap()[..19].to_owned();
    assert_eq!(
        until(&items[0]["expires_at"]),
        until(&grant.body["expires_at"])
    );
    // That list is a read of marie's data too (the reasons), recorded.
    let officer_id = user_id_of(&officer)?;
    let listed = s
        .call(
            "GET",
            &format!("/v1/access-log?patient_id={marie}&user_id={officer_id}"),
            Some(&officer),
            None,
            &[("X-Min-Position", s.event_count().await?.to_string())],
        )
        .await?;
    assert!(
        listed.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["what"] == "GET /v1/break-glass"),
        "{listed:?}"
    );
    let wilson_id = user_id_of(&wilson)?;
    let reads = s
        .call(
            "GET",
            &format!("/v1/access-log?patient_id={marie}&user_id={wilson_id}"),
            Some(&officer),
            None,
            &[("X-Min-Position", s.event_count().await?.to_string())],
        )
        .await?;
    let marked: Vec<i64> = reads.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["break_glass"].as_i64().unwrap())
        .collect();
    assert_eq!(marked, [1], "{reads:?}");
    // Dr House's reads are not marked.
    let house = get(&s, &doctor, &chart, &grant).await?;
    assert_eq!(house.status, 200);
    let house_id = user_id_of(&doctor)?;
    let reads = s
        .call(
            "GET",
            &format!("/v1/access-log?patient_id={marie}&user_id={house_id}"),
            Some(&officer),
            None,
            &[("X-Min-Position", s.event_count().await?.to_string())],
        )
        .await?;
    assert!(reads.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["break_glass"] == 0));
    // The history marks what was done under the grant.
    let history = get(
        &s,
        &officer,
        &format!("/v1/patients/{marie}/history"),
        &grant,
    )
    .await?;
    let glass: Vec<&Value> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["break_glass"] == true)
        .collect();
    let glass: Vec<&str> = glass
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(
        glass,
        ["care_team.glass_broken", "access.read"],
        "{history:?}"
    );

    // Two seconds later the grant has expired: 403 again.
    tokio::time::sleep(StdDuration::from_millis(2500)).await;
    let expired = s.call("GET", &chart, Some(&wilson), None, &[]).await?;
    assert_eq!(
        (expired.status, expired.code()),
        (403, "forbidden"),
        "{expired:?}"
    );
    s.stop().await
}

async fn a_document_round_trips_byte_for_byte_with_its_hash_on_the_log(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = start(backend, &["--max-document-bytes", "2000000"]).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let (marie, _) = patient_account(&s, "marie", "Curie").await?;
    let registered = post(&s, &doctor, "/v1/patients", patient("Sklodowska")).await?;
    assert_eq!(registered.status, 201, "{registered:?}");
    let patient_id = id(&registered);
    // One mebibyte of every byte value, in a pattern that is not periodic
    // in 256.
    let bytes: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sha = hex::encode(Sha256::digest(&bytes));
    let path = format!("/v1/patients/{patient_id}/chart/documents?title=Discharge%20letter");
    let uploaded = s
        .raw(
            "POST",
            &path,
            Some(&doctor),
            "application/pdf",
            bytes.clone(),
        )
        .await?;
    assert_eq!(uploaded.status, 201, "{uploaded:?}");
    let entry = id(&uploaded);

    let view = get(&s, &doctor, &format!("/v1/chart/{entry}"), &uploaded).await?;
    assert_eq!(view.body["kind"], "document", "{view:?}");
    assert_eq!(view.body["current"]["sha256"], sha.as_str());
    assert_eq!(view.body["current"]["size_bytes"], 1_048_576);
    assert_eq!(view.body["current"]["media_type"], "application/pdf");
    let (status, media_type, back) = s
        .get_bytes(
            &format!("/v1/chart/{entry}/content"),
            Some(&doctor),
            &at(&uploaded),
        )
        .await?;
    assert_eq!(status, 200);
    assert_eq!(media_type, "application/pdf");
    assert!(back == bytes, "the bytes came back changed");
    // The hash is in the event on the log (sealed with the patient's key):
    // the chain covers the bytes.
    let reader = anamnesis_commands::LogReader::detached_with(
        s.db.db.clone(),
        anamnesis_tests::server::test_keyring()?,
    );
    let stored = reader.read_stream("chart_entry", &entry, 0).await?;
    let payload = stored
        .first()
        .map(|e| e.payload.clone())
        .unwrap_or_default();
    assert!(payload.contains(&sha), "{payload}");
    assert!(payload.len() < 1000, "the bytes are kept out of the event");

    // Refused uploads write nothing: too large, no bytes, not a media type,
    // by someone outside the patient's care.
    let before = s.event_count().await?;
    let big = s
        .raw(
            "POST",
            &path,
            Some(&doctor),
            "application/pdf",
            vec![7; 2_000_001],
        )
        .await?;
    assert_eq!(big.status, 413, "{big:?}");
    let empty = s
        .raw("POST", &path, Some(&doctor), "application/pdf", Vec::new())
        .await?;
    assert_eq!(empty.status, 422, "{empty:?}");
    let odd = s
        .raw("POST", &path, Some(&doctor), "pdf", vec![1, 2, 3])
        .await?;
    assert_eq!((odd.status, odd.field()), (422, "media_type"), "{odd:?}");
    let theirs = s
        .raw(
            "POST",
            &path,
            Some(&marie),
            "application/pdf",
            vec![1, 2, 3],
        )
        .await?;
    assert_eq!(theirs.status, 403, "{theirs:?}");
    assert_eq!(
        s.event_count().await?,
        before,
        "a refused upload wrote events"
    );
    s.stop().await
}

async fn the_timeline_filters_and_pages(backend: Backend) -> anyhow::Result<()> {
    let s = start(backend, &[]).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let registered = post(&s, &doctor, "/v1/patients", patient("Curie")).await?;
    let marie = id(&registered);
    let chart = format!("/v1/patients/{marie}/chart");
    let mut last = registered;
    for i in 0..7u32 {
        let body = if i.is_multiple_of(2) {
            json!({"kind": "diagnosis", "description": format!("Finding {i}"), "status": "active",
                   "icd10": "E11.9"})
        } else {
            potassium(4.0 + f64::from(i) / 10.0, "normal")
        };
        last = post(&s, &doctor, &chart, body).await?;
        assert_eq!(last.status, 201, "{last:?}");
    }
    // Pages of three, newest first, no entry twice.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{chart}?limit=3&cursor={c}"),
            None => format!("{chart}?limit=3"),
        };
        let page = get(&s, &doctor, &path, &last).await?;
        assert_eq!(page.status, 200, "{page:?}");
        for e in page.body["items"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (7, 7), "{seen:?}");
    // Filters: kind, free text (any case), author.
    let labs = get(&s, &doctor, &format!("{chart}?kind=lab"), &last).await?;
    assert_eq!(kinds(&labs.body), ["lab", "lab", "lab"]);
    let text = get(&s, &doctor, &format!("{chart}?q=FINDING%204"), &last).await?;
    assert_eq!(text.body["items"].as_array().unwrap().len(), 1, "{text:?}");
    let pattern = get(&s, &doctor, &format!("{chart}?q=%25"), &last).await?;
    assert_eq!(
        pattern.body["items"].as_array().unwrap().len(),
        0,
        "a % is literal: {pattern:?}"
    );
    let author = user_id_of(&doctor)?;
    let mine = get(
        &s,
        &doctor,
        &format!("{chart}?author_id={author}&limit=50"),
        &last,
    )
    .await?;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 7);
    for bad in [
        "kind=scan",
        "limit=0",
        "cursor=nope",
        "from=yesterday",
        "author_id=7",
    ] {
        let r = get(&s, &doctor, &format!("{chart}?{bad}"), &last).await?;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    s.stop().await
}
