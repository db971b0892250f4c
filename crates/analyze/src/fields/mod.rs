//! Which values of a log record matter, where they are found, and how they
//! become a [`Record`].
//!
//! Every input format goes through one table of field paths (the union of
//! what applications, LiteLLM and Sheepdog write; see [`default_paths`]),
//! compiled into a small trie of lower-cased keys. A JSON record is read
//! with serde in one pass: keys on a wanted path are descended into, wanted
//! leaves are kept as borrowed scalars, and everything else (messages,
//! choices, …) is skipped with [`IgnoredAny`] without allocating. CSV columns
//! are matched against the same trie once per file. A JSON object written
//! as a string (LiteLLM's `metadata` column, stringified request bodies) is
//! parsed on demand when a wanted path goes through it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::time::parse_timestamp;

/// The canonical fields of a request record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    Start,
    End,
    DurationMs,
    DurationS,
    Endpoint,
    Status,
    Error,
    Model,
    InputTokens,
    OutputTokens,
    TotalTokens,
    CachedTokens,
    CacheReadTokens,
    Tenant,
}

pub const FIELDS: [Field; 14] = [
    Field::Start,
    Field::End,
    Field::DurationMs,
    Field::DurationS,
    Field::Endpoint,
    Field::Status,
    Field::Error,
    Field::Model,
    Field::InputTokens,
    Field::OutputTokens,
    Field::TotalTokens,
    Field::CachedTokens,
    Field::CacheReadTokens,
    Field::Tenant,
];
const N_FIELDS: usize = FIELDS.len();

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::Start => "start",
            Field::End => "end",
            Field::DurationMs => "duration_ms",
            Field::DurationS => "duration_s",
            Field::Endpoint => "endpoint",
            Field::Status => "status",
            Field::Error => "error",
            Field::Model => "model",
            Field::InputTokens => "input_tokens",
            Field::OutputTokens => "output_tokens",
            Field::TotalTokens => "total_tokens",
            Field::CachedTokens => "cached_tokens",
            Field::CacheReadTokens => "cache_read_tokens",
            Field::Tenant => "tenant",
        }
    }

    /// A canonical field name (as `--csv-map` takes it), with a few synonyms.
    pub fn parse(name: &str) -> Option<Field> {
        let n = name.trim().to_ascii_lowercase();
        let f = match n.as_str() {
            "start" | "timestamp" | "start_time" | "time" => Field::Start,
            "end" | "end_time" => Field::End,
            "duration_ms" | "latency_ms" => Field::DurationMs,
            "duration_s" | "duration" | "latency_s" => Field::DurationS,
            "endpoint" | "path" => Field::Endpoint,
            "status" | "status_code" => Field::Status,
            "error" => Field::Error,
            "model" => Field::Model,
            "input_tokens" | "prompt_tokens" => Field::InputTokens,
            "output_tokens" | "completion_tokens" => Field::OutputTokens,
            "total_tokens" => Field::TotalTokens,
            "cached_tokens" => Field::CachedTokens,
            "cache_read_tokens" | "cache_read_input_tokens" => Field::CacheReadTokens,
            "tenant" | "tenant_id" => Field::Tenant,
            _ => return None,
        };
        Some(f)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Where each field is looked for, in priority order (the first present wins).
/// Keys match case-insensitively.
pub fn default_paths(field: Field) -> &'static [&'static str] {
    match field {
        Field::Start => &[
            "timestamp",
            "start_time",
            "startTime",
            "started_at",
            "start",
            "request_time",
            "request.timestamp",
            "time",
            "ts",
            "@timestamp",
            "created_ms",
            "created_at",
            "response.created",
        ],
        Field::End => &["end_time", "endTime", "ended_at", "end", "finished_at", "completed_at"],
        Field::DurationMs => &[
            "duration_ms",
            "latency_ms",
            "elapsed_ms",
            "response_time_ms",
            "request_duration_ms",
            "durationMs",
            "latencyMs",
        ],
        Field::DurationS => {
            &["duration_s", "duration_seconds", "latency_s", "elapsed_s", "duration", "latency", "elapsed"]
        }
        Field::Endpoint => {
            &["endpoint", "path", "route", "url", "request.url", "request.path", "request.endpoint", "call_type"]
        }
        Field::Status => &[
            "status_code",
            "http_status",
            "status",
            "response.status_code",
            "response.status",
            "outcome",
            "metadata.status",
        ],
        Field::Error => &["error", "response.error"],
        Field::Model => &[
            "request.model",
            "request_body.model",
            "body.model",
            "model_group",
            "model",
            "model_requested",
            "response.model",
            "model_served",
        ],
        Field::InputTokens => &[
            "usage.prompt_tokens",
            "usage.input_tokens",
            "response.usage.prompt_tokens",
            "response.usage.input_tokens",
            "prompt_tokens",
            "input_tokens",
        ],
        Field::OutputTokens => &[
            "usage.completion_tokens",
            "usage.output_tokens",
            "response.usage.completion_tokens",
            "response.usage.output_tokens",
            "completion_tokens",
            "output_tokens",
        ],
        Field::TotalTokens => &["usage.total_tokens", "response.usage.total_tokens", "total_tokens"],
        Field::CachedTokens => &[
            "usage.prompt_tokens_details.cached_tokens",
            "usage.input_tokens_details.cached_tokens",
            "response.usage.prompt_tokens_details.cached_tokens",
            "response.usage.input_tokens_details.cached_tokens",
            "cached_tokens",
        ],
        Field::CacheReadTokens => &["usage.cache_read_input_tokens", "response.usage.cache_read_input_tokens"],
        Field::Tenant => DEFAULT_TENANT_PATHS,
    }
}

