#!/usr/bin/env bash
# Runs the Playwright tests against a fresh `sheepdog serve`. Builds nothing:
# expects target/release/sheepdog and target/site (scripts/build-site.sh) and
# end2end/node_modules (scripts/install-tools.sh).
#
# The server runs in a new temporary directory (so the default SQLite database,
# data/sheepdog.db, is fresh) on two free ports, with a config file written
# there (sheepdog.toml): the default `simulated` provider serving the default
# models, plus a second simulated provider `simulated-b` (a rollout's `to`
# side), and a 1 MiB analysis upload limit (so the too-large upload is
# cheap to test). Exported to the tests:
#   SHEEPDOG_CONSOLE_URL   the console's base URL
#   SHEEPDOG_GATEWAY_URL   the gateway's base URL
#   SHEEPDOG_SERVE_LOG     file with the server's stdout (first-start admin credentials)
# The server's stderr (logs) goes to serve.stderr.log next to it. The directory is
# removed after a green run unless SHEEPDOG_E2E_KEEP=1; it is kept after a failure.
# Arguments are passed to `npx playwright test`. Exits with Playwright's code.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
. "${ROOT}/scripts/env.sh"

log() { printf '[e2e] %s\n' "$*" >&2; }
die() { printf '[e2e] error: %s\n' "$*" >&2; exit 2; }

BIN="${ROOT}/target/release/sheepdog"
SITE="${ROOT}/target/site"
[[ -x "${BIN}" ]] || die "${BIN} is missing; run scripts/build-site.sh"
[[ -f "${SITE}/pkg/sheepdog.wasm" ]] || die "${SITE}/pkg/sheepdog.wasm is missing; run scripts/build-site.sh"
[[ -d "${ROOT}/end2end/node_modules/@playwright/test" ]] || die "end2end/node_modules is missing; run scripts/install-tools.sh"

# Two distinct free ports, chosen by the kernel.
read -r GATEWAY_PORT CONSOLE_PORT < <(node -e '
  const net = require("net");
  const a = net.createServer().listen(0, "127.0.0.1", () => {
    const b = net.createServer().listen(0, "127.0.0.1", () => {
      console.log(a.address().port, b.address().port);
      a.close(); b.close();
    });
  });')

WORK="$(mktemp -d "${TMPDIR:-/tmp}/sheepdog-e2e.XXXXXX")"
mkdir -p "${WORK}/data"
export SHEEPDOG_SERVE_LOG="${WORK}/serve.log"
export SHEEPDOG_GATEWAY_URL="http://127.0.0.1:${GATEWAY_PORT}"
export SHEEPDOG_CONSOLE_URL="http://127.0.0.1:${CONSOLE_PORT}"

SERVER_PID=""
status=1
cleanup() {
    if [[ -n "${SERVER_PID}" ]] && kill -0 "${SERVER_PID}" 2>/dev/null; then
        kill -TERM "${SERVER_PID}" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "${SERVER_PID}" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "${SERVER_PID}" 2>/dev/null; then
            log "server did not stop after SIGTERM; killing it"
            kill -KILL "${SERVER_PID}" 2>/dev/null || true
        fi
        wait "${SERVER_PID}" 2>/dev/null || true
    fi
    if [[ "${status}" -eq 0 && "${SHEEPDOG_E2E_KEEP:-0}" != "1" ]]; then
        rm -rf "${WORK}"
    else
        log "server logs kept in ${WORK}"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# With no [models], the default price table is served by the first provider
# by name: `simulated` (x-sheepdog-provider: simulated, as before).
cat >"${WORK}/sheepdog.toml" <<'TOML'
[gateway]
max_analysis_upload_bytes = 1048576

[providers.simulated]
kind = "simulated"

[providers.simulated-b]
kind = "simulated"
TOML

log "starting sheepdog serve in ${WORK} (gateway :${GATEWAY_PORT}, console :${CONSOLE_PORT})"
(
    cd "${WORK}"
    export SHEEPDOG_CONSOLE__SITE_ROOT="${SITE}"
    export SHEEPDOG_GATEWAY__LISTEN="127.0.0.1:${GATEWAY_PORT}"
    export SHEEPDOG_CONSOLE__LISTEN="127.0.0.1:${CONSOLE_PORT}"
    export SHEEPDOG_CONSOLE__GATEWAY_URL="${SHEEPDOG_GATEWAY_URL}"
    exec "${BIN}" serve --config "${WORK}/sheepdog.toml" >"${SHEEPDOG_SERVE_LOG}" 2>"${WORK}/serve.stderr.log"
) &
SERVER_PID=$!

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
deadline=$((SECONDS + 60))
until port_open "${GATEWAY_PORT}" && port_open "${CONSOLE_PORT}"; do
    if ! kill -0 "${SERVER_PID}" 2>/dev/null; then
        log "sheepdog serve exited before listening; its stderr:"
        tail -n 40 "${WORK}/serve.stderr.log" >&2 || true
        exit 1
    fi
    if (( SECONDS >= deadline )); then
        log "sheepdog serve is not listening after 60 s; its stderr:"
        tail -n 40 "${WORK}/serve.stderr.log" >&2 || true
        exit 1
    fi
    sleep 0.2
done
log "server is up"

set +e
(cd "${ROOT}/end2end" && npx --no-install playwright test "$@")
status=$?
set -e
if [[ "${status}" -ne 0 ]]; then
    log "playwright failed (exit ${status}); last server log lines:"
    tail -n 20 "${WORK}/serve.stderr.log" >&2 || true
fi
exit "${status}"
