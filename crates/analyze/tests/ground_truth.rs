//! Generated logs with known ground truth, checked exactly: peak concurrency
//! (against a brute-force count), per-minute rates, token sums, costs; every
//! input format, gzip, several files, malformed lines, empty input, a tenant
//! with a single request, unordered and clock-skewed timestamps, and the
//! external-sort path (tiny in-memory budget) against the in-memory one.
// Helpers outside #[test] functions, which clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;

use sheepdog_analyze::report::{monthly, Report};
use sheepdog_analyze::synth::{self, Generator, SynthConfig, SynthRequest};
use sheepdog_analyze::{analyze, parse_field_map, Format, Input, ModelMap, Options, PriceTable, TenantsFile};

const MINUTE: i64 = 60_000;

fn requests(n: usize, cfg: SynthConfig) -> Vec<SynthRequest> {
    Generator::new(cfg).take(n).collect()
}

fn jsonl(reqs: &[SynthRequest]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rng = synth::Rng::new(9);
    for (i, r) in reqs.iter().enumerate() {
        let prompt = synth::filler(&mut rng, 120);
        synth::write_jsonl(&mut out, r, &prompt, "Sure — here is \\\"the\\\" answer.", i as u64).unwrap();
    }
    out
}

fn opts() -> Options {
    Options { threads: 2, ..Options::default() }
}

fn run(inputs: Vec<Input>, o: &Options) -> Report {
    analyze(inputs, o).unwrap()
}

/// Peak concurrency by brute force: at every start, count the intervals
/// [a, b) containing it. Returns (peak, first time reached).
fn brute_peak(iv: &[(i64, i64)]) -> (u64, Option<i64>) {
    let mut starts: Vec<i64> = iv.iter().map(|x| x.0).collect();
    starts.sort_unstable();
    let mut best = (0u64, None);
    for s in starts {
        let n = iv.iter().filter(|&&(a, b)| a <= s && s < b).count() as u64;
        if n > best.0 {
            best = (n, Some(s));
        }
    }
    best
}

fn nearest_rank(mut v: Vec<u64>, q: f64) -> u64 {
    v.sort_unstable();
    if v.is_empty() {
        return 0;
    }
    let rank = ((v.len() as f64) * q).ceil().clamp(1.0, v.len() as f64) as usize;
    v[rank - 1]
}

#[derive(Debug, Default)]
struct Truth {
    requests: u64,
    errors: u64,
    input: u64,
    output: u64,
    cached: u64,
    peak: u64,
    peak_at: Option<i64>,
    rpm: Vec<u64>,
    tpm: Vec<u64>,
    cost: i128,
    projected: i128,
    unpriced: u64,
}

fn truth_of(reqs: &[&SynthRequest], map: &ModelMap) -> Truth {
    let prices = PriceTable::default_table();
    let mut t = Truth::default();
    let iv: Vec<(i64, i64)> = reqs
        .iter()
        .filter_map(|r| r.duration_ms.map(|d| (r.start_ms, r.start_ms + d)))
        .filter(|x| x.1 >= x.0)
        .collect();
    (t.peak, t.peak_at) = brute_peak(&iv);
    let mut minutes: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for r in reqs {
        t.requests += 1;
        t.errors += u64::from(r.status >= 400);
        t.input += r.input;
        t.output += r.output;
        t.cached += r.cached;
        let m = minutes.entry(r.start_ms.div_euclid(MINUTE)).or_default();
        m.0 += 1;
        m.1 += r.input + r.output;
        let cost = |model: &str| {
            prices.lookup(model).map(|(_, p)| {
                i128::from(r.input - r.cached) * i128::from(p.input)
                    + i128::from(r.cached) * i128::from(p.cached_input)
                    + i128::from(r.output) * i128::from(p.output)
            })
        };
        match cost(&r.model) {
            Some(c) => t.cost += c,
            None => t.unpriced += 1,
        }
        t.projected += cost(map.target(&r.model, None)).unwrap_or(0);
    }
    t.rpm = minutes.values().map(|v| v.0).collect();
    t.tpm = minutes.values().map(|v| v.1).collect();
    t
}

fn ms(s: &Option<String>) -> Option<i64> {
    s.as_deref().and_then(sheepdog_analyze::time::parse_timestamp)
}

