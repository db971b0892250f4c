#!/usr/bin/env python3
"""User-space instructions per proxied request, counted by valgrind's callgrind.

Wall-clock benchmarks on a shared 2-core VM move by +-20 % from run to run;
instruction counts do not. This starts the benchmark's zero-delay upstream
(`sheepdog-bench upstream`) and a gateway under callgrind (one worker), sends
N1 and then, in a second run, N2 sequential chat completions with the Python
standard library client, and reports (instructions(N2) - instructions(N1)) /
(N2 - N1): start-up and warm-up cancel out. Kernel time (the loopback TCP
work) is not counted; compare binaries with it, not with nginx.

With `--format messages` (or `responses`) the same request is sent as an
Anthropic Messages (or OpenAI Responses) request: compared with `--format
chat` on the same binary, the difference is the cost of translating at the
edge.

usage: scripts/instructions-per-request.py [--stream] [--format chat|messages|responses]
           [--n1 200] [--n2 1200] [--bench-bin target/release/sheepdog-bench] [--keep DIR]
           BINARY [BINARY...]
"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

ADMIN = "sd-callgrind-admin-0123456789abcdef"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(conn, path, body, token):
    conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


def instructions(binary, bench_bin, n, stream, keep=None, fmt="chat"):
    """Total instructions of a gateway process that served 200 + n requests
    (its callgrind output copied to `keep` when given)."""
    tmp = tempfile.mkdtemp(prefix="sheepdog-callgrind-")
    up = subprocess.Popen([bench_bin, "upstream", "--threads", "1"], stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    gw = None
    try:
        up_port = int(up.stdout.readline())
        port = free_port()
        with open(f"{tmp}/sheepdog.toml", "w") as f:
            f.write(
                f'[gateway]\nlisten = "127.0.0.1:{port}"\nworkers = 1\n'
                f'[database]\nurl = "sqlite://{tmp}/sheepdog.db"\n'
                # Batches by count, not by time: a slower run must not write
                # more, smaller batches (200 + n is a multiple of 100).
                "[accounting]\nbatch_size = 100\nflush_interval_ms = 600000\n"
                f'[providers.up]\nkind = "openai"\nbase_url = "http://127.0.0.1:{up_port}/v1"\n'
                '[models."bench-model"]\nprovider = "up"\nupstream_model = "bench-model"\n'
                "input_per_mtok = 2\noutput_per_mtok = 8\n"
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHEEPDOG_")}
        env.update(SHEEPDOG_ADMIN_TOKEN=ADMIN, RUST_LOG="warn")
        out = f"{tmp}/callgrind.out"
        gw = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "gateway", "--config", f"{tmp}/sheepdog.toml"],
            cwd=tmp, env=env, stdout=open(f"{tmp}/gateway.log", "w"), stderr=subprocess.STDOUT,
        )
        for _ in range(600):
            if gw.poll() is not None:
                raise SystemExit("the gateway exited:\n" + open(f"{tmp}/gateway.log").read()[-2000:])
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                c.request("GET", "/healthz")
                c.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        limits = {"requests_per_minute": 100_000_000, "tokens_per_minute": 100_000_000_000}
        _, b = call(conn, "/admin/v1/tenants", json.dumps({"name": "callgrind", "tier": "shared", "limits": limits}), ADMIN)
        tenant = json.loads(b)["id"]
        _, b = call(conn, f"/admin/v1/tenants/{tenant}/keys", "{}", ADMIN)
        key = json.loads(b)["key"]
        if fmt == "messages":
            path, body = "/v1/messages", {"model": "bench-model", "max_tokens": 100,
                                          "messages": [{"role": "user", "content": "hello"}]}
            if stream:
                body.update(stream=True)
        elif fmt == "responses":
            path, body = "/v1/responses", {"model": "bench-model", "input": "hello"}
            if stream:
                body.update(stream=True)
        else:
            path, body = "/v1/chat/completions", {"model": "bench-model", "messages": [{"role": "user", "content": "hello"}]}
            if stream:
                body.update(stream=True, stream_options={"include_usage": True})
        body = json.dumps(body)
        for _ in range(200 + n):
            status, answer = call(conn, path, body, key)
            if status != 200:
                raise SystemExit(f"gateway answered {status}: {answer[:200]!r}")
        gw.terminate()
        gw.wait(timeout=300)
        total = 0
        for name in os.listdir(tmp):
            if name.startswith("callgrind.out") and keep:
                os.makedirs(keep, exist_ok=True)
                shutil.copy(f"{tmp}/{name}", f"{keep}/{os.path.basename(binary)}.{n}.{name}")
            if name.startswith("callgrind.out"):
                with open(f"{tmp}/{name}") as f:
                    for line in f:
                        m = re.match(r"(?:summary|totals): (\d+)", line)
                        if m:
                            total += int(m.group(1))
                            break
        return total
    finally:
        if gw and gw.poll() is None:
            gw.kill()
        up.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("binaries", nargs="+")
    p.add_argument("--stream", action="store_true")
    p.add_argument("--format", choices=["chat", "messages", "responses"], default="chat")
    p.add_argument("--n1", type=int, default=200)
    p.add_argument("--n2", type=int, default=1200)
    p.add_argument("--bench-bin", default="target/release/sheepdog-bench")
    p.add_argument("--keep", metavar="DIR", help="copy the callgrind outputs here (for callgrind_annotate)")
    a = p.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install -y valgrind)")
    if a.n1 % 100 or a.n2 % 100:
        raise SystemExit("--n1 and --n2 must be multiples of 100 (the accounting batch)")
    for binary in map(os.path.abspath, a.binaries):
        t1 = instructions(binary, a.bench_bin, a.n1, a.stream, a.keep, a.format)
        t2 = instructions(binary, a.bench_bin, a.n2, a.stream, a.keep, a.format)
        per = (t2 - t1) / (a.n2 - a.n1)
        mode = ("stream" if a.stream else "non-stream") + f" ({a.format})"
        print(f"{binary} {mode}: {per:,.0f} instructions per request (runs of {a.n1} and {a.n2})")


if __name__ == "__main__":
    main()
