"""Function-preserving attacks: feature permutation (Lukas et al., S&P 2022, §V-B and
Appendix XIII-B, adaptive against DeepSigns) and scaling (Liu et al., "Watermarking Deep
Neural Networks with Greedy Residuals", ICML 2021, §4: ReLU networks are invariant to
multiplying a hidden neuron's incoming weights by δ > 0 and its outgoing weights by 1/δ).

Both act on *hidden-unit pairs*: a convolutional or linear layer (the producer) whose output
reaches exactly one later convolutional or linear layer (the consumer) through per-channel
operations only — BatchNorm, ReLU, max/average pooling, dropout, flatten. The pairs are
found by tracing the model with torch.fx, so every architecture is handled: in small_cnn and
lenet every conv/linear layer but the classifier produces such a pair (conv1→conv2,
conv2→conv3, conv3→conv4, conv4→fc1 through pooling and flatten, fc1→classifier); in the
residual networks, the convolutions inside each block (conv1→conv2, and conv2→conv3 in
bottlenecks). Outputs feeding a residual sum or a concatenation are left alone, as are the
network's input and its logits.

- Permutation: the producer's output units (weight rows, bias) and every BatchNorm in
  between (affine parameters and running statistics) are permuted by a random permutation,
  and the consumer's input weights (columns; for a flattened conv output, whole spatial
  blocks) by the same permutation.
- Scaling: each hidden unit's output is multiplied by δ at the last affine map before the
  nonlinearity — the last BatchNorm's weight and bias if there is one, else the producer's
  weight and bias — and the consumer's input weights are divided by δ. ReLU and pooling are
  positively homogeneous, so the network computes the same function (δ > 0).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from wrt.attacks.base import Attack, AttackContext
from wrt.attacks.finetuning import classifier_of
from wrt.params import param
from wrt.validation import require

LAYERS = (nn.Conv2d, nn.Linear)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
PER_CHANNEL = (nn.ReLU, nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
               nn.Dropout, nn.Identity)
PER_CHANNEL_FUNCTIONS = (F.relu, torch.relu, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
                         F.adaptive_max_pool2d, F.dropout)
FLATTEN_FUNCTIONS = (torch.flatten,)


@dataclass
class HiddenPair:
    producer_name: str
    producer: nn.Module
    consumer_name: str
    consumer: nn.Module
    norms: list = field(default_factory=list)
    flattened: bool = False

    @property
    def units(self) -> int:
        return self.producer.out_channels if isinstance(self.producer, nn.Conv2d) else self.producer.out_features


def _plain(layer: nn.Module) -> bool:
    return not isinstance(layer, nn.Conv2d) or layer.groups == 1


def hidden_pairs(net: nn.Module, attack: str) -> list[HiddenPair]:
    """All producer → consumer pairs of `net` connected through per-channel operations."""
    try:
        graph = fx.symbolic_trace(net).graph
    except Exception as e:  # control flow fx cannot trace
        raise ValueError(f"attack.{attack}: cannot trace {type(net).__name__} with torch.fx "
                         f"to find its hidden layers ({type(e).__name__}: {e})") from None
    modules = dict(net.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], LAYERS):
            continue
        producer = modules[node.target]
        if calls[node.target] != 1 or not _plain(producer):
            continue
        norms, flattened, current = [], False, node
        while len(current.users) == 1:
            nxt = next(iter(current.users))
            if not nxt.args or nxt.args[0] is not current:
                break
            if nxt.op == "call_module":
                module = modules[nxt.target]
                if isinstance(module, LAYERS):
                    if calls[nxt.target] == 1 and _plain(module) and _fits(producer, module, flattened):
                        pairs.append(HiddenPair(node.target, producer, nxt.target, module, norms, flattened))
                    break
                if isinstance(module, NORMS) and calls[nxt.target] == 1:
                    norms = norms + [module]
                elif isinstance(module, nn.Flatten):
                    flattened = True
                elif not isinstance(module, PER_CHANNEL):
                    break
            elif nxt.op == "call_function" and nxt.target in PER_CHANNEL_FUNCTIONS:
                pass
            elif nxt.op == "call_function" and nxt.target in FLATTEN_FUNCTIONS:
                flattened = True
            else:
                break
            current = nxt
    require(bool(pairs), f"attack.{attack}", type(net).__name__,
            "a model with hidden layers connected only through per-channel operations")
    return pairs


def _fits(producer: nn.Module, consumer: nn.Module, flattened: bool) -> bool:
    units = producer.out_channels if isinstance(producer, nn.Conv2d) else producer.out_features
    if isinstance(consumer, nn.Conv2d):
        return isinstance(producer, nn.Conv2d) and not flattened and consumer.in_channels == units
    if isinstance(producer, nn.Conv2d):
        return flattened and consumer.in_features % units == 0
    return consumer.in_features == units


def _consumer_columns(pair: HiddenPair) -> torch.Tensor:
    """The consumer's weight viewed as [out, units, rest] (a copy-free view when possible)."""
    w = pair.consumer.weight.data
    return w.reshape(w.shape[0], pair.units, -1)


