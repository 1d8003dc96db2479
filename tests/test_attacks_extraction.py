"""Model extraction attacks, transfer learning and combined attacks, at a tiny size: the
victim is the session's Fashion-MNIST SmallCNN; the attacker sees 800 of its images and
trains LeNets (chance agreement with the victim: about 0.1)."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from wrt.adversarial import pgd
from wrt.attacks.compose import Sequential
from wrt.attacks.extraction import (AdversarialExamples, AdversarialTrainingFromScratch,
                                    CrossArchitectureRetraining, Distillation, KnockoffNets,
                                    Retraining, SmoothRetraining)
from wrt.attacks.preprocessing import Preprocessed
from wrt.data.loader import to_float
from wrt.attacks.transfer import TransferLearning
from wrt.models import LeNet, SmallCNN
from wrt.store import Store
from wrt.train import Batch, StepDecay, Trainer
from wrt.validation import InvalidParameter

from conftest import make_ctx


SGD = partial(torch.optim.SGD, lr=0.05, momentum=0.9, nesterov=True)


class RecordingTrainer(Trainer):
    """A trainer that remembers the arguments of each `fit` call."""

    def __init__(self, **kwargs):
        super().__init__(**{"optimizer": SGD, **kwargs})
        self.calls = []

    def fit(self, model, images, targets, **kwargs):
        kwargs["params"] = None if kwargs.get("params") is None else list(kwargs["params"])
        self.calls.append({"model": model, "n": len(images), **kwargs})
        return super().fit(model, images, targets, **kwargs)


@pytest.fixture(scope="module")
def small(fmnist):
    return fmnist.subset(800, 500, seed=1)


# four epochs of SGD at batch size 32; the "source architecture" of the attacks here is a
# LeNet (seed 1; fast on a CPU)
lenet_ctx = partial(make_ctx, trainer={"epochs": 4, "batch_size": 32, "optimizer": SGD}, model=LeNet, model_seed=1)


def agreement(a, b, images, trainer):
    return (trainer.predict(a, images).argmax(1) == trainer.predict(b, images).argmax(1)).float().mean().item()


def test_retraining_learns_the_victims_labels_from_unlabeled_queries(small, fmnist_source):
    ctx = lenet_ctx(small)
    victim = copy.deepcopy(fmnist_source)
    surrogate = Retraining()(victim, ctx)
    assert surrogate is not victim and isinstance(surrogate, LeNet)
    assert ctx.usage == {"queries": 800, "labeled_samples": 0, "unlabeled_samples": 800}
    assert agreement(surrogate, victim, small.test_x, ctx.trainer) > 0.4  # chance: ~0.1


def test_cross_architecture_retraining_uses_another_architecture(small, fmnist_source):
    ctx = lenet_ctx(small)
    victim = LeNet(mean=small.mean, std=small.std)  # (untrained) LeNet victim: SmallCNN is "another" architecture
    surrogate = CrossArchitectureRetraining(model={"_target_": "wrt.models.SmallCNN", "width": 4, "hidden": 16})(victim, ctx)
    assert isinstance(surrogate, SmallCNN) and surrogate.num_classes == 10 and surrogate.classifier.in_features == 16
    with pytest.raises(InvalidParameter, match="attack.model"):
        CrossArchitectureRetraining(model={"_target_": "wrt.models.SmallCNN"})(fmnist_source, lenet_ctx(small.subset(50, 10)))
    with pytest.raises(InvalidParameter, match="attack.model"):
        CrossArchitectureRetraining(model={"width": 3})


def test_distillation_trains_on_softened_logits(small, fmnist_source):
    ctx = lenet_ctx(small)
    hot, cold = Distillation(temperature=10.0), Distillation(temperature=1.0)
    soft_hot = hot.targets(fmnist_source, small.train_x[:200], ctx)
    soft_cold = cold.targets(fmnist_source, small.train_x[:200], ctx)
    assert torch.allclose(soft_hot.sum(1), torch.ones(200), atol=1e-5)
    assert soft_hot.max(1).values.mean() < soft_cold.max(1).values.mean()  # higher T, flatter
    assert (soft_hot.argmax(1) == soft_cold.argmax(1)).all()
    # the T²-scaled loss doubles the gradients at T = 2: a smaller lr keeps 800-image training stable
    trainer = RecordingTrainer(epochs=4, batch_size=32, progress=False, seed=0,
                               optimizer=partial(torch.optim.SGD, lr=0.02, momentum=0.9, nesterov=True))
    ctx = lenet_ctx(small, trainer=trainer)
    surrogate = Distillation(temperature=2.0)(copy.deepcopy(fmnist_source), ctx)
    assert isinstance(surrogate, LeNet) and trainer.calls[0]["model"].temperature == 2.0
    assert agreement(surrogate, fmnist_source, small.test_x, trainer) > 0.3
    with pytest.raises(InvalidParameter, match="attack.temperature"):
        Distillation(temperature=0.5)


class CountingVictim(torch.nn.Module):
    """Wraps a model and counts the images it is asked about."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, 0

    def forward(self, x):
        self.seen += len(x)
        return self.model(x)


