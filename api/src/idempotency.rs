//! `Idempotency-Key` on any command: a retry with the same key gets the first
//! outcome and writes nothing (docs/adr/0005-idempotency.md).
//!
//! The key is recorded by the append transaction, with the command's events,
//! so "did my command commit?" always has an answer: when a client could not
//! tell (a connection lost during the commit, a deadline), it retries with the
//! same key and learns the outcome.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};

use anamnesis_commands::{EventMetadata, Idempotency, Outcome};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::Accepted;
use crate::server::MAX_BODY_BYTES;
use crate::state::AppState;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// A request's idempotency key, scoped to its caller, and its fingerprint.
#[derive(Debug, Clone)]
pub struct Key {
    key: Vec<u8>,
    request_hash: Vec<u8>,
}

impl Key {
    /// The audit metadata of a command by `who`, carrying this request's key
    /// (if any) and what the command will answer.
    pub fn metadata(
        key: Option<&Key>,
        who: &Principal,
        status: StatusCode,
        id: &str,
    ) -> EventMetadata {
        let mut metadata = EventMetadata::by(who.actor());
        metadata.idempotency = key.map(|k| k.recorded(status, id));
        metadata
    }

    /// What the append records under this key.
    pub fn recorded(&self, status: StatusCode, id: &str) -> Idempotency {
        Idempotency {
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            status: status.as_u16(),
            result_id: id.to_owned(),
        }
    }
}

/// The key of the current request, if it sent one.
pub struct RequestKey(pub Option<Key>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, ApiError> {
        Ok(RequestKey(parts.extensions.get::<Key>().cloned()))
    }
}

/// The first outcome, answered again.
pub fn replay(outcome: &Outcome) -> Response {
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
    let mut response = if status == StatusCode::NO_CONTENT {
        status.into_response()
    } else {
        (
            status,
            Json(Accepted {
                id: outcome.result_id.clone(),
                position: outcome.position,
            }),
        )
            .into_response()
    };
    response
        .headers_mut()
        .insert("idempotency-replayed", HeaderValue::from_static("true"));
    response
}

fn digest(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().to_vec()
}

/// The commands whose first answer is not kept to replay: sign-in and
/// second-factor enrolment answer with tokens, secrets and recovery codes
/// (never stored in the log's idempotency table), and an erasure destroys
/// what a replay would describe. A key sent to one is refused (ADR 0005),
/// never silently ignored.
pub(crate) fn takes_no_key(path: &str) -> bool {
    const PATHS: [&str; 5] = [
        "/v1/auth/login",
        "/v1/auth/login/mfa",
        "/v1/auth/refresh",
        "/v1/me/mfa/totp",
        "/v1/me/mfa/totp/confirm",
    ];
    PATHS.contains(&path) || (path.starts_with("/v1/patients/") && path.ends_with("/erasure"))
}

/// Answers a repeated command from the log, and gives a new one its key.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let Some(raw) = req.headers().get(HEADER) else {
        return next.run(req).await;
    };
    let valid = raw.len() <= 255
        && !raw.is_empty()
        && raw.as_bytes().iter().all(|b| (0x21..=0x7e).contains(b));
    if !valid {
        return ApiError::BadRequest {
            code: "invalid_header",
            field: Some("Idempotency-Key".into()),
            detail: "Idempotency-Key is 1 to 255 visible ASCII characters".into(),
        }
        .into_response();
    }
    if takes_no_key(req.uri().path()) {
        return ApiError::BadRequest {
            code: "idempotency_key_unsupported",
            field: Some("Idempotency-Key".into()),
            detail: "this operation cannot be repeated by key (its answer holds a secret, \
                     or it is not kept for replay); send it without Idempotency-Key"
                .into(),
        }
        .into_response();
    }
    let client_key = raw.as_bytes().to_vec();
    // Keys are the caller's own: another user's identical key is another
    // key. Only a request with no credentials at all is "anonymous"; one
    // with credentials that do not check out goes on to be refused by its
    // handler, and is never answered from someone else's outcome.
    let scope = match req.headers().get(axum::http::header::AUTHORIZATION) {
        None => "anonymous".to_owned(),
        Some(value) => {
            let subject = value
                .to_str()
                .ok()
                .and_then(crate::auth::token_of)
                .and_then(|t| state.tokens().subject(t));
            match subject {
                Some(user) => user,
                None => return next.run(req).await,
            }
        }
    };
    let (parts, body) = req.into_parts();
    // Document uploads are the one body larger than MAX_BODY_BYTES, and
    // only a signed-in user uploads: a request without credentials is
    // never buffered past the JSON limit (every route still refuses more
    // when it reads the body).
    let limit = if scope == "anonymous" {
        MAX_BODY_BYTES
    } else {
        MAX_BODY_BYTES.max(state.clinical().documents.max_bytes)
    };
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    // Everything the handler reads of the request: a retry with another
    // query (a document's title) or content type is another request.
    let content_type = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .map_or(&b""[..], |v| v.as_bytes());
    let key = Key {
        key: digest(&[b"anamnesis.idempotency", scope.as_bytes(), &client_key]),
        request_hash: digest(&[
            parts.method.as_str().as_bytes(),
            parts.uri.path().as_bytes(),
            parts.uri.query().unwrap_or("").as_bytes(),
            content_type,
            &bytes,
        ]),
    };
    match answer_from_log(&state, &key).await {
        Ok(Some(response)) => return response,
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(key.clone());
    let response = next.run(req).await;
    if response.status().is_client_error() {
        // A twin of this request may have committed first (the aggregate then
        // refused this one as a duplicate): answer as the twin was answered.
        if let Ok(Some(replayed)) = answer_from_log(&state, &key).await {
            return replayed;
        }
    }
    response
}

async fn answer_from_log(state: &AppState, key: &Key) -> Result<Option<Response>, ApiError> {
    let Some(outcome) = state.log().idempotent_outcome(&key.key).await? else {
        return Ok(None);
    };
    if outcome.request_hash != key.request_hash {
        return Err(ApiError::invalid(
            "idempotency_key_reused",
            Some("Idempotency-Key"),
            "this Idempotency-Key was used for another request",
        ));
    }
    Ok(Some(replay(&outcome)))
}
