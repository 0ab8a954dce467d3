//! Prescriptions over HTTP, on each backend, as a clinic uses them: a
//! doctor prescribes over a recorded penicillin allergy (refused, naming
//! it, with nothing written), then with an override reason (kept in the
//! event); a duplicate is refused; the dose changes as a new version; the
//! schedule of next doses follows the frequency; a nurse records doses
//! given and held; the patient asks for refills, a doctor approves while
//! authorized refills are left; a discontinued drug leaves the active list
//! and may be prescribed again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::{Reply, TestServer};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

on_both_backends!(
    prescribing_over_an_allergy_needs_an_override_that_is_kept,
    a_nurse_records_doses_and_the_patient_gets_refills,
    a_finished_course_does_not_block_the_next,
);

async fn start(backend: Backend) -> anyhow::Result<TestServer> {
    let db = TestDb::new(backend).await?;
    let url = db.url.clone();
    TestServer::start_on(db, url, &["--time-zone", "UTC"]).await
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

fn amoxicillin(starts_at: DateTime<Utc>) -> Value {
    json!({
        "medication": {"name": "Amoxicillin 500 mg capsule", "rxnorm": "308191"},
        "dose": {"amount": 500, "unit": "mg"},
        "route": "oral",
        "frequency": {"kind": "every_hours", "hours": 8},
        "starts_at": starts_at.to_rfc3339(),
        "duration_days": 7,
        "refills": 1,
        "instructions": "Take with food"
    })
}

async fn prescribing_over_an_allergy_needs_an_override_that_is_kept(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let outsider = user(&s, &admin, "dr.wilson", "doctor").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    join_care(&s, &admin, &marie_id, &doctor).await?;
    let allergy = record_allergy(
        &s,
        &doctor,
        &marie_id,
        json!({"substance": "Penicillin", "reaction": "anaphylaxis", "severity": "severe"}),
    )
    .await?;
    assert_eq!(allergy.status, 201, "{allergy:?}");
    let allergy_id = id(&allergy);
    let medications = format!("/v1/patients/{marie_id}/medications");
    let start = Utc::now();

    // Amoxicillin is a penicillin: refused, naming the allergy, nothing written.
    let before = s.event_count().await?;
    let refused = post(
        &s,
        &doctor,
        &medications,
        json!({"order": amoxicillin(start)}),
    )
    .await?;
    assert_eq!(
        (refused.status, refused.code()),
        (422, "allergy_conflict"),
        "{refused:?}"
    );
    assert_eq!(refused.content_type, "application/problem+json");
    let named = &refused.body["allergies"][0];
    assert_eq!(named["allergy_id"], allergy_id.as_str(), "{refused:?}");
    assert_eq!(named["substance"], "penicillin");
    assert_eq!(named["class"], "penicillins");
    // Nothing of the prescription is written; the refusal named her
    // allergies, so it is recorded as a read of her record.
    assert_eq!(s.event_count().await?, before + 1);
    assert_eq!(
        last_aggregate(&s).await?,
        "access",
        "only the access record"
    );

    // A doctor outside her care cannot prescribe at all.
    let outside = post(
        &s,
        &outsider,
        &medications,
        json!({"order": amoxicillin(start), "allergy_override_reason": "x"}),
    )
    .await?;
    assert_eq!(outside.status, 403, "{outside:?}");

    // With an override reason: prescribed, the reason and the allergy kept.
    let prescribed = post(
        &s,
        &doctor,
        &medications,
        json!({"order": amoxicillin(start),
               "allergy_override_reason": "Skin test negative in 2025"}),
    )
    .await?;
    assert_eq!(prescribed.status, 201, "{prescribed:?}");
    let medication = id(&prescribed);
    let (event_type, payload, reason) = first_event(&s, &medication).await?;
    assert_eq!(event_type, "medication.prescribed");
    assert_eq!(
        payload["allergy_override"]["reason"],
        "Skin test negative in 2025"
    );
    assert_eq!(reason.as_deref(), Some("Skin test negative in 2025"));
    let shown = get(
        &s,
        &doctor,
        &format!("/v1/medications/{medication}"),
        &prescribed,
    )
    .await?;
    assert_eq!(shown.status, 200, "{shown:?}");
    let m = &shown.body["medication"];
    assert_eq!(m["status"], "active");
    assert_eq!(m["order"]["dose"]["amount"], 500.0);
    assert_eq!(
        m["order"]["ends_at"]
            .as_str()
            .map(|t| t.parse::<DateTime<Utc>>().unwrap()),
        Some(start + Duration::days(7))
    );
    assert_eq!(
        m["allergy_override"]["conflicts"][0]["substance"],
        "penicillin"
    );

    // The same drug again, by name in other words or by code: a duplicate.
    for order in [
        json!({"medication": {"name": "amoxicillin  500 MG capsule"}}),
        json!({"medication": {"name": "Amoxil", "rxnorm": "308191"}}),
    ] {
        let mut again = amoxicillin(start);
        again["medication"] = order["medication"].clone();
        let twice = post(
            &s,
            &doctor,
            &medications,
            json!({"order": again, "allergy_override_reason": "same"}),
        )
        .await?;
        assert_eq!(
            (twice.status, twice.code()),
            (409, "duplicate_medication"),
            "{twice:?}"
        );
    }

    // Another strength of the same drug is the same drug.
    let mut other_strength = amoxicillin(start);
    other_strength["medication"] = json!({"name": "Amoxicillin 250 mg capsule"});
    let strength = post(
        &s,
        &doctor,
        &medications,
        json!({"order": other_strength, "allergy_override_reason": "same"}),
    )
    .await?;
    assert_eq!(
        (strength.status, strength.code()),
        (409, "duplicate_medication"),
        "{strength:?}"
    );
    // A brand name is read as its ingredients: Augmentin is a penicillin.
    let mut brand = amoxicillin(start);
    brand["medication"] = json!({"name": "Augmentin 875 mg tablet"});
    let branded = post(&s, &doctor, &medications, json!({"order": brand})).await?;
    assert_eq!(
        (branded.status, branded.code()),
        (422, "allergy_conflict"),
        "{branded:?}"
    );

    // Bad input: a clear problem, nothing written.
    let before = s.event_count().await?;
    let mut bad = amoxicillin(start);
    bad["medication"]["name"] = json!("Ibu\u{0}profen");
    let nul = post(&s, &doctor, &medications, json!({"order": bad})).await?;
    assert_eq!(
        (nul.status, nul.code(), nul.field()),
        (422, "invalid_characters", "medication.name"),
        "{nul:?}"
    );
    let mut bad = amoxicillin(start);
    bad["medication"]["name"] = json!("Ibuprofen");
    bad["dose"]["amount"] = json!(-5);
    let dose = post(&s, &doctor, &medications, json!({"order": bad})).await?;
    assert_eq!(
        (dose.status, dose.code()),
        (422, "invalid_dose"),
        "{dose:?}"
    );
    assert_eq!(s.event_count().await?, before);

    // A new dose is a new version, with its reason; the history shows both.
    let changed = post(
        &s,
        &doctor,
        &format!("/v1/medications/{medication}/dose"),
        json!({"dose": {"amount": 250, "unit": "mg"},
               "frequency": {"kind": "times_a_day", "times": ["08:00", "14:00", "20:00"]},
               "reason": "renal function"}),
    )
    .await?;
    assert_eq!(changed.status, 200, "{changed:?}");
    let history = get(
        &s,
        &marie,
        &format!("/v1/medications/{medication}/history"),
        &changed,
    )
    .await?;
    assert_eq!(history.status, 200, "{history:?}");
    let types: Vec<&str> = history
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["medication.prescribed", "medication.dose_changed"]);
    assert_eq!(history.body[1]["detail"]["reason"], "renal function");
    assert_eq!(history.body[1]["actor_role"], "doctor");

    // As-of, for compliance: the first dose before the change, the new one after.
    let compliance = user(&s, &admin, "audit", "compliance").await?;
    let as_of = |position: i64| format!("/v1/patients/{marie_id}/as-of?position={position}");
    let then = get(
        &s,
        &compliance,
        &as_of(prescribed.body["position"].as_i64().unwrap()),
        &changed,
    )
    .await?;
    assert_eq!(then.status, 200, "{then:?}");
    assert_eq!(
        then.body["medications"][0]["order"]["dose"]["amount"],
        500.0
    );
    let now = get(
        &s,
        &compliance,
        &as_of(changed.body["position"].as_i64().unwrap()),
        &changed,
    )
    .await?;
    assert_eq!(now.body["medications"][0]["order"]["dose"]["amount"], 250.0);
    assert_eq!(now.body["medications"][0]["versions"], 2);

    // The schedule of next doses: three a day at the new times.
    let from = (Utc::now() + Duration::days(1)).date_naive();
    let window = format!(
        "/v1/patients/{marie_id}/doses?from={from}T00:00:00Z&to={}T00:00:00Z",
        from + Duration::days(2)
    );
    let doses = get(&s, &marie, &window, &changed).await?;
    assert_eq!(doses.status, 200, "{doses:?}");
    let times: Vec<&str> = doses
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["at"].as_str().unwrap())
        .collect();
    assert_eq!(times.len(), 6, "{doses:?}");
    assert!(times[0].ends_at_time("08:00:00"), "{times:?}");
    assert!(times[1].ends_at_time("14:00:00"), "{times:?}");
    assert_eq!(doses.body[0]["dose"]["amount"], 250.0);
    let too_long = s
        .call(
            "GET",
            &format!("/v1/patients/{marie_id}/doses?to=2099-01-01T00:00:00Z"),
            Some(&marie),
            None,
            &[],
        )
        .await?;
    assert_eq!(too_long.status, 400, "{too_long:?}");

    // Discontinued: off the active list, and the drug may be prescribed again.
    let stopped = post(
        &s,
        &doctor,
        &format!("/v1/medications/{medication}/stop"),
        json!({"outcome": "discontinued", "reason": "rash on day 3"}),
    )
    .await?;
    assert_eq!(stopped.status, 200, "{stopped:?}");
    let active = get(
        &s,
        &doctor,
        &format!("{medications}?status=active"),
        &stopped,
    )
    .await?;
    assert_eq!(active.body, json!([]), "{active:?}");
    let all = get(&s, &doctor, &medications, &stopped).await?;
    assert_eq!(all.body[0]["status"], "discontinued");
    assert_eq!(all.body[0]["ended_reason"], "rash on day 3");
    let again = post(
        &s,
        &doctor,
        &medications,
        json!({"order": amoxicillin(Utc::now()), "allergy_override_reason": "desensitized"}),
    )
    .await?;
    assert_eq!(again.status, 201, "{again:?}");
    let late_change = post(
        &s,
        &doctor,
        &format!("/v1/medications/{medication}/dose"),
        json!({"dose": {"amount": 100, "unit": "mg"}, "reason": "x"}),
    )
    .await?;
    assert_eq!(
        (late_change.status, late_change.code()),
        (422, "medication_not_active"),
        "{late_change:?}"
    );

    // Compliance sees every read of her medications in the access log.
    let log = s
        .call(
            "GET",
            &format!("/v1/access-log?patient_id={marie_id}"),
            Some(&compliance),
            None,
            &at(&again),
        )
        .await?;
    let text = log.body.to_string();
    assert!(
        text.contains("GET /v1/medications/{medication_id}/history"),
        "{log:?}"
    );
    assert!(text.contains("GET /v1/patients/{id}/doses"), "{log:?}");
    Ok(())
}

