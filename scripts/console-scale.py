#!/usr/bin/env python3
"""Seeds a Sheepdog database at scale and times the console's pages on it.

    python3 scripts/console-scale.py [--db sqlite|postgres] [--tenants 10000]
        [--keys 100000] [--usage 1000000] [--users 1000] [--audit 50000]
        [--runs 5] [--keep]

What it does, on 127.0.0.1 only:
 1. creates a fresh database (a SQLite file in a temporary directory, or a
    new Postgres database on 127.0.0.1:5432 that it drops at the end);
 2. `sheepdog migrate`, then bulk inserts, in the database itself (one
    INSERT ... SELECT over a generated series per table): tenants (every
    tenth pooled, every fiftieth suspended, two aliases each), keys (spread
    over the tenants), console users, audit entries, and usage records spread
    evenly over the last 30 days with their hourly and daily rollups
    (`usage_hourly*`, `usage_daily_groups`) consistent with them;
 3. adds an admin with `sheepdog user create`, starts `sheepdog serve`
    (simulated provider), signs in through the console's own login endpoint;
 4. fetches every console page `--runs` times and prints, per page, the
    median and worst time to the first byte: pages render completely on the
    server before the first byte (`SsrMode::Async`), so this is the server
    time (plus a loopback round trip).

Needs target/release/sheepdog and target/site (scripts/build-site.sh), and
`sqlite3` or `psql`. Exits non-zero when a page fails or misses its budget
(300 ms for every page, 1 s for the cost page).
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import http.cookiejar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "sheepdog")
SITE = os.path.join(ROOT, "target", "site")
PG_ADMIN = os.environ.get("SHEEPDOG_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
PAGE_BUDGET_MS = 300.0
COST_BUDGET_MS = 1000.0


def log(msg):
    print(f"[console-scale] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dialect:
    """The few spots where SQLite and Postgres SQL differ."""

    def __init__(self, kind):
        self.kind = kind

    def pad(self, expr, width):
        if self.kind == "sqlite":
            return f"substr('{'0' * width}' || ({expr}), -{width})"
        return f"lpad(({expr})::text, {width}, '0')"

    def series(self, n):
        """A CTE `n(i)` of 0..n-1."""
        if self.kind == "sqlite":
            return f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {n - 1})"
        return f"WITH n(i) AS (SELECT generate_series(0, {n - 1})::bigint)"

    def iso(self, ms_expr):
        """Milliseconds since the epoch → `YYYY-MM-DDTHH:MM:SS.000Z`."""
        if self.kind == "sqlite":
            return f"strftime('%Y-%m-%dT%H:%M:%S.000Z', ({ms_expr}) / 1000, 'unixepoch')"
        return f"to_char(to_timestamp(({ms_expr}) / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.000\"Z\"')"


def tenant_id(d, expr):
    return f"'00000000-0000-4000-8000-' || {d.pad(expr, 12)}"


def seed_sql(d, a, now_ms):
    t, k, u, users, audit = a.tenants, a.keys, a.usage, a.users, a.audit
    start_ms = now_ms - 30 * DAY_MS
    tid = lambda e: tenant_id(d, e)  # noqa: E731
    created = d.iso(f"{start_ms} - 86400000 + i * 1000")
    stmts = [
        f"""{d.series(t)}
INSERT INTO tenants (id, name, tier, status, requests_per_minute, tokens_per_minute, max_concurrency,
    budget_monthly_nanos, budget_hard, allowed_models, created_at, updated_at, pool_id)
SELECT {tid('i')}, 'Tenant ' || {d.pad('i', 5)} || CASE WHEN i % 7 = 0 THEN ' Acme' ELSE ' Corp' END,
    CASE WHEN i % 3 = 0 THEN 'dedicated' ELSE 'shared' END,
    CASE WHEN i % 50 = 0 THEN 'suspended' ELSE 'active' END,
    600, 1000000, NULL, CASE WHEN i % 4 = 0 THEN 100000000000 ELSE NULL END, 0, NULL,
    {created}, {created}, NULL
FROM n""",
        f"""{d.series(t)}
INSERT INTO tenant_aliases (alias, tenant_id)
SELECT 'alias-' || i, {tid('i')} FROM n""",
        f"""{d.series(t)}
INSERT INTO tenant_aliases (alias, tenant_id)
SELECT 'org-' || {d.pad('i', 5)}, {tid('i')} FROM n""",
        f"""{d.series(k)}
