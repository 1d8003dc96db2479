#!/usr/bin/env bash
# The `make run` demonstration: null runs, the sweep, then the analysis (ends with report.html).
# Rerunning skips finished runs and reuses the store; extra arguments are passed to wrt-run.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/wrt-run -m experiment=demo_null "$@" || echo "some runs failed (listed above); analysing the others" >&2
.venv/bin/wrt-run -m experiment=demo "$@" || echo "some runs failed (listed above); analysing the others" >&2
.venv/bin/wrt-analyze results_dir=results/demo
