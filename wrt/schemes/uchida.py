"""Uchida et al., "Embedding Watermarks into Deep Neural Networks" (ICMR 2017); SoK §V-D and
Appendix XII-C.

The key is a secret projection matrix X ∈ R^{N×M} (i.i.d. N(0, 1), from the key's seed) and
N random message bits b. The carrier w is M values of one convolutional layer (`carrier`):
`mean_filter` (default), the mean over the n output filters w̄ = (1/n) Σ_i W_i flattened to
c·kh·kw values — Uchida et al.'s choice ("to deal with the permutation invariance of the
filters") and the SoK toolbox's (CIFAR-10: 100 bits on its conv2, averaged over output filters)
— or `weights`, the whole weight tensor (n·c·kh·kw values; the SoK's text gives the target
layer 432 weights on CIFAR-10, a 16×3×3×3 first conv). Embedding fine-tunes the source model
with the regulariser E_R = λ · Σ_j BCE(σ(X_j·w), b_j) (Uchida's Eq. 5, a sum over bits) added to
the cross-entropy, with early stopping (patience 5) on E_R; extraction thresholds X·w at 0
(SoK Eq. 3) and the watermark accuracy is the fraction of matching bits.

N = 100 bits, the SoK's key length (§VII-A). Uchida et al. require N ≤ M, so the default layer
(`layer: null`) is the first conv whose carrier holds N values: on SmallCNN the 288-value mean
filter of `features.conv2.0` (with `carrier: weights`, the 288 weights of `features.conv1.0`);
a smaller carrier is an `InvalidParameter`. The earlier 9 bits on conv1's mean filter had
θ = 8/9: one flipped bit removed the mark. Both carriers are measured in docs/schemes.md;
the mean filter is the default because DeepMarks, which the SoK embeds into the same layer,
diverges on the whole weights at its γ = 10. λ ∈ {0.1, 1, 10} is the SoK's CIFAR-10 ablation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wrt.data import Dataset
from wrt.params import param
from wrt.schemes.base import LAYER, EmbeddingParams, Key, KeyMismatch, Scheme
from wrt.schemes.layers import CARRIERS, carrier_size, conv_layer, key_layer, random_bits
from wrt.train import EarlyStopping, LossTerm, Trainer
from wrt.validation import InvalidParameter


@dataclass(eq=False)
class ConvProjectionScheme(EmbeddingParams, Scheme):
    """Shared machinery of schemes that project the weights of one conv layer (Uchida,
    DeepMarks): key with `projection` [N, M] and the layer and carrier in `meta`."""

    bits = True

    layer: str | None = param(None, **LAYER)
    carrier: str = param("mean_filter", choices=tuple(CARRIERS))

    def resolve_layer(self, model: nn.Module, n: int) -> tuple[str, nn.Conv2d, int]:
        """(name, conv, M): the configured layer, or by default the first conv whose carrier holds
        the key's N values; an `InvalidParameter` when the carrier is smaller than N (the
        projection X ∈ R^{N×M} would have rank M < N: most messages unreachable)."""
        name, conv = conv_layer(model, self.layer, "scheme.layer", min_size=n,
                                size=lambda c: carrier_size(c, self.carrier))
        m = carrier_size(conv, self.carrier)
        if m < n:
            raise InvalidParameter(f"scheme.carrier={self.carrier}: layer {name!r} carries {m} values, fewer "
                                   f"than the key's {n} (N ≤ M); choose a larger carrier or layer")
        return name, conv, m

    @staticmethod
    def carrier_of(model: nn.Module, key: Key) -> torch.Tensor:
        """The key's carrier vector (differentiable); `KeyMismatch` when the layer is gone or no
        longer has the projection's M values."""
        name = key.meta["layer"]
        weight = key_layer(model, name, nn.Conv2d).weight
        kind = key.meta["carrier"]
        w = CARRIERS[kind](weight)
        expected = key.tensors["projection"].shape[1]
        if w.numel() != expected:
            raise KeyMismatch(f"layer {name!r}: the key projects a {kind} of {expected} values, the layer's "
                              f"weights ({'×'.join(map(str, weight.shape))}) give {w.numel()}")
        return w

    def projected(self, model: nn.Module, key: Key) -> torch.Tensor:
        w = self.carrier_of(model, key)
        with torch.autocast(w.device.type, enabled=False):
            return key.tensors["projection"].to(w.device) @ w

    def embedding_loss(self, model: nn.Module, key: Key) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, model, data: Dataset, key: Key, trainer: Trainer) -> nn.Module:
        images, labels = data.defender()
        stop = EarlyStopping(lambda m: self.embedding_loss(m, key).item(), patience=self.patience,
                             min_delta=1e-3, check_every=self.check_every)
        self.fit_embedding(trainer, model, images, labels, stop=stop, augment=data.augment,
                           callbacks=[LossTerm(lambda m, batch, logits: self.embedding_loss(m, key))])
        return model

    def key_length(self, key: Key) -> int:
        return len(key.tensors["projection"])


@dataclass(eq=False)
class Uchida(ConvProjectionScheme):
    key_bits: int = param(100, low=1)
    lam: float = param(1.0, low=0, high=1e4, low_open=True)

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        name, _, m = self.resolve_layer(model, self.key_bits)
        projection = torch.randn(self.key_bits, m, generator=generator)
        bits = random_bits(self.key_bits, generator)
        return Key({"projection": projection, "bits": bits},
                   {"layer": name, "carrier": self.carrier, "carrier_size": m})

    def embedding_loss(self, model, key) -> torch.Tensor:
        logits = self.projected(model, key)
        bits = key.tensors["bits"].to(logits.device)
        return self.lam * F.binary_cross_entropy_with_logits(logits, bits, reduction="sum")

    def extract(self, model, key, trainer) -> float:
        with torch.no_grad():
            bits = (self.projected(model, key) >= 0).float().cpu()
        return (bits == key.tensors["bits"]).float().mean().item()

    def forge(self, model, image_shape, num_classes, generator, trainer) -> Key:
        """A fresh projection matrix; the claimed bits are read off the stolen model through it
        (the ambiguity attack on weight-projection watermarks)."""
        key = self.keygen(model, None, generator)
        with torch.no_grad():
            key.tensors["bits"] = (self.projected(model, key) >= 0).float().cpu()
        key.meta["forged"] = True
        return key
