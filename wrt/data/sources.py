"""Dataset sources, each built by Hydra from `wrt/configs/dataset/<name>.yaml` (`_target_`).

Nothing here downloads: files are looked up on disk (only in `dataset.root` when it is set) and
a missing dataset raises `DatasetUnavailable` with the command or setting that fixes it. Files
whose images and labels do not fit together raise a one-line `ValueError` naming them.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from wrt.data.dataset import Dataset, DatasetUnavailable

FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat",
                         "sandal", "shirt", "sneaker", "bag", "ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck"]


def candidate_dirs(root: str | None, subdir: str, system: tuple[str, ...] = ()) -> list[Path]:
    """Where to look (each folder as given and its `subdir`): a configured `root` only — one that
    does not exist is an error, never replaced by another copy — else `$WRT_DATA`, then `system`
    unless `WRT_DATA_NO_SYSTEM=1` hides the system folders (to test a machine without them)."""
    if root:
        if not Path(root).is_dir():
            raise DatasetUnavailable(f"dataset.root={root} is not an existing folder; point it at the "
                                     f"folder holding the dataset's files, or set it to null")
        return [Path(root), Path(root) / subdir]
    env = os.environ.get("WRT_DATA")
    hidden = os.environ.get("WRT_DATA_NO_SYSTEM", "") == "1"
    return ([Path(env), Path(env) / subdir] if env else []) + ([] if hidden else [Path(d) for d in system])


def check_labeled(images_path: Path, images: torch.Tensor, labels_path: Path, labels: torch.Tensor,
                  image_dims: int, num_classes: int) -> None:
    """Raise a one-line `ValueError` naming the files unless images and labels fit together."""
    if images.dim() != image_dims + 1 or labels.dim() != 1:
        raise ValueError(f"{images_path} holds an array of shape {tuple(images.shape)} and {labels_path} one "
                         f"of shape {tuple(labels.shape)}: expected {image_dims}-d images and 1-d labels")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
                         f"labels; the files do not belong together")
    if len(labels) and int(labels.max()) >= num_classes:
        raise ValueError(f"{labels_path} holds label {int(labels.max())}, outside 0..{num_classes - 1}")


def read_idx(path: Path) -> torch.Tensor:
    """Read an IDX file (optionally gzip-compressed) into a uint8 tensor."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (header {raw[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: truncated IDX file ({data.size} of {int(np.prod(shape))} bytes)")
    return torch.from_numpy(data.reshape(shape).copy())


