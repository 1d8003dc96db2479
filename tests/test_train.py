"""The training loop and its hooks."""

from __future__ import annotations

import pytest
import torch

from wrt.data.sources import synthetic
from wrt.models import LeNet
from wrt.train import (Batch, Callback, EarlyStopping, KeyMixer, LossTerm, NonFiniteLoss, OneCycle, StepDecay,
                       Trainer, classification_loss)
from wrt.validation import InvalidParameter


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


class Recorder(Callback):
    """Records the steps, the tagged rows and the batch sizes the loop shows its callbacks."""

    def __init__(self):
        self.steps, self.rows, self.sizes, self.stop_asks = [], [], [], []

    def on_batch(self, batch, step):
        self.steps.append(step)

    def loss(self, model, batch, logits):
        self.rows.append(dict(batch.rows))
        self.sizes.append((len(batch.images), len(batch.targets), len(logits)))
        return logits.pow(2).mean() * 0

    def should_stop(self, model, steps):
        self.stop_asks.append(steps)
        return False


def test_callbacks_see_each_step_and_the_rows_tagged_by_who_appended_them(trainer):
    data, model = small_task()
    key_x, key_y = torch.rand(5, 1, 28, 28), torch.zeros(5, dtype=torch.long)
    mixer, spare, recorder = (KeyMixer(key_x, key_y, per_batch=2), KeyMixer(key_x, key_y, per_batch=3, tag="spare"),
                              Recorder())
    trainer.fit(model, data.train_x, data.train_y, epochs=1, scale_epochs=False,
                callbacks=[mixer, spare, recorder])
    steps = -(-600 // 128)
    assert recorder.steps == list(range(steps)) and recorder.stop_asks == list(range(1, steps + 1))
    assert recorder.sizes[0] == (128 + 5,) * 3
    assert recorder.rows[0] == {"key": slice(128, 130), "spare": slice(130, 133)}
    assert recorder.rows[-1] == {"key": slice(88, 90), "spare": slice(90, 93)}  # 600 = 4·128 + 88


def test_batch_append_moves_rows_and_tags_them():
    batch = Batch(torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.long))
    batch.append("key", torch.ones(2, 1, 2, 2), torch.ones(2, dtype=torch.long))
    assert batch.images.shape == (5, 1, 2, 2) and batch.targets.tolist() == [0, 0, 0, 1, 1]
    assert batch.rows == {"key": slice(3, 5)} and batch.images[batch.rows["key"]].eq(1).all()


def test_loss_term_every_k_steps():
    term = LossTerm(lambda m, batch, logits: torch.ones(()), every=3)
    added = []
    for step in range(7):
        term.on_batch(None, step)
        added.append(term.loss(None, None, None) is not None)
    assert added == [True, False, False, True, False, False, True]


def test_early_stopping_and_max_steps(trainer):
    data, model = small_task()
    history = trainer.fit(model, data.train_x, data.train_y, epochs=50, scale_epochs=False,
                          callbacks=[EarlyStopping(lambda m: 1.0, patience=2)])
    assert history.stopped_early and history.steps == 3  # the first check sets the baseline
    history = trainer.fit(model, data.train_x, data.train_y, epochs=50, scale_epochs=False,
                          callbacks=[EarlyStopping(lambda m: 1.0, patience=2, check_every=2)])
    assert history.stopped_early and history.steps == 6  # checks after steps 2, 4, 6
    history = trainer.fit(model, data.train_x, data.train_y, epochs=50, scale_epochs=False,
                          callbacks=[EarlyStopping(lambda m: 0.0, patience=100, goal=0.0)])
    assert history.stopped_early and history.steps == 1
    history = trainer.fit(model, data.train_x, data.train_y, epochs=5, scale_epochs=False, max_steps=3)
    assert history.steps == 3


def test_non_finite_loss_is_an_error(trainer):
    data, model = small_task()
    with pytest.raises(NonFiniteLoss, match="nan"):
        trainer.fit(model, data.train_x, data.train_y, epochs=1, scale_epochs=False,
                    callbacks=[LossTerm(lambda *a: torch.tensor(float("nan")))])


def test_epoch_scaling_and_schedules():
    assert Trainer(epoch_scale=0.2).scaled_epochs(10) == 2
    assert Trainer(epoch_scale=0.01).scaled_epochs(10) == 1
    # embeddings are not scaled: the scheme's cap, lowered by the budget's embed_max_epochs
    assert Trainer(epoch_scale=0.01).embedding_epochs(10) == 10
    assert Trainer(epoch_scale=0.01, embed_max_epochs=1).embedding_epochs(10) == 1
    with pytest.raises(InvalidParameter, match="trainer.embed_max_epochs=0 is not allowed"):
        Trainer(embed_max_epochs=0)
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

    class DieInEpochThree(Callback):
        def on_batch(self, batch, step):
            if step == 11:  # 5 steps per epoch: after the checkpoints of epochs 1 and 2
                raise Killed

    checkpoint = tmp_path / "source.ckpt"
    _, interrupted = small_task()
    with pytest.raises(Killed):
        trainer.fit(interrupted, data.train_x, data.train_y, epochs=3, scale_epochs=False,
                    augment=data.augment, callbacks=[DieInEpochThree()], checkpoint=checkpoint)
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
                          callbacks=[LossTerm(lambda *a: pytest.fail("trained again"))], checkpoint=checkpoint)
    assert history.steps == reference.steps and history.losses == reference.losses
    assert all(torch.equal(expected[k], v) for k, v in again.state_dict().items())


def test_corrupt_checkpoint_is_a_one_line_error(tmp_path, trainer):
    from wrt.store import CorruptArtifact

    data, model = small_task()
    checkpoint = tmp_path / "bad.ckpt"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptArtifact, match="delete it and rerun"):
        trainer.fit(model, data.train_x, data.train_y, epochs=1, scale_epochs=False, checkpoint=checkpoint)
