"""Input preprocessing attacks (SoK §V-A, Appendix XIII-A; Table III: white-box, no data).

The surrogate is the marked model behind a preprocessing layer: every input is transformed
before the model sees it. Wrappers keep the model as `.model` (so `wrt.models.unwrap` finds
it), keep each input's shape and its value range [0, 1].

- Input reconstruction [46]: a convolutional autoencoder with a bottleneck of 64 ≤ h ≤ 512
  units, trained by the attacker on its own images, reconstructs every input.
- JPEG compression [44]: real JPEG encoding and decoding (Pillow) at quality 5 ≤ q ≤ 95.
- Input quantization [42]: 2^b evenly spaced quanta, each value set to its quantum's mean.
- Input smoothing [43]: a 3×3 mean or median filter, or a Gaussian filter truncated at 3σ (the SoK
  toolbox's kernel: 5×5 for its σ ∈ {0.5, 0.6, 0.7}; the paper's text says 0.1 ≤ σ ≤ 0.3, which leaves a
  3×3 kernel whose neighbours weigh at most 0.4 % of the centre: no attack, docs/attacks.md).
- Input noising [45]: additive zero-mean Gaussian noise, σ ∈ [0.01, 0.2].
- Input flipping: mirror every image about its vertical axis (a horizontal flip).
- Feature squeezing [43] (Xu et al. 2018): values rounded to the nearest multiple of 0.5^k,
  1 ≤ k ≤ 6, followed by median smoothing.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from wrt.attacks.base import Attack, AttackContext
from wrt.params import EPOCHS, LR, param
from wrt.store import load_state
from wrt.validation import require

# ---- transforms on float images [N, C, H, W] in [0, 1] ------------------------------------


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode each image as a JPEG at `quality` with Pillow and decode it again (1 or 3 channels)."""
    require(x.shape[1] in (1, 3), "input channels", x.shape[1], "1 or 3 for jpeg_compression")
    pixels = (x.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    decoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="JPEG",
                                                                                quality=quality)
        decoded.append(np.asarray(Image.open(buffer)).reshape(image.shape))
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).to(x.device, torch.float32).div_(255)


def quantize_pixels(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Project each value onto the mean of its quantum (2^bits intervals of [0, 1])."""
    levels = 2 ** bits
    return (torch.floor(x * levels).clamp(0, levels - 1) + 0.5) / levels


def squeeze_bits(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Round each value to the nearest multiple of 0.5^bits (feature squeezing)."""
    levels = 2 ** bits
    return torch.round(x * levels) / levels


def _patches(x: torch.Tensor, size: int) -> torch.Tensor:
    """[N, C, H, W, size*size] neighbourhoods, with reflected borders."""
    lo = (size - 1) // 2
    padded = F.pad(x, (lo, size - 1 - lo, lo, size - 1 - lo), mode="reflect")
    return padded.unfold(2, size, 1).unfold(3, size, 1).flatten(-2)


def median_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    return _patches(x, size).median(dim=-1).values


def mean_filter(x: torch.Tensor, size: int) -> torch.Tensor:
    return _patches(x, size).mean(dim=-1)


def gaussian_filter(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float32, device=x.device) - (size - 1) / 2
    weights = torch.exp(-(offsets[:, None] ** 2 + offsets[None] ** 2) / (2 * sigma ** 2))
    return (_patches(x, size) * (weights / weights.sum()).flatten()).sum(-1)


class Preprocessed(nn.Module):
    """`model(transform(x))`: the marked model behind an input transformation."""

    def __init__(self, model: nn.Module, transform, name: str):
        super().__init__()
        self.model, self.transform, self.name = model, transform, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.transform(x))

    def extra_repr(self) -> str:
        return self.name


class InputPreprocessing(Attack):
    """Base: subclasses implement `transform(x)`; the surrogate is the wrapped model."""

    category = "input_preprocessing"

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, model: nn.Module, ctx: AttackContext) -> nn.Module:
        return Preprocessed(model, self.transform, type(self).__name__)


@dataclass(eq=False)
class JpegCompression(InputPreprocessing):
    quality: int = param(50, low=5, high=95)

    def transform(self, x):
        return jpeg(x, self.quality)


@dataclass(eq=False)
class InputQuantization(InputPreprocessing):
    bits: int = param(4, choices=(3, 4, 5))

    def transform(self, x):
        return quantize_pixels(x, self.bits)


@dataclass(eq=False)
class InputSmoothing(InputPreprocessing):
    """`size` is the mean and median filters' width; the Gaussian filter's radius is 3σ rounded (as scipy's
    `gaussian_filter(truncate=3)`, which the SoK's toolbox uses)."""

    KERNELS = ("mean", "median", "gaussian")

    kernel: str = param("median", choices=KERNELS)
    size: int = param(3, low=1)
    sigma: float = param(0.5, low=0.1, high=2.0)  # the Gaussian kernel's, in pixels; its size follows from it

    def transform(self, x):
        if self.kernel == "gaussian":
            return gaussian_filter(x, 2 * int(3 * self.sigma + 0.5) + 1, self.sigma)
        return (median_filter if self.kernel == "median" else mean_filter)(x, self.size)


