"""An other-domain transfer set of natural images (offline), standing in for Open Images.

Knockoff Nets (Orekondy et al. 2019; SoK Appendix XIII-C) queries the victim with natural
images of another domain. None can be downloaded here, so the transfer set is random crops of
the photographs that installed packages ship: matplotlib's `grace_hopper.jpg` and fourteen of
scikit-image's bundled `skimage.data` images (photographs, micrographs and textures; its
text, logo and synthetic images are left out). The files are read with PIL (scikit-image is
not imported). Each crop's side is a random fraction in `crop_side` (default 5–30 %, Knockoff
Nets' best measured on Fashion-MNIST, docs/attacks.md) of the shorter side of its image, at a
random place; it is flipped horizontally with probability ½ and resized to the task's image
size and channels.
Nothing in it is a glyph, a Fashion-MNIST image or any scheme's key.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image

SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "coffee.png",
                  "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png",
                  "motorcycle_left.png", "rocket.jpg")
CROP_SIDE = (0.05, 0.3)  # crop side, as a fraction of the image's shorter side (issue #29: 5–30 % beat 10–60 %)


def photo_files() -> list[Path]:
    """The photographs the transfer set is cut from (matplotlib's and scikit-image's)."""
    files = [Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"]
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the natural-image transfer set needs scikit-image's bundled images: "
                           "pip install scikit-image")
    data = Path(spec.submodule_search_locations[0]) / "data"
    return files + [data / name for name in SKIMAGE_PHOTOS]


@lru_cache(maxsize=None)
def photos(mode: str) -> tuple[Image.Image, ...]:
    """The photographs in PIL `mode` ("L" or "RGB")."""
    return tuple(Image.open(path).convert(mode) for path in photo_files())


def natural_crops(n: int, size: int = 28, channels: int = 1, generator: torch.Generator | None = None,
                  crop_side: tuple[float, float] = CROP_SIDE) -> torch.Tensor:
    """`n` random crops (uint8 [n, channels, size, size]) of the photographs, drawn with
    `generator`: which photograph, the crop's side (a fraction in `crop_side` of the shorter
    side) and place, and a horizontal flip."""
    if channels not in (1, 3):
        raise ValueError(f"natural_crops: channels={channels} is not allowed: must be 1 or 3")
    low, high = crop_side
    if not 0 < low <= high <= 1:
        raise ValueError(f"natural_crops: crop_side={list(crop_side)} is not allowed: must be [low, high] "
                         f"with 0 < low <= high <= 1")
    images = photos("L" if channels == 1 else "RGB")
    u = torch.rand(n, 4, generator=generator).double().numpy()
    which = torch.randint(len(images), (n,), generator=generator).numpy()
    out = np.empty((n, size, size, channels), dtype=np.uint8)
    for i in range(n):
        image = images[which[i]]
        width, height = image.size
        side = max(2, int(min(width, height) * (low + u[i, 0] * (high - low))))
        left, top = int(u[i, 1] * (width - side)), int(u[i, 2] * (height - side))
        crop = image.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))
        if u[i, 3] < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        out[i] = np.asarray(crop).reshape(size, size, channels)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
