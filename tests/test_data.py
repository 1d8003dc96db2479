"""Loaders on fixture files written in each dataset's real format, splits, and batching."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from wrt.data import DatasetUnavailable, TensorLoader
from wrt.data.loader import augment_batch
from wrt.data.sources import cifar10, fashion_mnist, imagenet, read_idx, synthetic
from wrt.pipeline import load_data

from conftest import options


def write_idx(path, array: np.ndarray, compress: bool):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def test_fashion_mnist_reads_idx_files_from_configured_root(tmp_path):
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (12, 28, 28)); test = rng.integers(0, 256, (5, 28, 28))
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", train, compress=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(12) % 10, compress=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test, compress=False)  # uncompressed works too
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(5), compress=False)
    data = fashion_mnist(root=str(tmp_path))
    assert data.train_x.shape == (12, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert torch.equal(data.train_x[:, 0], torch.from_numpy(train.astype(np.uint8)))
    assert data.test_y.tolist() == [0, 1, 2, 3, 4]


def write_fashion_mnist(folder, train_images=12, train_labels=12, test_labels=5, max_label=9):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 256, (train_images, 28, 28)), compress=False)
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(train_labels) % (max_label + 1), compress=True)
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (5, 28, 28)), compress=False)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.arange(test_labels) % (max_label + 1), compress=False)


@pytest.mark.parametrize("counts, names", [
    ({"train_images": 60, "train_labels": 10}, ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")),
    ({"test_labels": 3}, ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")),
    ({"max_label": 11}, ("train-labels-idx1-ubyte",)),
])
def test_image_and_label_files_that_do_not_fit_together_are_one_line_errors(tmp_path, counts, names):
    write_fashion_mnist(tmp_path, **counts)
    with pytest.raises(ValueError) as err:
        fashion_mnist(root=str(tmp_path))
    message = str(err.value)
    assert all(str(tmp_path / name) in message for name in names) and "\n" not in message


def test_a_root_that_does_not_exist_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    write_fashion_mnist(tmp_path / "system")  # a valid copy elsewhere must not be used instead
    monkeypatch.setattr("wrt.data.sources.FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "system"))
    monkeypatch.setenv("WRT_DATA", str(tmp_path / "system"))
    assert len(fashion_mnist().train_y) == 12
    missing = tmp_path / "typo"
    for load in (fashion_mnist, cifar10, imagenet):
        with pytest.raises(DatasetUnavailable) as err:
            load(root=str(missing))
        assert f"dataset.root={missing} is not an existing folder" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetUnavailable, match="not found"):  # a root without the files: no fallback either
        fashion_mnist(root=str(tmp_path / "empty"))


def test_truncated_idx_file_is_reported(tmp_path):
    write_idx(tmp_path / "x", np.zeros((4, 28, 28)), compress=False)
    (tmp_path / "x").write_bytes((tmp_path / "x").read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "x")


def test_real_fashion_mnist_has_standard_shape(fmnist_full):
    assert fmnist_full.train_x.shape == (60000, 1, 28, 28)
    assert fmnist_full.test_x.shape == (10000, 1, 28, 28)
    assert torch.bincount(fmnist_full.test_y).tolist() == [1000] * 10


def write_cifar_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": [int(v) for v in rng.integers(0, 10, n)],
             "batch_label": "fixture", "filenames": [f"{i}.png" for i in range(n)]}
    with open(path, "wb") as f:
        pickle.dump(batch, f)
    return batch


def test_cifar10_reads_torchvision_format(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [write_cifar_batch(folder / f"data_batch_{i}", 4, i) for i in range(1, 6)]
    test = write_cifar_batch(folder / "test_batch", 3, 9)
    data = cifar10(root=str(tmp_path))
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (3, 3, 32, 32)
    assert torch.equal(data.train_x[0], torch.from_numpy(batches[0]["data"][0].reshape(3, 32, 32)))
    assert data.test_y.tolist() == [int(v) for v in test["labels"]]
    assert data.crop_padding == 4 and data.flip


def write_cifar10(root):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", 4, i)
    write_cifar_batch(folder / "test_batch", 3, 9)


def test_cifar10_count_mismatch_is_a_one_line_error(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", 4, i)
    batch = write_cifar_batch(folder / "test_batch", 3, 9)
    batch["labels"] = batch["labels"][:2]
    (folder / "test_batch").write_bytes(pickle.dumps(batch))
    with pytest.raises(ValueError, match=f"{folder / 'test_batch'} holds data of shape"):
        cifar10(root=str(tmp_path))


def test_cifar10_refuses_pickled_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({"data": Evil(), "labels": []}))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        cifar10(root=str(tmp_path))


def write_image_folder(root):
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(root / split / cls / f"{i}.png")


def test_imagenet_reads_image_folder(tmp_path):
    write_image_folder(tmp_path)
    data = imagenet(root=str(tmp_path), image_size=16)
    assert data.train_x.shape == (4, 3, 16, 16) and data.num_classes == 2
    assert data.class_names == ["cat", "dog"] and data.train_y.tolist() == [0, 0, 1, 1]


def test_missing_dataset_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("WRT_DATA", raising=False)
    with pytest.raises(DatasetUnavailable, match="WRT_DATA"):
        cifar10(root=str(tmp_path))
    monkeypatch.setattr("wrt.data.sources.FASHION_MNIST_SYSTEM_DIR", str(tmp_path / "none"))
    with pytest.raises(DatasetUnavailable, match="apt-get install -y dataset-fashion-mnist"):
        fashion_mnist(root=str(tmp_path))


def test_splits_are_deterministic_disjoint_and_two_thirds():
    data = synthetic(num_train=300, num_test=10, split_seed=3)
    defender, attacker = data.split_indices()
    assert len(defender) == 200 and len(attacker) == 100
    assert not set(defender.tolist()) & set(attacker.tolist())
    again, _ = synthetic(num_train=300, num_test=10, split_seed=3).split_indices()
    other, _ = synthetic(num_train=300, num_test=10, split_seed=4).split_indices()
    assert torch.equal(defender, again) and not torch.equal(defender, other)


def test_loader_covers_every_sample_once_per_epoch():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 4, 4).contiguous()
    loader = TensorLoader(images, torch.arange(10), batch_size=3, seed=0)
    seen = torch.cat([y for _, y in loader])
    assert len(loader) == 4 and sorted(seen.tolist()) == list(range(10))
    x, _ = next(iter(loader))
    assert x.dtype == torch.float32 and x.max() <= 10 / 255 + 1e-6


def test_batch_augmentation_keeps_shape_range_and_content():
    images = torch.rand(64, 3, 8, 8)
    out = augment_batch(images, crop_padding=2, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and 0 <= out.min() and out.max() <= 1
    assert not torch.equal(out, images)
    flipped = augment_batch(images, flip=True, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(f, i) or torch.equal(f, i.flip(-1)) for f, i in zip(flipped, images))


def fixture_overrides(dataset: str, root) -> list[str]:
    """Write small files in `dataset`'s real format under `root`; the overrides that load them."""
    if dataset == "fashion_mnist":
        write_fashion_mnist(root)
    elif dataset == "cifar10":
        write_cifar10(root)
    elif dataset == "imagenet":
        write_image_folder(root)
        return [f"dataset.root={root}", "dataset.image_size=16"]
    elif dataset == "synthetic":  # generated: no files
        return ["dataset.num_train=30", "dataset.num_test=10"]
    else:
        pytest.fail(f"wrt/configs/dataset/{dataset}.yaml: add its fixture files to fixture_overrides")
    return [f"dataset.root={root}"]


@pytest.mark.parametrize("name", options("dataset"))
def test_every_dataset_config_loads_its_files_and_batches(name, compose_cfg, tmp_path):
    cfg = compose_cfg(f"dataset={name}", "budget=smoke", *fixture_overrides(name, tmp_path / "data"))
    data = load_data(cfg)  # the run's data stage: built with the split seed, subset by the budget
    assert cfg.dataset.name == name and len(data.test_y) > 0
    images, labels = data.defender()
    assert 0 < len(labels) < len(data.train_y) and int(labels.max()) < data.num_classes
    loader = TensorLoader(images, labels, batch_size=4, augment=data.augment, seed=0)
    x, y = next(iter(loader))
    assert x.shape == (len(y), *data.image_shape) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert len(loader) == -(-len(labels) // 4)
