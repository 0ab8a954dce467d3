//! Events as the log stores them: a stable type name, a schema version and
//! a JSON payload holding the event's fields only. The one way from a domain
//! event to its stored form and back, used by the write side (loading
//! aggregates), every projector and replay.
//!
//! Each event enum is adjacently tagged with its stable type name
//! (`#[serde(tag = "type", content = "data")]`, `#[serde(rename =
//! "patient.registered")]`), never the Rust variant name: renaming a variant
//! changes nothing stored. The tag goes into the `event_type` column, the
//! content into `payload`. An older schema version is turned into the current
//! one by the enum's [`StoredForm::upcast`] before it is deserialized; stored
//! events are never rewritten.

use cqrs_es::DomainEvent;
use serde_json::{Map, Value};

/// An event in its stored form.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Stable type name, e.g. `patient.registered`.
    pub event_type: String,
    /// Schema version of the payload.
    pub event_version: String,
    /// The event's fields (`null` for an event without any).
    pub payload: Value,
}

/// Why a stored event could not be read as a domain event. Never quotes the
/// payload: it may hold patient data, and these messages reach logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// No event of this type and version is known to this release.
    #[error("unknown event {event_type} version {version}")]
    Unknown {
        /// The stored type.
        event_type: String,
        /// The stored version.
        version: String,
    },
    /// The payload does not have the shape its type and version promise.
    #[error("{event_type} version {version}: {detail}")]
    Payload {
        /// The stored type.
        event_type: String,
        /// The stored version.
        version: String,
        /// What is wrong, without the value.
        detail: String,
    },
    /// The event's patient was erased: its payload is gone for good (its
    /// data key was destroyed). Its metadata remains.
    #[error("{event_type}: erased")]
    Erased {
        /// The stored type.
        event_type: String,
    },
    /// The payload is still encrypted: it was read without the keys (a raw
    /// read of the log is for verification and backups only).
    #[error("{event_type}: an encrypted payload read without its key")]
    Sealed {
        /// The stored type.
        event_type: String,
    },
}

/// How an encrypted payload begins in the log (docs/adr/0024-encryption.md):
/// `{"$sealed":"v1.<base64 of nonce and ciphertext>"}`.
pub const SEALED_PREFIX: &str = "{\"$sealed\":\"v1.";

/// What the log reader gives for the payload of an event whose patient was
/// erased.
pub const ERASED_PAYLOAD: &str = "{\"$erased\":true}";

/// The version an event type is written at until its schema changes.
pub const CURRENT_VERSION: &str = "1";

/// An event enum with a stored form. Implement it (usually with no body) for
/// every aggregate's event type; when a schema gains a version, return the
/// new one from `DomainEvent::event_version` and override
/// [`StoredForm::upcast`] to read the old ones.
pub trait StoredForm: DomainEvent {
    /// The payload of `event_type` at `version`, as the current version's.
    /// The default knows only version 1.
    fn upcast(event_type: &str, version: &str, payload: Value) -> Result<Value, DecodeError> {
        if version == CURRENT_VERSION {
            Ok(payload)
        } else {
            Err(DecodeError::Unknown {
                event_type: event_type.to_owned(),
                version: version.to_owned(),
            })
        }
    }

    /// The stored form: type, current version (`event_version`), fields.
    fn to_stored(&self) -> Result<Encoded, DecodeError> {
        let version = self.event_version();
        let tagged = serde_json::to_value(self).map_err(|e| DecodeError::Payload {
            event_type: String::new(),
            version: version.clone(),
            detail: describe_json_error(&e),
        })?;
        let Value::Object(mut tagged) = tagged else {
            return Err(DecodeError::Payload {
                event_type: String::new(),
                version: version.clone(),
                detail: "an event enum must be adjacently tagged".into(),
            });
        };
        let Some(Value::String(event_type)) = tagged.remove("type") else {
            return Err(DecodeError::Payload {
                event_type: String::new(),
                version: version.clone(),
                detail: "an event enum must be tagged with \"type\"".into(),
            });
        };
        Ok(Encoded {
            event_type,
            event_version: version,
            payload: tagged.remove("data").unwrap_or(Value::Null),
        })
    }

    /// The domain event of a stored one, upcast from its version.
    fn from_stored(event_type: &str, version: &str, payload: &str) -> Result<Self, DecodeError> {
        let failed = |detail: String| DecodeError::Payload {
            event_type: event_type.to_owned(),
            version: version.to_owned(),
            detail,
        };
        if payload == ERASED_PAYLOAD {
            return Err(DecodeError::Erased {
                event_type: event_type.to_owned(),
            });
        }
        if payload.starts_with(SEALED_PREFIX) {
            return Err(DecodeError::Sealed {
                event_type: event_type.to_owned(),
            });
        }
        let payload: Value =
            serde_json::from_str(payload).map_err(|e| failed(describe_json_error(&e)))?;
        let payload = Self::upcast(event_type, version, payload)?;
        let mut tagged = Map::with_capacity(2);
        tagged.insert("type".into(), Value::String(event_type.to_owned()));
        if !payload.is_null() {
            tagged.insert("data".into(), payload);
        }
        serde_json::from_value(Value::Object(tagged)).map_err(|e| {
            if e.to_string().starts_with("unknown variant") {
                DecodeError::Unknown {
                    event_type: event_type.to_owned(),
                    version: version.to_owned(),
                }
            } else {
                failed(describe_json_error(&e))
            }
        })
    }
}

/// What went wrong decoding JSON, without quoting it: a parser's message can
/// hold the value it choked on, which may be patient data.
pub fn describe_json_error(e: &serde_json::Error) -> String {
    let message = e.to_string();
    // These name a field or variant of our own schema, never a value.
    let structural = [
        "missing field",
        "unknown field",
        "unknown variant",
        "duplicate field",
    ];
    let position = if e.line() > 0 {
        format!(" at line {}, column {}", e.line(), e.column())
    } else {
        String::new()
    };
    if structural.iter().any(|s| message.starts_with(s)) {
        let head = message.split(", expected").next().unwrap_or("");
        let head = head.split(" at line").next().unwrap_or(head);
        return format!("{head}{position}");
    }
    let kind = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "a value of the wrong type or shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    format!("{kind}{position}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_error_does_not_quote_the_value() {
        let e = serde_json::from_str::<u32>("\"Marie Curie\"").unwrap_err();
        let described = describe_json_error(&e);
        assert!(!described.contains("Marie"), "{described}");
    }

    #[test]
    fn a_missing_field_is_named() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct S {
            family: String,
        }
        let e = serde_json::from_str::<S>("{}").unwrap_err();
        assert!(describe_json_error(&e).starts_with("missing field `family`"));
    }
}
