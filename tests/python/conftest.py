"""Starts a real `sheepdog gateway` (simulated provider, fresh SQLite) for the SDK tests."""

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


@pytest.fixture(scope="session")
def gateway():
    binary = os.environ.get("SHEEPDOG_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "target", "debug", "sheepdog"))
    binary = os.path.abspath(binary)
    if not os.path.exists(binary):
        pytest.fail(f"sheepdog binary not found at {binary}; build it or set SHEEPDOG_BIN")
    workdir = tempfile.mkdtemp(prefix="sheepdog-sdk-")
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "SHEEPDOG_ADMIN_TOKEN": ADMIN_TOKEN,
            "SHEEPDOG_GATEWAY__LISTEN": f"127.0.0.1:{port}",
            "SHEEPDOG_DATABASE__URL": f"sqlite://{workdir}/sheepdog.db",
            "RUST_LOG": "warn",
        }
    )
    log = open(os.path.join(workdir, "gateway.log"), "w")
    proc = subprocess.Popen([binary, "gateway"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
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
