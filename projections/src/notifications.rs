//! The in-app inbox (ADR 0019): notifications folded from the log by a
//! projector, so each is made exactly once (the checkpoint moves in the
//! same transaction as the rows) and the same again when rebuilt (ids are
//! `<position>.<n>`). Whom to tell comes from lookup tables the projector
//! folds from the same events (accounts, providers, appointments, thread
//! members, prescribers, compliance officers): it never reads another read
//! model, so its answer does not depend on which projector ran first.
//!
//! A title is generic ("New result"): the notification carries the ids a
//! client follows (through the policy and the access log) for the rest.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use anamnesis_commands::Db;
use anamnesis_domain::chart::{EntryEvent, Kind};
use anamnesis_domain::codec::{DecodeError, StoredForm};
use anamnesis_domain::medication::MedicationEvent;
use anamnesis_domain::messaging::ThreadEvent;
use anamnesis_domain::patient::PatientEvent;
use anamnesis_domain::schedule::{AppointmentEvent, ProviderEvent};
use anamnesis_domain::user::UserEvent;

use crate::chart::Seconds;
use crate::reminders;
use crate::runner::{Decode, Envelope, ProjectionError, Projector, Tx};
use crate::sql::{self, Value};

/// The projector's checkpoint name.
pub const NAME: &str = "notifications";

/// An event of any aggregate the notifier reads.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyEvent {
    User(UserEvent),
    Patient(PatientEvent),
    Provider(ProviderEvent),
    Appointment(AppointmentEvent),
    Entry(EntryEvent),
    Thread(ThreadEvent),
    Medication(MedicationEvent),
}

impl Decode for NotifyEvent {
    fn decode(event_type: &str, version: &str, payload: &str) -> Result<Self, DecodeError> {
        Ok(match event_type.split('.').next().unwrap_or("") {
            "user" => Self::User(UserEvent::from_stored(event_type, version, payload)?),
            "patient" => Self::Patient(PatientEvent::from_stored(event_type, version, payload)?),
            "provider" => Self::Provider(ProviderEvent::from_stored(event_type, version, payload)?),
            "appointment" => {
                Self::Appointment(AppointmentEvent::from_stored(event_type, version, payload)?)
            }
            "chart_entry" => Self::Entry(EntryEvent::from_stored(event_type, version, payload)?),
            "message_thread" => {
                Self::Thread(ThreadEvent::from_stored(event_type, version, payload)?)
            }
            "medication" => {
                Self::Medication(MedicationEvent::from_stored(event_type, version, payload)?)
            }
            _ => {
                return Err(DecodeError::Unknown {
                    event_type: event_type.to_owned(),
                    version: version.to_owned(),
                })
            }
        })
    }
}

/// Makes notifications.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifications;

impl Projector for Notifications {
    type Event = NotifyEvent;

    fn name(&self) -> &'static str {
        NAME
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[
            "user",
            "patient",
            "provider",
            "appointment",
            "chart_entry",
            "message_thread",
            "medication",
        ]
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "notifications",
            "notify_users",
            "notify_accounts",
            "notify_providers",
            "notify_appointments",
            "notify_thread_members",
            "notify_medications",
        ]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<NotifyEvent>],
    ) -> Result<(), ProjectionError> {
        let mut out = Outbox::new("notifications");
        let mut batch = Batch::read(tx, events).await?;
        for e in events {
            apply(tx, &mut out, &mut batch, e).await?;
        }
        batch.write(tx).await?;
        out.write(tx).await
    }

    /// Notifications about the patient (and their reads), the deliveries and
    /// reminders they made, and the routing rows that name the patient go.
    async fn erase(&self, tx: &mut Tx, patient: uuid::Uuid) -> Result<(), ProjectionError> {
        crate::sql::erase_patient(
            tx,
            &[
            "DELETE FROM notification_reads WHERE notification_id IN (SELECT notification_id FROM notifications WHERE patient_id = $1)",
            "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE patient_id = $1)",
            "DELETE FROM deliveries WHERE patient_id = $1",
            "DELETE FROM reminders WHERE patient_id = $1",
            "DELETE FROM notifications WHERE patient_id = $1",
            "DELETE FROM notify_accounts WHERE patient_id = $1",
            "DELETE FROM notify_appointments WHERE patient_id = $1",
            "DELETE FROM notify_medications WHERE patient_id = $1",
            ],
            patient,
        )
        .await?;
        Ok(())
    }
}

/// What a notification says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Note {
    pub(crate) kind: &'static str,
    pub(crate) title: &'static str,
    pub(crate) subject_type: &'static str,
    pub(crate) urgent: bool,
}

pub(crate) const fn note(
    kind: &'static str,
    title: &'static str,
    subject_type: &'static str,
) -> Note {
    Note {
        kind,
        title,
        subject_type,
        urgent: false,
    }
}

