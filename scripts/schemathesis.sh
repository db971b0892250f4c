#!/usr/bin/env bash
# Schema tests of the admin API: schemathesis (tests/python/requirements.txt)
# generates requests from GET /admin/v1/openapi.json and sends them, with
# the admin token, to a real `sheepdog gateway` (fresh SQLite database in a
# temporary directory, a free port, the simulated provider's defaults).
# Checks: no 5xx answer (not_a_server_error) and every answer as the
# document describes it (status code, content type, response schema).
# Bounded: SCHEMATHESIS_MAX_EXAMPLES generated test cases per operation
# and phase (default 20); the run is stopped after SCHEMATHESIS_TIMEOUT
# seconds (default 600, a failure).
#
#   scripts/schemathesis.sh            uses target/release/sheepdog, else target/debug/sheepdog
#   SHEEPDOG_BIN=path scripts/schemathesis.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

BIN="${SHEEPDOG_BIN:-}"
if [[ -z "${BIN}" ]]; then
    if [[ -x target/release/sheepdog ]]; then BIN=target/release/sheepdog; else BIN=target/debug/sheepdog; fi
fi
if [[ ! -x "${BIN}" ]]; then
    echo "sheepdog binary not found at ${BIN}; build it (cargo build -p sheepdog) or set SHEEPDOG_BIN" >&2
    exit 1
fi
SCHEMATHESIS="${SCHEMATHESIS:-}"
if [[ -z "${SCHEMATHESIS}" ]]; then
    if [[ -x .venv/bin/schemathesis ]]; then SCHEMATHESIS=.venv/bin/schemathesis; else SCHEMATHESIS=schemathesis; fi
fi
PYTHON=python3
[[ -x .venv/bin/python ]] && PYTHON=.venv/bin/python

work="$(mktemp -d -t sheepdog-schemathesis-XXXXXX)"
port="$("${PYTHON}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
token="schemathesis-admin-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
url="http://127.0.0.1:${port}"

SHEEPDOG_ADMIN_TOKEN="${token}" \
    SHEEPDOG_GATEWAY__LISTEN="127.0.0.1:${port}" \
    SHEEPDOG_DATABASE__URL="sqlite://${work}/sheepdog.db" \
    RUST_LOG="${RUST_LOG:-warn}" \
    "${BIN}" gateway >"${work}/gateway.log" 2>&1 &
pid=$!
cleanup() {
    kill "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
    rm -rf "${work}"
}
trap cleanup EXIT

for _ in $(seq 300); do
    if "${PYTHON}" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "${url}/readyz" 2>/dev/null; then
        break
    fi
    if ! kill -0 "${pid}" 2>/dev/null; then
        cat "${work}/gateway.log" >&2
        echo "the gateway did not start" >&2
        exit 1
    fi
    sleep 0.1
done

rc=0
timeout "${SCHEMATHESIS_TIMEOUT:-600}" "${SCHEMATHESIS}" run "${url}/admin/v1/openapi.json" \
    --header "Authorization: Bearer ${token}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-20}" \
    --phases examples,coverage,fuzzing \
    --workers 2 \
    --request-timeout 30 \
    --seed "${SCHEMATHESIS_SEED:-1}" \
    --no-color || rc=$?
if [[ ${rc} -ne 0 ]]; then
    echo "---- gateway log (errors) ----" >&2
    grep -iE 'error|panic' "${work}/gateway.log" | tail -n 40 >&2 || true
fi
exit "${rc}"
