//! Request extractors with errors in our problem format.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::error::ApiError;

/// A JSON body. Errors name the field and the kind of fault, never the value
/// that was sent (it may be patient data).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        if !json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest {
                    code: "unreadable_body",
                    field: None,
                    detail: "the body could not be read".into(),
                }
            }
        })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
        de.end().map_err(|_| ApiError::BadRequest {
            code: "malformed_json",
            field: None,
            detail: "trailing characters after the JSON value".into(),
        })?;
        Ok(Body(value))
    }
}

/// Whether a `Content-Type` names JSON: `application/json`, in any case,
/// with parameters or none (`application/jsonfoo` is not).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

fn json_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    // The path up to the last segment: for an unknown field, the object that
    // holds it. The unknown name itself is the client's text, never repeated.
    let segments: Vec<String> = e.path().iter().map(ToString::to_string).collect();
    let parent = segments
        .split_last()
        .map(|(_, init)| init.to_vec())
        .unwrap_or_default();
    let inner = e.into_inner();
    let message = inner.to_string();
    if matches!(
        inner.classify(),
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof
    ) {
        return ApiError::BadRequest {
            code: "malformed_json",
            field: None,
            detail: format!(
                "the body is not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            ),
        };
    }
    // serde's messages quote field names between backticks; values are never used.
    let quoted = message.split('`').nth(1).map(str::to_owned);
    let join = |parent: &str, name: Option<String>| match (parent, name) {
        (".", Some(n)) | ("", Some(n)) => Some(n),
        (p, Some(n)) => Some(format!("{p}.{n}")),
        (p, None) => Some(p.to_owned()),
    };
    let (code, field, detail) = if message.starts_with("unknown field") {
        (
            "unknown_field",
            Some(dotted(&parent)).filter(|p| !p.is_empty()),
            "unknown field (its name is not repeated)",
        )
    } else if message.starts_with("missing field") {
        (
            "missing_field",
            join(&path, quoted),
            "required field is missing",
        )
    } else if message.starts_with("invalid type") {
        ("invalid_type", Some(path), "wrong type")
    } else {
        ("invalid_value", Some(path), "invalid value")
    };
    ApiError::BadRequest {
        code,
        field,
        detail: detail.to_owned(),
    }
}

/// Path segments joined as serde_path_to_error writes them: `a.b[0].c`.
fn dotted(segments: &[String]) -> String {
    let mut out = String::new();
    for s in segments {
        if !s.starts_with('[') && !out.is_empty() {
            out.push('.');
        }
        out.push_str(s);
    }
    out
}

/// A calendar date exactly as `YYYY-MM-DD` (ISO 8601 extended, four-digit
/// year). chrono alone also takes `2020-1-1` and signed or five-digit years.
pub fn parse_iso_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// Deserializes a date that must be `YYYY-MM-DD`.
pub fn iso_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    parse_iso_date(&text)
        .ok_or_else(|| serde::de::Error::custom("expected a calendar date as YYYY-MM-DD"))
}

/// Deserializes an optional date that must be `YYYY-MM-DD` when present.
pub fn iso_date_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NaiveDate>, D::Error> {
    let text = <Option<std::borrow::Cow<'de, str>> as serde::Deserialize>::deserialize(d)?;
    text.map(|t| {
        parse_iso_date(&t)
            .ok_or_else(|| serde::de::Error::custom("expected a calendar date as YYYY-MM-DD"))
    })
    .transpose()
}

/// The parameters of a request's path. A segment that is no text (bad
/// UTF-8 after percent-decoding) names nothing: `404 not_found` as a
/// problem, never axum's plain-text 400.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|_| ApiError::NotFound)
    }
}

/// The read-your-writes position a query must reflect (`X-Min-Position`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MinPosition(pub Option<i64>);

/// How long a query waits for its read model to reach `X-Min-Position`.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

impl<S: Send + Sync> FromRequestParts<S> for MinPosition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("x-min-position") else {
            return Ok(MinPosition(None));
        };
        value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|p| *p >= 0)
            .map(|p| MinPosition(Some(p)))
            .ok_or(ApiError::BadRequest {
                code: "invalid_header",
                field: Some("X-Min-Position".into()),
                detail: "X-Min-Position must be a non-negative integer".into(),
            })
    }
}

impl MinPosition {
    /// [`Self::wait`] for every one of several read models.
    pub async fn wait_all(
        self,
        progress: impl IntoIterator<Item = watch::Receiver<i64>>,
    ) -> Result<(), ApiError> {
        for p in progress {
            Self(self.0).wait(p).await?;
        }
        Ok(())
    }

