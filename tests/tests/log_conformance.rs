//! The event-log conformance suite: every check runs on Postgres and on SQLite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, HashSet};

use anamnesis_commands::log::chain::{self, verify_run};
use anamnesis_commands::{
    Actor, AppendError, AppendRequest, Db, EventLog, EventMetadata, KeyChanges, LogReader,
    NewEvent, StoredEvent, StreamAt,
};
use anamnesis_domain::unique::UniqueKey;
use anamnesis_tests::db::{Backend, TestDb};
use serde_json::json;

/// Generates one `#[tokio::test]` per backend for each check.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() { super::$check(anamnesis_tests::db::Backend::Postgres).await.unwrap() }
        )* }
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() { super::$check(anamnesis_tests::db::Backend::Sqlite).await.unwrap() }
        )* }
    };
}

conformance!(
    append_and_load,
    a_stale_sequence_conflicts,
    only_the_conflicting_command_fails_in_a_mixed_batch,
    a_multi_event_command_commits_atomically,
    concurrent_writers_and_a_catch_up_reader_see_every_event_once_in_order,
    update_and_delete_on_events_are_refused,
    the_hash_chain_links_every_event,
    an_event_without_an_actor_is_refused,
    a_database_with_a_newer_schema_is_refused,
    an_atomic_group_across_streams_commits_all_or_nothing,
    a_unique_key_is_held_by_one_stream_even_within_one_batch,
    the_head_cannot_be_moved_away_from_the_last_event,
    a_fence_on_an_unmoved_stream_commits,
    a_fence_on_a_moved_stream_conflicts_and_writes_nothing,
    appends_fencing_one_stream_do_not_conflict_with_each_other,
    a_key_that_must_be_free_is_taken_when_another_stream_holds_it,
    a_key_is_free_when_unheld_held_by_the_appender_or_released_earlier_in_the_unit,
    a_later_unit_in_a_batch_sees_an_earlier_units_claim_and_append,
    claim_holders_names_each_stream_holding_any_of_the_keys,
    stream_ids_lists_the_streams_of_one_type,
    reads_of_what_this_process_appended_match_the_database,
    a_read_of_some_types_over_a_long_stretch_matches_a_plain_scan,
    reading_many_streams_at_once_matches_reading_each,
);

fn actor() -> EventMetadata {
    EventMetadata::by(Actor::new("user-1", "doctor"))
}

fn request(stream: &str, expected: i64, payloads: &[serde_json::Value]) -> AppendRequest {
    AppendRequest {
        aggregate_type: "test".into(),
        aggregate_id: stream.into(),
        expected_sequence: expected,
        events: payloads
            .iter()
            .map(|p| NewEvent {
                event_type: "test.happened".into(),
                event_version: "1".into(),
                payload: p.clone(),
            })
            .collect(),
        metadata: actor(),
        keys: Default::default(),
        credential: None,
        mfa: None,
        guards: Default::default(),
        patient_id: None,
    }
}

async fn open(backend: Backend) -> anyhow::Result<(TestDb, EventLog)> {
    let t = TestDb::new(backend).await?;
    let log = EventLog::open(t.db.clone()).await?;
    Ok((t, log))
}

async fn all_events(log: &EventLog) -> anyhow::Result<Vec<StoredEvent>> {
    let mut out = Vec::new();
    loop {
        let page = log
            .read_from(
                out.last().map_or(0, |e: &StoredEvent| e.global_position),
                1000,
            )
            .await?;
        if page.is_empty() {
            return Ok(out);
        }
        out.extend(page);
    }
}

async fn append_and_load(backend: Backend) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    let mut meta = actor();
    meta.reason = Some("intake".into());
    meta.correlation_id = Some(uuid::Uuid::now_v7());
    meta.extra = BTreeMap::from([("request_id".to_owned(), "r-1".to_owned())]);
    let mut req = request("a", 0, &[json!({"n": 1, "text": "é \"quoted\""})]);
    req.metadata = meta.clone();
    let first = log.append(req).await?;
    assert_eq!(
        (
            first.first_position,
            first.last_position,
            first.last_sequence
        ),
        (1, 1, 1)
    );
    let second = log.append(request("a", 1, &[json!({"n": 2})])).await?;
    assert_eq!((second.last_position, second.last_sequence), (2, 2));

    let stream = log.read_stream("test", "a", 0).await?;
    assert_eq!(stream.len(), 2);
    let e = &stream[0];
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&e.payload)?,
        json!({"n": 1, "text": "é \"quoted\""})
    );
    assert_eq!(
        (e.actor_id.as_str(), e.actor_role.as_str()),
        ("user-1", "doctor")
    );
    assert_eq!(e.reason.as_deref(), Some("intake"));
    assert_eq!(e.correlation_id, meta.correlation_id);
    assert_eq!(
        serde_json::from_str::<BTreeMap<String, String>>(&e.metadata)?,
        meta.extra
    );
    assert_eq!(e.event_id.get_version_num(), 7);
    assert_eq!(log.read_stream("test", "a", 1).await?.len(), 1);
    assert!(log.read_stream("test", "b", 0).await?.is_empty());
    assert_eq!(log.head_position().await?, 2);
    t.cleanup().await
}

