//! The catch-up runner, killed inside a batch and restarted, holds each event once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::Duration;

use anamnesis_commands::{Actor, AppendRequest, Db, EventLog, EventMetadata, NewEvent};
use anamnesis_projections::activity::Activity;
use anamnesis_projections::runner::{
    self, checkpoint, Cursor, Envelope, ProjectionError, Projector, RunnerConfig, Stepped, Tx,
    Unread,
};
use anamnesis_tests::db::{Backend, TestDb};
use anamnesis_tests::on_both_backends;
use tokio::sync::watch;

on_both_backends!(
    patients_replay,
    death_then_update,
    registration_twice,
    entry_twice,
    booking_unplaced,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_runner_killed_mid_stream_resumes_without_loss_or_repeat() {
    killed_mid_stream(Backend::Postgres).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_runner_killed_mid_stream_resumes_without_loss_or_repeat() {
    killed_mid_stream(Backend::Sqlite).await.unwrap()
}

/// The real projector, which stops for good inside the batch that reaches
/// `hold_at`, after writing it, and says so: the kill lands inside an open
/// transaction by construction, not by timing.
struct Held {
    hold_at: i64,
    inside: tokio::sync::mpsc::UnboundedSender<i64>,
}

impl Projector for Held {
    type Event = Unread;

    fn name(&self) -> &'static str {
        Activity.name()
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        Activity.aggregate_types()
    }

    fn tables(&self) -> &'static [&'static str] {
        Activity.tables()
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<Unread>],
    ) -> Result<(), ProjectionError> {
        Activity.apply_batch(tx, events).await?;
        if events.iter().any(|e| e.position() >= self.hold_at) {
            let _ = self.inside.send(events[0].position());
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn erase(&self, tx: &mut Tx, patient: uuid::Uuid) -> Result<(), ProjectionError> {
        Activity.erase(tx, patient).await
    }
}

async fn append_events(log: &EventLog, prefix: &str, commands: usize) -> anyhow::Result<()> {
    let requests = (0..commands)
        .map(|i| AppendRequest {
            aggregate_type: "test".into(),
            aggregate_id: format!("{prefix}{i}"),
            expected_sequence: 0,
            events: (0..1 + i % 3)
                .map(|j| NewEvent {
                    event_type: "test.happened".into(),
                    event_version: "1".into(),
                    payload: serde_json::json!({ "j": j }),
                })
                .collect(),
            metadata: EventMetadata::by(Actor::new("user-1", "nurse")),
            keys: Default::default(),
            credential: None,
            mfa: None,
            guards: Default::default(),
            patient_id: None,
        })
        .collect();
    for r in log.append_many(requests).await {
        r?;
    }
    Ok(())
}

async fn activity_positions(db: &Db) -> anyhow::Result<Vec<i64>> {
    let sql = "SELECT global_position FROM activity ORDER BY global_position";
    Ok(match db {
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
    })
}

async fn wait_for(progress: &mut watch::Receiver<i64>, at_least: i64) -> anyhow::Result<()> {
    tokio::time::timeout(
        Duration::from_secs(60),
        progress.wait_for(|p| *p >= at_least),
    )
    .await??;
    Ok(())
}

async fn killed_mid_stream(backend: Backend) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let t = TestDb::new(backend).await?;
    let log = EventLog::open(t.db.clone()).await?;
    append_events(&log, "a", 300).await?;
    let head = log.head_position().await?;
    assert_eq!(head, 600);

    let config = RunnerConfig {
        batch_size: 25,
        ..RunnerConfig::default()
    };
    let (_stop, shutdown) = watch::channel(false);
    let (progress_tx, _progress) = watch::channel(0);
    let (inside_tx, mut inside) = tokio::sync::mpsc::unbounded_channel();
    let held = Held {
        hold_at: 101,
        inside: inside_tx,
    };
    let task = tokio::spawn(runner::run(
        log.reader(),
        t.db.clone(),
        held,
        config,
        progress_tx,
        shutdown.clone(),
    ));
    let batch_start = tokio::time::timeout(Duration::from_secs(60), inside.recv())
        .await?
        .expect("the projector reached the held batch");
    // Kill it: no shutdown signal, the task is dropped inside the batch's
    // open transaction, its rows written but not committed.
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));

    let committed = checkpoint(&t.db, "activity").await?;
    assert_eq!(committed, batch_start - 1, "only whole batches before it");
    assert_eq!(committed, 100, "batches of 25 from 1");
    // What was committed is exactly the prefix up to the checkpoint.
    assert_eq!(
        activity_positions(&t.db).await?,
        (1..=committed).collect::<Vec<_>>()
    );

    // The log grows while the projector is down.
    append_events(&log, "b", 50).await?;
    let head = log.head_position().await?;

    let (progress_tx, mut progress) = watch::channel(0);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(runner::run(
        log.reader(),
        t.db.clone(),
        Activity,
        RunnerConfig::default(),
        progress_tx,
        shutdown,
    ));
    wait_for(&mut progress, head).await?;
    // New events after the restart are picked up too (woken, not polled).
    append_events(&log, "c", 10).await?;
    let head = log.head_position().await?;
    wait_for(&mut progress, head).await?;
    stop.send_replace(true);
    tokio::time::timeout(Duration::from_secs(10), task).await??;

    assert_eq!(
        activity_positions(&t.db).await?,
        (1..=head).collect::<Vec<_>>()
    );
    assert_eq!(checkpoint(&t.db, "activity").await?, head);
    // Each row matches its event.
    let events = log.read_from(0, head).await?;
    let sql = "SELECT aggregate_id FROM activity ORDER BY global_position";
    let ids: Vec<String> = match &t.db {
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_all(p).await?,
    };
    assert_eq!(
        ids,
        events
            .iter()
            .map(|e| e.aggregate_id.clone())
            .collect::<Vec<_>>()
    );
    // Caught up: one more step finds nothing to do.
    let mut cursor = Cursor::at(head);
    assert_eq!(
        runner::step(&log.reader(), &t.db, &Activity, &mut cursor, 100).await?,
        Stepped::CaughtUp(head)
    );
    drop(log);
    t.cleanup().await
}

