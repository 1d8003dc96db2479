"""Layer lookup for white-box schemes: which layer a scheme marks, by name or by default.

A scheme config's `layer:` names a submodule of the classifier (`features.conv2.0`, as in
`model.named_modules()`); `layer: null` picks the model's default from its own structure, so
every architecture in `wrt/configs/model/` gets one without a table:

- weight schemes (Uchida, DeepMarks) mark the first convolution whose carrier (`carrier:
  weights`, the whole weight tensor, or `mean_filter`, the mean over output filters) holds the
  key's N values (`wrt.schemes.uchida`): SmallCNN's `features.conv1.0` has 288 weights and a
  9-value mean filter, so N = 100 takes its weights, or the 288-value mean filter of
  `features.conv2.0`.
- Greedy Residuals marks the first convolution (its authors' released setting).
- DeepSigns marks the activations of the last hidden `nn.Linear` inside `features`
  (SmallCNN `features.fc1`, LeNet `features.fc2`) or, without one, the output of `features`.
  The SoK embeds into a conv block's output (24,576 features on CIFAR-10, 25,088 = 512·7·7
  on ImageNet); SmallCNN's equivalent, `layer: features.conv4` (6,272 features), reached only
  0.74 of the bits in 80 steps at smoke size with the paper's λ's (docs/schemes.md), so it is
  not the default.

Layers are looked up on `wrt.models.unwrap(model)`, so wrappers (DAWN, preprocessing) work.
"""

from __future__ import annotations

import torch
from torch import nn

from wrt.models import unwrap
from wrt.schemes.base import KeyMismatch
from wrt.validation import InvalidParameter


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(n, m) for n, m in unwrap(model).named_modules() if isinstance(m, nn.Conv2d)]


def named_layer(model: nn.Module, name: str, kinds: tuple[type, ...], key: str) -> nn.Module:
    """The submodule `name` of the classifier, which must be one of `kinds`; otherwise a
    one-line `InvalidParameter` listing the valid names."""
    net = unwrap(model)
    try:
        layer = net.get_submodule(name)
    except AttributeError:
        layer = None
    if not isinstance(layer, kinds):
        valid = [n for n, m in net.named_modules() if n and isinstance(m, kinds)]
        kind = "/".join(k.__name__ for k in kinds)
        raise InvalidParameter(f"{key}={name!r} is not a {kind} layer of {type(net).__name__}; "
                               f"valid names: {', '.join(valid)}")
    return layer


def key_layer(model: nn.Module, name: str, kind: type = nn.Module) -> nn.Module:
    """The layer `name` a key was made for; `KeyMismatch` when the model has no such layer."""
    try:
        layer = unwrap(model).get_submodule(name)
    except AttributeError:
        layer = None
    if not isinstance(layer, kind):
        raise KeyMismatch(f"layer {name!r}: the key expects a {kind.__name__}, "
                          f"the model has {type(layer).__name__ if layer is not None else 'no such layer'}")
    return layer


def fan_in(conv: nn.Conv2d) -> int:
    return conv.weight[0].numel()


def conv_layer(model: nn.Module, name: str | None, key: str, min_size: int = 1,
               size=fan_in) -> tuple[str, nn.Conv2d]:
    """(name, conv): the named convolution, or by default the first whose `size` (default: the
    weights of one filter) is at least `min_size` (the largest one if none is)."""
    if name is not None:
        return name, named_layer(model, name, (nn.Conv2d,), key)
    convs = conv_layers(model)
    if not convs:
        raise InvalidParameter(f"{key}: {type(unwrap(model)).__name__} has no convolution to mark")
    for n, m in convs:
        if size(m) >= min_size:
            return n, m
    return max(convs, key=lambda nm: size(nm[1]))


def activation_layer(model: nn.Module, name: str | None, key: str) -> tuple[str, nn.Module]:
    """(name, module) whose output activations carry a DeepSigns watermark."""
    net = unwrap(model)
    if name is not None:
        return name, named_layer(model, name, (nn.Module,), key)
    linears = [(n, m) for n, m in net.named_modules()
               if isinstance(m, nn.Linear) and n.startswith("features.")]
    return linears[-1] if linears else ("features", net.features)


class Activations:
    """Context manager recording the output of `layer` (flattened per sample) on each forward."""

    def __init__(self, layer: nn.Module):
        self.layer, self.value, self.handle = layer, None, None

    def _hook(self, module, inputs, output):
        # a copy: an in-place activation after the layer (SmallCNN's ReLU) must not change it
        self.value = output.flatten(1).clone()

    def __enter__(self) -> "Activations":
        self.handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


# a weight-projection scheme's carrier: conv weight [n, c, kh, kw] → flat vector
CARRIERS = {
    # the mean over the output filters (Uchida's permutation-invariant carrier, SoK §V-D): c·kh·kw values
    "mean_filter": lambda weight: weight.float().mean(0).flatten(),
    # the whole weight tensor (the SoK's "target layer has 432 weights" on CIFAR-10): n·c·kh·kw values
    "weights": lambda weight: weight.float().flatten(),
}


def carrier_size(conv: nn.Conv2d, carrier: str) -> int:
    return fan_in(conv) if carrier == "mean_filter" else conv.weight.numel()


def random_bits(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(2, (n,), generator=generator).float()