const BOOKED: Note = note("appointment_booked", "Appointment booked", "appointment");
const MOVED: Note = note(
    "appointment_rescheduled",
    "Appointment moved",
    "appointment",
);
const CANCELLED: Note = note(
    "appointment_cancelled",
    "Appointment cancelled",
    "appointment",
);
const NEW_RESULT: Note = note("new_result", "New result", "chart_entry");
const MESSAGE: Note = note("new_message", "New message", "thread");
const REFILL_ASKED: Note = note("refill_requested", "Refill requested", "medication");
const REFILL_ANSWERED: Note = note("refill_decided", "Refill request answered", "medication");

fn damaged(e: &Envelope<NotifyEvent>, detail: impl Into<String>) -> ProjectionError {
    ProjectionError::Event {
        position: e.position(),
        detail: detail.into(),
    }
}

async fn one(tx: &mut Tx, sql: &str, params: &[Value]) -> Result<Option<String>, ProjectionError> {
    Ok(sql::returning(tx, sql, params).await?.into_iter().next())
}

async fn all(tx: &mut Tx, sql: &str, params: &[Value]) -> Result<Vec<String>, ProjectionError> {
    Ok(sql::returning(tx, sql, params).await?)
}

/// What a batch knows of the routing tables and what it adds to them,
/// so that a booking costs no statement of its own (ADR 0019):
///
/// - **Read once, at the start**: the account of every patient, the user of
///   every provider, the patient of every appointment and the members of
///   every thread the batch's events will ask for or add, one statement per
///   table. A routing row the batch adds is
///   added here as well, so a later event of the batch finds it as it would
///   in the table.
/// - **Written once, at the end**: the routing rows the batch adds (users,
///   accounts, providers, thread members, prescriptions, bookings) and the
///   bookings' reminders, one statement per table. Until then the batch
///   answers from what it holds (a thread's members, a prescription's
///   prescriber); a statement that must read or change one of those tables
///   first inserts the rows the batch holds for it. A reminder withdrawn in
///   the batch that scheduled it is written withdrawn.
/// - **Withdrawals, once** (Postgres; on SQLite each updates the table at
///   once, `reminders::pending_of` says why): the pending reminders written
///   before the batch, of every appointment its events withdraw reminders
///   of, are read at the start (one statement) and withdrawn here; the end
///   writes them withdrawn (one statement), before the reminders the batch
///   scheduled, so that one moved away and back is pending again, as it
///   would be row by row.
#[derive(Default)]
struct Batch {
    /// Patient → their account (`None`: none).
    accounts: HashMap<String, Option<String>>,
    /// Provider → their user (`None`: not enrolled).
    providers: HashMap<String, Option<String>>,
    /// Appointment → its patient (`None`: not held).
    appointments: HashMap<String, Option<String>>,
    /// `notify_appointments` rows to write.
    booked: Vec<Vec<Value>>,
    /// Reminders to write, in the order scheduled.
    reminders: Vec<reminders::AppointmentReminder>,
    /// Appointments whose reminders are all withdrawn already (checked in,
    /// then started, then completed: one withdrawal, not three). Only a
    /// booking or a move schedules reminders again.
    over: HashSet<String>,
    /// Appointment → its reminders written before the batch and pending
    /// (id, occurrence), for every appointment the batch withdraws from.
    pending: HashMap<String, Vec<(String, i64)>>,
    /// Those the batch withdrew: (reminder id, when).
    withdrawn: Vec<Vec<Value>>,
    /// Thread → its members, for every thread a message of the batch is
    /// posted to: read at the start, joined here as the batch adds them.
    members: HashMap<String, BTreeSet<String>>,
    /// Medication → (patient, prescriber), as the batch prescribed them.
    medications: HashMap<String, (String, String)>,
    /// Rows the batch adds to each routing table, inserted at its end, or
    /// before a statement that reads or changes that table.
    inserts: HashMap<Table, Vec<Vec<Value>>>,
}