fn check_usage(name: &str, u: &sheepdog_analyze::report::Usage, t: &Truth, span: i64) {
    assert_eq!(u.requests, t.requests, "{name} requests");
    assert_eq!(u.errors, t.errors, "{name} errors");
    assert_eq!((u.input_tokens, u.output_tokens, u.cached_tokens), (t.input, t.output, t.cached), "{name} tokens");
    assert_eq!(u.peak_concurrency.value, t.peak, "{name} peak concurrency");
    assert_eq!(ms(&u.peak_concurrency.at), t.peak_at, "{name} peak time");
    let r = &u.requests_per_minute;
    assert_eq!(
        (r.p50, r.p95, r.peak),
        (nearest_rank(t.rpm.clone(), 0.5), nearest_rank(t.rpm.clone(), 0.95), *t.rpm.iter().max().unwrap_or(&0)),
        "{name} rpm"
    );
    assert_eq!(r.active_minutes, t.rpm.len() as u64);
    let k = &u.tokens_per_minute;
    assert_eq!(k.peak, *t.tpm.iter().max().unwrap_or(&0), "{name} tpm peak");
    for (got, q) in [(k.p50, 0.5), (k.p95, 0.95)] {
        let want = nearest_rank(t.tpm.clone(), q);
        assert!(got >= want && (got - want) as f64 <= want as f64 / 256.0 + 0.5, "{name} tpm p{q}: {got} vs {want}");
    }
    assert_eq!(u.cost.observed.nanos as i128, t.cost, "{name} cost");
    assert_eq!(u.cost.projected_observed.nanos as i128, t.projected, "{name} projected cost");
    assert_eq!(u.cost.monthly.nanos as i128, monthly(t.cost, span), "{name} monthly");
    assert_eq!(u.cost.unpriced_requests, t.unpriced, "{name} unpriced");
    let limits = &u.recommended_limits;
    assert_eq!(limits.max_concurrency, (t.peak * 125).div_ceil(100));
}

fn check_against_truth(report: &Report, reqs: &[SynthRequest], map: &ModelMap) {
    let all: Vec<&SynthRequest> = reqs.iter().collect();
    let first = reqs.iter().map(|r| r.start_ms).min().unwrap();
    let last = reqs.iter().map(|r| r.start_ms + r.duration_ms.unwrap_or(0).max(0)).max().unwrap();
    let span = (last - first).max(MINUTE);
    assert_eq!(report.window.span_ms, span);
    check_usage("overall", &report.overall, &truth_of(&all, map), span);
    let mut by_tenant: BTreeMap<&str, Vec<&SynthRequest>> = BTreeMap::new();
    for r in reqs {
        by_tenant.entry(r.tenant.as_str()).or_default().push(r);
    }
    assert_eq!(report.tenants.len(), by_tenant.len());
    for (name, rs) in &by_tenant {
        let t = report.tenants.iter().find(|t| t.tenant == *name).unwrap();
        check_usage(name, &t.usage, &truth_of(rs, map), span);
        // Tokens per request: exact totals and averages, p95 within the histogram's bound.
        let with_usage: Vec<&&SynthRequest> = rs.iter().filter(|r| r.status < 400).collect();
        let tpr = &t.tokens_per_request;
        assert_eq!(tpr.input.total, with_usage.iter().map(|r| r.input).sum::<u64>());
        let want = nearest_rank(with_usage.iter().map(|r| r.output).collect(), 0.95);
        assert!(tpr.output.p95 >= want && (tpr.output.p95 - want) as f64 <= want as f64 / 256.0 + 0.5);
        assert_eq!(tpr.output.max, with_usage.iter().map(|r| r.output).max().unwrap_or(0));
        for e in &t.endpoints {
            let mine: Vec<&&&SynthRequest> = with_usage.iter().filter(|r| r.endpoint == e.endpoint).collect();
            let want = if mine.is_empty() {
                0.0
            } else {
                mine.iter().map(|r| r.input).sum::<u64>() as f64 / mine.len() as f64
            };
            assert!(
                (e.avg_input_tokens - want).abs() <= 0.05,
                "{name} {}: {} vs {want}",
                e.endpoint,
                e.avg_input_tokens
            );
        }
        assert_eq!(t.endpoints.iter().map(|e| e.requests).sum::<u64>(), rs.len() as u64);
        assert_eq!(t.models.iter().map(|m| m.requests).sum::<u64>(), rs.len() as u64);
    }
    // Per model and endpoint: sums exact, averages exact, p95 within the histogram's bound.
    for m in &report.models {
        let rs: Vec<&SynthRequest> = reqs.iter().filter(|r| r.model == m.group.name).collect();
        assert_eq!(m.group.requests, rs.len() as u64);
        assert_eq!(m.group.input_tokens.total, rs.iter().map(|r| r.input).sum::<u64>());
        assert_eq!(m.group.output_tokens.total, rs.iter().map(|r| r.output).sum::<u64>());
    }
    for e in &report.endpoints {
        let rs: Vec<&SynthRequest> = reqs.iter().filter(|r| r.endpoint == e.name).collect();
        assert_eq!(e.requests, rs.len() as u64, "{}", e.name);
        // Failed requests carry no usage: they are not in the token statistics.
        let inputs: Vec<u64> = rs.iter().filter(|r| r.status < 400).map(|r| r.input).collect();
        let want = nearest_rank(inputs.clone(), 0.95);
        let got = e.input_tokens.p95;
        assert!(got >= want && (got - want) as f64 <= want as f64 / 256.0 + 0.5, "{}: {got} vs {want}", e.name);
        assert_eq!(e.input_tokens.max, inputs.iter().copied().max().unwrap_or(0));
    }
}

