"""An active scheme (DAWN) under white-box attacks: the attacker extracts a model from the deployed wrapper
first (SoK Fig. 3), the attack gets that model, and the key is verified on what the attack returns."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from wrt.attacks.base import Attack
from wrt.config import build
from wrt.models import SmallCNN
from wrt.pipeline import Run, Stages, execute, load_data, new_record
from wrt.schemes.dawn import DawnWrapper
from wrt.train import Trainer

TINY = ("budget=smoke", "budget.max_train=1500", "budget.max_test=500", "scheme=dawn", "scheme.rate=0.05")


class Spy(Attack):
    """A model-modification attack that keeps the model it receives and returns a copy whose last layer's bias
    favours class 0 (so the key is verified on what the attack returned, not on what it received)."""

    category = "model_modification"

    def __call__(self, model, ctx):
        self.received = model
        attacked = copy.deepcopy(model)
        with torch.no_grad():
            last = [m for m in attacked.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.bias[0] += 1000.0
        self.returned = attacked
        return attacked


def test_white_box_attacks_on_dawn_run_on_a_model_extracted_from_its_wrapper(compose_cfg, fmnist_full):
    cfg = compose_cfg(*TINY, "attack=feature_permutation")
    data = load_data(cfg)
    scheme, spy = build(cfg.scheme), Spy()
    run = Run(cfg, data, scheme, spy)
    record = new_record(cfg)
    run.execute(Stages(record))

    assert not isinstance(spy.received, DawnWrapper) and isinstance(spy.received, SmallCNN)  # not the wrapper
    extracted = record.attack.extracted
    assert extracted.attack == "retraining" and extracted.params == {"labels": "soft"} and not extracted.cached
    assert extracted.queries == len(data.train_x) and record.timing_s.extract > 0
    assert record.marked.wm_acc == 1.0  # the wrapper answers its key by construction ...
    key = run.key(run.source_model(cfg.seed)[0])
    trainer = Trainer(progress=False)
    # ... the cell is the key verified on the attacked extracted model
    assert abs(record.surrogate.wm_acc - scheme.extract(spy.returned, key, trainer)) < 1e-9
    assert abs(extracted.wm_acc - scheme.extract(spy.received, key, trainer)) < 1e-9
    assert record.surrogate.test_acc < 0.2  # the spy's bias: everything is class 0
    assert abs(record.stealing_loss - (record.marked.test_acc - record.surrogate.test_acc)) < 1e-9

    # every white-box row of this (scheme config, seed) attacks the same extraction, from the store
    second = execute(compose_cfg(*TINY, "attack=input_smoothing"))
    assert second["status"] == "ok", second.get("error")
    assert second["attack"]["extracted"]["cached"] is True
    assert second["attack"]["extracted"]["test_acc"] == extracted.test_acc
    assert len(list(Path(cfg.store_dir).glob("extracted/*.pt"))) == 1
    assert second["timing_s"]["attack"] < second["timing_s"]["total"]

    # extraction attacks query the wrapper itself; a passive scheme's model is attacked as it is
    assert not Run(cfg, data, scheme, build(compose_cfg(*TINY, "attack=retraining").attack)).extracts_first()
    assert not Run(cfg, data, build(compose_cfg("scheme=adi").scheme), spy).extracts_first()
