//! Synthetic request logs for tests and the benchmark: a deterministic
//! generator of requests (skewed tenants, a model mix, bursts, errors,
//! slightly unordered timestamps) and writers for the input formats.

use std::io::{self, Write};

use crate::time::format_ms;

/// A small deterministic PRNG (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One generated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthRequest {
    pub tenant: String,
    pub model: String,
    pub endpoint: String,
    pub start_ms: i64,
    /// `None`: logged without a duration.
    pub duration_ms: Option<i64>,
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub status: u16,
}

#[derive(Debug, Clone)]
pub struct SynthConfig {
    pub seed: u64,
    pub tenants: u32,
    pub start_ms: i64,
    /// Mean gap between request starts.
    pub mean_gap_ms: u64,
    /// Timestamps are shifted by up to ± this (unordered logs).
    pub jitter_ms: u64,
    /// Requests without a duration, per thousand.
    pub no_duration_per_mille: u64,
    /// Failed requests (HTTP 429/500, no usage), per thousand.
    pub errors_per_mille: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 42,
            tenants: 20,
            start_ms: 1_748_736_000_000, // 2025-06-01T00:00:00Z
            mean_gap_ms: 40,
            jitter_ms: 2_000,
            no_duration_per_mille: 0,
            errors_per_mille: 20,
        }
    }
}

const MODELS: [(&str, u64); 5] =
    [("gpt-4.1", 45), ("claude-sonnet-4.5", 20), ("gemini-2.5-flash", 20), ("deepseek-v3.2", 10), ("llama-3.3-70b", 5)];

/// An endless, deterministic stream of requests.
#[derive(Debug, Clone)]
pub struct Generator {
    cfg: SynthConfig,
    rng: Rng,
    t: i64,
    weights: Vec<u64>,
    weight_sum: u64,
}

impl Generator {
    pub fn new(cfg: SynthConfig) -> Generator {
        // Tenant i has weight ∝ 1/(i+1) (a few big tenants, a long tail).
        let weights: Vec<u64> = (0..cfg.tenants.max(1)).map(|i| 1_000_000 / (u64::from(i) + 1)).collect();
        let weight_sum = weights.iter().sum();
        Generator { rng: Rng::new(cfg.seed), t: cfg.start_ms, weights, weight_sum, cfg }
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

impl Iterator for Generator {
    type Item = SynthRequest;
    fn next(&mut self) -> Option<SynthRequest> {
        let r = &mut self.rng;
        self.t += r.below(2 * self.cfg.mean_gap_ms + 1) as i64;
        let mut pick = r.below(self.weight_sum);
        let mut tenant = 0;
        for (i, w) in self.weights.iter().enumerate() {
            if pick < *w {
                tenant = i;
                break;
            }
            pick -= w;
        }
        let mut m = r.below(100);
        let mut model = MODELS[0].0;
        for (name, share) in MODELS {
            if m < share {
                model = name;
                break;
            }
            m -= share;
        }
        let embeddings = r.below(10) == 0;
        let jitter = if self.cfg.jitter_ms > 0 {
            r.below(2 * self.cfg.jitter_ms + 1) as i64 - self.cfg.jitter_ms as i64
        } else {
            0
        };
        let failed = r.below(1000) < self.cfg.errors_per_mille;
        let no_duration = r.below(1000) < self.cfg.no_duration_per_mille;
        let input = 20 + r.below(3000);
        let output = if embeddings { 0 } else { 1 + r.below(800) };
        let cached = if !embeddings && r.below(4) == 0 { input / 2 } else { 0 };
        let duration = if embeddings { 50 + r.below(200) } else { 300 + output * 20 + r.below(2000) } as i64;
        Some(SynthRequest {
            tenant: format!("tenant-{tenant:03}"),
            model: model.to_string(),
            endpoint: if embeddings { "/v1/embeddings".into() } else { "/v1/chat/completions".into() },
            start_ms: self.t + jitter,
            duration_ms: (!no_duration).then_some(duration),
            input: if failed { 0 } else { input },
            output: if failed { 0 } else { output },
            cached: if failed { 0 } else { cached },
            status: if failed {
                if r.below(2) == 0 {
                    429
                } else {
                    500
                }
            } else {
                200
            },
        })
    }
}

const WORDS: [&str; 16] = [
    "the",
    "quarterly",
    "report",
    "shows",
    "growth",
    "in",
    "customer",
    "retention",
    "please",
    "summarize",
    "key",
    "risks",
    "and",
    "next",
    "steps",
    "for",
];

/// Filler prose of about `n` bytes (JSON-safe).
pub fn filler(rng: &mut Rng, n: usize) -> String {
    let mut s = String::with_capacity(n + 16);
    while s.len() < n {
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
        s.push(' ');
    }
    s
}

/// Writes a request as an application's JSON log line (OpenAI request and
/// response bodies; `content` is the prompt and answer text).
pub fn write_jsonl(w: &mut impl Write, r: &SynthRequest, prompt: &str, answer: &str, id: u64) -> io::Result<()> {
    let duration = match r.duration_ms {
        Some(d) => format!(",\"duration_ms\":{d}"),
        None => String::new(),
    };
    let served = if r.model == "gpt-4.1" { "gpt-4.1-2025-04-14".to_string() } else { r.model.clone() };
    let body = if r.status >= 400 {
        format!("\"response\":{{\"error\":{{\"message\":\"upstream said {}\",\"type\":\"server_error\"}}}}", r.status)
    } else if r.endpoint == "/v1/embeddings" {
        format!(
            "\"response\":{{\"object\":\"list\",\"model\":\"{served}\",\"usage\":{{\"prompt_tokens\":{},\"total_tokens\":{}}}}}",
            r.input, r.input
        )
    } else {
        format!(
            "\"response\":{{\"id\":\"chatcmpl-{id}\",\"object\":\"chat.completion\",\"model\":\"{served}\",\"choices\":[{{\"index\":0,\"finish_reason\":\"stop\",\"message\":{{\"role\":\"assistant\",\"content\":\"{answer}\"}}}}],\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":{}}}}}}}",
            r.input,
            r.output,
            r.input + r.output,
            r.cached
        )
    };
    writeln!(
        w,
        "{{\"timestamp\":\"{}\"{duration},\"endpoint\":\"{}\",\"status\":{},\"metadata\":{{\"tenant_id\":\"{}\",\"request_id\":\"req-{id}\"}},\"request\":{{\"model\":\"{}\",\"max_tokens\":1024,\"temperature\":0.2,\"messages\":[{{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"}},{{\"role\":\"user\",\"content\":\"{prompt}\"}}]}},{body}}}",
        format_ms(r.start_ms),
        r.endpoint,
        r.status,
        r.tenant,
        r.model,
    )
}

