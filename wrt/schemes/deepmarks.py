"""Chen, Rouhani, Fu, Zhao, Koushanfar, "DeepMarks: A Secure Fingerprinting Framework for
Digital Rights Management of Deep Learning Models" (ICMR 2019); SoK §V-D and Appendix XII-C.

Each distributed model carries one code vector of an anti-collusion code (AND-ACC, Trappe et
al. 2003) built from a balanced incomplete block design: the codebook is the bit complement
of the incidence matrix of a (v, k, 1)-BIBD, one column per user. We construct the BIBD as
the projective plane PG(2, q) for a prime q — points and lines are the normalised non-zero
vectors of GF(q)³, point p lies on line l iff p·l ≡ 0 (mod q) — which gives
v = q² + q + 1 points and as many users, k = q + 1 points per line and every pair of points
on exactly one line; the code resists collusions of up to k − 1 = q users. The default order
q = 11 gives v = 133 bits, the shortest such code with at least the SoK's N = 100 bits (its
toolbox embeds `keylength: 100`; q = 7 gives 57). The code must fit the carrier, v ≤ M (as
Uchida's N ≤ M; with q = 7 on a 9-value carrier the correlation could not exceed √(9/57)), so
the default layer is the first conv whose carrier holds v values: SmallCNN's conv2 mean filter
(288 values).

The owner's fingerprint c ∈ {0, 1}^v (the column of the user drawn from the key's seed) is
mapped to b = 2c − 1 ∈ {±1}^v and embedded like Uchida's watermark into the same carrier w
(SoK: "the same target layer as in Uchida"): fine-tuning adds γ · ‖X·w − b‖² (the squared
error summed over the v code bits, as the SoK's toolbox) with a secret projection
X ~ N(0, 1)^{v×M}; γ ∈ {0.1, 10} (SoK ablation). On the whole weights (`carrier: weights`)
γ = 10 diverges (the loss's curvature, about 2γ(√v + √M)² ≈ 16,000, is far above 2/lr at lr
0.01); the mean filter divides it by the n filters averaged.

Extraction computes X·w and correlates it with the code vectors (`correlations`, used to
trace colluders); the watermark accuracy is its correlation with the owner's code vector,
≤ 0 counted as 0, as in the SoK's toolbox. It is a score, not a rate of matching bits
(`bits`/`match_rate` false), so its decision threshold comes from null runs (the empirical or
normal estimate), not from the binomial bound. An unmarked model's correlation is ≈ 0
(± 1/√v), clipped at 0 about half the time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from wrt.data import Dataset
from wrt.params import param
from wrt.schemes.base import Key
from wrt.schemes.uchida import ConvProjectionScheme


def is_prime(q: int) -> bool:
    return q >= 2 and all(q % d for d in range(2, int(q ** 0.5) + 1))


def projective_plane(q: int) -> torch.Tensor:
    """Incidence matrix [points, lines] of PG(2, q) for a prime q: a (q²+q+1, q+1, 1)-BIBD."""
    if not is_prime(q):
        raise ValueError(f"PG(2, q) is built here for prime q only, got {q}")
    # normalised representatives: the first non-zero coordinate is 1
    reps = [v for v in itertools.product(range(q), repeat=3)
            if any(v) and v[next(i for i, x in enumerate(v) if x)] == 1]
    pts = torch.tensor(reps)
    return ((pts @ pts.T) % q == 0).to(torch.uint8)  # lines have the same representatives


def and_acc_codebook(q: int) -> torch.Tensor:
    """AND anti-collusion codebook [v, users]: the complement of the BIBD incidence matrix."""
    return 1 - projective_plane(q)


@dataclass(eq=False)
class DeepMarks(ConvProjectionScheme):
    bits = False  # verified by correlation, not by matching bits
    match_rate = False  # θ from null runs, not the binomial bound

    order: int = param(11, low=2, what="a prime q (the BIBD is the projective plane PG(2, q))")
    gamma: float = param(10.0, low=0, high=1e4, low_open=True)
    user: int | None = param(None, low=0, null="drawn from the seed")

    def check(self):
        super().check()
        self.require(is_prime(self.order), "order")
        self.check_user(self.code_length(self.order))

    def check_user(self, users: int) -> None:
        self.require(self.user is None or self.user < users, "user",
                     f"null (drawn from the seed) or an integer in [0, {users - 1}]")

    @staticmethod
    def code_length(q: int) -> int:
        """v = q² + q + 1: the code length (and number of users) of PG(2, q)."""
        return q * q + q + 1

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        name, _, m = self.resolve_layer(model, self.code_length(self.order))
        codebook = and_acc_codebook(self.order)
        v, users = codebook.shape
        projection = torch.randn(v, m, generator=generator)
        user = self.user if self.user is not None else int(torch.randint(users, (1,), generator=generator))
        return Key({"projection": projection, "codebook": codebook,
                    "fingerprint": codebook[:, user].float()},
                   {"layer": name, "carrier": self.carrier, "carrier_size": m, "user": user,
                    "bibd": {"v": v, "k": self.order + 1, "lambda": 1}})

    def embedding_loss(self, model, key) -> torch.Tensor:
        projected = self.projected(model, key)
        target = 2 * key.tensors["fingerprint"].to(projected.device) - 1
        return self.gamma * ((projected - target) ** 2).sum()

    def extract(self, model, key, trainer) -> float:
        """The correlation of X·w with the owner's ±1 code vector (cosine of the two), ≤ 0
        counted as 0 (the SoK's toolbox): 1 when the projection points along the code (float
        rounding above 1 counted as 1)."""
        with torch.no_grad():
            projected = self.projected(model, key).cpu()
        code = 2 * key.tensors["fingerprint"].float() - 1
        return min(1.0, max(0.0, (code @ projected / (projected.norm() * code.norm() + 1e-12)).item()))

    def forge(self, model, image_shape, num_classes, generator, trainer) -> Key:
        """A fresh projection matrix; the claimed fingerprint is the codebook's code vector
        closest (Hamming) to the bits the stolen model shows through it — a valid user code."""
        key = self.keygen(model, None, generator)
        with torch.no_grad():
            bits = (self.projected(model, key) >= 0).float().cpu()
        codebook = key.tensors["codebook"].float()
        user = int((codebook == bits[:, None]).sum(0).argmax())
        key.tensors["fingerprint"] = codebook[:, user]
        key.meta.update(user=user, forged=True)
        return key

    def correlations(self, model, key) -> torch.Tensor:
        """Normalised correlation of X·w with every user's ±1 code vector (colluder tracing)."""
        with torch.no_grad():
            projected = self.projected(model, key).cpu()
        codes = 2 * key.tensors["codebook"].float() - 1
        return (codes.T @ projected) / (projected.norm() * codes.norm(dim=0) + 1e-12)
