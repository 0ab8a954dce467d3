//! Scheduling commands that span streams (ADR 0008).
//!
//! A booking appends to its appointment's stream only, claiming the
//! appointment's period on the provider's and the patient's calendars (unique
//! keys, one per five minutes): two overlapping bookings cannot both commit.
//! It is decided against the provider's hours and time off and the clinic's
//! holidays as loaded from their streams, and it fences both streams: if
//! either moved before the booking commits, the booking is decided again.
//! A closure appends to the provider's (or the clinic's) stream and checks
//! that no appointment holds a key in its period; over bookings it is
//! refused with their ids, or cancels them in the same atomic append.
//!
//! A booking's first attempt decides on the provider's, the clinic's and the
//! patient's state as this process last read them ([`Scheduler`] keeps them
//! with their streams' sequences) and fences those sequences: if any stream
//! moved, the append conflicts and the next attempt reads them afresh. A stale
//! cache costs a retry, never a wrong booking; a warm one saves four reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use anamnesis_domain::patient::Patient;
use anamnesis_domain::schedule::{
    Appointment, AppointmentCommand, Calendar, ClinicCalendar, ClinicCommand, ClinicZone, Closure,
    ClosureSpan, PatientStanding, Period, Provider, ProviderCommand, ScheduleError,
    CLINIC_CALENDAR_ID, PROVIDER_SCOPE,
};
use anamnesis_domain::unique::UniqueKey;
use cqrs_es::Aggregate;

use crate::dispatch::{retry_or_fail, CommandBus, CommandError, Decision, Executed, MAX_ATTEMPTS};
use crate::log::{AppendError, AppendRequest, Appended, EventMetadata, StreamAt};

type Result<T> = std::result::Result<T, CommandError<ScheduleError>>;

/// An aggregate as loaded: its state, its stream's sequence and the
/// position of its last event ([`CommandBus::load`]).
pub type Loaded<A> = (A, i64, i64);

/// A booking as requested.
#[derive(Debug, Clone)]
pub struct BookingRequest {
    pub provider_id: Uuid,
    pub patient_id: Uuid,
    pub starts_at: DateTime<Utc>,
    /// `None`: the provider's default appointment length.
    pub ends_at: Option<DateTime<Utc>>,
    pub reason_for_visit: String,
    /// Staff only: book over the provider's other appointments.
    pub overbook_reason: Option<String>,
    /// Whether the provider's user account is active, as the caller
    /// looked it up (a deactivated provider is not booked).
    pub provider_active: bool,
}

/// A closure as requested.
#[derive(Debug, Clone)]
pub struct ClosureRequest {
    pub closure_id: Uuid,
    /// `None`: a clinic-wide holiday.
    pub provider_id: Option<Uuid>,
    pub span: ClosureSpan,
    pub reason: String,
    /// Cancel the appointments it covers instead of refusing.
    pub cancel_affected: bool,
}

/// What adding a closure did.
#[derive(Debug, Clone)]
pub struct ClosureAdded {
    pub executed: Executed,
    /// The appointments it cancelled.
    pub cancelled: Vec<Uuid>,
}

/// What a booking needs to know of a patient's record.
fn standing_of(patient: &Patient) -> PatientStanding {
    if !patient.is_registered() {
        PatientStanding::Unknown
    } else if patient.is_deceased() {
        PatientStanding::Deceased
    } else {
        PatientStanding::Registered
    }
}

/// Runs scheduling commands in the clinic's time zone.
#[derive(Clone)]
pub struct Scheduler {
    bus: CommandBus,
    zone: ClinicZone,
    seen: Arc<Mutex<Seen>>,
    /// Held while a stream missing from `seen` is read on a first attempt:
    /// a storm of bookings on a cold process reads each provider's and the
    /// clinic's stream once, not once per booking.
    cold: Arc<tokio::sync::Mutex<()>>,
    /// Patients' streams waiting to be read together.
    gather: Arc<Gather>,
}

/// Reads of patients' standing that wait together (ADR 0008). Each caller
/// queues its patient, then takes its turn; a turn reads every patient
/// queued by then in one read of the log and answers them all. While one
/// read is under way the next callers queue behind it, so a storm of
/// bookings by patients this process has not seen reads the log a few times,
/// not once per booking, and a lone booking waits for no one.
#[derive(Default)]
struct Gather {
    queue: Mutex<Vec<(Uuid, Answer)>>,
    turn: tokio::sync::Mutex<()>,
}

