"""Group configs (scheme, attack, dataset, model, trainer): building the object a config names and
recording its parameters. Shared by the pipeline and the combined attack (`wrt.attacks.compose`)."""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from wrt.sweeper import ablated_params

# documentation in a group config, not constructor args: its name, its grid and its search space (wrt/search.py)
DESCRIPTIVE_KEYS = ("name", "ablation", "search")


def as_dict(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)


def build(node, **kwargs):
    """Instantiate a group config (`_target_`), leaving out its descriptive keys."""
    spec = {k: v for k, v in as_dict(node).items() if k not in DESCRIPTIVE_KEYS}
    try:
        return instantiate(spec, **kwargs)
    except InstantiationException as e:  # report the constructor's own error, not Hydra's wrapper
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise


def params_of(node) -> dict:
    """A component's parameters as recorded in the run JSON."""
    return {k: v for k, v in as_dict(node).items() if k not in DESCRIPTIVE_KEYS and not k.startswith("_")}


def ablated_of(node, searched: bool = False) -> list[str]:
    """The parameters the paper ablates over (the config's `ablation` keys): the ones that
    distinguish one defender or attacker configuration from another; with `searched` (a trial of an
    adaptive attacker's search), also those its `search:` block varies."""
    spec = as_dict(node)
    names = set(ablated_params(spec.get("ablation")))
    if searched:
        names |= set(spec.get("search") or {})
    return sorted(names)
