"""Starts a real `sheepdog gateway` (fresh SQLite) for the SDK tests, with
the OpenAI, Anthropic and Gemini emulators (`sheepdog-emulators`) as
upstreams beside the simulated provider.

Models: the default price table's four on the simulated provider;
`via-openai`, `via-anthropic`, `via-gemini` (chat, on each emulator);
`embed-openai`, `embed-gemini`, `embed-sim` (mode "embedding"); `slow`
(simulated, 20 ms between chunks, for streams a client cuts)."""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid

import pytest

ADMIN_TOKEN = "sdk-test-admin-" + uuid.uuid4().hex


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    def __init__(self, url: str):
        self.url = url

    def admin(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def tenant_with_key(self, name: str, aliases=None):
        tenant = self.admin("POST", "/admin/v1/tenants", {"name": name, "tier": "shared", "aliases": aliases or []})
        key = self.admin("POST", f"/admin/v1/tenants/{tenant['id']}/keys", {})
        return tenant, key["key"]


UPSTREAM_KINDS = ["openai", "anthropic", "gemini"]


def _config(urls) -> str:
    lines = [
        '[providers.simulated]\nkind = "simulated"\n',
        '[providers.slow-sim]\nkind = "simulated"\nchunk_interval_ms = 20\n',
    ]
    for kind in UPSTREAM_KINDS:
        lines.append(f'[providers.{kind}]\nkind = "{kind}"\nbase_url = "{urls[kind]}"\napi_key_env = "SDK_TEST_UPSTREAM_KEY"\nmax_retries = 0\n')
    for name in ["gpt-4.1", "claude-sonnet-4.5", "gemini-2.5-flash", "deepseek-v3.2"]:
        lines.append(f'[models."{name}"]\nprovider = "simulated"\n')
    for kind in UPSTREAM_KINDS:
        lines.append(f'[models."via-{kind}"]\nprovider = "{kind}"\nupstream_model = "{kind}-model"\ninput_per_mtok = 2\noutput_per_mtok = 8\n')
    for kind, upstream in [("openai", "text-embedding-3-small"), ("gemini", "gemini-embedding-001"), ("sim", "sim-embed")]:
        provider = "simulated" if kind == "sim" else kind
        lines.append(f'[models."embed-{kind}"]\nprovider = "{provider}"\nupstream_model = "{upstream}"\nmode = "embedding"\ninput_per_mtok = 0.02\n')
    lines.append('[models."slow"]\nprovider = "slow-sim"\ninput_per_mtok = 2\noutput_per_mtok = 8\n')
    return "\n".join(lines)


def _emulators(workdir):
    binary = os.environ.get(
        "SHEEPDOG_EMULATORS_BIN",
        os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "sheepdog-emulators"),
    )
    binary = os.path.abspath(binary)
    if not os.path.exists(binary):
        pytest.fail(f"sheepdog-emulators binary not found at {binary}; build it or set SHEEPDOG_EMULATORS_BIN")
    proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=workdir)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        pytest.fail("sheepdog-emulators printed no URLs")
    return proc, json.loads(line)


@pytest.fixture(scope="session")
def gateway():
    binary = os.environ.get("SHEEPDOG_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "sheepdog"))
    binary = os.path.abspath(binary)
    if not os.path.exists(binary):
        pytest.fail(f"sheepdog binary not found at {binary}; build it or set SHEEPDOG_BIN")
    workdir = tempfile.mkdtemp(prefix="sheepdog-sdk-")
    emulators, urls = _emulators(workdir)
    config = os.path.join(workdir, "sheepdog.toml")
    with open(config, "w") as f:
        f.write(_config(urls))
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "SHEEPDOG_ADMIN_TOKEN": ADMIN_TOKEN,
            "SHEEPDOG_GATEWAY__LISTEN": f"127.0.0.1:{port}",
            "SHEEPDOG_DATABASE__URL": f"sqlite://{workdir}/sheepdog.db",
            "SDK_TEST_UPSTREAM_KEY": "sk-upstream-test",
            "RUST_LOG": "warn",
        }
    )
    log = open(os.path.join(workdir, "gateway.log"), "w")
    proc = subprocess.Popen([binary, "gateway", "--config", config], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1) as r:
                if r.status == 200:
                    break
        except Exception:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            log.close()
            with open(os.path.join(workdir, "gateway.log")) as f:
                pytest.fail("gateway did not start:\n" + f.read())
        time.sleep(0.1)
    yield Gateway(url)
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    emulators.stdin.close()
    try:
        emulators.wait(timeout=5)
    except subprocess.TimeoutExpired:
        emulators.kill()
