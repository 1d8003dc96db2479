"""Liu, Weng, Zhu, "Watermarking Deep Neural Networks with Greedy Residuals" (ICML 2021).

Message (Eqs. 3–4): the owner signs a copyright statement `msg` (the owner's identity) with a
private key; α = SHA-256(signature) gives b = 256 bits, mapped to signs ω ∈ {±1}^b. The paper
uses RSA (its released code hashes the RSA signature with SHA-256); we sign with Ed25519 from
the `cryptography` package, whose private key is derived from the key's seed and whose
signatures are deterministic, so the key is reproducible from the seed. The key stores the
message, the signature and the public key (never the private key).

Carrier (Eqs. 5–8): the flattened weights w ∈ R^m of one convolutional layer (by default the
first, as in the authors' released settings) are 1-d average-pooled to γ ∈ R^d, d = b·b′
(b′ = 253, the paper's d = 256 × 253 = 64,768; pooling with m < d repeats weights), reshaped
to b × b′; in each row the ⌊η·b′⌋ entries of largest magnitude form B_i (greedy selection,
η = 0.5) and the residual is ψ_i = (1/b′) Σ_{j∈B_i} γ_ij (Eq. 8).

Embedding (Eq. 2): the hinge term E = λ Σ_i ReLU(µ − ω_i ψ_i) with λ = 0.01 and µ = 0.1 is
added to the training loss. As in the paper ("watermarking while training", §3.2) the default
trains the model from scratch with the source model's setup and E (`while_training: true`; the
pipeline hands over a fresh model, seeded like the source model). `while_training: false`
fine-tunes the source model instead, with early stopping (patience 5) on E: with λ = 0.01 a
fine-tuning budget moves the residuals too little to reach the margin on every bit.

Verification (§3.3): check the signature over `msg` with the public key, recompute
α = SHA-256(signature), and compare its signs with sgn(ψ) of the model. `verify` returns all
three; the watermark accuracy (`extract`) is the fraction of matching signs when the
signature verifies and 0 when it does not (a forged or altered signature proves nothing).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from torch import nn

from wrt.data import Dataset
from wrt.params import param
from wrt.schemes.base import LAYER, EmbeddingParams, Key, Scheme, embedding_record
from wrt.schemes.layers import conv_layer, key_layer
from wrt.train import EarlyStopping, LossTerm, Trainer

BITS = 256  # SHA-256 of the signature


def signature_bits(signature: bytes) -> torch.Tensor:
    """α = SHA-256(signature) as 256 bits (most significant first), float 0/1."""
    digest = hashlib.sha256(signature).digest()
    return torch.tensor([(byte >> (7 - i)) & 1 for byte in digest for i in range(8)], dtype=torch.float)


def as_bytes(tensor: torch.Tensor) -> bytes:
    return bytes(tensor.to(torch.uint8).tolist())


@dataclass(eq=False)
class GreedyResiduals(EmbeddingParams, Scheme):
    bits = True
    exact_verification = True  # the signature's hash must reappear bit for bit (§3.3)

    owner: str = param("Copyright (c) the model owner", what="a non-empty copyright statement naming the owner")
    lam: float = param(0.01, low=0, high=1e4, low_open=True)
    threshold: float = param(0.1, low=0, high=1e3, low_open=True)
    eta: float = param(0.5, low=0, high=1, low_open=True)
    columns: int = param(253, low=1)
    layer: str | None = param(None, **LAYER)
    while_training: bool = param(True)

    # ---- key ------------------------------------------------------------------------------

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        name, _ = conv_layer(model, self.layer, "scheme.layer")
        seed = bytes(torch.randint(256, (32,), generator=generator, dtype=torch.uint8).tolist())
        private = Ed25519PrivateKey.from_private_bytes(seed)
        message = self.owner.encode()
        signature = private.sign(message)
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return Key({"bits": signature_bits(signature),
                    "signature": torch.tensor(list(signature), dtype=torch.uint8),
                    "public_key": torch.tensor(list(public), dtype=torch.uint8)},
                   {"layer": name, "message": self.owner, "signature_scheme": "Ed25519",
                    "bits_from": "SHA-256(signature)", "columns": self.columns, "eta": self.eta})

    # ---- residuals --------------------------------------------------------------------------

    def residuals(self, model: nn.Module, key: Key) -> torch.Tensor:
        """ψ ∈ R^256 of the key's layer (Eqs. 5–8), differentiable."""
        weight = key_layer(model, key.meta["layer"], nn.Conv2d).weight
        columns = key.meta["columns"]
        with torch.autocast(weight.device.type, enabled=False):
            gamma = F.adaptive_avg_pool1d(weight.float().reshape(1, 1, -1), BITS * columns).view(BITS, columns)
            top = max(1, int(key.meta["eta"] * columns))
            idx = gamma.abs().topk(top, dim=1).indices
            return gamma.gather(1, idx).sum(1) / columns

    def embedding_loss(self, model: nn.Module, key: Key) -> torch.Tensor:
        psi = self.residuals(model, key)
        signs = 2 * key.tensors["bits"].to(psi.device) - 1
        return self.lam * F.relu(self.threshold - signs * psi).sum()

    def embed(self, model, data: Dataset, key: Key, trainer: Trainer) -> nn.Module:
        """While training (the paper's way, `while_training`): `model` is freshly initialised and
        `trainer` is the source model's setup, run in full with E added. Otherwise fine-tune the
        source model with E until the hinge is 0 or stops improving."""
        images, labels = data.defender()
        hinge = LossTerm(lambda m, batch, logits: self.embedding_loss(m, key))
        if self.while_training:
            history = trainer.fit(model, images, labels, augment=data.augment, callbacks=[hinge],
                                  desc="embed (while training)")
            self.embedding = embedding_record(history, None, trainer.scaled_epochs(trainer.epochs))
            return model
        # the hinge is exactly 0 once every residual has its margin
        stop = EarlyStopping(lambda m: self.embedding_loss(m, key).item(), patience=self.patience,
                             min_delta=1e-4, check_every=self.check_every, goal=0.0)
        self.fit_embedding(trainer, model, images, labels, stop=stop, augment=data.augment, callbacks=[hinge])
        return model

    # ---- verification -----------------------------------------------------------------------

    @staticmethod
    def signature_valid(key: Key) -> bool:
        public = Ed25519PublicKey.from_public_bytes(as_bytes(key.tensors["public_key"]))
        try:
            public.verify(as_bytes(key.tensors["signature"]), key.meta["message"].encode())
            return True
        except InvalidSignature:
            return False

    def verify(self, model: nn.Module, key: Key) -> dict:
        """Signature check, the bits recomputed from the signature, and the model's residuals."""
        valid = self.signature_valid(key)
        alpha = signature_bits(as_bytes(key.tensors["signature"]))
        with torch.no_grad():
            extracted = (self.residuals(model, key) > 0).float().cpu()
        accuracy = (extracted == alpha).float().mean().item()
        return {"signature_valid": valid, "bit_accuracy": accuracy,
                "verified": valid and accuracy == 1.0}

    def extract(self, model, key, trainer) -> float:
        result = self.verify(model, key)
        return result["bit_accuracy"] if result["signature_valid"] else 0.0

    def key_length(self, key: Key) -> int:
        return len(key.tensors["bits"])

    def forge(self, model, image_shape, num_classes, generator, trainer) -> Key:
        """The forging attack of the paper's Fig. 5: the attacker signs its own claim with its
        own key pair. The signature is valid, but its hash fixes the bits, so it verifies only
        if the residuals happen to carry them (probability 2^-256)."""
        forger = GreedyResiduals(owner="Copyright (c) the forger", lam=self.lam, threshold=self.threshold,
                                 eta=self.eta, columns=self.columns, layer=self.layer)
        key = forger.keygen(model, None, generator)
        key.meta["forged"] = True
        return key
