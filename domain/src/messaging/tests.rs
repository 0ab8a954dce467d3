//! Given/when/then tests of a message thread: who may take part, who may
//! post and mark read, receipts that never move back, archive and the new
//! message that undoes it, and bounded text. "Now" is always given.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::{AggregateResultValidator, TestFramework};
use uuid::Uuid;

use super::*;
use crate::codec::StoredForm;

const PATIENT: Uuid = Uuid::from_u128(0xCA7);
const PATIENT_ACCOUNT: Uuid = Uuid::from_u128(0xACC);
const DOCTOR: Uuid = Uuid::from_u128(0xD0C);
const DESK: Uuid = Uuid::from_u128(0xDE5C);
const OUTSIDER: Uuid = Uuid::from_u128(0x0075);

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 10, 0, 0).unwrap()
}

fn invitee(user_id: Uuid, party: Option<Party>) -> Invitee {
    Invitee { user_id, party }
}

fn patient() -> Invitee {
    invitee(PATIENT_ACCOUNT, Some(Party::Patient))
}

fn doctor() -> Invitee {
    invitee(DOCTOR, Some(Party::CareTeam))
}

fn start(starter: Uuid, participants: Vec<Invitee>) -> ThreadCommand {
    ThreadCommand::Start {
        patient_id: PATIENT,
        subject: "Blood test results".into(),
        starter,
        participants,
        body: "Could you explain my results?".into(),
        at: now(),
    }
}

fn started() -> ThreadEvent {
    ThreadEvent::Started {
        patient_id: PATIENT,
        subject: "Blood test results".into(),
        participants: vec![
            Participant {
                user_id: PATIENT_ACCOUNT,
                party: Party::Patient,
            },
            Participant {
                user_id: DOCTOR,
                party: Party::CareTeam,
            },
        ],
    }
}

fn posted(number: u32, author: Uuid) -> ThreadEvent {
    ThreadEvent::MessagePosted {
        number,
        author,
        body: format!("message {number}"),
        at: now(),
    }
}

fn post(author: Uuid, body: &str) -> ThreadCommand {
    ThreadCommand::Post {
        author,
        body: body.into(),
        at: now(),
    }
}

async fn thread(
    events: Vec<ThreadEvent>,
    command: ThreadCommand,
) -> AggregateResultValidator<Thread> {
    TestFramework::<Thread>::with(())
        .given(events)
        .when_async(command)
        .await
}

fn state(events: Vec<ThreadEvent>) -> Thread {
    let mut t = Thread::default();
    for e in events {
        t.apply(e);
    }
    t
}

#[tokio::test]
async fn the_patient_starts_a_thread_with_their_doctor_and_the_first_message() {
    thread(vec![], start(PATIENT_ACCOUNT, vec![patient(), doctor()]))
        .await
        .then_expect_events(vec![
            started(),
            ThreadEvent::MessagePosted {
                number: 1,
                author: PATIENT_ACCOUNT,
                body: "Could you explain my results?".into(),
                at: now(),
            },
        ]);
}

#[tokio::test]
async fn a_thread_is_started_once() {
    thread(
        vec![started()],
        start(PATIENT_ACCOUNT, vec![patient(), doctor()]),
    )
    .await
    .then_expect_error(MessagingError::AlreadyExists);
}

#[tokio::test]
async fn someone_neither_in_care_nor_at_the_front_desk_cannot_take_part() {
    thread(
        vec![],
        start(
            PATIENT_ACCOUNT,
            vec![patient(), doctor(), invitee(OUTSIDER, None)],
        ),
    )
    .await
    .then_expect_error(MessagingError::NotEligible);
}

#[tokio::test]
async fn a_thread_without_the_patient_is_refused() {
    thread(
        vec![],
        start(
            DOCTOR,
            vec![doctor(), invitee(DESK, Some(Party::FrontDesk))],
        ),
    )
    .await
    .then_expect_error(MessagingError::NoPatient);
}

#[tokio::test]
async fn a_patient_alone_has_no_one_to_write_to() {
    thread(vec![], start(PATIENT_ACCOUNT, vec![patient()]))
        .await
        .then_expect_error(MessagingError::NoCounterpart);
}

#[tokio::test]
async fn the_starter_takes_part() {
    thread(vec![], start(DESK, vec![patient(), doctor()]))
        .await
        .then_expect_error(MessagingError::NotAParticipant);
}

#[tokio::test]
async fn a_participant_named_twice_is_refused() {
    thread(
        vec![],
        start(PATIENT_ACCOUNT, vec![patient(), doctor(), doctor()]),
    )
    .await
    .then_expect_error(MessagingError::AlreadyParticipant);
}

#[tokio::test]
async fn a_thread_holds_at_most_twenty_participants() {
    let mut many = vec![patient()];
    many.extend(
        (0..PARTICIPANTS_MAX as u128)
            .map(|i| invitee(Uuid::from_u128(0x1000 + i), Some(Party::FrontDesk))),
    );
    thread(vec![], start(PATIENT_ACCOUNT, many))
        .await
        .then_expect_error(MessagingError::TooManyParticipants(PARTICIPANTS_MAX));
}

