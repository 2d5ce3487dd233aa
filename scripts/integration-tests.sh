#!/usr/bin/env bash
# Run the integration suite (tests/integration) against the stack, in any mode, suite and setup.
#
# Examples:
#   scripts/integration-tests.sh                                   # base suite, in-process stack, replay
#   scripts/integration-tests.sh --stack-config server:starter     # same suite through `stack run starter`
#   scripts/providers/llamacpp.sh start && \
#     scripts/integration-tests.sh --inference-mode record-if-missing   # record what is missing
#   scripts/integration-tests.sh --client all                      # the Python and TypeScript client suites
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  cat <<'USAGE'
Usage: scripts/integration-tests.sh [options]

Runs the integration suite in tests/integration. Every option maps onto an environment variable
that the suite reads, so the same settings also work with plain `cargo test --features replay`.

  --stack-config CONFIG   The stack under test (LLAMA_STACK_TEST_STACK_CONFIG):
                            starter | path/to/run.toml   in-process (library) stack (default: starter)
                            server:CONFIG[:PORT]         `stack run CONFIG` started for the run (default port 8321),
                                                         or reused if the same server already listens there
                                                         (one with other settings is an error saying why)
                            http://HOST:PORT             an already running server
                            inference=remote::llamacpp   an ad-hoc in-process stack from api=provider pairs
  --suite NAME            Suite from suites.toml (LLAMA_STACK_TEST_SUITE; default: base)
  --setup NAME            Setup from suites.toml (LLAMA_STACK_TEST_SETUP; default: the suite's)
  --inference-mode MODE   replay (default) | record-if-missing | record | live
                          (LLAMA_STACK_TEST_INFERENCE_MODE)
  --text-model IDS        Comma-separated text model ids (LLAMA_STACK_TEST_TEXT_MODEL)
  --completion-model IDS  Comma-separated completion model ids (LLAMA_STACK_TEST_COMPLETION_MODEL)
  --vision-model IDS      (LLAMA_STACK_TEST_VISION_MODEL)
  --embedding-model IDS   (LLAMA_STACK_TEST_EMBEDDING_MODEL)
  --embedding-dimension N (LLAMA_STACK_TEST_EMBEDDING_DIMENSION; default 768 unless the setup says otherwise)
  --safety-shield IDS     (LLAMA_STACK_TEST_SAFETY_SHIELD)
  --judge-model IDS       (LLAMA_STACK_TEST_JUDGE_MODEL)
  --rerank-model IDS      (LLAMA_STACK_TEST_RERANK_MODEL)
  --env KEY=VALUE         Set an environment variable for the run (repeatable)
  --subdirs A,B           Only these API-area folders of tests/integration (LLAMA_STACK_TEST_SUBDIRS)
  --pattern TEXT          Only tests whose name contains TEXT
  --collect-only          List the tests that would run, run nothing
  --runner cargo|nextest  Test runner (default: cargo; nextest runs each test in its own process)
  --replay-timing T       instant (default) | recorded: pace replayed streams as recorded
                          (LLAMA_STACK_TEST_REPLAY_TIMING)
  --client C              Instead of the Rust suite, run the client suite(s) C = python | typescript | all
                          (tests/integration/client-python, client-typescript: llama-stack-client and the
                          OpenAI SDK) against `stack run` started on a free port, replaying the recordings of
                          the Rust tests they mirror (tests/integration/client-mirrors.json). Takes
                          --stack-config (starter, run.toml, server:CONFIG[:PORT] or http://HOST:PORT),
                          --setup, --pattern, --collect-only, --env, --inference-mode replay|live; the
                          models come from the mirrored test ids. TS_CLIENT_PATH: a local
                          llama-stack-client-typescript checkout or npm version to use instead of the locked
                          one. Details: scripts/client-suites.sh --help
  -h, --help              This help

Exit status: non-zero when a test fails. With a server stack config, the server's URL, port and
log path are printed at the end, as the test process that started it reported them. Under --runner nextest the skip summary (tests skipped for a missing model
and tests that skipped themselves at run time) is printed after the run.
USAGE
}

die() { echo "integration-tests.sh: $*" >&2; echo "Run with --help for the options." >&2; exit 2; }

need_value() { [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die "$1 needs a value"; }

RUNNER=cargo
PATTERN=""
COLLECT_ONLY=0
CLIENT=""
# Flags that choose what the Rust suite runs, which --client does not take.
RUST_ONLY_FLAGS=()
for arg in "$@"; do
  case "$arg" in
    --text-model|--completion-model|--vision-model|--embedding-model|--embedding-dimension|--safety-shield|--judge-model|--rerank-model|--subdirs|--runner)
      RUST_ONLY_FLAGS+=("$arg") ;;
  esac
done
export LLAMA_STACK_TEST_STACK_CONFIG="${LLAMA_STACK_TEST_STACK_CONFIG:-starter}"
export LLAMA_STACK_TEST_INFERENCE_MODE="${LLAMA_STACK_TEST_INFERENCE_MODE:-replay}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --stack-config) need_value "$@"; export LLAMA_STACK_TEST_STACK_CONFIG="$2"; shift 2 ;;
    --suite) need_value "$@"; export LLAMA_STACK_TEST_SUITE="$2"; shift 2 ;;
    --setup) need_value "$@"; export LLAMA_STACK_TEST_SETUP="$2"; shift 2 ;;
    --inference-mode)
      need_value "$@"
      case "$2" in replay|record-if-missing|record|live) ;; *) die "--inference-mode must be replay, record-if-missing, record or live (got '$2')" ;; esac
      export LLAMA_STACK_TEST_INFERENCE_MODE="$2"; shift 2 ;;
    --text-model) need_value "$@"; export LLAMA_STACK_TEST_TEXT_MODEL="$2"; shift 2 ;;
    --completion-model) need_value "$@"; export LLAMA_STACK_TEST_COMPLETION_MODEL="$2"; shift 2 ;;
    --vision-model) need_value "$@"; export LLAMA_STACK_TEST_VISION_MODEL="$2"; shift 2 ;;
    --embedding-model) need_value "$@"; export LLAMA_STACK_TEST_EMBEDDING_MODEL="$2"; shift 2 ;;
    --embedding-dimension)
      need_value "$@"; [[ "$2" =~ ^[0-9]+$ ]] || die "--embedding-dimension must be a whole number (got '$2')"
      export LLAMA_STACK_TEST_EMBEDDING_DIMENSION="$2"; shift 2 ;;
    --safety-shield) need_value "$@"; export LLAMA_STACK_TEST_SAFETY_SHIELD="$2"; shift 2 ;;
    --judge-model) need_value "$@"; export LLAMA_STACK_TEST_JUDGE_MODEL="$2"; shift 2 ;;
    --rerank-model) need_value "$@"; export LLAMA_STACK_TEST_RERANK_MODEL="$2"; shift 2 ;;
    --env)
      need_value "$@"; [[ "$2" == *=* ]] || die "--env takes KEY=VALUE (got '$2')"
      export "${2%%=*}=${2#*=}"; shift 2 ;;
    --subdirs) need_value "$@"; export LLAMA_STACK_TEST_SUBDIRS="$2"; shift 2 ;;
    --pattern) need_value "$@"; PATTERN="$2"; shift 2 ;;
    --collect-only) COLLECT_ONLY=1; shift ;;
    --runner)
      need_value "$@"; case "$2" in cargo|nextest) RUNNER="$2" ;; *) die "--runner must be cargo or nextest" ;; esac; shift 2 ;;
    --replay-timing) need_value "$@"; export LLAMA_STACK_TEST_REPLAY_TIMING="$2"; shift 2 ;;
    --client)
      need_value "$@"
      case "$2" in python|typescript|all) CLIENT="$2" ;; *) die "--client must be python, typescript or all (got '$2')" ;; esac
      shift 2 ;;
    *) die "unknown option '$1'" ;;
  esac
