//! Secure messaging (ADR 0017): a thread about one patient between the
//! patient's own account and members of their care team or the front desk.
//! Messages are patient data: bounded, parsed with the one text rule, and
//! every event names the patient. Each participant has a read receipt (read
//! up to message n) and may archive the thread out of their inbox; a new
//! message brings it back for everyone.
//!
//! Who may start, read or post is the policy's (the write side finds each
//! invitee's standing to the patient and passes it in); the thread refuses
//! an invitee who has none, a non-participant acting on it, and text out of
//! bounds.

mod commands;
mod error;
mod events;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::subject::Subject;
use crate::unique::{UniqueKey, UniqueKeys};

pub use commands::ThreadCommand;
pub use error::MessagingError;
pub use events::ThreadEvent;
pub use values::{
    body, subject, Invitee, Participant, Party, BODY_MAX, MESSAGES_MAX, PARTICIPANTS_MAX,
    SUBJECT_MAX,
};

/// Where a participant stands in a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub party: Party,
    /// Read up to this message (0: none).
    pub read_up_to: u32,
    /// Archived out of their inbox.
    pub archived: bool,
}

/// A message thread's state: whom it is about, who takes part and how far
/// each has read, and how many messages it holds.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    patient_id: Option<Uuid>,
    members: BTreeMap<Uuid, Member>,
    messages: u32,
}

impl Thread {
    /// The patient the thread is about, once it exists.
    pub fn patient_id(&self) -> Option<Uuid> {
        self.patient_id
    }

    /// `user`'s place in the thread, if they take part.
    pub fn member(&self, user: Uuid) -> Option<Member> {
        self.members.get(&user).copied()
    }

    /// Every participant.
    pub fn members(&self) -> impl Iterator<Item = (&Uuid, &Member)> {
        self.members.iter()
    }

    /// How many messages it holds.
    pub fn message_count(&self) -> u32 {
        self.messages
    }

    /// How many messages `user` has not read.
    pub fn unread(&self, user: Uuid) -> u32 {
        self.member(user)
            .map_or(0, |m| self.messages.saturating_sub(m.read_up_to))
    }

    fn existing(&self) -> Result<(), MessagingError> {
        match self.patient_id {
            Some(_) => Ok(()),
            None => Err(MessagingError::UnknownThread),
        }
    }

    fn participant(&self, user: Uuid) -> Result<Member, MessagingError> {
        self.existing()?;
        self.member(user).ok_or(MessagingError::NotAParticipant)
    }

    fn admitted(invitee: Invitee) -> Result<Participant, MessagingError> {
        let party = invitee.party.ok_or(MessagingError::NotEligible)?;
        Ok(Participant {
            user_id: invitee.user_id,
            party,
        })
    }

