"""The training loop and its hooks."""

from __future__ import annotations

import pytest
import torch

from wrt.data.sources import synthetic
from wrt.models import LeNet
from wrt.train import (EarlyStopping, KeyMixer, NonFiniteLoss, OneCycle, StepDecay, Trainer,
                       classification_loss)


def small_task():
    data = synthetic(num_train=600, num_test=200)
    torch.manual_seed(0)
    return data, LeNet(num_classes=10, in_channels=1, mean=data.mean, std=data.std)


def test_training_lowers_loss_and_learns(trainer):
    data, model = small_task()
    before = trainer.accuracy(model, data.test_x, data.test_y)
    history = trainer.fit(model, data.train_x, data.train_y, epochs=4, scale_epochs=False, lr=0.05)
    assert history.losses[-1] < history.losses[0]
    assert trainer.accuracy(model, data.test_x, data.test_y) > max(0.6, before + 0.3)


def test_hooks_extra_batch_and_extra_loss_are_used(trainer):
    data, model = small_task()
    seen, calls = [], []
    key_x, key_y = torch.rand(5, 1, 28, 28), torch.zeros(5, dtype=torch.long)
    mixer = KeyMixer(key_x, key_y, per_batch=2)

    def extra_batch(step):
        seen.append(step)
        return mixer(step)

    def extra_loss(model, x, y, logits):
        calls.append(len(x))
        return logits.pow(2).mean() * 0

    trainer.fit(model, data.train_x, data.train_y, epochs=1, scale_epochs=False,
                extra_batch=extra_batch, extra_loss=extra_loss)
    steps = -(-600 // 128)
    assert seen == list(range(steps)) and calls[0] == 128 + 2


def test_early_stopping_and_max_steps(trainer):
    data, model = small_task()
    history = trainer.fit(model, data.train_x, data.train_y, epochs=50, scale_epochs=False,
                          stop=EarlyStopping(lambda m: 1.0, patience=2), check_every=1)
    assert history.stopped_early and history.steps == 3  # the first check sets the baseline
    history = trainer.fit(model, data.train_x, data.train_y, epochs=5, scale_epochs=False, max_steps=3)
    assert history.steps == 3


def test_non_finite_loss_is_an_error(trainer):
    data, model = small_task()
    with pytest.raises(NonFiniteLoss, match="nan"):
        trainer.fit(model, data.train_x, data.train_y, epochs=1, scale_epochs=False,
                    extra_loss=lambda *a: torch.tensor(float("nan")))


def test_epoch_scaling_and_schedules():
    assert Trainer(epoch_scale=0.2).scaled_epochs(10) == 2
    assert Trainer(epoch_scale=0.01).scaled_epochs(10) == 1
    assert OneCycle(0.2)(0.0, 10) == 0 and OneCycle(0.2)(2.0, 10) == 1 and OneCycle(0.2)(10, 10) == 0
    assert StepDecay([3, 4])(2.9, 5) == 1 and abs(StepDecay([3, 4])(4.5, 5) - 0.01) < 1e-12


def test_soft_label_loss_matches_hard_labels_for_one_hot():
    logits = torch.randn(4, 3)
    hard = torch.tensor([0, 2, 1, 1])
    soft = torch.nn.functional.one_hot(hard, 3).float()
    assert torch.allclose(classification_loss(logits, hard), classification_loss(logits, soft))


def test_checkpoint_resume_matches_an_uninterrupted_run(tmp_path, trainer):
    data, model = small_task()
    reference = trainer.fit(model, data.train_x, data.train_y, epochs=3, scale_epochs=False, augment=data.augment)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    class Killed(Exception):
        pass

    def die_in_epoch_three(step):
        if step == 11:  # 5 steps per epoch: after the checkpoints of epochs 1 and 2
            raise Killed

    checkpoint = tmp_path / "source.ckpt"
    _, interrupted = small_task()
    with pytest.raises(Killed):
        trainer.fit(interrupted, data.train_x, data.train_y, epochs=3, scale_epochs=False,
                    augment=data.augment, extra_batch=die_in_epoch_three, checkpoint=checkpoint)
    assert checkpoint.exists()
    _, resumed = small_task()
    history = trainer.fit(resumed, data.train_x, data.train_y, epochs=3, scale_epochs=False,
                          augment=data.augment, checkpoint=checkpoint)
    assert history.steps == reference.steps and history.losses == reference.losses
    assert all(torch.equal(expected[k], v) for k, v in resumed.state_dict().items())
    # the checkpoint holds the finished training until the caller has stored the model: a kill
    # before that point loses no epoch (the store deletes it after saving)
    assert checkpoint.exists()
    _, again = small_task()
    history = trainer.fit(again, data.train_x, data.train_y, epochs=3, scale_epochs=False, augment=data.augment,
                          extra_batch=lambda step: pytest.fail("trained again"), checkpoint=checkpoint)
    assert history.steps == reference.steps and history.losses == reference.losses
    assert all(torch.equal(expected[k], v) for k, v in again.state_dict().items())


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path, trainer):
    from wrt.store import CorruptArtifact

    data, model = small_task()
    checkpoint = tmp_path / "bad.ckpt"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptArtifact, match="delete it and rerun"):
        trainer.fit(model, data.train_x, data.train_y, epochs=1, scale_epochs=False, checkpoint=checkpoint)