async fn a_stale_sequence_conflicts(backend: Backend) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    log.append(request("a", 0, &[json!(1)])).await?;
    let stale = log.append(request("a", 0, &[json!(2)])).await;
    assert!(
        matches!(
            stale,
            Err(AppendError::Conflict {
                expected: 0,
                actual: 1,
                ..
            })
        ),
        "{stale:?}"
    );
    assert_eq!(log.read_stream("test", "a", 0).await?.len(), 1);
    assert_eq!(log.head_position().await?, 1);
    t.cleanup().await
}

async fn only_the_conflicting_command_fails_in_a_mixed_batch(
    backend: Backend,
) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    log.append(request("taken", 0, &[json!(0)])).await?;
    // One group, so one transaction: good commands around a stale one, and a
    // second command on a stream that an earlier command in the same batch
    // advanced.
    let results = log
        .append_many(vec![
            request("b", 0, &[json!(1)]),
            request("taken", 0, &[json!("stale")]),
            request("c", 0, &[json!(2), json!(3)]),
            request("b", 1, &[json!(4)]),
        ])
        .await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(AppendError::Conflict { .. })),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert!(results[3].is_ok(), "{:?}", results[3]);
    // A command the database refuses fails the batch's transaction; the writer
    // then commits the others one by one, so it fails alone.
    let mut refused = request("d", 0, &[json!(5)]);
    refused.events[0].event_type = "Not A Type!".into();
    let results = log
        .append_many(vec![
            request("e", 0, &[json!(6)]),
            refused,
            request("f", 0, &[json!(7)]),
        ])
        .await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(AppendError::Store(_))),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);
    let positions: Vec<i64> = all_events(&log)
        .await?
        .iter()
        .map(|e| e.global_position)
        .collect();
    assert_eq!(positions, vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(log.read_stream("test", "taken", 0).await?.len(), 1);
    assert!(log.read_stream("test", "d", 0).await?.is_empty());
    assert_eq!(log.read_stream("test", "b", 0).await?.len(), 2);
    t.cleanup().await
}

async fn a_multi_event_command_commits_atomically(backend: Backend) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    let done = log
        .append(request("m", 0, &[json!(1), json!(2), json!(3)]))
        .await?;
    assert_eq!(
        (done.first_position, done.last_position, done.last_sequence),
        (1, 3, 3)
    );
    // A stale multi-event command writes none of its events.
    let stale = log.append(request("m", 1, &[json!(4), json!(5)])).await;
    assert!(matches!(stale, Err(AppendError::Conflict { .. })));
    // A multi-event command whose second event the database refuses (event
    // types are lowercase dotted identifiers) is refused whole, not half-written.
    let mut bad = request("m", 3, &[json!(6), json!(7)]);
    bad.events[1].event_type = "Not A Type!".into();
    assert!(matches!(log.append(bad).await, Err(AppendError::Store(_))));
    let stream = log.read_stream("test", "m", 0).await?;
    assert_eq!(
        stream.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(log.head_position().await?, 3);
    t.cleanup().await
}

