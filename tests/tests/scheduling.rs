//! Scheduling walked through over HTTP as a clinic in Los Angeles (and one in
//! Auckland) would use it, on each backend: hours, holidays, free slots,
//! booking, rescheduling, cancelling, the visit, closures over bookings,
//! local days that are not UTC days, and a restart. Dates are computed from
//! today in the clinic's zone, so the tests do not rot.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::schedule::*;
use anamnesis_tests::server::Reply;
use chrono::{Duration, Timelike, Weekday};
use serde_json::{json, Value};

on_both_backends!(
    walk_through_from_weekly_hours_to_a_completed_visit,
    an_evening_booking_in_los_angeles_belongs_to_its_local_day,
    a_morning_booking_in_auckland_belongs_to_its_local_day,
    a_restart_keeps_bookings_and_taken_slots,
);

fn ids(items: &Value) -> Vec<String> {
    let mut ids: Vec<String> = items
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["appointment_id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

fn id(r: &Reply) -> String {
    r.body["id"].as_str().unwrap().to_owned()
}

async fn walk_through_from_weekly_hours_to_a_completed_visit(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = start_in(backend, LOS_ANGELES).await?;
    let clinic = Clinic::new(LOS_ANGELES)?;
    let admin = admin(&s).await?;
    let (doctor, doctor_user) = account(&s, &admin, "dr.house", "doctor").await?;
    let nurse_user = user_id(&s, &admin, "nurse.joy", "nurse").await?;
    let staff = user(&s, &admin, "front.desk", "staff").await?;

    // The admin sets up a doctor and a nurse, their hours and a holiday.
    let dr = enroll(
        &s,
        &admin,
        &doctor_user,
        "Dr Gregory House",
        "Internal medicine",
    )
    .await?;
    let nurse = enroll(&s, &admin, &nurse_user, "Nurse Joy", "Nursing").await?;
    let weekly = hours(&WEEKDAYS, &[("09:00", "12:00"), ("13:00", "17:00")]);
    set_hours(&s, &admin, &dr, weekly, 30).await?;
    // The nurse works round the clock in 5-minute slots: bookable soon after now.
    set_hours(
        &s,
        &admin,
        &nurse,
        hours(&EVERY_DAY, &[("00:00", "23:55")]),
        5,
    )
    .await?;
    let monday = clinic.next(Weekday::Mon);
    let (tuesday, wednesday) = (monday + Duration::days(1), monday + Duration::days(2));
    let holiday = post(
        &s,
        &admin,
        "/v1/holidays",
        Some(json!({"from_date": wednesday.to_string(), "reason": "Staff training"})),
    )
    .await?;
    assert_eq!(holiday.status, 201, "{holiday:?}");

    // A patient finds Monday's first free slot and books it for herself.
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let (pierre, pierre_id) = patient_account(&s, "pierre", "Pasteur").await?;
    let slots = free_slots(&s, &marie, &dr, (monday, monday), Some(&holiday)).await?;
    assert_eq!(slots.len(), 6 + 8, "{slots:?}");
    assert_eq!(slots[0], clinic.instant(monday, "09:00"));
    let nine = clinic.at(monday, "09:00");
    let booked = book(&s, &marie, &dr, &marie_id, &nine).await?;
    assert_eq!(booked.status, 201, "{booked:?}");
    let maries = id(&booked);

    // The same slot for another patient is taken.
    let taken = book(&s, &pierre, &dr, &pierre_id, &nine).await?;
    assert_eq!(
        (taken.status, taken.code()),
        (409, "slot_taken"),
        "{taken:?}"
    );

    // The holiday has no free slots, and cannot be booked.
    let closed_day = free_slots(&s, &marie, &dr, (wednesday, wednesday), None).await?;
    assert!(closed_day.is_empty(), "{closed_day:?}");
    let on_holiday = book(&s, &marie, &dr, &marie_id, &clinic.at(wednesday, "10:00")).await?;
    assert_eq!((on_holiday.status, on_holiday.code()), (422, "closed"));

    // Rescheduled to 10:00: 09:00 is free again, 10:00 is taken.
    let moved = post(
        &s,
        &marie,
        &format!("/v1/appointments/{maries}/reschedule"),
        Some(json!({"starts_at": clinic.at(monday, "10:00")})),
    )
    .await?;
    assert_eq!(moved.status, 200, "{moved:?}");
    let slots = free_slots(&s, &marie, &dr, (monday, monday), Some(&moved)).await?;
    assert!(
        slots.contains(&clinic.instant(monday, "09:00")),
        "{slots:?}"
    );
    assert!(
        !slots.contains(&clinic.instant(monday, "10:00")),
        "{slots:?}"
    );
    let second = book(&s, &pierre, &dr, &pierre_id, &nine).await?;
    assert_eq!(second.status, 201, "{second:?}");
    let pierres = id(&second);

    // The front desk's day view names the patients; the admin's does not.
    let day = format!("/v1/providers/{dr}/schedule?date={monday}");
    let desk = read(&s, &staff, &day, &second).await?;
    let names: Vec<&str> = desk.body["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["patient_name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["Marie Pasteur", "Marie Curie"], "{desk:?}");
    assert_eq!(
        desk.body["appointments"][1]["reason_for_visit"],
        "Persistent cough"
    );
    let admins = read(&s, &admin, &day, &second).await?;
    let seen = admins.body["appointments"].as_array().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen
        .iter()
        .all(|a| a["patient_name"].is_null() && a["reason_for_visit"].is_null()));

    // The front desk's list of booked appointments; the patient's own upcoming ones.
    let list = read(&s, &staff, "/v1/appointments?status=booked", &second).await?;
    let mut both = vec![maries.clone(), pierres.clone()];
    both.sort();
    assert_eq!(ids(&list.body["items"]), both);
    let upcoming = format!("/v1/patients/{marie_id}/appointments?when=upcoming");
    let own = read(&s, &marie, &upcoming, &moved).await?;
    assert_eq!(ids(&own.body["items"]), std::slice::from_ref(&maries));
    assert_eq!(own.body["items"][0]["patient_name"], "Marie Curie");

    // No no-show before the start; no completing a visit that never started.
    let early = post(
        &s,
        &staff,
        &format!("/v1/appointments/{maries}/no-show"),
        None,
    )
    .await?;
    assert_eq!((early.status, early.code()), (422, "not_started_yet"));
    let skipped = post(
        &s,
        &staff,
        &format!("/v1/appointments/{maries}/complete"),
        None,
    )
    .await?;
    assert_eq!(
        (skipped.status, skipped.code()),
        (422, "invalid_transition")
    );

    // An afternoon visit runs in order: check-in, start, complete.
    let two = book(&s, &staff, &dr, &pierre_id, &clinic.at(monday, "14:00")).await?;
    assert_eq!(two.status, 201, "{two:?}");
    let visit = id(&two);
    let mut last = two;
    for step in ["check-in", "start", "complete"] {
        last = post(
            &s,
            &doctor,
            &format!("/v1/appointments/{visit}/{step}"),
            None,
        )
        .await?;
        assert_eq!(last.status, 200, "{step}: {last:?}");
    }
    let done = read(&s, &staff, &format!("/v1/appointments/{visit}"), &last).await?;
    assert_eq!(done.body["status"], "completed");

    // Cancelled less than 24 hours ahead is late; days ahead is not.
    let mut soon = on_grain_after(Duration::hours(1));
    if clinic.zone.local(soon).hour() == 23 && clinic.zone.local(soon).minute() >= 50 {
        soon += Duration::minutes(15); // the nurse's day ends at 23:55
    }
    let urgent = s
        .call(
            "POST",
            "/v1/appointments",
            Some(&marie),
            Some(json!({"provider_id": nurse, "patient_id": marie_id,
                        "starts_at": clinic.rfc3339(soon),
                        "ends_at": clinic.rfc3339(soon + Duration::minutes(5)),
                        "reason_for_visit": "Dressing change"})),
            &[],
        )
        .await?;
    assert_eq!(urgent.status, 201, "{urgent:?}");
    let urgent = id(&urgent);
    let reason = json!({"reason": "Feeling better"});
    let cancelled = post(
        &s,
        &marie,
        &format!("/v1/appointments/{urgent}/cancel"),
        Some(reason.clone()),
    )
    .await?;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    let late = read(
        &s,
        &marie,
        &format!("/v1/appointments/{urgent}"),
        &cancelled,
    )
    .await?;
    assert_eq!(late.body["status"], "cancelled");
    assert_eq!(late.body["late_cancellation"], true, "{late:?}");
    assert_eq!(late.body["cancel_reason"], "Feeling better");
    assert_eq!(late.body["cancelled_by_clinic"], false);
    let later = book(&s, &pierre, &dr, &pierre_id, &clinic.at(tuesday, "09:00")).await?;
    assert_eq!(later.status, 201, "{later:?}");
    let later = id(&later);
    let cancelled = post(
        &s,
        &pierre,
        &format!("/v1/appointments/{later}/cancel"),
        Some(reason),
    )
    .await?;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    let in_time = read(
        &s,
        &pierre,
        &format!("/v1/appointments/{later}"),
        &cancelled,
    )
    .await?;
    assert_eq!(in_time.body["late_cancellation"], false, "{in_time:?}");

    // Time off over Monday morning's bookings is refused, naming them...
    let morning = json!({"starts_at": clinic.at(monday, "09:00"),
                         "ends_at": clinic.at(monday, "12:00"), "reason": "Conference"});
    let path = format!("/v1/providers/{dr}/time-off");
    let before = s.event_count().await?;
    let refused = post(&s, &doctor, &path, Some(morning.clone())).await?;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "closure_over_bookings"),
        "{refused:?}"
    );
    let mut named: Vec<String> = refused.body["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    named.sort();
    assert_eq!(named, both);
    assert_eq!(s.event_count().await?, before);

    // ...and with leave, cancels them for the clinic; the morning is closed.
    let mut with_leave = morning;
    with_leave["cancel_affected"] = json!(true);
    let closure = post(&s, &doctor, &path, Some(with_leave)).await?;
    assert_eq!(closure.status, 201, "{closure:?}");
    let mut cancelled: Vec<String> = serde_json::from_value(closure.body["cancelled"].clone())?;
    cancelled.sort();
    assert_eq!(cancelled, both);
    let gone = read(&s, &marie, &format!("/v1/appointments/{maries}"), &closure).await?;
    assert_eq!(gone.body["status"], "cancelled");
    assert_eq!(gone.body["cancelled_by_clinic"], true);
    assert_eq!(gone.body["cancel_reason"], "Conference");
    let slots = free_slots(&s, &marie, &dr, (monday, monday), Some(&closure)).await?;
    assert!(
        slots.iter().all(|t| *t >= clinic.instant(monday, "13:00")),
        "{slots:?}"
    );
    assert_eq!(slots[0], clinic.instant(monday, "13:00"));
    let into = book(&s, &marie, &dr, &marie_id, &clinic.at(monday, "10:30")).await?;
    assert_eq!((into.status, into.code()), (422, "closed"), "{into:?}");
    s.stop().await
}