/// The first event of stream `id` on the log: its type, payload and reason.
async fn first_event(s: &TestServer, id: &str) -> anyhow::Result<(String, Value, Option<String>)> {
    // Through the log reader: the payload is stored sealed with the
    // patient's key (ADR 0024).
    let reader = anamnesis_commands::LogReader::detached_with(
        s.db.db.clone(),
        anamnesis_tests::server::test_keyring()?,
    );
    let first = reader
        .read_stream("medication", id, 0)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no event of medication {id}"))?;
    Ok((
        first.event_type,
        serde_json::from_str(&first.payload)?,
        first.reason,
    ))
}

/// The aggregate type of the log's last event.
async fn last_aggregate(s: &TestServer) -> anyhow::Result<String> {
    let sql = "SELECT aggregate_type FROM events ORDER BY global_position DESC LIMIT 1";
    Ok(match &s.db.db {
        anamnesis_commands::Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        anamnesis_commands::Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
    })
}

trait EndsAt {
    fn ends_at_time(&self, time: &str) -> bool;
}

impl EndsAt for &str {
    /// Whether an RFC 3339 instant reads `time` of day (in UTC, `Z` or `+00:00`).
    fn ends_at_time(&self, time: &str) -> bool {
        self.contains(&format!("T{time}"))
    }
}

