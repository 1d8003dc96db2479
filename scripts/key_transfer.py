"""How a trigger-set key reaches a model that never saw it (issue #29, Table V on Fashion-MNIST).

A retraining surrogate learns only from the victim's answers to the task's images, yet for some schemes it
answers their key far above θ. This script measures what the victim's answers carry, on the campaign's stored
models (budget=demo, fp32, the store in $WRT_STORE; nothing is trained here), for a scheme's default configuration:

- the key, and a fresh key drawn with another seed (the same rule, other images): the watermark accuracy of the
  source model and of the marked model, i.e. whether the marked model learned the key's images or a rule;
- for a key with one target class (content, noise, unrelated, jia): per true class of the training images that
  retraining queries (the defender's and the attacker's), the mean softmax probability of the target class and the
  share answered with it, for both models.

    WRT_STORE=/var/tmp/wrt-store python scripts/key_transfer.py --scheme unrelated [--seeds 1] [--out FILE]
        [--overrides scheme.weight=4.0 ...]   # another of its configurations, spelled as the campaign's grid
"""

from __future__ import annotations

import argparse

import torch

from null_replay import campaign_run, stored_models, write_check
from wrt.config import params_of
from wrt.data.sources import FASHION_MNIST_CLASSES
from wrt.hardware import cpu_model

FRESH_KEY_SEED = 10_000  # + the run's seed: a key draw that no campaign run uses


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
    parser.add_argument("--scheme", required=True, help="a trigger-set scheme whose marked models the store holds")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 whose stored marked models to read")
    parser.add_argument("--overrides", nargs="*", default=[], help="config overrides, e.g. scheme.weight=4.0")
    parser.add_argument("--out", help="default: docs/results/table5_checks/key_transfer_<scheme>.json")
    args = parser.parse_args()
    run = campaign_run(args.scheme, overrides=tuple(args.overrides))
    scheme, data, trainer = run.scheme, run.data, run.finetune_trainer
    target = getattr(scheme, "target_class", None)  # adi draws a label per key image
    images = torch.cat([data.defender()[0], data.attacker()[0]])
    labels = torch.cat([data.defender()[1], data.attacker()[1]])
    seeds = []
    for seed in range(args.seeds):
        source, key, marked = stored_models(run, seed)
        fresh = scheme.keygen(source, data, torch.Generator().manual_seed(FRESH_KEY_SEED + seed))
        row = {"seed": seed}
        for name, model in (("source", source), ("marked", marked)):
            row[name] = {"key_wm_acc": float(scheme.extract(model, key, trainer)),
                         "fresh_key_wm_acc": float(scheme.extract(model, fresh, trainer))}
            if target is not None:
                answers = trainer.predict(model, images)
                row[name]["train_images_target_share"] = target_share(answers, target)
                row[name]["per_class"] = per_class(answers, labels, target, FASHION_MNIST_CLASSES)
        seeds.append(row)
        print(f"seed {seed}: key: source {row['source']['key_wm_acc']:.2f}, marked {row['marked']['key_wm_acc']:.2f}; "
              f"fresh key: source {row['source']['fresh_key_wm_acc']:.2f}, marked {row['marked']['fresh_key_wm_acc']:.2f}")
    out = {"scheme": args.scheme, "params": params_of(run.cfg.scheme), "target_class": target,
           "target_name": None if target is None else FASHION_MNIST_CLASSES[target], "queried_images": len(labels),
           "cpu": cpu_model(), "seeds": seeds}
    write_check(out, args.out or f"docs/results/table5_checks/key_transfer_{args.scheme}.json")


if __name__ == "__main__":
    main()
