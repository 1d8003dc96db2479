"""Input preprocessing attacks: the wrappers keep shape and value range, do what their paper
describes (real JPEG, quanta means, filters), leave the marked model reachable by `unwrap`,
and the input-reconstruction autoencoder is trained and cached."""

from __future__ import annotations

import copy

import pytest
import torch

from wrt.attacks.preprocessing import (FeatureSqueezing, InputFlipping, InputNoising, InputQuantization,
                                       InputReconstruction, InputSmoothing, JpegCompression, Preprocessed,
                                       median_filter)
from wrt.models import unwrap
from wrt.config import build, params_of
from wrt.store import Store
from wrt.sweeper import configurations
from wrt.validation import InvalidParameter

from conftest import attack_options, group_config, make_ctx


def variants(name: str) -> list[tuple[str, dict]]:
    """A config's parameters, then each configuration of its `ablation:` grid in turn."""
    node = group_config("attack", name)
    params = params_of(node)
    return [(name, params)] + [(f"{name}-" + ",".join(f"{k}={v}" for k, v in point.items()), {**params, **point})
                               for point in configurations(node.get("ablation")) if point]


# every input-preprocessing config and ablation value but input_reconstruction (it trains an
# autoencoder: tested on its own below)
ATTACKS = {case: (name, params) for name in attack_options("input_preprocessing") if name != "input_reconstruction"
           for case, params in variants(name)}


@pytest.fixture(scope="module")
def images(fmnist):
    return fmnist.test_x[:32].float() / 255


@pytest.mark.parametrize("case", ATTACKS)
def test_wrappers_keep_shape_and_range_and_expose_the_model(case, images, fmnist, fmnist_source):
    name, params = ATTACKS[case]
    attack = build({"_target_": group_config("attack", name)._target_, **params})
    marked = copy.deepcopy(fmnist_source)
    ctx = make_ctx(fmnist)
    surrogate = attack(marked, ctx)
    assert isinstance(surrogate, Preprocessed) and unwrap(surrogate) is marked
    assert attack.category == "input_preprocessing"
    out = attack.transform(images)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, images)
    assert ctx.usage == {"queries": 0, "labeled_samples": 0, "unlabeled_samples": 0}
    assert 0.3 < ctx.trainer.accuracy(surrogate, fmnist.test_x[:300], fmnist.test_y[:300]) <= 1
    rgb = torch.rand(2, 3, 32, 32)  # 3-channel, 32-px inputs too
    assert attack.transform(rgb).shape == rgb.shape


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_jpeg_is_real_jpeg(images):
    from torchvision.io import decode_jpeg, encode_jpeg  # an independent JPEG codec as reference

    pixels = (images * 255).round().to(torch.uint8)
    reference = torch.stack(decode_jpeg(encode_jpeg(list(pixels), quality=20))).float() / 255
    ours = JpegCompression(quality=20).transform(images)
    assert (ours - reference).abs().mean() < 0.01  # the same codec, up to encoder details
    low, high = (JpegCompression(quality=q).transform(images) for q in (5, 95))
    assert (low - images).abs().mean() > (high - images).abs().mean() > 0


def test_quantization_maps_values_to_quanta_means():
    x = torch.tensor([0.0, 0.1, 0.124, 0.126, 0.5, 0.99, 1.0]).view(1, 1, 1, -1)
    assert InputQuantization(bits=3).transform(x).flatten().tolist() == pytest.approx(
        [0.0625, 0.0625, 0.0625, 0.1875, 0.5625, 0.9375, 0.9375])
    squeezed = FeatureSqueezing(bits=2, median_size=1).transform(x).flatten().tolist()
    assert squeezed == pytest.approx([0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 1.0])


