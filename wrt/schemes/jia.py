"""Jia et al., "Entangled Watermarks as a Defense against Model Extraction" (USENIX Security
2021), §4 (EWE); SoK §III-B and Appendix XII-B.

Key: 100 defender images of a source class (SoK CIFAR-10: class 4 'deer' → class 6 'frog', our
defaults; on Fashion-MNIST the same indices are coat → shirt) with a secret 3×3 trigger that
resets the covered pixels to zero in every channel, labelled with the target class. The
trigger goes where the SNNL is most sensitive: we take the gradient of the SNNL between the
source and target class images (at `layer`) with respect to the source images and place the
square where resetting pixels changes the SNNL most to first order, i.e. where
Σ|∂SNNL/∂x · x| over the window, averaged over the key images, is largest.

Embedding (EWE's training): fine-tuning on the defender's data where every r-th batch (rate
r = 2: every second batch) also carries watermark data — half key images, half clean images of
the target class — and the loss on those batches adds −w · SNNL(activations of `layer` on the
watermark data, grouped as triggered vs. target-class) so that the model *entangles* the
trigger's representation with the target class's (w ∈ {0.25, 1, 4}, SoK ablation). The
soft nearest neighbour loss (Frosst et al. 2019) with temperature T is
SNNL = −1/b Σ_i log(Σ_{j≠i, y_j=y_i} e^{−‖h_i−h_j‖²/T} / Σ_{k≠i} e^{−‖h_i−h_k‖²/T});
as in EWE, T is itself trained, by gradient descent on the SNNL (so the model maximises the
SNNL at the temperature that minimises it). The SNNL is computed on one layer, as the SoK does,
through a forward hook on the named submodule `layer` (default `features.fc1`, SmallCNN's hidden
layer). Early stopping on the watermark loss as in Adi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from wrt.data import Dataset
from wrt.models import unwrap
from wrt.params import param
from wrt.schemes.base import Key, TriggerSetScheme
from wrt.schemes.content import CLASS_INDEX, ClassPair, check_pair_fits, sample_class
from wrt.train import Batch, Callback, EarlyStopping
from wrt.validation import require


def snnl(features: torch.Tensor, groups: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """Soft nearest neighbour loss of `features` [b, d] with group labels [b] at `temperature`."""
    features = features.flatten(1).float()
    squared = features.pow(2).sum(1)
    distances = (squared[:, None] + squared[None, :] - 2 * features @ features.T).clamp_min(0)
    logits = -distances / temperature
    eye = torch.eye(len(features), dtype=torch.bool, device=features.device)
    logits = logits.masked_fill(eye, -math.inf)
    same = (groups[:, None] == groups[None, :]) & ~eye
    numerator = torch.logsumexp(logits.masked_fill(~same, -math.inf), 1)
    denominator = torch.logsumexp(logits, 1)
    valid = same.any(1)
    return -(numerator - denominator)[valid].mean()


class LayerTap:
    """A forward hook that keeps the last output of one named submodule."""

    def __init__(self, model: nn.Module, layer: str):
        modules = dict(unwrap(model).named_modules())
        require(layer in modules, "scheme.layer", layer,
                f"a submodule of the model, e.g. one of {[n for n in modules if n][:12]}")
        self.output = None
        self.handle = modules[layer].register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        self.output = output.clone()  # later in-place activations must not change it

    def close(self):
        self.handle.remove()


class Entanglement(Callback):
    """EWE's training (§4): every `rate`-th batch gets watermark rows (tag "watermark"), `half`
    key images and `half` clean images, all labelled `target_class`; −`weight` · SNNL of their
    features at `tap` (triggered vs. clean) joins that step's loss, and the temperature descends
    the SNNL (on log T, learning rate `temperature_lr`) while the model ascends it."""

    tag = "watermark"

    def __init__(self, tap: LayerTap, key_images: torch.Tensor, clean_images: torch.Tensor, target_class: int,
                 half: int, rate: int, weight: float, temperature: float, temperature_lr: float, seed: int):
        self.tap, self.key_images, self.clean_images = tap, key_images, clean_images
        self.target_class, self.half, self.rate = target_class, half, rate
        self.weight, self.temperature_lr = weight, temperature_lr
        self.log_t = torch.tensor(math.log(temperature))
        self.generator = torch.Generator().manual_seed(seed)

    def on_batch(self, batch: Batch, step: int) -> None:
        if step % self.rate != self.rate - 1:
            return
        wm = self.key_images[torch.randint(len(self.key_images), (self.half,), generator=self.generator)]
        clean = self.clean_images[torch.randint(len(self.clean_images), (self.half,),
                                                generator=self.generator)].float() / 255
        batch.append(self.tag, torch.cat([wm, clean]),
                     torch.full((2 * self.half,), self.target_class, dtype=torch.long))

    def loss(self, model, batch, logits):
        if self.tag not in batch.rows:
            return None
        feats = self.tap.output[batch.rows[self.tag]]
        groups = torch.cat([torch.ones(self.half), torch.zeros(self.half)]).to(feats.device)
        t = self.log_t.to(feats.device).exp().requires_grad_(True)
        loss = snnl(feats, groups, t)
        (grad_t,) = torch.autograd.grad(loss, t, retain_graph=True)
        self.log_t = (self.log_t - self.temperature_lr * (grad_t.detach().cpu() * t.detach().cpu())).clamp(-10, 20)
        return -self.weight * loss


def apply_trigger(images: torch.Tensor, row: int, col: int, size: int) -> torch.Tensor:
    images = images.clone()
    images[..., row:row + size, col:col + size] = 0.0
    return images


@dataclass(eq=False)
class Jia(ClassPair, TriggerSetScheme):
    source_class: int = param(4, **CLASS_INDEX)
    target_class: int = param(6, **CLASS_INDEX)
    weight: float = param(1.0, low=0, high=1000)
    rate: int = param(2, low=1)
    trigger_size: int = param(3, low=1)
    temperature: float = param(100.0, low=0, high=1e6, low_open=True)
    temperature_lr: float = param(0.1, low=0, high=10)
    layer: str = param("features.fc1", what="the name of a submodule")

    def trigger_position(self, model, source: torch.Tensor, target: torch.Tensor) -> tuple[int, int]:
        """The top-left corner of the window where zeroing pixels moves the SNNL most."""
        device = next(model.parameters()).device
        tap = LayerTap(model, self.layer)
        was_training = model.training
        model.eval()
        try:
            x = torch.cat([source, target]).to(device).requires_grad_(True)
            model(x)
            groups = torch.cat([torch.ones(len(source)), torch.zeros(len(target))]).to(device)
            loss = snnl(tap.output, groups, torch.tensor(self.temperature, device=device))
            (grad,) = torch.autograd.grad(loss, x)
        finally:
            tap.close()
            model.train(was_training)
        effect = (grad[:len(source)] * x[:len(source)]).abs().sum(1).mean(0).detach().cpu()  # [H, W]
        s = self.trigger_size
        window = F.avg_pool2d(effect[None, None], s, stride=1)[0, 0]
        flat = int(window.argmax())
        return flat // window.shape[1], flat % window.shape[1]

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        check_pair_fits(self.source_class, self.target_class, data)
        require(self.trigger_size <= data.image_shape[-1], "scheme.trigger_size", self.trigger_size,
                f"at most the image size {data.image_shape[-1]}")
        source = sample_class(data, self.source_class, self.key_size, generator)
        target = sample_class(data, self.target_class, self.key_size, generator)
        row, col = self.trigger_position(model, source, target)
        images = apply_trigger(source, row, col, self.trigger_size)
        labels = torch.full((self.key_size,), self.target_class, dtype=torch.long)
        return Key({"images": images, "labels": labels},
                   {"source_class": self.source_class, "target_class": self.target_class,
                    "trigger": {"row": row, "col": col, "size": self.trigger_size, "value": 0.0}})

    def embed(self, model, data, key, trainer):
        images, labels = data.defender()
        tap = LayerTap(model, self.layer)
        entangle = Entanglement(tap, key.tensors["images"], images[labels == self.target_class], self.target_class,
                                half=max(1, trainer.batch_size // 2), rate=self.rate, weight=self.weight,
                                temperature=self.temperature, temperature_lr=self.temperature_lr, seed=trainer.seed)
        stop = EarlyStopping(lambda m: self.key_loss(m, key, trainer), patience=self.patience, min_delta=1e-3,
                             check_every=self.check_every)
        try:
            self.fit_embedding(trainer, model, images, labels, stop=stop, augment=data.augment,
                               callbacks=[entangle])
        finally:
            tap.close()
        return model
