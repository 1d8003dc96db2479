#!/usr/bin/env bash
# Reproduce the SoK's Fig. 3 (attacker data budget) on Fashion-MNIST at budget=demo, then analyse.
# Rerunning skips finished runs; extra arguments are passed to wrt-run (e.g. budget=smoke);
# RESULTS=<folder> moves the results, dry_run=true prints the plans and a total (scripts/sweep_lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sweep_lib.sh
RESULTS=${RESULTS:-results/data_budget}
sweep experiment=demo_null results_dir="$RESULTS" "$@"
sweep experiment=data_budget results_dir="$RESULTS" "$@"
analyze results_dir="$RESULTS"