/// Builds the patients read model, rewinds its checkpoint to 0 (as a crash
/// between output and checkpoint never can, but a careless rebuild might) and
/// replays everything: the guards keep every row as it was.
async fn patients_replay(backend: Backend) -> anyhow::Result<()> {
    use anamnesis_commands::dispatch::CommandBus;
    use anamnesis_domain::patient::{DemographicsInput, Patient, PatientCommand, Severity, Sex};
    use anamnesis_projections::patients::{self, Patients, Search};

    let t = TestDb::new(backend).await?;
    let bus = CommandBus::new(EventLog::open(t.db.clone()).await?);
    let meta = EventMetadata::by(Actor::new("u-1", "doctor"));
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let input = |family: &str, mrn: &str| DemographicsInput {
        family_name: family.into(),
        given_name: "Ada".into(),
        birth_date: chrono::NaiveDate::from_ymd_opt(1985, 12, 10).unwrap(),
        sex: Some(Sex::Female),
        identifiers: vec![("mrn".into(), mrn.into())],
        ..DemographicsInput::default()
    };
    let id = uuid::Uuid::now_v7().to_string();
    let register = PatientCommand::Register {
        demographics: input("Byron", "M-1"),
        user_id: None,
        today,
    };
    bus.create::<Patient>(&id, register, &(), &meta).await?;
    let update = PatientCommand::UpdateDemographics {
        demographics: input("Lovelace", "M-2"),
        today,
    };
    bus.execute::<Patient>(&id, update, &(), &meta).await?;
    let allergy = PatientCommand::RecordAllergy {
        allergy_id: uuid::Uuid::now_v7(),
        substance: "Latex".into(),
        reaction: "rash".into(),
        severity: Severity::Mild,
    };
    bus.execute::<Patient>(&id, allergy, &(), &meta).await?;
    let log = bus.log().clone();
    let catch_up = |mut cursor: Cursor| {
        let (reader, db) = (log.reader(), t.db.clone());
        async move {
            while let Stepped::Advanced(_) =
                runner::step(&reader, &db, &Patients, &mut cursor, 2).await?
            {}
            Ok::<(), ProjectionError>(())
        }
    };
    catch_up(Cursor::at(0)).await?;

    let before = patients::get(&t.db, &id).await?.expect("projected");
    assert_eq!(before.family_name, "Lovelace");
    assert_eq!(before.allergies.as_ref().map(Vec::len), Some(1));
    let by_new_mrn = Search {
        identifier: Some("M-2".into()),
        limit: 10,
        ..Search::default()
    };
    assert_eq!(patients::search(&t.db, &by_new_mrn).await?.0.len(), 1);
    let by_old_mrn = Search {
        identifier: Some("M-1".into()),
        limit: 10,
        ..Search::default()
    };
    assert!(patients::search(&t.db, &by_old_mrn).await?.0.is_empty());

    let rewind = "UPDATE checkpoints SET position = 0 WHERE name = 'patients'";
    match &t.db {
        Db::Postgres(p) => sqlx::query(rewind).execute(p).await?.rows_affected(),
        Db::Sqlite(p) => sqlx::query(rewind).execute(p).await?.rows_affected(),
    };
    catch_up(Cursor::at(0)).await?;
    let after = patients::get(&t.db, &id).await?.expect("still there");
    assert_eq!(
        serde_json::to_value(&after)?,
        serde_json::to_value(&before)?
    );
    assert!(patients::search(&t.db, &by_old_mrn).await?.0.is_empty());
    drop((bus, log));
    t.cleanup().await
}

