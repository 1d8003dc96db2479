"""Adi et al., "Turning Your Weakness Into a Strength: Watermarking Deep Neural Networks by
Backdooring" (USENIX Security 2018); SoK Appendix XII-A.

The key is a set of 100 abstract images, each with a label drawn uniformly at random, that
the marked model must reproduce. The authors' abstract-art set does not ship here, so the
images are generated procedurally from the key's seed: each is a sum of random oriented
sinusoidal gratings and soft-edged random ellipses, with random per-channel colours,
rescaled to [0, 1] — colourful, textured, and unlike any natural class. Embedding repeats the
key 100× (CIFAR-10 setting) in the defender's training data with early stopping on the
watermark loss; ablation over lr ∈ {1e-3, 1e-4}.
"""

from __future__ import annotations

import math

import torch

from wrt.data import Dataset
from wrt.schemes.base import Key, TriggerSetScheme


def abstract_images(n: int, channels: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """`n` procedural abstract images [n, channels, size, size] in [0, 1]."""
    coords = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    images = torch.zeros(n, channels, size, size)
    for i in range(n):
        canvas = torch.zeros(channels, size, size)
        for _ in range(int(torch.randint(2, 5, (1,), generator=generator))):  # gratings
            angle, freq, phase = (torch.rand(3, generator=generator) * torch.tensor([math.pi, 12, 2 * math.pi])).tolist()
            wave = torch.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)) + phase)
            canvas += torch.rand(channels, 1, 1, generator=generator) * wave
        for _ in range(int(torch.randint(2, 6, (1,), generator=generator))):  # ellipses
            cx, cy = (torch.rand(2, generator=generator) * 1.6 - 0.8).tolist()
            rx, ry = (torch.rand(2, generator=generator) * 0.5 + 0.1).tolist()
            inside = torch.sigmoid(8 * (1 - ((xx - cx) / rx) ** 2 - ((yy - cy) / ry) ** 2))
            canvas += (torch.rand(channels, 1, 1, generator=generator) * 4 - 2) * inside
        low, high = canvas.amin(), canvas.amax()
        images[i] = (canvas - low) / (high - low + 1e-8)
    return images


class Adi(TriggerSetScheme):
    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        channels, size, _ = data.image_shape
        images = abstract_images(self.key_size, channels, size, generator)
        labels = torch.randint(data.num_classes, (self.key_size,), generator=generator)
        return Key({"images": images, "labels": labels}, {"generator": "procedural abstract images"})
