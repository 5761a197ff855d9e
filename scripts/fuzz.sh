#!/usr/bin/env bash
# Runs every coverage-guided fuzz target (fuzz/fuzz_targets/) for SECONDS
# each (default 300) and prints one line per target: runs, time, result.
#   scripts/fuzz.sh [SECONDS]
# A crash stops the script with libFuzzer's report; the input that caused it
# is in fuzz/artifacts/TARGET/. Not part of CI: it would not fit its time.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-300}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# cargo-fuzz passes -Z flags to rustc; this lets the stable toolchain take
# them. No sanitizer: the code under test is safe Rust, and without ASan
# the targets build faster and run several times more inputs per second.
export RUSTC_BOOTSTRAP=1
flags=(--fuzz-dir fuzz --sanitizer none --debug-assertions)
mkdir -p fuzz/logs
summary=()
for target in $(cargo fuzz list --fuzz-dir fuzz); do
    mkdir -p "fuzz/corpus/$target"
    log="fuzz/logs/$target.log"
    echo "== $target: ${seconds}s"
    if ! cargo fuzz run "${flags[@]}" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log"
        echo "FAIL: $target crashed; see $log and fuzz/artifacts/$target/" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    summary+=("$target: ${runs:-?} runs in ${seconds}s, $cov, no crash")
done
printf '%s\n' "${summary[@]}"