fn cfg(seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        tenants: 12,
        mean_gap_ms: 150,
        jitter_ms: 3_000,
        no_duration_per_mille: 30,
        ..SynthConfig::default()
    }
}

#[test]
fn jsonl_ground_truth_is_exact_with_spilled_runs() {
    let reqs = requests(3000, cfg(1));
    let mut map = ModelMap::default();
    map.parse_into("gpt-4.1=deepseek-v3.2").unwrap();
    let o = Options { model_map: map.clone(), max_events_in_memory: 500, threads: 2, ..Options::default() };
    let report = run(vec![Input::from_bytes("log.jsonl", jsonl(&reqs))], &o);
    assert!(report.quality.spill_runs >= 4, "the external sort must have spilled: {}", report.quality.spill_runs);
    assert_eq!(report.inputs[0].format, "jsonl");
    assert_eq!(report.quality.malformed, 0);
    assert_eq!(report.quality.records, 3000);
    check_against_truth(&report, &reqs, &map);
    // gpt-4.1 is priced as gpt-4.1 even when the response names a dated model; llama is not priced.
    let llama = report.models.iter().find(|m| m.group.name == "llama-3.3-70b").unwrap();
    assert!(llama.price.is_none());
    assert!(report.quality.unpriced_models.iter().any(|u| u.model == "llama-3.3-70b"));
    let gpt = report.models.iter().find(|m| m.group.name == "gpt-4.1").unwrap();
    assert_eq!(gpt.mapped_to, "deepseek-v3.2");
    assert!(report.cost.projected_observed.nanos < report.cost.observed.nanos);
    // Series: every request is in the total line.
    let total = report.series.lines.iter().find(|l| l.name == "(total)").unwrap();
    assert_eq!(total.requests.iter().sum::<u64>(), 3000);
    assert!(report.series.lines.len() <= 7);
}

fn figures(r: &Report) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap();
    let o = v.as_object_mut().unwrap();
    for k in ["generated_at", "elapsed_ms", "settings", "inputs"] {
        o.remove(k);
    }
    let q = o.get_mut("quality").unwrap().as_object_mut().unwrap();
    q.remove("spilled_events");
    q.remove("spill_runs");
    v
}

#[test]
fn external_sort_and_threads_do_not_change_any_figure() {
    let reqs = requests(2500, cfg(2));
    let data = jsonl(&reqs);
    let a = run(vec![Input::from_bytes("a", data.clone())], &Options { threads: 1, ..Options::default() });
    let b = run(
        vec![Input::from_bytes("a", data)],
        &Options { threads: 3, max_events_in_memory: 64, ..Options::default() },
    );
    assert_eq!(a.quality.spill_runs, 0);
    assert!(b.quality.spill_runs > 10);
    assert_eq!(figures(&a), figures(&b));
}

