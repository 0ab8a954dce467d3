//! The `activity` read model: one row per event, without its payload: who did
//! what to which record, and when.

use anamnesis_commands::StoredEvent;

use crate::execute_on;
use crate::runner::{ProjectionError, Projector, Tx};

/// Projects every event into `activity`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Activity;

impl Projector for Activity {
    fn name(&self) -> &'static str {
        "activity"
    }

    async fn apply(&self, tx: &mut Tx, e: &StoredEvent) -> Result<(), ProjectionError> {
        execute_on!(
            tx,
            sqlx::query(
                "INSERT INTO activity (global_position, aggregate_type, aggregate_id, \
                     event_type, actor_id, actor_role, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            )
            .bind(e.global_position)
            .bind(&e.aggregate_type)
            .bind(&e.aggregate_id)
            .bind(&e.event_type)
            .bind(&e.actor_id)
            .bind(&e.actor_role)
            .bind(e.recorded_at)
        )?;
        Ok(())
    }
}
