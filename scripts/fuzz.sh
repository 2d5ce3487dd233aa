#!/usr/bin/env bash
# Fuzz smoke run: each cargo-fuzz target (fuzz/, docs/fuzzing.md) for SECONDS (default 30), one
# after the other, from its checked-in seeds. Installs cargo-fuzz when missing; needs the nightly
# toolchain. The growing corpus goes to target/fuzz-corpus/<target> (the seeds stay as they are),
# crash inputs to fuzz/artifacts/<target>/; exits non-zero on the first target that fails.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
seconds="${1:-30}"
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2; }
shift $(( $# > 0 ? 1 : 0 ))
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(canonical sse_splitter blob_loader run_config raw_object)

rustup toolchain list | grep -q '^nightly' \
  || { echo "scripts/fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)" >&2; exit 1; }
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# A target dir of its own: nightly with sanitizers rebuilds everything, and does not take the
# lock of the workspace's target/ from a build running there.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/fuzz-target}"

for t in "${targets[@]}"; do
  corpus="$ROOT/target/fuzz-corpus/$t"
  mkdir -p "$corpus"
  echo "== $t: ${seconds}s" >&2
  log="$(mktemp)"
  if ! cargo +nightly fuzz run --target-dir "$CARGO_TARGET_DIR" "$t" "$corpus" "fuzz/seeds/$t" -- \
      -max_total_time="$seconds" -print_final_stats=1 2>"$log"; then
    tail -n 60 "$log" >&2
    echo "scripts/fuzz.sh: $t failed; the input is under fuzz/artifacts/$t/ (log: $log)" >&2
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^stat::average_exec_per_sec' "$log" >&2 || true
  rm -f "$log"
done
