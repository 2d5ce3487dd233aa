#!/usr/bin/env bash
# All tests, offline: `cargo test --features replay` (unit tests, recorder tests, and the
# integration suite against an in-process stack, replayed from recordings/), then the same suite
# against `stack run starter` started for the run (server mode), also replayed. Exits non-zero if
# either fails. This is the README's test command and what .ci/run runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
status=0
cargo test --features replay || status=$?
echo "== the integration suite again, against a server (server:starter)" >&2
scripts/integration-tests.sh --stack-config server:starter || status=$?
exit "$status"
