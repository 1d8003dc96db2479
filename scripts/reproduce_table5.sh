#!/usr/bin/env bash
# Reproduce the SoK's table5 experiment on Fashion-MNIST (wrt/configs/experiment/table5.yaml), then analyse.
# Rerunning skips finished runs; extra arguments are passed to wrt-run (e.g. budget=smoke);
# RESULTS=<folder> moves the results, dry_run=true prints the plans and a total (scripts/sweep_lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sweep_lib.sh
RESULTS=${RESULTS:-results/table5}
sweep experiment=thresholds results_dir="$RESULTS" "$@"
sweep experiment=table5 results_dir="$RESULTS" "$@"
analyze results_dir="$RESULTS"
