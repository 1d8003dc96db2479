"""Group configs (scheme, attack, dataset, model, trainer): building the object a config names and
recording its parameters. Shared by the pipeline and the combined attack (`wrt.attacks.compose`)."""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from wrt.sweeper import ablated_params

DESCRIPTIVE_KEYS = ("name", "ablation")  # documentation in a group config, not constructor args


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


def ablated_of(node) -> list[str]:
    """The parameters the paper ablates over (the config's `ablation` keys): the ones that
    distinguish one defender or attacker configuration from another."""
    return ablated_params(as_dict(node).get("ablation"))