def test_smooth_retraining_queries_n_variations_per_image(small, fmnist_source):
    ctx = lenet_ctx(small)
    victim = CountingVictim(copy.deepcopy(fmnist_source))
    attack = SmoothRetraining(queries=3, chunk=300, labels="top1")
    targets = attack.targets(victim, small.train_x, ctx)
    assert victim.seen == 3 * 800 and ctx.usage["queries"] == 3 * 800
    assert torch.allclose(targets.sum(1), torch.ones(800))
    assert set((targets * 3).round().unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    assert ((targets > 0).sum(1) > 1).any()  # some images got different labels across variations
    surrogate = attack(victim, lenet_ctx(small))
    assert agreement(surrogate, fmnist_source, small.test_x, ctx.trainer) > 0.4
    soft = SmoothRetraining(queries=2, chunk=300).targets(fmnist_source, small.train_x[:50], make_ctx(small))
    assert torch.allclose(soft.sum(1), torch.ones(50)) and (soft * 2).round().ne(soft * 2).any()  # mean softmax


def test_retraining_targets_are_the_victims_probability_rows_or_top1_labels(small, fmnist_source):
    ctx = make_ctx(small)
    soft = Retraining().targets(fmnist_source, small.train_x[:100], ctx)
    assert soft.shape == (100, 10) and soft.dtype == torch.float32 and (soft >= 0).all()
    assert torch.allclose(soft.sum(1), torch.ones(100))
    top1 = Retraining(labels="top1").targets(fmnist_source, small.train_x[:100], ctx)
    assert top1.dtype == torch.long and torch.equal(top1, soft.argmax(1))
    assert ctx.usage["queries"] == 200
    with pytest.raises(InvalidParameter, match="attack.labels"):
        Retraining(labels="hard")


def test_cross_architecture_surrogate_is_larger_than_the_source(compose_cfg, fmnist):
    from wrt.config import build
    cfg = compose_cfg("attack=cross_architecture_retraining")
    attack = build(cfg.attack)
    source = build(cfg.model, num_classes=10, in_channels=1, mean=[0.5], std=[0.5])
    ctx = make_ctx(fmnist)
    surrogate = attack.surrogate(source, ctx)
    size = lambda m: sum(p.numel() for p in m.parameters())
    assert type(surrogate) is not type(source) and size(surrogate) > 2 * size(source)
    assert surrogate(to_float(fmnist.test_x[:2])).shape == (2, 10)


class RecordingVictim(torch.nn.Module):
    """Wraps a model and keeps the images it is asked about."""

    def __init__(self, model):
        super().__init__()
        self.model, self.inputs = model, []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.model(x)


def crop_flip_of(variation, image, padding):
    """(dy, dx, flipped) of the crop of `image` (reflect-padded by `padding`) that `variation` is,
    or None."""
    padded = F.pad(image[None], (padding,) * 4, mode="reflect")[0]
    h, w = image.shape[-2:]
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            window = padded[:, dy:dy + h, dx:dx + w]
            for flipped, candidate in ((False, window), (True, window.flip(-1))):
                if torch.equal(variation, candidate):
                    return dy, dx, flipped
    return None


def test_smooth_retraining_variations_are_crops_and_flips_of_the_input(small):
    """SoK §VI / App. XIII-C: the variations are random crops and horizontal flips of the image."""
    x = small.train_x[:64].float() / 255
    attack = SmoothRetraining(crop_padding=4)
    g = torch.Generator().manual_seed(0)
    a, b = attack.variations(x, g, flip=True), attack.variations(x, g, flip=True)
    assert a.shape == x.shape and not torch.equal(a, b)
    found = [crop_flip_of(v, image, 4) for v, image in zip(a, x)]
    assert None not in found
    assert len({(dy, dx) for dy, dx, _ in found}) > 10  # offsets vary from image to image
    assert 0 < sum(flipped for _, _, flipped in found) < len(found)  # about half are flipped
    assert torch.equal(SmoothRetraining(crop_padding=0).variations(x, g, flip=False), x)
    unflipped = [crop_flip_of(v, image, 1) for v, image in zip(SmoothRetraining().variations(x, g, flip=False), x)]
    assert None not in unflipped and not any(flipped for _, _, flipped in unflipped)
    # flip: null follows the dataset's training augmentation (Fashion-MNIST's: no flips)
    victim = RecordingVictim(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)))
    assert not small.flip
    SmoothRetraining(crop_padding=0, queries=2).targets(victim, small.train_x[:64], make_ctx(small))
    assert all(torch.equal(seen.cpu(), x) for seen in victim.inputs)
    victim.inputs.clear()
    SmoothRetraining(crop_padding=0, queries=2, flip=True).targets(victim, small.train_x[:64], make_ctx(small))
    assert not any(torch.equal(seen.cpu(), x) for seen in victim.inputs)
    with pytest.raises(InvalidParameter, match="attack.crop_padding"):
        SmoothRetraining(crop_padding=28).targets(None, small.train_x[:4], make_ctx(small))


