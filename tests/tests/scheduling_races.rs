//! Scheduling under contention and hostile input, over HTTP, on each backend:
//! fifty bookings racing for one slot, one patient racing across fifty
//! providers, overbooking, and malformed or rule-breaking requests that must
//! write nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::Arc;

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::schedule::*;
use anamnesis_tests::server::{Reply, TestServer};
use chrono::{Duration, Weekday};
use serde_json::json;

on_both_backends!(
    fifty_patients_racing_for_one_slot_leave_one_appointment,
    one_patient_racing_across_fifty_providers_gets_one_appointment,
    hostile_bookings_are_refused_and_write_nothing,
    an_instance_books_on_what_another_instance_changed,
    bookings_read_together_each_get_their_own_patients_answer,
    closures_reach_overbooked_appointments,
    a_deactivated_provider_is_not_booked,
);

const RACERS: usize = 50;

/// Sends every body at once to POST /v1/appointments as `token`.
async fn race(
    s: Arc<TestServer>,
    token: &str,
    bodies: Vec<serde_json::Value>,
) -> anyhow::Result<Vec<Reply>> {
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (s, token) = (s.clone(), token.to_owned());
            tokio::spawn(async move {
                s.call("POST", "/v1/appointments", Some(&token), Some(body), &[])
                    .await
            })
        })
        .collect();
    let mut replies = Vec::with_capacity(tasks.len());
    for t in tasks {
        replies.push(t.await??);
    }
    Ok(replies)
}

/// A Los Angeles clinic with a front desk and one provider, Dr House,
/// working 09:00-17:00 on weekdays in 30-minute slots.
struct OneDoctor {
    s: TestServer,
    clinic: Clinic,
    admin: String,
    staff: String,
    dr: String,
}

async fn one_doctor(backend: Backend) -> anyhow::Result<OneDoctor> {
    let s = start_in(backend, LOS_ANGELES).await?;
    let clinic = Clinic::new(LOS_ANGELES)?;
    let admin = admin(&s).await?;
    let staff = user(&s, &admin, "front.desk", "staff").await?;
    let doctor_user = user_id(&s, &admin, "dr.house", "doctor").await?;
    let dr = enroll(
        &s,
        &admin,
        &doctor_user,
        "Dr Gregory House",
        "Internal medicine",
    )
    .await?;
    set_hours(&s, &admin, &dr, hours(&WEEKDAYS, &[("09:00", "17:00")]), 30).await?;
    Ok(OneDoctor {
        s,
        clinic,
        admin,
        staff,
        dr,
    })
}

/// Registers `n` patients named `family0`, `family1`…; their ids.
async fn register(
    s: &TestServer,
    token: &str,
    family: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let body = patient(&format!("{family}{i}"));
        let r = post(s, token, "/v1/patients", Some(body)).await?;
        assert_eq!(r.status, 201, "{r:?}");
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    Ok(ids)
}

/// (201s, 409s with `code`, anything else).
fn tally<'a>(replies: &'a [Reply], code: &str) -> (usize, usize, Vec<&'a Reply>) {
    let won = replies.iter().filter(|r| r.status == 201).count();
    let lost = replies
        .iter()
        .filter(|r| r.status == 409 && r.code() == code)
        .count();
    let other = replies
        .iter()
        .filter(|r| r.status != 201 && !(r.status == 409 && r.code() == code))
        .collect();
    (won, lost, other)
}

