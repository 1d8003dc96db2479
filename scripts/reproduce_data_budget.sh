#!/usr/bin/env bash
# Reproduce the SoK's Fig. 3 (attacker data budget) on Fashion-MNIST at budget=demo, then analyse.
# Rerunning skips finished runs; extra arguments are passed to wrt-run.
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-results/data_budget}
.venv/bin/wrt-run -m experiment=demo_null results_dir="$RESULTS" "$@" || echo "some runs failed (listed above); analysing the others" >&2
.venv/bin/wrt-run -m experiment=data_budget results_dir="$RESULTS" "$@" || echo "some runs failed (listed above); analysing the others" >&2
.venv/bin/wrt-analyze results_dir="$RESULTS"