impl Batch {
    /// Reads what `events` will ask of the routing tables.
    async fn read(tx: &mut Tx, events: &[Envelope<NotifyEvent>]) -> Result<Self, ProjectionError> {
        use NotifyEvent as N;
        let Some(first) = events.first().map(|e| e.stored.global_position) else {
            return Ok(Self::default());
        };
        let (mut patients, mut providers, mut appointments, mut withdrawing, mut threads) = (
            BTreeSet::new(),
            BTreeSet::new(),
            BTreeSet::new(),
            BTreeSet::new(),
            BTreeSet::new(),
        );
        for e in events {
            match &e.event {
                N::Appointment(AppointmentEvent::Booked { booking }) => {
                    patients.insert(booking.patient_id.to_string());
                    providers.insert(booking.provider_id.to_string());
                }
                N::Appointment(
                    AppointmentEvent::Rescheduled { .. } | AppointmentEvent::Cancelled { .. },
                ) => {
                    appointments.insert(e.id().to_owned());
                    withdrawing.insert(e.id().to_owned());
                }
                N::Appointment(a) if over(a) => {
                    withdrawing.insert(e.id().to_owned());
                }
                N::Entry(
                    EntryEvent::CriticalResultRecorded { origin, .. }
                    | EntryEvent::Recorded { origin, .. },
                ) => {
                    patients.insert(origin.patient_id.to_string());
                }
                // Their rows are added at the end of the batch: what the
                // table held before is read now.
                N::Patient(PatientEvent::PatientRegistered {
                    user_id: Some(_), ..
                }) => {
                    patients.insert(e.id().to_owned());
                }
                N::Provider(ProviderEvent::Enrolled { .. }) => {
                    providers.insert(e.id().to_owned());
                }
                N::Thread(ThreadEvent::MessagePosted { .. }) => {
                    threads.insert(e.id().to_owned());
                }
                _ => {}
            }
        }
        let mut batch = Self::default();
        let found = lookup(tx, Route::Appointments, &appointments, first).await?;
        patients.extend(found.values().flatten().cloned());
        batch.appointments = found;
        batch.accounts = lookup(tx, Route::Accounts, &patients, first).await?;
        batch.providers = lookup(tx, Route::Providers, &providers, first).await?;
        batch.pending = reminders::pending_of(tx, &withdrawing, first).await?;
        batch.members = members_of(tx, &threads, first).await?;
        Ok(batch)
    }

    /// Adds `row` to `table` at the end of the batch.
    fn insert(&mut self, table: Table, row: Vec<Value>) {
        self.inserts.entry(table).or_default().push(row);
    }

    /// Inserts the rows the batch added to `table` now: a statement about
    /// to read or change it finds them.
    async fn flush(&mut self, tx: &mut Tx, table: Table) -> Result<(), ProjectionError> {
        let Some(rows) = self.inserts.remove(&table) else {
            return Ok(());
        };
        let (into, conflict) = table.insert();
        sql::insert_rows(tx, into, conflict, &rows).await?;
        Ok(())
    }

    /// Adds `user` to `thread`.
    fn join(&mut self, thread: &str, user: String) {
        if let Some(members) = self.members.get_mut(thread) {
            members.insert(user.clone());
        }
        self.insert(Table::Members, vec![thread.into(), user.into()]);
    }

    /// The members of `thread` but `author`, in order: as the batch knows
    /// them, or else read from the table.
    async fn others(
        &mut self,
        tx: &mut Tx,
        thread: &str,
        author: &str,
    ) -> Result<Vec<String>, ProjectionError> {
        if let Some(members) = self.members.get(thread) {
            return Ok(members.iter().filter(|m| *m != author).cloned().collect());
        }
        self.flush(tx, Table::Members).await?;
        all(
            tx,
            "SELECT user_id FROM notify_thread_members WHERE thread_id = $1 AND user_id <> $2 \
             ORDER BY user_id",
            &[thread.into(), author.into()],
        )
        .await
    }

    /// What the batch knows of `route`'s table.
    fn known(&mut self, route: Route) -> &mut HashMap<String, Option<String>> {
        match route {
            Route::Accounts => &mut self.accounts,
            Route::Providers => &mut self.providers,
            Route::Appointments => &mut self.appointments,
        }
    }

    /// What `route` holds for `key` (`None`: no row): as the batch knows
    /// it, or else read from the table and remembered.
    async fn get(
        &mut self,
        tx: &mut Tx,
        route: Route,
        key: &str,
    ) -> Result<Option<String>, ProjectionError> {
        let known = self.known(route);
        if let Some(value) = known.get(key) {
            return Ok(value.clone());
        }
        if let Some(table) = route.added_to() {
            self.flush(tx, table).await?;
        }
        let known = self.known(route);
        let (table, key_column, value_column) = route.columns();
        let sql = format!("SELECT {value_column} FROM {table} WHERE {key_column} = $1");
        let found = one(tx, &sql, &[key.into()]).await?;
        known.insert(key.to_owned(), found.clone());
        Ok(found)
    }

    /// A routing row added to the table at once: what the batch knows of
    /// `key` becomes `value`, unless the table held one already (the
    /// insert does nothing then).
    fn added(known: &mut HashMap<String, Option<String>>, key: &str, value: String) {
        // A key the batch did not read is read from the table if asked.
        if let Some(entry @ None) = known.get_mut(key) {
            *entry = Some(value);
        }
    }

    /// Books `appointment` of `patient` with `provider`: its routing row,
    /// written at the end of the batch (a row already there stays).
    fn book(&mut self, appointment: &str, patient: &str, provider: &str) {
        let known = self
            .appointments
            .entry(appointment.to_owned())
            .or_insert(None);
        if known.is_none() {
            *known = Some(patient.to_owned());
        }
        self.booked
            .push(vec![appointment.into(), patient.into(), provider.into()]);
    }

