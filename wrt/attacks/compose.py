"""Combined attacks (SoK §VIII-H "Creating Dominant Attacks"): several removal attacks applied
in sequence, each to the previous one's surrogate; e.g. transfer learning followed by label
smoothing, which the SoK finds dominant on CIFAR-10 and ImageNet.

A combination is pure configuration: a YAML under `wrt/configs/attack/` whose Hydra defaults list
places existing attack configs at `steps.0`, `steps.1`, ... (see `tl_label_smoothing.yaml` and
docs/attacks.md). All steps share the run's `AttackContext`, so data use adds up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from wrt.attacks.base import Attack, AttackContext
from wrt.config import build, params_of
from wrt.validation import require


def _ordered(steps) -> list[dict]:
    """Steps from a list, or from a mapping keyed 0, 1, ... (Hydra packages `steps.<i>`)."""
    if isinstance(steps, (DictConfig, ListConfig)):
        steps = OmegaConf.to_container(steps, resolve=True)
    if isinstance(steps, Mapping):
        keys = list(steps)
        require(all(str(k).isdigit() for k in keys), "attack.steps", keys, "keys 0, 1, 2, ...")
        steps = [steps[k] for k in sorted(keys, key=lambda k: int(k))]
    require(isinstance(steps, Sequence) and len(steps) > 0 and all(isinstance(s, dict) and "_target_" in s
                                                                   for s in steps),
            "attack.steps", steps, "a non-empty list of attack configs (each with a _target_)")
    return list(steps)


@dataclass(eq=False)
class Sequential(Attack):
    category = "combined"

    steps: list | dict  # attack configs in order, or keyed 0, 1, ... (checked by `_ordered`)

    def __post_init__(self):
        super().__post_init__()
        self.configs = _ordered(self.steps)
        self.attacks: list[Attack] = [build(config) for config in self.configs]

    def recorded_params(self, params: dict) -> dict:
        """Each step's name, category and parameters, in order."""
        return {"steps": [{"name": config.get("name", config["_target_"]), "category": attack.category,
                           "params": params_of(config)} for config, attack in zip(self.configs, self.attacks)]}

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        for attack in self.attacks:
            model = attack(model, ctx)
        return model
