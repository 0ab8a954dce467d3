//! One patient's life in the clinic, written command by command as the
//! people who would issue them: the patient signs up (or the front desk
//! registers them), the front desk adds their insurance and their provider
//! to their care team, the provider records their allergies and history;
//! then each visit in date order (see `visit.rs`), and a message thread.
//! Commands about the past are decided at the time they would have been
//! (the domain takes `now` in each command); the log records when they were
//! written.

use chrono::{DateTime, Duration, NaiveTime, Utc};
use rand::Rng;
use uuid::Uuid;

use anamnesis_commands::billing::Billing;
use anamnesis_commands::dispatch::CommandBus;
use anamnesis_commands::identity::Identity;
use anamnesis_commands::schedule::Scheduler;
use anamnesis_domain::billing::{Coverage, CoverageCommand, Rank};
use anamnesis_domain::chart::{CareCommand, CareTeam};
use anamnesis_domain::messaging::{Invitee, Party, Thread, ThreadCommand};
use anamnesis_domain::patient::{Patient, PatientCommand, Severity};
use anamnesis_domain::schedule::ClinicZone;
use anamnesis_domain::user::{Role, Username};

use super::plan::{self, Clinician, PatientPlan, Sizes, Visit};
use super::setup::{by, Staff};
use super::Tally;

/// Everything a story needs, shared by all of them.
pub struct Clinic {
    pub bus: CommandBus,
    pub identity: Identity,
    pub scheduler: Scheduler,
    pub billing: Billing,
    pub zone: ClinicZone,
    pub now: DateTime<Utc>,
    pub sizes: Sizes,
    pub staff: Staff,
    pub providers: Vec<plan::ProviderPlan>,
    pub hash: String,
    pub tally: Tally,
}

/// A patient as written: ids and what later commands need to know.
pub struct Written {
    pub patient_id: Uuid,
    /// Their portal account, if they signed up.
    pub account: Option<Uuid>,
    pub coverage: Option<Uuid>,
    pub allergies: Vec<(Uuid, String)>,
    /// Drugs prescribed so far (one active course of each at a time).
    pub drugs: Vec<usize>,
}

impl Clinic {
    /// A front-desk member, the same for a patient every time.
    pub fn desk(&self, patient: usize) -> Uuid {
        let desks = &self.staff.front_desk;
        desks[patient % desks.len()]
    }

    /// The user id and role of provider `p`.
    pub fn clinician(&self, p: usize) -> (Uuid, Role) {
        let (user, _, kind) = self.staff.providers[p];
        (user, role_of(kind))
    }

    /// A local clinic time as an instant.
    pub fn at(&self, visit: &Visit, time: NaiveTime) -> DateTime<Utc> {
        self.zone.instant(visit.date, time)
    }

    /// Writes patient `plan` and their `visits` (in date order).
    pub async fn patient(&self, plan: PatientPlan, visits: Vec<Visit>) -> anyhow::Result<()> {
        let mut written = self.register(&plan).await?;
        let mut r = plan::rng(self.sizes.seed, "patient-story", &[plan.index as u64]);
        for v in &visits {
            self.visit(&plan, &mut written, v).await?;
        }
        if let (Some(thread), Some(account)) = (plan.thread, written.account) {
            let days_ago = r.gen_range(1..=self.sizes.days.max(1));
            let at = self.now - Duration::days(days_ago) - Duration::minutes(r.gen_range(0..600));
            self.thread(&plan, written.patient_id, account, thread, at)
                .await?;
        }
        self.tally.patient();
        Ok(())
    }