    fn decide(&self, command: ThreadCommand) -> Result<Vec<ThreadEvent>, MessagingError> {
        use ThreadCommand as C;
        match command {
            C::Start {
                patient_id,
                subject,
                starter,
                participants,
                body,
                at,
            } => {
                if self.patient_id.is_some() {
                    return Err(MessagingError::AlreadyExists);
                }
                let mut admitted: Vec<Participant> = Vec::with_capacity(participants.len());
                for invitee in participants {
                    let p = Self::admitted(invitee)?;
                    if admitted.iter().any(|a| a.user_id == p.user_id) {
                        return Err(MessagingError::AlreadyParticipant);
                    }
                    admitted.push(p);
                }
                if admitted.len() > PARTICIPANTS_MAX {
                    return Err(MessagingError::TooManyParticipants(PARTICIPANTS_MAX));
                }
                if !admitted.iter().any(|p| p.user_id == starter) {
                    return Err(MessagingError::NotAParticipant);
                }
                if !admitted.iter().any(|p| p.party == Party::Patient) {
                    return Err(MessagingError::NoPatient);
                }
                if !admitted.iter().any(|p| p.party != Party::Patient) {
                    return Err(MessagingError::NoCounterpart);
                }
                Ok(vec![
                    ThreadEvent::Started {
                        patient_id,
                        subject: values::subject(&subject)?,
                        participants: admitted,
                    },
                    ThreadEvent::MessagePosted {
                        number: 1,
                        author: starter,
                        body: values::body(&body)?,
                        at,
                    },
                ])
            }
            C::AddParticipant { by, invitee } => {
                self.participant(by)?;
                let participant = Self::admitted(invitee)?;
                if self.members.contains_key(&participant.user_id) {
                    return Err(MessagingError::AlreadyParticipant);
                }
                if self.members.len() >= PARTICIPANTS_MAX {
                    return Err(MessagingError::TooManyParticipants(PARTICIPANTS_MAX));
                }
                Ok(vec![ThreadEvent::ParticipantAdded { participant }])
            }
            C::Post { author, body, at } => {
                self.participant(author)?;
                // Every command on a thread loads it whole: its length is bounded.
                if self.messages >= MESSAGES_MAX {
                    return Err(MessagingError::ThreadFull(MESSAGES_MAX));
                }
                Ok(vec![ThreadEvent::MessagePosted {
                    number: self.messages + 1,
                    author,
                    body: values::body(&body)?,
                    at,
                }])
            }
            C::MarkRead { user_id, up_to } => {
                let member = self.participant(user_id)?;
                if up_to == 0 || up_to > self.messages {
                    return Err(MessagingError::UnknownMessage);
                }
                // A receipt never moves back: reading an older message again
                // changes nothing.
                if up_to <= member.read_up_to {
                    return Ok(Vec::new());
                }
                Ok(vec![ThreadEvent::Read { user_id, up_to }])
            }
            C::Archive { user_id } => {
                let member = self.participant(user_id)?;
                Ok(if member.archived {
                    Vec::new()
                } else {
                    vec![ThreadEvent::Archived { user_id }]
                })
            }
            C::Unarchive { user_id } => {
                let member = self.participant(user_id)?;
                Ok(if member.archived {
                    vec![ThreadEvent::Unarchived { user_id }]
                } else {
                    Vec::new()
                })
            }
        }
    }
}

impl Aggregate for Thread {
    const TYPE: &'static str = "message_thread";
    type Command = ThreadCommand;
    type Event = ThreadEvent;
    type Error = MessagingError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ThreadEvent::Started {
                patient_id,
                participants,
                ..
            } => {
                self.patient_id = Some(patient_id);
                for p in participants {
                    self.members.insert(p.user_id, Member::new(p.party));
                }
            }
            ThreadEvent::ParticipantAdded { participant } => {
                self.members
                    .insert(participant.user_id, Member::new(participant.party));
            }
            ThreadEvent::MessagePosted { number, author, .. } => {
                self.messages = number;
                // Writing is reading what one answers; and a new message
                // brings the thread back to every inbox.
                for (user, member) in self.members.iter_mut() {
                    member.archived = false;
                    if *user == author {
                        member.read_up_to = member.read_up_to.max(number);
                    }
                }
            }
            ThreadEvent::Read { user_id, up_to } => {
                if let Some(m) = self.members.get_mut(&user_id) {
                    m.read_up_to = m.read_up_to.max(up_to);
                }
            }
            ThreadEvent::Archived { user_id } => {
                if let Some(m) = self.members.get_mut(&user_id) {
                    m.archived = true;
                }
            }
            ThreadEvent::Unarchived { user_id } => {
                if let Some(m) = self.members.get_mut(&user_id) {
                    m.archived = false;
                }
            }
        }
    }
}

impl Member {
    fn new(party: Party) -> Self {
        Member {
            party,
            read_up_to: 0,
            archived: false,
        }
    }
}

impl UniqueKeys for Thread {
    fn unique_keys(&self) -> Vec<UniqueKey> {
        Vec::new()
    }
}

impl Subject for Thread {
    fn patient(&self, _aggregate_id: &str) -> Option<Uuid> {
        self.patient_id
    }
}