async fn fifty_patients_racing_for_one_slot_leave_one_appointment(
    backend: Backend,
) -> anyhow::Result<()> {
    let OneDoctor {
        s,
        clinic,
        admin,
        staff,
        dr,
    } = one_doctor(backend).await?;
    let patients = register(&s, &staff, "Racer", RACERS).await?;
    let monday = clinic.next(Weekday::Mon);
    let slot = clinic.at(monday, "10:00");
    let bodies = patients
        .iter()
        .map(|p| {
            json!({"provider_id": dr, "patient_id": p, "starts_at": slot,
                   "reason_for_visit": "Check-up"})
        })
        .collect();

    let before = s.event_count().await?;
    let s = Arc::new(s);
    let replies = race(s.clone(), &staff, bodies).await?;
    let (won, lost, other) = tally(&replies, "slot_taken");
    assert_eq!((won, lost), (1, RACERS - 1), "{other:?}");
    assert_eq!(s.event_count().await?, before + 1);
    let winner = replies.iter().find(|r| r.status == 201).unwrap();
    let active = read(
        &s,
        &staff,
        &format!("/v1/appointments?provider_id={dr}&status=booked,checked_in,in_progress"),
        winner,
    )
    .await?;
    assert_eq!(
        active.body["items"].as_array().unwrap().len(),
        1,
        "{active:?}"
    );

    // Staff may overbook the taken slot, with a reason; a patient may not.
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let overbook = json!({"provider_id": dr, "patient_id": marie_id, "starts_at": slot,
                          "reason_for_visit": "Acute pain",
                          "overbook_reason": "Urgent: seen between patients"});
    let refused = post(
        &s,
        &marie,
        "/v1/appointments/overbook",
        Some(overbook.clone()),
    )
    .await?;
    assert_eq!((refused.status, refused.code()), (403, "forbidden"));
    let squeezed = post(&s, &staff, "/v1/appointments/overbook", Some(overbook)).await?;
    assert_eq!(squeezed.status, 201, "{squeezed:?}");
    let day = read(
        &s,
        &staff,
        &format!("/v1/providers/{dr}/schedule?date={monday}"),
        &squeezed,
    )
    .await?;
    let items = day.body["appointments"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{day:?}");
    assert!(items
        .iter()
        .any(|a| a["overbook_reason"] == "Urgent: seen between patients"));
    // Where names are not shown (an administrator's view), the overbooking's
    // free-text reason is not either (it once was).
    let blind = read(
        &s,
        &admin,
        &format!("/v1/providers/{dr}/schedule?date={monday}"),
        &squeezed,
    )
    .await?;
    let items = blind.body["appointments"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{blind:?}");
    assert!(
        items
            .iter()
            .all(|a| a["overbook_reason"].is_null() && a["patient_name"].is_null()),
        "{blind:?}"
    );
    // The patient's own calendar still holds for an overbooking.
    let twice = json!({"provider_id": dr, "patient_id": marie_id, "starts_at": slot,
                       "reason_for_visit": "Acute pain", "overbook_reason": "Again"});
    let twice = post(&s, &staff, "/v1/appointments/overbook", Some(twice)).await?;
    assert_eq!(
        (twice.status, twice.code()),
        (409, "patient_double_booked"),
        "{twice:?}"
    );
    // Rescheduled to a free time, it is an overbooking no more: the read
    // model says so as the write side does (it once kept the reason).
    let squeezed_id = squeezed.body["id"].as_str().unwrap().to_owned();
    let moved = post(
        &s,
        &staff,
        &format!("/v1/appointments/{squeezed_id}/reschedule"),
        Some(json!({"starts_at": clinic.at(monday, "15:00")})),
    )
    .await?;
    assert_eq!(moved.status, 200, "{moved:?}");
    let view = read(
        &s,
        &staff,
        &format!("/v1/appointments/{squeezed_id}"),
        &moved,
    )
    .await?;
    assert!(view.body["overbook_reason"].is_null(), "{view:?}");
    // A doctor outside her care sees when she is booked, not why (any
    // doctor once read every patient's reasons for visit).
    let stranger = user(&s, &admin, "dr.wilson", "doctor").await?;
    let path = format!("/v1/patients/{marie_id}/appointments");
    let theirs = read(&s, &stranger, &path, &moved).await?;
    let desk = read(&s, &staff, &path, &moved).await?;
    assert_eq!(
        desk.body["items"][0]["reason_for_visit"], "Acute pain",
        "{desk:?}"
    );
    assert!(
        theirs.body["items"][0]["reason_for_visit"].is_null(),
        "{theirs:?}"
    );
    assert!(
        theirs.body["items"][0]["starts_at"].is_string(),
        "{theirs:?}"
    );
    Arc::into_inner(s).unwrap().stop().await
}

/// Bookings by patients the server has not seen yet read those patients
/// together (one read for all that wait): each still gets the answer its
/// own patient's record gives.
async fn bookings_read_together_each_get_their_own_patients_answer(
    backend: Backend,
) -> anyhow::Result<()> {
    let OneDoctor {
        s,
        clinic,
        admin,
        staff,
        dr,
    } = one_doctor(backend).await?;
    let doctor = user(&s, &admin, "dr.wilson", "doctor").await?;
    // Registered by the doctor, who joins each care team (and may record a
    // death).
    let mut patients = register(&s, &doctor, "Together", 10).await?;
    let today = clinic.today();
    let died = post(
        &s,
        &doctor,
        &format!("/v1/patients/{}/deceased", patients[9]),
        Some(json!({"deceased_on": today.to_string()})),
    )
    .await?;
    assert_eq!(died.status, 200, "{died:?}");
    patients.push(uuid::Uuid::now_v7().to_string());
    let monday = clinic.next(Weekday::Mon);
    let bodies = patients
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let at = clinic.instant(monday, "09:00") + Duration::minutes(30 * i as i64);
            json!({"provider_id": dr, "patient_id": p, "starts_at": clinic.rfc3339(at),
                   "reason_for_visit": "Check-up"})
        })
        .collect();

    let before = s.event_count().await?;
    let s = Arc::new(s);
    let replies = race(s.clone(), &staff, bodies).await?;
    for (i, r) in replies.iter().take(9).enumerate() {
        assert_eq!(r.status, 201, "patient {i}: {r:?}");
    }
    assert_eq!(replies[9].code(), "patient_deceased", "{:?}", replies[9]);
    assert_eq!(replies[10].code(), "unknown_patient", "{:?}", replies[10]);
    assert_eq!(s.event_count().await?, before + 9);
    Arc::into_inner(s).unwrap().stop().await
}

