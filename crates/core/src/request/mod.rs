//! Reading and validating a client's Chat Completions request: body size,
//! UTF-8, JSON shape and the SPEC §3 request headers. Pure functions: bad
//! input gets a clear 4xx and nothing else happens.

mod body;
mod chat;
mod embeddings;
mod headers;
mod raw;

pub use body::{
    check_content_length, declared_small, discard_briefly, discard_rest, read_body, refuse_declared_oversize,
    CHECKED_BEFORE_LIMITS_BYTES, DRAIN_BYTES, DRAIN_IDLE, DRAIN_TIME,
};
pub use chat::{parse_chat, parse_chat_bounded};
pub use embeddings::{parse_embeddings, MAX_INPUTS};
pub use headers::{
    cost_center, request_id, MAX_COST_CENTER_CHARS, MAX_REQUEST_ID_CHARS, X_COST_CENTER, X_REQUEST_ID, X_SESSION_ID,
    X_TENANT_ID,
};

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use axum::http::HeaderMap;

    fn err(body: &[u8]) -> String {
        match parse_chat(Bytes::copy_from_slice(body)) {
            Ok(_) => "ok".into(),
            Err(e) => format!("{}|{}", e.code(), e.message()),
        }
    }

    #[test]
    fn accepts_a_valid_request() {
        let r = parse_chat(Bytes::from_static(br#"{"model":"gpt-4.1","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":5,"x_custom":1}"#)).unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, Some(5));
        assert_eq!(r.requested_model, "gpt-4.1");
        assert_eq!(r.prompt_tokens, 1 + 3 + 3);
        assert_eq!(r.members(&["x_custom", "model"]).len(), 2);
    }

    #[test]
    fn refuses_bad_input_clearly() {
        assert!(err(b"{not json").contains("not valid JSON"));
        assert!(err(b"\xff\xfe").contains("UTF-8"));
        assert!(err(b"").contains("empty"));
        assert!(err(b"[1]").contains("JSON object"));
        assert!(err(br#"{"messages":[{"role":"user","content":"x"}]}"#).contains("`model`"));
        assert!(err(br#"{"model":5,"messages":[{"role":"user","content":"x"}]}"#)
            .contains("`model` must be a string, got a number"));
        assert!(err(br#"{"model":"m"}"#).contains("`messages`"));
        assert!(err(br#"{"model":"m","messages":[]}"#).contains("must not be empty"));
        assert!(err(br#"{"model":"m","messages":"hi"}"#).contains("must be an array"));
        assert!(err(br#"{"model":"m","messages":[{"content":"x"}]}"#).contains("messages[0].role"));
        assert!(err(br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#).contains("is not one of"));
        assert!(err(br#"{"model":"m","messages":[{"role":"user","content":5}]}"#).contains("messages[0].content"));
        assert!(err(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#)
            .contains("`stream` must be a boolean"));
        assert!(err(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#)
            .contains("positive integer"));
        assert!(err(br#"{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"}"#)
            .contains("`temperature`"));
        for e in [err(b"{"), err(br#"{"model":1}"#)] {
            assert!(e.starts_with("invalid_request_error|"), "{e}");
        }
    }

    #[test]
    fn headers() {
        let mut h = HeaderMap::new();
        assert_eq!(request_id(&h).unwrap().len(), 36);
        h.insert("x-request-id", "abc-123".parse().unwrap());
        assert_eq!(request_id(&h).unwrap(), "abc-123");
        h.insert("x-request-id", "a b".parse().unwrap());
        assert!(request_id(&h).is_err());
        assert_eq!(cost_center(&h).unwrap(), None);
        h.insert("x-cost-center", "team-search".parse().unwrap());
        assert_eq!(cost_center(&h).unwrap().as_deref(), Some("team-search"));
        h.insert("x-cost-center", "x".repeat(65).parse().unwrap());
        assert!(cost_center(&h).is_err());
        h.insert("x-cost-center", axum::http::HeaderValue::from_bytes(b"caf\xe9").unwrap());
        assert!(cost_center(&h).is_err());
        h.insert("content-length", "100".parse().unwrap());
        assert!(check_content_length(&h, 99).is_err());
        assert!(check_content_length(&h, 100).is_ok());
    }
}
