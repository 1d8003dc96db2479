"""Zhang et al. (AsiaCCS 2018), §3.2 "WM_unrelated"; SoK Appendix XII-A (Unrelated).

The key is 100 images from a domain unrelated to the task, all labelled with one target class
(the SoK samples it at random; our default, 9, is a class unmarked Fashion-MNIST models rarely
predict for glyphs — they take most of them for sandals, class 5). The SoK samples them from Omniglot,
which cannot be downloaded here; they come from `wrt.data.glyphs` instead — characters of six
non-Latin alphabets (Greek, Cyrillic, Armenian, Georgian, Hebrew, Arabic) rendered from the
DejaVu/STIX fonts shipped with matplotlib, randomly styled, seeded and deterministic — sampled
uniformly over characters. Embedding and extraction are Adi's (the key repeated 100×, early
stopping on the watermark loss); the SoK ablates over lr ∈ {1e-3, 1e-4}.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wrt.data import Dataset
from wrt.data.glyphs import glyph_dataset
from wrt.data.loader import to_float
from wrt.params import param
from wrt.schemes.base import Key, TriggerSetScheme
from wrt.schemes.content import CLASS_INDEX
from wrt.validation import require


@dataclass(eq=False)
class Unrelated(TriggerSetScheme):
    target_class: int = param(9, **CLASS_INDEX)
    glyph_classes: int = param(100, low=1)

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        require(self.target_class < data.num_classes, "scheme.target_class", self.target_class,
                f"a class index below {data.name}'s {data.num_classes} classes")
        channels, size, _ = data.image_shape
        per_class = -(-self.key_size // self.glyph_classes)  # enough renderings to sample from
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        images, glyph_labels, names = glyph_dataset(self.glyph_classes, per_class, size, channels, seed=seed)
        chosen = torch.randperm(len(glyph_labels), generator=generator)[:self.key_size]
        labels = torch.full((self.key_size,), self.target_class, dtype=torch.long)
        return Key({"images": to_float(images[chosen]), "labels": labels},
                   {"target_class": self.target_class, "source": "wrt.data.glyphs (rendered non-Latin glyphs)",
                    "glyphs": [names[i] for i in glyph_labels[chosen].tolist()]})
