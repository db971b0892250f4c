//! The journal's lines: what they hold, written by hand (the request path
//! pays for every byte: serde_json's string escaping cost more than the rest
//! of the journal together) and read back with serde. A test checks that
//! every line written reads back as itself.
//!
//! - `{"t":"s", <Start>}` when a request is admitted;
//! - `{"t":"p","id":…,"p":<Progress>}` while a stream runs;
//! - `{"t":"u","r":<UsageRecord>}` when it ends.

use std::borrow::Cow;

use serde::Deserialize;
use sheepdog_store::UsageRecord;

/// A request admitted: enough to bill it if it never ends. Written from
/// borrowed text (nothing is copied on the request path), read back owned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Start<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub request_id: Cow<'a, str>,
    #[serde(borrow)]
    pub tenant_id: Cow<'a, str>,
    #[serde(borrow)]
    pub key_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub cost_center: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub model: Cow<'a, str>,
    #[serde(borrow)]
    pub provider: Cow<'a, str>,
    pub stream: bool,
    pub created_ms: i64,
    #[serde(borrow)]
    pub pool_id: Option<Cow<'a, str>>,
    /// The prompt estimate and its cost (nano-USD).
    pub input_tokens: i64,
    pub cost_nanos: i64,
    /// The client format (journals written before it was recorded: `chat`).
    #[serde(borrow, default = "chat_ingress")]
    pub ingress: Cow<'a, str>,
}

fn chat_ingress() -> Cow<'static, str> {
    Cow::Borrowed("chat")
}

impl Start<'_> {
    /// The same start, owning its text.
    pub fn into_owned(self) -> Start<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        Start {
            id: own(self.id),
            request_id: own(self.request_id),
            tenant_id: own(self.tenant_id),
            key_id: self.key_id.map(own),
            cost_center: self.cost_center.map(own),
            model: own(self.model),
            provider: own(self.provider),
            stream: self.stream,
            created_ms: self.created_ms,
            pool_id: self.pool_id.map(own),
            input_tokens: self.input_tokens,
            cost_nanos: self.cost_nanos,
            ingress: own(self.ingress),
        }
    }
}

/// How far a stream got: its usage so far, priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Progress {
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nanos: i64,
}

/// One journal line as read back.
#[derive(Debug, Deserialize)]
#[serde(tag = "t")]
pub enum Line<'a> {
    #[serde(rename = "s", borrow)]
    Start(Start<'a>),
    #[serde(rename = "p")]
    Progress { id: String, p: Progress },
    #[serde(rename = "u")]
    Usage { r: UsageRecord },
}

/// A JSON object written field by field.
struct Object<'b> {
    out: &'b mut Vec<u8>,
    first: bool,
}

impl<'b> Object<'b> {
    fn open(out: &'b mut Vec<u8>) -> Object<'b> {
        out.push(b'{');
        Object { out, first: true }
    }

    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !std::mem::replace(&mut self.first, false) {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        let out = self.key(key);
        // Ids, names and codes need no escaping: copied as they are.
        if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            out.push(b'"');
            out.extend_from_slice(value.as_bytes());
            out.push(b'"');
        } else if serde_json::to_writer(&mut *out, value).is_err() {
            out.extend_from_slice(b"null");
        }
        self
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => {
                self.key(key).extend_from_slice(b"null");
                self
            }
        }
    }

    fn int(&mut self, key: &str, value: i64) -> &mut Self {
        let mut buf = itoa::Buffer::new();
        self.key(key).extend_from_slice(buf.format(value).as_bytes());
        self
    }

    fn opt_int(&mut self, key: &str, value: Option<i64>) -> &mut Self {
        match value {
            Some(v) => self.int(key, v),
            None => {
                self.key(key).extend_from_slice(b"null");
                self
            }
        }
    }

    fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key).extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    fn close(&mut self) {
        self.out.push(b'}');
    }
}

/// `{"t":"s", …}` and a newline.
pub fn start(s: &Start<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(384);
    let mut o = Object::open(&mut out);
    o.str("t", "s")
        .str("id", &s.id)
        .str("request_id", &s.request_id)
        .str("tenant_id", &s.tenant_id)
        .opt_str("key_id", s.key_id.as_deref())
        .opt_str("cost_center", s.cost_center.as_deref())
        .str("model", &s.model)
        .str("provider", &s.provider)
        .bool("stream", s.stream)
        .int("created_ms", s.created_ms)
        .opt_str("pool_id", s.pool_id.as_deref())
        .int("input_tokens", s.input_tokens)
        .int("cost_nanos", s.cost_nanos)
        .str("ingress", &s.ingress)
        .close();
    out.push(b'\n');
    out
}

/// `{"t":"p","id":…,"p":{…}}` and a newline.
pub fn progress(id: &str, p: Progress) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    let mut o = Object::open(&mut out);
    o.str("t", "p").str("id", id);
    let mut inner = Object::open(o.key("p"));
    inner.int("input_tokens", p.input_tokens).int("output_tokens", p.output_tokens).int("cost_nanos", p.cost_nanos);
    inner.close();
    o.close();
    out.push(b'\n');
    out
}

/// `{"t":"u","r":{…}}` and a newline.
pub fn usage(r: &UsageRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(640);
    let mut o = Object::open(&mut out);
    o.str("t", "u");
    let mut rec = Object::open(o.key("r"));
    rec.str("id", &r.id)
        .str("request_id", &r.request_id)
        .str("tenant_id", &r.tenant_id)
        .opt_str("key_id", r.key_id.as_deref())
        .opt_str("cost_center", r.cost_center.as_deref())
        .str("model_requested", &r.model_requested)
        .opt_str("model_served", r.model_served.as_deref())
        .opt_str("provider", r.provider.as_deref())
        .int("input_tokens", r.input_tokens)
        .int("output_tokens", r.output_tokens)
        .int("cached_tokens", r.cached_tokens)
        .int("cost_nanos", r.cost_nanos)
        .int("latency_ms", r.latency_ms)
        .opt_int("ttft_ms", r.ttft_ms)
        .int("status_code", r.status_code)
        .str("outcome", &r.outcome)
        .opt_str("error_code", r.error_code.as_deref())
        .bool("stream", r.stream)
        .int("created_ms", r.created_ms)
        .opt_str("pool_id", r.pool_id.as_deref())
        .str("ingress", &r.ingress)
        .close();
    o.close();
    out.push(b'\n');
    out
}