async fn an_evening_booking_in_los_angeles_belongs_to_its_local_day(
    backend: Backend,
) -> anyhow::Result<()> {
    // 17:30 in Los Angeles is 00:30 or 01:30 UTC the next day.
    local_day_is_not_the_utc_day(backend, LOS_ANGELES, ("09:00", "20:00"), "17:30", 1).await
}

async fn a_morning_booking_in_auckland_belongs_to_its_local_day(
    backend: Backend,
) -> anyhow::Result<()> {
    // 09:00 in Auckland is 20:00 or 21:00 UTC the day before.
    local_day_is_not_the_utc_day(backend, AUCKLAND, ("08:00", "17:00"), "09:00", -1).await
}

/// Books local `time` on a Tuesday whose UTC date is `utc_shift` days away,
/// and finds it on its local day (slots and schedule), not on the UTC one.
async fn local_day_is_not_the_utc_day(
    backend: Backend,
    zone: &str,
    open: (&str, &str),
    time: &str,
    utc_shift: i64,
) -> anyhow::Result<()> {
    let s = start_in(backend, zone).await?;
    let clinic = Clinic::new(zone)?;
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
    let hours_set = set_hours(&s, &admin, &dr, hours(&WEEKDAYS, &[open]), 30).await?;
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;

    let day = clinic.next(Weekday::Tue);
    let utc_day = day + Duration::days(utc_shift);
    let t = clinic.instant(day, time);
    assert_eq!(
        t.date_naive(),
        utc_day,
        "the test needs a local day unlike UTC's"
    );
    let local = free_slots(&s, &marie, &dr, (day, day), Some(&hours_set)).await?;
    assert!(local.contains(&t), "{local:?}");
    let other = free_slots(&s, &marie, &dr, (utc_day, utc_day), None).await?;
    assert!(!other.contains(&t), "{other:?}");

    let booked = book(&s, &marie, &dr, &marie_id, &clinic.at(day, time)).await?;
    assert_eq!(booked.status, 201, "{booked:?}");
    let appointment = id(&booked);
    let shown = read(
        &s,
        &marie,
        &format!("/v1/appointments/{appointment}"),
        &booked,
    )
    .await?;
    // Answered in local time, with the clinic's offset.
    let starts = shown.body["starts_at"].as_str().unwrap();
    assert!(starts.starts_with(&format!("{day}T{time}:00")), "{starts}");
    assert_eq!(
        instant(&shown.body["ends_at"]),
        Some(t + Duration::minutes(30))
    );

    let local = free_slots(&s, &marie, &dr, (day, day), Some(&booked)).await?;
    assert!(!local.contains(&t), "{local:?}");
    let schedule = |date| format!("/v1/providers/{dr}/schedule?date={date}");
    let on_day = read(&s, &staff, &schedule(day), &booked).await?;
    assert_eq!(ids(&on_day.body["appointments"]), [appointment]);
    let on_utc_day = read(&s, &staff, &schedule(utc_day), &booked).await?;
    assert_eq!(ids(&on_utc_day.body["appointments"]), Vec::<String>::new());
    s.stop().await
}

