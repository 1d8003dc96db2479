#!/usr/bin/env bash
# The committed Table V reproduction (docs/results/table5_demo/): budget=demo, 3 seeds, restricted so that
# it fits 2 CPU cores in about two hours. What is restricted, and why, is in docs/results/table5_demo/README.md:
#   - 4 schemes (adi, content, uchida, dawn), each at its default config, except uchida, whose λ grid
#     (0.1, 1, 10; the SoK's example of the defender's choice) is played: λ = 10 against the cheap attacks'
#     grids, λ = 0.1 against input smoothing only (enough to record whether it embeds);
#   - every Table V attack; the attacker's grids of the cheap attacks are played (13 configurations),
#     the 5 extraction attacks run at their defaults;
#   - DAWN only against the extraction attacks (its preprocessing and modification cells were shown n.a.,
#     wrongly: since #29 they run on a model extracted from DAWN's wrapper, docs/schemes.md);
#   - thresholds: 20 null models × 100 key draws, of each scheme's default config.
# Rerunning skips finished runs. Extra arguments are passed to every wrt-run (e.g. budget=smoke);
# RESULTS=<folder> moves the results, dry_run=true prints the plans and a total (scripts/reproduce_lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/reproduce_lib.sh
RESULTS=${RESULTS:-results/table5_demo}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1   # one thread per job, two jobs: the run names the thread count
COMMON=(budget=demo results_dir="$RESULTS" progress=false hydra/launcher=local hydra.launcher.n_jobs=2)
EXTRACTION=knockoff_nets,retraining,smooth_retraining,cross_architecture_retraining,transfer_learning

sweep experiment=thresholds "${COMMON[@]}" 'hydra.sweeper.ablate=[]' \
    scheme=adi,content,uchida,dawn "$@"
for scheme in adi content uchida; do
    sweep experiment=table5 "${COMMON[@]}" 'hydra.sweeper.ablate=[attack]' \
        "hydra.sweeper.defaults_only=[$EXTRACTION]" scheme=$scheme seed=0,1,2 "$@"
done
CHEAP=input_smoothing,regularization,neural_cleanse,feature_permutation,weight_shifting
sweep experiment=table5 "${COMMON[@]}" 'hydra.sweeper.ablate=[attack]' \
    scheme=uchida scheme.lam=10 attack=$CHEAP seed=0,1,2 "$@"
sweep experiment=table5 "${COMMON[@]}" 'hydra.sweeper.ablate=[attack]' \
    scheme=uchida scheme.lam=0.1 attack=input_smoothing seed=0,1,2 "$@"
sweep experiment=table5 "${COMMON[@]}" 'hydra.sweeper.ablate=[attack]' \
    scheme=dawn attack=$EXTRACTION seed=0,1,2 "$@"
analyze results_dir="$RESULTS" reference=sok_cifar10
