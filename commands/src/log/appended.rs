//! What this process's writer appended: by aggregate type, so that a
//! projector that reads a few aggregate types passes over a stretch of the
//! log that holds none of them without asking the database (ADR 0028); and
//! the last events themselves, as a reader opens them, so that the
//! projectors of this process read what was just appended from memory
//! instead of each reading (and decrypting) it from the database again
//! (ADR 0007). Only stretches this process wrote entirely are known;
//! positions appended by another process (or before the log was opened
//! here) are never passed over or served from memory, they are read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use anamnesis_domain::subject::ERASURE_EVENT;

use super::StoredEvent;

/// The most recent events kept in memory: at most this many…
const RECENT_EVENTS: usize = 16_384;
/// …and at most this many bytes of payload and metadata.
const RECENT_BYTES: usize = 32 << 20;

#[derive(Debug, Default)]
struct Known {
    /// Positions after this one, up to `upto`, were all appended here.
    from: i64,
    upto: i64,
    /// The last position of the last batch holding each aggregate type.
    by_type: HashMap<String, i64>,
    /// The same for erasures, which every projector reads.
    erasure: i64,
    /// The last events appended here, at consecutive positions ending at
    /// `upto` (none when the last batch erased a patient).
    recent: VecDeque<Arc<StoredEvent>>,
    /// Payload and metadata bytes in `recent`.
    recent_bytes: usize,
}

impl Known {
    fn forget_recent(&mut self) {
        self.recent.clear();
        self.recent_bytes = 0;
    }
}

fn size_of(event: &StoredEvent) -> usize {
    event.payload.len() + event.metadata.len()
}

/// Shared by a log's writer (which records each committed batch before it
/// moves the head signal) and its readers.
#[derive(Debug, Clone)]
pub(crate) struct Appended(Arc<Mutex<Known>>);

impl Appended {
    /// Nothing known yet: the log's head is `head`.
    pub(crate) fn new(head: i64) -> Self {
        Self(Arc::new(Mutex::new(Known {
            from: head,
            upto: head,
            ..Known::default()
        })))
    }

    /// Records a committed batch: positions after `before` up to `end`,
    /// holding `events` (as a reader opens them, in position order).
    ///
    /// A batch that erases a patient empties the memory of recent events:
    /// from its commit on, the database reads that patient's payloads as
    /// erased, and so must every reader.
    pub(crate) fn record(&self, (before, end): (i64, i64), events: Vec<StoredEvent>) {
        let Ok(mut known) = self.0.lock() else {
            return;
        };
        if before != known.upto {
            // Someone else appended in between: what came before is unknown.
            known.from = before;
            known.forget_recent();
        }
        known.upto = end;
        let erasure = events.iter().any(|e| e.event_type == ERASURE_EVENT);
        for e in &events {
            match known.by_type.get_mut(e.aggregate_type.as_str()) {
                Some(last) => *last = end,
                None => {
                    known.by_type.insert(e.aggregate_type.clone(), end);
                }
            }
        }
        let consecutive = events
            .iter()
            .zip(before + 1..)
            .all(|(e, position)| e.global_position == position)
            && events.len() as i64 == end - before;
        if erasure {
            known.erasure = end;
        }
        if erasure || !consecutive {
            known.forget_recent();
            return;
        }
        for e in events {
            known.recent_bytes += size_of(&e);
            known.recent.push_back(Arc::new(e));
        }
        while known.recent.len() > RECENT_EVENTS || known.recent_bytes > RECENT_BYTES {
            match known.recent.pop_front() {
                Some(e) => known.recent_bytes -= size_of(&e),
                None => break,
            }
        }
    }

    /// Whether positions after `after` up to `until` certainly hold no
    /// event of `types` (nor an erasure): this process appended all of them
    /// and none of those batches held one. `false` whenever unsure.
    pub(crate) fn holds_none_of(&self, types: &[&str], (after, until): (i64, i64)) -> bool {
        let Ok(known) = self.0.lock() else {
            return false;
        };
        !types.is_empty()
            && after >= known.from
            && until <= known.upto
            && known.erasure <= after
            && types
                .iter()
                .all(|t| known.by_type.get(*t).is_none_or(|last| *last <= after))
    }