async fn a_restart_keeps_bookings_and_taken_slots(backend: Backend) -> anyhow::Result<()> {
    let s = start_in(backend, LOS_ANGELES).await?;
    let clinic = Clinic::new(LOS_ANGELES)?;
    let admin = admin(&s).await?;
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
    let (marie, marie_id) = patient_account(&s, "marie", "Curie").await?;
    let thursday = clinic.next(Weekday::Thu);
    let slot = clinic.at(thursday, "16:30");
    let booked = book(&s, &marie, &dr, &marie_id, &slot).await?;
    assert_eq!(booked.status, 201, "{booked:?}");
    let appointment = id(&booked);

    let s = s.restart().await?;
    let marie = s.login("marie", PASSWORD).await?;
    let kept = read(
        &s,
        &marie,
        &format!("/v1/appointments/{appointment}"),
        &booked,
    )
    .await?;
    assert_eq!(kept.body["status"], "booked");
    assert_eq!(
        instant(&kept.body["starts_at"]),
        Some(clinic.instant(thursday, "16:30"))
    );
    let slots = free_slots(&s, &marie, &dr, (thursday, thursday), Some(&booked)).await?;
    assert_eq!(slots.len(), 15, "{slots:?}");
    assert!(!slots.contains(&clinic.instant(thursday, "16:30")));
    let (pierre, pierre_id) = patient_account(&s, "pierre", "Pasteur").await?;
    let again = book(&s, &pierre, &dr, &pierre_id, &slot).await?;
    assert_eq!(
        (again.status, again.code()),
        (409, "slot_taken"),
        "{again:?}"
    );
    s.stop().await
}