#[tokio::test]
async fn a_subject_is_one_line_of_at_most_200_characters() {
    let mut c = start(PATIENT_ACCOUNT, vec![patient(), doctor()]);
    if let ThreadCommand::Start { subject, .. } = &mut c {
        *subject = "x".repeat(SUBJECT_MAX + 1);
    }
    thread(vec![], c.clone())
        .await
        .then_expect_error(MessagingError::TooLong("subject"));
    if let ThreadCommand::Start { subject, .. } = &mut c {
        *subject = "two\nlines".into();
    }
    thread(vec![], c.clone())
        .await
        .then_expect_error(MessagingError::InvalidCharacters("subject"));
    if let ThreadCommand::Start { subject, .. } = &mut c {
        *subject = " \u{200b} ".into();
    }
    thread(vec![], c)
        .await
        .then_expect_error(MessagingError::EmptyField("subject"));
}

#[tokio::test]
async fn a_message_is_1_to_10000_characters_over_lines_without_control_characters() {
    thread(
        vec![started(), posted(1, PATIENT_ACCOUNT)],
        post(DOCTOR, "  "),
    )
    .await
    .then_expect_error(MessagingError::EmptyField("body"));
    thread(
        vec![started(), posted(1, PATIENT_ACCOUNT)],
        post(DOCTOR, &"é".repeat(BODY_MAX + 1)),
    )
    .await
    .then_expect_error(MessagingError::TooLong("body"));
    thread(
        vec![started(), posted(1, PATIENT_ACCOUNT)],
        post(DOCTOR, "a\u{0}b"),
    )
    .await
    .then_expect_error(MessagingError::InvalidCharacters("body"));
    thread(
        vec![started(), posted(1, PATIENT_ACCOUNT)],
        post(
            DOCTOR,
            &format!("Dear Marie,\n\n{}", "é".repeat(BODY_MAX - 20)),
        ),
    )
    .await
    .then_expect_events(vec![ThreadEvent::MessagePosted {
        number: 2,
        author: DOCTOR,
        body: format!("Dear Marie,\n\n{}", "é".repeat(BODY_MAX - 20)),
        at: now(),
    }]);
}

#[tokio::test]
async fn only_participants_post() {
    thread(
        vec![started(), posted(1, PATIENT_ACCOUNT)],
        post(OUTSIDER, "hello"),
    )
    .await
    .then_expect_error(MessagingError::NotAParticipant);
}

#[tokio::test]
async fn a_full_thread_takes_no_more_messages() {
    let mut events = vec![started()];
    events.extend((1..=MESSAGES_MAX).map(|n| posted(n, PATIENT_ACCOUNT)));
    thread(events, post(DOCTOR, "one more"))
        .await
        .then_expect_error(MessagingError::ThreadFull(MESSAGES_MAX));
}

#[tokio::test]
async fn nothing_is_posted_to_a_thread_that_does_not_exist() {
    thread(vec![], post(DOCTOR, "hello"))
        .await
        .then_expect_error(MessagingError::UnknownThread);
}

#[tokio::test]
async fn a_participant_adds_someone_in_care_or_at_the_front_desk() {
    let desk = invitee(DESK, Some(Party::FrontDesk));
    thread(
        vec![started()],
        ThreadCommand::AddParticipant {
            by: DOCTOR,
            invitee: desk,
        },
    )
    .await
    .then_expect_events(vec![ThreadEvent::ParticipantAdded {
        participant: Participant {
            user_id: DESK,
            party: Party::FrontDesk,
        },
    }]);
    thread(
        vec![started()],
        ThreadCommand::AddParticipant {
            by: DOCTOR,
            invitee: invitee(OUTSIDER, None),
        },
    )
    .await
    .then_expect_error(MessagingError::NotEligible);
    thread(
        vec![started()],
        ThreadCommand::AddParticipant {
            by: OUTSIDER,
            invitee: desk,
        },
    )
    .await
    .then_expect_error(MessagingError::NotAParticipant);
    thread(
        vec![started()],
        ThreadCommand::AddParticipant {
            by: PATIENT_ACCOUNT,
            invitee: doctor(),
        },
    )
    .await
    .then_expect_error(MessagingError::AlreadyParticipant);
}