#[test]
fn unordered_and_clock_skewed_timestamps() {
    let mut reqs = requests(1500, cfg(3));
    let ordered = run(vec![Input::from_bytes("a", jsonl(&reqs))], &opts());
    // Reverse and interleave the lines: the same figures.
    reqs.reverse();
    let n = reqs.len();
    let (a, b) = reqs.split_at(n / 2);
    let shuffled: Vec<SynthRequest> = a.iter().zip(b.iter()).flat_map(|(x, y)| [y.clone(), x.clone()]).collect();
    let unordered = run(vec![Input::from_bytes("a", jsonl(&shuffled))], &opts());
    assert_eq!(figures(&ordered), figures(&unordered));
    check_against_truth(&unordered, &shuffled, &ModelMap::default());

    // Ends before starts (clock skew between the hosts that logged them).
    let skewed = "{\"timestamp\":\"2025-06-01T00:00:10Z\",\"end_time\":\"2025-06-01T00:00:09Z\",\"user\":\"t\",\"model\":\"gpt-4.1\"}\n\
                  {\"timestamp\":\"2025-06-01T00:00:10Z\",\"duration_ms\":-250,\"user\":\"t\",\"model\":\"gpt-4.1\"}\n\
                  {\"timestamp\":\"2025-06-01T00:00:10Z\",\"duration_ms\":1000,\"user\":\"t\",\"model\":\"gpt-4.1\"}\n";
    let r = run(vec![Input::from_bytes("skew", skewed.as_bytes().to_vec())], &opts());
    assert_eq!(r.quality.records, 3);
    assert_eq!(r.quality.negative_durations, 2);
    assert_eq!(r.quality.without_duration, 2);
    assert_eq!(r.overall.peak_concurrency.value, 1, "skewed requests are not intervals");
    assert_eq!(r.overall.requests_per_minute.peak, 3, "but they count in the rates");
}

fn write_gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_and_several_files() {
    let reqs = requests(2000, cfg(4));
    let whole = run(vec![Input::from_bytes("all", jsonl(&reqs))], &opts());
    let (a, b) = reqs.split_at(1200);
    let gz = write_gz(&jsonl(a));
    let split = run(vec![Input::from_bytes("a.jsonl.gz", gz), Input::from_bytes("b.jsonl", jsonl(b))], &opts());
    assert!(split.inputs[0].gzip && !split.inputs[1].gzip);
    assert_eq!(split.inputs[0].records, 1200);
    assert_eq!(split.inputs[1].records, 800);
    assert_eq!(figures(&whole), figures(&split));
    // Concatenated gzip members (`cat a.gz b.gz`) are one stream.
    let mut two = write_gz(&jsonl(a));
    two.extend(write_gz(&jsonl(b)));
    let cat = run(vec![Input::from_bytes("cat.gz", two)], &opts());
    assert_eq!(figures(&whole), figures(&cat));
    // A truncated gzip file: what was read counts, the error is reported, nothing crashes.
    let gz = write_gz(&jsonl(&reqs));
    let cut = run(vec![Input::from_bytes("cut.gz", gz[..gz.len() / 2].to_vec())], &opts());
    assert!(cut.inputs[0].error.is_some(), "{:?}", cut.inputs[0]);
    assert!(cut.quality.records > 0 && cut.quality.records < 2000);
    assert!(cut.quality.warnings.iter().any(|w| w.contains("cut.gz")));
}

/// Same requests in every format (without cached tokens, which LiteLLM's export does not carry).
fn plain(n: usize, seed: u64) -> Vec<SynthRequest> {
    let mut c = cfg(seed);
    c.no_duration_per_mille = 0;
    requests(n, c).into_iter().map(|r| SynthRequest { cached: 0, ..r }).collect()
}

fn csv_of(
    header: &str,
    reqs: &[SynthRequest],
    row: fn(&mut Vec<u8>, &SynthRequest, u64) -> std::io::Result<()>,
) -> Vec<u8> {
    let mut out = format!("{header}\n").into_bytes();
    for (i, r) in reqs.iter().enumerate() {
        row(&mut out, r, i as u64).unwrap();
    }
    out
}

fn key_figures(r: &Report) -> Vec<(String, u64, u64, u64, u64, u64, u64)> {
    r.tenants
        .iter()
        .map(|t| {
            let u = &t.usage;
            (
                t.tenant.clone(),
                u.requests,
                u.errors,
                u.input_tokens,
                u.output_tokens,
                u.peak_concurrency.value,
                u.requests_per_minute.peak,
            )
        })
        .collect()
}