/// The LiteLLM spend-log CSV header.
pub const LITELLM_CSV_HEADER: &str =
    "request_id,call_type,api_key,spend,total_tokens,prompt_tokens,completion_tokens,startTime,endTime,model,model_group,user,team_id,metadata,status";

/// Writes a request as a LiteLLM spend-log CSV row (timestamps as Postgres exports them).
pub fn write_litellm_csv(w: &mut impl Write, r: &SynthRequest, id: u64) -> io::Result<()> {
    let pg = |ms: i64| {
        let s = format_ms(ms);
        format!("{} {}", &s[..10], &s[11..23])
    };
    let end = r.duration_ms.map(|d| pg(r.start_ms + d)).unwrap_or_default();
    writeln!(
        w,
        "req-{id},acompletion,hashed-key,0.0,{},{},{},{},{end},{},{},user-x,{},\"{{\"\"user_api_key_team_id\"\": \"\"{}\"\"}}\",{}",
        r.input + r.output,
        r.input,
        r.output,
        pg(r.start_ms),
        r.model,
        r.model,
        r.tenant,
        r.tenant,
        if r.status >= 400 { "failure" } else { "success" },
    )
}

/// The Sheepdog usage-record CSV header (the `usage_records` columns).
pub const SHEEPDOG_CSV_HEADER: &str = "id,request_id,tenant_id,key_id,cost_center,model_requested,model_served,provider,input_tokens,output_tokens,cached_tokens,cost_nanos,latency_ms,ttft_ms,status_code,outcome,error_code,stream,created_at,created_ms";

/// Writes a request as a Sheepdog usage-record CSV row.
pub fn write_sheepdog_csv(w: &mut impl Write, r: &SynthRequest, id: u64) -> io::Result<()> {
    let outcome = if r.status >= 400 { "upstream_error" } else { "ok" };
    writeln!(
        w,
        "u{id},req-{id},{},,,{},{},simulated,{},{},{},0,{},,{},{outcome},,0,{},{}",
        r.tenant,
        r.model,
        r.model,
        r.input,
        r.output,
        r.cached,
        r.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
        r.status,
        format_ms(r.start_ms),
        r.start_ms,
    )
}