    /// Schedules the reminders of `appointment` of `patient` at `start`,
    /// booked or moved at `at`.
    fn schedule(
        &mut self,
        appointment: &str,
        patient: &str,
        start: DateTime<Utc>,
        at: DateTime<Utc>,
    ) {
        // A reminder scheduled twice in the batch (moved away and back) is
        // held once: pending again if it was withdrawn, as the table does.
        for r in reminders::appointment_reminders(appointment, patient, start, at) {
            match self.reminders.iter_mut().find(|held| held.id == r.id) {
                Some(held) => held.withdrawn_at = None,
                None => self.reminders.push(r),
            }
        }
        self.over.remove(appointment);
    }

    /// Withdraws the pending reminders of `appointment`, or only those of
    /// one `occurrence`, all written at the end of the batch. An appointment
    /// whose rows the batch did not read first (an event `read` does not
    /// know as a withdrawal) has its rows updated at once.
    async fn withdraw(
        &mut self,
        tx: &mut Tx,
        appointment: &str,
        occurrence: Option<DateTime<Utc>>,
        at: i64,
    ) -> Result<(), ProjectionError> {
        let only = occurrence.map(|o| o.timestamp());
        for r in &mut self.reminders {
            if r.appointment == appointment
                && r.withdrawn_at.is_none()
                && only.is_none_or(|o| o == r.occurrence)
            {
                r.withdrawn_at = Some(at);
            }
        }
        let Some(pending) = self.pending.get_mut(appointment) else {
            return reminders::withdraw(tx, appointment, occurrence, at).await;
        };
        let withdrawn = &mut self.withdrawn;
        pending.retain(|(id, o)| {
            let goes = only.is_none_or(|only| only == *o);
            if goes {
                withdrawn.push(vec![id.as_str().into(), at.into()]);
            }
            !goes
        });
        Ok(())
    }

    /// Withdraws every pending reminder of `appointment`, unless this batch
    /// did already.
    async fn over(
        &mut self,
        tx: &mut Tx,
        appointment: &str,
        at: i64,
    ) -> Result<(), ProjectionError> {
        if self.over.insert(appointment.to_owned()) {
            self.withdraw(tx, appointment, None, at).await?;
        }
        Ok(())
    }

    /// Writes the routing rows and reminders the batch added, after the
    /// withdrawals of earlier reminders.
    async fn write(mut self, tx: &mut Tx) -> Result<(), ProjectionError> {
        for table in Table::ALL {
            self.flush(tx, table).await?;
        }
        reminders::withdraw_rows(tx, &self.withdrawn).await?;
        if !self.booked.is_empty() {
            sql::insert_rows(
                tx,
                "notify_appointments (appointment_id, patient_id, provider_id)",
                "ON CONFLICT (appointment_id) DO NOTHING",
                &self.booked,
            )
            .await?;
        }
        reminders::insert_appointment_reminders(tx, &self.reminders).await
    }
}

/// A routing table a batch reads: whom to tell about what.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// A patient's account.
    Accounts,
    /// A provider's user.
    Providers,
    /// An appointment's patient.
    Appointments,
}

impl Route {
    /// The table whose rows the batch adds at its end, for the routes read
    /// from one.
    fn added_to(self) -> Option<Table> {
        match self {
            Self::Accounts => Some(Table::Accounts),
            Self::Providers => Some(Table::Providers),
            // Bookings' rows, which the batch always holds (`book`).
            Self::Appointments => None,
        }
    }

    /// (table, key column, value column).
    fn columns(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Accounts => ("notify_accounts", "patient_id", "user_id"),
            Self::Providers => ("notify_providers", "provider_id", "user_id"),
            Self::Appointments => ("notify_appointments", "appointment_id", "patient_id"),
        }
    }
}

/// Whether `event` leaves nothing to remind of: the patient is here, seen,
/// or gone.
fn over(event: &AppointmentEvent) -> bool {
    matches!(
        event,
        AppointmentEvent::CheckedIn { .. }
            | AppointmentEvent::Started { .. }
            | AppointmentEvent::Completed { .. }
            | AppointmentEvent::NoShow { .. }
    )
}

/// A routing table a batch adds rows to at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Table {
    Users,
    Accounts,
    Providers,
    Members,
    Medications,
}

impl Table {
    const ALL: [Self; 5] = [
        Self::Users,
        Self::Accounts,
        Self::Providers,
        Self::Members,
        Self::Medications,
    ];