INSERT INTO api_keys (id, name, prefix, key_hash, scope, tenant_id, tenants, created_at, revoked_at)
SELECT 'seed-key-' || i, 'key ' || i, 'sk-sd-seed', 'seed-hash-' || i, 'tenant', {tid(f'i % {t}')}, NULL,
    {d.iso(f'{start_ms} + i * 1000')}, CASE WHEN i % 10 = 9 THEN {d.iso(f'{start_ms} + i * 1000 + 60000')} ELSE NULL END
FROM n""",
        f"""{d.series(users)}
INSERT INTO users (id, email, role, tenant_id, password_hash, disabled, created_at)
SELECT 'seed-user-' || i, 'user' || {d.pad('i', 6)} || '@tenant.example', 'tenant', {tid(f'i % {t}')},
    'not-a-password-hash', 0, {created}
FROM n""",
        f"""{d.series(audit)}
INSERT INTO audit_log (id, at, at_ms, actor, action, target, before_json, after_json)
SELECT 'seed-audit-' || {d.pad('i', 8)}, {d.iso(f'{start_ms} + i * 1000')}, {start_ms} + i * 1000,
    CASE WHEN i % 3 = 0 THEN 'admin-token' ELSE 'console:ops@example.test' END,
    CASE WHEN i % 2 = 0 THEN 'tenant.limits' ELSE 'key.create' END,
    {tid(f'i % {t}')}, '{{"requests_per_minute": 600}}', '{{"requests_per_minute": 900}}'
FROM n""",
        # Usage: evenly over the last 30 days, every tenant, four models, five
        # cost centers, four client formats; latency 20-99 ms.
        f"""{d.series(u)}
INSERT INTO usage_records (id, request_id, tenant_id, key_id, cost_center, model_requested, model_served, provider,
    input_tokens, output_tokens, cached_tokens, cost_nanos, latency_ms, ttft_ms, status_code, outcome, error_code,
    stream, created_ms, pool_id, ingress)
