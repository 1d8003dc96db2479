"""Key-source leak experiment (issue #16): does retraining carry the content and noise
watermarks into the surrogate because the *queried labels* carry them, or simply because the
clean images the keys were made from are among the retraining queries?

For each scheme (content, noise) and seed, the marked model is built as in a normal run
(wrt.pipeline.Run, budget=smoke by default), then retraining runs twice against it: on the usual
query set (the whole training set), and on the query set without the key's source images (the
clean training images the key images were made from: key = trigger(source)). Writes key_source_leak.csv and .md.

    PYTHONPATH=. python scripts/key_source_leak.py [--seeds 0 1 2] [--budget smoke] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from wrt.attacks.base import AttackContext
from wrt import CONFIG_DIR
from wrt.config import build
from wrt.data.loader import to_float
from wrt.pipeline import Run, attacker_data, load_data


def key_sources(data, scheme, seed: int, key_images: torch.Tensor) -> torch.Tensor:
    """Training-set index of each key image's source image. Content and noise keys are
    `trigger(sample_class(defender data, source_class, key_size, Generator(seed)))`
    (wrt.schemes.content), so the same first draw from the key's generator gives the sources;
    checked: the scheme's trigger, drawn on from the same generator, turns them into the key."""
    defender_idx, _ = data.split_indices()
    pool = (data.train_y[defender_idx] == scheme.source_class).nonzero().flatten()
    generator = torch.Generator().manual_seed(seed)
    chosen = pool[torch.randperm(len(pool), generator=generator)[:scheme.key_size]].sort().values
    idx = defender_idx[chosen]
    triggered, _ = scheme.trigger(to_float(data.train_x[idx]), generator)
    if not torch.equal(triggered, key_images):
        raise RuntimeError(f"the recovered sources do not give {type(scheme).__name__}'s key images")
    return idx


def run_one(scheme_name: str, seed: int, budget: str, labels: str, store: str) -> dict:
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"scheme={scheme_name}", "attack=retraining", f"budget={budget}",
                                           f"seed={seed}", f"attack.labels={labels}", f"store_dir={store}",
                                           "progress=false"])
    scheme, attack = build(cfg.scheme), build(cfg.attack)
    run = Run(cfg, load_data(cfg), scheme, attack)
    source, _, _ = run.source_model(cfg.seed)
    key = run.key(source)
    marked, _, _ = run.embed(source, key)
    deployed = scheme.wrap(marked, key)
    idx = key_sources(run.data, scheme, cfg.seed, key.tensors["images"])
    keep = torch.ones(len(run.data.train_x), dtype=torch.bool)
    keep[idx] = False
    without = dataclasses.replace(run.data, train_x=run.data.train_x[keep], train_y=run.data.train_y[keep])
    row = {"scheme": scheme_name, "seed": seed, "budget": budget, "labels": labels,
           "marked_wm_acc": run.evaluate(deployed, key).wm_acc,
           "key_sources_removed": int((~keep).sum())}
    for variant, data in (("with_sources", run.data), ("without_sources", without)):
        ctx = AttackContext(data, run.attack_trainer, run.source_trainer, lambda: run.new_model(cfg.seed + 1),
                            scheme, cfg.seed, store=None, attacker_data=attacker_data(cfg))
        surrogate = attack(copy.deepcopy(deployed), ctx)
        ev = run.evaluate(surrogate, key)
        row[f"surrogate_wm_acc_{variant}"], row[f"surrogate_test_acc_{variant}"] = ev.wm_acc, ev.test_acc
    print(row, flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemes", nargs="+", default=["content", "noise"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", default="smoke")
    parser.add_argument("--labels", nargs="+", default=["soft", "top1"])
    parser.add_argument("--store", default="store")
    parser.add_argument("--out", default="docs/results/key_source_leak")
    args = parser.parse_args()
    rows = [run_one(s, seed, args.budget, labels, args.store)
            for labels in args.labels for s in args.schemes for seed in args.seeds]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "key_source_leak.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| scheme | labels | seed | marked wm | surrogate wm (with key sources) | surrogate wm (without) "
             "| surrogate test (with / without) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scheme']} | {r['labels']} | {r['seed']} | {r['marked_wm_acc']:.3f} "
                     f"| {r['surrogate_wm_acc_with_sources']:.3f} | {r['surrogate_wm_acc_without_sources']:.3f} "
                     f"| {r['surrogate_test_acc_with_sources']:.3f} / {r['surrogate_test_acc_without_sources']:.3f} |")
    (out / "key_source_leak.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