def find_idx(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def fashion_mnist(root: str | None = None, **options) -> Dataset:
    """Fashion-MNIST (28x28 grey, 10 classes) from its four standard IDX files."""
    stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    searched = candidate_dirs(root, "fashion-mnist", (FASHION_MNIST_SYSTEM_DIR,))
    for directory in searched:
        files = [find_idx(directory, stem) for stem in stems]
        if all(files):
            train_x, train_y, test_x, test_y = (read_idx(f) for f in files)
            check_labeled(files[0], train_x, files[1], train_y, 2, 10)
            check_labeled(files[2], test_x, files[3], test_y, 2, 10)
            return Dataset(
                "fashion_mnist", train_x.unsqueeze(1), train_y.long(), test_x.unsqueeze(1),
                test_y.long(), num_classes=10, mean=(0.2860,), std=(0.3530,),
                class_names=FASHION_MNIST_CLASSES, **options,
            )
    raise DatasetUnavailable(
        "Fashion-MNIST not found (looked in: " + (", ".join(map(str, searched)) or "nowhere: WRT_DATA is "
                                                  "unset and WRT_DATA_NO_SYSTEM=1 hides the system folders")
        + "); install it "
        "with `apt-get update && apt-get install -y dataset-fashion-mnist` (as root) or set "
        "WRT_DATA / dataset.root to a folder holding the IDX files")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10 batch files, allowing only numpy arrays and builtin containers."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    with open(path, "rb") as f:
        batch = _ArrayUnpickler(io.BytesIO(f.read()), encoding="latin1").load()
    data, labels = np.asarray(batch["data"], dtype=np.uint8), np.asarray(batch["labels"])
    fits = data.ndim == 2 and data.shape[1] == 3 * 32 * 32 and labels.shape == (len(data),)
    in_range = np.issubdtype(labels.dtype, np.integer) and (labels.size == 0 or 0 <= labels.min() <= labels.max() < 10)
    if not (fits and in_range):
        raise ValueError(f"{path} holds data of shape {data.shape} and labels of shape {labels.shape}: "
                         f"expected [N, 3072] and N labels in 0..9")
    return data.reshape(-1, 3, 32, 32), labels.tolist()


def cifar10(root: str | None = None, **options) -> Dataset:
    """CIFAR-10 from torchvision's on-disk format (`cifar-10-batches-py/`)."""
    searched = [d / "cifar-10-batches-py" for d in candidate_dirs(root, "cifar10")]
    for directory in searched:
        train_files = [directory / f"data_batch_{i}" for i in range(1, 6)]
        if all(f.is_file() for f in train_files) and (directory / "test_batch").is_file():
            train = [_read_cifar_batch(f) for f in train_files]
            test_x, test_y = _read_cifar_batch(directory / "test_batch")
            return Dataset(
                "cifar10", torch.from_numpy(np.concatenate([x for x, _ in train])),
                torch.tensor([label for _, ys in train for label in ys]),
                torch.from_numpy(test_x), torch.tensor(test_y), num_classes=10,
                mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616),
                crop_padding=4, flip=True, class_names=CIFAR10_CLASSES, **options,
            )
    raise DatasetUnavailable(
        "CIFAR-10 not found (looked for cifar-10-batches-py/ in: "
        + (", ".join(str(d.parent) for d in searched) or "nothing: no root configured")
        + "); set dataset.root or WRT_DATA to the folder holding torchvision's cifar-10-batches-py/")


def _image_folder_tensor(directory: Path, image_size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from torchvision import datasets, transforms

    transform = transforms.Compose([transforms.Resize(image_size), transforms.CenterCrop(image_size),
                                    transforms.PILToTensor()])
    folder = datasets.ImageFolder(str(directory), transform=transform)
    images = torch.stack([image for image, _ in folder]) if len(folder) else torch.empty(0)
    return images, torch.tensor(folder.targets), folder.classes


def imagenet(root: str | None = None, image_size: int = 224, **options) -> Dataset:
    """ImageNet (or any ImageFolder tree with `train/` and `val/`), resized along the shortest
    side and centre-cropped to `image_size` (SoK Appendix XIV), held in memory as uint8."""
    searched = candidate_dirs(root, "imagenet")
    for directory in searched:
        if (directory / "train").is_dir() and (directory / "val").is_dir():
            train_x, train_y, classes = _image_folder_tensor(directory / "train", image_size)
            test_x, test_y, _ = _image_folder_tensor(directory / "val", image_size)
            return Dataset(
                "imagenet", train_x, train_y, test_x, test_y, num_classes=len(classes),
                mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), flip=True,
                class_names=classes, **options,
            )
    raise DatasetUnavailable(
        "ImageNet not found (looked for train/ and val/ in: " + (", ".join(map(str, searched)) or
        "nothing: no root configured") + "); set dataset.root or WRT_DATA to an ImageFolder tree")


def synthetic(num_train: int = 2000, num_test: int = 500, num_classes: int = 10,
              channels: int = 1, size: int = 28, noise: float = 0.25, seed: int = 0,
              **options) -> Dataset:
    """A learnable generated dataset for tests: each class is a random smooth prototype image,
    samples are the prototype plus Gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, channels, 7, 7, generator=generator)
    prototypes = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear",
                                                 align_corners=False)

    def sample(n):
        labels = torch.randint(num_classes, (n,), generator=generator)
        images = prototypes[labels] + noise * torch.randn(n, channels, size, size, generator=generator)
        return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels

    train_x, train_y = sample(num_train)
    test_x, test_y = sample(num_test)
    return Dataset("synthetic", train_x, train_y, test_x, test_y, num_classes=num_classes,
                   mean=(0.5,) * channels, std=(0.25,) * channels,
                   class_names=[f"class_{i}" for i in range(num_classes)], **options)
