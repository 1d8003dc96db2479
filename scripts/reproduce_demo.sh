#!/usr/bin/env bash
# The `make run` demonstration: null runs, the sweep, then the analysis (ends with report.html).
# Rerunning skips finished runs and reuses the store; extra arguments are passed to wrt-run;
# RESULTS=<folder> moves the results, dry_run=true prints the plans and a total (scripts/sweep_lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sweep_lib.sh
RESULTS=${RESULTS:-results/demo}
sweep experiment=demo_null results_dir="$RESULTS" "$@"
sweep experiment=demo results_dir="$RESULTS" "$@"
analyze results_dir="$RESULTS"