async fn concurrent_writers_and_a_catch_up_reader_see_every_event_once_in_order(
    backend: Backend,
) -> anyhow::Result<()> {
    const WRITERS: usize = 24;
    const COMMANDS_EACH: usize = 60;
    const STREAMS: usize = 8; // few streams, so writers collide and retry
    let (t, log) = open(backend).await?;

    // The reader follows the log while it is written, as a projector does,
    // until told the final head.
    let (stop_at, mut stop_rx) = tokio::sync::watch::channel(None::<i64>);
    let reader = {
        let log = log.clone();
        tokio::spawn(async move {
            let mut wake = log.subscribe();
            let mut seen: Vec<StoredEvent> = Vec::new();
            loop {
                let after = seen.last().map_or(0, |e| e.global_position);
                let page = log.read_from(after, 37).await?;
                if let Some(first) = page.first() {
                    anyhow::ensure!(
                        first.global_position == after + 1,
                        "reader saw position {} right after {after}: a gap",
                        first.global_position
                    );
                    seen.extend(page);
                    continue;
                }
                if matches!(*stop_rx.borrow(), Some(head) if after >= head) {
                    return Ok::<_, anyhow::Error>(seen);
                }
                tokio::select! {
                    _ = wake.changed() => {}
                    _ = stop_rx.changed() => {}
                    _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                }
            }
        })
    };

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let log = log.clone();
        writers.push(tokio::spawn(async move {
            let mut committed: Vec<(i64, i64, String)> = Vec::new();
            for c in 0..COMMANDS_EACH {
                let stream = format!("s{}", (w * 7 + c) % STREAMS);
                let marker = format!("w{w}c{c}");
                let events = if c % 5 == 0 { 3 } else { 1 };
                let payloads: Vec<_> = (0..events).map(|i| json!({"m": marker, "i": i})).collect();
                loop {
                    let current = log.read_stream("test", &stream, 0).await?;
                    let expected = current.last().map_or(0, |e| e.sequence);
                    match log.append(request(&stream, expected, &payloads)).await {
                        Ok(a) => {
                            committed.push((a.first_position, a.last_position, marker));
                            break;
                        }
                        Err(AppendError::Conflict { .. }) => continue,
                        Err(e) => return Err(anyhow::Error::from(e)),
                    }
                }
            }
            Ok::<_, anyhow::Error>(committed)
        }));
    }
    let mut committed = Vec::new();
    for w in writers {
        committed.extend(w.await??);
    }
    let head = log.head_position().await?;
    stop_at.send_replace(Some(head));
    let seen = tokio::time::timeout(std::time::Duration::from_secs(120), reader).await???;

    let expected_events: usize = (0..WRITERS)
        .flat_map(|_| (0..COMMANDS_EACH).map(|c| if c % 5 == 0 { 3 } else { 1 }))
        .sum();
    assert_eq!(head as usize, expected_events);
    // Positions 1..N, no gaps, no repeats, in order.
    let positions: Vec<i64> = seen.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, (1..=head).collect::<Vec<_>>());
    // Every committed command's events, exactly once, where the writer was told.
    let mut by_position = std::collections::HashMap::new();
    for e in &seen {
        let v: serde_json::Value = serde_json::from_str(&e.payload)?;
        by_position.insert(e.global_position, v["m"].as_str().unwrap_or("").to_owned());
    }
    let mut markers = HashSet::new();
    for (first, last, marker) in &committed {
        assert!(markers.insert(marker.clone()), "{marker} committed twice");
        for p in *first..=*last {
            assert_eq!(by_position.get(&p), Some(marker), "position {p}");
        }
    }
    assert_eq!(markers.len(), WRITERS * COMMANDS_EACH);
    // Per stream, sequences are 1..n in position order.
    let mut per_stream: std::collections::HashMap<&str, i64> = Default::default();
    for e in &seen {
        let s = per_stream.entry(e.aggregate_id.as_str()).or_default();
        *s += 1;
        assert_eq!(e.sequence, *s);
    }
    verify_run((0, chain::GENESIS.to_vec()), &seen)?;
    t.cleanup().await
}

async fn update_and_delete_on_events_are_refused(backend: Backend) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    log.append(request("a", 0, &[json!(1)])).await?;
    let statements = [
        "UPDATE events SET payload = '2' WHERE global_position = 1",
        "UPDATE events SET actor_id = 'someone-else'",
        "DELETE FROM events WHERE global_position = 1",
        "DELETE FROM events",
    ];
    for sql in statements {
        let result = match &t.db {
            Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        };
        let err = result.expect_err(sql).to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    if let Db::Postgres(p) = &t.db {
        let err = sqlx::query("TRUNCATE events")
            .execute(p)
            .await
            .expect_err("truncate");
        assert!(err.to_string().contains("append-only"), "{err}");
        // The application role may append and read but holds no UPDATE or
        // DELETE privilege, whatever the triggers say.
        let mut tx = p.begin().await?;
        sqlx::query("SET LOCAL ROLE anamnesis_app")
            .execute(&mut *tx)
            .await?;
        let err = sqlx::query("UPDATE events SET reason = 'x'")
            .execute(&mut *tx)
            .await
            .expect_err("update as app role");
        assert!(err.to_string().contains("permission denied"), "{err}");
        tx.rollback().await?;
        let privileges: Vec<String> = sqlx::query_scalar(
            "SELECT privilege_type::text FROM information_schema.role_table_grants \
             WHERE grantee = 'anamnesis_app' AND table_name = 'events' ORDER BY 1",
        )
        .fetch_all(p)
        .await?;
        assert_eq!(privileges, vec!["INSERT", "SELECT"]);
    }
    let stream = log.read_stream("test", "a", 0).await?;
    assert_eq!((stream.len(), stream[0].payload.as_str()), (1, "1"));
    t.cleanup().await
}

