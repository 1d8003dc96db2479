"""Mixup fine-tuning (`ftal_mixup`), on the small Fashion-MNIST victim of the model-modification
tests: batches become mixtures with soft targets, the model stays accurate and ends up
elsewhere than FTAL's."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch

from wrt.attacks.base import AttackContext
from wrt.attacks.finetuning import FTAL
from wrt.attacks.mixup import FTALMixup, Mixup
from wrt.models import SmallCNN
from wrt.train import Batch, Callback, Trainer
from wrt.validation import InvalidParameter


class Targets(Callback):
    """Keeps the targets of every batch the model is trained on."""

    def __init__(self):
        self.seen = []

    def loss(self, model, batch, logits):
        self.seen.append(batch.targets.detach().clone())


class WatchingTrainer(Trainer):
    """The attack trainer, with a `Targets` callback after the attack's own."""

    def fit(self, *args, callbacks=(), **kwargs):
        self.targets = Targets()
        return super().fit(*args, callbacks=[*callbacks, self.targets], **kwargs)


def run_attack(victim, data, attack):
    trainer = WatchingTrainer(batch_size=64, progress=False, seed=0, epoch_scale=0.1, channels_last=False,
                              optimizer=partial(torch.optim.SGD, lr=0.01, momentum=0.9))
    ctx = AttackContext(data, trainer, trainer, lambda: SmallCNN(mean=data.mean, std=data.std), seed=0)
    return attack(copy.deepcopy(victim), ctx), trainer.targets.seen


def test_mixup_mixes_a_batch_with_itself_into_probability_rows():
    images, labels = torch.rand(16, 1, 4, 4), torch.arange(16) % 10
    batch = Batch(images.clone(), labels.clone())
    Mixup(alpha=1.0, num_classes=10, seed=0).on_batch(batch, 0)
    assert batch.targets.shape == (16, 10) and batch.targets.min() >= 0
    assert torch.allclose(batch.targets.sum(1), torch.ones(16))
    assert batch.images.min() >= 0 and batch.images.max() <= 1  # convex combinations
    again = Batch(images.clone(), labels.clone())
    Mixup(alpha=1.0, num_classes=10, seed=0).on_batch(again, 0)
    assert torch.equal(again.images, batch.images) and torch.equal(again.targets, batch.targets)


def test_ftal_mixup_trains_on_soft_targets_keeps_accuracy_and_differs_from_ftal(narrow_victim, narrow_subset):
    trainer = Trainer(progress=False)
    before = trainer.accuracy(narrow_victim, narrow_subset.test_x, narrow_subset.test_y)
    mixed, targets = run_attack(narrow_victim, narrow_subset, FTALMixup(alpha=1.0, epochs=10))
    plain, plain_targets = run_attack(narrow_victim, narrow_subset, FTAL(epochs=10))
    assert len(targets) == len(plain_targets) == 5  # one epoch of 300 images at batch 64
    assert all(t.dim() == 2 and torch.allclose(t.sum(1), torch.ones(len(t))) for t in targets)
    assert any(((t > 0) & (t < 1)).any() for t in targets)  # mixtures, not one-hot rows
    assert all(t.dim() == 1 for t in plain_targets)
    assert trainer.accuracy(mixed, narrow_subset.test_x, narrow_subset.test_y) >= before - 0.1
    assert any(not torch.equal(a, b) for a, b in zip(mixed.state_dict().values(), plain.state_dict().values()))


def test_alpha_must_be_positive():
    with pytest.raises(InvalidParameter, match="attack.alpha"):
        FTALMixup(alpha=0)