#[test]
fn every_input_format_gives_the_same_figures() {
    let reqs = plain(1200, 5);
    let base = run(vec![Input::from_bytes("app.jsonl", jsonl(&reqs))], &opts());
    check_against_truth(&base, &reqs, &ModelMap::default());
    let want = key_figures(&base);

    let litellm_csv = csv_of(synth::LITELLM_CSV_HEADER, &reqs, synth::write_litellm_csv);
    let sheepdog_csv = csv_of(synth::SHEEPDOG_CSV_HEADER, &reqs, synth::write_sheepdog_csv);
    // LiteLLM's JSON: an array of spend-log rows, and the same wrapped in {"data": [...]}.
    let rows: Vec<serde_json::Value> = reqs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let pg = |ms: i64| sheepdog_analyze::time::format_ms(ms);
            serde_json::json!({
                "request_id": format!("req-{i}"), "call_type": "acompletion", "spend": 0.0,
                "total_tokens": r.input + r.output, "prompt_tokens": r.input, "completion_tokens": r.output,
                "startTime": pg(r.start_ms), "endTime": pg(r.start_ms + r.duration_ms.unwrap()),
                "model": r.model, "user": "", "metadata": {"user_api_key_team_id": r.tenant, "status": if r.status >= 400 {"failure"} else {"success"}},
            })
        })
        .collect();
    let litellm_array = serde_json::to_vec_pretty(&rows).unwrap();
    let litellm_wrapped = serde_json::to_vec_pretty(&serde_json::json!({"data": rows, "total": rows.len()})).unwrap();
    let mut litellm_lines = Vec::new();
    for r in &rows {
        serde_json::to_writer(&mut litellm_lines, r).unwrap();
        litellm_lines.push(b'\n');
    }
    // Any CSV, mapped on the command line.
    let mut generic = b"when,who,what,in,out,took_s,code\n".to_vec();
    for r in &reqs {
        writeln!(
            generic,
            "{},{},{},{},{},{}.{:03},{}",
            r.start_ms / 1000 * 1000 + r.start_ms % 1000,
            r.tenant,
            r.model,
            r.input,
            r.output,
            r.duration_ms.unwrap() / 1000,
            r.duration_ms.unwrap() % 1000,
            r.status
        )
        .unwrap();
    }
    let generic_opts = Options {
        field_map: parse_field_map(
            "when=start,who=tenant,what=model,in=input_tokens,out=output_tokens,took_s=duration_s,code=status",
        )
        .unwrap(),
        ..opts()
    };
    for (name, data, format, o) in [
        ("litellm.csv", litellm_csv, "litellm-csv", opts()),
        ("usage.csv", sheepdog_csv, "sheepdog-csv", opts()),
        ("spend.json", litellm_array, "litellm-json", opts()),
        ("spend-wrapped.json", litellm_wrapped, "litellm-json", opts()),
        ("spend.jsonl", litellm_lines, "litellm-json", opts()),
        ("any.csv", generic, "csv", generic_opts),
    ] {
        let r = run(vec![Input::from_bytes(name, data.clone())], &o);
        assert_eq!(r.inputs[0].format, format, "{name}");
        assert_eq!(r.quality.malformed, 0, "{name}: {:?}", r.quality.malformed_examples);
        assert_eq!(key_figures(&r), want, "{name}");
        assert_eq!(r.cost.observed, base.cost.observed, "{name}");
        // Gzip of any format is detected by content.
        let z = run(vec![Input::from_bytes(name, write_gz(&data))], &o);
        assert_eq!(key_figures(&z), want, "{name}.gz");
        // And the format can be forced.
        let forced = Options { format: Some(format.parse::<Format>().unwrap()), ..o.clone() };
        assert_eq!(key_figures(&run(vec![Input::from_bytes(name, data)], &forced)), want, "{name} forced");
    }
    // The sheepdog export names its endpoint.
    let r = run(
        vec![Input::from_bytes("usage.csv", csv_of(synth::SHEEPDOG_CSV_HEADER, &reqs, synth::write_sheepdog_csv))],
        &opts(),
    );
    assert_eq!(r.endpoints[0].name, "/v1/chat/completions");
}

