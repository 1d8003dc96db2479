"""Zhang et al. (AsiaCCS 2018), §3.2 "WM_noise"; SoK Appendix XII-A (Noise).

The key is 100 images of one source class (cat → dog on CIFAR-10, classes 3 → 5 by default)
with a secret additive mask of Gaussian noise, N(0, σ²) per pixel, σ ∈ {0.4, 1.0}, drawn once
from the key's seed and added to every key image; the result is clipped to [0, 1]. All key
images carry the target label. Embedding and extraction are Adi's (the key repeated 100×,
early stopping on the watermark loss); the SoK ablates over σ and lr ∈ {1e-3, 1e-4}.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wrt.params import param
from wrt.schemes.content import SourceTargetScheme


@dataclass(eq=False)
class Noise(SourceTargetScheme):
    sigma: float = param(0.4, low=0, high=10, low_open=True)

    def trigger(self, images, generator):
        mask = torch.randn(images.shape[1:], generator=generator) * self.sigma
        return (images + mask).clamp(0, 1), {"trigger": "additive Gaussian mask", "sigma": self.sigma}