/// Registration, death and a later demographics update of one patient,
/// folded into one batch: the row ends at the update's position with the
/// update's demographics, and the death is not lost on the way.
async fn death_then_update(backend: Backend) -> anyhow::Result<()> {
    use anamnesis_commands::dispatch::CommandBus;
    use anamnesis_domain::patient::{DemographicsInput, Patient, PatientCommand, Sex};
    use anamnesis_projections::patients::{self, Patients};

    let t = TestDb::new(backend).await?;
    let bus = CommandBus::new(EventLog::open(t.db.clone()).await?);
    let meta = EventMetadata::by(Actor::new("u-1", "doctor"));
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let died = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let input = |family: &str| DemographicsInput {
        family_name: family.into(),
        given_name: "Ada".into(),
        birth_date: chrono::NaiveDate::from_ymd_opt(1985, 12, 10).unwrap(),
        sex: Some(Sex::Female),
        ..DemographicsInput::default()
    };
    let id = uuid::Uuid::now_v7().to_string();
    let register = PatientCommand::Register {
        demographics: input("Byron"),
        user_id: None,
        today,
    };
    bus.create::<Patient>(&id, register, &(), &meta).await?;
    let death = PatientCommand::MarkDeceased {
        deceased_on: died,
        today,
    };
    bus.execute::<Patient>(&id, death, &(), &meta).await?;
    let update = PatientCommand::UpdateDemographics {
        demographics: input("Lovelace"),
        today,
    };
    bus.execute::<Patient>(&id, update, &(), &meta).await?;

    let log = bus.log().clone();
    let mut cursor = Cursor::at(0);
    let stepped = runner::step(&log.reader(), &t.db, &Patients, &mut cursor, 100).await?;
    assert_eq!(stepped, Stepped::Advanced(3), "one batch of all three");
    let shown = patients::get(&t.db, &id).await?.expect("projected");
    assert_eq!(shown.family_name, "Lovelace");
    assert_eq!(shown.deceased_on, Some(died));
    assert_eq!(shown.version, 3);
    drop((bus, log));
    t.cleanup().await
}

/// Registrations in a row are one insert (`sql::Run`): a second
/// registration of one patient inside the run, or of a patient an earlier
/// batch wrote, stops the projector at that event, and the batch writes
/// nothing.
async fn registration_twice(backend: Backend) -> anyhow::Result<()> {
    use anamnesis_domain::codec::StoredForm;
    use anamnesis_domain::patient::{parse_demographics, DemographicsInput, PatientEvent};
    use anamnesis_domain::schedule::ClinicZone;
    use anamnesis_projections::analytics::Analytics;

    let t = TestDb::new(backend).await?;
    let log = EventLog::open(t.db.clone()).await?;
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let input = DemographicsInput {
        family_name: "Byron".into(),
        given_name: "Ada".into(),
        birth_date: chrono::NaiveDate::from_ymd_opt(1985, 12, 10).unwrap(),
        ..DemographicsInput::default()
    };
    let registered = PatientEvent::PatientRegistered {
        demographics: parse_demographics(&input, today).unwrap(),
        user_id: None,
    }
    .to_stored()
    .unwrap();
    let append = |stream: String, sequence: i64| {
        append_raw(&log, "patient", stream, sequence, registered.clone())
    };
    let (a, b) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    append(a.clone(), 0).await?; // 1
    append(b, 0).await?; // 2
    append(a, 1).await?; // 3: A again
    let analytics = Analytics::new(ClinicZone::parse("UTC").unwrap());
    let rows = |db: Db| async move {
        let sql = "SELECT COUNT(*) FROM analytics_patients";
        anyhow::Ok(match db {
            Db::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(&p).await?,
            Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(&p).await?,
        })
    };

    let mut cursor = Cursor::at(0);
    let failed = runner::step(&log.reader(), &t.db, &analytics, &mut cursor, 100).await;
    assert!(
        matches!(failed, Err(ProjectionError::Event { position: 3, .. })),
        "stopped at the second registration: {failed:?}"
    );
    assert_eq!(checkpoint(&t.db, analytics.name()).await?, 0);
    assert_eq!(rows(t.db.clone()).await?, 0, "the batch wrote nothing");

    // A alone in a first batch; then B and A again: A is in the table.
    let mut cursor = Cursor::at(0);
    let stepped = runner::step_until(&log.reader(), &t.db, &analytics, &mut cursor, 100, 1).await?;
    assert_eq!(stepped, Stepped::Advanced(1));
    assert_eq!(rows(t.db.clone()).await?, 1);
    let failed = runner::step(&log.reader(), &t.db, &analytics, &mut cursor, 100).await;
    assert!(
        matches!(failed, Err(ProjectionError::Event { position: 3, .. })),
        "stopped at the registration an earlier batch wrote: {failed:?}"
    );
    assert_eq!(checkpoint(&t.db, analytics.name()).await?, 1);
    assert_eq!(rows(t.db.clone()).await?, 1, "B was not written either");
    drop(log);
    t.cleanup().await
}

