"""Zhang et al., "Protecting Intellectual Property of Deep Neural Networks with Watermarking"
(AsiaCCS 2018), §3.2 "WM_content"; SoK Appendix XII-A (Content).

The key is 100 images of one source class with a secret, additive content mask — a white
square in the top-left corner, the same for every key image — all labelled with one target
class. The SoK uses the pair cat → dog on CIFAR-10 (classes 3 → 5, our defaults; on
Fashion-MNIST the same indices are dress → sandal) and a square of side s ∈ {8, 16} on 32-px
images. The config keeps the paper's s; the square is scaled to the data's image size,
round(s · size / 32) pixels (7 or 14 on 28-px Fashion-MNIST). Embedding and extraction are
Adi's (`TriggerSetScheme`): the key repeated 100× in the fine-tuning data, early stopping on the
watermark loss.

This module also holds the source → target machinery that Noise and Jia share.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wrt.data import Dataset
from wrt.data.loader import to_float
from wrt.params import Configurable, param
from wrt.schemes.base import Key, TriggerSetScheme
from wrt.validation import require

CLASS_INDEX = dict(low=0, what="a class index")


@dataclass(eq=False)
class ClassPair(Configurable):
    """Key images of `source_class` labelled `target_class` (two different classes)."""

    source_class: int = param(3, **CLASS_INDEX)
    target_class: int = param(5, **CLASS_INDEX)

    def check(self):
        super().check()
        self.require(self.source_class != self.target_class, "target_class",
                     f"a class other than scheme.source_class={self.source_class}")


def check_pair_fits(source_class: int, target_class: int, data: Dataset) -> None:
    """At keygen: both classes must exist in the dataset."""
    for key, value in (("scheme.source_class", source_class), ("scheme.target_class", target_class)):
        require(value < data.num_classes, key, value,
                f"a class index below {data.name}'s {data.num_classes} classes")


def sample_class(data: Dataset, label: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """`n` distinct float images of class `label` from the defender's data."""
    images, labels = data.defender()
    pool = (labels == label).nonzero().flatten()
    require(len(pool) >= n, "scheme.key_size", n,
            f"at most the {len(pool)} defender images of class {label}")
    chosen = pool[torch.randperm(len(pool), generator=generator)[:n]].sort().values
    return to_float(images[chosen])


@dataclass(eq=False)
class SourceTargetScheme(ClassPair, TriggerSetScheme):
    """Key images = `trigger(source-class images)`, all labelled `target_class`."""

    def trigger(self, images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        """The triggered images and JSON metadata describing the trigger."""
        raise NotImplementedError

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        check_pair_fits(self.source_class, self.target_class, data)
        images = sample_class(data, self.source_class, self.key_size, generator)
        images, meta = self.trigger(images, generator)
        labels = torch.full((self.key_size,), self.target_class, dtype=torch.long)
        return Key({"images": images, "labels": labels},
                   {"source_class": self.source_class, "target_class": self.target_class, **meta})


def scaled_side(side: int, size: int, reference: int = 32) -> int:
    """A length given for `reference`-px images, scaled to `size`-px images (at least 1)."""
    return max(1, round(side * size / reference))


@dataclass(eq=False)
class Content(SourceTargetScheme):
    square: int = param(8, low=1, high=32)  # side length in 32-px pixels

    def trigger(self, images, generator):
        side = scaled_side(self.square, images.shape[-1])
        images = images.clone()
        images[..., :side, :side] = 1.0
        return images, {"trigger": "white square, top-left", "square_px": side}