async fn one_patient_racing_across_fifty_providers_gets_one_appointment(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = start_in(backend, LOS_ANGELES).await?;
    let clinic = Clinic::new(LOS_ANGELES)?;
    let admin = admin(&s).await?;
    let mut providers = Vec::with_capacity(RACERS);
    for i in 0..RACERS {
        let user = user_id(&s, &admin, &format!("dr.{i}"), "doctor").await?;
        let dr = enroll(&s, &admin, &user, &format!("Dr {i}"), "General practice").await?;
        set_hours(&s, &admin, &dr, hours(&WEEKDAYS, &[("09:00", "12:00")]), 30).await?;
        providers.push(dr);
    }
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let friday = clinic.next(Weekday::Fri);
    // 10:00-10:30, 10:05-10:35, ... 10:25-10:55, again: all overlap, few alike.
    let bodies = providers
        .iter()
        .enumerate()
        .map(|(i, dr)| {
            let start = clinic.instant(friday, "10:00") + Duration::minutes(5 * (i as i64 % 6));
            json!({"provider_id": dr, "patient_id": marie_id,
                   "starts_at": clinic.rfc3339(start), "reason_for_visit": "Second opinion"})
        })
        .collect();

    let before = s.event_count().await?;
    let s = Arc::new(s);
    let replies = race(s.clone(), &marie, bodies).await?;
    let (won, lost, other) = tally(&replies, "patient_double_booked");
    assert_eq!((won, lost), (1, RACERS - 1), "{other:?}");
    assert_eq!(s.event_count().await?, before + 1);
    let winner = replies.iter().find(|r| r.status == 201).unwrap();
    let own = read(
        &s,
        &marie,
        &format!("/v1/patients/{marie_id}/appointments"),
        winner,
    )
    .await?;
    assert_eq!(own.body["items"].as_array().unwrap().len(), 1, "{own:?}");
    Arc::into_inner(s).unwrap().stop().await
}

