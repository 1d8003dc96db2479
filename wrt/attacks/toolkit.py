"""The attack toolkit: what the concrete attacks share, so that each attack module imports only
`wrt.attacks.base` and this module.

- Data: the attacker's labelled third (`attacker_data`), the extraction attacker's domain data
  (`domain_data`) and the victim's answers (`victim_answers`), all drawn and counted through the
  `AttackContext` under the attacker's data budget (SoK §VIII-E).
- Fine-tuning (`fine_tune`, `HeadOnly`, `frozen`): the attack trainer on the attacker's data,
  all layers or only the classifier (Uchida et al. 2017; SoK §V-B).
- Layer lookup: the classifier inside a (wrapped) model (`classifier_of`); the activation
  stages of its feature extractor, their mean activations and pruning neurons by masking their
  activations (fine-pruning, Neural Cleanse, Neural Laundering); hidden-unit pairs, a producer
  layer whose output reaches exactly one consumer layer through per-channel operations (the
  function-preserving and obfuscation attacks, `wrt.attacks.equivalence`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from wrt.attacks.base import AttackContext
from wrt.data.loader import to_float
from wrt.models import unwrap
from wrt.validation import require

# the label sources of `attacker_data`: the budget's vocabulary (`predicted`: the older name of `queried`)
LABELS = {"ground_truth": "ground_truth", "queried": "queried", "predicted": "queried"}


# ---- data ------------------------------------------------------------------------------------

def domain_data(ctx: AttackContext) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The extraction attacker's images: the whole training set, without its labels unless
    the data budget grants ground truth (drawn under the budget; recorded)."""
    return ctx.draw(ctx.data.train_x, ctx.data.train_y)


ANSWERS = ("soft", "top1")  # what the victim answers a query with: its softmax output or its top-1 label


def victim_answers(model: nn.Module, images: torch.Tensor, ctx: AttackContext, labels: str) -> torch.Tensor:
    """The victim's answers for `images` (one query each): probability rows [N, classes]
    (`soft`) or class indices [N] (`top1`); the Trainer's loss takes either."""
    logits = ctx.query(model, images)
    return F.softmax(logits, dim=1) if labels == "soft" else logits.argmax(1)


