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

from dataclasses import dataclass

import torch
from torch import nn

from wrt.attacks.base import Attack, AttackContext
from wrt.attacks.toolkit import HiddenPair, classifier_of, consumer_columns, hidden_pairs, permute_pair
from wrt.params import param
from wrt.validation import require


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
    columns = consumer_columns(pair)
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