async fn hostile_bookings_are_refused_and_write_nothing(backend: Backend) -> anyhow::Result<()> {
    let OneDoctor {
        s,
        clinic,
        admin: _,
        staff,
        dr,
    } = one_doctor(backend).await?;
    let (_, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let monday = clinic.next(Weekday::Mon);
    let good = json!({"provider_id": dr, "patient_id": marie_id,
                      "starts_at": clinic.at(monday, "10:00"), "reason_for_visit": "Cough"});
    let with = |field: &str, value: serde_json::Value| {
        let mut b = good.clone();
        b[field] = value;
        b
    };
    let naive = format!("{monday}T10:00:00");
    let cases = [
        (
            with("starts_at", json!(clinic.at(monday, "10:03"))),
            422,
            "off_grain",
        ),
        (with("starts_at", json!(naive)), 400, "invalid_value"),
        (
            with("reason_for_visit", json!("Cough\u{1}\u{1b}[31m")),
            422,
            "invalid_characters",
        ),
        (
            with("provider_id", json!(uuid::Uuid::now_v7().to_string())),
            422,
            "unknown_provider",
        ),
        (with("priority", json!("high")), 400, "unknown_field"),
    ];
    let before = s.event_count().await?;
    for (body, status, code) in cases {
        let r = post(&s, &staff, "/v1/appointments", Some(body.clone())).await?;
        assert_eq!((r.status, r.code()), (status, code), "{body}: {r:?}");
    }
    // The overbooking form refuses unknown fields too.
    let mut overbook = with("overbook_reason", json!("Urgent"));
    overbook["priority"] = json!("high");
    let r = post(&s, &staff, "/v1/appointments/overbook", Some(overbook)).await?;
    assert_eq!(r.status, 400, "{r:?}");
    // Free slots are searched only up to the horizon (12 weeks by default).
    let far = clinic.today() + Duration::weeks(12) + Duration::days(1);
    let path = format!("/v1/providers/{dr}/slots?from={monday}&to={far}");
    let r = s.call("GET", &path, Some(&staff), None, &[]).await?;
    assert_eq!((r.status, r.code()), (400, "beyond_horizon"), "{r:?}");
    assert_eq!(s.event_count().await?, before, "a refused request wrote");
    // The well-formed booking is accepted after all of that.
    let r = post(&s, &staff, "/v1/appointments", Some(good)).await?;
    assert_eq!(r.status, 201, "{r:?}");
    s.stop().await
}

/// Each instance remembers the calendars it read and fences them: a booking
/// decided on a calendar another instance changed since is decided again,
/// and a refusal is only ever made on a fresh read.
async fn an_instance_books_on_what_another_instance_changed(
    backend: Backend,
) -> anyhow::Result<()> {
    let one = start_in(backend, "UTC").await?;
    let admin = admin(&one).await?;
    let (staff, _) = account(&one, &admin, "desk", "staff").await?;
    let doctor = user_id(&one, &admin, "dr.ross", "doctor").await?;
    let provider = enroll(&one, &admin, &doctor, "Dr Ross", "Paediatrics").await?;
    set_hours(
        &one,
        &admin,
        &provider,
        hours(&EVERY_DAY, &[("00:00", "23:55")]),
        30,
    )
    .await?;
    let two = one.another().await?;
    let clinic = Clinic::new("UTC")?;
    let (tomorrow, later) = (
        clinic.today() + Duration::days(1),
        clinic.today() + Duration::days(2),
    );
    let patients = register(&one, &staff, "Child", 4).await?;

    // The second instance books, and so has read the calendars.
    let r = book(
        &two,
        &staff,
        &provider,
        &patients[0],
        &clinic.at(tomorrow, "10:00"),
    )
    .await?;
    assert_eq!(r.status, 201, "{r:?}");
    // The first closes a later day; the second's booking there is refused.
    let holiday = json!({"from_date": later.to_string(), "reason": "Inventory"});
    let r = post(&one, &admin, "/v1/holidays", Some(holiday)).await?;
    assert_eq!(r.status, 201, "{r:?}");
    let r = book(
        &two,
        &staff,
        &provider,
        &patients[1],
        &clinic.at(later, "10:00"),
    )
    .await?;
    assert_eq!((r.status, r.code()), (422, "closed"), "{r:?}");
    // The first narrows the hours; the second refuses outside them.
    set_hours(
        &one,
        &admin,
        &provider,
        hours(&EVERY_DAY, &[("09:00", "12:00")]),
        30,
    )
    .await?;
    let r = book(
        &two,
        &staff,
        &provider,
        &patients[2],
        &clinic.at(tomorrow, "15:00"),
    )
    .await?;
    assert_eq!(
        (r.status, r.code()),
        (422, "outside_working_hours"),
        "{r:?}"
    );
    // The first widens them again; the second, which saw them narrow,
    // books: a refusal is made on a fresh read only.
    set_hours(
        &one,
        &admin,
        &provider,
        hours(&EVERY_DAY, &[("00:00", "23:55")]),
        30,
    )
    .await?;
    let r = book(
        &two,
        &staff,
        &provider,
        &patients[3],
        &clinic.at(tomorrow, "15:00"),
    )
    .await?;
    assert_eq!(r.status, 201, "{r:?}");
    two.stop().await?;
    one.stop().await
}

/// The body of an urgent overbooking of `patient` with `dr` at `starts_at`.
fn overbooking(dr: &str, patient: &str, starts_at: &str) -> serde_json::Value {
    json!({"provider_id": dr, "patient_id": patient, "starts_at": starts_at,
           "reason_for_visit": "Acute pain", "overbook_reason": "Urgent"})
}

/// The appointments a refused or cancelling closure names, sorted.
fn named(r: &Reply, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = r.body[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field}: {r:?}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Time off and holidays find appointments booked over the provider's
/// others, which hold none of the provider's calendar: refused over them,
/// or cancelling them. They once went unseen, and stayed booked on a
/// closed day.
async fn closures_reach_overbooked_appointments(backend: Backend) -> anyhow::Result<()> {
    let OneDoctor {
        s,
        clinic,
        admin,
        staff,
        dr,
    } = one_doctor(backend).await?;
    let patients = register(&s, &staff, "Squeezed", 3).await?;
    let monday = clinic.next(Weekday::Mon);
    let ten = clinic.at(monday, "10:00");
    let regular = book(&s, &staff, &dr, &patients[0], &ten).await?;
    assert_eq!(regular.status, 201, "{regular:?}");
    let overbook = |patient: &str, starts_at: &str| overbooking(&dr, patient, starts_at);
    // One over the regular booking, one alone at eleven.
    let over = post(
        &s,
        &staff,
        "/v1/appointments/overbook",
        Some(overbook(&patients[1], &ten)),
    )
    .await?;
    assert_eq!(over.status, 201, "{over:?}");
    let eleven = clinic.at(monday, "11:00");
    let alone = post(
        &s,
        &staff,
        "/v1/appointments/overbook",
        Some(overbook(&patients[2], &eleven)),
    )
    .await?;
    assert_eq!(alone.status, 201, "{alone:?}");
    let (regular, over, alone) = (
        regular.body["id"].as_str().unwrap().to_owned(),
        over.body["id"].as_str().unwrap().to_owned(),
        alone.body["id"].as_str().unwrap().to_owned(),
    );

    // Time off over the morning is refused naming all three, writing nothing.
    let path = format!("/v1/providers/{dr}/time-off");
    let morning = json!({"starts_at": clinic.at(monday, "09:00"),
                         "ends_at": clinic.at(monday, "12:00"), "reason": "Conference"});
    let before = s.event_count().await?;
    let refused = post(&s, &staff, &path, Some(morning.clone())).await?;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "closure_over_bookings"),
        "{refused:?}"
    );
    let mut all = vec![regular.clone(), over.clone(), alone.clone()];
    all.sort();
    assert_eq!(named(&refused, "appointments"), all);
    assert_eq!(s.event_count().await?, before);

    // With the regular booking cancelled, the overbookings alone still
    // refuse it: no provider key is held any more.
    let cancelled = post(
        &s,
        &staff,
        &format!("/v1/appointments/{regular}/cancel"),
        Some(json!({"reason": "Moved away"})),
    )
    .await?;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    let refused = post(&s, &staff, &path, Some(morning)).await?;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "closure_over_bookings"),
        "{refused:?}"
    );
    let mut both = vec![over.clone(), alone.clone()];
    both.sort();
    assert_eq!(named(&refused, "appointments"), both);

    // Time off at ten with leave cancels the overbooking there...
    let at_ten = json!({"starts_at": ten, "ends_at": clinic.at(monday, "10:30"),
                        "reason": "Conference", "cancel_affected": true});
    let closed = post(&s, &staff, &path, Some(at_ten)).await?;
    assert_eq!(closed.status, 201, "{closed:?}");
    assert_eq!(named(&closed, "cancelled"), vec![over.clone()]);
    let gone = read(&s, &staff, &format!("/v1/appointments/{over}"), &closed).await?;
    assert_eq!(gone.body["status"], "cancelled", "{gone:?}");
    assert_eq!(gone.body["cancelled_by_clinic"], true, "{gone:?}");

    // ...and a clinic holiday that day cancels the one left.
    let holiday = post(
        &s,
        &admin,
        "/v1/holidays",
        Some(json!({"from_date": monday.to_string(), "reason": "Flood",
                    "cancel_affected": true})),
    )
    .await?;
    assert_eq!(holiday.status, 201, "{holiday:?}");
    assert_eq!(named(&holiday, "cancelled"), vec![alone.clone()]);
    let gone = read(&s, &staff, &format!("/v1/appointments/{alone}"), &holiday).await?;
    assert_eq!(gone.body["status"], "cancelled", "{gone:?}");
    assert_eq!(gone.body["cancel_reason"], "Flood", "{gone:?}");
    s.stop().await
}

