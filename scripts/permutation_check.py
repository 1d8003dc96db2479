"""Which hidden-unit permutation moves a white-box key (issue #29, Table V on Fashion-MNIST).

Feature permutation (SoK §V-B) permutes the hidden units of every producer → consumer pair of the network; the
function is unchanged, the weights are not. This script measures, on the campaign's stored marked models of a
scheme's default configuration (budget=demo, fp32, the store in $WRT_STORE; nothing is trained), the watermark
accuracy after permuting each pair alone and after permuting all of them (the campaign's attack), each with
`--draws` random permutations, and checks that the test accuracy does not move.

    WRT_STORE=/var/tmp/wrt-store python scripts/permutation_check.py --scheme uchida [--seeds 1] [--draws 5]
"""

from __future__ import annotations

import argparse
import copy

import torch

from null_replay import campaign_run, stored_models, write_check
from wrt.attacks.toolkit import classifier_of, hidden_pairs, permute_pair
from wrt.config import params_of
from wrt.hardware import cpu_model


def permuted(model: torch.nn.Module, pair_names: set[str], generator: torch.Generator) -> torch.nn.Module:
    """A copy of `model` whose pairs named in `pair_names` (by producer) have randomly permuted units."""
    model = copy.deepcopy(model)
    for pair in hidden_pairs(classifier_of(model, "feature_permutation"), "feature_permutation"):
        if pair.producer_name in pair_names:
            permute_pair(pair, torch.randperm(pair.units, generator=generator))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheme", required=True, help="a scheme whose marked models the store holds")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 whose stored marked models to read")
    parser.add_argument("--draws", type=int, default=5, help="random permutations per variant")
    parser.add_argument("--out", help="default: docs/results/table5_checks/permutation_<scheme>.json")
    args = parser.parse_args()
    run = campaign_run(args.scheme)
    scheme, data, trainer = run.scheme, run.data, run.finetune_trainer
    test_x, test_y = data.test_x, data.test_y
    seeds = []
    for seed in range(args.seeds):
        source, key, marked = stored_models(run, seed)
        pairs = hidden_pairs(classifier_of(marked, "feature_permutation"), "feature_permutation")
        variants = {f"{p.producer_name} → {p.consumer_name}": {p.producer_name} for p in pairs}
        variants["all pairs (the campaign's attack)"] = {p.producer_name for p in pairs}
        generator = torch.Generator().manual_seed(seed)
        row = {"seed": seed, "marked_wm_acc": float(scheme.extract(marked, key, trainer)),
               "marked_test_acc": trainer.accuracy(marked, test_x, test_y), "permuted": {}}
        for label, names in variants.items():
            models = [permuted(marked, names, generator) for _ in range(args.draws)]
            row["permuted"][label] = {
                "wm_acc": [round(float(scheme.extract(m, key, trainer)), 4) for m in models],
                "max_test_acc_change": max(abs(trainer.accuracy(m, test_x, test_y) - row["marked_test_acc"])
                                           for m in models)}
            print(f"seed {seed}, {args.scheme}, permuting {label}: wm acc {row['permuted'][label]['wm_acc']}")
        seeds.append(row)
    out = {"scheme": args.scheme, "params": params_of(run.cfg.scheme), "draws": args.draws, "cpu": cpu_model(),
           "seeds": seeds}
    write_check(out, args.out or f"docs/results/table5_checks/permutation_{args.scheme}.json")


if __name__ == "__main__":
    main()