def test_adversarial_training_from_scratch_mixes_pgd_examples(small, fmnist_source):
    torch.manual_seed(0)
    model = copy.deepcopy(fmnist_source)
    images, labels = small.train_x, small.train_y
    hook = AdversarialExamples(model, images, labels, per_batch=4, repeats=2, eps=0.1, step=0.01,
                               iterations=5, seed=0)
    batch = Batch(images[:0].float(), labels[:0])
    hook.on_batch(batch, 0)
    adv, y = batch.images, batch.targets
    assert batch.rows == {"adversarial": slice(0, 8)}
    assert adv.shape == (8, 1, 28, 28) and torch.equal(adv[:4], adv[4:]) and torch.equal(y[:4], y[4:])
    assert adv.min() >= 0 and adv.max() <= 1
    trainer = RecordingTrainer(epochs=1, batch_size=64, progress=False, seed=0)
    ctx = lenet_ctx(small.subset(300, 10), trainer=trainer)
    surrogate = AdversarialTrainingFromScratch(eps=0.1, iterations=3)(copy.deepcopy(fmnist_source), ctx)
    assert isinstance(surrogate, LeNet) and trainer.calls[0]["callbacks"][0].per_batch == 3  # 64·0.1/2
    assert ctx.usage["queries"] == 300 and ctx.usage["unlabeled_samples"] == 300
    # the examples are adversarial: within ε and they change the (trained) model's loss upward
    x = images[:64].float() / 255
    clean = torch.nn.functional.cross_entropy(fmnist_source(x), labels[:64])
    attacked = torch.nn.functional.cross_entropy(fmnist_source(pgd(fmnist_source, x, labels[:64], 0.1, iterations=5)), labels[:64])
    assert attacked > clean
    with pytest.raises(InvalidParameter, match="attack.eps"):
        AdversarialTrainingFromScratch(eps=0)