/// Where the tenant is looked for when `--tenant-field` is not given.
pub const DEFAULT_TENANT_PATHS: &[&str] = &[
    "tenant_id",
    "tenant",
    "metadata.tenant_id",
    "request.metadata.tenant_id",
    "headers.x-tenant-id",
    "request.headers.x-tenant-id",
    "request_headers.x-tenant-id",
    "team_id",
    "metadata.user_api_key_team_id",
    "end_user",
    "request.user",
    "user",
];

/// A value kept from a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Str(Cow<'a, str>),
    U(u64),
    I(i64),
    F(f64),
    Bool(bool),
    /// An object or array (only its presence matters).
    Present,
}

impl Scalar<'_> {
    fn into_owned(self) -> Scalar<'static> {
        match self {
            Scalar::Str(s) => Scalar::Str(Cow::Owned(s.into_owned())),
            Scalar::U(v) => Scalar::U(v),
            Scalar::I(v) => Scalar::I(v),
            Scalar::F(v) => Scalar::F(v),
            Scalar::Bool(v) => Scalar::Bool(v),
            Scalar::Present => Scalar::Present,
        }
    }
}

/// Most slots a plan may use (fields × their paths).
pub const MAX_SLOTS: usize = 128;

/// The values found in one record, by slot.
pub struct Slots<'a> {
    v: [Option<Scalar<'a>>; MAX_SLOTS],
}

impl<'a> Slots<'a> {
    pub fn new() -> Self {
        Slots { v: [const { None }; MAX_SLOTS] }
    }
    fn set(&mut self, slot: u16, value: Scalar<'a>) {
        if let Some(s) = self.v.get_mut(usize::from(slot)) {
            *s = Some(value);
        }
    }
    fn take(&mut self, slot: u16) -> Option<Scalar<'a>> {
        self.v.get_mut(usize::from(slot)).and_then(Option::take)
    }
}

impl Default for Slots<'_> {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone)]
struct Entry {
    key: Box<str>,
    slot: Option<u16>,
    child: Option<usize>,
}

#[derive(Debug, Clone, Default)]
struct Node {
    entries: Vec<Entry>,
}

impl Node {
    fn find(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.key.eq_ignore_ascii_case(key))
    }
}