@dataclass(eq=False)
class InputNoising(InputPreprocessing):
    sigma: float = param(0.1, low=0.01, high=0.2)
    generator: torch.Generator = field(default_factory=torch.Generator, init=False, repr=False)

    def transform(self, x):
        noise = torch.randn(x.shape, generator=self.generator).to(x.device)
        return (x + self.sigma * noise).clamp(0, 1)

    def __call__(self, model, ctx):
        self.generator.manual_seed(ctx.seed + 17)
        return super().__call__(model, ctx)


class InputFlipping(InputPreprocessing):
    def transform(self, x):
        return x.flip(-1)


@dataclass(eq=False)
class FeatureSqueezing(InputPreprocessing):
    bits: int = param(4, low=1, high=6)
    median_size: int = param(3, low=1)

    def transform(self, x):
        squeezed = squeeze_bits(x, self.bits)
        return median_filter(squeezed, self.median_size) if self.median_size > 1 else squeezed


# ---- input reconstruction ------------------------------------------------------------------

class ConvAutoencoder(nn.Module):
    """Two strided convolutions → a linear bottleneck of `bottleneck` units → two transposed
    convolutions; outputs images in [0, 1] of the input's shape (H, W divisible by 4)."""

    def __init__(self, channels: int, size: int, bottleneck: int, width: int = 32):
        super().__init__()
        self.inner = size // 4
        flat = 2 * width * self.inner ** 2
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 3, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(inplace=True),
            nn.Flatten(), nn.Linear(flat, bottleneck))
        self.decoder_fc = nn.Sequential(nn.Linear(bottleneck, flat), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(width, channels, 4, 2, 1))
        self.width = width

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        h = self.decoder_fc(self.encoder(x))
        return self.decoder(h.view(len(x), 2 * self.width, self.inner, self.inner))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class PixelBernoulli(nn.Module):
    """Training view of an autoencoder for `Trainer.fit`: per-pixel logits as two classes
    (−z/2, z/2), so the loop's cross-entropy against targets (1 − x, x) is exactly the
    per-pixel binary cross-entropy reconstruction loss."""

    def __init__(self, autoencoder: ConvAutoencoder):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, x):
        z = self.autoencoder.logits(x)
        return torch.stack([-z / 2, z / 2], dim=1)


@dataclass(eq=False)
class InputReconstruction(InputPreprocessing):
    """An autoencoder trained on the attacker's own images (its third of the training set,
    labels unused, Adam on the per-pixel binary cross-entropy) reconstructs every input;
    cached in the store per bottleneck."""

    bottleneck: int = param(256, low=64, high=512)
    epochs: float = param(10, **EPOCHS)
    lr: float = param(1e-3, **LR)

    def autoencoder(self, ctx: AttackContext) -> ConvAutoencoder:
        channels, size, width = ctx.data.image_shape
        require(size == width and size % 4 == 0, "dataset image size", (size, width),
                "square with a side divisible by 4 for input_reconstruction")
        images, _ = ctx.draw(*ctx.data.attacker())  # the attacker's images; labels are not used
        ctx.count(unlabeled_samples=len(images))
        budget = ctx.attacker_data
        trainer = ctx.trainer
        epochs = trainer.scaled_epochs(self.epochs)
        torch.manual_seed(ctx.seed + 3)
        autoencoder = ConvAutoencoder(channels, size, self.bottleneck)
        spec = {"dataset": ctx.data.name, "images": len(images), "image_shape": [channels, size, width],
                "bottleneck": self.bottleneck, "epochs": epochs, "lr": self.lr,
                "batch_size": trainer.batch_size, "optimizer": "Adam",
                "seed": ctx.seed, "split_seed": ctx.data.split_seed,
                "attacker_data": [budget.fraction, budget.count, budget.domain]}

        def train():
            pixels = images.float().div(255)
            targets = torch.stack([1 - pixels, pixels], dim=1)
            trainer.fit(PixelBernoulli(autoencoder), images, targets, epochs=epochs, scale_epochs=False,
                        optimizer=partial(torch.optim.Adam, lr=self.lr), desc="autoencoder")
            return autoencoder.state_dict(), {}

        if ctx.store is None:
            train()
        else:
            state, _, _ = ctx.store.get_or_create("autoencoder", spec, train)
            load_state(autoencoder, state, ctx.store.path("autoencoder", spec))
        return autoencoder.eval()

    def __call__(self, model, ctx):
        autoencoder = self.autoencoder(ctx)
        wrapper = Preprocessed(model, autoencoder, f"InputReconstruction(h={self.bottleneck})")
        return wrapper