async fn the_hash_chain_links_every_event(backend: Backend) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    for i in 0..20 {
        let stream = format!("h{}", i % 3);
        let expected = log.read_stream("test", &stream, 0).await?.len() as i64;
        log.append(request(
            &stream,
            expected,
            &[json!({"i": i}), json!({"j": i})],
        ))
        .await?;
    }
    let events = all_events(&log).await?;
    assert_eq!(events.len(), 40);
    assert_eq!(events[0].prev_hash, chain::GENESIS.to_vec());
    for pair in events.windows(2) {
        assert_eq!(
            pair[1].prev_hash, pair[0].hash,
            "at {}",
            pair[1].global_position
        );
    }
    verify_run((0, chain::GENESIS.to_vec()), &events)?;
    // Verification notices an altered copy, a dropped event and a swap.
    let mut altered = events.clone();
    altered[7].payload = r#"{"i":99}"#.into();
    assert!(matches!(
        verify_run((0, chain::GENESIS.to_vec()), &altered),
        Err(chain::ChainBreak::Altered { position: 8, ref stored, .. }) if *stored == events[7].hash
    ));
    let mut dropped = events.clone();
    dropped.remove(5);
    assert!(verify_run((0, chain::GENESIS.to_vec()), &dropped).is_err());
    let mut swapped = events.clone();
    swapped.swap(3, 4);
    assert!(verify_run((0, chain::GENESIS.to_vec()), &swapped).is_err());
    // The head row carries the last hash.
    let head_hash: Vec<u8> = match &t.db {
        Db::Postgres(p) => {
            sqlx::query_scalar("SELECT hash FROM log_head")
                .fetch_one(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_scalar("SELECT hash FROM log_head")
                .fetch_one(p)
                .await?
        }
    };
    assert_eq!(Some(&head_hash), events.last().map(|e| &e.hash));
    t.cleanup().await
}

async fn an_event_without_an_actor_is_refused(backend: Backend) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    let mut req = request("a", 0, &[json!(1)]);
    req.metadata.actor = Actor::new("", "doctor");
    assert!(matches!(
        log.append(req).await,
        Err(AppendError::Invalid(_))
    ));
    let mut req = request("a", 0, &[json!(1)]);
    req.metadata.actor = Actor::new("user-1", " ");
    assert!(matches!(
        log.append(req).await,
        Err(AppendError::Invalid(_))
    ));
    // The database refuses one too, should any code path skip the check.
    let sql = "INSERT INTO events (global_position, event_id, aggregate_type, aggregate_id, \
               sequence, event_type, event_version, payload, metadata, recorded_at, actor_id, \
               actor_role, prev_hash, hash) VALUES (1, $1, 't', 'a', 1, 'x', '1', '{}', '{}', \
               $2, '', 'doctor', $3, $3)";
    let now = chrono::Utc::now();
    let zero = vec![0u8; 32];
    let refused = match &t.db {
        Db::Postgres(p) => sqlx::query(sql)
            .bind(uuid::Uuid::now_v7())
            .bind(now)
            .bind(&zero)
            .execute(p)
            .await
            .is_err(),
        Db::Sqlite(p) => sqlx::query(sql)
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(now)
            .bind(&zero)
            .execute(p)
            .await
            .is_err(),
    };
    assert!(refused);
    assert_eq!(log.head_position().await?, 0);
    t.cleanup().await
}

async fn a_database_with_a_newer_schema_is_refused(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::new(backend).await?;
    // Migrating again is a no-op.
    t.db.migrate().await?;
    // A later binary applied a migration this one does not know.
    let sql =
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
               VALUES (99990101000000, 'from the future', true, $1, 0)";
    match &t.db {
        Db::Postgres(p) => sqlx::query(sql)
            .bind(vec![0u8; 48])
            .execute(p)
            .await?
            .rows_affected(),
        Db::Sqlite(p) => sqlx::query(sql)
            .bind(vec![0u8; 48])
            .execute(p)
            .await?
            .rows_affected(),
    };
    let refused = t.db.migrate().await;
    assert!(
        matches!(
            refused,
            Err(anamnesis_commands::DbError::SchemaTooNew {
                version: 99990101000000
            })
        ),
        "{refused:?}"
    );
    t.cleanup().await
}

async fn an_atomic_group_across_streams_commits_all_or_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    let landed = log
        .append_atomic(vec![
            request("a", 0, &[json!(1)]),
            request("b", 0, &[json!(2), json!(3)]),
        ])
        .await?;
    assert_eq!(
        landed.iter().map(|a| a.last_position).collect::<Vec<_>>(),
        vec![1, 3]
    );
    // The second request is stale: the first is not written either.
    let refused = log
        .append_atomic(vec![
            request("c", 0, &[json!(4)]),
            request("a", 0, &[json!(5)]),
        ])
        .await;
    assert!(
        matches!(refused, Err(AppendError::Conflict { .. })),
        "{refused:?}"
    );
    assert!(log.read_stream("test", "c", 0).await?.is_empty());
    // Groups and single commands queued together: each group stands or falls alone.
    let (good, bad, single) = tokio::join!(
        log.append_atomic(vec![
            request("d", 0, &[json!(6)]),
            request("e", 0, &[json!(7)])
        ]),
        log.append_atomic(vec![
            request("f", 0, &[json!(8)]),
            request("b", 0, &[json!(9)])
        ]),
        log.append(request("g", 0, &[json!(10)])),
    );
    assert!(good.is_ok() && bad.is_err() && single.is_ok());
    assert!(log.read_stream("test", "f", 0).await?.is_empty());
    let positions: Vec<i64> = all_events(&log)
        .await?
        .iter()
        .map(|e| e.global_position)
        .collect();
    assert_eq!(positions, (1..=6).collect::<Vec<_>>());
    t.cleanup().await
}

