#!/usr/bin/env bash
# Reproduce the SoK's dominant experiment on Fashion-MNIST (configs/experiment/dominant.yaml), then analyse.
# Rerunning skips finished runs; extra arguments are passed to wrt-run (e.g. budget=smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
RESULTS=${RESULTS:-results/dominant}
.venv/bin/wrt-run -m experiment=thresholds results_dir="$RESULTS" "$@" || echo "some runs failed (listed above); analysing the others" >&2
.venv/bin/wrt-run -m experiment=dominant results_dir="$RESULTS" "$@" || echo "some runs failed (listed above); analysing the others" >&2
.venv/bin/wrt-analyze results_dir="$RESULTS"
