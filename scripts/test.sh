#!/usr/bin/env bash
# Runs every test of Sheepdog on a fresh Debian machine with Rust. Installs
# what it needs first, skipping what is present (scripts/install-tools.sh,
# a Python virtual environment in .venv). Steps:
#   1. formatting and clippy (warnings are errors; unwrap/expect/panic denied)
#   2. cargo test: unit tests, integration tests against provider emulators,
#      storage tests on SQLite and Postgres, CLI tests
#   3. cargo leptos build --release: the binary and the console site
#   4. schemathesis against the admin API's OpenAPI document (release binary)
#   5. the official openai and anthropic Python SDKs against the release binary
#   6. Playwright + Debian Chromium against `sheepdog serve`
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
# One-shot builds: incremental caches only cost disk (tens of GB) and time here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
step() { printf '\n==== %s ====\n' "$*"; }

step "install tools (skips what is present)"
bash scripts/install-tools.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh
bash scripts/services.sh
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --exclude frontend --all-targets -- -D warnings
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

step "cargo test"
cargo test --workspace --exclude frontend

step "build the release binary and the console site"
bash scripts/build-site.sh

step "schemathesis against the admin API (no 5xx, answers as documented)"
SHEEPDOG_BIN="${ROOT}/target/release/sheepdog" bash scripts/schemathesis.sh

step "openai and anthropic Python SDKs against the gateway (and the provider emulators)"
cargo build --quiet -p sheepdog-emulators --bin sheepdog-emulators
SHEEPDOG_BIN="${ROOT}/target/release/sheepdog" SHEEPDOG_EMULATORS_BIN="${ROOT}/target/debug/sheepdog-emulators" \
    .venv/bin/python -m pytest -q tests/python

step "Playwright end-to-end"
bash scripts/e2e.sh

step "all tests passed"