fn key(value: &str) -> UniqueKey {
    UniqueKey {
        scope: "test.key",
        key: value.to_owned(),
    }
}

fn claiming(stream: &str, expected: i64, claim: &[&str], release: &[&str]) -> AppendRequest {
    let mut r = request(stream, expected, &[json!({"n": 1})]);
    r.keys = KeyChanges {
        claim: claim.iter().map(|k| key(k)).collect(),
        release: release.iter().map(|k| key(k)).collect(),
    };
    r
}

async fn a_unique_key_is_held_by_one_stream_even_within_one_batch(
    backend: Backend,
) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    // Three commands in one transaction claim one key: the first wins, the
    // others fail alone, and a command claiming another key goes on.
    let results = log
        .append_many(vec![
            claiming("a", 0, &["K"], &[]),
            claiming("b", 0, &["K"], &[]),
            claiming("c", 0, &["L"], &[]),
            claiming("d", 0, &["K", "M"], &[]),
        ])
        .await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(matches!(
        results[1],
        Err(AppendError::Taken { scope: "test.key" })
    ));
    assert!(results[2].is_ok());
    assert!(matches!(results[3], Err(AppendError::Taken { .. })));
    // M was not claimed by the failed command: another stream may take it.
    log.append(claiming("e", 0, &["M"], &[])).await?;
    // The holder may claim again what it holds (an update that keeps it).
    log.append(claiming("a", 1, &["K"], &[])).await?;
    // Released, then taken by another, in one batch and in order.
    let results = log
        .append_many(vec![
            claiming("a", 2, &[], &["K"]),
            claiming("b", 0, &["K"], &[]),
        ])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(matches!(
        log.append(claiming("a", 3, &["K"], &[])).await,
        Err(AppendError::Taken { .. })
    ));
    // A release by a stream that does not hold the key changes nothing.
    log.append(claiming("c", 1, &[], &["K"])).await?;
    assert!(matches!(
        log.append(claiming("f", 0, &["K"], &[])).await,
        Err(AppendError::Taken { .. })
    ));
    t.cleanup().await
}

async fn the_head_cannot_be_moved_away_from_the_last_event(backend: Backend) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    log.append(request("a", 0, &[json!({"n": 1}), json!({"n": 2})]))
        .await?;
    for attack in [
        "UPDATE log_head SET position = 1",
        "UPDATE log_head SET position = 3",
        "UPDATE log_head SET hash = prev_hash_of_nothing",
    ] {
        let sql = attack.replace(
            "prev_hash_of_nothing",
            "(SELECT prev_hash FROM events WHERE global_position = 2)",
        );
        let refused = match &t.db {
            Db::Postgres(p) => sqlx::query(&sql).execute(p).await.is_err(),
            Db::Sqlite(p) => sqlx::query(&sql).execute(p).await.is_err(),
        };
        assert!(refused, "{attack} was allowed");
    }
    assert_eq!(log.head_position().await?, 2);
    log.check_head().await?;
    log.append(request("a", 2, &[json!({"n": 3})])).await?;
    t.cleanup().await
}

/// A command on `stream` that needs `fenced` still at sequence `at`.
fn fencing(stream: &str, expected: i64, fenced: &str, at: i64) -> AppendRequest {
    let mut r = request(stream, expected, &[json!({"n": 1})]);
    r.guards.streams.push(StreamAt {
        aggregate_type: "test".into(),
        aggregate_id: fenced.into(),
        sequence: at,
    });
    r
}

/// A command on `stream` that needs `keys` held by no other stream.
fn needing_free(stream: &str, expected: i64, keys: &[&str]) -> AppendRequest {
    let mut r = request(stream, expected, &[json!({"n": 1})]);
    r.guards.free = keys.iter().map(|k| key(k)).collect();
    r
}

async fn a_fence_on_an_unmoved_stream_commits(backend: Backend) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    // A stream with no events is at sequence 0.
    log.append(fencing("a", 0, "provider", 0)).await?;
    log.append(request("provider", 0, &[json!("hours")]))
        .await?;
    log.append(fencing("b", 0, "provider", 1)).await?;
    // Nothing is written to the fenced stream.
    assert_eq!(log.read_stream("test", "provider", 0).await?.len(), 1);
    assert_eq!(log.head_position().await?, 3);
    t.cleanup().await
}

