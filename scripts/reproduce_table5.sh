#!/usr/bin/env bash
# Reproduce the SoK's table5 experiment on Fashion-MNIST (configs/experiment/table5.yaml), then analyse.
# Rerunning skips finished runs; extra arguments are passed to wrt-run (e.g. budget=smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-results/table5}
.venv/bin/wrt-run -m experiment=thresholds results_dir="$RESULTS" "$@" || echo "some runs failed (listed above); analysing the others" >&2
.venv/bin/wrt-run -m experiment=table5 results_dir="$RESULTS" "$@" || echo "some runs failed (listed above); analysing the others" >&2
.venv/bin/wrt-analyze results_dir="$RESULTS"
