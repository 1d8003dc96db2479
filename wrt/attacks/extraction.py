"""Model extraction attacks (SoK §V-C "Model Extraction", Appendix XIII-C, Table III).

The attacker queries the deployed model (the marked model, or DAWN's wrapper) and trains a
surrogate on its answers. Retraining, cross-architecture retraining, smooth retraining and
Knockoff Nets train on the victim's softmax outputs by default (`labels: soft`, as the SoK's
toolbox does: the victim answers with its probability vector); `labels: top1` trains on its
top-1 labels instead (a label-only API). Following Appendix XIV-A, extraction attackers get the whole
training set *without* labels ("domain" data): every image is a query, no ground-truth label
is used. Knockoff Nets instead queries images of another domain (the transfer set).

- Retraining [36]: a fresh model of the source architecture, trained with the source model's
  training setup on the victim's labels.
- Cross-architecture retraining: the same with another, larger architecture (a ResNet-18 of
  width 16, ~0.7M parameters, for 28-px data where the source is small_cnn, ~0.28M;
  DenseNet-121 at paper budget on CIFAR-10, as in the SoK).
- Distillation [22] (Hinton et al. 2015): the student learns the victim's logits softened at
  temperature T, with its own logits divided by T during training (loss × T²).
- Smooth retraining (SoK's adaptive attack against DAWN): each label is the mean of the answers
  (softmax outputs, or one-hot top-1 labels) returned for n = 3 random variations of the image,
  each a random crop and horizontal flip (SoK §VI and App. XIII-C: "cropping, horizontal flipping").
- Adversarial training from scratch [41]: retraining where every batch is extended by PGD
  examples (ε, step 0.01, 40 iterations) of about 10 % of its size, each repeated twice,
  crafted against the surrogate being trained (Madry et al.).
- Knockoff Nets [40], random selection: images drawn at random from an other-domain transfer
  set (random crops of natural photographs, `wrt.data.natural`, standing in for Open Images;
  or rendered glyphs, `wrt.data.glyphs`) and labelled by the victim; a fresh model is trained
  on them.

Transfer learning, the remaining extraction attack, lives in `wrt.attacks.transfer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from wrt.adversarial import AdversarialParams, batched, pgd
from wrt.attacks.base import Attack, AttackContext
from wrt.attacks.toolkit import ANSWERS, domain_data, victim_answers
from wrt.data.glyphs import GLYPH_CLASSES, glyph_dataset
from wrt.data.natural import natural_crops
from wrt.data.loader import augment_batch, to_float
from wrt.models import unwrap
from wrt.params import param
from wrt.train import Batch, Callback, LossTerm, classification_loss
from wrt.validation import require


class Extraction(Attack):
    """Train a fresh model of the source architecture on the victim's answers with the source
    model's training parameters (Appendix XIII-C); subclasses choose the targets."""

    category = "model_extraction"

    def surrogate(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        return ctx.build_model()

    def targets(self, model: nn.Module, images: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        raise NotImplementedError

    def train(self, surrogate: nn.Module, images: torch.Tensor, targets: torch.Tensor,
              ctx: AttackContext) -> None:
        ctx.source_trainer.fit(surrogate, images, targets, augment=ctx.data.augment,
                               desc=type(self).__name__)

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        images, truth = domain_data(ctx)
        if truth is not None and ctx.attacker_data.ground_truth("queried"):
            ctx.count(labeled_samples=len(truth))
            targets = truth
        else:  # queried: the victim's answers
            ctx.count(unlabeled_samples=len(images))
            targets = self.targets(model, images, ctx)
        surrogate = self.surrogate(model, ctx)
        self.train(surrogate, images, targets, ctx)
        return surrogate.eval()


@dataclass(eq=False)
class Retraining(Extraction):
    """Retraining [36] on the victim's softmax outputs (`labels: soft`, the default) or its top-1
    labels (`top1`). A budget with ground-truth labels (`attacker_data.labels`) replaces the
    victim's answers by the true labels."""

    labels: str = param("soft", choices=ANSWERS)

    def targets(self, model, images, ctx):
        return victim_answers(model, images, ctx, self.labels)


@dataclass(eq=False)
class CrossArchitectureRetraining(Retraining):
    """Retraining into another architecture, given as a model config (`_target_` + options;
    num_classes, in_channels, mean and std come from the dataset)."""

    model: dict | DictConfig = param(  # required: no default architecture
        None, what="a model config with a _target_ (e.g. {_target_: wrt.models.LeNet})")

    def __post_init__(self):
        if isinstance(self.model, DictConfig):
            self.model = OmegaConf.to_container(self.model, resolve=True)
        super().__post_init__()

    def check(self):
        super().check()
        self.require(isinstance(self.model, dict) and isinstance(self.model.get("_target_"), str), "model")

    def surrogate(self, model, ctx):
        data = ctx.data
        torch.manual_seed(ctx.seed + 1)
        surrogate = instantiate(self.model, num_classes=data.num_classes, in_channels=data.image_shape[0],
                                mean=list(data.mean), std=list(data.std))
        require(type(surrogate) is not type(unwrap(model)), "attack.model", self.model["_target_"],
                f"an architecture other than the source model's ({type(unwrap(model)).__name__})")
        return surrogate


class TemperatureScaled(nn.Module):
    """The student's logits divided by T (used only while distilling)."""

    def __init__(self, model: nn.Module, temperature: float):
        super().__init__()
        self.model, self.temperature = model, temperature

    def forward(self, x):
        return self.model(x) / self.temperature


@dataclass(eq=False)
class Distillation(Extraction):
    """Hinton et al.: soft labels softmax(z/T) from the victim's logits z; the student's logits
    are divided by T while training and the loss is multiplied by T² (gradient scale)."""

    temperature: float = param(3.0, low=1.0, high=100.0)

    def targets(self, model, images, ctx):
        return F.softmax(ctx.query(model, images) / self.temperature, dim=1)

    def train(self, surrogate, images, targets, ctx):
        scale = self.temperature ** 2 - 1.0
        ctx.source_trainer.fit(TemperatureScaled(surrogate, self.temperature), images, targets,
                               augment=ctx.data.augment, desc="distillation",
                               callbacks=[LossTerm(lambda m, batch, logits: scale * classification_loss(
                                   logits, batch.targets))])


@dataclass(eq=False)
class SmoothRetraining(Retraining):
    """Smooth retraining (SoK §VI "adaptive attacks" and Appendix XIII-C): each image's target is
    the mean of the victim's answers (softmax outputs, or one-hot top-1 labels with `labels:
    top1`) for `queries` random variations of it, the SoK's "cropping, horizontal flipping": a
    random crop (`crop_padding` pixels of reflect padding, one offset per image) and, with
    `flip`, a horizontal flip with probability ½. `flip: null` flips where the dataset's own
    training augmentation does (CIFAR-10, ImageNet; not Fashion-MNIST, whose source model is
    trained without flips). The surrogate is retrained on these smoothed targets."""

    queries: int = param(3, low=1)
    crop_padding: int = param(1, low=0)
    flip: bool | None = param(None, null="as the dataset's training augmentation")
    chunk: int = param(4096, low=1)

    def variations(self, images: torch.Tensor, generator: torch.Generator, flip: bool) -> torch.Tensor:
        """One random crop (and, with `flip`, random flip) of each float image [N, C, H, W]."""
        return augment_batch(images, crop_padding=self.crop_padding, flip=flip, generator=generator)

    def targets(self, model, images, ctx):
        size = min(images.shape[-2:])
        require(self.crop_padding < size, "attack.crop_padding", self.crop_padding,
                f"below the image size ({size} px)")
        flip = ctx.data.flip if self.flip is None else self.flip
        generator = ctx.generator()
        num_classes = ctx.data.num_classes
        targets = torch.zeros(len(images), num_classes)
        for start in range(0, len(images), self.chunk):
            x = to_float(images[start:start + self.chunk])
            for _ in range(self.queries):
                answers = victim_answers(model, self.variations(x, generator, flip), ctx, self.labels)
                if self.labels == "top1":
                    answers = F.one_hot(answers, num_classes).float()
                targets[start:start + len(x)] += answers
        return targets / self.queries


class AdversarialExamples(Callback):
    """Appends PGD examples against the model being trained (tag "adversarial"), `per_batch`
    per batch, each repeated `repeats` times, with the victim's labels of the clean images."""

    tag = "adversarial"

    def __init__(self, model, images, labels, per_batch, repeats, eps, step, iterations, seed):
        self.model, self.images, self.labels = model, images, labels
        self.per_batch, self.repeats = per_batch, repeats
        self.eps, self.step, self.iterations = eps, step, iterations
        self.generator = torch.Generator().manual_seed(seed)

    def on_batch(self, batch: Batch, step: int) -> None:
        idx = torch.randint(len(self.images), (self.per_batch,), generator=self.generator)
        device = next(self.model.parameters()).device
        x, y = to_float(self.images[idx]).to(device), self.labels[idx].to(device)
        adv = batched(pgd, self.model, x, y, eps=self.eps, step=self.step, iterations=self.iterations,
                      generator=self.generator)
        batch.append(self.tag, adv.repeat(self.repeats, 1, 1, 1), y.repeat(self.repeats))


@dataclass(eq=False)
class AdversarialTrainingFromScratch(AdversarialParams, Extraction):
    """Retraining with PGD adversarial training (Madry et al.; Appendix XIII-B/C parameters) on
    the victim's top-1 labels (PGD attacks a label)."""

    def __call__(self, model, ctx):
        images, truth = domain_data(ctx)
        labels = ctx.labeled(model, images, truth, "queried")
        surrogate = ctx.source_trainer.prepare(self.surrogate(model, ctx))
        per_batch = max(1, round(ctx.source_trainer.batch_size * self.fraction / self.repeats))
        hook = AdversarialExamples(surrogate, images, labels, per_batch, self.repeats, self.eps,
                                   self.step, self.iterations, ctx.seed + 11)
        ctx.source_trainer.fit(surrogate, images, labels, augment=ctx.data.augment, callbacks=[hook],
                               desc="adversarial_training")
        return surrogate.eval()


TRANSFER_SETS = ("natural", "glyphs")


@dataclass(eq=False)
class KnockoffNets(Retraining):
    """Random-selection Knockoff Nets: `queries` images of another domain, answered by the
    victim; a fresh model of the source architecture is trained on them. The transfer set
    (`transfer_set`) is `natural`: random crops of the natural photographs that matplotlib and
    scikit-image ship (`wrt.data.natural`, nothing of any scheme's key), or `glyphs`: a random
    selection from `transfer_per_class` renderings of `transfer_classes` characters (the
    `unrelated` scheme's key domain). `queries: null` spends as many queries as the training set
    has images (like the other extraction attacks)."""

    queries: int | None = param(None, low=1, null="as many as the training set has images")
    transfer_set: str = param("natural", choices=TRANSFER_SETS)
    crop_side: tuple[float, ...] = (0.05, 0.3)  # natural only: a crop's side, as fractions of the photo's shorter side
    transfer_per_class: int = param(300, low=1)
    transfer_classes: int = param(GLYPH_CLASSES, low=1, high=GLYPH_CLASSES)  # the glyph characters available
    seed: int = param(1)

    def __post_init__(self):
        self.crop_side = list(self.crop_side)
        super().__post_init__()

    def check(self):
        super().check()
        side = self.crop_side
        self.require(len(side) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in side)
                     and 0 < side[0] <= side[1] <= 1, "crop_side", "[low, high] with 0 < low <= high <= 1")

    def transfer_images(self, ctx: AttackContext) -> torch.Tensor:
        channels, size, _ = ctx.data.image_shape
        wanted = len(ctx.data.train_x) if self.queries is None else self.queries
        if self.transfer_set == "natural":
            return natural_crops(wanted, size=size, channels=channels, generator=ctx.generator(),
                                 crop_side=tuple(self.crop_side))
        pool, _, _ = glyph_dataset(self.transfer_classes, self.transfer_per_class, size=size,
                                   channels=channels, seed=self.seed)
        return pool[torch.randperm(len(pool), generator=ctx.generator())[:min(wanted, len(pool))]]

    def __call__(self, model, ctx):
        require(ctx.attacker_data.domain != "none", "attacker_data.domain", "none",
                "in or out (Knockoff Nets queries other-domain images by protocol)")
        images, _ = ctx.share(self.transfer_images(ctx))  # the transfer set is other-domain by protocol
        ctx.count(transfer_samples=len(images))
        targets = self.targets(model, images, ctx)
        surrogate = self.surrogate(model, ctx)
        self.train(surrogate, images, targets, ctx)
        return surrogate.eval()
