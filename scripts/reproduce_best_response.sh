#!/usr/bin/env bash
# Beyond the SoK's grid (issue #27; docs/results/best_response_demo/README.md): an adaptive attacker searches
# the attack's parameters (experiment=best_response: Optuna's TPE, seeded, ≤ 20 trials) against 3 Table V
# cells that the committed grid marks ✓ (docs/results/table5_restricted/robustness.md) and whose attack has
# continuous parameters, on seeds 0 and 1; then wrt-analyze's "grid vs search" table puts each search's best
# response beside the grid's. The cells:
#   uchida (λ = 10) × regularization     weight decay on a log scale: Table V's only ✓ of a fine-tuning attack
#                                         against a weight watermark (equilibrium wm acc 1.00)
#   adi × Neural Cleanse unlearning       the unlearning rate on a log scale (Table V's row is unlearning):
#                                         the ✓ closest to removal (equilibrium wm acc 0.32, θ 0.16)
#   content × input smoothing             kernel and Gaussian σ (the appendix's space; Table V's row keeps
#                                         the Gaussian kernel only): the cheapest cell, no training
# Each study is one scheme configuration on one seed (θ: the null runs the script copies, or theta=<θ>).
#
# Numerics of the Table V campaign (scripts/reproduce_table5_demo.sh): budget=demo, fp32, one thread, so the
# grid's runs and the trials share run names' numerics and one θ. Before its sweeps the script copies the
# grid's runs of these cells and the schemes' null runs from GRID (default docs/results/table5_demo, the
# campaign's) into RESULTS/grid/runs/: the analysis of RESULTS then has the grid, θ and the searches.
#
#   WRT_STORE=/var/tmp/wrt-store nice -n 10 bash scripts/reproduce_best_response.sh > best_response.log 2>&1 &
#   bash scripts/reproduce_best_response.sh dry_run=true      # the plans and one total, no analysis
#
# Environment: RESULTS (default docs/results/best_response_demo), GRID, TRIALS (default 20), SCHEMES (the cells
# of these schemes only, default: uchida adi content). Extra arguments
# are passed to every wrt-run (e.g. theta=0.59); `seed=a,b` replaces the seed list.
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=() SEEDS="0,1"
for arg in "$@"; do
    if [[ $arg == seed=* ]]; then SEEDS=${arg#seed=}; else ARGS+=("$arg"); fi
done
source scripts/sweep_lib.sh "${ARGS[@]}"
RESULTS=${RESULTS:-docs/results/best_response_demo}
GRID=${GRID:-docs/results/table5_demo}
TRIALS=${TRIALS:-20}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
COMMON=(experiment=best_response budget=demo precision=fp32 results_dir="$RESULTS" progress=false
        hydra.sweeper.n_trials="$TRIALS")
CELLS=("scheme=uchida scheme.lam=10 attack=regularization"
       "scheme=adi attack=neural_cleanse attack.method=unlearning"
       "scheme=content attack=input_smoothing")
SCHEMES=${SCHEMES:-uchida adi content}
CHOSEN=()
for cell in "${CELLS[@]}"; do
    scheme=$(sed -E 's/.*scheme=([a-z_]+).*/\1/' <<<"$cell")
    [[ " $SCHEMES " == *" $scheme "* ]] && CHOSEN+=("$cell")
done
[[ ${#CHOSEN[@]} -gt 0 ]] || { echo "SCHEMES=$SCHEMES: no cell; the cells' schemes are uchida, adi and content" >&2; exit 2; }

if ! $DRY_RUN; then
    mkdir -p "$RESULTS/grid/runs"
    for cell in "${CHOSEN[@]}"; do
        scheme=$(sed -E 's/.*scheme=([a-z_]+).*/\1/' <<<"$cell") attack=$(sed -E 's/.*attack=([a-z_]+).*/\1/' <<<"$cell")
        for run in "$GRID"/runs/null_"$scheme"_none_*_demo_s*.json "$GRID"/runs/marked_"$scheme"_"$attack"_*_demo_s*.json; do
            if [[ -e $run && ! -e $RESULTS/grid/runs/${run##*/} ]]; then cp "$run" "$RESULTS/grid/runs/"; fi
        done
    done
fi
for seed in ${SEEDS//,/ }; do
    for cell in "${CHOSEN[@]}"; do
        # shellcheck disable=SC2086  # a cell is several overrides
        sweep "${COMMON[@]}" $cell seed="$seed" "${ARGS[@]}"
    done
done
analyze results_dir="$RESULTS"
