#!/usr/bin/env bash
# Builds the console and the binary together with cargo-leptos:
#
#   target/release/sheepdog   the server binary (gateway + console, `sheepdog serve`)
#   target/site/              the console's static site: pkg/sheepdog.{js,wasm,css}
#                             plus the files of public/
#
# Run scripts/install-tools.sh once first. Extra arguments go to cargo leptos.
# Build binary and site together: a `sheepdog` binary built by plain
# `cargo build` asks the browser for pkg/sheepdog_bg.wasm, which cargo-leptos
# does not produce (the console refuses to start with such a mismatch).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
. "${ROOT}/scripts/env.sh"

die() { printf '[build-site] error: %s\n' "$*" >&2; exit 1; }

command -v cargo-leptos >/dev/null || die "cargo-leptos is not installed; run scripts/install-tools.sh"
command -v wasm-bindgen >/dev/null || die "wasm-bindgen is not installed; run scripts/install-tools.sh"
wasm_opt="$(command -v wasm-opt || true)"
[[ "${wasm_opt}" == "${ROOT}/.tools/node_modules/.bin/wasm-opt" ]] \
    || die "wasm-opt resolves to '${wasm_opt:-nothing}', not the repo-local binaryen@132; run scripts/install-tools.sh"

cd "${ROOT}"
cargo leptos build --release "$@"
