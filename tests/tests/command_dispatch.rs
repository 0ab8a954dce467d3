//! Command dispatch over the real log: conflicts are retried against the
//! reloaded aggregate; the cqrs-es repository interface works over the log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::HashMap;

use anamnesis_commands::dispatch::{CommandBus, CommandError};
use anamnesis_commands::{Actor, EventLog, EventMetadata};
use anamnesis_domain::patient::{DemographicsInput, Patient, PatientCommand, PatientError, Sex};
use anamnesis_tests::cqrs_repository::LogRepository;
use anamnesis_tests::db::{Backend, TestDb};
use chrono::NaiveDate;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework};

fn demographics(family_name: &str) -> DemographicsInput {
    DemographicsInput {
        family_name: family_name.into(),
        given_name: "Ada".into(),
        birth_date: NaiveDate::from_ymd_opt(1985, 12, 10).unwrap(),
        sex: Some(Sex::Female),
        ..DemographicsInput::default()
    }
}

fn register(today: NaiveDate) -> PatientCommand {
    PatientCommand::Register {
        demographics: demographics("Lovelace"),
        user_id: None,
        today,
    }
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_racing_commands_on_one_record_are_decided_one_at_a_time() {
    racing(Backend::Postgres).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_racing_commands_on_one_record_are_decided_one_at_a_time() {
    racing(Backend::Sqlite).await.unwrap()
}

/// Twenty clerks register the same patient at once: one registration wins;
/// the others, retried after their conflict, see the record and are refused.
async fn racing(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::new(backend).await?;
    let bus = CommandBus::new(EventLog::open(t.db.clone()).await?);
    let id = uuid::Uuid::now_v7().to_string();
    let meta = EventMetadata::by(Actor::new("clerk", "staff"));
    let attempts = (0..20).map(|_| {
        let (bus, id, meta) = (bus.clone(), id.clone(), meta.clone());
        tokio::spawn(async move {
            bus.execute::<Patient>(&id, register(today()), &(), &meta)
                .await
        })
    });
    let mut won = 0;
    for a in futures::future::join_all(attempts).await {
        match a? {
            Ok(done) => {
                won += 1;
                assert_eq!(done.events, 1);
            }
            Err(CommandError::Rejected(PatientError::AlreadyRegistered)) => {}
            Err(CommandError::Conflict) => {}
            Err(other) => anyhow::bail!("unexpected: {other}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(bus.log().read_stream("patient", &id, 0).await?.len(), 1);
    // The optimistic create path skips the read; on an existing stream its
    // append conflicts and the command is decided against the loaded record.
    let again = bus
        .create::<Patient>(&id, register(today()), &(), &meta)
        .await;
    assert!(
        matches!(
            again,
            Err(CommandError::Rejected(PatientError::AlreadyRegistered))
        ),
        "{again:?}"
    );
    let fresh = uuid::Uuid::now_v7().to_string();
    let created = bus
        .create::<Patient>(&fresh, register(today()), &(), &meta)
        .await?;
    assert_eq!(created.events, 1);
    assert_eq!(bus.log().read_stream("patient", &id, 0).await?.len(), 1);
    // A rule violation writes nothing.
    let bad = bus
        .execute::<Patient>(
            "someone-else",
            PatientCommand::Register {
                demographics: demographics(" "),
                user_id: None,
                today: today(),
            },
            &(),
            &meta,
        )
        .await;
    assert!(matches!(
        bad,
        Err(CommandError::Rejected(PatientError::EmptyField(
            "family_name"
        )))
    ));
    assert_eq!(bus.log().head_position().await?, 2);
    drop(bus);
    t.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_cqrs_es_framework_runs_over_the_log() {
    cqrs_framework(Backend::Postgres).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_cqrs_es_framework_runs_over_the_log() {
    cqrs_framework(Backend::Sqlite).await.unwrap()
}

async fn cqrs_framework(backend: Backend) -> anyhow::Result<()> {
    let t = TestDb::new(backend).await?;
    let log = EventLog::open(t.db.clone()).await?;
    let store = PersistedEventStore::<_, Patient>::new_event_store(LogRepository::new(log.clone()));
    let cqrs = CqrsFramework::new(store, vec![], ());
    let metadata = HashMap::from([
        ("actor_id".to_owned(), "u-7".to_owned()),
        ("actor_role".to_owned(), "staff".to_owned()),
        ("request_id".to_owned(), "req-1".to_owned()),
    ]);
    cqrs.execute_with_metadata("p-1", register(today()), metadata)
        .await?;
    let again = cqrs
        .execute_with_metadata(
            "p-1",
            register(today()),
            HashMap::from([
                ("actor_id".to_owned(), "u-7".to_owned()),
                ("actor_role".to_owned(), "staff".to_owned()),
            ]),
        )
        .await;
    assert!(matches!(
        again,
        Err(AggregateError::UserError(PatientError::AlreadyRegistered))
    ));
    // Without an actor the log refuses the event.
    let anonymous = cqrs.execute("p-2", register(today())).await;
    assert!(anonymous.is_err());

    let stored = log.read_stream("patient", "p-1", 0).await?;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].actor_id.as_str(), stored[0].actor_role.as_str()),
        ("u-7", "staff")
    );
    assert_eq!(stored[0].metadata, r#"{"request_id":"req-1"}"#);
    assert_eq!(stored[0].event_type, "patient.registered");
    assert_eq!(log.head_position().await?, 1);
    drop((cqrs, log));
    t.cleanup().await
}
