//! Cross-site request forgery protection for every state-changing request to
//! the console (server functions, forms, CSV export), as an axum middleware.
//!
//! Leptos server functions have no CSRF protection of their own. A request
//! that is not GET, HEAD or OPTIONS must prove it comes from a console page:
//! its `Origin` must be the console's own origin; without `Origin`,
//! `Sec-Fetch-Site` must be `same-origin`; without either, the `Referer` must
//! be on the console's origin. Anything else gets `403`. The session cookie
//! is also `SameSite=Lax`, so other sites' POSTs do not carry it at all.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The origins a request may come from: `public_origin` when configured
/// (e.g. `https://console.example.com`), else the request's own host.
pub fn allowed_origin(headers: &HeaderMap, public_origin: Option<&str>, origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    if let Some(public) = public_origin {
        return origin.eq_ignore_ascii_case(public.trim_end_matches('/'));
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin.eq_ignore_ascii_case(&format!("http://{host}")) || origin.eq_ignore_ascii_case(&format!("https://{host}"))
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<&str> {
    let rest_at = url.find("://")? + 3;
    let end = url[rest_at..].find(['/', '?', '#']).map(|i| rest_at + i).unwrap_or(url.len());
    Some(&url[..end])
}

/// Whether a request may change state (see the module docs).
pub fn is_same_origin(method: &Method, headers: &HeaderMap, public_origin: Option<&str>) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        return origin.to_str().is_ok_and(|o| allowed_origin(headers, public_origin, o));
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    if let Some(referer) = headers.get(header::REFERER).and_then(|r| r.to_str().ok()) {
        return origin_of(referer).is_some_and(|o| allowed_origin(headers, public_origin, o));
    }
    false
}

/// The middleware: refuses cross-origin state-changing requests with 403.
pub async fn csrf_guard(public_origin: Option<String>, request: Request<Body>, next: Next) -> Response {
    if is_same_origin(request.method(), request.headers(), public_origin.as_deref()) {
        return next.run(request).await;
    }
    tracing::warn!(
        method = %request.method(),
        path = %request.uri().path(),
        origin = ?request.headers().get(header::ORIGIN),
        "cross-origin request refused"
    );
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":"cross_origin_refused","message":"This request did not come from a console page."}"#,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_are_always_allowed() {
        assert!(is_same_origin(&Method::GET, &headers(&[("origin", "https://evil.example")]), None));
    }

    #[test]
    fn origin_must_match_the_host() {
        let post = Method::POST;
        assert!(is_same_origin(
            &post,
            &headers(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")]),
            None
        ));
        assert!(!is_same_origin(
            &post,
            &headers(&[("host", "127.0.0.1:3000"), ("origin", "http://evil.example")]),
            None
        ));
        assert!(!is_same_origin(&post, &headers(&[("host", "127.0.0.1:3000"), ("origin", "null")]), None));
        assert!(!is_same_origin(
            &post,
            &headers(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3001")]),
            None
        ));
    }

    #[test]
    fn configured_public_origin_wins() {
        let h = headers(&[("host", "internal:3000"), ("origin", "https://console.example.com")]);
        assert!(is_same_origin(&Method::POST, &h, Some("https://console.example.com/")));
        let h = headers(&[("host", "internal:3000"), ("origin", "http://internal:3000")]);
        assert!(!is_same_origin(&Method::POST, &h, Some("https://console.example.com")));
    }

    #[test]
    fn fetch_metadata_and_referer_fallbacks() {
        let post = Method::POST;
        assert!(is_same_origin(&post, &headers(&[("host", "h:1"), ("sec-fetch-site", "same-origin")]), None));
        assert!(!is_same_origin(&post, &headers(&[("host", "h:1"), ("sec-fetch-site", "cross-site")]), None));
        assert!(is_same_origin(&post, &headers(&[("host", "h:1"), ("referer", "http://h:1/tenants?x=1")]), None));
        assert!(!is_same_origin(&post, &headers(&[("host", "h:1"), ("referer", "http://h:1.evil/x")]), None));
        assert!(!is_same_origin(&post, &headers(&[("host", "h:1")]), None), "no proof at all");
    }
}