/// The compiled field table: a trie of paths plus, per field, its slots in
/// priority order. Slots `0..N_FIELDS` are the fields' explicit overrides
/// (`--csv-map`), which win over every default path.
#[derive(Debug, Clone)]
pub struct Plan {
    nodes: Vec<Node>,
    by_field: Vec<Vec<u16>>,
    n_slots: usize,
    /// The tenant paths in use (for the report).
    pub tenant_paths: Vec<String>,
    /// The explicit mappings in use: source column or path → field.
    pub field_map: Vec<(String, Field)>,
}

impl Plan {
    /// Builds the plan: `tenant_paths` replace the default tenant paths when
    /// not empty; `field_map` maps CSV columns (or JSON paths) to fields,
    /// ahead of every default.
    pub fn new(tenant_paths: &[String], field_map: &[(String, Field)]) -> Result<Plan, String> {
        let mut plan = Plan {
            nodes: vec![Node::default()],
            by_field: vec![Vec::new(); N_FIELDS],
            n_slots: N_FIELDS,
            tenant_paths: Vec::new(),
            field_map: field_map.to_vec(),
        };
        for (source, field) in field_map {
            plan.add_path(source, Some(field.index() as u16))?;
            plan.by_field[field.index()].push(field.index() as u16);
        }
        let tenants: Vec<String> = if tenant_paths.is_empty() {
            DEFAULT_TENANT_PATHS.iter().map(|s| s.to_string()).collect()
        } else {
            tenant_paths.to_vec()
        };
        for f in FIELDS {
            let paths: Vec<String> = match f {
                Field::Tenant => tenants.clone(),
                _ => default_paths(f).iter().map(|s| s.to_string()).collect(),
            };
            for p in paths {
                let slot = plan.n_slots;
                if slot >= MAX_SLOTS {
                    return Err(format!("too many field paths (at most {})", MAX_SLOTS - N_FIELDS));
                }
                let used = plan.add_path(&p, Some(slot as u16))?;
                if used == slot as u16 {
                    plan.n_slots += 1;
                }
                // A path the explicit mapping gave to another field stays that field's.
                if usize::from(used) < N_FIELDS && usize::from(used) != f.index() {
                    continue;
                }
                if !plan.by_field[f.index()].contains(&used) {
                    plan.by_field[f.index()].push(used);
                }
            }
        }
        plan.tenant_paths = tenants;
        Ok(plan)
    }

    /// Adds `path`; returns the slot it ends in (an existing one if the path
    /// was already there).
    fn add_path(&mut self, path: &str, slot: Option<u16>) -> Result<u16, String> {
        let parts: Vec<&str> = path.split('.').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("invalid field path {path:?}"));
        }
        let mut node = 0;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            let idx = match self.nodes[node].find(part) {
                Some(idx) => idx,
                None => {
                    self.nodes[node].entries.push(Entry {
                        key: part.to_ascii_lowercase().into(),
                        slot: None,
                        child: None,
                    });
                    self.nodes[node].entries.len() - 1
                }
            };
            if last {
                let e = &mut self.nodes[node].entries[idx];
                match (e.slot, slot) {
                    (Some(existing), _) => return Ok(existing),
                    (None, Some(s)) => {
                        e.slot = Some(s);
                        return Ok(s);
                    }
                    (None, None) => return Err(format!("invalid field path {path:?}")),
                }
            }
            let child = match self.nodes[node].entries[idx].child {
                Some(c) => c,
                None => {
                    self.nodes.push(Node::default());
                    let c = self.nodes.len() - 1;
                    self.nodes[node].entries[idx].child = Some(c);
                    c
                }
            };
            node = child;
        }
        Err(format!("invalid field path {path:?}"))
    }

    /// The entry for a CSV column name: (slot, child node). A dotted name
    /// (`usage.prompt_tokens`, as flattening tools write nested fields)
    /// walks the paths.
    pub fn column(&self, name: &str) -> Option<(Option<u16>, Option<usize>)> {
        let name = name.trim();
        let mut node = 0;
        let parts: Vec<&str> = if self.nodes[0].find(name).is_some() { vec![name] } else { name.split('.').collect() };
        for (k, part) in parts.iter().enumerate() {
            let n = self.nodes.get(node)?;
            let e = &n.entries[n.find(part.trim())?];
            if k + 1 == parts.len() {
                return Some((e.slot, e.child));
            }
            node = e.child?;
        }
        None
    }

    /// Reads one JSON value into `out`; `Ok(false)` when it is not an object.
    pub fn extract_json<'de, D: Deserializer<'de>>(&self, de: D, out: &mut Slots<'de>) -> Result<bool, D::Error> {
        MapSeed { plan: self, node: 0, out }.deserialize(de)
    }

    /// Stores a CSV cell (or any text) at a top-level entry: the slot gets the
    /// text; a child entry gets the text parsed as a JSON object, if it is one.
    pub fn put_text<'a>(&self, entry: (Option<u16>, Option<usize>), text: &'a str, out: &mut Slots<'a>) {
        let (slot, child) = entry;
        if let Some(c) = child {
            nested_json(self, c, text, out);
        }
        if let Some(s) = slot {
            if !text.trim().is_empty() {
                out.set(s, Scalar::Str(Cow::Borrowed(text)));
            }
        }
    }
}