async fn a_fence_on_a_moved_stream_conflicts_and_writes_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    log.append(request("provider", 0, &[json!("hours")]))
        .await?;
    log.append(request("provider", 1, &[json!("closure")]))
        .await?;
    let stale = log.append(fencing("a", 0, "provider", 1)).await;
    assert!(
        matches!(
            &stale,
            Err(AppendError::Conflict { aggregate_id, expected: 1, actual: 2, .. })
                if aggregate_id == "provider"
        ),
        "{stale:?}"
    );
    // In an atomic unit, the fence fails the other requests too.
    let stale = log
        .append_atomic(vec![
            request("b", 0, &[json!(1)]),
            fencing("a", 0, "provider", 1),
        ])
        .await;
    assert!(
        matches!(stale, Err(AppendError::Conflict { .. })),
        "{stale:?}"
    );
    assert!(log.read_stream("test", "a", 0).await?.is_empty());
    assert!(log.read_stream("test", "b", 0).await?.is_empty());
    assert_eq!(log.head_position().await?, 2);
    // A fence at a negative sequence is refused before it reaches the writer.
    assert!(matches!(
        log.append(fencing("a", 0, "provider", -1)).await,
        Err(AppendError::Invalid(_))
    ));
    t.cleanup().await
}

async fn appends_fencing_one_stream_do_not_conflict_with_each_other(
    backend: Backend,
) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    log.append(request("provider", 0, &[json!("hours")]))
        .await?;
    // Two bookings of one provider, one after the other and in one batch.
    log.append(fencing("a", 0, "provider", 1)).await?;
    log.append(fencing("b", 0, "provider", 1)).await?;
    let results = log
        .append_many(vec![
            fencing("c", 0, "provider", 1),
            fencing("d", 0, "provider", 1),
            fencing("a", 1, "provider", 1),
        ])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(log.read_stream("test", "provider", 0).await?.len(), 1);
    assert_eq!(log.head_position().await?, 6);
    t.cleanup().await
}

async fn a_key_that_must_be_free_is_taken_when_another_stream_holds_it(
    backend: Backend,
) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    log.append(claiming("appointment", 0, &["K"], &[])).await?;
    let refused = log.append(needing_free("provider", 0, &["L", "K"])).await;
    assert!(
        matches!(refused, Err(AppendError::Taken { scope: "test.key" })),
        "{refused:?}"
    );
    assert!(log.read_stream("test", "provider", 0).await?.is_empty());
    assert_eq!(log.head_position().await?, 1);
    // The check claimed nothing: L is free, and K still the appointment's.
    assert_eq!(log.claim_holder(&key("L")).await?, None);
    assert_eq!(
        log.claim_holder(&key("K")).await?,
        Some(("test".into(), "appointment".into()))
    );
    // Two checks of one free key do not collide (overlapping closures).
    let results = log
        .append_many(vec![
            needing_free("provider", 0, &["L"]),
            needing_free("other-provider", 0, &["L"]),
        ])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    log.append(needing_free("provider", 1, &["L"])).await?;
    assert_eq!(log.claim_holder(&key("L")).await?, None);
    t.cleanup().await
}

async fn a_key_is_free_when_unheld_held_by_the_appender_or_released_earlier_in_the_unit(
    backend: Backend,
) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    log.append(needing_free("provider", 0, &["K"])).await?;
    log.append(claiming("appointment", 0, &["K"], &[])).await?;
    // Held by the appending stream itself.
    log.append(needing_free("appointment", 1, &["K"])).await?;
    // Released after the check, in the same unit: still held when checked.
    let refused = log
        .append_atomic(vec![
            needing_free("provider", 1, &["K"]),
            claiming("appointment", 2, &[], &["K"]),
        ])
        .await;
    assert!(
        matches!(refused, Err(AppendError::Taken { .. })),
        "{refused:?}"
    );
    // Released before the check, in the same unit (a cancellation).
    log.append_atomic(vec![
        claiming("appointment", 2, &[], &["K"]),
        needing_free("provider", 1, &["K"]),
    ])
    .await?;
    assert_eq!(log.claim_holder(&key("K")).await?, None);
    assert_eq!(log.head_position().await?, 5);
    t.cleanup().await
}

async fn a_later_unit_in_a_batch_sees_an_earlier_units_claim_and_append(
    backend: Backend,
) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    // One transaction, in queue order: checks before the claim and the
    // append pass, checks after them fail, and each failure fails alone.
    let results = log
        .append_many(vec![
            needing_free("x", 0, &["K"]),
            fencing("y", 0, "provider", 0),
            claiming("appointment", 0, &["K"], &[]),
            request("provider", 0, &[json!("closure")]),
            needing_free("z", 0, &["K"]),
            fencing("w", 0, "provider", 0),
            fencing("v", 0, "provider", 1),
        ])
        .await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(results[1].is_ok(), "{:?}", results[1]);
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert!(results[3].is_ok(), "{:?}", results[3]);
    assert!(
        matches!(results[4], Err(AppendError::Taken { .. })),
        "{:?}",
        results[4]
    );
    assert!(
        matches!(
            results[5],
            Err(AppendError::Conflict {
                expected: 0,
                actual: 1,
                ..
            })
        ),
        "{:?}",
        results[5]
    );
    assert!(results[6].is_ok(), "{:?}", results[6]);
    assert!(log.read_stream("test", "z", 0).await?.is_empty());
    assert!(log.read_stream("test", "w", 0).await?.is_empty());
    let positions: Vec<i64> = all_events(&log)
        .await?
        .iter()
        .map(|e| e.global_position)
        .collect();
    assert_eq!(positions, (1..=5).collect::<Vec<_>>());
    t.cleanup().await
}