    /// (table and columns, conflict clause): a row already there stays.
    fn insert(self) -> (&'static str, &'static str) {
        match self {
            Self::Users => (
                "notify_users (user_id, role, active)",
                "ON CONFLICT (user_id) DO NOTHING",
            ),
            Self::Accounts => (
                "notify_accounts (patient_id, user_id)",
                "ON CONFLICT (patient_id) DO NOTHING",
            ),
            Self::Providers => (
                "notify_providers (provider_id, user_id)",
                "ON CONFLICT (provider_id) DO NOTHING",
            ),
            Self::Members => (
                "notify_thread_members (thread_id, user_id)",
                "ON CONFLICT (thread_id, user_id) DO NOTHING",
            ),
            Self::Medications => (
                "notify_medications (medication_id, patient_id, prescriber_id)",
                "ON CONFLICT (medication_id) DO NOTHING",
            ),
        }
    }
}

/// The members of each of `threads`, in one statement; every thread has an
/// entry, empty when it has none. A damaged row is named at `position`.
async fn members_of(
    tx: &mut Tx,
    threads: &BTreeSet<String>,
    position: i64,
) -> Result<HashMap<String, BTreeSet<String>>, ProjectionError> {
    let mut found: HashMap<String, BTreeSet<String>> = threads
        .iter()
        .map(|t| (t.clone(), BTreeSet::new()))
        .collect();
    if threads.is_empty() {
        return Ok(found);
    }
    let keys: Vec<Vec<Value>> = threads.iter().map(|t| vec![t.as_str().into()]).collect();
    let rows = sql::select_with_values(
        tx,
        "thread_id",
        &keys,
        "SELECT m.thread_id || ' ' || m.user_id FROM notify_thread_members m \
         JOIN v ON m.thread_id = v.thread_id",
    )
    .await?;
    for row in rows {
        let members = row
            .split_once(' ')
            .and_then(|(thread, user)| Some((found.get_mut(thread)?, user)));
        let Some((members, user)) = members else {
            return Err(ProjectionError::Event {
                position,
                detail: "a stored thread member without its thread".into(),
            });
        };
        members.insert(user.to_owned());
    }
    Ok(found)
}

/// What `route` holds for each of `keys` (`None`: no row), in one
/// statement; none when there are no keys. A damaged row is named at
/// `position`, the batch's first event.
async fn lookup(
    tx: &mut Tx,
    route: Route,
    keys: &BTreeSet<String>,
    position: i64,
) -> Result<HashMap<String, Option<String>>, ProjectionError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (table, key, value) = route.columns();
    let query =
        format!("SELECT t.{key} || ' ' || t.{value} FROM {table} t JOIN v ON t.{key} = v.{key}");
    let rows: Vec<Vec<Value>> = keys.iter().map(|k| vec![k.as_str().into()]).collect();
    let mut found = sql::select_by_key(tx, key, &rows, &query, position).await?;
    Ok(keys.iter().map(|k| (k.clone(), found.remove(k))).collect())
}

