//! Admin token rotation across replicas, with real binaries on one database
//! (SQLite, then Postgres): `POST /admin/v1/admin-tokens/rotate` and
//! `sheepdog admin-token rotate` revoke the old token on every gateway within
//! 1 s; `serve`'s own token (its console) keeps working; the first-start
//! token goes to stdout, never to the log; an `admin_token_env` token
//! replaces the stored one and refuses rotation.
// Helpers outside #[test] functions, which clippy.toml's test allowances do not reach.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sheepdog_testkit::process::{fake_site, free_port, sheepdog_command, sigterm, wait_exit, wait_for_port};
use sheepdog_testkit::raw::RawRequest;
use sheepdog_testkit::TestDb;

const ENV_TOKEN: &str = "env-managed-admin-token-0123456789";

/// The binary with a clean environment and info-level logs (to check the log stream).
fn bin() -> Command {
    sheepdog_command(env!("CARGO_BIN_EXE_sheepdog"), "info")
}

/// One spawned process; its stderr (the log stream) goes to a file.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(dir: &Path, name: &str, mut cmd: Command, ports: &[u16]) -> (Proc, BufReader<std::process::ChildStdout>) {
        let log = dir.join(format!("{name}.log"));
        let mut child =
            cmd.current_dir(dir).stdout(Stdio::piped()).stderr(std::fs::File::create(&log).unwrap()).spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        for port in ports {
            wait_for_port(*port, &mut child, Some(&log));
        }
        (Proc { child, log }, stdout)
    }

    fn stop(mut self) -> String {
        sigterm(self.child.id());
        wait_exit(&mut self.child, Duration::from_secs(30));
        std::fs::read_to_string(&self.log).unwrap()
    }
}

/// A plain HTTP/1.1 request; returns (status, body).
fn http(port: u16, method: &str, path: &str, bearer: &str) -> (u16, String) {
    let answer = RawRequest::local(port, method, path).bearer(bearer).timeout(Duration::from_secs(10)).send();
    (answer.status, answer.body)
}

fn status(port: u16, token: &str) -> u16 {
    http(port, "GET", "/admin/v1/tenants", token).0
}

