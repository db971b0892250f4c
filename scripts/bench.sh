#!/usr/bin/env bash
# Benchmark: a zero-delay OpenAI-compatible upstream called directly, through
# the Sheepdog gateway (auth + accounting) and through nginx (if installed).
# Builds the release binaries, then runs sheepdog-bench; arguments pass through
# (see `scripts/bench.sh --help` and docs/benchmark.md). Results go to
# bench-results/ (JSON + Markdown, timestamped) and the table is printed.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p sheepdog -p sheepdog-bench

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
exec "$target_dir/release/sheepdog-bench" --gateway-bin "$target_dir/release/sheepdog" "$@"
