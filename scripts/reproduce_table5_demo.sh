#!/usr/bin/env bash
# Table V on Fashion-MNIST, the whole configuration game (issue #29; docs/results/table5_demo/README.md):
# budget=demo, every scheme configuration × every attack configuration of experiment=table5, seeds 0, 1, 2,
# and the thresholds the game needs (experiment=thresholds: 20 null models × 100 key draws of every scheme
# configuration). It costs tens of core-hours, so it is a campaign: stop it at any time and rerun it, on this or
# another machine; it computes only the runs that are missing (the committed ones included).
#
# Order: the thresholds, then seed 0 of every scheme, then seeds 1 and 2. One sweep per (seed, scheme) block,
# so the blocks finish whole; seed 0's analysis comes after its last block.
# One numerics for every machine: fp32, one thread per job, two jobs (the run names record all three).
#
#   WRT_STORE=/var/tmp/wrt-store nice -n 10 bash scripts/reproduce_table5_demo.sh > table5.log 2>&1 &
#   bash scripts/reproduce_table5_demo.sh dry_run=true        # the plans and one total, no analysis
#
# Environment: RESULTS (default docs/results/table5_demo: run JSONs land in its runs/, the analysis in its
# analysis/), SCHEMES (space-separated, default all 13), RESTRICT: `extraction` (the default) runs the five
# extraction attacks against each scheme's default configuration only, `none` plays them against every scheme
# configuration too. The whole game's plan estimated ~62 core-hours (2026-12-05, Intel Xeon with AMX, 576
# images/s per thread), above the 40 that issue #29 allows before this restriction. Extra arguments are passed
# to every wrt-run; `seed=a,b` replaces the seed list (and limits the null models to those seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=() SEEDS="0,1,2" NULL_SEEDS=()
for arg in "$@"; do
    if [[ $arg == seed=* ]]; then SEEDS=${arg#seed=} NULL_SEEDS=("$arg"); else ARGS+=("$arg"); fi
done
source scripts/sweep_lib.sh "${ARGS[@]}"
RESULTS=${RESULTS:-docs/results/table5_demo}
SCHEMES=${SCHEMES:-adi content noise unrelated jia frontier_stitching blackmarks dawn deepsigns_bb uchida deepmarks deepsigns greedy_residuals}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
COMMON=(budget=demo precision=fp32 results_dir="$RESULTS" progress=false hydra/launcher=local hydra.launcher.n_jobs=2)
EXTRACTION=knockoff_nets,retraining,smooth_retraining,cross_architecture_retraining,transfer_learning
RESTRICT=${RESTRICT:-extraction}
[[ $RESTRICT == extraction || $RESTRICT == none ]] || { echo "RESTRICT=$RESTRICT: expected extraction or none" >&2; exit 2; }
[[ $RESTRICT == extraction ]] && COMMON+=("hydra.sweeper.defaults_only=[$EXTRACTION]")

sweep experiment=thresholds "${COMMON[@]}" "scheme=${SCHEMES// /,}" "${NULL_SEEDS[@]}" "${ARGS[@]}"
for seed in ${SEEDS//,/ }; do
    for scheme in $SCHEMES; do
        sweep experiment=table5 "${COMMON[@]}" scheme="$scheme" seed="$seed" "${ARGS[@]}"
    done
    if [[ $seed == 0 ]] && ! $DRY_RUN; then
        .venv/bin/wrt-analyze results_dir="$RESULTS" reference=sok_cifar10 || echo "seed 0's analysis failed" >&2
    fi
done
analyze results_dir="$RESULTS" reference=sok_cifar10