@torch.no_grad()
def permute_pair(pair: HiddenPair, perm: torch.Tensor) -> None:
    producer = pair.producer
    producer.weight.data = producer.weight.data[perm].clone()
    if producer.bias is not None:
        producer.bias.data = producer.bias.data[perm].clone()
    for norm in pair.norms:
        for tensor in (norm.weight, norm.bias, norm.running_mean, norm.running_var):
            if tensor is not None:
                tensor.data = tensor.data[perm].clone()
    shape = pair.consumer.weight.shape
    pair.consumer.weight.data = _consumer_columns(pair)[:, perm].reshape(shape).clone()


@torch.no_grad()
def scale_pair(pair: HiddenPair, factors: torch.Tensor) -> None:
    """Multiply each hidden unit's output by factors[u] > 0 and its outgoing weights by 1/factors[u]."""
    if pair.norms:
        affine = pair.norms[-1]
        require(affine.affine, "attack.scaling", type(affine).__name__, "a BatchNorm with affine parameters")
        targets = [affine.weight, affine.bias]
    else:
        targets = [pair.producer.weight] + ([pair.producer.bias] if pair.producer.bias is not None else [])
    for tensor in targets:
        view = [-1] + [1] * (tensor.dim() - 1)
        tensor.data.mul_(factors.to(tensor.device, tensor.dtype).view(view))
    shape = pair.consumer.weight.shape
    columns = _consumer_columns(pair)
    pair.consumer.weight.data = (columns / factors.to(columns.device, columns.dtype).view(1, -1, 1)).reshape(shape)


class FeaturePermutation(Attack):
    """Randomly permute the hidden units of every hidden-unit pair (the function is kept)."""

    category = "model_modification"

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        net = classifier_of(model, "feature_permutation")
        generator = ctx.generator()
        for pair in hidden_pairs(net, "feature_permutation"):
            permute_pair(pair, torch.randperm(pair.units, generator=generator))
        return model


@dataclass(eq=False)
class Scaling(Attack):
    """Rescale every hidden unit by δ (`factor`) and its outgoing weights by 1/δ; with
    `randomize`, each unit gets its own factor, log-uniform in [1/δ, δ] (or [δ, 1/δ])."""

    category = "model_modification"

    factor: float = param(2.0, low=0, high=1e6, low_open=True)
    randomize: bool = param(False)

    def __post_init__(self):
        super().__post_init__()
        self.factor = float(self.factor)

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        net = classifier_of(model, "scaling")
        generator = ctx.generator()
        log = torch.log(torch.tensor(self.factor))
        for pair in hidden_pairs(net, "scaling"):
            if self.randomize:
                u = torch.rand(pair.units, generator=generator) * 2 - 1
                factors = torch.exp(u * log)
            else:
                factors = torch.full((pair.units,), self.factor)
            scale_pair(pair, factors)
        return model
