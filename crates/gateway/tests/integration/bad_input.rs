//! Bad input: each a clear 4xx, nothing billable recorded, no panic.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use sheepdog_testkit::*;

#[tokio::test]
async fn bad_requests_get_clear_errors_and_record_nothing() {
    let gw = TestGateway::start_with(Db::Sqlite, |c| c.gateway.max_body_bytes = 64 * 1024).await;
    let (t, k) = gw.tenant_with_key("t").await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str, &str)> = vec![
        (
            "malformed JSON",
            b"{\"model\": \"gpt-4.1\", ".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "not valid JSON",
        ),
        (
            "invalid UTF-8",
            b"{\"model\": \"\xff\xfe\"}".to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "UTF-8",
        ),
        (
            "wrong type",
            br#"{"model": 4, "messages": []}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "`model` must be a string",
        ),
        (
            "messages not array",
            br#"{"model": "gpt-4.1", "messages": {}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "`messages` must be an array",
        ),
        (
            "stream not bool",
            br#"{"model": "gpt-4.1", "messages": [{"role":"user","content":"x"}], "stream": 1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "`stream`",
        ),
        ("empty body", Vec::new(), StatusCode::BAD_REQUEST, "invalid_request_error", "empty"),
        (
            "oversized",
            format!(
                "{{\"model\":\"gpt-4.1\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
                "a".repeat(70 * 1024)
            )
            .into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "larger than",
        ),
    ];
    for (name, body, status, code, text) in cases {
        let r = gw
            .client
            .post(&url)
            .bearer_auth(&k)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{name}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{name}");
        assert!(v["error"]["message"].as_str().unwrap().contains(text), "{name}: {v}");
        assert!(v["error"].get("type").is_some() && v["error"].get("param").is_some(), "{name}: OpenAI shape");
    }
    // Oversized without Content-Length (chunked).
    let big = format!(
        "{{\"model\":\"gpt-4.1\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "b".repeat(70 * 1024)
    );
    let stream = futures::stream::iter(
        big.into_bytes().chunks(1024).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let r = gw.client.post(&url).bearer_auth(&k).body(reqwest::Body::wrap_stream(stream)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Bad header values.
    let body = chat_body("gpt-4.1", "x");
    let r = gw.chat(&k).header("X-Cost-Center", "x".repeat(65)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["param"], "X-Cost-Center");
    let r = gw.chat(&k).header("X-Request-ID", "x".repeat(300)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = gw
        .chat(&k)
        .header("X-Tenant-ID", reqwest::header::HeaderValue::from_bytes(b"\xe9t\xe9").unwrap())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = gw.client.post(&url).header("Authorization", "Basic abc").json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Unknown paths and methods under /v1 are OpenAI-shaped too.
    let r = gw.client.get(format!("{}/v1/nope", gw.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string());
    let r = gw.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["code"].is_string());

    // Nothing was recorded as billable; the gateway still serves.
    let (_, usage) = gw.admin(Method::GET, &format!("/admin/v1/usage?tenant_id={t}"), None).await;
    assert_eq!(usage["data"], serde_json::json!([]), "{usage}");
    assert_eq!(gw.chat(&k).json(&body).send().await.unwrap().status(), StatusCode::OK);
    gw.stop().await;
}
