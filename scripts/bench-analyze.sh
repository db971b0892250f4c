#!/usr/bin/env bash
# Benchmark of the migration analysis (`sheepdog analyze`, docs/analyze.md).
# Builds crates/analyze/examples/bench.rs in release (a separate binary that
# runs the same code path as `sheepdog analyze`, so target/release/sheepdog
# and the console's assets are left alone), generates a synthetic JSON-lines
# log of --size bytes (default 1G) in a temporary directory, analyses it and
# reports throughput (MB/s) and peak RSS. --gzip also analyses the log
# gzipped. Results go to bench-results/analyze-<UTC time>.{json,md}.
#
# --max-events N lowers the in-memory event budget (default 2,000,000) to
# exercise the external sort (sorted runs spilled to disk).
#
#   scripts/bench-analyze.sh [--size 1G|200M|...] [--threads N] [--max-events N] [--gzip] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."

size=1G
threads=""
max_events=""
gzip_too=0
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --max-events) max_events="$2"; shift 2 ;;
    --gzip) gzip_too=1; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

cargo build --release -p sheepdog-analyze --example bench
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
bin="$target_dir/release/examples/bench"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/sheepdog-bench-analyze.XXXXXX")"
if [ "$keep" = 1 ]; then echo "keeping $tmp" >&2; else trap 'rm -rf "$tmp"' EXIT; fi

echo "generating a $size synthetic JSON-lines log in $tmp ..." >&2
gen_json="$("$bin" gen --size "$size" --out "$tmp/log.jsonl")"
echo "$gen_json" >&2

field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1" | tr -d '"'; }

# Runs one analysis; prints the bench's JSON line with the measured peak RSS added.
measure() {
  local input="$1"
  local args=(run "$input" --out "$tmp/report")
  [ -n "$threads" ] && args+=(--threads "$threads")
  [ -n "$max_events" ] && args+=(--max-events "$max_events")
  local out rss source
  if [ -x /usr/bin/time ]; then
    out="$(/usr/bin/time -v "$bin" "${args[@]}" 2>"$tmp/time.txt")"
    rss="$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$tmp/time.txt")"
    source="/usr/bin/time -v"
  else
    out="$("$bin" "${args[@]}")"
    rss="$(field "$out" vm_hwm_kb)"
    source="VmHWM from /proc/self/status"
  fi
  echo "${out%\}},\"peak_rss_kb\":$rss,\"rss_source\":\"$source\",\"input\":\"$(basename "$input")\"}"
}

runs=("$(measure "$tmp/log.jsonl")")
if [ "$gzip_too" = 1 ]; then
  echo "compressing (gzip -1) ..." >&2
  gzip -1 -k "$tmp/log.jsonl"
  runs+=("$(measure "$tmp/log.jsonl.gz")")
fi

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p bench-results
json="bench-results/analyze-$stamp.json"
md="bench-results/analyze-$stamp.md"
cpu="$(sed -n 's/^model name\s*:\s*//p' /proc/cpuinfo 2>/dev/null | head -1)"
mem_kb="$(sed -n 's/^MemTotal:\s*\([0-9]*\).*/\1/p' /proc/meminfo 2>/dev/null)"
{
  echo "{"
  echo "  \"generated\": $gen_json,"
  echo "  \"machine\": {\"cores\": $(nproc), \"cpu\": \"${cpu//\"/}\", \"mem_kb\": ${mem_kb:-0}},"
  echo "  \"runs\": ["
  for i in "${!runs[@]}"; do
    sep=","; [ "$i" = $((${#runs[@]} - 1)) ] && sep=""
    echo "    ${runs[$i]}$sep"
  done
  echo "  ]"
  echo "}"
} >"$json"
{
  echo "# sheepdog analyze benchmark ($stamp)"
  echo
  echo "Machine: $(nproc) cores, ${cpu:-unknown CPU}, $((${mem_kb:-0} / 1024 / 1024)) GiB RAM."
  echo "Input: synthetic JSON lines (OpenAI request/response records, 200 tenants), $(field "$gen_json" bytes) bytes, $(field "$gen_json" records) records; page cache warm (just generated)."
  echo
  echo "| input | bytes | records | threads | seconds | MB/s | peak RSS (MB) | spilled runs | peak concurrency |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for r in "${runs[@]}"; do
    echo "| $(field "$r" input) | $(field "$r" bytes) | $(field "$r" records) | $(field "$r" threads) | $(field "$r" seconds) | $(field "$r" mb_per_s) | $(( $(field "$r" peak_rss_kb) / 1024 )) | $(field "$r" spill_runs) | $(field "$r" peak_concurrency) |"
  done
  echo
  echo "MB/s = input bytes as given (compressed for .gz) ÷ wall-clock seconds of the whole run (parse, sort, sweep, report.json and report.html written). Peak RSS: $(field "${runs[0]}" rss_source)."
} >"$md"
cat "$md"
echo
echo "wrote $json and $md"
