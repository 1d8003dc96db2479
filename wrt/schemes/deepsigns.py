"""Rouhani, Chen, Koushanfar, "DeepSigns: An End-to-End Watermarking Framework for Ownership
Protection of Deep Neural Networks" (ASPLOS 2019), white-box variant (§IV-A, Algorithms 1 and
3); SoK §V-D and Appendix XII-C.

The activations f(x) of a hidden layer are modelled as a Gaussian mixture with one Gaussian
per class (SoK on 10-class data: s = 10 Gaussians × N = 10 bits each). The key holds a random
projection A ∈ R^{M×N} (N(0, 1)), random bits b ∈ {0,1}^{s×N}, the selected classes and the
input key: 1 % of the defender's training images of each selected class (paper §V-A).
Embedding fine-tunes the source model with trainable centers µ ∈ R^{s×M}, initialised at the
source model's mean activation per class, and adds to the cross-entropy

- loss1 = λ1 · ‖µ_{y*} − f(x)‖² (Eq. 1; mean over the key images in the batch), and
- loss2 = −λ2 · Σ_{k,j} [b_kj ln G_kj + (1 − b_kj) ln(1 − G_kj)], G = Sigmoid(µ·A) (Eqs. 2–3),

with the paper's λ1 = λ2 = 0.01. Eq. 1's second part, −Σ_{i≠y*} ‖µ_i − f(x)‖², is unbounded
below (it rewards moving activations and centers apart without limit) and the SoK reports
that it keeps the loss from converging; like the SoK's toolbox we leave it out — the centers
still separate through loss2 and the cross-entropy. The centers learn `center_lr` times
faster than the network (µ = µ₀ + √center_lr·δ with δ trained at the network's rate), since
with the network's fine-tuning rate they would need thousands of steps to reach their bits.
The input key's images make up `key_share` (¼) of every batch and loss1 acts on them, so it
pulls the very activations that extraction averages (the SoK's toolbox likewise applies the
embedding loss to batches of key-class samples); pulling all training samples instead leaves
the key images' mean lagging the centers and costs accuracy. The SoK's alternating training
(two plain batches, then one with the watermark loss) is `embed_every: 3`; with one Gaussian
per class on 10-class data it is not needed (`embed_every: 1`: every batch carries both).

Extraction (Algorithm 3): the mean activation µ̂_k over the key images of class k, then
b̂ = Sigmoid(µ̂·A) > 0.5; the watermark accuracy is the fraction of the s·N bits that match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wrt.data import Dataset
from wrt.data.loader import to_float
from wrt.models import unwrap
from wrt.params import param
from wrt.schemes.base import LAYER, EmbeddingParams, Key, KeyMismatch, Scheme
from wrt.schemes.layers import Activations, activation_layer, key_layer
from wrt.train import EarlyStopping, KeyMixer, LossTerm, Trainer
from wrt.validation import require


@dataclass(eq=False)
class DeepSigns(EmbeddingParams, Scheme):
    bits = True

    bits_per_gaussian: int = param(10, low=1)
    gaussians: int | None = param(None, low=1, null="one per class")
    lambda1: float = param(0.01, low=0, high=1e4)
    lambda2: float = param(0.01, low=0, high=1e4, low_open=True)
    key_fraction: float = param(0.01, low=0, high=1, low_open=True)
    layer: str | None = param(None, **LAYER)
    center_lr: float = param(100.0, low=0, high=1e6, low_open=True)
    key_share: float = param(0.25, low=0, high=1, high_open=True)
    embed_every: int = param(1, low=1)

    # ---- key ------------------------------------------------------------------------------

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        name, layer = activation_layer(model, self.layer, "scheme.layer")
        s = self.gaussians or data.num_classes
        require(s <= data.num_classes, "scheme.gaussians", self.gaussians,
                f"at most the number of classes ({data.num_classes})")
        classes = torch.randperm(data.num_classes, generator=generator)[:s].sort().values
        images, labels = data.defender()
        picked = []
        for c in classes.tolist():
            idx = (labels == c).nonzero().flatten()
            n = max(2, round(self.key_fraction * len(idx)))
            picked.append(idx[torch.randperm(len(idx), generator=generator)[:n]])
        picked = torch.cat(picked)
        device = next(unwrap(model).parameters()).device
        with torch.no_grad(), Activations(layer) as act:
            was_training = model.training
            model.eval()
            model(to_float(images[:1].to(device)))
            model.train(was_training)
        m = act.value.shape[1]
        projection = torch.randn(m, self.bits_per_gaussian, generator=generator)
        bits = torch.randint(2, (s, self.bits_per_gaussian), generator=generator).float()
        return Key({"images": images[picked], "labels": labels[picked], "classes": classes,
                    "projection": projection, "bits": bits},
                   {"layer": name, "features": m})

    def key_length(self, key: Key) -> int:
        return key.tensors["bits"].numel()

    # ---- extraction -------------------------------------------------------------------------

    def mean_activations(self, model: nn.Module, key: Key, batch_size: int = 256) -> torch.Tensor:
        """µ̂ [s, M]: the model's mean activation over the key images of each selected class."""
        layer = key_layer(model, key.meta["layer"])
        device = next(unwrap(model).parameters()).device
        images, labels = key.tensors["images"], key.tensors["labels"]
        was_training = model.training
        model.eval()
        feats = []
        with torch.no_grad(), Activations(layer) as act:
            for start in range(0, len(images), batch_size):
                model(to_float(images[start:start + batch_size].to(device)))
                feats.append(act.value.float().cpu())
        model.train(was_training)
        feats = torch.cat(feats)
        return torch.stack([feats[labels == c].mean(0) for c in key.tensors["classes"].tolist()])

    def extract(self, model, key, trainer) -> float:
        mu = self.mean_activations(model, key)
        expected = key.tensors["projection"].shape[0]
        if mu.shape[1] != expected:
            raise KeyMismatch(f"layer {key.meta['layer']!r}: the key projects {expected} activations, "
                              f"the layer outputs {mu.shape[1]}")
        bits = (mu @ key.tensors["projection"] > 0).float()
        return (bits == key.tensors["bits"]).float().mean().item()

    def forge(self, model, image_shape, num_classes, generator, trainer) -> Key:
        """Noise images grouped by the stolen model's answers stand in for the key's class
        images; with a fresh projection, the claimed bits are those the model's mean
        activations give (DeepSigns' bits are not bound to the owner either)."""
        name, _ = activation_layer(model, self.layer, "scheme.layer")
        images = torch.randint(256, (200, *image_shape), generator=generator, dtype=torch.uint8)
        labels = trainer.predict(model, images).argmax(1)
        key = Key({"images": images, "labels": labels, "classes": labels.unique()},
                  {"layer": name, "forged": True})
        mu = self.mean_activations(model, key)
        key.tensors["projection"] = torch.randn(mu.shape[1], self.bits_per_gaussian, generator=generator)
        key.tensors["bits"] = (mu @ key.tensors["projection"] > 0).float()
        key.meta["features"] = mu.shape[1]
        return key

    # ---- embedding --------------------------------------------------------------------------

    def embed(self, model, data: Dataset, key: Key, trainer: Trainer) -> nn.Module:
        model = trainer.prepare(model)
        device = trainer.device
        classes = key.tensors["classes"].to(device)
        projection = key.tensors["projection"].to(device)
        bits = key.tensors["bits"].to(device)
        slot = torch.full((data.num_classes,), -1, dtype=torch.long, device=device)
        slot[classes] = torch.arange(len(classes), device=device)
        mu0 = self.mean_activations(model, key).to(device)
        delta = nn.Parameter(torch.zeros_like(mu0))
        scale = math.sqrt(self.center_lr)
        layer = unwrap(model).get_submodule(key.meta["layer"])

        def centers() -> torch.Tensor:
            return mu0 + scale * delta

        def loss2(mu: torch.Tensor) -> torch.Tensor:
            return self.lambda2 * F.binary_cross_entropy_with_logits(mu @ projection, bits, reduction="sum")

        def center_loss(m, batch, logits):
            with torch.autocast(device.type, enabled=False):
                mu = centers()  # loss1 on the key images
                rows = batch.rows[mixer.tag]
                feats, k = act.value[rows].float(), slot[batch.targets[rows]]
                chosen = k >= 0
                pull = ((mu[k[chosen]] - feats[chosen]) ** 2).sum(1).mean() if chosen.any() else 0.0
                return self.lambda1 * pull + loss2(mu)

        def embedding_loss(m) -> float:
            with torch.no_grad():
                mu = self.mean_activations(m, key).to(device)
                return loss2(mu).item()

        images, labels = data.defender()
        stop = EarlyStopping(embedding_loss, patience=self.patience, min_delta=1e-3, check_every=self.check_every)
        params = list(model.parameters()) + [delta]
        mixer = KeyMixer(key.tensors["images"], key.tensors["labels"],
                         round(trainer.batch_size * self.key_share), seed=trainer.seed)
        with Activations(layer) as act:
            self.fit_embedding(trainer, model, images, labels, stop=stop, augment=data.augment, params=params,
                               callbacks=[mixer, LossTerm(center_loss, every=self.embed_every)])
        return model
