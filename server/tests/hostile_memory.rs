//! JSON amplification against the real binary: 8 parallel 30 MiB bodies of
//! `"x":[0,0,0,…]` (an unknown member, ~16× its size as a JSON tree) keep the
//! gateway's peak RSS (`VmHWM`) under 1 GiB. Its own test binary: it needs
//! the process to itself.

use std::process::Stdio;
use std::time::Instant;

use sheepdog_testkit::process::{free_port, sheepdog_command, sigterm, vm_hwm_kib, wait_for_port};
use sheepdog_testkit::raw::RawRequest;
use sheepdog_testkit::AdminClient;

const ADMIN_TOKEN: &str = "hostile-memory-admin-token";

/// One HTTP/1.1 request (`Connection: close`); returns the status and the body.
fn http(port: u16, method: &str, path: &str, bearer: &str, body: &[u8]) -> (u16, String) {
    let answer = RawRequest::local(port, method, path).bearer(bearer).json(body).send();
    (answer.status, answer.body)
}

#[test]
fn amplification_bodies_keep_peak_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let bin = || sheepdog_command(env!("CARGO_BIN_EXE_sheepdog"), "warn");
    let out = bin().current_dir(dir.path()).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    let mut child = bin()
        .current_dir(dir.path())
        .arg("gateway")
        .env("SHEEPDOG_GATEWAY__LISTEN", format!("127.0.0.1:{port}"))
        .env("SHEEPDOG_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, None);
    let pid = child.id();

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (_, key) = runtime.block_on(async {
        let admin = AdminClient::new(reqwest::Client::new(), format!("http://127.0.0.1:{port}"), ADMIN_TOKEN);
        admin.tenant_with_key("amplifier").await
    });
    drop(runtime);
    let (s, _) = http(
        port,
        "POST",
        "/v1/chat/completions",
        &key,
        br#"{"model":"gpt-4.1","messages":[{"role":"user","content":"warm up [sim:tokens=2]"}]}"#,
    );
    assert_eq!(s, 200);
    let before = vm_hwm_kib(pid);

    // Just under 30 MiB: `"x":[0,0,0,…]` after a valid request.
    let mut body = br#"{"model":"gpt-4.1","messages":[{"role":"user","content":"hi [sim:tokens=2]"}],"x":[0"#.to_vec();
    while body.len() < (30 << 20) - 16 {
        body.extend_from_slice(b",0");
    }
    body.extend_from_slice(b"]}");
    let body = std::sync::Arc::new(body);
    let started = Instant::now();
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (body, key) = (body.clone(), key.clone());
            std::thread::spawn(move || http(port, "POST", "/v1/chat/completions", &key, &body))
        })
        .collect();
    let statuses: Vec<u16> = senders.into_iter().map(|h| h.join().unwrap().0).collect();
    let elapsed = started.elapsed();
    let peak = vm_hwm_kib(pid);
    eprintln!(
        "amplification: 8 × {} MiB bodies answered {statuses:?} in {elapsed:?}; gateway VmHWM {} MiB before, {} MiB after",
        body.len() >> 20,
        before / 1024,
        peak / 1024
    );
    sigterm(pid);
    let _ = child.wait();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(peak < 1024 * 1024, "peak RSS {} MiB", peak / 1024);
}
