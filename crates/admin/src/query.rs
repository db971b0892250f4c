//! Admin query strings: checked strictly, then decoded into the endpoint's
//! typed `…Params` struct ([`AdminQuery`]).

use serde::de::DeserializeOwned;

use crate::error::AdminError;

/// Most rows one page of a list may hold.
pub const MAX_PAGE: i64 = 500;

/// `limit` and `offset` of a list endpoint → `Some((limit, offset))` for a
/// page, `None` for the whole list (neither given). `limit` defaults to 50
/// when only `offset` is given.
pub fn page(limit: Option<i64>, offset: Option<i64>) -> Result<Option<(i64, i64)>, AdminError> {
    if limit.is_none() && offset.is_none() {
        return Ok(None);
    }
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AdminError::BadRequest(format!("`limit` must be an integer from 1 to {MAX_PAGE}.")));
    }
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(AdminError::BadRequest("`offset` must not be negative.".into()));
    }
    Ok(Some((limit, offset)))
}

/// Longest admin query string accepted (bytes, as sent).
pub const MAX_QUERY_BYTES: usize = 8192;

/// An admin request's query parameters as the endpoint's `…Params` struct
/// (the same struct documents them in the OpenAPI document).
///
/// The raw query is checked strictly first: a malformed percent-escape, bytes
/// that are not UTF-8 once decoded (`%FF`), a control character (`%00`), a
/// parameter given twice or a query string longer than [`MAX_QUERY_BYTES`] is
/// a 400 in the admin error shape, before the handler runs (axum's `Query`
/// alone would replace bad bytes with U+FFFD and keep the last duplicate
/// silently). Then axum's `Query<T>` decodes it; a value of the wrong type (or
/// an unknown name, where `T` denies them) is a 400 naming the parameter.
#[derive(Debug, Default)]
pub struct AdminQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for AdminQuery<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, AdminError> {
        parse_query(parts.uri.query().unwrap_or_default())?;
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(params)| AdminQuery(params))
            .map_err(|rejection| AdminError::BadRequest(typed_error(&rejection.body_text())))
    }
}

/// axum's rejection text as an admin error message: `limit: invalid digit
/// found in string` → "Query parameter `limit`: invalid digit found in string."
fn typed_error(text: &str) -> String {
    let detail = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(text);
    match detail.split_once(": ") {
        Some((name, why)) if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            format!("Query parameter `{name}`: {why}.")
        }
        _ => format!("Invalid query string: {detail}."),
    }
}

/// Decodes an `application/x-www-form-urlencoded` query string (see [`AdminQuery`]).
pub fn parse_query(raw: &str) -> Result<std::collections::HashMap<String, String>, AdminError> {
    if raw.len() > MAX_QUERY_BYTES {
        return Err(AdminError::BadRequest(format!(
            "The query string is {} bytes long; at most {MAX_QUERY_BYTES} are accepted.",
            raw.len()
        )));
    }
    let mut out = std::collections::HashMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode_component(name, None)?;
        let value = decode_component(value, Some(&name))?;
        if out.contains_key(&name) {
            return Err(AdminError::BadRequest(format!("Query parameter `{name}` is given more than once.")));
        }
        out.insert(name, value);
    }
    Ok(out)
}

/// One percent-decoded name or value (`+` is a space).
pub(crate) fn decode_component(text: &str, name: Option<&str>) -> Result<String, AdminError> {
    let what = || match name {
        Some(n) => format!("Query parameter `{n}`"),
        None => "A query parameter name".to_string(),
    };
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        return Err(AdminError::BadRequest(format!(
                            "{} has a malformed percent-escape (`%` must be followed by two hex digits).",
                            what()
                        )))
                    }
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    let decoded = String::from_utf8(out)
        .map_err(|_| AdminError::BadRequest(format!("{} is not valid UTF-8 once percent-decoded.", what())))?;
    if decoded.chars().any(char::is_control) {
        return Err(AdminError::BadRequest(format!("{} contains a control character.", what())));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded_strictly() {
        let q = parse_query("period=7d&actor=caf%C3%A9&x=a+b&&flag").unwrap();
        assert_eq!(q["period"], "7d");
        assert_eq!(q["actor"], "café");
        assert_eq!(q["x"], "a b");
        assert_eq!(q["flag"], "");
        assert!(parse_query("").unwrap().is_empty());
        for bad in ["a=%FF", "a=%C3", "a=%", "a=%2", "a=%zz", "a=%00", "a=%0A", "%FF=1", "a=1&a=2"] {
            assert!(matches!(parse_query(bad), Err(AdminError::BadRequest(_))), "{bad}");
        }
        assert!(parse_query(&"a".repeat(MAX_QUERY_BYTES + 1)).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Params {
        limit: Option<i64>,
        flag: Option<bool>,
        name: Option<String>,
    }

    async fn extract(uri: &str) -> Result<Params, AdminError> {
        use axum::extract::FromRequestParts;
        let (mut parts, ()) = axum::http::Request::builder().uri(uri).body(()).unwrap().into_parts();
        AdminQuery::<Params>::from_request_parts(&mut parts, &()).await.map(|AdminQuery(p)| p)
    }

    fn message(r: Result<Params, AdminError>) -> String {
        match r {
            Err(AdminError::BadRequest(m)) => m,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn typed_params_are_decoded_after_the_strict_check() {
        let p = extract("/x?limit=7&flag=true&name=caf%C3%A9+x").await.unwrap();
        assert_eq!((p.limit, p.flag, p.name.as_deref()), (Some(7), Some(true), Some("café x")));
        let p = extract("/x").await.unwrap();
        assert_eq!((p.limit, p.flag, p.name), (None, None, None));
        assert_eq!(message(extract("/x?limit=many").await), "Query parameter `limit`: invalid digit found in string.");
        assert!(message(extract("/x?flag=yes").await).starts_with("Query parameter `flag`:"));
        assert!(message(extract("/x?other=1").await).contains("unknown field `other`"));
        // The strict check runs first: its messages, not serde's.
        assert_eq!(message(extract("/x?limit=1&limit=2").await), "Query parameter `limit` is given more than once.");
        assert!(message(extract("/x?name=%FF").await).contains("not valid UTF-8"));
    }
}
