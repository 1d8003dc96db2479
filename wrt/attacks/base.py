"""The attack protocol.

An attack takes the (marked) model and an `AttackContext` and returns the surrogate model.
Input-preprocessing attacks return the model wrapped behind their preprocessing. The
attacker's capabilities (SoK §IV, Table III) are what the context offers: the attacker's third
of the labeled training data, the whole training set unlabeled (model extraction), the trainer,
and a factory for fresh models of the source architecture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from wrt.data import Dataset
from wrt.data.glyphs import GLYPH_CLASSES, glyph_dataset
from wrt.params import EPOCHS, LR, Configurable, param
from wrt.train import Trainer
from wrt.validation import InvalidParameter, require

LABEL_SOURCES = ("protocol", "ground_truth", "queried")
DOMAINS = ("in", "out", "none")
USAGE = ("queries", "labeled_samples", "unlabeled_samples", "transfer_samples")  # `AttackContext.count`


@dataclass
class AttackerData(Configurable):
    """The attacker's data budget (SoK §VIII-E, Fig. 3): how much of the data an attack's
    protocol grants it, where the images come from and who labels them.

    - `fraction` (0, 1] of the pool the attack draws from (its third of the training set for
      fine-tuning-type attacks, the whole training set for extraction, the transfer set for
      Knockoff Nets), or `count` images (overrides `fraction`);
    - `labels`: `protocol` (the attack's own: ground truth or the victim's labels),
      `ground_truth`, or `queried` (the victim's top-1 labels);
    - `domain`: `in` (the task's images), `out` (other-domain images: rendered glyphs,
      labelled by the victim) or `none` (data-free attacks only).
    """

    group = "attacker_data"

    fraction: float = param(1.0, low=0, high=1, low_open=True)
    count: int | None = param(None, low=1)
    labels: str = param("protocol", choices=LABEL_SOURCES)
    domain: str = param("in", choices=DOMAINS)

    def check(self):
        super().check()
        self.require(not (self.domain == "out" and self.labels == "ground_truth"), "labels",
                     "protocol or queried with domain=out (other-domain images have no task labels)")

    def size(self, available: int) -> int:
        """How many of `available` images the budget grants (at least one)."""
        wanted = self.count if self.count is not None else round(self.fraction * available)
        return max(1, min(available, wanted))

    def ground_truth(self, protocol: str) -> bool:
        """Whether labels are the true ones, given the attack's own choice (`ground_truth` or
        `queried`); other-domain images have no true labels of the task."""
        if self.domain == "out":
            return False
        return (protocol if self.labels == "protocol" else self.labels) == "ground_truth"


@dataclass
class AttackContext:
    data: Dataset
    trainer: Trainer  # fine-tuning trainer (budget-scaled epochs)
    source_trainer: Trainer  # the source model's training setup (retraining from scratch)
    build_model: Callable[[], nn.Module]  # a fresh, untrained model of the source architecture
    scheme: object = None  # the defender's scheme class and parameters (not its key)
    seed: int = 0
    usage: dict = field(default_factory=lambda: {"queries": 0, "labeled_samples": 0,
                                                  "unlabeled_samples": 0})
    store: object = None  # the run's `wrt.store.Store` (caches pretrained models); None: no caching
    attacker_data: AttackerData = field(default_factory=AttackerData)
    images_drawn: int = 0  # images the attack drew under `attacker_data` (recorded)
    result: dict | None = None  # what the attack reports beyond its surrogate (`attack.result`)

    def generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed + 7919)

    def share(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        """The seeded share of a pool (and its labels) that the budget grants; counted."""
        n = self.attacker_data.size(len(images))
        self.images_drawn += n
        pick = torch.randperm(len(images), generator=self.generator())[:n]
        return images[pick], None if labels is None else labels[pick]

    def draw(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        """The budget's share of a pool of in-domain images (and their true labels) or, with
        `domain=out`, as many rendered glyphs (other-domain images, labels None)."""
        budget = self.attacker_data
        if budget.domain == "none":
            raise InvalidParameter("attacker_data.domain='none' but this attack needs data; "
                                   "allowed for it: in, out")
        if budget.domain == "out":
            channels, size, _ = self.data.image_shape
            per_class = -(-budget.size(len(images)) // GLYPH_CLASSES)
            images, _, _ = glyph_dataset(GLYPH_CLASSES, per_class, size=size, channels=channels,
                                         seed=self.seed + 104729)
            labels = None
        return self.share(images, labels)

    def labeled(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None,
                protocol: str) -> torch.Tensor:
        """The labels the budget allows for drawn `images`: the true ones, or the victim's
        top-1 answers (`protocol`: the attack's own choice, `ground_truth` or `queried`)."""
        if labels is not None and self.attacker_data.ground_truth(protocol):
            self.count(labeled_samples=len(labels))
            return labels
        self.count(unlabeled_samples=len(images))
        return self.query(model, images).argmax(1)

    def attacker_labeled(self, model: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The attacker's third of the training data under the budget, with ground-truth labels
        (or the victim's when the budget says `queried` or the images are other-domain)."""
        images, labels = self.draw(*self.data.attacker())
        require(model is not None or (labels is not None and self.attacker_data.ground_truth("ground_truth")),
                "attacker_data", self.attacker_data, "ground-truth labels for this attack (it has no victim to query)")
        return images, self.labeled(model, images, labels, "ground_truth")

    def record(self) -> dict:
        """`attack.data` of the run JSON."""
        budget = self.attacker_data
        return {"fraction": budget.fraction, "count": budget.count, "labels": budget.labels,
                "domain": budget.domain, "images": self.images_drawn}

    def query(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Logits of the victim on `images`, counted as queries."""
        self.count(queries=len(images))
        return self.trainer.predict(model, images)

    def count(self, **usage: int) -> None:
        """Add to the data the attacker used (`attack_usage` of the run JSON): `queries` to the
        victim, training-distribution samples with (`labeled_samples`) and without labels
        (`unlabeled_samples`), labeled other-domain samples (`transfer_samples`)."""
        for kind, n in usage.items():
            require(kind in USAGE, "attack usage", kind, ", ".join(USAGE))
            self.usage[kind] = self.usage.get(kind, 0) + n

    def report(self, **found) -> None:
        """Record what the attack found beyond its surrogate (`attack.result` of the run JSON;
        values must be JSON values)."""
        self.result = {**(self.result or {}), **found}


class Attack(Configurable):
    """Base class: subclasses set `category` (one of `wrt.record.CATEGORIES`), declare their parameters
    as dataclass fields (`wrt.params`) and implement `__call__`; they count the data they use with
    `ctx.count(...)` and report what they find with `ctx.report(...)`."""

    group = "attack"
    category: ClassVar[str] = "none"
    # True for the attacks that a budget's `paper_epoch_scale` runs at (1.0: the paper's epochs)
    # instead of `trainer.epoch_scale`: Table V's rows (SoK §VII) and the cheap attacks that only
    # fine-tune on the attacker's third
    paper_epochs: ClassVar[bool] = False

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        raise NotImplementedError

    def recorded_params(self, params: dict) -> dict:
        """`attack.params` of the run JSON, given the config's parameters (`params`): those
        parameters, unless the attack records more (a combined attack: its steps')."""
        return params


@dataclass(eq=False)
class FineTuningParams:
    """Fine-tuning the model under attack: epochs (scaled by the budget) and learning rate."""

    epochs: float = param(5, **EPOCHS)
    lr: float = param(0.01, **LR)


class NoAttack(Attack):
    """The identity: the surrogate is the marked model itself."""

    def __call__(self, model, ctx):
        return model