async fn apply(
    tx: &mut Tx,
    out: &mut Outbox,
    batch: &mut Batch,
    e: &Envelope<NotifyEvent>,
) -> Result<(), ProjectionError> {
    use NotifyEvent as N;
    let id = e.id().to_owned();
    match &e.event {
        N::User(UserEvent::UserCreated { user_id, role, .. }) => {
            batch.insert(
                Table::Users,
                vec![
                    user_id.to_string().into(),
                    role.as_str().into(),
                    1i64.into(),
                ],
            );
        }
        N::User(UserEvent::UserDeactivated) | N::User(UserEvent::UserReactivated) => {
            let active = i64::from(matches!(e.event, N::User(UserEvent::UserReactivated)));
            batch.flush(tx, Table::Users).await?;
            sql::execute(
                tx,
                "UPDATE notify_users SET active = $2 WHERE user_id = $1",
                &[id.as_str().into(), active.into()],
            )
            .await?;
        }
        N::Patient(PatientEvent::PatientRegistered {
            user_id: Some(user),
            ..
        }) => {
            batch.insert(
                Table::Accounts,
                vec![id.as_str().into(), user.to_string().into()],
            );
            Batch::added(&mut batch.accounts, &id, user.to_string());
        }
        N::Provider(ProviderEvent::Enrolled { profile }) => {
            batch.insert(
                Table::Providers,
                vec![id.as_str().into(), profile.user_id.to_string().into()],
            );
            Batch::added(&mut batch.providers, &id, profile.user_id.to_string());
        }
        N::Appointment(AppointmentEvent::Booked { booking }) => {
            let (patient, provider) = (
                booking.patient_id.to_string(),
                booking.provider_id.to_string(),
            );
            batch.book(&id, &patient, &provider);
            let to: Vec<String> = [
                batch.get(tx, Route::Accounts, &patient).await?,
                batch.get(tx, Route::Providers, &provider).await?,
            ]
            .into_iter()
            .flatten()
            .collect();
            notify(out, e, &to, BOOKED, Some(&patient), &id);
            batch.schedule(&id, &patient, booking.period.start, e.stored.recorded_at);
        }
        N::Appointment(AppointmentEvent::Rescheduled { .. })
        | N::Appointment(AppointmentEvent::Cancelled { .. }) => {
            let what = match &e.event {
                N::Appointment(AppointmentEvent::Rescheduled { .. }) => MOVED,
                _ => CANCELLED,
            };
            let patient = batch
                .get(tx, Route::Appointments, &id)
                .await?
                .ok_or_else(|| {
                    damaged(e, "a change of an appointment the notifier does not hold")
                })?;
            let to: Vec<String> = batch
                .get(tx, Route::Accounts, &patient)
                .await?
                .into_iter()
                .collect();
            notify(out, e, &to, what, Some(&patient), &id);
            // The reminders of the old time go; a new time gets its own.
            let recorded = e.stored.recorded_at;
            if let N::Appointment(AppointmentEvent::Rescheduled { from, to }) = &e.event {
                batch
                    .withdraw(tx, &id, Some(from.start), recorded.timestamp())
                    .await?;
                batch.schedule(&id, &patient, to.start, recorded);
            } else {
                batch.over(tx, &id, recorded.timestamp()).await?;
            }
        }
        N::Appointment(a) if over(a) => {
            batch
                .over(tx, &id, e.stored.recorded_at.timestamp())
                .await?;
        }
        N::Entry(
            EntryEvent::CriticalResultRecorded { origin, .. } | EntryEvent::Recorded { origin, .. },
        ) => {
            // The patient hears of a lab result; a critical one reaches the
            // responsible doctor through the alerts consumer (`Alerts`).
            let patient = origin.patient_id.to_string();
            let lab = match &e.event {
                N::Entry(EntryEvent::CriticalResultRecorded { .. }) => true,
                N::Entry(EntryEvent::Recorded { body, .. }) => body.kind() == Kind::Lab,
                _ => false,
            };
            if lab {
                let to: Vec<String> = batch
                    .get(tx, Route::Accounts, &patient)
                    .await?
                    .into_iter()
                    .collect();
                notify_from(out, e, &to, NEW_RESULT, Some(&patient), &id, 1);
            }
        }
        N::Thread(ThreadEvent::Started { participants, .. }) => {
            for p in participants {
                batch.join(&id, p.user_id.to_string());
            }
        }
        N::Thread(ThreadEvent::ParticipantAdded { participant }) => {
            batch.join(&id, participant.user_id.to_string());
        }
        N::Thread(ThreadEvent::MessagePosted { author, .. }) => {
            // The first message comes with the thread: its members are in.
            let to = batch.others(tx, &id, &author.to_string()).await?;
            let patient = e.stored.patient_id.map(|p| p.to_string());
            notify(out, e, &to, MESSAGE, patient.as_deref(), &id);
        }
        N::Medication(MedicationEvent::Prescribed { origin, .. }) => {
            let (patient, prescriber) =
                (origin.patient_id.to_string(), origin.prescriber.to_string());
            batch.insert(
                Table::Medications,
                vec![
                    id.as_str().into(),
                    patient.as_str().into(),
                    prescriber.as_str().into(),
                ],
            );
            batch
                .medications
                .entry(id.clone())
                .or_insert((patient, prescriber));
        }
        N::Medication(MedicationEvent::RefillRequested { .. })
        | N::Medication(MedicationEvent::RefillApproved { .. })
        | N::Medication(MedicationEvent::RefillDenied { .. }) => {
            let (patient, prescriber) = match batch.medications.get(&id) {
                Some(known) => known.clone(),
                None => {
                    batch.flush(tx, Table::Medications).await?;
                    let row = one(
                        tx,
                        "SELECT patient_id || ' ' || prescriber_id FROM notify_medications \
                         WHERE medication_id = $1",
                        &[id.as_str().into()],
                    )
                    .await?
                    .ok_or_else(|| {
                        damaged(e, "a refill of a medication the notifier does not hold")
                    })?;
                    let (patient, prescriber) = row
                        .split_once(' ')
                        .ok_or_else(|| damaged(e, "a medication row without its prescriber"))?;
                    (patient.to_owned(), prescriber.to_owned())
                }
            };
            let (to, what) = match &e.event {
                N::Medication(MedicationEvent::RefillRequested { .. }) => {
                    (vec![prescriber.clone()], REFILL_ASKED)
                }
                _ => (
                    batch
                        .get(tx, Route::Accounts, &patient)
                        .await?
                        .into_iter()
                        .collect(),
                    REFILL_ANSWERED,
                ),
            };
            notify(out, e, &to, what, Some(&patient), &id);
        }
        _ => {}
    }
    Ok(())
}

