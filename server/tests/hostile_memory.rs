//! JSON amplification against the real binary: 8 parallel 30 MiB bodies of
//! `"x":[0,0,0,…]` (an unknown member, ~16× its size as a JSON tree) keep the
//! gateway's peak RSS (`VmHWM`) under 1 GiB. Its own test binary: it needs
//! the process to itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "hostile-memory-admin-token";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sheepdog"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SHEEPDOG_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn");
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.1 request (`Connection: close`); returns the status and the body.
fn http(port: u16, method: &str, path: &str, bearer: &str, body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A field of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn amplification_bodies_keep_peak_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
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
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id();

    let (s, t) = http(port, "POST", "/admin/v1/tenants", ADMIN_TOKEN, br#"{"name":"amplifier","tier":"shared"}"#);
    assert_eq!(s, 201, "{t}");
    let t: serde_json::Value = serde_json::from_str(&t).unwrap();
    let id = t["id"].as_str().unwrap().to_string();
    let (s, k) = http(port, "POST", &format!("/admin/v1/tenants/{id}/keys"), ADMIN_TOKEN, b"{}");
    assert_eq!(s, 201, "{k}");
    let k: serde_json::Value = serde_json::from_str(&k).unwrap();
    let key = k["key"].as_str().unwrap().to_string();
    let (s, _) = http(
        port,
        "POST",
        "/v1/chat/completions",
        &key,
        br#"{"model":"gpt-4.1","messages":[{"role":"user","content":"warm up [sim:tokens=2]"}]}"#,
    );
    assert_eq!(s, 200);
    let before = status_kib(pid, "VmHWM:");

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
    let peak = status_kib(pid, "VmHWM:");
    eprintln!(
        "amplification: 8 × {} MiB bodies answered {statuses:?} in {elapsed:?}; gateway VmHWM {} MiB before, {} MiB after",
        body.len() >> 20,
        before / 1024,
        peak / 1024
    );
    Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let _ = child.wait();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(peak < 1024 * 1024, "peak RSS {} MiB", peak / 1024);
}
