#!/usr/bin/env bash
# Fuzzes the gateway's parsers and translators with cargo-fuzz (libFuzzer,
# AddressSanitizer, debug assertions and overflow checks on), each target
# for SECONDS (default 60), starting from the seed corpora in
# crates/fuzz/corpus/<target>/. Not part of scripts/test.sh (it takes
# minutes per target and needs nightly).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]        every target
#   FUZZ_TARGETS="jsonscan h1_answer" scripts/fuzz.sh 300
#
# Installs what it needs first (skipping what is present): a nightly
# toolchain and cargo-fuzz. New inputs found while fuzzing go to
# crates/fuzz/target/corpus/<target>/ (the seeds in the repository are only
# read); a crash, hang (10 s per input) or out-of-memory input is saved in
# crates/fuzz/artifacts/<target>/ and can be replayed with
#   cargo +nightly fuzz run --fuzz-dir crates/fuzz <target> <file>
# Prints executions and crashes per target; exits non-zero on any crash.
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
FUZZ_DIR=crates/fuzz
CARGO_FUZZ_VERSION=0.13.2

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version "${CARGO_FUZZ_VERSION}"
fi

if [[ -n "${FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"${FUZZ_TARGETS}"
else
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir "${FUZZ_DIR}")
fi

# One build of every target (the runs below reuse it).
cargo +nightly fuzz build --fuzz-dir "${FUZZ_DIR}"

dict_for() {
    case "$1" in
        h1_answer) echo "${FUZZ_DIR}/h1.dict" ;;
        config) echo "${FUZZ_DIR}/toml.dict" ;;
        *) echo "${FUZZ_DIR}/json.dict" ;;
    esac
}

mkdir -p "${FUZZ_DIR}/target/logs"
report=()
failed=0
for t in "${targets[@]}"; do
    work="${FUZZ_DIR}/target/corpus/${t}"
    log="${FUZZ_DIR}/target/logs/${t}.log"
    artifacts="${FUZZ_DIR}/artifacts/${t}"
    mkdir -p "${work}" "${artifacts}" "${FUZZ_DIR}/corpus/${t}"
    before=$(find "${artifacts}" -type f | wc -l)
    printf '==== %s (%ss) ====\n' "${t}" "${SECONDS_PER_TARGET}"
    rc=0
    cargo +nightly fuzz run --fuzz-dir "${FUZZ_DIR}" "${t}" "${work}" "${FUZZ_DIR}/corpus/${t}" -- \
        -max_total_time="${SECONDS_PER_TARGET}" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -dict="$(dict_for "${t}")" -print_final_stats=1 >"${log}" 2>&1 || rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "${log}" | grep -o '[0-9]*$' | tail -1 || true)
    crashes=$(( $(find "${artifacts}" -type f | wc -l) - before ))
    if [[ ${rc} -ne 0 && ${crashes} -eq 0 ]]; then
        crashes=1 # failed without an artifact (e.g. the build): count it
    fi
    if [[ ${crashes} -gt 0 ]]; then
        failed=1
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "${log}" | head -5 || true
    fi
    report+=("$(printf '%-20s %14s %8s' "${t}" "${execs:-?}" "${crashes}")")
    tail -n 3 "${log}"
done

printf '\n%-20s %14s %8s\n' target executions crashes
printf '%s\n' "${report[@]}"
printf '(logs in %s/target/logs)\n' "${FUZZ_DIR}"
exit "${failed}"