/// A patient's standing and stream sequence, or `None`: read it alone.
type Answer = tokio::sync::oneshot::Sender<Option<(PatientStanding, i64)>>;

/// Patients read together at most.
const GATHERED_AT_MOST: usize = 1_000;

/// Patients remembered at most; beyond it the memory starts over.
const PATIENTS_REMEMBERED: usize = 50_000;

/// What this process last read of the streams a booking depends on, with
/// each stream's sequence then: decisions on it are fenced at that sequence.
#[derive(Default)]
struct Seen {
    providers: HashMap<Uuid, (Provider, i64)>,
    /// Each enrolled provider's user account, which never changes: kept
    /// apart from `providers`, whose state and sequence go stale.
    accounts: HashMap<Uuid, Uuid>,
    clinic: Option<(ClinicCalendar, i64)>,
    patients: HashMap<Uuid, (PatientStanding, i64)>,
}

/// Whether to trust what was seen, or read the streams again.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Read {
    Seen,
    Fresh,
}

/// A provider's calendar as loaded, with the sequences to fence.
struct LoadedCalendar {
    provider: Provider,
    provider_sequence: i64,
    calendar: Calendar,
    fences: Vec<StreamAt>,
}

impl Scheduler {
    pub fn new(bus: CommandBus, zone: ClinicZone) -> Self {
        Self {
            bus,
            zone,
            seen: Arc::default(),
            cold: Arc::default(),
            gather: Arc::default(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic while holding the lock leaves plain data behind: usable.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The user account of provider `id` (`None`: no such provider). A
    /// provider's account never changes, so what was seen answers.
    pub async fn provider_user(&self, id: Uuid) -> Result<Option<Uuid>> {
        if let Some(user) = self.seen().accounts.get(&id) {
            return Ok(Some(*user));
        }
        let (provider, _, _) = self.bus.load::<Provider>(&id.to_string()).await?;
        let user = provider.profile().map(|p| p.user_id);
        if let Some(user) = user {
            self.seen().accounts.insert(id, user);
        }
        Ok(user)
    }

    async fn provider(&self, id: Uuid, read: Read) -> Result<(Provider, i64)> {
        let _cold = if read == Read::Seen {
            if let Some(seen) = self.seen().providers.get(&id) {
                return Ok(seen.clone());
            }
            let cold = self.cold.lock().await;
            // Another booking may have read it while this one waited.
            if let Some(seen) = self.seen().providers.get(&id) {
                return Ok(seen.clone());
            }
            Some(cold)
        } else {
            None
        };
        let (provider, sequence, _) = self.bus.load::<Provider>(&id.to_string()).await?;
        if provider.profile().is_some() {
            self.seen()
                .providers
                .insert(id, (provider.clone(), sequence));
        }
        Ok((provider, sequence))
    }

    async fn clinic(&self, read: Read) -> Result<(ClinicCalendar, i64)> {
        let _cold = if read == Read::Seen {
            if let Some(seen) = &self.seen().clinic {
                return Ok(seen.clone());
            }
            let cold = self.cold.lock().await;
            if let Some(seen) = &self.seen().clinic {
                return Ok(seen.clone());
            }
            Some(cold)
        } else {
            None
        };
        let (clinic, sequence, _) = self.bus.load::<ClinicCalendar>(CLINIC_CALENDAR_ID).await?;
        self.seen().clinic = Some((clinic.clone(), sequence));
        Ok((clinic, sequence))
    }

    /// The clinic's zone.
    pub fn zone(&self) -> ClinicZone {
        self.zone
    }

    /// A provider's state and calendar (hours, time off, clinic holidays),
    /// read from the log.
    pub async fn calendar(&self, provider_id: Uuid) -> Result<(Provider, Calendar)> {
        let loaded = self.load_calendar(provider_id, Read::Fresh).await?;
        Ok((loaded.provider, loaded.calendar))
    }

    async fn load_calendar(&self, provider_id: Uuid, read: Read) -> Result<LoadedCalendar> {
        let (provider, p_seq) = self.provider(provider_id, read).await?;
        let (clinic, c_seq) = self.clinic(read).await?;
        let mut closures: Vec<Closure> = provider.time_off().to_vec();
        closures.extend(clinic.holidays().iter().cloned());
        let calendar = Calendar {
            zone: self.zone,
            availability: provider.availability().cloned(),
            closures,
        };
        let fences = vec![
            StreamAt {
                aggregate_type: Provider::TYPE.to_owned(),
                aggregate_id: provider_id.to_string(),
                sequence: p_seq,
            },
            StreamAt {
                aggregate_type: ClinicCalendar::TYPE.to_owned(),
                aggregate_id: CLINIC_CALENDAR_ID.to_owned(),
                sequence: c_seq,
            },
        ];
        Ok(LoadedCalendar {
            provider,
            provider_sequence: p_seq,
            calendar,
            fences,
        })
    }

    /// Whether the patient can be booked, and their stream's sequence then.
    async fn patient_standing(
        &self,
        patient_id: Uuid,
        read: Read,
    ) -> Result<(PatientStanding, i64)> {
        if read == Read::Seen {
            if let Some(seen) = self.seen().patients.get(&patient_id) {
                return Ok(*seen);
            }
        }
        let (standing, sequence) = match self.read_together(patient_id).await {
            Some(read) => read,
            None => {
                // The shared read failed, or this stream does not fold: read
                // it alone, for its own answer or its own error.
                let (patient, sequence, _) = self
                    .bus
                    .load::<Patient>(&patient_id.to_string())
                    .await
                    .map_err(|e| e.map_rejected(|_| ScheduleError::UnknownPatient))?;
                (standing_of(&patient), sequence)
            }
        };
        let mut seen = self.seen();
        if seen.patients.len() >= PATIENTS_REMEMBERED {
            seen.patients.clear();
        }
        seen.patients.insert(patient_id, (standing, sequence));
        Ok((standing, sequence))
    }

    /// Patient `patient_id`'s standing and stream sequence, read with those
    /// of every other patient queued by the time this caller's turn comes
    /// ([`Gather`]); `None` when that read failed or this stream did not
    /// fold.
    async fn read_together(&self, patient_id: Uuid) -> Option<(PatientStanding, i64)> {
        // A panic while holding the queue's lock leaves plain data behind.
        let queue = || self.gather.queue.lock().unwrap_or_else(|e| e.into_inner());
        let (answer, mut answered) = tokio::sync::oneshot::channel();
        queue().push((patient_id, answer));
        loop {
            tokio::select! {
                biased;
                // Answered by another caller's turn: no need to wait for one.
                read = &mut answered => return read.ok().flatten(),
                turn = self.gather.turn.lock() => {
                    let _turn = turn;
                    let waiting: Vec<(Uuid, Answer)> = {
                        let mut queued = queue();
                        let take = queued.len().min(GATHERED_AT_MOST);
                        queued.drain(..take).collect()
                    };
                    if waiting.is_empty() {
                        continue;
                    }
                    let mut ids: Vec<String> =
                        waiting.iter().map(|(p, _)| p.to_string()).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    let loaded = match self.bus.load_many::<Patient>(&ids).await {
                        Ok(loaded) => Some(loaded),
                        Err(error) => {
                            // Each booking then reads its patient alone and
                            // fails, if it does, with its own error.
                            tracing::warn!(%error, patients = ids.len(), "shared read of patients failed");
                            None
                        }
                    };
                    for (patient, answer) in waiting {
                        let read = loaded
                            .as_ref()
                            .and_then(|l| l.get(&patient.to_string()))
                            .and_then(|r| r.as_ref().ok())
                            .map(|(p, sequence, _)| (standing_of(p), *sequence));
                        let _ = answer.send(read);
                    }
                }
            }
        }
    }

    /// Books appointment `id` (a fresh id).
    pub async fn book(
        &self,
        id: Uuid,
        request: BookingRequest,
        metadata: &EventMetadata,
        now: DateTime<Utc>,
    ) -> Result<Executed> {
        let mut read = Read::Seen;
        for _ in 0..MAX_ATTEMPTS {
            let (patient, patient_sequence) =
                self.patient_standing(request.patient_id, read).await?;
            let mut loaded = self.load_calendar(request.provider_id, read).await?;
            loaded.fences.push(StreamAt {
                aggregate_type: Patient::TYPE.to_owned(),
                aggregate_id: request.patient_id.to_string(),
                sequence: patient_sequence,
            });
            let profile = loaded.provider.profile().cloned();
            let ends_at = request.ends_at.unwrap_or_else(|| {
                let minutes = profile.as_ref().map_or(0, |p| p.default_minutes);
                request.starts_at + Duration::minutes(minutes)
            });
            let command = AppointmentCommand::Book {
                provider_id: request.provider_id,
                calendar: profile.is_some().then_some(loaded.calendar),
                provider_active: request.provider_active,
                patient_id: request.patient_id,
                patient,
                starts_at: request.starts_at,
                ends_at,
                reason_for_visit: request.reason_for_visit.clone(),
                overbook_reason: request.overbook_reason.clone(),
                now,
            };
            // A fresh id: nothing to load; the append at sequence 0
            // conflicts if the stream exists after all.
            let decided = self
                .bus
                .decide_from(
                    (Appointment::default(), 0, 0),
                    &id.to_string(),
                    command,
                    &(),
                    metadata,
                )
                .await;
            let decided = match (decided, read) {
                // Refused on what this process saw: refuse only on a fresh read.
                (Err(CommandError::Rejected(_)), Read::Seen) => {
                    read = Read::Fresh;
                    continue;
                }
                (decided, _) => decided?,
            };
            let period = Period {
                start: request.starts_at,
                end: ends_at,
            };
            let committed = match (fenced(decided, loaded.fences), &request.overbook_reason) {
                (Decision::Append(booking), Some(_)) => {
                    let noted = (loaded.provider, loaded.provider_sequence);
                    let note = self
                        .note_overbooking(noted, request.provider_id, (id, period), metadata)
                        .await?;
                    self.bus
                        .log()
                        .append_atomic(vec![*booking, note])
                        .await
                        .map(|landed| landed_as_executed(&landed))
                }
                (decided, _) => self.bus.commit(decided).await,
            };
            match committed {
                Ok(done) => return Ok(done),
                Err(e) => {
                    retry_or_fail::<ScheduleError>(e)?;
                    read = Read::Fresh;
                }
            }
        }
        Err(CommandError::Conflict)
    }

    /// The provider's note of overbooking `appointment` at `period`, to
    /// append after the booking in one unit: the booking fences the
    /// provider's stream at `sequence`, and the note expects it there.
    async fn note_overbooking(
        &self,
        (provider, sequence): (Provider, i64),
        provider_id: Uuid,
        (appointment_id, period): (Uuid, Period),
        metadata: &EventMetadata,
    ) -> Result<AppendRequest> {
        let mut note_metadata = metadata.clone();
        // The booking answers a retry with the same key; the note rides on it.
        note_metadata.idempotency = None;
        let command = ProviderCommand::RecordOverbooking {
            appointment_id,
            period,
        };
        match self
            .bus
            .decide_from(
                (provider, sequence, 0),
                &provider_id.to_string(),
                command,
                &(),
                &note_metadata,
            )
            .await?
        {
            Decision::Append(note) => Ok(*note),
            Decision::Nothing { .. } => Err(CommandError::Invalid("an overbooking always notes")),
        }
    }

    /// Moves appointment `id` to another time with the same provider: the
    /// old time is released and the new one claimed in one append.
    /// `loaded` is the appointment as the caller read it; later attempts
    /// read it afresh.
    pub async fn reschedule(
        &self,
        loaded: Loaded<Appointment>,
        id: Uuid,
        (starts_at, ends_at): (DateTime<Utc>, Option<DateTime<Utc>>),
        metadata: &EventMetadata,
        now: DateTime<Utc>,
    ) -> Result<Executed> {
        let mut read = Read::Seen;
        let mut first = Some(loaded);
        for _ in 0..MAX_ATTEMPTS {
            let loaded_appointment = match first.take() {
                Some(loaded) => loaded,
                None => self.bus.load::<Appointment>(&id.to_string()).await?,
            };
            let Some(booking) = loaded_appointment.0.booking().cloned() else {
                return Err(CommandError::Rejected(ScheduleError::UnknownAppointment));
            };
            let loaded = self.load_calendar(booking.provider_id, read).await?;
            let ends_at =
                ends_at.unwrap_or(starts_at + (booking.period.end - booking.period.start));
            let command = AppointmentCommand::Reschedule {
                calendar: loaded.calendar,
                starts_at,
                ends_at,
                now,
            };
            let decided = self
                .bus
                .decide_from(loaded_appointment, &id.to_string(), command, &(), metadata)
                .await;
            let decided = match (decided, read) {
                // Refused on what this process saw: refuse only on a fresh read.
                (Err(CommandError::Rejected(_)), Read::Seen) => {
                    read = Read::Fresh;
                    continue;
                }
                (decided, _) => decided?,
            };
            match self.bus.commit(fenced(decided, loaded.fences)).await {
                Ok(done) => return Ok(done),
                Err(e) => {
                    retry_or_fail::<ScheduleError>(e)?;
                    read = Read::Fresh;
                }
            }
        }
        Err(CommandError::Conflict)
    }

    /// Cancels, checks in, starts, completes or marks a no-show.
    /// `loaded` is the appointment as the caller read it (to authorize the
    /// command): it decides the first attempt, so the stream is not read
    /// twice; if it moved since, the command runs again on a fresh read.
    pub async fn appointment(
        &self,
        loaded: Loaded<Appointment>,
        id: Uuid,
        command: AppointmentCommand,
        metadata: &EventMetadata,
    ) -> Result<Executed> {
        let decided = self
            .bus
            .decide_from(loaded, &id.to_string(), command.clone(), &(), metadata)
            .await?;
        match self.bus.commit(decided).await {
            Ok(done) => Ok(done),
            Err(e) => {
                retry_or_fail::<ScheduleError>(e)?;
                self.bus
                    .execute::<Appointment>(&id.to_string(), command, &(), metadata)
                    .await
            }
        }
    }

    /// Adds a provider's time off or a clinic holiday. Over active
    /// appointments it is refused with their ids
    /// ([`ScheduleError::OverBookings`]) unless `cancel_affected`, when each is
    /// cancelled by the clinic, with the closure's reason, in the same commit.
    pub async fn add_closure(
        &self,
        request: ClosureRequest,
        metadata: &EventMetadata,
        now: DateTime<Utc>,
    ) -> Result<ClosureAdded> {
        let closure = Closure::parse(
            request.closure_id,
            request.span.clone(),
            &request.reason,
            self.zone,
            now,
        )
        .map_err(CommandError::Rejected)?;
        for _ in 0..MAX_ATTEMPTS {
            let (decided, keys, overbooked, fences) = match request.provider_id {
                Some(provider_id) => {
                    let command = ProviderCommand::AddTimeOff {
                        closure_id: request.closure_id,
                        span: request.span.clone(),
                        reason: request.reason.clone(),
                        zone: self.zone,
                        now,
                    };
                    let loaded = self.bus.load::<Provider>(&provider_id.to_string()).await?;
                    let overbooked: Vec<Uuid> =
                        loaded.0.overbookings_over(&closure.period).collect();
                    let decided = self
                        .bus
                        .decide_from(loaded, &provider_id.to_string(), command, &(), metadata)
                        .await?;
                    (
                        decided,
                        closure.period.calendar_keys(PROVIDER_SCOPE, provider_id),
                        overbooked,
                        // The closure appends to the provider's stream: an
                        // overbooking noted since conflicts with it.
                        Vec::new(),
                    )
                }
                None => {
                    let command = ClinicCommand::AddHoliday {
                        closure_id: request.closure_id,
                        span: request.span.clone(),
                        reason: request.reason.clone(),
                        zone: self.zone,
                        now,
                    };
                    let decided = self
                        .bus
                        .decide::<ClinicCalendar>(CLINIC_CALENDAR_ID, command, &(), metadata)
                        .await?;
                    let every = self.every_provider(&closure.period).await?;
                    (decided, every.keys, every.overbooked, every.fences)
                }
            };
            let Decision::Append(mut closing) = decided else {
                return Err(CommandError::Invalid("a closure always appends"));
            };
            closing.guards.free = keys.clone();
            closing.guards.streams = fences;
            let overbooked = self.still_held(&overbooked, &closure.period).await?;
            let affected = if overbooked.is_empty() {
                match self.bus.commit(Decision::Append(closing.clone())).await {
                    Ok(executed) => {
                        return Ok(ClosureAdded {
                            executed,
                            cancelled: Vec::new(),
                        })
                    }
                    Err(AppendError::Taken { .. }) => self.holders(&keys).await?,
                    Err(e) => {
                        retry_or_fail::<ScheduleError>(e)?;
                        continue;
                    }
                }
            } else {
                let mut affected = self.holders(&keys).await?;
                affected.extend(overbooked);
                affected.sort();
                affected.dedup();
                affected
            };
            if affected.is_empty() {
                // Released between the check and the lookup: try again.
                continue;
            }
            if !request.cancel_affected {
                return Err(CommandError::Rejected(ScheduleError::OverBookings {
                    appointments: affected,
                }));
            }
            let mut unit: Vec<AppendRequest> = Vec::with_capacity(affected.len() + 1);
            let mut cancel_metadata = metadata.clone();
            cancel_metadata.reason = Some(closure.reason.clone());
            cancel_metadata.idempotency = None;
            for appointment in &affected {
                let command = AppointmentCommand::Cancel {
                    reason: closure.reason.clone(),
                    by_clinic: true,
                    now,
                };
                match self
                    .bus
                    .decide::<Appointment>(&appointment.to_string(), command, &(), &cancel_metadata)
                    .await?
                {
                    Decision::Append(r) => unit.push(*r),
                    Decision::Nothing { .. } => {}
                }
            }
            // The cancellations release the keys before the closure checks them.
            unit.push(*closing);
            match self.bus.log().append_atomic(unit).await {
                Ok(landed) => {
                    return Ok(ClosureAdded {
                        executed: landed_as_executed(&landed),
                        cancelled: affected,
                    });
                }
                // A booking that took a key after the holders were read:
                // read them again.
                Err(AppendError::Taken { .. }) => continue,
                Err(e) => {
                    retry_or_fail::<ScheduleError>(e)?;
                }
            }
        }
        Err(CommandError::Conflict)
    }

    /// Every provider over `period` (a clinic holiday): their calendar keys,
    /// the overbookings their streams noted there, and each stream's
    /// sequence to fence (an overbooking noted since sends the holiday round
    /// again).
    async fn every_provider(&self, period: &Period) -> Result<EveryProvider> {
        let ids = self.bus.log().reader().stream_ids(Provider::TYPE).await?;
        let mut loaded = self.bus.load_many::<Provider>(&ids).await?;
        let mut every = EveryProvider::default();
        for id in ids {
            // Provider streams are named by UUID: another id is damage, and
            // skipping it would leave that provider's bookings unchecked.
            every
                .keys
                .extend(period.calendar_keys(PROVIDER_SCOPE, stream_uuid(&id)?));
            let (provider, sequence, _) = loaded
                .remove(&id)
                .ok_or(CommandError::Invalid("a provider's stream went unread"))??;
            every.overbooked.extend(provider.overbookings_over(period));
            every.fences.push(StreamAt {
                aggregate_type: Provider::TYPE.to_owned(),
                aggregate_id: id,
                sequence,
            });
        }
        Ok(every)
    }

    /// Of the overbookings noted over `period`, those still active there
    /// (not cancelled, finished or moved away since).
    async fn still_held(&self, noted: &[Uuid], period: &Period) -> Result<Vec<Uuid>> {
        if noted.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = noted.iter().map(Uuid::to_string).collect();
        let mut held = Vec::new();
        for (id, loaded) in self.bus.load_many::<Appointment>(&ids).await? {
            let (appointment, _, _) = match loaded {
                Ok(loaded) => loaded,
                // An erased patient's appointments hold no keys any more.
                Err(CommandError::Erased) => continue,
                Err(e) => return Err(e),
            };
            let active = appointment.status().is_active();
            if let Some(booking) = appointment.booking() {
                if active && booking.period.overlaps(period) {
                    held.push(stream_uuid(&id)?);
                }
            }
        }
        held.sort();
        Ok(held)
    }

    /// The appointments holding any of `keys`.
    async fn holders(&self, keys: &[UniqueKey]) -> Result<Vec<Uuid>> {
        let holders = self.bus.log().claim_holders(keys).await?;
        let mut ids: Vec<Uuid> = holders
            .into_iter()
            .filter(|(kind, _)| kind == Appointment::TYPE)
            .map(|(_, id)| stream_uuid(&id))
            .collect::<Result<_>>()?;
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

/// What an atomic unit did: where its last event landed, and how many
/// events it appended.
fn landed_as_executed(landed: &[Appended]) -> Executed {
    Executed {
        position: landed.last().map_or(0, |a| a.last_position),
        events: landed
            .iter()
            .map(|a| usize::try_from(a.last_position - a.first_position + 1).unwrap_or(0))
            .sum(),
    }
}

/// What a clinic holiday checks of every provider.
#[derive(Default)]
struct EveryProvider {
    keys: Vec<UniqueKey>,
    overbooked: Vec<Uuid>,
    fences: Vec<StreamAt>,
}

/// The UUID a scheduling stream is named by; any other name is damage.
fn stream_uuid(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| {
        CommandError::Store(crate::log::StoreError::Damaged(
            "a scheduling stream is not named by a UUID".into(),
        ))
    })
}

/// The decision, committing only if the fenced streams have not moved.
fn fenced(decided: Decision, fences: Vec<StreamAt>) -> Decision {
    match decided {
        Decision::Append(mut request) => {
            request.guards.streams = fences;
            Decision::Append(request)
        }
        nothing => nothing,
    }
}
