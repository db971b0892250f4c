//! `sheepdog analyze` as a user runs it: a generated log with known ground
//! truth in, `report.json` (checked exactly) and a self-contained
//! `report.html` out, the summary on stdout; several formats at once, gzip,
//! a config's price table, and clear errors.

use std::process::Command;

use serde_json::Value;
use sheepdog_analyze::synth::{self, Generator, SynthConfig, SynthRequest};
use sheepdog_testkit::config::brute_peak;
use sheepdog_testkit::process::{gzip, sheepdog_command};

fn bin() -> Command {
    sheepdog_command(env!("CARGO_BIN_EXE_sheepdog"), "warn")
}

fn requests(n: usize) -> Vec<SynthRequest> {
    let cfg = SynthConfig { tenants: 6, mean_gap_ms: 200, jitter_ms: 1_000, ..SynthConfig::default() };
    Generator::new(cfg).take(n).collect()
}

#[allow(clippy::unwrap_used)]
fn write_jsonl(path: &std::path::Path, reqs: &[SynthRequest]) {
    let mut out = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        synth::write_jsonl(&mut out, r, "Summarize the attached report, please.", "Here is the summary.", i as u64)
            .unwrap();
    }
    std::fs::write(path, out).unwrap();
}

/// Cost with SPEC §2's default table, exactly; llama is not priced.
fn cost(reqs: &[SynthRequest], map: &[(&str, &str)]) -> i64 {
    let price = |m: &str| match m {
        "gpt-4.1" => Some((2_000, 8_000)),
        "claude-sonnet-4.5" => Some((3_000, 15_000)),
        "gemini-2.5-flash" => Some((300, 2_500)),
        "deepseek-v3.2" => Some((100, 420)),
        _ => None,
    };
    reqs.iter()
        .map(|r| {
            let model = map.iter().find(|(f, _)| *f == r.model).map(|(_, t)| *t).unwrap_or(&r.model);
            price(model).map(|(i, o)| r.input as i64 * i + r.output as i64 * o).unwrap_or(0)
        })
        .sum()
}

