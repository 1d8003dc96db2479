"""Transfer learning as a removal attack (SoK §V-C, Appendix XIII-C; Table III: black-box,
domain data).

The SoK starts from a model pre-trained on another domain (Google's ResNet-101 for Open
Images), replaces its output layer, freezes all but the last layer for the first 300 batches,
then trains the entire model for five epochs with SGD, dividing the learning rate by ten at
epochs three and four. The data is the source domain's, labelled by the victim (§V-C: "fine-
tuned on data from the source model's domain using labels predicted by the source model");
as for every extraction attack that is the whole training set without labels (App. XIV-A).

No pre-trained network of another domain is available offline, so the attacker pre-trains the
source architecture on the other-domain glyph dataset (`wrt.data.glyphs`: every character of
six non-Latin alphabets, rendered at the dataset's image size) once; the result is cached in
the artifact store, like a downloaded checkpoint. Budgets scale the paper's epochs, the 300
frozen batches and the pre-training epochs by the attack trainer's `epoch_scale` (a Table V
row: `budget.paper_epoch_scale` where the budget sets it, 1.0 at `budget=demo`); the lr
milestones are scaled with the epochs so that they keep their place in the schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from wrt.attacks.base import Attack, AttackContext, FineTuningParams
from wrt.attacks.toolkit import HeadOnly, domain_data
from wrt.data.glyphs import GLYPH_CLASSES, glyph_dataset
from wrt.params import param
from wrt.store import load_state
from wrt.train import StepDecay, Trainer


def trainer_spec(trainer: Trainer) -> dict:
    """What determines a trainer's result (for store keys)."""
    schedule = trainer.schedule
    return {"batch_size": trainer.batch_size, "optimizer": repr(trainer.optimizer),
            "schedule": [type(schedule).__name__, {k: repr(v) for k, v in sorted(vars(schedule).items())}]}


@dataclass(eq=False)
class TransferLearning(FineTuningParams, Attack):
    category = "model_extraction"
    paper_epochs = True  # a Table V row

    freeze_batches: int = param(300, low=1)
    milestones: tuple[float, ...] = (3, 4)  # epochs at which the learning rate decays by `gamma`
    gamma: float = param(0.1, low=0, high=1, low_open=True)
    pretrain_classes: int = param(GLYPH_CLASSES, low=1, high=GLYPH_CLASSES)  # the glyph characters available
    pretrain_per_class: int = param(100, low=1)
    pretrain_epochs: float = param(30, low=0, high=1000)  # 0: no pre-training, a randomly initialised start (a control)
    pretrain_seed: int = param(0)

    def __post_init__(self):
        self.milestones = list(self.milestones)
        super().__post_init__()

    def check(self):
        super().check()
        self.require(all(isinstance(m, (int, float)) and 0 < m <= self.epochs for m in self.milestones),
                     "milestones", f"epochs in (0, {self.epochs}]")

    # ---- the other-domain model -------------------------------------------------------------

    def pretrained(self, ctx: AttackContext) -> nn.Module:
        """The source architecture pre-trained on glyphs (head: one output per character); with
        `pretrain_epochs` 0, randomly initialised (transfer learning's schedule without the pre-training)."""
        model = ctx.build_model()
        if self.pretrain_epochs == 0:
            return model
        model.reset_classifier(self.pretrain_classes)
        channels, size, _ = ctx.data.image_shape
        epochs = ctx.trainer.scaled_epochs(self.pretrain_epochs)
        trainer = ctx.source_trainer
        spec = {"architecture": type(model).__name__,
                "parameters": sum(p.numel() for p in model.parameters()),
                "dataset": ctx.data.name, "image_shape": list(ctx.data.image_shape),
                "normalization": [list(ctx.data.mean), list(ctx.data.std)],
                "glyphs": {"classes": self.pretrain_classes, "per_class": self.pretrain_per_class,
                           "seed": self.pretrain_seed},
                "epochs": epochs, "trainer": trainer_spec(trainer), "seed": ctx.seed}

        def pretrain():
            images, labels, _ = glyph_dataset(self.pretrain_classes, self.pretrain_per_class, size=size,
                                              channels=channels, seed=self.pretrain_seed)
            trainer.fit(model, images, labels, epochs=epochs, scale_epochs=False,
                        augment={"crop_padding": max(1, size // 14)}, desc="pretrain (glyphs)")
            return model.state_dict(), {"glyph_samples": len(labels)}

        if ctx.store is None:
            pretrain()
        else:
            state, _, _ = ctx.store.get_or_create("pretrained", spec, pretrain)
            load_state(model, state, ctx.store.path("pretrained", spec))
        ctx.count(transfer_samples=self.pretrain_classes * self.pretrain_per_class)
        return model

    # ---- the attack -------------------------------------------------------------------------

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        images, truth = domain_data(ctx)
        labels = ctx.labeled(model, images, truth, "queried")
        surrogate = self.pretrained(ctx)
        torch.manual_seed(ctx.seed + 2)
        surrogate.reset_classifier(ctx.data.num_classes)
        trainer = ctx.trainer

        # 1) only the new last layer learns, for the first `freeze_batches` batches (the frozen
        #    layers' BatchNorm statistics stay fixed too)
        steps = max(1, round(self.freeze_batches * trainer.epoch_scale))
        steps_per_epoch = math.ceil(len(images) / trainer.batch_size)
        trainer.fit(HeadOnly(surrogate), images, labels, epochs=math.ceil(steps / steps_per_epoch),
                    scale_epochs=False, max_steps=steps, lr=self.lr,
                    params=surrogate.classifier.parameters(), augment=ctx.data.augment,
                    desc="transfer (last layer)")

        # 2) the entire model, lr ÷ 1/gamma at each milestone (scaled with the epochs)
        epochs = trainer.scaled_epochs(self.epochs)
        milestones = [m * epochs / self.epochs for m in self.milestones]
        trainer.fit(surrogate, images, labels, epochs=epochs, scale_epochs=False, lr=self.lr,
                    schedule=StepDecay(milestones, self.gamma), augment=ctx.data.augment,
                    desc="transfer (all layers)")
        return surrogate.eval()