#[test]
fn malformed_lines_are_counted_reported_and_skipped() {
    let reqs = requests(200, cfg(6));
    let good = jsonl(&reqs);
    let lines: Vec<&[u8]> = good.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut data = Vec::new();
    let mut bad_lines = Vec::new();
    let mut line_no = 0u64;
    let push = |data: &mut Vec<u8>, l: &[u8]| {
        data.extend_from_slice(l);
        data.push(b'\n');
    };
    for (i, l) in lines.iter().enumerate() {
        line_no += 1;
        push(&mut data, l);
        match i {
            10 => {
                line_no += 1;
                bad_lines.push((line_no, "invalid JSON"));
                push(&mut data, b"{\"timestamp\": \"2025-06-01T00:00:00Z\", \"model\": ");
            }
            20 => {
                line_no += 1;
                bad_lines.push((line_no, "not a JSON object"));
                push(&mut data, b"[1, 2, 3]");
            }
            30 => {
                line_no += 1;
                bad_lines.push((line_no, "no timestamp"));
                push(&mut data, b"{\"model\": \"gpt-4.1\", \"usage\": {\"prompt_tokens\": 5}}");
            }
            40 => {
                line_no += 1;
                bad_lines.push((line_no, "unreadable timestamp"));
                push(&mut data, b"{\"timestamp\": \"last tuesday\", \"model\": \"gpt-4.1\"}");
            }
            50 => {
                line_no += 2;
                push(&mut data, b"");
                push(&mut data, b"   \r");
            }
            60 => {
                line_no += 1;
                bad_lines.push((line_no, "token count"));
                push(&mut data, b"{\"timestamp\": 1748736000, \"usage\": {\"prompt_tokens\": -3}}");
            }
            _ => {}
        }
    }
    // A final line without a newline, and broken.
    data.extend_from_slice(b"{\"oops\"");
    line_no += 1;
    bad_lines.push((line_no, "invalid JSON"));
    for threads in [1, 2] {
        let r = run(vec![Input::from_bytes("mixed.jsonl", data.clone())], &Options { threads, ..Options::default() });
        assert_eq!(r.quality.records, 200);
        assert_eq!(r.quality.malformed, bad_lines.len() as u64);
        assert_eq!(r.quality.blank_lines, 2);
        assert_eq!(r.inputs[0].lines, line_no);
        let got: Vec<(u64, String)> =
            r.quality.malformed_examples.iter().map(|m| (m.line.unwrap(), m.reason.clone())).collect();
        assert_eq!(got.len(), bad_lines.len());
        for ((gl, greason), (wl, wreason)) in got.iter().zip(&bad_lines) {
            assert_eq!(gl, wl, "{got:?}");
            assert!(greason.contains(wreason), "line {gl}: {greason} should say {wreason}");
        }
        assert!(r.quality.warnings.iter().any(|w| w.contains("malformed")));
        check_against_truth(&r, &reqs, &ModelMap::default());
    }
    // Only the first 20 examples are kept, in line order.
    let mut many = Vec::new();
    for i in 0..100 {
        writeln!(many, "garbage {i}").unwrap();
        many.extend_from_slice(lines[0]);
        many.push(b'\n');
    }
    let r = run(vec![Input::from_bytes("many.jsonl", many)], &opts());
    assert_eq!(r.quality.malformed, 100);
    assert_eq!(r.quality.malformed_examples.len(), 20);
    assert_eq!(r.quality.malformed_examples[0].line, Some(1));
    assert_eq!(r.quality.malformed_examples[19].line, Some(39));
}

#[test]
fn a_line_longer_than_the_limit_is_skipped() {
    let reqs = requests(3, cfg(7));
    let mut data = jsonl(&reqs[..1]);
    data.extend_from_slice(b"{\"timestamp\":1748736000,\"pad\":\"");
    data.extend(std::iter::repeat_n(b'x', sheepdog_analyze::source::MAX_LINE + 10));
    data.extend_from_slice(b"\"}\n");
    data.extend(jsonl(&reqs[1..]));
    let r = run(vec![Input::from_bytes("long.jsonl", data)], &opts());
    assert_eq!(r.quality.records, 3);
    assert_eq!(r.quality.malformed, 1);
    assert_eq!(r.quality.malformed_examples[0].line, Some(2));
    assert!(r.quality.malformed_examples[0].reason.contains("longer than"));
    assert_eq!(r.inputs[0].lines, 4);
}

