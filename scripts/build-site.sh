#!/usr/bin/env bash
# Builds the console and the binary together with cargo-leptos:
#
#   target/release/sheepdog   the server binary (gateway + console, `sheepdog serve`)
#   target/site/              the console's static site: pkg/sheepdog.{js,wasm,css}
#                             plus the files of public/
#
# Run scripts/install-tools.sh once first. Extra arguments go to cargo leptos.
#
# Skips the build (~2 minutes) when nothing it reads has changed since the last
# successful one: a stamp over the inputs (every git-tracked and untracked,
# not ignored file under app/ frontend/ server/ crates/ migrations/ style/
# public/ .cargo/ and Cargo.toml, Cargo.lock — the index's blob hashes plus the
# content hashes of files changed in the working tree — and the toolchain,
# cargo-leptos version and extra arguments) is kept in target/.site-build-stamp;
# when it matches and target/release/sheepdog and target/site/pkg/sheepdog.{js,wasm,css}
# exist, nothing is built. SHEEPDOG_FORCE_BUILD=1 builds anyway. Outside a git
# checkout the stamp hashes every input file's content.
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

STAMP_FILE="target/.site-build-stamp"
INPUTS=(app frontend server crates migrations style public .cargo Cargo.toml Cargo.lock)
OUTPUTS=(target/release/sheepdog target/site/pkg/sheepdog.js target/site/pkg/sheepdog.wasm target/site/pkg/sheepdog.css)

# Prints the stamp of the current inputs (one sha256).
input_stamp() {
    {
        printf 'args:'; printf ' %q' "$@"; printf '\n'
        rustc -vV
        cargo leptos --version 2>/dev/null || true
        if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
            # Tracked files as staged (mode, blob hash, path) ...
            git ls-files -s -- "${INPUTS[@]}" ':!crates/fuzz'
            # ... then what the working tree changed: modified, deleted and
            # untracked (not ignored) files, hashed as they are now.
            { git diff --no-ext-diff --name-only -- "${INPUTS[@]}" ':!crates/fuzz'
              git ls-files --others --exclude-standard -- "${INPUTS[@]}" ':!crates/fuzz'; } \
                | sort -u | while IFS= read -r f; do
                    if [[ -f "${f}" ]]; then
                        printf 'worktree %s %s\n' "$(git hash-object -- "${f}")" "${f}"
                    else
                        printf 'deleted %s\n' "${f}"
                    fi
                done
        else
            find "${INPUTS[@]}" -path crates/fuzz -prune -o -type f -print 2>/dev/null \
                | LC_ALL=C sort | while IFS= read -r f; do sha256sum -- "${f}"; done
        fi
    } | sha256sum | awk '{print $1}'
}

outputs_exist() {
    local f
    for f in "${OUTPUTS[@]}"; do
        [[ -s "${f}" ]] || return 1
    done
}

stamp="$(input_stamp "$@")"
if [[ "${SHEEPDOG_FORCE_BUILD:-0}" != "1" ]] && outputs_exist \
    && [[ -f "${STAMP_FILE}" ]] && [[ "$(cat "${STAMP_FILE}")" == "${stamp}" ]]; then
    printf '[build-site] skip: inputs unchanged since the last build (%s); SHEEPDOG_FORCE_BUILD=1 rebuilds\n' "${STAMP_FILE}"
    exit 0
fi

# A failed or interrupted build must not leave a stamp that says otherwise.
rm -f "${STAMP_FILE}"
cargo leptos build --release "$@"
mkdir -p "$(dirname "${STAMP_FILE}")"
printf '%s\n' "${stamp}" > "${STAMP_FILE}.tmp"
mv "${STAMP_FILE}.tmp" "${STAMP_FILE}"
printf '[build-site] built; stamp written to %s\n' "${STAMP_FILE}"
