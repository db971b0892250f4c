//! The canonical fields of a request record and where each is looked for.

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
pub(super) const N_FIELDS: usize = FIELDS.len();

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

    pub(super) fn index(self) -> usize {
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
