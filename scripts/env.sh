# shellcheck shell=bash
# Source this file to put the console build tools on PATH for the current shell:
#
#     . scripts/env.sh
#
# It adds ~/.cargo/bin (cargo-leptos, wasm-bindgen) and the repo-local
# .tools/node_modules/.bin (wasm-opt from the npm package binaryen@132, installed
# by scripts/install-tools.sh) in front of PATH. It changes nothing else: no shell
# options, no files. Debian's binaryen (wasm-opt 108) breaks hydration, so the
# repo-local wasm-opt must come first.

SHEEPDOG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SHEEPDOG_ROOT

_sheepdog_path_prepend() {
    case ":${PATH}:" in
        *":$1:"*) ;;
        *) PATH="$1${PATH:+:${PATH}}" ;;
    esac
}
_sheepdog_path_prepend "${CARGO_HOME:-${HOME}/.cargo}/bin"
_sheepdog_path_prepend "${SHEEPDOG_ROOT}/.tools/node_modules/.bin"
unset -f _sheepdog_path_prepend
export PATH