/// One notification per recipient, numbered from 0 within the event.
fn notify(
    out: &mut Outbox,
    e: &Envelope<NotifyEvent>,
    to: &[String],
    what: Note,
    patient: Option<&str>,
    subject: &str,
) {
    notify_from(out, e, to, what, patient, subject, 0);
}

/// [`notify`], numbering from `first` (an event that makes notifications of
/// two kinds numbers the second after the first).
fn notify_from(
    out: &mut Outbox,
    e: &Envelope<NotifyEvent>,
    to: &[String],
    what: Note,
    patient: Option<&str>,
    subject: &str,
    first: usize,
) {
    let about = About {
        what,
        patient,
        subject,
    };
    out.add(&e.stored, to, about, first);
}

/// What a notification is and whom it is about.
#[derive(Debug, Clone, Copy)]
pub(crate) struct About<'a> {
    pub(crate) what: Note,
    pub(crate) patient: Option<&'a str>,
    pub(crate) subject: &'a str,
}

/// The notifications (or alerts) a batch makes and their deliveries,
/// written together when the batch's events are applied: nothing in the
/// batch reads them back, and the routing rows the deliveries look at
/// (`notify_accounts`) are only ever added before them or erased between
/// batches. Two statements a batch instead of two per notification.
pub(crate) struct Outbox {
    table: &'static str,
    /// Each row's id and the position that made it.
    made: Vec<(String, i64)>,
    rows: Vec<Vec<Value>>,
    deliveries: Vec<Vec<Value>>,
}

impl Outbox {
    /// An empty outbox for `table` (`notifications` or `alerts`).
    pub(crate) fn new(table: &'static str) -> Self {
        Self {
            table,
            made: Vec::new(),
            rows: Vec::new(),
            deliveries: Vec::new(),
        }
    }

    /// One row per recipient, caused by `cause`, ids
    /// `<position>.<first * 100 + n>`.
    pub(crate) fn add(
        &mut self,
        cause: &anamnesis_commands::StoredEvent,
        to: &[String],
        about: About<'_>,
        first: usize,
    ) {
        let About {
            what,
            patient,
            subject,
        } = about;
        let now = chrono::Utc::now();
        for (n, recipient) in to.iter().enumerate() {
            let id = format!("{}.{}", cause.global_position, first * 100 + n);
            self.rows.push(vec![
                id.as_str().into(),
                recipient.as_str().into(),
                what.kind.into(),
                what.title.into(),
                patient.map(str::to_owned).into(),
                what.subject_type.into(),
                subject.into(),
                i64::from(what.urgent).into(),
                cause.recorded_at.timestamp().into(),
                cause.global_position.into(),
            ]);
            self.deliveries.push(crate::deliveries::row(
                &crate::deliveries::Outgoing {
                    notification_id: &id,
                    recipient_id: recipient,
                    kind: what.kind,
                    title: what.title,
                    urgent: what.urgent,
                    patient_id: patient,
                    subject_type: what.subject_type,
                    subject_id: subject,
                    position: cause.global_position,
                    caused_at: cause.recorded_at,
                },
                now,
            ));
            self.made.push((id, cause.global_position));
        }
    }

    /// Writes what was added. A row already there stops the projector at
    /// the position that made it again.
    pub(crate) async fn write(self, tx: &mut Tx) -> Result<(), ProjectionError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let written: std::collections::HashSet<String> = sql::insert_rows_returning(
            tx,
            &format!(
                "{} (notification_id, recipient_id, kind, title, patient_id, subject_type, \
                 subject_id, urgent, created_at, position)",
                self.table
            ),
            "ON CONFLICT (notification_id) DO NOTHING RETURNING notification_id",
            &self.rows,
        )
        .await?
        .into_iter()
        .collect();
        if let Some((_, position)) = self.made.iter().find(|(id, _)| !written.contains(id)) {
            return Err(ProjectionError::Event {
                position: *position,
                detail: "a notification made twice".into(),
            });
        }
        crate::deliveries::enqueue_rows(tx, &self.deliveries).await
    }
}

// --- queries -------------------------------------------------------------------

/// A notification in a user's inbox.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct NotificationView {
    pub id: String,
    /// appointment_booked, appointment_rescheduled, appointment_cancelled,
    /// new_result, critical_result, break_glass, new_message,
    /// refill_requested or refill_decided.
    pub kind: String,
    /// Generic words: no patient data.
    pub title: String,
    /// The patient it is about, if any.
    pub patient_id: Option<String>,
    /// What to open: appointment, chart_entry, patient, thread or medication.
    pub subject_type: String,
    pub subject_id: String,
    #[sqlx(try_from = "i64")]
    pub urgent: Flag,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Seconds,
    /// Whether the user marked it read.
    #[sqlx(try_from = "i64")]
    pub read: Flag,
    /// The log position that made it (pass as `before` for the next page).
    pub position: i64,
}

