//! A name search pages alphabetically: family name matches first, then
//! given-name-only matches, each once, with cursors that hold no name
//! (ADR 0002), on each backend.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use anamnesis_tests::db::Backend;
use anamnesis_tests::fixtures::*;
use anamnesis_tests::on_both_backends;
use anamnesis_tests::server::{Reply, TestServer};
use serde_json::{json, Value};

on_both_backends!(
    a_name_search_pages_through_family_then_given_matches_each_once,
    a_cursor_from_another_kind_of_search_is_refused
);

/// (family, given, birth date). The prefix `sm` (searched as `SM`).
const PATIENTS: &[(&str, &str, &str)] = &[
    ("Smith", "Anna", "1980-01-01"),
    ("Jones", "Smita", "1980-01-01"),
    ("Smythe", "Bob", "1990-05-05"),
    ("Taylor", "Sam", "1980-01-01"),
    ("smalley", "Carl", "1980-01-01"),
    ("Brown", "Smokey", "1990-05-05"),
    ("Smith", "Dora", "1990-05-05"),
    ("Osmond", "Ismael", "1980-01-01"),
    ("Smart", "Smart", "1980-01-01"),
    ("Adams", "Sm", "1980-01-01"),
];

fn demographics(family: &str, given: &str, birth_date: &str) -> Value {
    json!({"family_name": family, "given_name": given, "birth_date": birth_date})
}

/// Every item of a search, page by page, and the cursors it was given.
async fn pages(
    s: &TestServer,
    token: &str,
    query: &str,
    wait: &[(&'static str, String)],
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let (mut ids, mut cursors) = (Vec::new(), Vec::new());
    loop {
        let path = match cursors.last() {
            None => format!("/v1/patients?{query}"),
            Some(c) => format!("/v1/patients?{query}&cursor={c}"),
        };
        let page = s.call("GET", &path, Some(token), None, wait).await?;
        assert_eq!(page.status, 200, "{path}: {page:?}");
        for item in page.body["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursors.push(c.to_owned()),
            None => return Ok((ids, cursors)),
        }
        assert!(cursors.len() <= PATIENTS.len(), "{query}: no end");
    }
}

/// The ids of the patients (by `PATIENTS` index) in the order a search
/// for `sm` must list them: family matches by (lowercase family name, id),
/// then given-only matches by (lowercase given name, id).
fn expected(ids: &[String], born: Option<&str>) -> Vec<String> {
    let matching = |i: &usize| born.is_none_or(|b| PATIENTS[*i].2 == b);
    let key = |name: &str, i: usize| (name.to_lowercase(), ids[i].clone());
    let mut family: Vec<_> = (0..PATIENTS.len())
        .filter(matching)
        .filter(|&i| PATIENTS[i].0.to_lowercase().starts_with("sm"))
        .map(|i| key(PATIENTS[i].0, i))
        .collect();
    let mut given: Vec<_> = (0..PATIENTS.len())
        .filter(matching)
        .filter(|&i| !PATIENTS[i].0.to_lowercase().starts_with("sm"))
        .filter(|&i| PATIENTS[i].1.to_lowercase().starts_with("sm"))
        .map(|i| key(PATIENTS[i].1, i))
        .collect();
    family.sort();
    given.sort();
    family.into_iter().chain(given).map(|(_, id)| id).collect()
}

async fn a_name_search_pages_through_family_then_given_matches_each_once(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let desk = user(&s, &admin, "front.desk", "staff").await?;
    let mut ids = Vec::new();
    let mut last: Option<Reply> = None;
    for (family, given, born) in PATIENTS {
        let r = s
            .call(
                "POST",
                "/v1/patients",
                Some(&desk),
                Some(demographics(family, given, born)),
                &[],
            )
            .await?;
        assert_eq!(r.status, 201, "{r:?}");
        ids.push(r.body["id"].as_str().unwrap().to_owned());
        last = Some(r);
    }
    let wait = at(&last.unwrap());
    let all = expected(&ids, None);
    // Five family matches (two Smiths), then three given-only ones; Smart
    // Smart once, Osmond and Taylor not at all.
    assert_eq!(all.len(), 8);

    // Every page size: pages end inside a phase, at its end (5), and a page
    // spans both (3: Smith, Smythe, then Adams).
    for limit in 1..=9 {
        let (found, cursors) = pages(&s, &desk, &format!("name=SM&limit={limit}"), &wait).await?;
        assert_eq!(found, all, "limit {limit}");
        for c in &cursors {
            let (phase, id) = c.split_once('.').unwrap();
            assert!(["f", "g"].contains(&phase), "{c}");
            assert!(
                ids.contains(&id.to_owned()),
                "a cursor names a patient id: {c}"
            );
        }
        if limit == 3 {
            let page_2_spans_both = [format!("f.{}", all[2]), format!("g.{}", all[5])];
            assert_eq!(cursors, page_2_spans_both);
        }
        if limit == 5 {
            assert_eq!(
                cursors,
                [format!("f.{}", all[4])],
                "the family phase ends a page"
            );
        }
    }

    // The other filters hold in both phases.
    let (born_1990, _) = pages(&s, &desk, "name=sm&birth_date=1990-05-05&limit=1", &wait).await?;
    assert_eq!(born_1990, expected(&ids, Some("1990-05-05")));
    assert_eq!(born_1990.len(), 3, "Smith (Dora), Smythe, then Brown");

    // Without a name: every patient, by id, with bare ids as cursors.
    let (everyone, cursors) = pages(&s, &desk, "limit=3", &wait).await?;
    let mut by_id = ids.clone();
    by_id.sort();
    assert_eq!(everyone, by_id);
    assert!(cursors.iter().all(|c| ids.contains(c)), "{cursors:?}");
    s.stop().await
}

async fn a_cursor_from_another_kind_of_search_is_refused(backend: Backend) -> anyhow::Result<()> {
    let s = TestServer::start(backend).await?;
    let admin = admin(&s).await?;
    let desk = user(&s, &admin, "front.desk", "staff").await?;
    let id = uuid::Uuid::now_v7();
    for query in [
        format!("name=sm&cursor={id}"),
        format!("cursor=f.{id}"),
        format!("birth_date=1980-01-01&cursor=g.{id}"),
        "name=sm&cursor=f.smith".to_owned(),
        format!("name=sm&cursor=x.{id}"),
    ] {
        let r = s
            .call(
                "GET",
                &format!("/v1/patients?{query}"),
                Some(&desk),
                None,
                &[],
            )
            .await?;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (400, "invalid_value", "cursor"),
            "{query}: {r:?}"
        );
        assert!(!r.body.to_string().contains("smith"), "{r:?}");
    }
    s.stop().await
}