#[test]
fn empty_inputs_give_an_empty_report() {
    for (name, data) in [("empty", Vec::new()), ("blank", b"\n \n\t\n".to_vec()), ("empty.gz", write_gz(b""))] {
        let r = run(vec![Input::from_bytes(name, data)], &opts());
        assert_eq!(r.inputs[0].format, "empty", "{name}");
        assert_eq!(r.quality.records, 0);
        assert_eq!(r.overall.requests, 0);
        assert_eq!(r.overall.peak_concurrency.value, 0);
        assert!(r.tenants.is_empty() && r.models.is_empty());
        assert_eq!(r.cost.monthly.nanos, 0);
        assert!(r.window.first.is_none());
        let html = sheepdog_analyze::html::render(&r);
        assert!(html.contains("No requests"));
        assert!(sheepdog_analyze::summary::text(&r).contains("records 0"));
    }
    let r = run(Vec::new(), &opts());
    assert_eq!(r.overall.requests, 0);
    // A CSV with only a header.
    let r = run(vec![Input::from_bytes("h.csv", format!("{}\n", synth::SHEEPDOG_CSV_HEADER).into_bytes())], &opts());
    assert_eq!(r.quality.records, 0);
    assert_eq!(r.inputs[0].format, "sheepdog-csv");
}

#[test]
fn a_tenant_with_a_single_request() {
    let mut reqs = requests(400, cfg(8));
    let single = SynthRequest {
        tenant: "solo".into(),
        model: "claude-sonnet-4.5".into(),
        endpoint: "/v1/chat/completions".into(),
        start_ms: reqs[100].start_ms,
        duration_ms: Some(1234),
        input: 1000,
        output: 100,
        cached: 0,
        status: 200,
    };
    reqs.insert(57, single);
    let r = run(vec![Input::from_bytes("a", jsonl(&reqs))], &opts());
    check_against_truth(&r, &reqs, &ModelMap::default());
    let solo = r.tenants.iter().find(|t| t.tenant == "solo").unwrap();
    let u = &solo.usage;
    assert_eq!((u.requests, u.peak_concurrency.value), (1, 1));
    assert_eq!((u.requests_per_minute.p50, u.requests_per_minute.p95, u.requests_per_minute.peak), (1, 1, 1));
    assert_eq!(u.tokens_per_minute.peak, 1100);
    assert_eq!(u.cost.observed.nanos, 1000 * 3000 + 100 * 15_000);
    assert_eq!(u.headroom.requests_peak_to_p50, Some(1.0));
    assert_eq!(solo.first_seen, solo.first_seen.clone());
    assert_eq!(solo.models.len(), 1);
    // A log of one request only.
    let one = run(vec![Input::from_bytes("one", jsonl(&reqs[57..58]))], &opts());
    assert_eq!(one.overall.requests, 1);
    assert_eq!(one.window.span_ms, MINUTE, "a span is at least one minute");
    assert_eq!(one.overall.cost.monthly.nanos as i128, monthly(3_000_000 + 1_500_000, MINUTE));
}