    async fn register(&self, plan: &PatientPlan) -> anyhow::Result<Written> {
        let what = || format!("patient {}", plan.index + 1);
        let patient_id = Uuid::now_v7();
        let stream = patient_id.to_string();
        let today = self.sizes.today;
        let account = if plan.portal {
            let user_id = Uuid::now_v7();
            let username = Username::parse(&plan.username)
                .map_err(|e| anyhow::anyhow!("{}: username: {e}", what()))?;
            self.identity
                .register_patient_hashed(
                    username,
                    self.hash.clone(),
                    plan.demographics.clone(),
                    today,
                    (user_id, patient_id),
                    None,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{}: signing up: {e}", what()))?;
            self.tally.events(2);
            Some(user_id)
        } else {
            let command = PatientCommand::Register {
                demographics: plan.demographics.clone(),
                user_id: None,
                today,
            };
            let desk = by(self.desk(plan.index), Role::Staff);
            let done = self
                .bus
                .create::<Patient>(&stream, command, &(), &desk)
                .await
                .map_err(|e| anyhow::anyhow!("{}: registering: {e}", what()))?;
            self.tally.events(done.events);
            None
        };
        let desk = by(self.desk(plan.index), Role::Staff);
        let (clinician, role) = self.clinician(plan.provider);
        let join = CareCommand::Add {
            user_id: clinician,
            clinician: true,
            reason: "primary care provider".into(),
        };
        let done = self
            .bus
            .execute::<CareTeam>(&stream, join, &(), &desk)
            .await
            .map_err(|e| anyhow::anyhow!("{}: care team: {e}", what()))?;
        self.tally.events(done.events);
        let coverage = match &plan.coverage {
            None => None,
            Some((payer, plan_name, member_id)) => {
                let coverage_id = Uuid::now_v7();
                let add = CoverageCommand::Add {
                    coverage_id,
                    payer: (*payer).to_owned(),
                    member_id: member_id.clone(),
                    plan: (*plan_name).to_owned(),
                    valid_from: self.sizes.first_day() - Duration::days(365),
                    valid_to: None,
                    rank: Rank::Primary,
                };
                let done = self
                    .bus
                    .execute::<Coverage>(&stream, add, &(), &desk)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: coverage: {e}", what()))?;
                self.tally.events(done.events);
                Some(coverage_id)
            }
        };
        let as_clinician = by(clinician, role);
        let mut allergies = Vec::new();
        for (substance, reaction, severity) in &plan.allergies {
            let allergy_id = Uuid::now_v7();
            let command = PatientCommand::RecordAllergy {
                allergy_id,
                substance: (*substance).to_owned(),
                reaction: (*reaction).to_owned(),
                severity: [
                    Severity::Mild,
                    Severity::Moderate,
                    Severity::Severe,
                    Severity::LifeThreatening,
                ][usize::from(*severity) % 4],
            };
            self.run_patient(&stream, command, &as_clinician, "allergy")
                .await?;
            allergies.push((allergy_id, (*substance).to_owned()));
        }
        for (code, description, onset) in &plan.conditions {
            let command = PatientCommand::AddCondition {
                condition_id: Uuid::now_v7(),
                code: Some((*code).to_owned()),
                description: (*description).to_owned(),
                onset: Some(*onset),
                today,
            };
            self.run_patient(&stream, command, &as_clinician, "condition")
                .await?;
        }
        Ok(Written {
            patient_id,
            account,
            coverage,
            allergies,
            drugs: Vec::new(),
        })
    }

    async fn run_patient(
        &self,
        stream: &str,
        command: PatientCommand,
        metadata: &anamnesis_commands::EventMetadata,
        what: &str,
    ) -> anyhow::Result<()> {
        let done = self
            .bus
            .execute::<Patient>(stream, command, &(), metadata)
            .await
            .map_err(|e| anyhow::anyhow!("a patient's {what}: {e}"))?;
        self.tally.events(done.events);
        Ok(())
    }

    async fn thread(
        &self,
        plan: &PatientPlan,
        patient_id: Uuid,
        account: Uuid,
        (subject, body, reply): (&str, &str, &str),
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let (clinician, role) = self.clinician(plan.provider);
        let id = Uuid::now_v7().to_string();
        let start = ThreadCommand::Start {
            patient_id,
            subject: subject.to_owned(),
            starter: account,
            participants: vec![
                Invitee {
                    user_id: account,
                    party: Some(Party::Patient),
                },
                Invitee {
                    user_id: clinician,
                    party: Some(Party::CareTeam),
                },
            ],
            body: body.to_owned(),
            at,
        };
        let done = self
            .bus
            .create::<Thread>(&id, start, &(), &by(account, Role::Patient))
            .await
            .map_err(|e| anyhow::anyhow!("a thread: {e}"))?;
        self.tally.events(done.events);
        let post = ThreadCommand::Post {
            author: clinician,
            body: reply.to_owned(),
            at: (at + Duration::hours(4)).min(self.now),
        };
        let done = self
            .bus
            .execute::<Thread>(&id, post, &(), &by(clinician, role))
            .await
            .map_err(|e| anyhow::anyhow!("a reply: {e}"))?;
        self.tally.events(done.events);
        self.tally.thread();
        Ok(())
    }
}

pub fn role_of(kind: Clinician) -> Role {
    match kind {
        Clinician::Doctor => Role::Doctor,
        Clinician::Nurse => Role::Nurse,
    }
}