    /// What `LogReader::read_types` reads from the database, when every
    /// position after `after` up to `until` is in memory: up to `limit`
    /// events of `types` (every type when empty) or erasures, in position
    /// order. `None` when any of those positions is not.
    pub(crate) fn read_types(
        &self,
        types: &[&str],
        (after, until): (i64, i64),
        limit: i64,
    ) -> Option<Vec<Arc<StoredEvent>>> {
        let known = self.0.lock().ok()?;
        let first = known.recent.front()?.global_position;
        if after + 1 < first || until > known.upto {
            return None;
        }
        let start = usize::try_from(after + 1 - first).ok()?;
        let end = usize::try_from(until + 1 - first).ok()?.max(start);
        let limit = usize::try_from(limit).unwrap_or(0);
        Some(
            known
                .recent
                .range(start..end)
                .filter(|e| super::reader::of_types(types, e))
                .take(limit)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Appended;
    use crate::StoredEvent;

    fn event(position: i64, aggregate_type: &str, event_type: &str) -> StoredEvent {
        StoredEvent {
            global_position: position,
            event_id: uuid::Uuid::now_v7(),
            aggregate_type: aggregate_type.into(),
            aggregate_id: "a".into(),
            sequence: position,
            event_type: event_type.into(),
            event_version: "1".into(),
            payload: "{}".into(),
            metadata: "{}".into(),
            recorded_at: chrono::Utc::now(),
            actor_id: "u".into(),
            actor_role: "doctor".into(),
            reason: None,
            correlation_id: None,
            causation_id: None,
            patient_id: None,
            prev_hash: Vec::new(),
            hash: Vec::new(),
        }
    }

    fn batch(after: i64, types: &[&str]) -> Vec<StoredEvent> {
        (after + 1..)
            .zip(types)
            .map(|(p, t)| event(p, t, &format!("{t}.happened")))
            .collect()
    }

    fn positions(a: &Appended, types: &[&str], range: (i64, i64), limit: i64) -> Option<Vec<i64>> {
        a.read_types(types, range, limit)
            .map(|events| events.iter().map(|e| e.global_position).collect())
    }

    #[test]
    fn only_stretches_appended_here_without_the_types_are_passed_over() {
        let a = Appended::new(10);
        // Before anything was appended here: unknown.
        assert!(!a.holds_none_of(&["chart"], (5, 10)));
        a.record((10, 20), batch(10, &["patient"; 10]));
        assert!(a.holds_none_of(&["chart"], (10, 20)));
        assert!(!a.holds_none_of(&["patient"], (10, 20)));
        assert!(
            !a.holds_none_of(&["chart"], (9, 20)),
            "position 10 is not ours"
        );
        assert!(
            !a.holds_none_of(&["chart"], (10, 21)),
            "21 is not appended yet"
        );
        assert!(!a.holds_none_of(&[], (10, 20)), "no types: every event");
        // Another process appended 21..=25; this one 26..=30.
        a.record((25, 30), batch(25, &["access"; 5]));
        assert!(!a.holds_none_of(&["chart"], (20, 30)));
        assert!(a.holds_none_of(&["chart"], (25, 30)));
        // An erasure is read by every projector.
        let mut erasing = batch(30, &["patient"]);
        erasing[0].event_type = anamnesis_domain::subject::ERASURE_EVENT.into();
        a.record((30, 31), erasing);
        assert!(!a.holds_none_of(&["chart"], (30, 31)));
        assert!(a.holds_none_of(&["chart"], (31, 31)));
    }

    #[test]
    fn only_positions_appended_here_since_the_last_erasure_are_read_from_memory() {
        let a = Appended::new(10);
        assert_eq!(positions(&a, &[], (10, 10), 100), None, "nothing yet");
        a.record(
            (10, 14),
            batch(10, &["patient", "chart", "patient", "bill"]),
        );
        assert_eq!(
            positions(&a, &["patient"], (10, 14), 100),
            Some(vec![11, 13])
        );
        assert_eq!(positions(&a, &[], (11, 14), 2), Some(vec![12, 13]));
        assert_eq!(positions(&a, &["chart"], (12, 14), 100), Some(vec![]));
        assert_eq!(positions(&a, &[], (14, 14), 100), Some(vec![]));
        assert_eq!(positions(&a, &[], (9, 14), 100), None, "10 is not ours");
        assert_eq!(positions(&a, &[], (10, 15), 100), None, "15 is not yet");
        // Another process appended 15..=16: what came before is forgotten.
        a.record((16, 17), batch(16, &["chart"]));
        assert_eq!(positions(&a, &[], (14, 17), 100), None);
        assert_eq!(positions(&a, &[], (16, 17), 100), Some(vec![17]));
        // An erasure empties the memory: earlier payloads now read erased.
        let mut erasing = batch(17, &["patient"]);
        erasing[0].event_type = anamnesis_domain::subject::ERASURE_EVENT.into();
        a.record((17, 18), erasing);
        assert_eq!(positions(&a, &[], (16, 18), 100), None);
        assert_eq!(positions(&a, &[], (17, 18), 100), None);
        a.record((18, 19), batch(18, &["bill"]));
        assert_eq!(positions(&a, &["bill"], (18, 19), 100), Some(vec![19]));
    }

    #[test]
    fn the_memory_keeps_the_latest_events_only() {
        let a = Appended::new(0);
        let mut at = 0;
        while at < super::RECENT_EVENTS as i64 + 100 {
            a.record((at, at + 100), batch(at, &["patient"; 100]));
            at += 100;
        }
        assert_eq!(positions(&a, &[], (0, at), 10), None, "the oldest are gone");
        let last = positions(&a, &[], (at - 5, at), 10).expect("the newest are kept");
        assert_eq!(last, vec![at - 4, at - 3, at - 2, at - 1, at]);
    }
}