#[test]
fn dedicated_tier_recommendations() {
    let reqs = requests(3000, cfg(9));
    let tenants = TenantsFile::parse(
        "[tenants.\"tenant-011\"]\nname = \"Small but regulated\"\ntags = [\"data-residency:eu\"]\n",
        "tenants.toml",
    )
    .unwrap();
    // Capacity unknown: the observed peak is the capacity, saturated at the peak instant only.
    let o = Options { tenants: tenants.clone(), ..opts() };
    let r = run(vec![Input::from_bytes("a", jsonl(&reqs))], &o);
    let peak_at = ms(&r.overall.peak_concurrency.at).unwrap();
    let at_peak = |t: &str| {
        reqs.iter()
            .filter(|q| q.tenant == t)
            .filter_map(|q| q.duration_ms.map(|d| (q.start_ms, q.start_ms + d)))
            .filter(|&(a, b)| a <= peak_at && peak_at < b)
            .count() as u64
    };
    let active = r.tenants.iter().filter(|t| at_peak(&t.tenant) > 0).count() as u64;
    assert_eq!(r.overall.peak_concurrency.active_tenants, active);
    let share = r.overall.peak_concurrency.value as f64 / active as f64;
    let mut flagged = 0;
    for t in &r.tenants {
        assert_eq!(t.concurrency_at_overall_peak, at_peak(&t.tenant), "{}", t.tenant);
        let over = t.concurrency_at_overall_peak as f64 > share;
        let tagged = t.tenant == "tenant-011";
        flagged += usize::from(over);
        assert_eq!(t.recommendation.tier == "dedicated", over || tagged, "{}: {:?}", t.tenant, t.recommendation);
        assert_eq!(r.dedicated.iter().any(|d| d.tenant == t.tenant), over || tagged);
    }
    assert!(flagged >= 1 && flagged < r.tenants.len(), "{flagged}");
    let small = r.tenants.iter().find(|t| t.tenant == "tenant-011").unwrap();
    assert_eq!(small.name.as_deref(), Some("Small but regulated"));
    assert!(small.recommendation.reasons.iter().any(|x| x.contains("data-residency:eu")));
    assert_eq!(r.tenants[0].tenant, "tenant-000");
    assert_eq!(r.tenants[0].recommendation.tier, "dedicated", "{:?}", r.tenants[0].recommendation);
    assert!(r.settings.upstream_concurrency_source.contains("observed"));

    // A capacity above the observed peak: nobody is ever held back; only the tag counts.
    let big = Options { upstream_concurrency: Some(10_000), tenants: tenants.clone(), ..opts() };
    let r = run(vec![Input::from_bytes("a", jsonl(&reqs))], &big);
    let peak_unknown_capacity = r.overall.peak_concurrency.value;
    assert_eq!(r.dedicated.iter().map(|d| d.tenant.as_str()).collect::<Vec<_>>(), vec!["tenant-011"]);
    assert!(r.tenants[0].recommendation.reasons[0].contains("never exceeded"));

    // A capacity a little below the peak: the biggest tenant's own requests start beyond it while it is over its share.
    let peak = peak_unknown_capacity;
    let small_cap = Options { upstream_concurrency: Some(peak * 9 / 10), tenants, ..opts() };
    let r = run(vec![Input::from_bytes("a", jsonl(&reqs))], &small_cap);
    let top = &r.tenants[0];
    assert!(top.recommendation.reasons.iter().any(|x| x.contains("would make them wait")), "{:?}", top.recommendation);
    assert!(r.dedicated.len() < r.tenants.len());
}

#[test]
fn tenant_field_and_timestamp_at_end() {
    let lines = "{\"ts\":\"2025-06-01T00:00:10Z\",\"latency_ms\":4000,\"headers\":{\"X-Tenant-ID\":\"a\"},\"user\":\"u1\",\"model\":\"gpt-4.1\"}\n\
                 {\"ts\":\"2025-06-01T00:00:12Z\",\"latency_ms\":1000,\"headers\":{\"X-Tenant-ID\":\"a\"},\"user\":\"u2\",\"model\":\"gpt-4.1\"}\n";
    let by_header = Options { tenant_fields: vec!["headers.x-tenant-id".into()], ..opts() };
    let r = run(vec![Input::from_bytes("a", lines.as_bytes().to_vec())], &by_header);
    assert_eq!(r.tenants.len(), 1);
    assert_eq!(r.tenants[0].usage.peak_concurrency.value, 2, "[10 s, 14 s) and [12 s, 13 s) overlap");
    let r = run(vec![Input::from_bytes("a", lines.as_bytes().to_vec())], &opts());
    assert_eq!(r.tenants.len(), 1, "the default paths find the header before `user`");
    let by_user = Options { tenant_fields: vec!["user".into()], ..opts() };
    let r = run(vec![Input::from_bytes("a", lines.as_bytes().to_vec())], &by_user);
    assert_eq!(r.tenants.len(), 2);
    // The timestamps are the ends: [6 s, 10 s) and [11 s, 12 s) do not overlap.
    let at_end = Options { timestamp_at: sheepdog_analyze::TimestampAt::End, ..by_header };
    let r = run(vec![Input::from_bytes("a", lines.as_bytes().to_vec())], &at_end);
    assert_eq!(r.overall.peak_concurrency.value, 1);
    assert_eq!(r.window.first.as_deref(), Some("2025-06-01T00:00:06.000Z"));
}

#[test]
fn bad_options_are_refused_before_reading() {
    let mut map = ModelMap::default();
    map.parse_into("gpt-4.1=no-such-model").unwrap();
    let e = analyze(Vec::new(), &Options { model_map: map, ..opts() }).unwrap_err().to_string();
    assert!(e.contains("no-such-model") && e.contains("deepseek-v3.2"), "{e}");
    assert!(parse_field_map("a=nonsense").unwrap_err().contains("unknown field"));
    assert!(parse_field_map("novalue").is_err());
    let e = analyze(Vec::new(), &Options { tenant_fields: vec!["a..b".into()], ..opts() }).unwrap_err().to_string();
    assert!(e.contains("a..b"), "{e}");
}