/// A provider whose account is deactivated is booked no more, overbooked
/// neither, and bookable again once reactivated. They once stayed bookable.
async fn a_deactivated_provider_is_not_booked(backend: Backend) -> anyhow::Result<()> {
    let OneDoctor {
        s,
        clinic,
        admin,
        staff,
        dr,
    } = one_doctor(backend).await?;
    let patients = register(&s, &staff, "Waiting", 1).await?;
    let ten = clinic.at(clinic.next(Weekday::Mon), "10:00");
    let gone = post(&s, &admin, "/v1/users/dr.house/deactivate", None).await?;
    assert_eq!(gone.status, 200, "{gone:?}");
    let before = s.event_count().await?;
    let refused = book(&s, &staff, &dr, &patients[0], &ten).await?;
    assert_eq!(
        (refused.status, refused.code()),
        (422, "provider_inactive"),
        "{refused:?}"
    );
    let overbook = overbooking(&dr, &patients[0], &ten);
    let squeezed = post(&s, &staff, "/v1/appointments/overbook", Some(overbook)).await?;
    assert_eq!(
        (squeezed.status, squeezed.code()),
        (422, "provider_inactive"),
        "{squeezed:?}"
    );
    assert_eq!(s.event_count().await?, before);
    let back = post(&s, &admin, "/v1/users/dr.house/reactivate", None).await?;
    assert_eq!(back.status, 200, "{back:?}");
    let booked = book(&s, &staff, &dr, &patients[0], &ten).await?;
    assert_eq!(booked.status, 201, "{booked:?}");
    s.stop().await
}
