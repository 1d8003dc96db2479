"""No Table V row is shortened by the budget's `epoch_scale` (issue #29, item 4): at `budget=demo` every
Table V attack that has epochs (or frozen batches) runs at the paper's, through `Attack.paper_epochs` and
`budget.paper_epoch_scale`; the other attacks keep `trainer.epoch_scale`."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from wrt.config import build
from wrt.pipeline import Run

from conftest import CONFIG_DIR

TABLE5 = OmegaConf.load(f"{CONFIG_DIR}/experiment/table5.yaml").hydra.sweeper.params.attack.split(",")


def trained_for(attack) -> set[str]:
    """The attack's parameters that set how long it trains (epochs, frozen batches)."""
    fields = dataclasses.fields(attack) if dataclasses.is_dataclass(attack) else ()
    return {f.name for f in fields if "epochs" in f.name or "batches" in f.name}


def attack_trainer(compose_cfg, *overrides):
    cfg = compose_cfg(*overrides)
    return Run(cfg, None, build(cfg.scheme), build(cfg.attack)).attack_trainer


def test_table5_lists_the_papers_ten_rows():
    assert len(TABLE5) == 10 and {"neural_cleanse", "transfer_learning", "smooth_retraining"} <= set(TABLE5)


@pytest.mark.parametrize("name", TABLE5)
def test_every_table5_row_with_epochs_runs_at_the_papers_epochs_on_demo(compose_cfg, name):
    attack = build(compose_cfg(f"attack={name}").attack)
    if trained_for(attack):  # the rows without epochs train for the source's epochs or not at all
        assert attack.paper_epochs, f"{name} trains for {sorted(trained_for(attack))} but is scaled by the budget"
        assert attack_trainer(compose_cfg, "budget=demo", f"attack={name}").epoch_scale == 1.0


def test_other_attacks_and_budgets_keep_the_trainers_epoch_scale(compose_cfg):
    assert attack_trainer(compose_cfg, "budget=demo", "attack=adversarial_training").epoch_scale == 0.2
    assert attack_trainer(compose_cfg, "budget=default", "attack=transfer_learning").epoch_scale == 0.2
    assert attack_trainer(compose_cfg, "budget=demo", "attack=transfer_learning").scaled_epochs(5) == 5