/// A 0/1 column shown as a JSON boolean.
#[derive(Debug, Clone, Copy, utoipa::ToSchema)]
#[schema(value_type = bool)]
pub struct Flag(pub bool);

impl From<i64> for Flag {
    fn from(v: i64) -> Self {
        Flag(v != 0)
    }
}

impl Serialize for Flag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(self.0)
    }
}

/// Everything in the inbox: the notifications, the urgent alerts
/// (`crate::alerts`) and the reminders sent (`crate::reminders`). A
/// reminder's position is the log's head when it was sent.
const INBOX: &str = "(SELECT notification_id, recipient_id, kind, title, patient_id, \
     subject_type, subject_id, urgent, created_at, position FROM notifications \
     UNION ALL SELECT notification_id, recipient_id, kind, title, patient_id, \
     subject_type, subject_id, urgent, created_at, position FROM alerts \
     UNION ALL SELECT reminder_id, recipient_id, kind, title, patient_id, \
     subject_type, subject_id, 0, decided_at, position FROM reminders WHERE status = 'sent')";

/// A page of `user`'s notifications, newest first, before log position
/// `before`; only the unread when `unread_only`. One more than `limit`
/// tells whether there is more.
pub async fn inbox(
    db: &Db,
    user: &str,
    unread_only: bool,
    before: Option<i64>,
    limit: i64,
) -> Result<(Vec<NotificationView>, bool), sqlx::Error> {
    let sql = format!(
        "SELECT n.notification_id AS id, n.kind, n.title, n.patient_id, n.subject_type, \
         n.subject_id, n.urgent, n.created_at, \
         CAST(CASE WHEN r.notification_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS read, \
         n.position \
         FROM {INBOX} n LEFT JOIN notification_reads r \
         ON r.notification_id = n.notification_id \
         WHERE n.recipient_id = $1 AND n.position < $2 {} \
         ORDER BY n.position DESC, n.notification_id DESC LIMIT $3",
        if unread_only {
            "AND r.notification_id IS NULL"
        } else {
            ""
        }
    );
    let before = before.unwrap_or(i64::MAX);
    let rows: Vec<NotificationView> = match db {
        Db::Postgres(p) => {
            sqlx::query_as(&sql)
                .bind(user)
                .bind(before)
                .bind(limit + 1)
                .fetch_all(p)
                .await?
        }
        Db::Sqlite(p) => {
            sqlx::query_as(&sql)
                .bind(user)
                .bind(before)
                .bind(limit + 1)
                .fetch_all(p)
                .await?
        }
    };
    let more = rows.len() as i64 > limit;
    Ok((rows.into_iter().take(limit as usize).collect(), more))
}

/// How many of `user`'s notifications are unread.
pub async fn unread(db: &Db, user: &str) -> Result<i64, sqlx::Error> {
    let sql = format!(
        "SELECT COUNT(*) FROM {INBOX} n LEFT JOIN notification_reads r \
         ON r.notification_id = n.notification_id \
         WHERE n.recipient_id = $1 AND r.notification_id IS NULL"
    );
    let sql = sql.as_str();
    Ok(match db {
        Db::Postgres(p) => sqlx::query_scalar(sql).bind(user).fetch_one(p).await?,
        Db::Sqlite(p) => sqlx::query_scalar(sql).bind(user).fetch_one(p).await?,
    })
}

/// Marks notification `id` read for `user`: `false` when `user` has no such
/// notification. Marking twice keeps the first time.
pub async fn mark_read(db: &Db, user: &str, id: &str, at: i64) -> Result<bool, sqlx::Error> {
    let sql = format!(
        "INSERT INTO notification_reads (notification_id, user_id, read_at) \
         SELECT notification_id, recipient_id, $3 FROM {INBOX} n \
         WHERE notification_id = $1 AND recipient_id = $2 \
         ON CONFLICT (notification_id) DO NOTHING"
    );
    let sql = sql.as_str();
    let exists =
        format!("SELECT COUNT(*) FROM {INBOX} n WHERE notification_id = $1 AND recipient_id = $2");
    let exists = exists.as_str();
    Ok(match db {
        Db::Postgres(p) => {
            sqlx::query(sql)
                .bind(id)
                .bind(user)
                .bind(at)
                .execute(p)
                .await?;
            sqlx::query_scalar::<_, i64>(exists)
                .bind(id)
                .bind(user)
                .fetch_one(p)
                .await?
                > 0
        }
        Db::Sqlite(p) => {
            sqlx::query(sql)
                .bind(id)
                .bind(user)
                .bind(at)
                .execute(p)
                .await?;
            sqlx::query_scalar::<_, i64>(exists)
                .bind(id)
                .bind(user)
                .fetch_one(p)
                .await?
                > 0
        }
    })
}
