"""Neural Cleanse with a trigger per (source, target) pair, the SoK toolbox's variant (issue #29, Table V).

Our Neural Cleanse follows Wang et al. and the SoK's text (Appendix XIII-B): one trigger per target class,
reverse-engineered on the attacker's images of every class, and unlearning of the smallest one stamped on 20 % of
the attacker's images. The SoK toolbox's CIFAR-10 config
(`configs/cifar10/attack_configs/neural_cleanse_unlearning.yaml`) runs its *partial* variant instead:

1. a trigger (mask m, pattern p) for every ordered pair of classes s ≠ t, reverse-engineered on the images of
   class s only (4 epochs, λ = 0.01);
2. the 10 pairs of the smallest |m·p|₁ reverse-engineered again for 4 + 8 epochs, and the smallest kept;
3. unlearning: the class-s images with m·p added (clipped to [0, 1]) join the attacker's data with their labels,
   and the model is fine-tuned on them for the attack's 5 epochs.

This script runs that variant on the campaign's stored marked models of each given scheme configuration
(budget=demo, fp32, the store in $WRT_STORE; the source and marked models are never trained here), with the
campaign's trigger sample (`reverse_samples` attacker images), mask initialisation and optimiser, at each
unlearning rate of the attack's grid, and writes the watermark accuracy and the stealing loss after each.

    WRT_STORE=/var/tmp/wrt-store python scripts/nc_pairs_check.py --scheme blackmarks \
        --config scheme.lam=0.01 --config scheme.lam=1.0
"""

from __future__ import annotations

import argparse
import copy

import torch

from null_replay import campaign_run, stored_models, write_check
from wrt.attacks.base import AttackContext
from wrt.attacks.neural_cleanse import Trigger, reverse_engineer
from wrt.attacks.toolkit import attacker_data, classifier_of, fine_tune
from wrt.data.loader import to_float
from wrt.hardware import cpu_model

REFINED = 10        # the toolbox's `candidate_triggers = triggers[:num_classes]`
REFINE_EPOCHS = 8   # its `finetune_epochs`, added to the first search's epochs


def added_trigger(trigger: Trigger) -> torch.Tensor:
    """m·p, what the toolbox adds to an image (and orders its triggers by)."""
    with torch.no_grad():
        return trigger.mask() * torch.sigmoid(trigger.pattern_logit)


def trigger_norm(trigger: Trigger) -> float:
    """The toolbox's ordering: |m·p|₁."""
    return float(added_trigger(trigger).abs().sum())


def smallest_pair_trigger(ctx: AttackContext, net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                          epochs: float, lam: float) -> tuple[int, int, Trigger, list[dict]]:
    """Steps 1 and 2: the (source, target, trigger) of the smallest refined pair trigger, and every pair's norm."""
    found = {}
    for source in range(net.num_classes):
        own = images[labels == source]
        for target in range(net.num_classes):
            if target != source and len(own):
                found[source, target] = reverse_engineer(ctx, net, own, target, epochs=epochs, lam=lam)
    norm = {pair: trigger_norm(trig) for pair, trig in found.items()}
    norms = [{"source": s, "target": t, "norm": round(n, 3)} for (s, t), n in norm.items()]
    candidates = sorted(found, key=norm.get)[:REFINED]
    refined = {(s, t): reverse_engineer(ctx, net, images[labels == s], t, epochs=epochs + REFINE_EPOCHS, lam=lam)
               for s, t in candidates}
    source, target = min(refined, key=lambda pair: trigger_norm(refined[pair]))
    return source, target, refined[source, target], norms


def unlearning_set(images: torch.Tensor, labels: torch.Tensor, source: int,
                   trigger: Trigger) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 3's data: the attacker's images and labels, then its class-`source` images with m·p added (clipped
    to [0, 1]), labelled `source`."""
    stamped = (to_float(images[labels == source]) + added_trigger(trigger)).clamp(0, 1)
    return (torch.cat([to_float(images), stamped]),
            torch.cat([labels, torch.full((len(stamped),), source, dtype=labels.dtype)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheme", required=True, help="a scheme whose marked models the store holds")
    parser.add_argument("--config", action="append", default=[], metavar="OVERRIDE",
                        help="a scheme configuration to check, e.g. scheme.lam=0.01 (repeatable; default: the default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="default: docs/results/table5_checks/nc_pairs_<scheme>.json")
    args = parser.parse_args()
    rows = []
    for override in args.config or [None]:
        run = campaign_run(args.scheme, "neural_cleanse", (override,) if override else ())
        attack, trainer, test_x, test_y = run.attack, run.finetune_trainer, run.data.test_x, run.data.test_y
        _, key, marked = stored_models(run, args.seed)
        ctx = AttackContext(run.data, run.attack_trainer, run.source_trainer, lambda: run.new_model(args.seed + 1),
                            run.scheme, args.seed, store=run.store)
        net = classifier_of(marked, "neural_cleanse")
        images, labels = attacker_data(ctx, marked, "queried")
        sample = torch.randperm(len(images), generator=ctx.generator())[:attack.reverse_samples]
        source, target, trigger, norms = smallest_pair_trigger(ctx, net, to_float(images[sample]), labels[sample],
                                                               attack.reverse_epochs, attack.lam)
        train_x, train_y = unlearning_set(images, labels, source, trigger)
        stamped = len(train_x) - len(images)
        marked_test = trainer.accuracy(marked, test_x, test_y)
        row = {"config": override or "default", "marked_wm_acc": float(run.scheme.extract(marked, key, trainer)),
               "marked_test_acc": marked_test, "pair": {"source": source, "target": target,
                                                        "norm": round(trigger_norm(trigger), 3),
                                                        "mask_l1": round(float(trigger.mask().detach().sum()), 2)},
               "stamped_images": stamped, "pair_norms": norms, "unlearning": []}
        for lr in sorted({step["lr"] for step in run.cfg.attack.ablation if step["method"] == "unlearning"}):
            model = copy.deepcopy(marked)
            fine_tune(ctx, model, train_x, train_y, epochs=attack.epochs, lr=lr, desc="neural_cleanse (pairs)")
            after = {"lr": lr, "wm_acc": round(float(run.scheme.extract(model, key, trainer)), 4),
                     "stealing_loss": round(marked_test - trainer.accuracy(model, test_x, test_y), 4)}
            row["unlearning"].append(after)
            print(f"{args.scheme} {row['config']}, seed {args.seed}: pair {source} → {target}, unlearning lr {lr}: "
                  f"wm acc {after['wm_acc']}, stealing loss {after['stealing_loss']}")
        rows.append(row)
    write_check({"scheme": args.scheme, "seed": args.seed, "cpu": cpu_model(), "configs": rows},
                args.out or f"docs/results/table5_checks/nc_pairs_{args.scheme}.json")


if __name__ == "__main__":
    main()
