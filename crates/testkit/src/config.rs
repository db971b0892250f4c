//! Provider and model entries for a test gateway's configuration.

use sheepdog_emulators::{Emulator, Wire};
use sheepdog_gateway::config::{ModelConfig, PriceValue, ProviderConfig, ProviderKind};

/// The variable [`emulated_provider`] names for the upstream key; a
/// [`crate::TestGateway`] sets it to [`UPSTREAM_KEY`].
pub const UPSTREAM_KEY_ENV: &str = "TEST_UPSTREAM_KEY";
pub const UPSTREAM_KEY: &str = "upstream-secret-key";

/// The provider kind that speaks `wire`.
pub fn provider_kind(wire: Wire) -> ProviderKind {
    match wire {
        Wire::OpenAi => ProviderKind::Openai,
        Wire::Anthropic => ProviderKind::Anthropic,
        Wire::Gemini => ProviderKind::Gemini,
    }
}

/// The simulated provider with test timings: no delays, short timeouts (a
/// hang fails within seconds) and short retry backoffs.
pub fn simulated_provider() -> ProviderConfig {
    ProviderConfig {
        connect_timeout_ms: 2_000,
        first_byte_timeout_ms: 2_000,
        stream_idle_timeout_ms: 5_000,
        total_timeout_ms: 20_000,
        retry_base_ms: 10,
        retry_max_ms: 100,
        ..ProviderConfig::default()
    }
}

/// A provider entry pointing at an emulator, with the test timings of
/// [`simulated_provider`].
pub fn emulated_provider(emu: &Emulator, wire: Wire) -> ProviderConfig {
    ProviderConfig {
        kind: provider_kind(wire),
        base_url: Some(emu.base_url()),
        api_key_env: Some(UPSTREAM_KEY_ENV.into()),
        ..simulated_provider()
    }
}

/// [`emulated_provider`] that reports every failure as it comes: no
/// retries, and a circuit breaker that does not open within a test.
pub fn emulated_provider_plain(emu: &Emulator, wire: Wire) -> ProviderConfig {
    ProviderConfig {
        max_retries: 0,
        breaker_failure_threshold: 1_000,
        breaker_min_samples: 1_000,
        ..emulated_provider(emu, wire)
    }
}

/// Model entry: `provider`'s `upstream` model at `input`/`output` USD per 1M tokens.
pub fn model(provider: &str, upstream: &str, input: &str, output: &str) -> ModelConfig {
    ModelConfig {
        provider: provider.into(),
        upstream_model: Some(upstream.into()),
        input_per_mtok: Some(PriceValue::Text(input.into())),
        output_per_mtok: Some(PriceValue::Text(output.into())),
        ..ModelConfig::default()
    }
}

/// Exact peak concurrency of generated requests: at every start, the
/// intervals [start, end) containing it.
pub fn brute_peak(reqs: &[sheepdog_analyze::synth::SynthRequest]) -> u64 {
    let iv: Vec<(i64, i64)> = reqs.iter().filter_map(|r| r.duration_ms.map(|d| (r.start_ms, r.start_ms + d))).collect();
    iv.iter().map(|&(s, _)| iv.iter().filter(|&&(a, b)| a <= s && s < b).count() as u64).max().unwrap_or(0)
}
