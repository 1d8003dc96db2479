"""Szyller et al., "DAWN: Dynamic Adversarial Watermarking of Neural Networks" (ACM MM 2021),
§4; SoK §III-C (line ~702: a fraction r of queries is "randomly relabeled", the key's "labels are
assigned randomly") and Appendix XII-D.

DAWN is active: it leaves the model as it is and wraps its prediction API. For every query x
the wrapper computes a keyed hash, HMAC-SHA256(K_w, x) over the input's bytes (quantised to
8 bits per pixel) with a secret key K_w drawn from the key's seed. If the hash's first 64 bits,
read as a fraction of 2^64, fall below r (r ∈ {0.01, 0.02}, SoK ablation) the wrapper answers
with a label drawn from the hash's next 56 bits h. `labels: random` (the SoK's rule, default):
h mod C, uniform over the C classes, so it equals the model's prediction ŷ with probability 1/C;
`labels: wrong`: (ŷ + 1 + h mod (C − 1)) mod C, uniform over the other C − 1 classes. Either is
deterministic per input, so repeating a query yields the same answer; otherwise the wrapper
answers as the model does. Answers are logits (a one-hot-like large logit for a relabelled
query), so the wrapper is a drop-in model. (The SoK toolbox's wrapper instead shuffles the
probabilities of the classes above 0.2, or of the top 3, by a permutation other than the
identity; its label is one of those classes and can also equal ŷ.)

The watermark is the set of relabelled queries. Attackers query the API with their data,
so `keygen` collects it from the attacker's part of the training set: the (up to 100) images
there that the hash selects, with the label the wrapper returns for them. `extract`
measures how often a model reproduces those labels: the deployed wrapper does so 100 %, an
unmarked model by chance (1/C per entry with `random` labels, the binomial bound θ follows from;
docs/schemes.md), and a surrogate distilled from the wrapper's answers to the extent that it
learned them — which is how DAWN verifies ownership. `embed` returns the model unchanged.
White-box attacks on DAWN run on a model extracted from the wrapper first (SoK Fig. 3,
`wrt.pipeline`). Not implemented: DAWN's optional detection of near-duplicate queries
(answering similar inputs alike); identical inputs are answered alike through the hash.
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
LABEL_RULES = ("random", "wrong")


def relabel(predicted: torch.Tensor, h: torch.Tensor, classes: int, rule: str) -> torch.Tensor:
    """The label answered for relabelled queries with predictions `predicted` and hashes `h`: `random`
    h mod C (uniform over all C classes, may equal the prediction), `wrong` a class other than the
    prediction (uniform over the other C − 1)."""
    if rule == "random":
        return h % classes
    return (predicted + 1 + h % (classes - 1)) % classes


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

    def __init__(self, model: nn.Module, secret: bytes, rate: float, labels: str = "random"):
        super().__init__()
        self.model, self.secret, self.rate, self.labels = model, secret, rate, labels

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
        label = relabel(logits.argmax(1), h.to(logits.device), classes, self.labels)
        one_hot = torch.full_like(logits, -FALSE_LOGIT).scatter(1, label[:, None], FALSE_LOGIT)
        return torch.where(flagged[:, None], one_hot, logits)


@dataclass(eq=False)
class Dawn(Scheme):
    active = True  # the wrapper answers every query: white-box attacks need an extracted model first
    rate: float = param(0.01, low=0, high=1, low_open=True, high_open=True)
    key_size: int = param(100, low=1)
    labels: str = param("random", choices=LABEL_RULES)

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        secret = torch.randint(256, (32,), generator=generator, dtype=torch.uint8)
        wrapper = DawnWrapper(model, bytes(secret.tolist()), self.rate, self.labels)
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
        return DawnWrapper(model, bytes(key.tensors["secret"].tolist()), self.rate, self.labels)

    def extract(self, model, key, trainer) -> float:
        return trainer.accuracy(model, key.tensors["images"], key.tensors["labels"])

    def forge(self, model, image_shape, num_classes, generator, trainer) -> Key:
        """A made-up secret and noise images labelled by the stolen model (as for trigger sets)."""
        images = torch.rand(self.key_size, *image_shape, generator=generator)
        secret = torch.randint(256, (32,), generator=generator, dtype=torch.uint8)
        return Key({"images": images, "labels": trainer.predict(model, images).argmax(1), "secret": secret},
                   {"forged": True})
