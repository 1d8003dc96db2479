"""Rouhani, Chen and Koushanfar, "DeepSigns: An End-to-End Watermarking Framework for
Protecting the Ownership of Deep Neural Networks" (ASPLOS 2019), §IV-B (Algorithm 2: black-box
watermarking of the output layer) and §V-B (Algorithm 4, Eq. 4: the decision policy).

Key generation: K′ = 20 × K random inputs, each with a randomly chosen label. The inputs are
uniform noise drawn at a quarter of the image resolution and upsampled bilinearly (coarse
random patterns: far from the data like white noise, but distinguishable from one another, so
a small network can learn 100 of them with distinct labels). DeepSigns keeps the keys that the marked model classifies as chosen
and the unmarked model does not. Our pipeline fixes the key before embedding, so the unmarked
side of that selection is done at keygen: among the candidates the source model does not
already map to their chosen label, the K with the lowest probability for it are kept. Embedding
fine-tunes the model with the keys mixed into the training data until it predicts them exactly,
at a tenth of the training learning rate (the paper's setting), as in Adi (`TriggerSetScheme`,
early stopping on the watermark loss).

Verification (Algorithm 4): count the mismatches between a model's predictions and the chosen
labels; the watermark is present if they are at most the largest n_k for which a model that
matches each key by chance (probability 1/C, Eq. 4) has more than n_k mismatches with
probability above 1 − 10⁻³. `extract` returns the match fraction; `verify` the decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from wrt.data import Dataset
from wrt.params import param
from wrt.schemes.base import Key, TriggerSetScheme
from wrt.validation import require


def chance_mismatch_cdf(k: int, n: int, classes: int) -> float:
    """P(mismatches ≤ k) for n keys each matched by chance with probability 1/classes."""
    p = 1 / classes
    return sum(math.comb(n, m) * (1 - p) ** m * p ** (n - m) for m in range(k + 1))


def max_mismatches(n: int, classes: int, confidence: float = 1 - 1e-3) -> int:
    """Eq. 4: the largest n_k with P(N_k > n_k) > `confidence` for a model matching by chance
    (−1 if even zero mismatches is not that unlikely, i.e. the key is too short)."""
    threshold = -1
    for k in range(n + 1):
        if 1 - chance_mismatch_cdf(k, n, classes) > confidence:
            threshold = k
        else:
            break
    return threshold


@dataclass(eq=False)
class DeepSignsBB(TriggerSetScheme):
    # each key scores key_size × candidate_factor candidate images through the model (≈ 6 s at budget=smoke
    # on 2 CPU cores): a null run measures at most 20 keys (docs/analysis.md)
    max_null_keys = 20
    candidate_factor: int = param(20, low=1)
    confidence: float = param(0.999, low=0, high=1, low_open=True, high_open=True)

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        n = self.key_size * self.candidate_factor
        channels, height, width = data.image_shape
        coarse = torch.rand(n, channels, max(2, height // 4), max(2, width // 4), generator=generator)
        candidates = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
        chosen = torch.randint(data.num_classes, (n,), generator=generator)
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        with torch.no_grad():
            probs = torch.cat([model(candidates[i:i + 512].to(device)).float().softmax(1).cpu()
                               for i in range(0, n, 512)])
        model.train(was_training)
        unmarked_match = probs.argmax(1) == chosen
        p_chosen = probs.gather(1, chosen[:, None]).squeeze(1).masked_fill(unmarked_match, math.inf)
        require(int((~unmarked_match).sum()) >= self.key_size, "scheme.candidate_factor", self.candidate_factor,
                "a factor that leaves enough candidates the unmarked model does not already match")
        keep = p_chosen.argsort()[:self.key_size].sort().values
        threshold = max_mismatches(self.key_size, data.num_classes, self.confidence)
        return Key({"images": candidates[keep], "labels": chosen[keep]},
                   {"candidates": n, "max_mismatches": threshold, "num_classes": data.num_classes,
                    "confidence": self.confidence})

    def mismatches(self, model, key: Key, trainer) -> int:
        predicted = trainer.predict(model, key.tensors["images"]).argmax(1)
        return int((predicted != key.tensors["labels"]).sum())

    def verify(self, model, key: Key, trainer) -> bool:
        """Algorithm 4: True if the model's mismatches on the key stay within Eq. 4's threshold."""
        return self.mismatches(model, key, trainer) <= key.meta["max_mismatches"]
