//! The configuration loader (TOML text → validated Settings): never a
//! panic; what it accepts is consistent (every model's provider and
//! fallbacks exist).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheepdog_core::config::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = |name: &str| (name == "FUZZ_KEY").then(|| "sk-fuzz".to_string());
    let Ok(s) = Settings::from_toml_str(text, "fuzz.toml", &env) else { return };
    assert!(!s.providers.is_empty());
    for m in &s.models {
        assert!(s.providers.iter().any(|p| p.name == m.provider), "model {} without provider", m.name);
        for f in &m.fallbacks {
            assert!(s.models.iter().any(|x| &x.name == f));
        }
    }
});
