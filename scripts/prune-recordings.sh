#!/usr/bin/env bash
# Lists (or, with --delete, removes) recordings whose test no longer exists.
#
# Known test ids: every trial of every suite in suites.toml (as the runner names them, with the
# suites' default setups), plus the ids of scripts/sdk/openai_client.py and
# scripts/telemetry/driver.py. Exits 1 when orphans
# exist and --delete is not given, so it can gate CI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
known="$(mktemp)"
trap 'rm -f "$known"' EXIT
# shellcheck source=lib.sh
source "$ROOT/scripts/lib.sh"
# The suite's executable as the README's test command builds it (no second build).
suite_bin="$(integration_test_binary)"
# The ids as the suites' default setups give them, whatever the caller's environment selects.
unset LLAMA_STACK_TEST_SETUP LLAMA_STACK_TEST_SUBDIRS LLAMA_STACK_TEST_TEXT_MODEL \
  LLAMA_STACK_TEST_VISION_MODEL LLAMA_STACK_TEST_COMPLETION_MODEL LLAMA_STACK_TEST_EMBEDDING_MODEL \
  LLAMA_STACK_TEST_SAFETY_SHIELD LLAMA_STACK_TEST_JUDGE_MODEL LLAMA_STACK_TEST_RERANK_MODEL
# The suites as the harness reads suites.toml (`recordings suites`), not as a pattern would guess.
suites="$(cargo run -q -p harness --bin recordings -- suites --file "$ROOT/suites.toml")"
[[ -n "$suites" ]] || { echo "prune-recordings.sh: suites.toml defines no suite; nothing pruned" >&2; exit 1; }
for suite in $suites; do
  # A suite that cannot be listed would leave its tests out of the known list, and --delete
  # would then remove their recordings: stop instead.
  LLAMA_STACK_TEST_SUITE="$suite" "$suite_bin" --list --format terse >>"$known" \
    || { echo "prune-recordings.sh: cannot list suite $suite; nothing pruned" >&2; exit 1; }
done
grep -o '"sdk/openai_client.py::[a-z_]*"' scripts/sdk/openai_client.py | tr -d '"' >>"$known"
# The telemetry test plan's traffic driver names its calls test_id("NAME").
grep -o 'test_id("[a-z_]*")' scripts/telemetry/driver.py | sed 's/test_id("\(.*\)")/telemetry-plan\/driver.py::\1/' >>"$known"
cargo run -q -p harness --bin recordings -- prune --known "$known" "$@"