    /// Waits, bounded, until `progress` reaches the requested position.
    pub async fn wait(self, mut progress: watch::Receiver<i64>) -> Result<(), ApiError> {
        let Some(position) = self.0 else {
            return Ok(());
        };
        let caught_up = tokio::time::timeout(MAX_WAIT, progress.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok());
        if caught_up {
            return Ok(());
        }
        Err(ApiError::NotCaughtUp {
            position,
            reached: *progress.borrow(),
        })
    }
}

/// Whether the client asked for the database's answer, not a cache's
/// (`Cache-Control: no-cache`, ADR 0022).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCache(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for NoCache {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let asked = parts
            .headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|d| d.trim().eq_ignore_ascii_case("no-cache"));
        Ok(NoCache(asked))
    }
}

/// Where a read was answered from: Redis or the database (ADR 0022).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Redis,
    Database,
}

/// A JSON answer with `X-Read-Source` saying where it was read.
pub type Sourced<T> = ([(&'static str, &'static str); 1], axum::Json<T>);

/// `body`, read from `source`.
pub fn sourced<T>(source: Source, body: T) -> Sourced<T> {
    let name = match source {
        Source::Redis => "redis",
        Source::Database => "database",
    };
    ([("x-read-source", name)], axum::Json(body))
}

/// An instant as RFC 3339 with an offset (`2026-12-01T09:30:00-08:00`), as UTC.
pub fn parse_instant(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Deserializes an RFC 3339 instant with its offset.
pub fn instant<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<chrono::DateTime<chrono::Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    parse_instant(&text).ok_or_else(|| {
        serde::de::Error::custom("expected an RFC 3339 time with offset, e.g. 2026-12-01T09:30:00Z")
    })
}

/// [`instant`] for an optional field.
pub fn instant_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error> {
    let text = <Option<std::borrow::Cow<'de, str>> as serde::Deserialize>::deserialize(d)?;
    text.map(|t| {
        parse_instant(&t).ok_or_else(|| {
            serde::de::Error::custom(
                "expected an RFC 3339 time with offset, e.g. 2026-12-01T09:30:00Z",
            )
        })
    })
    .transpose()
}

/// A query parameter that is not acceptable: 400 naming it, never echoing it.
/// A record's id from the path: one that is no UUID names no record (404).
pub fn id_of(raw: &str) -> Result<uuid::Uuid, crate::error::ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| crate::error::ApiError::NotFound)
}

pub fn bad_param(field: &str, detail: &str) -> crate::error::ApiError {
    crate::error::ApiError::BadRequest {
        code: "invalid_value",
        field: Some(field.to_owned()),
        detail: detail.to_owned(),
    }
}

/// Query parameters that could not be read at all: 400 saying which exist.
pub fn bad_query(detail: &str) -> crate::error::ApiError {
    crate::error::ApiError::BadRequest {
        code: "invalid_query",
        field: None,
        detail: detail.to_owned(),
    }
}

/// An optional UUID query parameter, as its canonical text.
pub fn uuid_param(
    field: &str,
    v: Option<String>,
) -> Result<Option<String>, crate::error::ApiError> {
    v.map(|v| {
        uuid::Uuid::parse_str(&v)
            .map(|u| u.to_string())
            .map_err(|_| bad_param(field, "an id is a UUID"))
    })
    .transpose()
}

/// An optional RFC 3339 query parameter.
pub fn instant_param(
    field: &str,
    v: Option<String>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, crate::error::ApiError> {
    v.map(|t| parse_instant(&t).ok_or_else(|| bad_param(field, "a time is RFC 3339 with offset")))
        .transpose()
}

/// A page size: `default` when absent, else 1 to `max`.
pub fn page_size(
    raw: Option<String>,
    default: i64,
    max: i64,
) -> Result<i64, crate::error::ApiError> {
    match raw {
        None => Ok(default),
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| bad_param("limit", &format!("limit is 1 to {max}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_iso_date_parses() {
        assert_eq!(
            parse_iso_date("2020-01-31"),
            NaiveDate::from_ymd_opt(2020, 1, 31)
        );
    }

    #[test]
    fn short_fields_signed_and_long_years_are_refused() {
        for bad in [
            "2020-1-1",
            "-0001-01-01",
            "+2020-01-01",
            "20200-01-01",
            "2020-02-30",
            "2020/01/01",
        ] {
            assert_eq!(parse_iso_date(bad), None, "{bad}");
        }
    }
}