def attacker_data(ctx: AttackContext, model: nn.Module, labels: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The attacker's third of the training images under its data budget, with ground-truth
    labels (`labels="ground_truth"`: labeled-data attacks) or with the labels `model` answers
    for them (`"queried"`: domain-data attacks; `"predicted"` is its older name); the budget's
    `labels` setting overrides the attack's choice. Call it before changing `model`: the
    answers are those of the model under attack."""
    protocol = LABELS.get(labels)
    require(protocol is not None, "labels", labels, "ground_truth or queried")
    images, truth = ctx.draw(*ctx.data.attacker())
    return images, ctx.labeled(model, images, truth, protocol)


# ---- fine-tuning -----------------------------------------------------------------------------

class HeadOnly(nn.Module):
    """Trains only the classifier: the feature extractor stays in eval mode, so its
    BatchNorm statistics stay frozen too (used by FTLL and RTLL)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.features.eval()
        return self


@contextmanager
def frozen(module: nn.Module):
    """Temporarily turn off gradients of `module`'s parameters."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def fine_tune(ctx: AttackContext, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *,
              epochs: float, lr: float, head_only: bool = False, desc: str = "attack", **fit_kwargs):
    """Fine-tune the classifier inside `model` in place with the attack trainer (all layers,
    or only the last one) on the attacker's data, with the dataset's augmentation."""
    net = unwrap(model)
    if head_only:
        with frozen(net.features):
            return ctx.trainer.fit(HeadOnly(net), images, targets, epochs=epochs, lr=lr,
                                   augment=ctx.data.augment, desc=desc, **fit_kwargs)
    return ctx.trainer.fit(net, images, targets, epochs=epochs, lr=lr, augment=ctx.data.augment,
                           desc=desc, **fit_kwargs)


# ---- layer lookup ----------------------------------------------------------------------------

def classifier_of(model: nn.Module, attack: str) -> nn.Module:
    """The `ImageClassifier` inside `model`, or a clear error naming the attack."""
    net = unwrap(model)
    require(isinstance(getattr(net, "classifier", None), nn.Linear) and hasattr(net, "features"),
            f"attack.{attack}", type(net).__name__, "a model with `features` and a Linear `classifier`")
    return net


# ---- neurons of the feature extractor (fine-pruning, Neural Cleanse, Neural Laundering) ----

SKIPPED_STAGES = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d,
                  nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout, nn.Identity, nn.BatchNorm2d,
                  nn.BatchNorm1d)


def activation_stages(net: nn.Module) -> list[tuple[str, nn.Module]]:
    """The stages of `net.features` whose outputs are neuron activations: the direct children
    that are blocks or nonlinearities (bare conv/linear/norm/pool/flatten layers are skipped,
    their activation is the next stage's). small_cnn: conv1..conv4 blocks and the hidden ReLU;
    lenet: relu1..relu4; resnet18: the stem ReLU and each residual block."""
    features = net.features
    children = list(features.named_children())
    if len(children) == 1 and not isinstance(children[0][1], SKIPPED_STAGES):  # one wrapped net
        features = children[0][1]
        children = list(features.named_children())
    return [(name, m) for name, m in children if not isinstance(m, SKIPPED_STAGES)]


@torch.no_grad()
def mean_activations(net: nn.Module, modules: list[nn.Module], images: torch.Tensor, trainer,
                     transform=None, batch_size: int = 256) -> list[torch.Tensor]:
    """Mean activation per channel (4-D outputs: averaged over samples and space) or per unit
    (2-D outputs) of each module in `modules` on `images` (uint8 or float), in eval mode.
    `transform` maps a float batch before the forward pass (e.g. to stamp a trigger)."""
    sums: list = [None] * len(modules)
    counts = [0] * len(modules)

    def hook(i):
        def record(module, inputs, output):
            dims = [0, 2, 3] if output.dim() == 4 else [0]
            total = output.detach().float().sum(dims)
            sums[i] = total if sums[i] is None else sums[i] + total
            counts[i] += output.numel() // output.shape[1]
        return record

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        for start in range(0, len(images), batch_size):
            x = to_float(images[start:start + batch_size]).to(device)
            if transform is not None:
                x = transform(x)
            with trainer.autocast():
                net(x)
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    return [s.cpu() / n if s is not None else None for s, n in zip(sums, counts)]


class ChannelMask:
    """Forward hook that zeroes pruned channels (4-D outputs) or units (2-D outputs) of a
    stage: the pruned neurons' activations are zero in every later forward pass."""

    def __init__(self, keep: torch.Tensor):
        self.keep = keep.float()

    def __call__(self, module, inputs, output):
        keep = self.keep.to(output.device, output.dtype)
        return output * (keep.view(1, -1, 1, 1) if output.dim() == 4 else keep.view(1, -1))


def prune_neurons(module: nn.Module, pruned: torch.Tensor) -> None:
    """Zero the activations of the channels/units in the boolean mask `pruned` from now on."""
    module.register_forward_hook(ChannelMask(~pruned))


def last_conv_stage(net: nn.Module, sample: torch.Tensor, attack: str) -> tuple[str, nn.Module]:
    """The last stage of `net.features` with a 4-D (convolutional) activation."""
    stages = activation_stages(net)
    shapes = {}
    handles = [m.register_forward_hook(lambda mod, i, o, name=name: shapes.__setitem__(name, o.dim()))
               for name, m in stages]
    try:
        with torch.no_grad():
            was_training = net.training
            net.eval()
            net(sample)
            net.train(was_training)
    finally:
        for h in handles:
            h.remove()
    conv = [(name, m) for name, m in stages if shapes.get(name) == 4]
    require(bool(conv), f"attack.{attack}", type(net).__name__,
            "a model whose features have a convolutional stage")
    return conv[-1]


# ---- hidden-unit pairs (feature permutation, scaling, dummy neurons) ----

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


def consumer_columns(pair: HiddenPair) -> torch.Tensor:
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
    pair.consumer.weight.data = consumer_columns(pair)[:, perm].reshape(shape).clone()
