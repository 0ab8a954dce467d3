//! What this process's writer appended, by aggregate type: lets a
//! projector that reads a few aggregate types pass over a stretch of the log
//! that holds none of them without asking the database (ADR 0028). Only
//! stretches this process wrote entirely are known; positions appended by
//! another process (or before the log was opened here) are never passed
//! over, they are read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Known {
    /// Positions after this one, up to `upto`, were all appended here.
    from: i64,
    upto: i64,
    /// The last position of the last batch holding each aggregate type.
    by_type: HashMap<String, i64>,
    /// The same for erasures, which every projector reads.
    erasure: i64,
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
    /// holding `types`, and an erasure if `erasure`.
    pub(crate) fn record<'a>(
        &self,
        (before, end): (i64, i64),
        types: impl Iterator<Item = &'a str>,
        erasure: bool,
    ) {
        let Ok(mut known) = self.0.lock() else {
            return;
        };
        if before != known.upto {
            // Someone else appended in between: what came before is unknown.
            known.from = before;
        }
        known.upto = end;
        for t in types {
            match known.by_type.get_mut(t) {
                Some(last) => *last = end,
                None => {
                    known.by_type.insert(t.to_owned(), end);
                }
            }
        }
        if erasure {
            known.erasure = end;
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
}

#[cfg(test)]
mod tests {
    use super::Appended;

    #[test]
    fn only_stretches_appended_here_without_the_types_are_passed_over() {
        let a = Appended::new(10);
        // Before anything was appended here: unknown.
        assert!(!a.holds_none_of(&["chart"], (5, 10)));
        a.record((10, 20), ["patient"].into_iter(), false);
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
        a.record((25, 30), ["access"].into_iter(), false);
        assert!(!a.holds_none_of(&["chart"], (20, 30)));
        assert!(a.holds_none_of(&["chart"], (25, 30)));
        // An erasure is read by every projector.
        a.record((30, 31), ["patient"].into_iter(), true);
        assert!(!a.holds_none_of(&["chart"], (30, 31)));
        assert!(a.holds_none_of(&["chart"], (31, 31)));
    }
}