SELECT 'seed-usage-' || i, 'seed-request-' || i, {tid(f'i % {t}')}, 'seed-key-' || (i % {k}),
    CASE i % 5 WHEN 0 THEN 'search' WHEN 1 THEN 'support' WHEN 2 THEN 'sales' WHEN 3 THEN 'billing' ELSE NULL END,
    CASE i % 4 WHEN 0 THEN 'gpt-4.1' WHEN 1 THEN 'gpt-4.1-mini' WHEN 2 THEN 'claude-sonnet-4.5' ELSE 'gemini-2.5-flash' END,
    CASE i % 4 WHEN 0 THEN 'gpt-4.1' WHEN 1 THEN 'gpt-4.1-mini' WHEN 2 THEN 'claude-sonnet-4.5' ELSE 'gemini-2.5-flash' END,
    'simulated', 200 + i % 800, 50 + i % 400, 0, 1000 + (i % 997) * 1000, 20 + i % 80, NULL,
    CASE WHEN i % 100 = 0 THEN 502 ELSE 200 END, CASE WHEN i % 100 = 0 THEN 'upstream_error' ELSE 'ok' END, NULL,
    i % 2, {start_ms} + (i * {30 * DAY_MS // max(u, 1)}), NULL,
    CASE i % 4 WHEN 0 THEN 'chat' WHEN 1 THEN 'messages' WHEN 2 THEN 'responses' ELSE 'embeddings' END
FROM n""",
        f"""INSERT INTO usage_hourly (tenant_id, hour_ms, request_count, error_count, rate_limit_hits, latency_sum_ms,
    input_tokens, output_tokens, cost_nanos)
SELECT tenant_id, (created_ms / {HOUR_MS}) * {HOUR_MS}, COUNT(*),
    SUM(CASE WHEN outcome = 'upstream_error' THEN 1 ELSE 0 END), 0, SUM(latency_ms),
    SUM(input_tokens), SUM(output_tokens), SUM(cost_nanos)
FROM usage_records WHERE id LIKE 'seed-usage-%' GROUP BY tenant_id, (created_ms / {HOUR_MS}) * {HOUR_MS}""",
        f"""INSERT INTO usage_hourly_latency (tenant_id, hour_ms, bucket, count)
SELECT tenant_id, (created_ms / {HOUR_MS}) * {HOUR_MS}, latency_ms, COUNT(*)
FROM usage_records WHERE id LIKE 'seed-usage-%' GROUP BY tenant_id, (created_ms / {HOUR_MS}) * {HOUR_MS}, latency_ms""",
        # The totals over every tenant that the gateway keeps beside them.
        """INSERT INTO usage_hourly_all (hour_ms, request_count, error_count, rate_limit_hits, latency_sum_ms,
    input_tokens, output_tokens, cost_nanos)
SELECT hour_ms, SUM(request_count), SUM(error_count), SUM(rate_limit_hits), SUM(latency_sum_ms), SUM(input_tokens),
    SUM(output_tokens), SUM(cost_nanos)
FROM usage_hourly GROUP BY hour_ms""",
        """INSERT INTO usage_hourly_all_latency (hour_ms, bucket, count)
SELECT hour_ms, bucket, SUM(count) FROM usage_hourly_latency GROUP BY hour_ms, bucket""",
    ]
    # The records summed by model, cost center and client format per hour.
    for dim, key in [("model", "model_requested"), ("cost_center", "COALESCE(cost_center, '(none)')"),
                     ("ingress", "ingress")]:
        stmts.append(f"""INSERT INTO usage_hourly_groups (hour_ms, dimension, group_key, request_count, input_tokens,
    output_tokens, cost_nanos)
SELECT (created_ms / {HOUR_MS}) * {HOUR_MS}, '{dim}', {key}, COUNT(*), SUM(input_tokens), SUM(output_tokens),
    SUM(cost_nanos)
FROM usage_records GROUP BY (created_ms / {HOUR_MS}) * {HOUR_MS}, {key}""")
    # The records summed by tenant, model, cost center and client format per UTC day.
    for dim, key in [("tenant", "tenant_id"), ("model", "model_requested"),
                     ("cost_center", "COALESCE(cost_center, '(none)')"), ("ingress", "ingress")]:
        stmts.append(f"""INSERT INTO usage_daily_groups (day_ms, dimension, group_key, request_count, input_tokens,
    output_tokens, cost_nanos)
SELECT (created_ms / {DAY_MS}) * {DAY_MS}, '{dim}', {key}, COUNT(*), SUM(input_tokens), SUM(output_tokens),
    SUM(cost_nanos)
FROM usage_records GROUP BY (created_ms / {DAY_MS}) * {DAY_MS}, {key}""")
    stmts.append("ANALYZE")
    return stmts


def run_sql(d, url, path, stmts):
    for sql in stmts:
        first = sql.strip().splitlines()[-1] if sql.startswith("WITH") else sql.strip().splitlines()[0]
        t0 = time.monotonic()
        if d.kind == "sqlite":
            subprocess.run(["sqlite3", path], input=f"PRAGMA busy_timeout = 10000;\n{sql};\n", text=True, check=True,
                           stdout=subprocess.DEVNULL)
        else:
            subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url], input=f"{sql};\n", text=True, check=True)
        log(f"  {time.monotonic() - t0:6.1f} s  {' '.join(sql.split())[:90]}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--tenants", type=int, default=10_000)
    p.add_argument("--keys", type=int, default=100_000)
    p.add_argument("--usage", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=1_000)
    p.add_argument("--audit", type=int, default=50_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--keep", action="store_true", help="keep the work directory (and database)")
    a = p.parse_args()
    for name in ("tenants", "keys", "usage", "users", "audit", "runs"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1")
    if not os.access(BIN, os.X_OK) or not os.path.isfile(os.path.join(SITE, "pkg", "sheepdog.wasm")):
        sys.exit(f"{BIN} or {SITE} is missing: run scripts/build-site.sh")

    d = Dialect(a.db)
    work = tempfile.mkdtemp(prefix="sheepdog-scale.")
    db_path = os.path.join(work, "sheepdog.db")
    pg_name = f"sd_scale_{os.getpid()}"
    if a.db == "sqlite":
        url = f"sqlite://{db_path}"
    else:
        subprocess.run(["psql", "-q", PG_ADMIN, "-c", f"CREATE DATABASE {pg_name}"], check=True)
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + pg_name
    gw_port, console_port = free_port(), free_port()
    config = os.path.join(work, "sheepdog.toml")
    with open(config, "w") as f:
        f.write(f'[database]\nurl = "{url}"\n\n[providers.simulated]\nkind = "simulated"\n')
    env = dict(os.environ)
    env.update({
        "SHEEPDOG_CONSOLE__SITE_ROOT": SITE,
        "SHEEPDOG_GATEWAY__LISTEN": f"127.0.0.1:{gw_port}",
        "SHEEPDOG_CONSOLE__LISTEN": f"127.0.0.1:{console_port}",
        "SHEEPDOG_CONSOLE__GATEWAY_URL": f"http://127.0.0.1:{gw_port}",
        "RUST_LOG": "warn",
    })
    server = None
    failed = False
    try:
        subprocess.run([BIN, "migrate", "--config", config], cwd=work, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        now_ms = int(time.time() * 1000)
        log(f"seeding {a.db}: {a.tenants} tenants, {a.keys} keys, {a.users} users, {a.audit} audit entries, "
            f"{a.usage} usage records")
        t0 = time.monotonic()
        run_sql(d, url, db_path, seed_sql(d, a, now_ms))
        log(f"seeded in {time.monotonic() - t0:.1f} s")
        password = "scale-test-admin-password"
        subprocess.run([BIN, "user", "create", "--email", "scale@example.test", "--role", "admin", "--config", config],
                       cwd=work, env=env, input=password + "\n", text=True, check=True, stdout=subprocess.DEVNULL)
        server = subprocess.Popen([BIN, "serve", "--config", config], cwd=work, env=env,
                                  stdout=open(os.path.join(work, "serve.log"), "w"),
                                  stderr=open(os.path.join(work, "serve.stderr.log"), "w"))
        base = f"http://127.0.0.1:{console_port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", console_port), timeout=1):
                    with socket.create_connection(("127.0.0.1", gw_port), timeout=1):
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"sheepdog serve did not start; see {work}/serve.stderr.log")
                time.sleep(0.2)
        t_start = time.monotonic()
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        body = urllib.parse.urlencode({"email": "scale@example.test", "password": password}).encode()
        req = urllib.request.Request(f"{base}/api/login", data=body, headers={
            "Origin": base, "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
        opener.open(req, timeout=30).read()
        log(f"signed in ({time.monotonic() - t_start:.2f} s after listening)")

        tenant = "00000000-0000-4000-8000-" + f"{a.tenants // 2:012d}"
        pages = [
            ("/", PAGE_BUDGET_MS), ("/?range=30d", PAGE_BUDGET_MS), ("/tenants", PAGE_BUDGET_MS),
            ("/tenants?q=acme", PAGE_BUDGET_MS), (f"/tenants?offset={a.tenants // 2}", PAGE_BUDGET_MS),
            ("/tenants?tier=dedicated&status=suspended", PAGE_BUDGET_MS), (f"/tenants/{tenant}", PAGE_BUDGET_MS),
            ("/tenants/new", PAGE_BUDGET_MS), ("/users", PAGE_BUDGET_MS), ("/audit", PAGE_BUDGET_MS),
            ("/audit?action=key.&offset=1000", PAGE_BUDGET_MS), ("/rollouts", PAGE_BUDGET_MS),
            ("/analyses", PAGE_BUDGET_MS), ("/costs?range=24h", COST_BUDGET_MS), ("/costs", COST_BUDGET_MS),
            ("/costs?range=30d", COST_BUDGET_MS), ("/costs?range=month", COST_BUDGET_MS),
        ]
        print(f"\n{a.db}: {a.tenants:,} tenants, {a.keys:,} keys, {a.users:,} users, {a.audit:,} audit entries, "
              f"{a.usage:,} usage records; {a.runs} runs per page (the first, cold, included)\n")
        print(f"{'page':<44} {'median ms':>10} {'worst ms':>9} {'KiB':>7}  budget")
        for path, budget in pages:
            times, size = [], 0
            for _ in range(a.runs):
                t0 = time.monotonic()
                with opener.open(urllib.request.Request(base + path, headers={"Accept": "text/html"}), timeout=60) as r:
                    first = r.read(1)
                    elapsed = (time.monotonic() - t0) * 1000
                    size = len(first) + len(r.read())
                    if r.status != 200 or "/login" in r.geturl():
                        sys.exit(f"{path}: status {r.status} at {r.geturl()}")
                times.append(elapsed)
            med, worst = statistics.median(times), max(times)
            ok = med <= budget
            failed |= not ok
            print(f"{path:<44} {med:>10.1f} {worst:>9.1f} {size / 1024:>7.0f}  {'ok' if ok else 'OVER'} ({budget:.0f})")
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        if a.db == "postgres" and not a.keep:
            subprocess.run(["psql", "-q", PG_ADMIN, "-c", f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)"])
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