fn nested_json<'a>(plan: &Plan, node: usize, text: &str, out: &mut Slots<'a>) {
    let t = text.trim_start();
    if !t.starts_with('{') {
        return;
    }
    let mut tmp = Slots::new();
    let mut de = serde_json::Deserializer::from_str(t);
    if (MapSeed { plan, node, out: &mut tmp }).deserialize(&mut de).is_ok() {
        for i in 0..plan.n_slots {
            if let Some(v) = tmp.v[i].take() {
                out.v[i] = Some(v.into_owned());
            }
        }
    }
}

struct KeySeed<'p> {
    node: &'p Node,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.node.find(v))
    }
}

struct MapSeed<'p, 's, 'a> {
    plan: &'p Plan,
    node: usize,
    out: &'s mut Slots<'a>,
}

impl<'de> DeserializeSeed<'de> for MapSeed<'_, '_, 'de> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MapSeed<'_, '_, 'de> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let node = &self.plan.nodes[self.node];
        while let Some(found) = map.next_key_seed(KeySeed { node })? {
            let Some(i) = found else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let e = &node.entries[i];
            match e.child {
                None => {
                    if let (Some(v), Some(slot)) = (map.next_value_seed(ScalarSeed)?, e.slot) {
                        self.out.set(slot, v);
                    }
                }
                Some(child) => {
                    map.next_value_seed(ValueSeed { plan: self.plan, child, slot: e.slot, out: &mut *self.out })?;
                }
            }
        }
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_none<E>(self) -> Result<bool, E> {
        Ok(false)
    }
}

/// A value at an entry that has children: an object is descended into, a
/// string holding a JSON object is parsed, a scalar fills the entry's slot.
struct ValueSeed<'p, 's, 'a> {
    plan: &'p Plan,
    child: usize,
    slot: Option<u16>,
    out: &'s mut Slots<'a>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> ValueSeed<'_, '_, 'de> {
    fn scalar(self, v: Scalar<'de>) {
        if let Some(s) = self.slot {
            self.out.set(s, v);
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if let Some(s) = self.slot {
            self.out.set(s, Scalar::Present);
        }
        MapSeed { plan: self.plan, node: self.child, out: self.out }.visit_map(map)?;
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.scalar(Scalar::Present);
        Ok(())
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        nested_json(self.plan, self.child, v, self.out);
        self.scalar(Scalar::Str(Cow::Borrowed(v)));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        nested_json(self.plan, self.child, v, self.out);
        self.scalar(Scalar::Str(Cow::Owned(v.to_string())));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.scalar(Scalar::U(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.scalar(Scalar::I(v));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.scalar(Scalar::F(v));
        Ok(())
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.scalar(Scalar::Bool(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
}

struct ScalarSeed;

impl<'de> DeserializeSeed<'de> for ScalarSeed {
    type Value = Option<Scalar<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScalarSeed {
    type Value = Option<Scalar<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Borrowed(v))))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Owned(v.to_string()))))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Str(Cow::Owned(v))))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::U(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::I(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(Scalar::F(v)))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Scalar::Bool(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Some(Scalar::Present))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Some(Scalar::Present))
    }
}