#[tokio::test]
async fn a_participant_marks_read_up_to_a_message_of_the_thread() {
    let given = vec![
        started(),
        posted(1, PATIENT_ACCOUNT),
        posted(2, PATIENT_ACCOUNT),
    ];
    thread(
        given.clone(),
        ThreadCommand::MarkRead {
            user_id: DOCTOR,
            up_to: 2,
        },
    )
    .await
    .then_expect_events(vec![ThreadEvent::Read {
        user_id: DOCTOR,
        up_to: 2,
    }]);
    for up_to in [0, 3] {
        thread(
            given.clone(),
            ThreadCommand::MarkRead {
                user_id: DOCTOR,
                up_to,
            },
        )
        .await
        .then_expect_error(MessagingError::UnknownMessage);
    }
    thread(
        given,
        ThreadCommand::MarkRead {
            user_id: OUTSIDER,
            up_to: 1,
        },
    )
    .await
    .then_expect_error(MessagingError::NotAParticipant);
}

#[tokio::test]
async fn a_read_receipt_never_moves_back() {
    thread(
        vec![
            started(),
            posted(1, PATIENT_ACCOUNT),
            posted(2, PATIENT_ACCOUNT),
            ThreadEvent::Read {
                user_id: DOCTOR,
                up_to: 2,
            },
        ],
        ThreadCommand::MarkRead {
            user_id: DOCTOR,
            up_to: 1,
        },
    )
    .await
    .then_expect_events(vec![]);
}

#[test]
fn unread_counts_fall_as_messages_are_read_and_the_author_has_read_their_own() {
    let mut events = vec![
        started(),
        posted(1, PATIENT_ACCOUNT),
        posted(2, PATIENT_ACCOUNT),
    ];
    assert_eq!(state(events.clone()).unread(DOCTOR), 2);
    assert_eq!(state(events.clone()).unread(PATIENT_ACCOUNT), 0);
    events.push(ThreadEvent::Read {
        user_id: DOCTOR,
        up_to: 1,
    });
    assert_eq!(state(events.clone()).unread(DOCTOR), 1);
    events.push(posted(3, DOCTOR));
    let t = state(events);
    assert_eq!(t.unread(DOCTOR), 0);
    assert_eq!(t.unread(PATIENT_ACCOUNT), 1);
    assert_eq!(t.unread(OUTSIDER), 0);
    assert_eq!(t.message_count(), 3);
}

#[tokio::test]
async fn archiving_twice_changes_nothing_and_unarchiving_an_unarchived_thread_neither() {
    let given = vec![started(), posted(1, PATIENT_ACCOUNT)];
    thread(given.clone(), ThreadCommand::Archive { user_id: DOCTOR })
        .await
        .then_expect_events(vec![ThreadEvent::Archived { user_id: DOCTOR }]);
    let mut archived = given.clone();
    archived.push(ThreadEvent::Archived { user_id: DOCTOR });
    thread(archived.clone(), ThreadCommand::Archive { user_id: DOCTOR })
        .await
        .then_expect_events(vec![]);
    thread(archived, ThreadCommand::Unarchive { user_id: DOCTOR })
        .await
        .then_expect_events(vec![ThreadEvent::Unarchived { user_id: DOCTOR }]);
    thread(given.clone(), ThreadCommand::Unarchive { user_id: DOCTOR })
        .await
        .then_expect_events(vec![]);
    thread(given, ThreadCommand::Archive { user_id: OUTSIDER })
        .await
        .then_expect_error(MessagingError::NotAParticipant);
}

#[test]
fn a_new_message_brings_an_archived_thread_back_to_every_inbox() {
    let events = vec![
        started(),
        posted(1, PATIENT_ACCOUNT),
        ThreadEvent::Archived { user_id: DOCTOR },
        ThreadEvent::Archived {
            user_id: PATIENT_ACCOUNT,
        },
    ];
    let t = state(events.clone());
    assert!(t.member(DOCTOR).is_some_and(|m| m.archived));
    let mut more = events;
    more.push(posted(2, PATIENT_ACCOUNT));
    let t = state(more);
    assert!(t.members().all(|(_, m)| !m.archived));
}

#[test]
fn the_thread_names_its_patient() {
    assert_eq!(state(vec![started()]).patient("any"), Some(PATIENT));
    assert_eq!(Thread::default().patient("any"), None);
}

#[test]
fn every_event_round_trips_through_its_stored_form() {
    for (event, name) in [
        (started(), "message_thread.started"),
        (
            ThreadEvent::ParticipantAdded {
                participant: Participant {
                    user_id: DESK,
                    party: Party::FrontDesk,
                },
            },
            "message_thread.participant_added",
        ),
        (posted(1, DOCTOR), "message_thread.message_posted"),
        (
            ThreadEvent::Read {
                user_id: DOCTOR,
                up_to: 1,
            },
            "message_thread.read",
        ),
        (
            ThreadEvent::Archived { user_id: DOCTOR },
            "message_thread.archived",
        ),
        (
            ThreadEvent::Unarchived { user_id: DOCTOR },
            "message_thread.unarchived",
        ),
    ] {
        let stored = event.to_stored().unwrap();
        assert_eq!(stored.event_type, name);
        let back = ThreadEvent::from_stored(
            &stored.event_type,
            &stored.event_version,
            &stored.payload.to_string(),
        )
        .unwrap();
        assert_eq!(back, event);
    }
}
