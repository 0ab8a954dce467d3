//! What browser clients (the patient portal, the provider and front-desk
//! apps) need from the API and what protects them: security headers on
//! every answer, and CORS for the origins the clinic configures, nothing by
//! default.

use axum::http::{header, HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Headers on every answer. The API answers JSON only: no page of it may
/// be framed, sniffed into something executable, cached by a browser or a
/// proxy (answers hold patient data), or leak its URL as a referrer.
pub const SECURITY_HEADERS: [(&str, &str); 7] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "strict-transport-security",
        "max-age=63072000; includeSubDomains",
    ),
];

/// Adds [`SECURITY_HEADERS`] to an answer that does not set them itself.
pub async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers
            .entry(HeaderName::from_static(name))
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Parses `--cors-origins`: a comma-separated list of origins
/// (`https://portal.example.org`, `http://localhost:5173`), each a scheme,
/// a host and an optional port, nothing else.
pub fn origins(text: &str) -> anyhow::Result<Vec<HeaderValue>> {
    let mut out = Vec::new();
    for origin in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .ok_or_else(|| {
                anyhow::anyhow!("CORS origin {origin:?} must start with https:// or http://")
            })?;
        anyhow::ensure!(
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')),
            "CORS origin {origin:?} must be a scheme, a host and an optional port, with no \
             path, wildcard or trailing slash"
        );
        out.push(HeaderValue::from_str(origin)?);
    }
    Ok(out)
}

/// CORS for `origins` (none: no CORS layer at all, so browsers on other
/// origins are refused by their own rules). Credentials go in the
/// `Authorization` header, never cookies, so none are allowed.
pub fn cors(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins.iter().cloned()))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-min-position"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
                header::LOCATION,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert!(origins("").unwrap().is_empty());
        assert_eq!(
            origins("https://portal.example.org, http://localhost:5173")
                .unwrap()
                .len(),
            2
        );
        for bad in [
            "portal.example.org",
            "https://portal.example.org/",
            "https://*.example.org",
            "https://portal.example.org/app",
            "ftp://x",
        ] {
            assert!(origins(bad).is_err(), "{bad}");
        }
    }
}