/// Whether a logged timestamp is the start of the request (default) or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimestampAt {
    #[default]
    Start,
    End,
}

/// One request, as the aggregates need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub start_ms: i64,
    /// `None`: no usable duration (the request counts in rates, not in concurrency).
    pub end_ms: Option<i64>,
    /// The end (or duration) said the request ended before it started.
    pub skewed: bool,
    pub tenant: Option<Cow<'a, str>>,
    pub model: Option<Cow<'a, str>>,
    pub endpoint: Option<Cow<'a, str>>,
    /// Prompt tokens, cached ones included.
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub has_usage: bool,
    pub error: bool,
}

fn text<'a>(s: Scalar<'a>) -> Option<Cow<'a, str>> {
    match s {
        Scalar::Str(c) => {
            let t = c.trim();
            if t.is_empty() {
                None
            } else if t.len() == c.len() {
                Some(c)
            } else {
                Some(Cow::Owned(t.to_string()))
            }
        }
        Scalar::U(v) => Some(Cow::Owned(v.to_string())),
        Scalar::I(v) => Some(Cow::Owned(v.to_string())),
        Scalar::F(v) => Some(Cow::Owned(v.to_string())),
        Scalar::Bool(v) => Some(Cow::Owned(v.to_string())),
        Scalar::Present => None,
    }
}

