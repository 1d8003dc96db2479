"""Szyller et al., "DAWN: Dynamic Adversarial Watermarking of Neural Networks" (ACM MM 2021),
§4; SoK §III-C and Appendix XII-D.

DAWN is active: it leaves the model as it is and wraps its prediction API. For every query x
the wrapper computes a keyed hash, HMAC-SHA256(K_w, x) over the input's bytes (quantised to
8 bits per pixel) with a secret key K_w drawn from the key's seed. If the hash's first 64 bits,
read as a fraction of 2^64, fall below r (r ∈ {0.01, 0.02}, SoK ablation) the wrapper answers
with a false label, (ŷ + 1 + h mod (C − 1)) mod C for the model's prediction ŷ and the hash's
next 64 bits h — always wrong and deterministic per input, so repeating a query yields the same
answer. Otherwise it answers as the model does. Answers are logits (a one-hot-like large logit
for a false label), so the wrapper is a drop-in model.

The watermark is the set of queries answered falsely. Attackers query the API with their data,
so `keygen` collects it from the attacker's part of the training set: the (up to 100) images
there that the hash selects, with the false label the wrapper returns for them. `extract`
measures how often a model reproduces those false labels: the deployed wrapper does so 100 %,
an unmarked model rarely, and a surrogate distilled from the wrapper's answers to the extent
that it learned them — which is how DAWN verifies ownership. `embed` returns the model
unchanged. Not implemented: DAWN's optional detection of near-duplicate queries (answering
similar inputs alike); identical inputs are answered alike through the hash.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import torch
from torch import nn

from wrt.data import Dataset
from wrt.data.loader import to_float
from wrt.params import param
from wrt.schemes.base import Key, Scheme
from wrt.validation import require

FALSE_LOGIT = 20.0


def input_hashes(secret: bytes, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: (u in [0, 1), h ≥ 0) from HMAC-SHA256(secret, image quantised to uint8)."""
    quantised = (to_float(images.detach().cpu()).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    us, hs = [], []
    for row in quantised:
        digest = hmac.new(secret, row.tobytes(), hashlib.sha256).digest()
        us.append(int.from_bytes(digest[:8], "big") / 2**64)
        hs.append(int.from_bytes(digest[8:15], "big"))  # 56 bits: fits int64
    return torch.tensor(us, dtype=torch.float64), torch.tensor(hs, dtype=torch.long)


class DawnWrapper(nn.Module):
    """The defender's API around `model` (kept as `.model`, see `wrt.models.unwrap`)."""

    def __init__(self, model: nn.Module, secret: bytes, rate: float):
        super().__init__()
        self.model, self.secret, self.rate = model, secret, rate

    def selected(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, h = input_hashes(self.secret, x)
        return u < self.rate, h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        flagged, h = self.selected(x)
        if not flagged.any():
            return logits
        flagged = flagged.to(logits.device)
        classes = logits.shape[1]
        false = (logits.argmax(1) + 1 + h.to(logits.device) % (classes - 1)) % classes
        one_hot = torch.full_like(logits, -FALSE_LOGIT).scatter(1, false[:, None], FALSE_LOGIT)
        return torch.where(flagged[:, None], one_hot, logits)


@dataclass(eq=False)
class Dawn(Scheme):
    active = True  # the wrapper answers every query; attacks on the inner model keep it
    rate: float = param(0.01, low=0, high=1, low_open=True, high_open=True)
    key_size: int = param(100, low=1)

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        secret = torch.randint(256, (32,), generator=generator, dtype=torch.uint8)
        wrapper = DawnWrapper(model, bytes(secret.tolist()), self.rate)
        images, _ = data.attacker()
        flagged, _ = wrapper.selected(images)
        chosen = flagged.nonzero().flatten()[:self.key_size]
        require(len(chosen) > 0, "scheme.rate", self.rate,
                f"a rate that selects some of the attacker's {len(images)} images")
        key_images = to_float(images[chosen])
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        with torch.no_grad():
            labels = wrapper(key_images.to(device)).argmax(1).cpu()
        model.train(was_training)
        return Key({"images": key_images, "labels": labels, "secret": secret},
                   {"rate": self.rate, "selected_in_attacker_data": int(flagged.sum()),
                    "attacker_images": len(images)})

    def key_length(self, key: Key) -> int:
        return len(key.tensors["labels"])

    def embed(self, model, data, key, trainer):
        return model

    def wrap(self, model, key):
        return DawnWrapper(model, bytes(key.tensors["secret"].tolist()), self.rate)

    def extract(self, model, key, trainer) -> float:
        return trainer.accuracy(model, key.tensors["images"], key.tensors["labels"])

    def forge(self, model, image_shape, num_classes, generator, trainer) -> Key:
        """A made-up secret and noise images labelled by the stolen model (as for trigger sets)."""
        images = torch.rand(self.key_size, *image_shape, generator=generator)
        secret = torch.randint(256, (32,), generator=generator, dtype=torch.uint8)
        return Key({"images": images, "labels": trainer.predict(model, images).argmax(1), "secret": secret},
                   {"forged": True})
