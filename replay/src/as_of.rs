//! A patient's whole record as it was known at a position or a time, folded
//! from the log by the live projectors (the same code that builds the live
//! read models) into a private in-memory database, and read back with the
//! live queries. A domain is covered once its projector is listed in
//! [`fold`] and its events name the patient.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use anamnesis_commands::{Db, LogReader, StoredEvent};
use anamnesis_projections::billing::{self, BillQuery, BillSummary, Billing, CoverageView};
use anamnesis_projections::chart::{self, Chart, EntryView, MemberView, Timeline};
use anamnesis_projections::medications::{self, MedicationView, Medications};
use anamnesis_projections::messaging::{self, Messaging, ThreadRecord};
use anamnesis_projections::patients::{self, PatientView, Patients};
use anamnesis_projections::runner::{self, Projector, Tx};
use anamnesis_projections::schedule::{self, AppointmentFilter, AppointmentRow, Schedule};

use crate::{ReplayError, PAGE};

/// Where to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Everything committed at or before this global position.
    Position(i64),
    /// Everything recorded at or before this time.
    Time(DateTime<Utc>),
}

/// The record as it was known at a point.
#[derive(Debug, Clone, Serialize)]
pub struct AsOf {
    /// The last event about the patient that is included (0: none).
    pub position: i64,
    /// When that event was recorded.
    pub recorded_at: Option<DateTime<Utc>>,
    /// Demographics, allergies, history; `None` before registration.
    pub patient: Option<PatientView>,
    /// Every appointment, with its status then.
    pub appointments: Vec<AppointmentRow>,
    /// The chart: each entry's then-current version (not those entered
    /// in error by then), newest first.
    pub chart: Vec<EntryView>,
    /// The care team by assignment then.
    pub care_team: Vec<MemberView>,
    /// Every medication order, as then in effect (active first).
    pub medications: Vec<MedicationView>,
    /// Message threads about the patient, with their messages and read
    /// receipts then.
    pub threads: Vec<ThreadRecord>,
    /// Every bill, with its balance then, newest date of service first.
    pub bills: Vec<BillSummary>,
    /// The coverage on record then.
    pub coverage: Vec<CoverageView>,
}

/// Folds every event about `patient` up to `point`.
pub async fn as_of(reader: &LogReader, patient: Uuid, point: Point) -> Result<AsOf, ReplayError> {
    let head = reader.head().await?;
    let until = match point {
        Point::Position(p) => p.min(head),
        Point::Time(_) => head,
    };
    let scratch = Db::scratch()
        .await
        .map_err(|e| ReplayError::Scratch(e.to_string()))?;
    let mut result = AsOf {
        position: 0,
        recorded_at: None,
        patient: None,
        appointments: Vec::new(),
        chart: Vec::new(),
        care_team: Vec::new(),
        medications: Vec::new(),
        threads: Vec::new(),
        bills: Vec::new(),
        coverage: Vec::new(),
    };
    let mut after = 0;
    loop {
        let mut page = reader.read_patient(patient, (after, until), PAGE).await?;
        let full = page.len() as i64 == PAGE;
        let Some(last) = page.last() else { break };
        after = last.global_position;
        let mut done = false;
        if let Point::Time(t) = point {
            if let Some(cut) = page.iter().position(|e| e.recorded_at > t) {
                page.truncate(cut);
                done = true;
            }
        }
        if let Some(last) = page.last() {
            result.position = last.global_position;
            result.recorded_at = Some(last.recorded_at);
        }
        fold(&scratch, &page).await?;
        if done || !full {
            break;
        }
    }
    let id = patient.to_string();
    result.patient = patients::get(&scratch, &id).await?;
    let filter = AppointmentFilter {
        patient_id: Some(id),
        limit: i64::MAX / 2,
        ..Default::default()
    };
    result.appointments = schedule::appointments(&scratch, &filter).await?.0;
    let timeline = Timeline {
        patient_id: patient.to_string(),
        limit: i64::MAX / 2,
        ..Default::default()
    };
    result.chart = chart::timeline(&scratch, &timeline).await?.0;
    result.care_team = chart::members(&scratch, &patient.to_string()).await?;
    result.medications = medications::list(&scratch, &patient.to_string(), false).await?;
    result.threads = messaging::patient_threads(&scratch, &patient.to_string()).await?;
    let bills = BillQuery {
        patient_id: Some(patient.to_string()),
        limit: i64::MAX / 2,
        ..Default::default()
    };
    result.bills = billing::bills(&scratch, &bills).await?.0;
    result.coverage = billing::coverage_of(&scratch, &patient.to_string()).await?;
    scratch.close().await;
    Ok(result)
}

/// Applies a page of events with every projector of patient data.
async fn fold(db: &Db, page: &[StoredEvent]) -> Result<(), ReplayError> {
    apply(db, &Patients, page).await?;
    apply(db, &Schedule, page).await?;
    apply(db, &Chart, page).await?;
    apply(db, &Medications, page).await?;
    apply(db, &Messaging, page).await?;
    apply(db, &Billing, page).await?;
    Ok(())
}

/// Applies the events of `projector`'s aggregate types, decoded as it reads them.
async fn apply<P: Projector>(
    db: &Db,
    projector: &P,
    page: &[StoredEvent],
) -> Result<(), ReplayError> {
    let types = projector.aggregate_types();
    let mine: Vec<StoredEvent> = page
        .iter()
        .filter(|e| {
            types.is_empty()
                || types.contains(&e.aggregate_type.as_str())
                || e.event_type == anamnesis_domain::subject::ERASURE_EVENT
        })
        .cloned()
        .collect();
    // An erased patient's events read as nothing, and their erasure empties
    // the record: the same parts the live projectors are handed.
    let (parts, failed) = runner::decode_parts::<P::Event>(types, mine);
    if let Some((position, e)) = failed {
        return Err(ReplayError::Unreadable {
            position,
            detail: e.to_string(),
        });
    }
    if parts.is_empty() {
        return Ok(());
    }
    let Db::Sqlite(pool) = db else {
        return Err(ReplayError::Scratch(
            "the scratch database is SQLite".into(),
        ));
    };
    let mut tx = Tx::Sqlite(pool.begin().await?);
    runner::apply_parts(projector, &mut tx, &parts)
        .await
        .map_err(|e| ReplayError::Projection(e.to_string()))?;
    match tx {
        Tx::Sqlite(t) => t.commit().await?,
        Tx::Postgres(t) => t.commit().await?,
    }
    Ok(())
}
