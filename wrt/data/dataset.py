"""The in-memory dataset every stage works on, and the SoK's data splits.

Images are uint8 NCHW tensors (converted to float in [0, 1] per batch); models normalise
internally, so every scheme, attack and preprocessing step works in [0, 1] pixel space.

Splits follow Lukas et al. (S&P 2022), Appendix XIV-A: the defender gets two thirds of the
training set, the attacker the remaining third; model-extraction attackers may use the whole
training set without labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


class DatasetUnavailable(RuntimeError):
    """A dataset's files are missing; the message names the command that fixes it."""


@dataclass
class Dataset:
    name: str
    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0  # random-crop augmentation (0 = off)
    flip: bool = False  # random horizontal flips
    class_names: list[str] = field(default_factory=list)
    defender_fraction: float = 2 / 3
    split_seed: int = 0

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    @property
    def augment(self) -> dict:
        return {"crop_padding": self.crop_padding, "flip": self.flip}

    def split_indices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Defender (2/3) and attacker (1/3) indices of the training set, fixed by `split_seed`."""
        generator = torch.Generator().manual_seed(self.split_seed)
        order = torch.randperm(len(self.train_y), generator=generator)
        cut = int(round(self.defender_fraction * len(order)))
        return order[:cut], order[cut:]

    def defender(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The defender's labeled training data."""
        idx, _ = self.split_indices()
        return self.train_x[idx], self.train_y[idx]

    def attacker(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The attacker's third of the training data (labels are ground truth; attacks that
        assume unlabeled domain data replace them with the victim's predictions)."""
        _, idx = self.split_indices()
        return self.train_x[idx], self.train_y[idx]

    def subset(self, max_train: int | None, max_test: int | None, seed: int = 0) -> "Dataset":
        """A seeded random subset (budgets shrink data this way); None keeps everything."""
        generator = torch.Generator().manual_seed(seed)

        def pick(x, y, n):
            if n is None or n >= len(y):
                return x, y
            idx = torch.randperm(len(y), generator=generator)[:n]
            return x[idx], y[idx]

        train_x, train_y = pick(self.train_x, self.train_y, max_train)
        test_x, test_y = pick(self.test_x, self.test_y, max_test)
        return Dataset(
            self.name, train_x, train_y, test_x, test_y, self.num_classes, self.mean, self.std,
            self.crop_padding, self.flip, self.class_names, self.defender_fraction, self.split_seed,
        )