fn number(s: &Scalar<'_>) -> Option<f64> {
    match s {
        Scalar::U(v) => Some(*v as f64),
        Scalar::I(v) => Some(*v as f64),
        Scalar::F(v) => Some(*v),
        Scalar::Str(c) => c.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn tokens(s: &Scalar<'_>, what: &str) -> Result<Option<u64>, String> {
    match s {
        Scalar::U(v) => Ok(Some(*v)),
        Scalar::I(v) if *v >= 0 => Ok(Some(*v as u64)),
        Scalar::Str(c) if c.trim().is_empty() => Ok(None),
        Scalar::Str(c) => match c.trim().parse::<u64>() {
            Ok(v) => Ok(Some(v)),
            Err(_) => match c.trim().parse::<f64>() {
                Ok(f) if f.is_finite() && f >= 0.0 => Ok(Some(f.round() as u64)),
                _ => Err(format!("{what} {c:?} is not a token count")),
            },
        },
        Scalar::F(f) if f.is_finite() && *f >= 0.0 => Ok(Some(f.round() as u64)),
        Scalar::Present | Scalar::Bool(_) => Ok(None),
        other => Err(format!("{what} {other:?} is not a token count")),
    }
}

fn timestamp(s: &Scalar<'_>) -> Result<i64, String> {
    let r = match s {
        Scalar::Str(c) => parse_timestamp(c),
        Scalar::U(v) => i64::try_from(*v).ok().and_then(crate::time::epoch_int_to_ms),
        Scalar::I(v) => crate::time::epoch_int_to_ms(*v),
        Scalar::F(v) => crate::time::epoch_to_ms(*v),
        _ => None,
    };
    r.ok_or_else(|| match s {
        Scalar::Str(c) => format!("unreadable timestamp {c:?}"),
        other => format!("unreadable timestamp {other:?}"),
    })
}

/// Whether a status value says the request failed: an HTTP status ≥ 400, or
/// a word such as `failure`, `error`, `upstream_error`.
fn status_is_error(s: &Scalar<'_>) -> Option<bool> {
    match s {
        Scalar::U(v) => Some(*v >= 400),
        Scalar::I(v) => Some(*v >= 400 || *v < 0),
        Scalar::F(v) => Some(*v >= 400.0),
        Scalar::Bool(b) => Some(!*b),
        Scalar::Str(c) => {
            let t = c.trim();
            if let Ok(code) = t.parse::<i64>() {
                return Some(code >= 400);
            }
            let l = t.to_ascii_lowercase();
            match l.as_str() {
                "" => None,
                "success" | "succeeded" | "ok" | "completed" | "complete" | "done" | "client_cancelled" => Some(false),
                "failure" | "failed" | "fail" | "error" | "errored" | "upstream_error" | "rejected" | "timeout"
                | "cancelled" => Some(true),
                _ => None,
            }
        }
        Scalar::Present => None,
    }
}

fn error_present(s: &Scalar<'_>) -> bool {
    match s {
        Scalar::Present => true,
        Scalar::Bool(b) => *b,
        Scalar::Str(c) => {
            let l = c.trim().to_ascii_lowercase();
            !matches!(l.as_str(), "" | "null" | "none" | "false" | "0")
        }
        Scalar::U(v) => *v != 0,
        Scalar::I(v) => *v != 0,
        Scalar::F(v) => *v != 0.0,
    }
}

/// `https://api.openai.com/v1/chat/completions?x=1` → `/v1/chat/completions`.
fn normalize_endpoint(e: Cow<'_, str>) -> Cow<'_, str> {
    let s: &str = &e;
    let mut start = 0;
    let mut end = s.len();
    if let Some(rest) = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")) {
        let offset = s.len() - rest.len();
        start = rest.find('/').map(|i| offset + i).unwrap_or(s.len());
    }
    if let Some(q) = s[start..].find(['?', '#']) {
        end = start + q;
    }
    if start == 0 && end == s.len() {
        return e;
    }
    let p = &s[start..end];
    Cow::Owned(if p.is_empty() { "/".to_string() } else { p.to_string() })
}

impl Plan {
    fn first<'a>(&self, f: Field, slots: &mut Slots<'a>) -> Option<Scalar<'a>> {
        for &s in &self.by_field[f.index()] {
            if let Some(v) = slots.take(s) {
                return Some(v);
            }
        }
        None
    }

    /// Turns the values found into a [`Record`], or says why the record is unusable.
    pub fn resolve<'a>(&self, slots: &mut Slots<'a>, at: TimestampAt) -> Result<Record<'a>, String> {
        let ts = self.first(Field::Start, slots).map(|s| timestamp(&s)).transpose()?;
        let end = self.first(Field::End, slots).map(|s| timestamp(&s)).transpose()?;
        let dur_ms = match self.first(Field::DurationMs, slots) {
            Some(s) => Some(number(&s).ok_or_else(|| format!("duration {s:?} is not a number"))?),
            None => match self.first(Field::DurationS, slots) {
                Some(s) => Some(number(&s).ok_or_else(|| format!("duration {s:?} is not a number"))? * 1000.0),
                None => None,
            },
        };
        let dur_ms = match dur_ms {
            Some(d) if d.is_finite() && d.abs() < 1e13 => Some(d.round() as i64),
            Some(d) => return Err(format!("duration {d} is out of range")),
            None => None,
        };
        let (start_ms, end_ms, skewed) = match (ts, end, dur_ms) {
            (Some(t), Some(e), _) => {
                let (s, e) = match at {
                    TimestampAt::Start => (t, e),
                    TimestampAt::End => (dur_ms.map(|d| e - d).unwrap_or(t), e),
                };
                if e < s {
                    (s, None, true)
                } else {
                    (s, Some(e), false)
                }
            }
            (Some(t), None, Some(d)) => {
                let (s, e) = match at {
                    TimestampAt::Start => (t, t.saturating_add(d)),
                    TimestampAt::End => (t.saturating_sub(d), t),
                };
                if d < 0 {
                    (s.min(e), None, true)
                } else {
                    (s, Some(e), false)
                }
            }
            (Some(t), None, None) => (t, None, false),
            (None, Some(e), Some(d)) if d >= 0 => (e - d, Some(e), false),
            (None, Some(e), _) => (e, None, false),
            (None, None, _) => return Err("no timestamp field (start time)".into()),
        };
        let input = self.first(Field::InputTokens, slots).map(|s| tokens(&s, "input tokens")).transpose()?.flatten();
        let output = self.first(Field::OutputTokens, slots).map(|s| tokens(&s, "output tokens")).transpose()?.flatten();
        let total = self.first(Field::TotalTokens, slots).map(|s| tokens(&s, "total tokens")).transpose()?.flatten();
        let cached = self.first(Field::CachedTokens, slots).map(|s| tokens(&s, "cached tokens")).transpose()?.flatten();
        let cache_read =
            self.first(Field::CacheReadTokens, slots).map(|s| tokens(&s, "cache read tokens")).transpose()?.flatten();
        let (input, output) = match (input, output, total) {
            (None, Some(o), Some(t)) => (Some(t.saturating_sub(o)), Some(o)),
            (Some(i), None, Some(t)) => (Some(i), Some(t.saturating_sub(i))),
            (None, None, Some(t)) => (Some(t), Some(0)),
            other => (other.0, other.1),
        };
        let has_usage = input.is_some() || output.is_some();
        let read = cache_read.unwrap_or(0);
        let input = input.unwrap_or(0).saturating_add(read);
        let cached = cached.unwrap_or(0).saturating_add(read).min(input);
        let mut error = false;
        if let Some(s) = self.first(Field::Status, slots) {
            error = status_is_error(&s).unwrap_or(false);
        }
        if let Some(e) = self.first(Field::Error, slots) {
            error |= error_present(&e);
        }
        Ok(Record {
            start_ms,
            end_ms,
            skewed,
            tenant: self.first(Field::Tenant, slots).and_then(text),
            model: self.first(Field::Model, slots).and_then(text),
            endpoint: self.first(Field::Endpoint, slots).and_then(text).map(normalize_endpoint),
            input,
            output: output.unwrap_or(0),
            cached,
            has_usage,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(plan: &Plan, line: &str) -> Result<Record<'static>, String> {
        let mut slots = Slots::new();
        let mut de = serde_json::Deserializer::from_str(line);
        let ok = plan.extract_json(&mut de, &mut slots).map_err(|e| e.to_string())?;
        if !ok {
            return Err("not an object".into());
        }
        let r = plan.resolve(&mut slots, TimestampAt::Start)?;
        Ok(Record {
            tenant: r.tenant.map(|c| Cow::Owned(c.into_owned())),
            model: r.model.map(|c| Cow::Owned(c.into_owned())),
            endpoint: r.endpoint.map(|c| Cow::Owned(c.into_owned())),
            ..r
        })
    }

    #[test]
    fn openai_style_record() {
        let plan = Plan::new(&[], &[]).unwrap();
        let r = parse(
            &plan,
            r#"{"timestamp":"2025-06-01T12:00:00Z","duration_ms":1500,"endpoint":"https://api.openai.com/v1/chat/completions?x=1",
               "metadata":{"tenant_id":"acme"},"request":{"model":"gpt-4.1","messages":[{"role":"user","content":"hi \"there\""}],"max_tokens":5},
               "response":{"model":"gpt-4.1-2025-04-14","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}},"status":200}"#,
        )
        .unwrap();
        assert_eq!(r.start_ms, 1_748_779_200_000);
        assert_eq!(r.end_ms, Some(1_748_779_201_500));
        assert_eq!(r.tenant.as_deref(), Some("acme"));
        assert_eq!(r.model.as_deref(), Some("gpt-4.1"));
        assert_eq!(r.endpoint.as_deref(), Some("/v1/chat/completions"));
        assert_eq!((r.input, r.output, r.cached, r.has_usage, r.error), (10, 5, 4, true, false));
    }

    #[test]
    fn tenant_paths_headers_and_errors() {
        let plan = Plan::new(&["headers.X-Tenant-ID".to_string()], &[]).unwrap();
        let r = parse(
            &plan,
            r#"{"ts":1748779200,"end_time":"2025-06-01T12:00:02Z","headers":{"x-tenant-id":"t-9"},"model":"m","status":"503","user":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(r.tenant.as_deref(), Some("t-9"));
        assert_eq!(r.end_ms, Some(1_748_779_202_000));
        assert!(r.error && !r.has_usage);
        let r = parse(&plan, r#"{"ts":1748779200,"error":{"message":"x"},"user":"u"}"#).unwrap();
        assert!(r.error);
        assert_eq!(r.tenant, None);
    }

    #[test]
    fn litellm_row_with_string_metadata() {
        let plan = Plan::new(&[], &[]).unwrap();
        let r = parse(
            &plan,
            r#"{"request_id":"r1","call_type":"acompletion","spend":0.1,"total_tokens":30,"prompt_tokens":20,"completion_tokens":10,
               "startTime":"2025-06-01 12:00:00.000","endTime":"2025-06-01 12:00:00.750","model":"gpt-4.1","model_group":"gpt-4.1",
               "metadata":"{\"user_api_key_team_id\": \"team-a\", \"status\": \"failure\"}","status":null}"#,
        )
        .unwrap();
        assert_eq!(r.tenant.as_deref(), Some("team-a"));
        assert_eq!(r.end_ms.unwrap() - r.start_ms, 750);
        assert_eq!(r.endpoint.as_deref(), Some("acompletion"));
        assert!(r.error);
    }

    #[test]
    fn totals_skew_and_unusable() {
        let plan = Plan::new(&[], &[]).unwrap();
        let r = parse(
            &plan,
            r#"{"timestamp":1748779200000,"duration_ms":-5,"usage":{"total_tokens":9,"completion_tokens":4}}"#,
        )
        .unwrap();
        assert!(r.skewed && r.end_ms.is_none());
        assert_eq!((r.input, r.output), (5, 4));
        let r = parse(&plan, r#"{"timestamp":"2025-06-01T12:00:00Z","end_time":"2025-06-01T11:59:59Z"}"#).unwrap();
        assert!(r.skewed);
        assert!(parse(&plan, r#"{"model":"x"}"#).unwrap_err().contains("no timestamp"));
        assert!(parse(&plan, r#"{"timestamp":"soon"}"#).unwrap_err().contains("unreadable timestamp"));
        assert!(parse(&plan, r#"{"timestamp":1,"usage":{"prompt_tokens":"many"}}"#).is_err());
        assert!(parse(&plan, r#"[1,2]"#).is_err());
        let r = parse(
            &plan,
            r#"{"timestamp":1748779200,"usage":{"input_tokens":3,"cache_read_input_tokens":7,"output_tokens":1}}"#,
        )
        .unwrap();
        assert_eq!((r.input, r.cached, r.output), (10, 7, 1));
    }

    #[test]
    fn dotted_csv_columns_walk_the_paths() {
        let plan = Plan::new(&[], &[("a.b".into(), Field::Tenant)]).unwrap();
        let mut slots = Slots::new();
        for (col, val) in
            [("usage.prompt_tokens", "12"), ("metadata.tenant_id", "ignored"), ("a.b", "t1"), ("ts", "1748779200")]
        {
            plan.put_text(plan.column(col).unwrap(), val, &mut slots);
        }
        assert!(plan.column("usage.nothing").is_none());
        let r = plan.resolve(&mut slots, TimestampAt::Start).unwrap();
        assert_eq!(r.tenant.as_deref(), Some("t1"));
        assert_eq!(r.input, 12);
    }

    #[test]
    fn explicit_mapping_wins() {
        let plan = Plan::new(&[], &[("org".into(), Field::Tenant), ("took".into(), Field::DurationS)]).unwrap();
        let r = parse(&plan, r#"{"timestamp":1748779200,"org":"o1","tenant_id":"x","took":0.25}"#).unwrap();
        assert_eq!(r.tenant.as_deref(), Some("o1"));
        assert_eq!(r.end_ms.unwrap() - r.start_ms, 250);
    }
}
