//! A patient's history: every event about them, in log order, with who did
//! it, in what role, when, why, and what changed.
//!
//! Events are read through the domain's own codec (`StoredForm`), upcast to
//! the current version, so that history shows what the live system reads
//! (a version 1 `user.created` shows no password hash) and an event no
//! release knows is an error, never a gap.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use anamnesis_commands::{LogReader, StoredEvent};
use anamnesis_domain::codec::ERASED_PAYLOAD;

use crate::{normalized, ReplayError, PAGE};

/// One event in a patient's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub position: i64,
    pub recorded_at: DateTime<Utc>,
    pub actor_id: String,
    pub actor_role: String,
    pub reason: Option<String>,
    /// Whether the actor reached the record by breaking the glass (the
    /// `break_glass` metadata of the command).
    pub break_glass: bool,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub event_type: String,
    /// The fields the event changed, before → after.
    pub changes: Vec<Change>,
    /// Whether the event's content was erased with its patient
    /// (docs/adr/0024-encryption.md): its metadata is all there is.
    pub erased: bool,
}

/// One field an event changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Dotted path within the record (`demographics.name.family`).
    pub field: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The patient's history between `from` and `to` (recorded times, both
/// inclusive), oldest first. Events before `from` are still read: they are
/// what the first change in the window changed from.
pub async fn history(
    reader: &LogReader,
    patient: Uuid,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<Entry>, ReplayError> {
    let head = reader.head().await?;
    let mut known = Record::default();
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = reader.read_patient(patient, (after, head), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.global_position;
        for stored in &page {
            if to.is_some_and(|t| stored.recorded_at > t) {
                return Ok(entries);
            }
            let erased = stored.payload == ERASED_PAYLOAD;
            let changes = if erased {
                Vec::new()
            } else {
                known.apply(stored)?
            };
            if from.is_none_or(|f| stored.recorded_at >= f) {
                entries.push(entry(stored, changes, erased)?);
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(entries)
}

/// Which entries a reader of history wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Everything.
    All,
    /// Changes to the record only (no access records).
    Changes,
    /// Access records only: who read it.
    Reads,
}

impl Kind {
    /// From `all`, `changes` or `reads`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "all" => Some(Kind::All),
            "changes" => Some(Kind::Changes),
            "reads" => Some(Kind::Reads),
            _ => None,
        }
    }

    /// Whether `entry` is of this kind.
    pub fn admits(&self, entry: &Entry) -> bool {
        let read = entry.aggregate_type == anamnesis_domain::access::ACCESS_TYPE;
        match self {
            Kind::All => true,
            Kind::Changes => !read,
            Kind::Reads => read,
        }
    }
}

fn entry(stored: &StoredEvent, changes: Vec<Change>, erased: bool) -> Result<Entry, ReplayError> {
    // Damaged metadata is an error, never "not break-the-glass".
    let metadata: Value =
        serde_json::from_str(&stored.metadata).map_err(|e| ReplayError::Unreadable {
            position: stored.global_position,
            detail: format!(
                "metadata: {}",
                anamnesis_commands::log::describe_json_error(&e)
            ),
        })?;
    let break_glass = metadata
        .get("break_glass")
        .is_some_and(|v| *v == Value::Bool(true) || *v == Value::String("true".into()));
    Ok(Entry {
        position: stored.global_position,
        recorded_at: stored.recorded_at,
        actor_id: stored.actor_id.clone(),
        actor_role: stored.actor_role.clone(),
        reason: stored.reason.clone(),
        break_glass,
        aggregate_type: stored.aggregate_type.clone(),
        aggregate_id: stored.aggregate_id.clone(),
        event_type: stored.event_type.clone(),
        changes,
        erased,
    })
}

/// What is known of each record so far, to say what an event changed: per
/// stream, and within a stream per item (an allergy, a closure) when the
/// event names one by an `…_id` field, the last value of every field.
#[derive(Default)]
struct Record {
    items: HashMap<(String, String, String), serde_json::Map<String, Value>>,
}

impl Record {
    fn apply(&mut self, stored: &StoredEvent) -> Result<Vec<Change>, ReplayError> {
        let payload = normalized(stored)?;
        let Value::Object(fields) = payload else {
            return Ok(Vec::new());
        };
        let item = fields
            .iter()
            .find_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)).filter(|_| k.ends_with("_id")))
            .unwrap_or_default();
        let key = (
            stored.aggregate_type.clone(),
            stored.aggregate_id.clone(),
            item,
        );
        let known = self.items.entry(key).or_default();
        let mut changes = Vec::new();
        for (field, after) in fields {
            let before = known.get(&field).cloned().unwrap_or(Value::Null);
            diff(&before, &after, field.clone(), &mut changes);
            known.insert(field, after);
        }
        Ok(changes)
    }
}

/// The leaves that differ between `before` and `after`, under `path`.
fn diff(before: &Value, after: &Value, path: String, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                diff(
                    b.get(k).unwrap_or(&Value::Null),
                    a.get(k).unwrap_or(&Value::Null),
                    format!("{path}.{k}"),
                    out,
                );
            }
        }
        (Value::Null, Value::Object(a)) => {
            for (k, v) in a {
                diff(&Value::Null, v, format!("{path}.{k}"), out);
            }
        }
        (b, a) if b == a => {}
        (b, a) => out.push(Change {
            field: path,
            before: (!b.is_null()).then(|| b.clone()),
            after: (!a.is_null()).then(|| a.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changed_leaves_are_reported() {
        let mut out = Vec::new();
        diff(
            &json!({"name": {"family": "Curie", "given": "Marie"}, "sex": "female"}),
            &json!({"name": {"family": "Curie-Skłodowska", "given": "Marie"}, "sex": "female"}),
            "demographics".into(),
            &mut out,
        );
        assert_eq!(
            out,
            vec![Change {
                field: "demographics.name.family".into(),
                before: Some(json!("Curie")),
                after: Some(json!("Curie-Skłodowska")),
            }]
        );
    }

    #[test]
    fn a_new_object_lists_every_field_as_added() {
        let mut out = Vec::new();
        diff(
            &Value::Null,
            &json!({"substance": "Peanut", "severity": "mild"}),
            "allergy".into(),
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|c| c.before.is_none()));
    }
}
