#!/usr/bin/env bash
# Reproduce the SoK's dominant experiment on Fashion-MNIST (wrt/configs/experiment/dominant.yaml), then analyse.
# Rerunning skips finished runs; extra arguments are passed to wrt-run (e.g. budget=smoke);
# RESULTS=<folder> moves the results, dry_run=true prints the plans and a total (scripts/sweep_lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sweep_lib.sh
RESULTS=${RESULTS:-results/dominant}
sweep experiment=thresholds results_dir="$RESULTS" "$@"
sweep experiment=dominant results_dir="$RESULTS" "$@"
analyze results_dir="$RESULTS"