#[test]
fn analyze_writes_an_exact_report_json_and_a_self_contained_html_page() {
    let dir = tempfile::tempdir().unwrap();
    let reqs = requests(400);
    let log = dir.path().join("app.jsonl");
    write_jsonl(&log, &reqs);
    let out_dir = dir.path().join("out");
    let out = bin()
        .args(["analyze", "--out"])
        .arg(&out_dir)
        .args(["--map", "gpt-4.1=deepseek-v3.2", "--threads", "2"])
        .arg(&log)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Sheepdog migration analysis") && stdout.contains("peak concurrency"), "{stdout}");
    assert!(stdout.contains("report.json") && stdout.contains("report.html"));
    assert!(
        out.stderr.is_empty() || !String::from_utf8_lossy(&out.stderr).contains('\r'),
        "no progress bar without a TTY"
    );

    let report: Value = serde_json::from_slice(&std::fs::read(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema"], "sheepdog.analysis.v1");
    assert_eq!(report["inputs"][0]["format"], "jsonl");
    let o = &report["overall"];
    assert_eq!(o["requests"], reqs.len() as u64);
    assert_eq!(o["input_tokens"], reqs.iter().map(|r| r.input).sum::<u64>());
    assert_eq!(o["output_tokens"], reqs.iter().map(|r| r.output).sum::<u64>());
    assert_eq!(o["errors"], reqs.iter().filter(|r| r.status >= 400).count() as u64);
    assert_eq!(o["peak_concurrency"]["value"], brute_peak(&reqs));
    // Cached tokens are priced at the input price in the default table, so the cost is input × price.
    assert_eq!(report["cost"]["observed"]["nanos"], cost(&reqs, &[]));
    assert_eq!(report["cost"]["projected_observed"]["nanos"], cost(&reqs, &[("gpt-4.1", "deepseek-v3.2")]));
    assert_eq!(report["cost"]["model_map"]["gpt-4.1"], "deepseek-v3.2");
    let tenants = report["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 6);
    for t in tenants {
        let name = t["tenant"].as_str().unwrap();
        let mine: Vec<SynthRequest> = reqs.iter().filter(|r| r.tenant == name).cloned().collect();
        assert_eq!(t["requests"], mine.len() as u64, "{name}");
        assert_eq!(t["peak_concurrency"]["value"], brute_peak(&mine), "{name}");
        assert!(t["recommendation"]["tier"] == "shared" || t["recommendation"]["tier"] == "dedicated");
    }
    assert!(report["methods"]["peak_concurrency"].as_str().unwrap().contains("Exact"));

    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<svg") && html.contains("Requests over time") && html.contains("Model mix"));
    assert!(html.contains("Cost now vs projected") && html.contains("tenant-000"));
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"), "self-contained");
}

#[test]
fn several_formats_gzip_and_a_config_price_table() {
    let dir = tempfile::tempdir().unwrap();
    let reqs = requests(300);
    let (a, b) = reqs.split_at(200);
    // A gzipped JSON-lines log and a LiteLLM CSV export, analysed together.
    let mut jsonl = Vec::new();
    for (i, r) in a.iter().enumerate() {
        synth::write_jsonl(&mut jsonl, r, "hi", "hello", i as u64).unwrap();
    }
    std::fs::write(dir.path().join("a.jsonl.gz"), gzip(&jsonl)).unwrap();
    let mut csv = format!("{}\n", synth::LITELLM_CSV_HEADER).into_bytes();
    for (i, r) in b.iter().enumerate() {
        synth::write_litellm_csv(&mut csv, r, i as u64).unwrap();
    }
    std::fs::write(dir.path().join("b.csv"), csv).unwrap();
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    // A Sheepdog config whose gpt-4.1 costs 1/4 per 1M tokens.
    std::fs::write(
        dir.path().join("sheepdog.toml"),
        "[providers.sim]\nkind = \"simulated\"\nmax_concurrency = 7\n[models.\"gpt-4.1\"]\nprovider = \"sim\"\ninput_per_mtok = 1\noutput_per_mtok = 4\n",
    )
    .unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args(["analyze", "a.jsonl.gz", "b.csv", "empty.jsonl", "--out", "rep", "--config", "sheepdog.toml", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "--quiet prints nothing");
    let report: Value = serde_json::from_slice(&std::fs::read(dir.path().join("rep/report.json")).unwrap()).unwrap();
    let inputs = report["inputs"].as_array().unwrap();
    assert_eq!(inputs[0]["format"], "jsonl");
    assert_eq!(inputs[0]["gzip"], true);
    assert_eq!(inputs[0]["records"], 200);
    assert_eq!(inputs[1]["format"], "litellm-csv");
    assert_eq!(inputs[1]["records"], 100);
    assert_eq!(inputs[2]["format"], "empty");
    assert_eq!(report["overall"]["requests"], 300);
    assert_eq!(report["overall"]["peak_concurrency"]["value"], brute_peak(&reqs));
    // Only gpt-4.1 is priced by that config, at 1/4: cached tokens of the JSON part cost the input price too.
    let want: i64 =
        reqs.iter().filter(|r| r.model == "gpt-4.1").map(|r| r.input as i64 * 1_000 + r.output as i64 * 4_000).sum();
    assert_eq!(report["cost"]["observed"]["nanos"], want);
    assert!(report["cost"]["price_table"].as_str().unwrap().contains("sheepdog.toml"));
    assert_eq!(report["settings"]["upstream_concurrency"], 7);
}

#[test]
fn bad_input_and_flags_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin().current_dir(dir.path()).args(["analyze", "nope.jsonl"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.jsonl"));
    std::fs::write(dir.path().join("x.jsonl"), "{\"timestamp\": 1, \"model\": \"gpt-4.1\"}\nnot json\n").unwrap();
    let out = bin().current_dir(dir.path()).args(["analyze", "x.jsonl", "--map", "gpt-4.1=gpt-9"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gpt-9") && err.contains("price"), "{err}");
    let out = bin().current_dir(dir.path()).args(["analyze", "x.jsonl", "--format", "xml"]).output().unwrap();
    assert!(!out.status.success());
    // Malformed lines are reported with their line number, not fatal.
    let out = bin().current_dir(dir.path()).args(["analyze", "x.jsonl", "--out", "r"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("malformed 1") && stdout.contains("line 2"), "{stdout}");
}