def test_smoothing_filters():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0  # a lone bright pixel: the median removes it, the mean spreads it
    assert median_filter(x, 3).abs().max() == 0
    mean = InputSmoothing("mean").transform(x)
    assert mean[0, 0, 1:4, 1:4] == pytest.approx(torch.full((3, 3), 1 / 9))
    gauss = InputSmoothing("gaussian", sigma=0.3).transform(x)
    assert 0.9 < gauss[0, 0, 2, 2] < 1 and gauss[0, 0, 2, 1] > 0 and gauss[0, 0, 2, 0] == 0  # 3×3
    wide = InputSmoothing("gaussian", sigma=0.5).transform(x)  # the SoK toolbox's σ: radius 2, a 5×5 kernel
    assert wide[0, 0, 2, 2] < 0.7 and wide[0, 0, 2, 0] > 0 and wide[0, 0, 0, 0] > 0
    assert torch.equal(InputSmoothing("gaussian", sigma=0.1).transform(x), x)  # radius 0: the identity
    assert torch.equal(InputFlipping().transform(torch.arange(3.0).view(1, 1, 1, 3)).flatten(),
                       torch.tensor([2.0, 1.0, 0.0]))


def test_noise_is_seeded_and_has_the_configured_scale(images, fmnist, fmnist_source):
    grey = torch.full((4, 1, 28, 28), 0.5)
    attack = InputNoising(sigma=0.05)
    attack(fmnist_source, make_ctx(fmnist))
    first = attack.transform(grey)
    attack(fmnist_source, make_ctx(fmnist))
    assert torch.equal(first, attack.transform(grey))
    assert (first - grey).std().item() == pytest.approx(0.05, rel=0.1)


def test_bad_parameters_are_one_line_errors():
    for make, key in [(lambda: JpegCompression(quality=99), "attack.quality"),
                      (lambda: InputQuantization(bits=2), "attack.bits"),
                      (lambda: InputSmoothing("box"), "attack.kernel"),
                      (lambda: InputNoising(sigma=0.5), "attack.sigma"),
                      (lambda: FeatureSqueezing(bits=7), "attack.bits"),
                      (lambda: InputReconstruction(bottleneck=32), "attack.bottleneck")]:
        with pytest.raises(InvalidParameter, match=key):
            make()


def test_input_reconstruction_trains_an_autoencoder_on_attacker_data_and_caches_it(fmnist, fmnist_source, tmp_path):
    data = fmnist.subset(1200, 200, seed=2)
    store = Store(tmp_path / "store")
    ctx = make_ctx(data, store=store)
    attack = InputReconstruction(bottleneck=64, epochs=3, lr=3e-3)
    surrogate = attack(copy.deepcopy(fmnist_source), ctx)
    assert ctx.usage == {"queries": 0, "labeled_samples": 0, "unlabeled_samples": 400}  # the attacker's third
    x = data.test_x[:64].float() / 255
    with torch.no_grad():
        reconstruction = surrogate.transform(x)
    assert reconstruction.shape == x.shape and 0 <= reconstruction.min() and reconstruction.max() <= 1
    assert (reconstruction - x).abs().mean() < (x - x.mean()).abs().mean() * 0.7  # better than a constant
    assert list((tmp_path / "store" / "autoencoder").glob("*.pt"))
    again = attack(copy.deepcopy(fmnist_source), make_ctx(data, store=store))  # from the store
    with torch.no_grad():
        assert torch.allclose(again.transform(x), reconstruction, atol=1e-6)


def test_combined_config_lists_existing_attacks_in_order(compose_cfg):
    cfg = compose_cfg("attack=tl_label_smoothing", "attack.steps.1.epsilon=0.1")
    attack = build(cfg.attack)
    assert attack.category == "combined"
    assert [type(a).__name__ for a in attack.attacks] == ["TransferLearning", "LabelSmoothing"]
    steps = attack.recorded_params({})["steps"]
    assert [s["name"] for s in steps] == ["transfer_learning", "label_smoothing"]
    assert [s["category"] for s in steps] == ["model_extraction", "model_modification"]
    assert steps[1]["params"]["epsilon"] == 0.1 and steps[0]["params"]["freeze_batches"] == 300