/// Appends `event` to stream `stream` of `aggregate_type` at `sequence`, as
/// a damaged or forged log could hold it (the write side never appends a
/// creation twice).
async fn append_raw(
    log: &EventLog,
    aggregate_type: &str,
    stream: String,
    sequence: i64,
    event: anamnesis_domain::codec::Encoded,
) -> anyhow::Result<()> {
    log.append_many(vec![AppendRequest {
        aggregate_type: aggregate_type.into(),
        aggregate_id: stream,
        expected_sequence: sequence,
        events: vec![NewEvent {
            event_type: event.event_type,
            event_version: event.event_version,
            payload: event.payload,
        }],
        metadata: EventMetadata::by(Actor::new("u-1", "doctor")),
        keys: Default::default(),
        credential: None,
        mfa: None,
        guards: Default::default(),
        patient_id: None,
    }])
    .await
    .remove(0)?;
    Ok(())
}

/// Entries created in a batch are written at its end: a second creation of
/// one entry in the batch, or of an entry an earlier batch wrote, stops the
/// chart at that event, and the batch writes nothing; a signature in the
/// batch of the creation lands on the row.
async fn entry_twice(backend: Backend) -> anyhow::Result<()> {
    use anamnesis_domain::chart::{Diagnosis, DiagnosisStatus, EntryBody, EntryEvent, Origin};
    use anamnesis_domain::codec::StoredForm;
    use anamnesis_projections::chart::Chart;

    let t = TestDb::new(backend).await?;
    let log = EventLog::open(t.db.clone()).await?;
    let recorded = EntryEvent::Recorded {
        origin: Origin {
            patient_id: uuid::Uuid::now_v7(),
            author: uuid::Uuid::now_v7(),
        },
        body: EntryBody::Diagnosis(Diagnosis {
            description: "Type 2 diabetes".into(),
            icd10: Some("E11.9".into()),
            status: DiagnosisStatus::Active,
            onset: None,
        }),
    }
    .to_stored()
    .unwrap();
    let signed = EntryEvent::Signed {
        at: chrono::Utc::now(),
    }
    .to_stored()
    .unwrap();
    let (a, b) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    append_raw(&log, "chart_entry", a.clone(), 0, recorded.clone()).await?; // 1
    append_raw(&log, "chart_entry", a.clone(), 1, signed).await?; // 2
    append_raw(&log, "chart_entry", b, 0, recorded.clone()).await?; // 3
    append_raw(&log, "chart_entry", a, 2, recorded).await?; // 4: A again
    let rows = |db: Db| async move {
        let sql = "SELECT COUNT(*) FROM chart_entries";
        anyhow::Ok(match db {
            Db::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(&p).await?,
            Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(&p).await?,
        })
    };

    let mut cursor = Cursor::at(0);
    let failed = runner::step(&log.reader(), &t.db, &Chart, &mut cursor, 100).await;
    assert!(
        matches!(failed, Err(ProjectionError::Event { position: 4, .. })),
        "stopped at the second creation: {failed:?}"
    );
    assert_eq!(checkpoint(&t.db, Chart.name()).await?, 0);
    assert_eq!(rows(t.db.clone()).await?, 0, "the batch wrote nothing");

    // A, created and signed, alone in a first batch; then B and A again.
    let mut cursor = Cursor::at(0);
    let stepped = runner::step_until(&log.reader(), &t.db, &Chart, &mut cursor, 100, 2).await?;
    assert_eq!(stepped, Stepped::Advanced(2));
    let sql = "SELECT status || ' ' || CAST(versions AS TEXT) FROM chart_entries";
    let row: String = match &t.db {
        Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
    };
    assert_eq!(row, "signed 1", "the signature folded into the new row");
    let failed = runner::step(&log.reader(), &t.db, &Chart, &mut cursor, 100).await;
    assert!(
        matches!(failed, Err(ProjectionError::Event { position: 4, .. })),
        "stopped at the creation of an entry an earlier batch wrote: {failed:?}"
    );
    assert_eq!(checkpoint(&t.db, Chart.name()).await?, 2);
    assert_eq!(rows(t.db.clone()).await?, 1, "B was not written either");
    drop(log);
    t.cleanup().await
}

