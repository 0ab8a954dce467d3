//! The `activity` read model: one row per event, without its payload: who did
//! what to which record, and when.

use crate::runner::{Envelope, ProjectionError, Projector, Tx, Unread};
use crate::sql::{self, Value};

/// Projects every event into `activity`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Activity;

impl Projector for Activity {
    type Event = Unread;

    fn name(&self) -> &'static str {
        "activity"
    }

    fn aggregate_types(&self) -> &'static [&'static str] {
        &[]
    }

    fn tables(&self) -> &'static [&'static str] {
        &["activity"]
    }

    async fn apply_batch(
        &self,
        tx: &mut Tx,
        events: &[Envelope<Unread>],
    ) -> Result<(), ProjectionError> {
        let rows: Vec<Vec<Value>> = events
            .iter()
            .map(|e| {
                let s = &e.stored;
                vec![
                    s.global_position.into(),
                    s.aggregate_type.as_str().into(),
                    s.aggregate_id.as_str().into(),
                    s.event_type.as_str().into(),
                    s.actor_id.as_str().into(),
                    s.actor_role.as_str().into(),
                    s.recorded_at.into(),
                ]
            })
            .collect();
        sql::insert_rows(
            tx,
            "activity (global_position, aggregate_type, aggregate_id, event_type, actor_id, \
             actor_role, recorded_at)",
            // Replayable: a reset checkpoint projects again without a
            // key violation.
            "ON CONFLICT (global_position) DO NOTHING",
            &rows,
        )
        .await?;
        Ok(())
    }

    /// Who did what, when, to which record: metadata the log keeps in the
    /// clear after an erasure too (ADR 0024).
    async fn erase(&self, _: &mut Tx, _: uuid::Uuid) -> Result<(), ProjectionError> {
        Ok(())
    }
}
