//! The `sheepdog` command line: help, config errors, migrate, first-start
//! secrets printed once, `user create`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use sheepdog_testkit::process::{clear_sheepdog_env, free_port, sheepdog_command, sigterm, wait_for_port};
use sheepdog_testkit::raw::RawRequest;

fn bin() -> Command {
    sheepdog_command(env!("CARGO_BIN_EXE_sheepdog"), "warn")
}

/// A plain HTTP/1.1 GET; returns the status code.
fn http_get(port: u16, path: &str, bearer: &str) -> u16 {
    RawRequest::local(port, "GET", path).bearer(bearer).send().status
}

#[test]
fn help_lists_every_command() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["serve", "gateway", "console", "migrate", "analyze", "user"] {
        assert!(text.contains(cmd), "{cmd} missing from --help:\n{text}");
    }
    let out = bin().args(["user", "create", "--help"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("--email") && text.contains("--role") && text.contains("--tenant"));
}

#[test]
fn invalid_config_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[gateway]\nmax_body_bytes = \"huge\"\n").unwrap();
    let out = bin().current_dir(dir.path()).args(["migrate", "--config"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("gateway.max_body_bytes") && err.contains("bad.toml"), "{err}");

    let out = bin().current_dir(dir.path()).arg("migrate").env("SHEEPDOG_GATEWAY__LISTEN", "nowhere").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("gateway.listen") && err.contains("SHEEPDOG_GATEWAY__LISTEN"), "{err}");

    let out = bin().current_dir(dir.path()).args(["migrate", "--config", "missing.toml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().contains("missing.toml"));
}

#[allow(clippy::unwrap_used)]
fn start_gateway(dir: &std::path::Path, port: u16) -> std::process::Child {
    let mut child = bin()
        .current_dir(dir)
        .arg("gateway")
        .env("SHEEPDOG_GATEWAY__LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, None);
    child
}

/// SIGTERM, then the printed lines; a graceful stop exits 0.
#[allow(clippy::unwrap_used)]
fn stop(mut child: std::process::Child) -> Vec<String> {
    sigterm(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful stop exits 0, got {status}");
    BufReader::new(child.stdout.take().unwrap()).lines().map(|l| l.unwrap()).collect()
}

#[test]
fn first_start_prints_secrets_once_and_migrate_and_users_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin().current_dir(dir.path()).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("data/sheepdog.db").exists(), "SQLite under ./data by default");

    let port = free_port();
    let lines = stop(start_gateway(dir.path(), port));
    let text = lines.join("\n");
    let token = lines
        .iter()
        .find_map(|l| l.split("Admin API token (shown once): ").nth(1))
        .unwrap_or_else(|| panic!("no admin token printed:\n{text}"))
        .trim()
        .to_string();
    assert!(text.contains("Console admin: admin@sheepdog.local"), "{text}");

    // Second start: nothing printed, the stored token still works, a wrong one does not.
    let child = start_gateway(dir.path(), port);
    assert_eq!(http_get(port, "/admin/v1/tenants", &token), 200);
    assert_eq!(http_get(port, "/admin/v1/tenants", "wrong-token"), 401);
    let lines = stop(child);
    assert!(!lines.join("\n").contains("shown once"), "secrets are printed only on first start");

    // user create reads the password from stdin and validates its input.
    let create = |args: &[&str], password: &str| {
        let mut child = bin()
            .current_dir(dir.path())
            .args(["user", "create"])
            .args(args)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (ok, err) = create(&["--email", "ops@example.com", "--role", "operator"], "correct horse battery\n");
    assert!(ok, "{err}");
    let (ok, err) = create(&["--email", "ops@example.com", "--role", "operator"], "correct horse battery\n");
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, err) = create(&["--email", "x@example.com", "--role", "wizard"], "correct horse battery\n");
    assert!(!ok && err.contains("--role"), "{err}");
    let (ok, err) = create(&["--email", "t@example.com", "--role", "tenant"], "correct horse battery\n");
    assert!(!ok && err.contains("--tenant"), "{err}");
    let (ok, err) = create(&["--email", "short@example.com", "--role", "viewer"], "short\n");
    assert!(!ok && err.contains("12 characters"), "{err}");
}

/// The SQLite database (and its `-wal`/`-shm` files) is created 0600 and its
/// directory 0700, whatever the umask the process starts with.
#[test]
fn sqlite_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for umask in ["000", "022", "277"] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut sh = Command::new("sh");
        let mut child = clear_sheepdog_env(&mut sh)
            .current_dir(dir.path())
            .arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" gateway"))
            .arg(env!("CARGO_BIN_EXE_sheepdog"))
            .env("RUST_LOG", "warn")
            .env("SHEEPDOG_GATEWAY__LISTEN", format!("127.0.0.1:{port}"))
            .env("SHEEPDOG_DATABASE__URL", "sqlite://state/db/sheepdog.db")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, None);
        let db = dir.path().join("state/db/sheepdog.db");
        assert_eq!(mode(&dir.path().join("state/db")), 0o700, "umask {umask}");
        assert_eq!(mode(&db), 0o600, "umask {umask}");
        for suffix in ["-wal", "-shm"] {
            let f = dir.path().join(format!("state/db/sheepdog.db{suffix}"));
            assert!(f.exists(), "{suffix} exists while the gateway runs (umask {umask})");
            assert_eq!(mode(&f), 0o600, "{suffix}, umask {umask}");
        }
        sigterm(child.id());
        assert!(child.wait().unwrap().success(), "umask {umask}");
    }
}