done

cd "$ROOT"
# shellcheck source=lib.sh
source "$ROOT/scripts/lib.sh"

if [[ -n "$CLIENT" ]]; then
  # The client suites take their models from the Rust tests they mirror and run under their own
  # runners: flags that choose what the Rust suite runs do not apply.
  [[ ${#RUST_ONLY_FLAGS[@]} -eq 0 ]] || die "--client does not take ${RUST_ONLY_FLAGS[*]} (the client suites' models come from the Rust test ids in tests/integration/client-mirrors.json)"
  args=(--client "$CLIENT" --stack-config "$LLAMA_STACK_TEST_STACK_CONFIG")
  [[ -n "$PATTERN" ]] && args+=(--pattern "$PATTERN")
  [[ $COLLECT_ONLY == 1 ]] && args+=(--collect-only)
  exec "$ROOT/scripts/client-suites.sh" "${args[@]}"
fi

# The auto-started server (server:CONFIG) lives exactly as long as this script.
export HARNESS_RUN_OWNER_PID=$$
# The test process that starts (or reuses) the server says where it is in this file, read at the
# end. Set up before any test runs, removed however the script ends.
HARNESS_SERVER_INFO_FILE="$(mktemp "${TMPDIR:-/tmp}/integration-tests-server.XXXXXX.json")"
export HARNESS_SERVER_INFO_FILE
trap 'rm -f "$HARNESS_SERVER_INFO_FILE"' EXIT

echo "== suite=${LLAMA_STACK_TEST_SUITE:-base} setup=${LLAMA_STACK_TEST_SETUP:-(suite default)} stack=$LLAMA_STACK_TEST_STACK_CONFIG mode=$LLAMA_STACK_TEST_INFERENCE_MODE runner=$RUNNER" >&2

args=()
[[ -n "$PATTERN" ]] && args+=("$PATTERN")
status=0
if [[ "$RUNNER" == nextest ]]; then
  command -v cargo-nextest >/dev/null || die "cargo-nextest is not installed (cargo install cargo-nextest --locked)"
  if [[ $COLLECT_ONLY == 1 ]]; then
    cargo nextest list --features replay --test integration "${args[@]}" || status=$?
  else
    cargo nextest run --features replay --test integration --no-fail-fast "${args[@]}" || status=$?
    # nextest runs each test in its own process (and shows a test that skipped itself at run time
    # as passed): print the run's skip summary separately, with the same filter. The test
    # processes noted their runtime skips for this run owner (HARNESS_RUN_OWNER_PID=$$ above).
    HARNESS_LIST_SKIPS=1 "$(integration_test_binary)" -q "${args[@]}" 2>/dev/null || true
  fi
else
  # Built exactly as the README's test command builds (one build for both), then run directly.
  suite_bin="$(integration_test_binary)" || die "building the integration suite failed"
  if [[ $COLLECT_ONLY == 1 ]]; then
    "$suite_bin" --list "${args[@]}" || status=$?
  else
    "$suite_bin" "${args[@]}" || status=$?
  fi
fi

# Where the auto-started server listened and logged, as the test process that started (or
# reused) it wrote them to $HARNESS_SERVER_INFO_FILE (harness::testkit::server_info): nothing is
# re-derived here. No file: no test used a server (another stack config, --collect-only, or no
# test selected).
# Read with jq when it is installed, as lib.sh's cargo_executable does (python3 takes a tenth of a
# second or more to start).
if [[ -s "$HARNESS_SERVER_INFO_FILE" ]]; then
  if command -v jq >/dev/null 2>&1; then
    jq -r '"== server: \(.base_url) (port \(.port))", "== server log: \(.log_file)"' \
      "$HARNESS_SERVER_INFO_FILE" >&2 || echo "== cannot read $HARNESS_SERVER_INFO_FILE" >&2
  else
    python3 - "$HARNESS_SERVER_INFO_FILE" <<'PY' >&2 || echo "== cannot read $HARNESS_SERVER_INFO_FILE" >&2
import json, sys
info = json.load(open(sys.argv[1]))
print(f"== server: {info['base_url']} (port {info['port']})")
print(f"== server log: {info['log_file']}")
PY
  fi
fi
exit $status
