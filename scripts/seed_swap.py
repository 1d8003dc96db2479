"""Which half of a seed splits a Table V cell: the marked model or the attacker's randomness (issue #29).

A cell is ±(k of n) when the Eq. 6 equilibrium of some seeds' runs removes the watermark and that of others does
not. A run's seed fixes both sides: the defender's (source model, key, embedding) and the attacker's (its
trainer's shuffling, a fresh model's initialisation, its sample of the attacker's data, a pre-trained start).
This script crosses them at one (scheme config, attack config) pair: the stored marked model of each model seed,
attacked with the attack seeded by each attack seed, with the campaign's numerics (budget=demo, fp32, one
thread, the store in $WRT_STORE). A model seed whose marked model the store lacks (the campaign made it on another
machine) is trained and embedded here, so its floats are this CPU's. For each combination it writes the
watermark accuracy, the stealing loss and whether the attack removed the watermark (SoK §VII-A: wm acc below θ
at a stealing loss of at most 5 points). Where the campaign ran a combination (model seed = attack seed) on this
CPU from the stored model, its committed run is read instead of recomputed (unless --recompute); where it ran it
on another CPU, its result is written beside the one computed here.

    WRT_STORE=/var/tmp/wrt-store python scripts/seed_swap.py --scheme noise --attack retraining \
        --config scheme.lr=0.001 --config scheme.sigma=0.4
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
from pathlib import Path

import torch

from null_replay import campaign_run, write_check
from wrt.analysis.game import attack_succeeds
from wrt.config import as_dict
from wrt.hardware import cpu_model
from wrt.pipeline import without_search
from wrt.schemes.base import Key

CAMPAIGN = Path("docs/results/table5_demo")


def campaign_result(runs_dir: Path, scheme: dict, attack: dict, seed: int) -> dict | None:
    """The committed, finished fp32 run of this scheme config, attack config and seed (search blocks aside), if
    any: its surrogate's wm acc, stealing loss and CPU."""
    for path in sorted(runs_dir.glob(f"marked_{scheme['name']}_{attack['name']}_*_s{seed}_*.json")):
        run = json.loads(path.read_text())
        if (run.get("status") == "ok" and run["seed"] == seed and run.get("precision") == "fp32"
                and without_search(run["config"]["scheme"]) == without_search(scheme)
                and without_search(run["config"]["attack"]) == without_search(attack)):
            return {"wm_acc": run["surrogate"]["wm_acc"], "stealing_loss": run["stealing_loss"], "cpu": run["cpu"],
                    "from": f"campaign run {path.stem}"}
    return None


def marked_model(run) -> tuple[Key, torch.nn.Module, bool]:
    """The key and marked model of the run's seed (trained and embedded here where the store lacks them), and
    whether the store had the marked model."""
    stored = run.store.path("marked", run.embed_spec()).exists()
    source = run.source_model(run.cfg.seed)[0]
    key = run.key(source)
    return key, run.embed(source, key)[0], stored


def attacked(defender, key: Key, marked: torch.nn.Module, marked_test_acc: float, attacker) -> dict:
    """`marked` (the defender's run's model) attacked by the attacker's run (seeded by its seed), evaluated as the
    pipeline does."""
    surrogate = attacker.attack(copy.deepcopy(marked), attacker.attack_context(attacker.attack_trainer))
    after = defender.evaluate(surrogate, key)
    return {"wm_acc": after.wm_acc, "stealing_loss": marked_test_acc - after.test_acc, "from": "computed"}


def split_follows(removed: dict[tuple[int, int], bool]) -> str:
    """Which seed a split follows, from `removed[model seed, attack seed]` over a full grid of both: the attack
    seed (each column agrees with itself), the marked model (each row does), both (rows and columns each agree:
    one seed everywhere), neither (no split), or mixed."""
    models, attacks = sorted({m for m, _ in removed}), sorted({a for _, a in removed})
    if len(set(removed.values())) == 1:
        return "no split"
    rows_agree = all(len({removed[m, a] for a in attacks}) == 1 for m in models)
    columns_agree = all(len({removed[m, a] for m in models}) == 1 for a in attacks)
    return {(True, False): "the marked model", (False, True): "the attacker's randomness"}.get(
        (rows_agree, columns_agree), "both (neither seed alone)")


def threshold(analysis: Path, scheme: str) -> float:
    """The campaign's θ for `scheme` (its analysis' thresholds table)."""
    with open(analysis / "thresholds.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["scheme"] == scheme:
                return float(row["threshold"])
    raise SystemExit(f"no θ for scheme {scheme!r} in {analysis / 'thresholds.csv'}; run wrt-analyze first")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheme", required=True)
    parser.add_argument("--attack", required=True)
    parser.add_argument("--config", action="append", default=[], metavar="OVERRIDE",
                        help="the cell's equilibrium configuration, e.g. scheme.sigma=0.4 (repeatable)")
    parser.add_argument("--model-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--attack-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--recompute", action="store_true", help="compute the campaign's own combinations too")
    parser.add_argument("--out", help="default: docs/results/table5_checks/seed_swap_<scheme>_<attack>.json")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the campaign's jobs run one thread each (part of their numerics)
    runs = {}

    def run_of(seed: int):
        if seed not in runs:
            runs[seed] = campaign_run(args.scheme, args.attack, (*args.config, f"seed={seed}"))
        return runs[seed]

    if run_of(0).scheme.active:
        raise SystemExit(f"scheme {args.scheme!r} is active (its white-box cells attack an extracted model); "
                         "allowed: a passive scheme")
    theta = threshold(CAMPAIGN / "analysis", args.scheme)
    scheme_cfg, attack_cfg = as_dict(run_of(0).cfg.scheme), as_dict(run_of(0).cfg.attack)
    grid, removed = [], {}
    for m in args.model_seeds:
        key, marked, stored = marked_model(run_of(m))
        marked_test_acc = run_of(m).evaluate(marked, key).test_acc
        for a in args.attack_seeds:
            campaign = campaign_result(CAMPAIGN / "runs", scheme_cfg, attack_cfg, m) if m == a else None
            # the campaign's run attacked the stored model when this CPU made both
            reused = bool(campaign) and stored and campaign["cpu"] == cpu_model() and not args.recompute
            result = campaign if reused else attacked(run_of(m), key, marked, marked_test_acc, run_of(a))
            removed[m, a] = bool(attack_succeeds(result["wm_acc"], theta, result["stealing_loss"]))
            grid.append({"model_seed": m, "attack_seed": a, "wm_acc": round(result["wm_acc"], 4),
                         "stealing_loss": round(result["stealing_loss"], 4), "removed": removed[m, a],
                         "from": result["from"], "campaign": None if reused else campaign})
            beside = (f"; the campaign's run on {campaign['cpu']}: wm acc {campaign['wm_acc']:.2f}"
                      if campaign and not reused else "")
            print(f"{args.scheme} × {args.attack}: marked model of seed {m}, attack seed {a}: wm acc "
                  f"{grid[-1]['wm_acc']} (θ {theta:.3f}), stealing loss {grid[-1]['stealing_loss']}, "
                  f"{'removed' if removed[m, a] else 'kept'} ({result['from']}{beside})")
    follows = split_follows(removed)
    print(f"the split follows: {follows}")
    write_check({"scheme": args.scheme, "attack": args.attack, "configs": args.config, "theta": theta,
                 "cpu": cpu_model(), "threads": torch.get_num_threads(), "grid": grid, "split_follows": follows},
                args.out or f"docs/results/table5_checks/seed_swap_{args.scheme}_{args.attack}.json")


if __name__ == "__main__":
    main()
