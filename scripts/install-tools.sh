#!/usr/bin/env bash
# Installs what building the console site and running the Playwright tests
# needs. Idempotent: each tool is installed only when missing or at another
# version, and every step says whether it installed or skipped. Changes no shell
# profile; source scripts/env.sh to get the tools on PATH.
#
#   - rustup target wasm32-unknown-unknown
#   - cargo-leptos 0.3.5                 (~/.cargo/bin)
#   - wasm-bindgen-cli = Cargo.lock's wasm-bindgen version (~/.cargo/bin)
#   - wasm-opt from npm binaryen@132     (.tools/, repo-local, gitignored)
#   - chromium from apt                  (/usr/bin/chromium, for Playwright)
#   - end2end/node_modules               (npm ci)
#
# cargo-leptos would download wasm-bindgen and wasm-opt itself; that fails
# without internet, so both are put on PATH beforehand. Debian's binaryen
# (wasm-opt 108) breaks hydration: never use it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
. "${ROOT}/scripts/env.sh"

CARGO_LEPTOS_VERSION="0.3.5"
BINARYEN_VERSION="132"
TOOLS_DIR="${ROOT}/.tools"

log() { printf '[install-tools] %s\n' "$*"; }
die() { printf '[install-tools] error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo is not installed (https://rustup.rs)"
command -v rustup >/dev/null || die "rustup is not installed (https://rustup.rs)"
command -v npm >/dev/null || die "npm is not installed (Node.js 18 or newer)"

# --- wasm target ---------------------------------------------------------------
if rustup target list --installed | grep -qx 'wasm32-unknown-unknown'; then
    log "skip: rust target wasm32-unknown-unknown already installed"
else
    log "install: rust target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi

# --- cargo-leptos --------------------------------------------------------------
have="$(cargo-leptos --version 2>/dev/null | awk '{print $2}' || true)"
if [[ "${have}" == "${CARGO_LEPTOS_VERSION}" ]]; then
    log "skip: cargo-leptos ${have} already installed"
else
    log "install: cargo-leptos ${CARGO_LEPTOS_VERSION} (found: ${have:-none}); takes several minutes"
    cargo install cargo-leptos --version "${CARGO_LEPTOS_VERSION}" --locked
fi

# --- wasm-bindgen-cli (must equal the wasm-bindgen crate in Cargo.lock) --------
lock_versions="$(awk '
    $0 == "name = \"wasm-bindgen\"" { grab = 1; next }
    grab && /^version = / { gsub(/"/, "", $3); print $3; grab = 0 }
' "${ROOT}/Cargo.lock" | sort -u)"
[[ -n "${lock_versions}" ]] || die "no wasm-bindgen entry in Cargo.lock (run a cargo build of the frontend first)"
[[ "$(wc -l <<<"${lock_versions}")" -eq 1 ]] || die "Cargo.lock has several wasm-bindgen versions: ${lock_versions//$'\n'/ }"
WASM_BINDGEN_VERSION="${lock_versions}"
have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [[ "${have}" == "${WASM_BINDGEN_VERSION}" ]]; then
    log "skip: wasm-bindgen-cli ${have} already installed (matches Cargo.lock)"
else
    log "install: wasm-bindgen-cli ${WASM_BINDGEN_VERSION} (found: ${have:-none}); takes a few minutes"
    # Not --locked: the CLI's own lock file pins crates that no longer build on current Rust.
    cargo install wasm-bindgen-cli --version "${WASM_BINDGEN_VERSION}" --force
fi

# --- wasm-opt (npm binaryen, repo-local) ---------------------------------------
wasm_opt="${TOOLS_DIR}/node_modules/.bin/wasm-opt"
have="$("${wasm_opt}" --version 2>/dev/null | grep -o 'version [0-9]*' | awk '{print $2}' || true)"
if [[ "${have}" == "${BINARYEN_VERSION}" ]]; then
    log "skip: wasm-opt ${have} (npm binaryen) already in .tools/"
else
    log "install: npm binaryen@${BINARYEN_VERSION} into .tools/ (found: ${have:-none})"
    mkdir -p "${TOOLS_DIR}"
    npm install --prefix "${TOOLS_DIR}" --no-audit --no-fund --save-exact "binaryen@${BINARYEN_VERSION}"
    "${wasm_opt}" --version >/dev/null || die "wasm-opt from binaryen@${BINARYEN_VERSION} does not run"
fi

# --- chromium (Playwright drives the Debian build; `npx playwright install` cannot work offline) ---
if [[ -x /usr/bin/chromium ]]; then
    log "skip: /usr/bin/chromium already installed"
else
    log "install: chromium (apt-get)"
    sudo_cmd=()
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null || die "chromium is missing and installing it needs root (apt-get install chromium)"
        sudo_cmd=(sudo)
    fi
    "${sudo_cmd[@]}" apt-get update
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi

# --- Playwright (end2end/node_modules) -----------------------------------------
e2e="${ROOT}/end2end"
marker="${e2e}/node_modules/.package-lock.json"
if [[ -f "${e2e}/package-lock.json" ]]; then
    if [[ -f "${marker}" && ! "${e2e}/package-lock.json" -nt "${marker}" && ! "${e2e}/package.json" -nt "${marker}" ]]; then
        log "skip: end2end/node_modules is up to date with package-lock.json"
    else
        log "install: npm ci in end2end/"
        (cd "${e2e}" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
    fi
else
    if [[ -f "${marker}" && ! "${e2e}/package.json" -nt "${marker}" ]]; then
        log "skip: end2end/node_modules is up to date with package.json"
    else
        log "install: npm install in end2end/ (no package-lock.json yet)"
        (cd "${e2e}" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund)
    fi
fi

log "done; run '. scripts/env.sh' to put the tools on PATH"