def test_knockoff_nets_queries_other_domain_images(small, fmnist_source):
    ctx = lenet_ctx(small)
    surrogate = KnockoffNets(queries=200, transfer_set="glyphs", transfer_per_class=2,
                             transfer_classes=150)(copy.deepcopy(fmnist_source), ctx)
    assert isinstance(surrogate, LeNet)
    assert ctx.usage == {"queries": 200, "labeled_samples": 0, "unlabeled_samples": 0, "transfer_samples": 200}
    ctx = lenet_ctx(small)
    assert KnockoffNets().transfer_set == "natural"
    KnockoffNets(queries=150)(copy.deepcopy(fmnist_source), ctx)
    assert ctx.usage["transfer_samples"] == 150 and ctx.usage["queries"] == 150
    with pytest.raises(InvalidParameter, match="attack.transfer_classes"):
        KnockoffNets(transfer_classes=10_000)


def test_natural_transfer_set_has_the_tasks_shape_and_nothing_of_glyphs_or_the_task(small):
    from wrt.data.glyphs import glyph_dataset
    from wrt.data.natural import SKIMAGE_PHOTOS, natural_crops, photo_files
    assert not {"text.png", "page.png", "logo.png"} & set(SKIMAGE_PHOTOS)  # no text, no glyphs
    assert all(path.is_file() for path in photo_files())
    gray = natural_crops(300, size=28, channels=1, generator=torch.Generator().manual_seed(0))
    assert gray.shape == (300, 1, 28, 28) and gray.dtype == torch.uint8
    assert torch.equal(gray, natural_crops(300, 28, 1, torch.Generator().manual_seed(0)))  # seeded
    assert natural_crops(4, size=32, channels=3).shape == (4, 3, 32, 32)
    assert gray.float().std(dim=(1, 2, 3)).gt(0).float().mean() > 0.9  # textured crops, not blank
    glyphs, _, _ = glyph_dataset(20, 5)
    for other in (glyphs, small.train_x):  # no crop is (nearly) a glyph or a Fashion-MNIST image
        distance = torch.cdist(gray.flatten(1).float(), other.flatten(1).float())
        assert distance.min() > 255
    with pytest.raises(ValueError, match="channels=2"):
        natural_crops(1, channels=2)
    # larger crops (a photograph's whole shorter side) shrink more of it into 28 px: more detail per pixel
    detail = lambda x: x.float().diff(dim=-1).abs().mean()
    wide = natural_crops(300, 28, 1, torch.Generator().manual_seed(0), crop_side=(0.9, 1.0))
    narrow = natural_crops(300, 28, 1, torch.Generator().manual_seed(0), crop_side=(0.1, 0.15))
    assert detail(wide) > 1.2 * detail(narrow)
    with pytest.raises(ValueError, match="crop_side"):
        natural_crops(1, crop_side=(0.5, 0.2))
    with pytest.raises(InvalidParameter, match="attack.crop_side"):
        KnockoffNets(crop_side=[0, 0.5])


