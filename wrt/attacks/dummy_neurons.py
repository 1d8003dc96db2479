"""Dummy neurons: structural obfuscation that keeps the network's function (Yan et al.,
"Rethinking White-Box Watermarks on Deep Learning Models under Neural Structural
Obfuscation", USENIX Security 2023, §4).

The attack widens hidden layers with neurons that do not change any output, so a white-box
verifier that reads a layer of a known shape or position finds another one. It acts on the
same hidden-unit pairs as the function-preserving attacks of `wrt.attacks.equivalence`: a
conv/linear layer (the producer) whose output reaches exactly one later conv/linear layer
(the consumer) through per-channel operations only (small_cnn: conv1→conv2, conv2→conv3,
conv3→conv4, conv4→fc1 through pooling and flatten, fc1→classifier; lenet: conv1→conv2,
conv2→fc1, fc1→fc2, fc2→classifier; the residual networks: the convolutions inside each
block). Each producer gets `channels` new output channels/neurons (its weight rows and bias,
every BatchNorm in between — its entries copied from random existing channels — and the
attributes `out_channels`/`out_features`/`num_features`), and its consumer the matching input
columns (`in_channels`/`in_features`; for a flattened conv output, one spatial block each):

- `cancelling`: dummies come in pairs with identical random incoming weights (scaled like
  the producer's own weights), so they carry identical activations, and outgoing weights
  +v and −v (v scaled like the consumer's weights): their contributions cancel.
- `zero`: random incoming weights and zero outgoing weights.

With `shuffle`, the new units are then mixed among the old ones by a random permutation of
the widened layer (producer rows, BatchNorm entries and consumer columns alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from wrt.attacks.base import Attack, AttackContext
from wrt.attacks.toolkit import HiddenPair, classifier_of, hidden_pairs, permute_pair
from wrt.params import param
from wrt.validation import InvalidParameter

MODES = ("cancelling", "zero")


def _random_like(shape, scale: float, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return (torch.randn(shape, generator=generator) * scale).to(like.device, like.dtype)


@torch.no_grad()
def widen_pair(pair: HiddenPair, count: int, cancelling: bool, scales: dict, generator: torch.Generator) -> None:
    """Add `count` dummy units to `pair` (an even count when `cancelling`)."""
    producer, consumer, units = pair.producer, pair.consumer, pair.units
    copies = 2 if cancelling else 1
    distinct = count // copies
    w = producer.weight
    incoming = _random_like((distinct, *w.shape[1:]), scales[pair.producer_name], generator, w)
    producer.weight = nn.Parameter(torch.cat([w, incoming.repeat_interleave(copies, 0)]))
    if producer.bias is not None:
        b = producer.bias
        new = _random_like((distinct,), b.std().item(), generator, b).repeat_interleave(copies)
        producer.bias = nn.Parameter(torch.cat([b, new]))
    source = torch.randint(units, (distinct,), generator=generator).repeat_interleave(copies)
    for norm in pair.norms:
        for name in ("weight", "bias", "running_mean", "running_var"):
            tensor = getattr(norm, name)
            if tensor is not None:
                grown = torch.cat([tensor.data, tensor.data[source.to(tensor.device)]])
                setattr(norm, name, nn.Parameter(grown) if isinstance(tensor, nn.Parameter) else grown)
        norm.num_features = units + count
    if isinstance(producer, nn.Conv2d):
        producer.out_channels = units + count
    else:
        producer.out_features = units + count

    columns = consumer.weight.data.reshape(consumer.weight.shape[0], units, -1)  # [out, units, rest]
    out, _, rest = columns.shape
    if cancelling:
        v = _random_like((out, distinct, 1, rest), scales[pair.consumer_name], generator, columns)
        outgoing = torch.cat([v, -v], 2).reshape(out, count, rest)
    else:
        outgoing = columns.new_zeros(out, count, rest)
    grown = torch.cat([columns, outgoing], 1)
    if isinstance(consumer, nn.Conv2d):
        consumer.weight = nn.Parameter(grown.reshape(out, units + count, *consumer.kernel_size))
        consumer.in_channels = units + count
    else:
        consumer.weight = nn.Parameter(grown.reshape(out, -1))
        consumer.in_features = consumer.weight.shape[1]


@dataclass(eq=False)
class DummyNeurons(Attack):
    """Widen every hidden-unit pair (or the producers named in `layers`) by `channels` dummy
    units — an integer, or a fraction of the producer's width (at least one unit; rounded up
    to an even count in mode `cancelling`) — that leave every output unchanged."""

    category = "obfuscation"

    channels: int | float = param(0.25, what="an integer ≥ 1 (units per layer) or a fraction in (0, 1] of each "
                                             "layer's width")
    mode: str = param("cancelling", choices=MODES)
    shuffle: bool = param(True)
    layers: Sequence[str] | None = param(None, null="every eligible layer", what="a non-empty list of layer names")

    def __post_init__(self):
        super().__post_init__()
        self.layers = None if self.layers is None else list(self.layers)

    def check(self):
        super().check()
        channels, layers = self.channels, self.layers
        self.require(channels >= 1 if isinstance(channels, int) else 0 < channels <= 1, "channels")
        self.require(layers is None or (isinstance(layers, Sequence) and not isinstance(layers, str) and len(layers) > 0
                                        and all(isinstance(n, str) and n for n in layers)), "layers")

    def count(self, units: int) -> int:
        n = self.channels if isinstance(self.channels, int) else max(1, round(self.channels * units))
        return n + n % 2 if self.mode == "cancelling" else n

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        net = classifier_of(model, "dummy_neurons")
        pairs = hidden_pairs(net, "dummy_neurons")
        if self.layers is not None:
            valid = [p.producer_name for p in pairs]
            unknown = [n for n in self.layers if n not in valid]
            if unknown:
                raise InvalidParameter(f"attack.layers: {', '.join(map(repr, unknown))} not a widenable layer "
                                       f"of {type(net).__name__}; valid names: {', '.join(valid)}")
            pairs = [p for p in pairs if p.producer_name in self.layers]
        # dummy weights are scaled like each layer's original weights
        scales = {name: m.weight.detach().float().std().item()
                  for p in pairs for name, m in ((p.producer_name, p.producer), (p.consumer_name, p.consumer))}
        generator = ctx.generator()
        for pair in pairs:
            widen_pair(pair, self.count(pair.units), self.mode == "cancelling", scales, generator)
        if self.shuffle:
            for pair in pairs:
                permute_pair(pair, torch.randperm(pair.units, generator=generator))
        return model