async fn a_nurse_records_doses_and_the_patient_gets_refills(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let nurse = user(&s, &admin, "nurse.joy", "nurse").await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let (other, _) = patient_account(&s, "pierre", "Dupont").await?;
    join_care(&s, &admin, &marie_id, &doctor).await?;
    let medications = format!("/v1/patients/{marie_id}/medications");
    let mut order = amoxicillin(Utc::now() - Duration::hours(1));
    order["medication"] = json!({"name": "Metformin"});
    order["refills"] = json!(2);
    let prescribed = post(&s, &doctor, &medications, json!({"order": order})).await?;
    assert_eq!(prescribed.status, 201, "{prescribed:?}");
    let medication = id(&prescribed);
    let administrations = format!("/v1/medications/{medication}/administrations");
    let given = json!({"outcome": "given", "at": Utc::now().to_rfc3339()});

    // A nurse outside her care may not; on the care team, she may.
    let outside = post(&s, &nurse, &administrations, given.clone()).await?;
    assert_eq!(outside.status, 403, "{outside:?}");
    join_care(&s, &admin, &marie_id, &nurse).await?;
    let recorded = post(&s, &nurse, &administrations, given).await?;
    assert_eq!(recorded.status, 201, "{recorded:?}");
    let held_without_reason = post(
        &s,
        &nurse,
        &administrations,
        json!({"outcome": "held", "at": Utc::now().to_rfc3339()}),
    )
    .await?;
    assert_eq!(
        (held_without_reason.status, held_without_reason.field()),
        (422, "note"),
        "{held_without_reason:?}"
    );
    let future = post(
        &s,
        &nurse,
        &administrations,
        json!({"outcome": "given", "at": (Utc::now() + Duration::hours(3)).to_rfc3339()}),
    )
    .await?;
    assert_eq!(
        (future.status, future.code()),
        (422, "implausible_time"),
        "{future:?}"
    );
    let held = post(
        &s,
        &nurse,
        &administrations,
        json!({"outcome": "held", "at": Utc::now().to_rfc3339(), "note": "nil by mouth"}),
    )
    .await?;
    assert_eq!(held.status, 201, "{held:?}");
    let shown = get(&s, &marie, &format!("/v1/medications/{medication}"), &held).await?;
    assert_eq!(shown.status, 200, "{shown:?}");
    let outcomes: Vec<&str> = shown.body["administrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.len(), 2, "{shown:?}");
    assert!(outcomes.contains(&"given") && outcomes.contains(&"held"));
    let nurse_id = user_id_of(&nurse)?;
    assert!(shown.body["administrations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["actor_id"] == nurse_id.as_str()));

    // Another patient reads none of it, and cannot ask for her refills.
    let theirs = s
        .call(
            "GET",
            &format!("/v1/medications/{medication}"),
            Some(&other),
            None,
            &[],
        )
        .await?;
    assert_eq!(theirs.status, 403, "{theirs:?}");
    let refills = format!("/v1/medications/{medication}/refill-requests");
    let not_theirs = post(&s, &other, &refills, json!({})).await?;
    assert_eq!(not_theirs.status, 403, "{not_theirs:?}");

    // Two refills authorized: a request waits alone; the nurse may not
    // decide it; a doctor approves one, denies one (a stale id is refused),
    // approves another, and then none is left to ask for.
    let decision = format!("/v1/medications/{medication}/refill-decision");
    let shown = format!("/v1/medications/{medication}");
    let mut asked = post(&s, &marie, &refills, json!({"note": "running low"})).await?;
    assert_eq!(asked.status, 201, "{asked:?}");
    let twice = post(&s, &marie, &refills, json!({})).await?;
    assert_eq!(
        (twice.status, twice.code()),
        (409, "refill_pending"),
        "{twice:?}"
    );
    let mut stale = Value::Null;
    for (round, approve) in [true, false, true].into_iter().enumerate() {
        if round > 0 {
            asked = post(&s, &marie, &refills, json!({})).await?;
            assert_eq!(asked.status, 201, "round {round}: {asked:?}");
        }
        let pending = get(&s, &doctor, &shown, &asked).await?;
        let request = pending.body["medication"]["pending_refill"].clone();
        assert!(request.is_string(), "{pending:?}");
        if round == 0 {
            let nurse_decides = post(
                &s,
                &nurse,
                &decision,
                json!({"request_id": request, "approve": true}),
            )
            .await?;
            assert_eq!(nurse_decides.status, 403, "{nurse_decides:?}");
        } else {
            let old = post(
                &s,
                &doctor,
                &decision,
                json!({"request_id": stale, "approve": true}),
            )
            .await?;
            assert_eq!(
                (old.status, old.code()),
                (409, "no_refill_request"),
                "{old:?}"
            );
        }
        let decided = post(
            &s,
            &doctor,
            &decision,
            json!({"request_id": request, "approve": approve, "reason": "see me first"}),
        )
        .await?;
        assert_eq!(decided.status, 200, "round {round}: {decided:?}");
        asked = decided;
        stale = request;
    }
    let done = get(&s, &marie, &shown, &asked).await?;
    assert_eq!(done.body["medication"]["pending_refill"], Value::Null);
    assert_eq!(done.body["medication"]["refills_used"], 2);
    let none_left = post(&s, &marie, &refills, json!({})).await?;
    assert_eq!(
        (none_left.status, none_left.code()),
        (422, "no_refills_left"),
        "{none_left:?}"
    );
    Ok(())
}

async fn a_finished_course_does_not_block_the_next(backend: Backend) -> anyhow::Result<()> {
    let s = start(backend).await?;
    let admin = admin(&s).await?;
    let doctor = user(&s, &admin, "dr.house", "doctor").await?;
    let (_, marie_id) = patient_account(&s, "marie", "Curie").await?;
    join_care(&s, &admin, &marie_id, &doctor).await?;
    let medications = format!("/v1/patients/{marie_id}/medications");
    // A course that ends in two seconds, never completed by anyone.
    let mut short = amoxicillin(Utc::now() - Duration::hours(1));
    short["duration_days"] = Value::Null;
    short["ends_at"] = json!((Utc::now() + Duration::seconds(2)).to_rfc3339());
    let first = post(&s, &doctor, &medications, json!({"order": short})).await?;
    assert_eq!(first.status, 201, "{first:?}");
    let first = id(&first);
    let again = post(
        &s,
        &doctor,
        &medications,
        json!({"order": amoxicillin(Utc::now())}),
    )
    .await?;
    assert_eq!(
        (again.status, again.code()),
        (409, "duplicate_medication"),
        "still running: {again:?}"
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let next = post(
        &s,
        &doctor,
        &medications,
        json!({"order": amoxicillin(Utc::now())}),
    )
    .await?;
    assert_eq!(next.status, 201, "{next:?}");
    // The finished course was completed in the same commit, saying why.
    let history = get(
        &s,
        &doctor,
        &format!("/v1/medications/{first}/history"),
        &next,
    )
    .await?;
    let last = history.body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event_type"], "medication.completed", "{history:?}");
    let active = get(&s, &doctor, &format!("{medications}?status=active"), &next).await?;
    assert_eq!(active.body.as_array().unwrap().len(), 1, "{active:?}");
    assert_eq!(active.body[0]["id"], id(&next).as_str());
    Ok(())
}
