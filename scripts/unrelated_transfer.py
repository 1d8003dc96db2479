"""How Unrelated's key reaches a surrogate that never saw it (issue #29, Table V on Fashion-MNIST).

A retraining surrogate is trained only on the victim's softmax answers to Fashion-MNIST images, yet it answers
Unrelated's key (rendered glyphs → the target class) far above θ. This script measures what the victim's answers
carry, on the campaign's stored models (budget=demo, fp32, the store in $WRT_STORE; nothing is trained here):

- the key's glyphs, and fresh glyphs the key never held (another seed): the share each model answers with the
  target class;
- the Fashion-MNIST training images the surrogate is queried with: per true class, the mean softmax probability
  of the target class and the share answered with it (top-1), for the source model and the marked model.

    WRT_STORE=/var/tmp/wrt-store python scripts/unrelated_transfer.py [--seeds 1] [--out ...json]
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch

from null_replay import campaign_run, stored_source
from wrt.data.glyphs import glyph_dataset
from wrt.data.sources import FASHION_MNIST_CLASSES
from wrt.data.loader import to_float
from wrt.hardware import cpu_model
from wrt.store import atomic_write_json


def target_share(logits: torch.Tensor, target: int) -> float:
    return float((logits.argmax(1) == target).float().mean())


def per_class(logits: torch.Tensor, labels: torch.Tensor, target: int, classes: list[str]) -> dict:
    """Per true class: mean softmax probability of `target`, share answered with `target`."""
    probs = logits.softmax(1)[:, target]
    top1 = logits.argmax(1) == target
    return {name: {"p_target": round(float(probs[labels == c].mean()), 4),
                   "top1_target": round(float(top1[labels == c].float().mean()), 4)}
            for c, name in enumerate(classes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 whose stored marked models to read")
    parser.add_argument("--out", default="docs/results/table5_checks/unrelated_transfer.json")
    args = parser.parse_args()
    run = campaign_run("unrelated")
    scheme, data, trainer = run.scheme, run.data, run.finetune_trainer
    target, classes = scheme.target_class, FASHION_MNIST_CLASSES
    images = torch.cat([data.defender()[0], data.attacker()[0]])
    labels = torch.cat([data.defender()[1], data.attacker()[1]])
    seeds = []
    for seed in range(args.seeds):
        run.cfg.seed = seed
        source = stored_source(run, seed)
        marked_path = run.store.path("marked", run.embed_spec())
        if not marked_path.exists():
            raise SystemExit(f"the marked unrelated model of seed {seed} is not in {run.cfg.store_dir} "
                             f"(run the campaign's unrelated block first)")
        key = run.key(source)
        marked = run.embed(copy.deepcopy(source), key)[0]
        fresh, _, _ = glyph_dataset(scheme.glyph_classes, 1, data.image_shape[1], data.image_shape[0], seed=10_000 + seed)
        row = {"seed": seed}
        for name, model in (("source", source), ("marked", marked)):
            answers = trainer.predict(model, images)
            row[name] = {"key_target_share": target_share(trainer.predict(model, key.tensors["images"]), target),
                         "fresh_glyphs_target_share": target_share(trainer.predict(model, to_float(fresh)), target),
                         "train_images_target_share": target_share(answers, target),
                         "per_class": per_class(answers, labels, target, classes)}
        seeds.append(row)
        print(f"seed {seed}: key → {classes[target]}: source {row['source']['key_target_share']:.2f}, "
              f"marked {row['marked']['key_target_share']:.2f}; fresh glyphs: source "
              f"{row['source']['fresh_glyphs_target_share']:.2f}, marked {row['marked']['fresh_glyphs_target_share']:.2f}")
    out = {"scheme": "unrelated", "target_class": target, "target_name": classes[target], "queried_images": len(labels),
           "cpu": cpu_model(), "seeds": seeds}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out), out)
    print(args.out)


if __name__ == "__main__":
    main()
