"""Uchida et al., "Embedding Watermarks into Deep Neural Networks" (ICMR 2017); SoK §V-D and
Appendix XII-C.

The key is a secret projection matrix X ∈ R^{N×M} (i.i.d. N(0, 1), from the key's seed) and
N random message bits b. The carrier is the *mean filter* of one convolutional layer,
w̄ = (1/n) Σ_i W_i flattened to M = c·kh·kw values: the mean over the n output filters, as in
Uchida et al. and the SoK's description ("to deal with the permutation invariance of the
filters"), not the full flattened weight tensor. Embedding fine-tunes the source model with
the regulariser E_R = λ · Σ_j BCE(σ(X_j·w̄), b_j) (Uchida's Eq. 5, a sum over bits) added to
the cross-entropy, with early stopping (patience 5) on E_R; extraction thresholds X·w̄ at 0
(SoK Eq. 3) and the watermark accuracy is the fraction of matching bits.

The carrier is the first convolution's mean filter (SoK toolbox; `wrt.schemes.layers`). Key
length N = M by default (`key_bits: null`): Uchida et al. require N ≤ M, and on SmallCNN's
grayscale 3×3 first conv M = 9 (27 on RGB 3×3 stems; the SoK's toolbox embeds 100 bits into
them). With N = 64 > M = 9 the projection has rank 9 and most 64-bit messages cannot be
reached: measured on SmallCNN / Fashion-MNIST (docs/schemes.md) the marked model matched
0.72 of them, while N = 9 reached 9 or 8 of 9 bits (θ at p = 0.05 is 8/9; all 9 match by
chance with probability 2⁻⁹). λ ∈ {0.1, 1, 10} is the SoK's CIFAR-10 ablation; the default is 1:
on SmallCNN's conv1 λ = 0.1 left 6 of 9 bits after 5 epochs (80 steps) of the smoke data set,
λ = 1 carried all 9 after one epoch (16 steps), λ = 10 cost 5 points of test accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wrt.data import Dataset
from wrt.params import param
from wrt.schemes.base import LAYER, EmbeddingParams, Key, KeyMismatch, Scheme
from wrt.schemes.layers import conv_layer, key_layer, mean_over_filters, random_bits
from wrt.train import EarlyStopping, LossTerm, Trainer

@dataclass(eq=False)
class MeanFilterScheme(EmbeddingParams, Scheme):
    """Shared machinery of schemes that project the mean filter of one conv layer
    (Uchida, DeepMarks): key with `projection` [N, M] and the layer name in `meta`."""

    bits = True

    layer: str | None = param(None, **LAYER)

    def resolve_layer(self, model: nn.Module) -> tuple[str, nn.Conv2d]:
        return conv_layer(model, self.layer, "scheme.layer")

    @staticmethod
    def carrier(model: nn.Module, key: Key) -> torch.Tensor:
        """The mean filter w̄ of the key's layer (differentiable); `KeyMismatch` when the layer
        is gone or its filters no longer have the projection's M weights."""
        name = key.meta["layer"]
        weight = key_layer(model, name, nn.Conv2d).weight
        expected = key.tensors["projection"].shape[1]
        if weight[0].numel() != expected:
            raise KeyMismatch(f"layer {name!r}: the key projects mean filters of {expected} weights, "
                              f"the layer's filters have {weight[0].numel()} ({'×'.join(map(str, weight.shape[1:]))})")
        return mean_over_filters(weight)

    def projected(self, model: nn.Module, key: Key) -> torch.Tensor:
        w = self.carrier(model, key)
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
class Uchida(MeanFilterScheme):
    key_bits: int | None = param(None, low=1, null="the carrier size M (N = M)")
    lam: float = param(1.0, low=0, high=1e4, low_open=True)

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        name, conv = self.resolve_layer(model)
        m = conv.weight[0].numel()
        n = self.key_bits or m
        projection = torch.randn(n, m, generator=generator)
        bits = random_bits(n, generator)
        return Key({"projection": projection, "bits": bits}, {"layer": name, "carrier_size": m})

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
