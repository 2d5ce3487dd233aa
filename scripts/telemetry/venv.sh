#!/usr/bin/env bash
# Prints the path of the traffic driver's Python venv (the OpenAI SDK and the OpenTelemetry
# distro with the OpenAI instrumentation, pinned in requirements.txt), installing it on first use.
# Used by test-plan.sh and by its CI variant, tests/telemetry_plan.rs.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
source "$HERE/../lib.sh"
pinned_venv telemetry-plan "$HERE/requirements.txt" opentelemetry.instrumentation.openai_v2