async fn claim_holders_names_each_stream_holding_any_of_the_keys(
    backend: Backend,
) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    assert!(log.claim_holders(&[]).await?.is_empty());
    log.append(claiming("a", 0, &["K1", "K2"], &[])).await?;
    log.append(claiming("b", 0, &["K3"], &[])).await?;
    log.append(claiming("c", 0, &["K4"], &[])).await?;
    let holders = log
        .claim_holders(&[key("K2"), key("K1"), key("K3"), key("free"), key("K1")])
        .await?;
    assert_eq!(
        holders,
        vec![("test".into(), "a".into()), ("test".into(), "b".into())]
    );
    // A few thousand keys (more than one SQLite statement binds), held at
    // the far end of the list.
    let mut r = request("granules", 0, &[json!({"n": 1})]);
    r.keys.claim = (2_900..3_000).map(|i| key(&format!("g{i}"))).collect();
    log.append(r).await?;
    let wanted: Vec<UniqueKey> = (0..3_000).map(|i| key(&format!("g{i}"))).collect();
    assert_eq!(
        log.claim_holders(&wanted).await?,
        vec![("test".into(), "granules".into())]
    );
    t.cleanup().await
}

async fn stream_ids_lists_the_streams_of_one_type(backend: Backend) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    let reader = log.reader();
    assert!(reader.stream_ids("test").await?.is_empty());
    log.append(request("b", 0, &[json!(1), json!(2)])).await?;
    log.append(request("a", 0, &[json!(3)])).await?;
    log.append(request("b", 2, &[json!(4)])).await?;
    let mut other = request("z", 0, &[json!(5)]);
    other.aggregate_type = "other".into();
    log.append(other).await?;
    assert_eq!(reader.stream_ids("test").await?, vec!["a", "b"]);
    assert_eq!(reader.stream_ids("other").await?, vec!["z"]);
    assert!(reader.stream_ids("none").await?.is_empty());
    t.cleanup().await
}

/// A read of some types over more positions than one query spans (Postgres
/// reads in windows of 10,000 positions, ADR 0014) returns exactly what a
/// plain scan of the log finds, in order, cut at the limit wherever the limit
/// falls: mid-window, at a window's edge, or past the last match.
async fn a_read_of_some_types_over_a_long_stretch_matches_a_plain_scan(
    backend: Backend,
) -> anyhow::Result<()> {
    let (t, log) = open(backend).await?;
    let other = |stream: &str| {
        let mut r = request(stream, 0, &[json!({"other": true})]);
        r.aggregate_type = "other".into();
        r
    };
    log.append(other("o1")).await?;
    for chunk in 0..25 {
        let payloads: Vec<serde_json::Value> = (0..1_000).map(|n| json!({"n": n})).collect();
        log.append(request(&format!("s{chunk}"), 0, &payloads))
            .await?;
        if chunk == 12 {
            log.append(other("o2")).await?;
        }
    }
    log.append(other("o3")).await?;
    // A reader of the database only: nothing is answered from memory.
    let reader = LogReader::detached(t.db.clone());
    let head = reader.head().await?;
    assert_eq!(head, 25_003);
    let scan = reader.read_from(0, head).await?;
    assert_eq!(scan.len(), 25_003);
    let cases: [(&[&str], (i64, i64), i64); 7] = [
        (&["other"], (0, head), 100),
        (&["other"], (1, head), 1),
        (&[], (0, head), 12_345),
        (&[], (0, head), 10_000),
        (&["test"], (3, head - 5), 30_000),
        (&["test", "other"], (9_999, 20_001), 10_001),
        (&["none"], (0, head), 10),
    ];
    for (types, (after, until), limit) in cases {
        let wanted: Vec<i64> = scan
            .iter()
            .filter(|e| e.global_position > after && e.global_position <= until)
            .filter(|e| types.is_empty() || types.contains(&e.aggregate_type.as_str()))
            .take(limit as usize)
            .map(|e| e.global_position)
            .collect();
        for payload in [false, true] {
            let got: Vec<i64> = reader
                .read_types(types, (after, until), limit, payload)
                .await?
                .iter()
                .map(|e| e.global_position)
                .collect();
            assert_eq!(
                got, wanted,
                "types {types:?}, range ({after}, {until}], limit {limit}, payload {payload}"
            );
        }
    }
    t.cleanup().await
}