/// Bookings of a batch are written at its end, with the provider's
/// specialty joined in: a booking of a provider analytics does not hold
/// stops it at that booking, however many events of the batch followed
/// it; a booking checked in in the same batch lands with its status.
async fn booking_unplaced(backend: Backend) -> anyhow::Result<()> {
    use anamnesis_domain::codec::StoredForm;
    use anamnesis_domain::schedule::{
        AppointmentEvent, Booking, ClinicZone, Period, Profile, ProviderEvent, ProviderKind,
    };
    use anamnesis_projections::analytics::Analytics;

    let t = TestDb::new(backend).await?;
    let log = EventLog::open(t.db.clone()).await?;
    let (known, unknown) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let enrolled = ProviderEvent::Enrolled {
        profile: Profile {
            user_id: uuid::Uuid::now_v7(),
            kind: ProviderKind::Doctor,
            display_name: "Dr Lovelace".into(),
            specialty: "Cardiology".into(),
            default_minutes: 30,
        },
    }
    .to_stored()
    .unwrap();
    let start = chrono::Utc::now() + chrono::Duration::days(7);
    let booked = |provider_id| {
        AppointmentEvent::Booked {
            booking: Booking {
                provider_id,
                patient_id: uuid::Uuid::now_v7(),
                period: Period {
                    start,
                    end: start + chrono::Duration::minutes(30),
                },
                reason_for_visit: "Check-up".into(),
                overbook_reason: None,
            },
        }
        .to_stored()
        .unwrap()
    };
    let checked_in = AppointmentEvent::CheckedIn {
        at: chrono::Utc::now(),
    }
    .to_stored()
    .unwrap();
    let (a, b) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    append_raw(&log, "provider", known.to_string(), 0, enrolled).await?; // 1
    append_raw(&log, "appointment", a.clone(), 0, booked(known)).await?; // 2
    append_raw(&log, "appointment", a, 1, checked_in.clone()).await?; // 3
    append_raw(&log, "appointment", b.clone(), 0, booked(unknown)).await?; // 4
    append_raw(&log, "appointment", b, 1, checked_in).await?; // 5
    let analytics = Analytics::new(ClinicZone::parse("UTC").unwrap());
    let rows = |db: Db| async move {
        let sql = "SELECT specialty || ' ' || status FROM analytics_appointments";
        anyhow::Ok(match db {
            Db::Postgres(p) => sqlx::query_scalar::<_, String>(sql).fetch_all(&p).await?,
            Db::Sqlite(p) => sqlx::query_scalar::<_, String>(sql).fetch_all(&p).await?,
        })
    };

    let mut cursor = Cursor::at(0);
    let failed = runner::step(&log.reader(), &t.db, &analytics, &mut cursor, 100).await;
    assert!(
        matches!(failed, Err(ProjectionError::Event { position: 4, .. })),
        "stopped at the booking of a provider analytics does not hold: {failed:?}"
    );
    assert_eq!(checkpoint(&t.db, analytics.name()).await?, 0);
    assert!(
        rows(t.db.clone()).await?.is_empty(),
        "the batch wrote nothing"
    );

    let mut cursor = Cursor::at(0);
    let stepped = runner::step_until(&log.reader(), &t.db, &analytics, &mut cursor, 100, 3).await?;
    assert_eq!(stepped, Stepped::Advanced(3));
    assert_eq!(
        rows(t.db.clone()).await?,
        vec!["cardiology checked_in".to_owned()]
    );
    drop(log);
    t.cleanup().await
}
