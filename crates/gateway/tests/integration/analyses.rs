//! `POST /admin/v1/analyses`: the console's upload page. A generated log
//! with known ground truth, plain and gzip, analysed with the gateway's own
//! prices and capacity; bad input is a 400 that says why, an upload over
//! `gateway.max_analysis_upload_bytes` a 413; the upload is audited and in
//! the OpenAPI document.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sheepdog_analyze::synth::{self, Generator, SynthConfig, SynthRequest};

use sheepdog_testkit::config::brute_peak;
use sheepdog_testkit::process::gzip;
use sheepdog_testkit::*;

fn requests(n: usize) -> Vec<SynthRequest> {
    let cfg = SynthConfig { tenants: 5, mean_gap_ms: 100, jitter_ms: 1_500, ..SynthConfig::default() };
    Generator::new(cfg).take(n).collect()
}

#[allow(clippy::unwrap_used)]
fn jsonl(reqs: &[SynthRequest]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rng = synth::Rng::new(3);
    for (i, r) in reqs.iter().enumerate() {
        // Long prompts: the upload is several MB, beyond axum's default 2 MB body limit.
        let prompt = synth::filler(&mut rng, 1500);
        synth::write_jsonl(&mut out, r, &prompt, "Done.", i as u64).unwrap();
    }
    out
}

#[allow(clippy::unwrap_used)]
async fn upload(gw: &TestGateway, query: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    let resp = gw
        .client
        .post(format!("{}/admin/v1/analyses{query}", gw.url))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    json_or_text(resp).await
}

#[tokio::test]
async fn an_uploaded_log_is_analysed_with_the_gateways_prices() {
    let gw = TestGateway::start_with(Db::Sqlite, |c| {
        let mut p = simulated_provider();
        p.max_concurrency = Some(40);
        c.providers.insert("sim".into(), p);
        // gpt-4.1 at this gateway's own (discounted) prices; deepseek-v3.2 for the projection.
        c.models.insert("gpt-4.1".into(), model("sim", "gpt-4.1", "1.5", "6"));
        c.models.insert("deepseek-v3.2".into(), model("sim", "deepseek-v3.2", "0.10", "0.42"));
    })
    .await;
    let reqs = requests(1500);
    let body = jsonl(&reqs);
    assert!(body.len() > 2 * 1024 * 1024, "{}", body.len());
    let (s, v) = upload(&gw, "?map=gpt-4.1%3Ddeepseek-v3.2&tenant_field=metadata.tenant_id", body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let report = &v["report"];
    assert_eq!(report["schema"], "sheepdog.analysis.v1");
    assert_eq!(report["inputs"][0]["format"], "jsonl");
    assert_eq!(report["inputs"][0]["bytes"], body.len() as u64);
    let o = &report["overall"];
    assert_eq!(o["requests"], 1500);
    assert_eq!(o["input_tokens"], reqs.iter().map(|r| r.input).sum::<u64>());
    assert_eq!(o["output_tokens"], reqs.iter().map(|r| r.output).sum::<u64>());
    assert_eq!(o["peak_concurrency"]["value"], brute_peak(&reqs));
    let gpt: Vec<&SynthRequest> = reqs.iter().filter(|r| r.model == "gpt-4.1").collect();
    let deepseek: i64 =
        reqs.iter().filter(|r| r.model == "deepseek-v3.2").map(|r| r.input as i64 * 100 + r.output as i64 * 420).sum();
    let now: i64 = gpt.iter().map(|r| r.input as i64 * 1_500 + r.output as i64 * 6_000).sum::<i64>() + deepseek;
    let projected: i64 = gpt.iter().map(|r| r.input as i64 * 100 + r.output as i64 * 420).sum::<i64>() + deepseek;
    assert_eq!(report["cost"]["observed"]["nanos"], now, "only this gateway's models are priced");
    assert_eq!(report["cost"]["projected_observed"]["nanos"], projected);
    assert!(report["cost"]["price_table"].as_str().unwrap().contains("this gateway"));
    assert_eq!(report["settings"]["upstream_concurrency"], 40);
    assert_eq!(report["tenants"].as_array().unwrap().len(), 5);
    let html = v["html"].as_str().unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));

    // The same log gzipped: the same figures.
    let (s, z) = upload(&gw, "?map=gpt-4.1%3Ddeepseek-v3.2", gzip(&body)).await;
    assert_eq!(s, StatusCode::OK, "{z}");
    assert_eq!(z["report"]["inputs"][0]["gzip"], true);
    assert_eq!(z["report"]["overall"], report["overall"]);
    assert_eq!(z["report"]["tenants"], report["tenants"]);

    // Audited, and documented.
    let (s, audit) = gw.admin(Method::GET, "/admin/v1/audit", None).await;
    assert_eq!(s, StatusCode::OK);
    let entries = audit["data"].as_array().unwrap();
    let runs: Vec<&Value> = entries.iter().filter(|e| e["action"] == "analysis.run").collect();
    assert_eq!(runs.len(), 2, "{audit}");
    assert!(runs.iter().any(|e| e.to_string().contains("1500")), "{audit}");
    let (s, doc) = gw.admin(Method::GET, "/admin/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let path = &doc["paths"]["/admin/v1/analyses"]["post"];
    assert!(path.is_object(), "{}", doc["paths"]);
    assert!(path["requestBody"]["content"]["application/octet-stream"].is_object(), "{path}");
    gw.stop().await;
}

#[tokio::test]
async fn bad_uploads_are_refused_with_a_reason() {
    let gw = TestGateway::start_with(Db::Sqlite, |c| c.gateway.max_analysis_upload_bytes = 64 * 1024).await;
    let small = jsonl(&requests(10));
    assert!(small.len() < 64 * 1024);

    let (s, v) = upload(&gw, "", Vec::new()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("empty"), "{v}");

    let (s, v) = upload(&gw, "", b"hello\nthis is not a log\n".to_vec()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("No usable request record"), "{m}");

    let (s, v) = upload(&gw, "", b"{\"timestamp\": \"soon\"}\n{\"model\": \"x\"}\n".to_vec()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("line 1") && m.contains("unreadable timestamp") && m.contains("line 2"), "{m}");

    for (query, needle) in [
        ("?format=xml", "format"),
        ("?map=gpt-4.1", "map"),
        ("?map=gpt-4.1%3Dgpt-9", "gpt-9"),
        ("?timestamp_at=noon", "timestamp_at"),
        ("?colour=blue", "colour"),
    ] {
        let (s, v) = upload(&gw, query, small.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(needle), "{query}: {v}");
    }

    // Over the limit: refused from Content-Length, and while streaming when there is none.
    let big = jsonl(&requests(200));
    assert!(big.len() > 64 * 1024);
    let (s, v) = upload(&gw, "", big.clone()).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "request_too_large");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big.chunks(8 * 1024).map(|c| Ok(c.to_vec())).collect();
    let (s, v) = upload(&gw, "", reqwest::Body::wrap_stream(futures::stream::iter(chunks))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

    // Within the limit, streamed without a length: fine.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = small.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    let (s, v) = upload(&gw, "", reqwest::Body::wrap_stream(futures::stream::iter(chunks))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["report"]["overall"]["requests"], 10);

    // The admin token is required.
    let resp = gw.client.post(format!("{}/admin/v1/analyses", gw.url)).body(small).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    gw.stop().await;
}