/// Waits until `port` refuses `old` and accepts `new`; returns how long it took.
fn switched(port: u16, old: &str, new: &str) -> Duration {
    let started = Instant::now();
    loop {
        if status(port, old) == 401 && status(port, new) == 200 {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "port {port} still accepts the old token after 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn rotation_on(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let site = fake_site(d);
    let db = TestDb::sqlite_or_postgres(postgres).await;
    let url = db.url.clone();
    let config = d.join("sheepdog.toml");
    std::fs::write(&config, format!("[console]\nsite_root = \"{}\"\n\n[database]\nurl = \"{url}\"\n", site.display()))
        .unwrap();
    let (a, b, b_console, c) = (free_port(), free_port(), free_port(), free_port());

    // Replica A (first start): the secrets on stdout.
    let mut cmd = bin();
    cmd.args(["gateway", "--config"]).arg(&config).env("SHEEPDOG_GATEWAY__LISTEN", format!("127.0.0.1:{a}"));
    let (proc_a, out_a) = Proc::spawn(d, "a", cmd, &[a]);
    let mut token0 = None;
    let mut password = None;
    for line in out_a.lines() {
        let line = line.unwrap();
        if let Some(t) = line.split("Admin API token (shown once): ").nth(1) {
            token0 = Some(t.trim().to_string());
        }
        if let Some(p) = line.split("password (shown once): ").nth(1) {
            password = Some(p.trim().to_string());
        }
        if line.starts_with("=====") && token0.is_some() {
            break;
        }
    }
    let (token0, password) = (token0.unwrap(), password.unwrap());

    // Replica B: `serve` (gateway and console) on the same database.
    let mut cmd = bin();
    cmd.args(["serve", "--config"])
        .arg(&config)
        .env("SHEEPDOG_GATEWAY__LISTEN", format!("127.0.0.1:{b}"))
        .env("SHEEPDOG_CONSOLE__LISTEN", format!("127.0.0.1:{b_console}"))
        .env("SHEEPDOG_CONSOLE__GATEWAY_URL", format!("http://127.0.0.1:{b}"));
    let (proc_b, _out_b) = Proc::spawn(d, "b", cmd, &[b, b_console]);
    assert_eq!(status(a, &token0), 200);
    assert_eq!(status(b, &token0), 200);

    // Rotation through the API on A.
    let (code, body) = http(a, "POST", "/admin/v1/admin-tokens/rotate", &token0);
    let rotated_at = Instant::now();
    assert_eq!(code, 201, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let token1 = answer["token"].as_str().unwrap().to_string();
    assert!(token1.starts_with("sd-admin-") && token1 != token0);
    assert_eq!(status(a, &token0), 401, "the rotating gateway refuses the old token at once");
    assert_eq!(status(a, &token1), 200);
    switched(b, &token0, &token1);
    let took = rotated_at.elapsed();
    assert!(took < Duration::from_secs(1), "replica B switched after {took:?}");
    eprintln!("API rotation: replica B refused the old token after {took:?}");

    // B's console still reaches its gateway with its own process token.
    let console = format!("http://127.0.0.1:{b_console}");
    let browser = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let resp = browser
        .post(format!("{console}/api/login"))
        .header("origin", &console)
        .header("accept", "application/json")
        .form(&[("email", "admin@sheepdog.local"), ("password", password.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = browser
        .post(format!("{console}/api/tenants"))
        .header("origin", &console)
        .header("accept", "application/json")
        .form(&[] as &[(&str, &str)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the console's admin calls work after the rotation");

    // Rotation through the CLI.
    let out = bin().args(["admin-token", "rotate", "--config"]).arg(&config).output().unwrap();
    let rotated_at = Instant::now();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token2 = stdout.trim().to_string();
    assert_eq!(stdout.lines().count(), 1, "stdout is the token only: {stdout:?}");
    assert!(token2.starts_with("sd-admin-") && token2 != token1);
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&token2), "the token is not logged");
    for port in [a, b] {
        switched(port, &token1, &token2);
    }
    let took = rotated_at.elapsed();
    assert!(took < Duration::from_secs(1), "replicas switched after {took:?}");
    eprintln!("CLI rotation: both replicas refused the old token after {took:?}");

    // Audited, by fingerprint only.
    let (code, body) = http(a, "GET", "/admin/v1/audit?action=admin_token.rotate", &token2);
    assert_eq!(code, 200, "{body}");
    let audit: Value = serde_json::from_str(&body).unwrap();
    let mut actors: Vec<&str> =
        audit["data"].as_array().unwrap().iter().map(|e| e["actor"].as_str().unwrap()).collect();
    actors.sort();
    assert_eq!(actors, ["admin-token", "cli"], "{body}");
    for t in [&token0, &token1, &token2] {
        assert!(!body.contains(t.as_str()), "a token in the audit log");
    }

    // An environment token replaces the stored one, and rotation is refused.
    let mut cmd = bin();
    cmd.args(["gateway", "--config"])
        .arg(&config)
        .env("SHEEPDOG_GATEWAY__LISTEN", format!("127.0.0.1:{c}"))
        .env("SHEEPDOG_ADMIN_TOKEN", ENV_TOKEN);
    let (proc_c, _out_c) = Proc::spawn(d, "c", cmd, &[c]);
    assert_eq!(status(c, ENV_TOKEN), 200);
    assert_eq!(status(c, &token2), 401, "the stored token is not accepted next to an environment token");
    let (code, body) = http(c, "POST", "/admin/v1/admin-tokens/rotate", ENV_TOKEN);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("SHEEPDOG_ADMIN_TOKEN"), "{body}");
    let out = bin()
        .args(["admin-token", "rotate", "--config"])
        .arg(&config)
        .env("SHEEPDOG_ADMIN_TOKEN", ENV_TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SHEEPDOG_ADMIN_TOKEN"));
    assert!(out.stdout.is_empty());
    assert_eq!(status(a, &token2), 200, "the refused rotation changed nothing");

    // The log streams never held a token.
    let logs = [proc_a.stop(), proc_b.stop(), proc_c.stop()].join("\n");
    assert!(logs.contains("admin token rotated"), "the rotation is logged (without the token)");
    for t in [&token0, &token1, &token2, &password] {
        assert!(!logs.contains(t.as_str()), "a secret in the log stream");
    }
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_reaches_every_replica_within_a_second_on_sqlite() {
    rotation_on(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_reaches_every_replica_within_a_second_on_postgres() {
    rotation_on(true).await;
}
