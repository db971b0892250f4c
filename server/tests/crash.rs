//! A replica killed with SIGKILL under load, then restarted: every request it
//! answered with 200 has its usage record, and the requests in flight at the
//! kill are recorded as `interrupted` (billed for the prompt estimate and
//! what was streamed), from the usage journal. Postgres and Redis, the real
//! binary.
// Helpers outside #[test] functions, which clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sheepdog_testkit::process::{delete_redis_keys, free_port, spawn_gateway};
use sheepdog_testkit::{usage_records, AdminClient, Db, TestDb};

const ADMIN: &str = "crash-test-admin-token-0123456789";

/// `sheepdog gateway` on `db_url` and the machine's Redis (under `prefix`),
/// journaling under `dir/journal` (each start in a directory of its own, the
/// journal shared); a model `slow` answering in 200 ms and streaming a chunk
/// every 50 ms.
fn start_gateway(dir: &Path, db_url: &str, prefix: &str) -> (Child, u16) {
    let port = free_port();
    let config = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\nworkers = 2\n\
         [database]\nurl = \"{db_url}\"\n\
         [redis]\nurl = \"redis://127.0.0.1:6379/0\"\nkey_prefix = \"{prefix}\"\ntimeout_ms = 1000\n\
         [accounting]\nflush_interval_ms = 50\njournal_dir = \"{}\"\n\
         [providers.slow]\nkind = \"simulated\"\nlatency_ms = 200\nchunk_interval_ms = 50\n\
         [models.slow]\nprovider = \"slow\"\ninput_per_mtok = 2\noutput_per_mtok = 8\n",
        dir.join("journal").display()
    );
    let own = dir.join(format!("start-{port}"));
    std::fs::create_dir_all(&own).unwrap();
    (spawn_gateway(env!("CARGO_BIN_EXE_sheepdog"), &own, &config, port, ADMIN), port)
}

#[tokio::test]
async fn sigkill_under_load_loses_no_answered_usage_and_bills_what_was_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Db::Postgres).await;
    let prefix = format!("sdtest:crash:{}:{}:", std::process::id(), free_port());
    let (mut child, port) = start_gateway(dir.path(), &db.url, &prefix);
    let base = format!("http://127.0.0.1:{port}");
    let admin = AdminClient::to(base.clone(), ADMIN);
    let (tenant, key) = admin.tenant_with_key("crash").await;

    // 16 clients send short requests in a loop, 4 more hold long streams.
    let client = reqwest::Client::new();
    let answered: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Instant::now() + Duration::from_millis(1500);
    let mut loops = Vec::new();
    for i in 0..20 {
        let (client, key, base, answered) = (client.clone(), key.clone(), base.clone(), answered.clone());
        loops.push(tokio::spawn(async move {
            let stream = i >= 16;
            let mut cut = 0;
            while Instant::now() < stop || stream {
                let text = if stream { "long [sim:tokens=400]" } else { "short [sim:tokens=5]" };
                let r = client
                    .post(format!("{base}/v1/chat/completions"))
                    .bearer_auth(&key)
                    .json(&json!({"model": "slow", "stream": stream,
                        "messages": [{"role": "user", "content": text}]}))
                    .send()
                    .await;
                let Ok(r) = r else {
                    cut += 1;
                    break;
                };
                let ok = r.status() == 200;
                let id = r.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_string());
                // Answered only if the whole body arrived.
                match r.bytes().await {
                    Ok(_) if ok => answered.lock().unwrap().push(id.unwrap()),
                    Ok(_) => {}
                    Err(_) => {
                        cut += 1;
                        break;
                    }
                }
                if stream {
                    break;
                }
            }
            cut
        }));
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut cut = 0;
    for l in loops {
        cut += l.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= 20, "only {} answered before the kill", answered.len());
    assert!(cut >= 4, "the streams were in flight at the kill ({cut} cut)");

    // The restart recovers the journal before it serves.
    let (mut again, _) = start_gateway(dir.path(), &db.url, &prefix);
    let records = usage_records(&db.url, &tenant).await;
    let ok: Vec<_> = records.iter().filter(|r| r.outcome == "ok").collect();
    let interrupted: Vec<_> = records.iter().filter(|r| r.outcome == "interrupted").collect();
    for id in &answered {
        assert!(ok.iter().any(|r| &r.request_id == id), "answered request {id} has no usage record");
    }
    assert_eq!(ok.len(), answered.len(), "one record per answered request");
    assert!(!interrupted.is_empty() && interrupted.len() <= cut, "{} interrupted of {cut} cut", interrupted.len());
    assert_eq!(records.len(), ok.len() + interrupted.len(), "{records:#?}");
    for r in &interrupted {
        assert_eq!((r.status_code, r.error_code.as_deref()), (500, Some("interrupted")));
        assert!(r.input_tokens > 0 && r.cost_nanos > 0, "billed for the prompt at least: {r:?}");
    }
    assert!(
        interrupted.iter().any(|r| r.stream && r.output_tokens > 0),
        "a stream cut after a second is billed for what it streamed: {interrupted:#?}"
    );
    // Nothing is left to replay, and a second recovery writes nothing twice.
    let journal: Vec<_> = std::fs::read_dir(dir.path().join("journal")).unwrap().flatten().collect();
    assert_eq!(journal.len(), 1, "only the running replica's own segment is left");
    again.kill().unwrap();
    again.wait().unwrap();
    let (mut third, _) = start_gateway(dir.path(), &db.url, &prefix);
    assert_eq!(usage_records(&db.url, &tenant).await.len(), records.len());
    third.kill().unwrap();
    third.wait().unwrap();
    delete_redis_keys("redis://127.0.0.1:6379/0", &prefix);
}
