"""Batches from in-memory tensors, with augmentation applied to whole batches on the device.

After airbench: the data lives on the run's device as one tensor, each epoch is a
`torch.randperm` and slices, and random crops / flips are done per batch with masks — no
per-sample Python work on the hot path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images → float in [0, 1]; float images pass through."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None) -> torch.Tensor:
    """Random crops of `padding` pixels in each direction (reflect padding), one offset per image."""
    n, _, h, w = images.shape
    padded = F.pad(images, (padding,) * 4, mode="reflect")
    dx = torch.randint(0, 2 * padding + 1, (n,), device=images.device, generator=generator)
    dy = torch.randint(0, 2 * padding + 1, (n,), device=images.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=images.device)[None])  # [n, h]
    cols = (dx[:, None] + torch.arange(w, device=images.device)[None])  # [n, w]
    batch = torch.arange(n, device=images.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last
                                               if images.is_contiguous(memory_format=torch.channels_last)
                                               else torch.contiguous_format)


def random_flip(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Flip a random half of the images horizontally."""
    mask = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(mask[:, None, None, None], images.flip(-1), images)


def augment_batch(images: torch.Tensor, crop_padding: int = 0, flip: bool = False,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    if crop_padding:
        images = random_crop(images, crop_padding, generator)
    if flip:
        images = random_flip(images, generator)
    return images


class TensorLoader:
    """Iterates (images, targets) batches of float images in [0, 1] on `device`.

    `targets` may be class indices [N] or soft labels [N, C]. With `augment`
    ({crop_padding, flip}) the batches are augmented on the device.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, batch_size: int,
                 shuffle: bool = True, augment: dict | None = None, device: str | torch.device = "cpu",
                 seed: int = 0, drop_last: bool = False):
        if len(images) != len(targets):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.targets = targets.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment or {}
        self.drop_last = drop_last
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.images)
        order = (torch.randperm(n, device=self.device, generator=self.generator) if self.shuffle
                 else torch.arange(n, device=self.device))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            images = to_float(self.images[idx])
            if self.augment:
                images = augment_batch(images, generator=self.generator, **self.augment)
            yield images, self.targets[idx]
