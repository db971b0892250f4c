#!/usr/bin/env bash
# Runs Sheepdog on a fresh Debian machine with Rust: installs the build tools
# (skipping what is present), builds the binary and the console, then starts
# `sheepdog serve` in the repository directory: SQLite under ./data, gateway on
# 127.0.0.1:8080, console on 127.0.0.1:3000, the simulated provider serving the
# default price table. On first start it prints the admin API token and the
# first console admin's password (once). Extra arguments go to `sheepdog serve`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
bash scripts/install-tools.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh
bash scripts/build-site.sh
exec "${ROOT}/target/release/sheepdog" serve "$@"