def test_transfer_learning_pretrains_once_freezes_then_fine_tunes(small, fmnist_source, tmp_path):
    store = Store(tmp_path / "store")
    trainer = RecordingTrainer(epochs=1, batch_size=32, progress=False, seed=0, epoch_scale=0.5)
    ctx = lenet_ctx(small, store=store, trainer=trainer)
    attack = TransferLearning(freeze_batches=20, epochs=8, milestones=[6, 7], lr=0.05, pretrain_classes=40,
                              pretrain_per_class=15, pretrain_epochs=2)
    surrogate = attack(copy.deepcopy(fmnist_source), ctx)
    pretrain, frozen, full = trainer.calls
    assert pretrain["n"] == 600 and pretrain["epochs"] == 1  # 40 × 15 glyphs, 2 × 0.5 epochs
    assert list((tmp_path / "store" / "pretrained").glob("*.pt"))
    head = set(map(id, surrogate.classifier.parameters()))
    assert frozen["max_steps"] == 10 and set(map(id, frozen["params"])) == head  # 20 × 0.5 batches
    assert full["params"] is None and full["epochs"] == 4  # 8 × 0.5
    assert isinstance(full["schedule"], StepDecay) and full["schedule"].milestones == [3, 3.5]
    assert surrogate.num_classes == 10
    assert ctx.usage == {"queries": 800, "labeled_samples": 0, "unlabeled_samples": 800, "transfer_samples": 600}
    assert agreement(surrogate, fmnist_source, small.test_x, trainer) > 0.4
    # pretrain_epochs 0: the same schedule from a random start, nothing pre-trained
    trainer.calls.clear()
    TransferLearning(freeze_batches=20, epochs=2, milestones=[1, 2], pretrain_epochs=0)(copy.deepcopy(fmnist_source), ctx)
    assert [call["desc"] for call in trainer.calls] == ["transfer (last layer)", "transfer (all layers)"]

    again = RecordingTrainer(epochs=1, batch_size=32, progress=False, seed=0, epoch_scale=0.5)
    attack(copy.deepcopy(fmnist_source), lenet_ctx(small.subset(100, 10), store=store, trainer=again))
    assert len(again.calls) == 2  # the pretrained model came from the store
    with pytest.raises(InvalidParameter, match="attack.milestones"):
        TransferLearning(epochs=5, milestones=[3, 6])


def test_a_combined_attack_applies_its_parts_in_order(small, fmnist_source):
    steps = {"1": {"name": "input_noising", "_target_": "wrt.attacks.preprocessing.InputNoising", "sigma": 0.05,
                   "ablation": {"sigma": [0.01]}},
             "0": {"name": "retraining", "_target_": "wrt.attacks.extraction.Retraining"}}
    attack = Sequential(steps)
    assert attack.category == "combined"
    assert attack.recorded_params({}) == {"steps": [
        {"name": "retraining", "category": "model_extraction", "params": {}},
        {"name": "input_noising", "category": "input_preprocessing", "params": {"sigma": 0.05}}]}
    ctx = lenet_ctx(small.subset(200, 10))
    victim = copy.deepcopy(fmnist_source)
    surrogate = attack(victim, ctx)
    # retraining first (a new model), then the noise layer in front of it
    assert isinstance(surrogate, Preprocessed) and isinstance(surrogate.model, LeNet)
    assert surrogate.model is not victim and ctx.usage["queries"] == 200
    with pytest.raises(InvalidParameter, match="attack.sigma"):
        Sequential([{"_target_": "wrt.attacks.preprocessing.InputNoising", "sigma": 5.0}])
    with pytest.raises(InvalidParameter, match="attack.steps"):
        Sequential([])


def test_combined_run_records_its_steps_and_data_use(compose_cfg, fmnist_full):
    from wrt.pipeline import run

    result, _ = run(compose_cfg("budget=smoke", "budget.max_train=1200", "budget.max_test=300", "attack=tl_label_smoothing",
                                "attack.steps.0.pretrain_per_class=2",
                                "attack.steps.1.epsilon=0.1"))
    assert result["status"] == "ok", result["error"]
    attack = result["attack"]
    assert attack["name"] == "tl_label_smoothing" and attack["category"] == "combined"
    assert [(s["name"], s["category"]) for s in attack["params"]["steps"]] == [
        ("transfer_learning", "model_extraction"), ("label_smoothing", "model_modification")]
    assert attack["params"]["steps"][1]["params"]["epsilon"] == 0.1
    usage = result["attack_usage"]
    assert usage["queries"] >= 1200 and usage["unlabeled_samples"] >= 1200 and usage["transfer_samples"] == 428
    # (at this size the surrogate's accuracy says little; TransferLearning's own test checks it)
    assert 0 <= result["surrogate"]["test_acc"] <= 1 and result["attack_time_ratio"] > 0