/// The projectors of a process read what its writer appended from memory
/// (ADR 0007): the events must be exactly those the database gives, sealed
/// payloads opened, headers-only reads blank, and a patient's payloads read
/// as erased once the erasure is committed.
async fn reads_of_what_this_process_appended_match_the_database(
    backend: Backend,
) -> anyhow::Result<()> {
    let t = TestDb::new(backend).await?;
    let keyring = anamnesis_tests::server::test_keyring()?;
    let log = EventLog::open_with(t.db.clone(), keyring.clone()).await?;
    let memory = log.reader();
    let database = LogReader::detached_with(t.db.clone(), keyring);
    let (ada, bo) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let about = |stream: &str, patient: uuid::Uuid, n: i64| {
        let mut r = request(
            stream,
            0,
            &[json!({"n": n, "name": "Ada \u{e9}"}), json!({"n": n + 1})],
        );
        r.patient_id = Some(patient);
        r.metadata.reason = Some("care".into());
        r
    };
    // Several writers at once, so that batches hold several units.
    let appends = [
        about("a", ada, 1),
        about("b", bo, 3),
        request("c", 0, &[json!({"plain": true})]),
        about("d", ada, 5),
    ]
    .into_iter()
    .map(|r| {
        let log = log.clone();
        tokio::spawn(async move { log.append(r).await })
    })
    .collect::<Vec<_>>();
    for a in appends {
        a.await??;
    }
    let head = memory.head().await?;
    assert_eq!(head, 7);
    let stored = log.read_from(0, 100).await?;
    assert!(
        stored.iter().filter(|e| e.payload.contains("Ada")).count() == 0,
        "payloads about a patient are stored sealed"
    );
    let compare = |types: &'static [&'static str], range: (i64, i64), limit: i64, payload: bool| {
        let (memory, database) = (memory.clone(), database.clone());
        async move {
            let (m, d) = (
                memory.read_types(types, range, limit, payload).await?,
                database.read_types(types, range, limit, payload).await?,
            );
            assert_eq!(
                m, d,
                "types {types:?}, range {range:?}, limit {limit}, payload {payload}"
            );
            anyhow::Ok(m)
        }
    };
    let all = compare(&[], (0, head), 100, true).await?;
    assert_eq!(all.len(), 7);
    assert!(all.iter().any(|e| e.payload.contains("Ada")), "opened");
    compare(&[], (0, head), 100, false).await?;
    compare(&["test"], (2, 6), 3, true).await?;
    compare(&["other"], (0, head), 100, true).await?;

    // Erase Ada: from the erasure's commit on, her payloads read as erased.
    let mut erasure = request(&ada.to_string(), 0, &[json!({})]);
    erasure.aggregate_type = "patient".into();
    erasure.events[0].event_type = anamnesis_domain::subject::ERASURE_EVENT.into();
    erasure.patient_id = Some(ada);
    log.append(erasure).await?;
    let after = compare(&[], (0, head + 1), 100, true).await?;
    let erased: Vec<i64> = after
        .iter()
        .filter(|e| e.payload == anamnesis_domain::codec::ERASED_PAYLOAD)
        .map(|e| e.global_position)
        .collect();
    assert_eq!(erased.len(), 4, "Ada's four events: {erased:?}");
    // What comes after the erasure is read from memory again.
    log.append(about("e", bo, 7)).await?;
    compare(&["test"], (head + 1, head + 3), 100, true).await?;
    Ok(())
}

async fn reading_many_streams_at_once_matches_reading_each(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::new(backend).await?;
    let keyring = anamnesis_tests::server::test_keyring()?;
    let log = EventLog::open_with(t.db.clone(), keyring).await?;
    let ada = uuid::Uuid::now_v7();
    let mut sealed = request("a", 0, &[json!({"name": "Ada"}), json!({"n": 2})]);
    sealed.patient_id = Some(ada);
    log.append(sealed).await?;
    log.append(request("b", 0, &[json!({"n": 1})])).await?;
    // Another type under the same id: not one of the streams asked for.
    let mut other = request("a", 0, &[json!({"n": 9})]);
    other.aggregate_type = "other".into();
    log.append(other).await?;
    let mut later = request("a", 2, &[json!({"name": "Ada", "n": 3})]);
    later.patient_id = Some(ada);
    log.append(later).await?;
    log.append(request("c", 0, &[json!({"n": 1}), json!({"n": 2})]))
        .await?;
    log.append(request("b", 1, &[json!({"n": 2})])).await?;

    // More ids than one SQLite statement binds, most of them no stream.
    let mut ids: Vec<String> = (0..1_200).map(|n| format!("none-{n}")).collect();
    ids.extend(["c", "a", "b"].map(String::from));
    let together = log.read_streams("test", &ids).await?;
    let mut each = Vec::new();
    for id in ["a", "b", "c"] {
        each.extend(log.read_stream("test", id, 0).await?);
    }
    each.sort_by_key(|e| e.global_position);
    assert_eq!(together, each);
    assert_eq!(together.len(), 7);
    assert!(
        together.iter().any(|e| e.payload.contains("Ada")),
        "sealed payloads come opened"
    );
    assert!(log.read_streams("test", &[]).await?.is_empty());
    t.cleanup().await
}
