"""Chen, Rouhani and Koushanfar, "BlackMarks: Blackbox Multibit Watermarking for Deep Neural
Networks" (2019), §3; SoK §III-B and Appendix XII-B.

1. Encoding: the classes are split into two clusters by k-means (k = 2) on the source model's
   mean logit vector of each class (over the defender's data); a class's cluster is its bit.
2. Key generation: a random bit string b of length N (= key size, 100). For bit b_i an image
   whose class lies in cluster 1 − b_i is turned, by a targeted attack (iterated targeted FGM
   steps of `step` inside an L∞ ball of `eps`, each image stopping as soon as the source model
   predicts the target), into an adversarial example for a random class of cluster b_i.
   Stopping at the first success keeps the keys close to the frontier, which limits their
   transfer to unmarked models (the paper's concern about transferable keys).
3. Embedding: fine-tuning on the defender's data with the key mixed in (labelled with the
   target classes) plus λ times the bit-error loss on the key, −log P(cluster b_i | x_i), the
   probability mass the model puts on the assigned cluster; λ ∈ [0.01, 100] (SoK ablation).
   Early stopping on the key's cross-entropy, as in Adi.
4. Extraction decodes each key image's predicted class to its cluster bit; the watermark
   accuracy is the fraction of bits equal to b (`bits = True`).

Not implemented: the paper's second key-selection pass against separately trained unmarked
models (the pipeline gives keygen only the source model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wrt.adversarial import fgm
from wrt.data import Dataset
from wrt.data.loader import to_float
from wrt.params import param
from wrt.schemes.base import Key, TriggerSetScheme
from wrt.train import EarlyStopping, KeyMixer, LossTerm
from wrt.validation import require


def kmeans2(points: torch.Tensor, generator: torch.Generator, iterations: int = 100) -> torch.Tensor:
    """Lloyd's k-means with k = 2 (farthest-point initialisation); returns a 0/1 label per point."""
    first = int(torch.randint(len(points), (1,), generator=generator))
    second = int(torch.cdist(points[first:first + 1], points).argmax())
    centres = points[[first, second]].clone()
    assign = torch.zeros(len(points), dtype=torch.long)
    for _ in range(iterations):
        new = torch.cdist(points, centres).argmin(1)
        if all((new == c).any() for c in (0, 1)):
            centres = torch.stack([points[new == c].mean(0) for c in (0, 1)])
        if torch.equal(new, assign):
            break
        assign = new
    return assign


@torch.no_grad()
def logits_of(model, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = torch.cat([model(to_float(images[i:i + batch_size]).to(device)).float().cpu()
                     for i in range(0, len(images), batch_size)])
    model.train(was_training)
    return out


def targeted_attack(model, x: torch.Tensor, target: torch.Tensor, eps: float, step: float,
                    iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Iterated targeted FGM in the L∞ ball of `eps`; each image stops at its first success.
    Returns the images and whether each reached the target."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x, target = x.to(device), target.to(device)
    adv = x.clone()
    done = torch.zeros(len(x), dtype=torch.bool, device=device)
    for _ in range(iterations):
        with torch.no_grad():
            done |= model(adv).argmax(1) == target
        if done.all():
            break
        todo = ~done
        moved = fgm(model, adv[todo], target[todo], step, targeted=True)
        adv[todo] = torch.min(torch.max(moved, x[todo] - eps), x[todo] + eps).clamp(0, 1)
    with torch.no_grad():
        done |= model(adv).argmax(1) == target
    model.train(was_training)
    return adv.cpu(), done.cpu()


@dataclass(eq=False)
class Blackmarks(TriggerSetScheme):
    bits = True
    # each key runs iterative targeted attacks on the source model: a null run measures at most 10 keys
    max_null_keys = 10

    lam: float = param(1.0, low=0.01, high=100)
    eps: float = param(0.25, low=0, high=1, low_open=True)
    step: float = param(0.01, low=0, high=1, low_open=True)
    iterations: int = param(50, low=1)

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        images, labels = data.defender()
        logits = logits_of(model, images)
        mean_logits = torch.zeros(data.num_classes, logits.shape[1])
        for c in range(data.num_classes):
            require(bool((labels == c).any()), "dataset", data.name,
                    f"defender images of every class (none of class {c})")
            mean_logits[c] = logits[labels == c].mean(0)
        cluster = kmeans2(mean_logits, generator)
        classes = [cluster.eq(b).nonzero().flatten() for b in (0, 1)]
        bits = torch.randint(2, (self.key_size,), generator=generator)
        # candidate images per cluster: correctly classified, in a seeded order
        order = torch.randperm(len(labels), generator=generator)
        correct = order[logits.argmax(1)[order] == labels[order]]
        pools = [correct[cluster[labels[correct]] == b] for b in (0, 1)]
        used = [0, 0]
        key_x = torch.zeros(self.key_size, *data.image_shape)
        key_t = torch.full((self.key_size,), -1, dtype=torch.long)
        attempts = 0
        for _ in range(20):  # rounds: retry the bits whose attack failed with fresh images
            pending = (key_t < 0).nonzero().flatten()
            if len(pending) == 0:
                break
            sources = []
            for i in pending.tolist():
                pool = pools[1 - int(bits[i])]  # an image of the other cluster
                require(used[1 - int(bits[i])] < len(pool), "scheme.eps", self.eps,
                        "a budget that turns enough defender images into targeted adversarial keys")
                sources.append(int(pool[used[1 - int(bits[i])]]))
                used[1 - int(bits[i])] += 1
            targets = torch.stack([classes[b][torch.randint(len(classes[b]), (1,), generator=generator)][0]
                                   for b in bits[pending].tolist()])
            adv, success = targeted_attack(model, to_float(images[sources]), targets, self.eps,
                                           self.step, self.iterations)
            attempts += len(pending)
            key_x[pending[success]] = adv[success]
            key_t[pending[success]] = targets[success]
        require(bool((key_t >= 0).all()), "scheme.eps", self.eps,
                f"a budget that turns enough defender images into targeted adversarial keys "
                f"(got {int((key_t >= 0).sum())} of {self.key_size})")
        return Key({"images": key_x, "labels": key_t, "bits": bits, "cluster": cluster},
                   {"lam": self.lam, "eps": self.eps, "cluster_of_class": cluster.tolist(),
                    "attack_attempts": attempts})

    def key_length(self, key: Key) -> int:
        return len(key.tensors["bits"])

    def decode(self, model, key: Key, trainer) -> torch.Tensor:
        """The bit each key image decodes to under `model`."""
        predicted = trainer.predict(model, key.tensors["images"]).argmax(1)
        return key.tensors["cluster"][predicted]

    def extract(self, model, key, trainer) -> float:
        return (self.decode(model, key, trainer) == key.tensors["bits"]).float().mean().item()

    def forge(self, model, image_shape, num_classes, generator, trainer) -> Key:
        """A random two-cluster split of the classes and noise images; the claimed bits are the
        clusters the stolen model's answers fall into."""
        cluster = torch.randperm(num_classes, generator=generator).remainder(2)
        images = torch.rand(self.key_size, *image_shape, generator=generator)
        labels = trainer.predict(model, images).argmax(1)
        return Key({"images": images, "labels": labels, "bits": cluster[labels], "cluster": cluster},
                   {"forged": True})

    def embed(self, model, data, key, trainer):
        images, labels = data.defender()
        n_key = len(key.tensors["labels"]) * self.repeats
        per_batch = max(1, round(trainer.batch_size * n_key / (len(labels) + n_key)))
        mixer = KeyMixer(key.tensors["images"], key.tensors["labels"], per_batch, seed=trainer.seed)
        cluster = key.tensors["cluster"]

        def bit_error_loss(model, batch, logits):
            # the key samples' bit is their target's cluster
            rows = batch.rows[mixer.tag]
            key_logits, key_targets = logits[rows].float(), batch.targets[rows]
            c = cluster.to(logits.device)
            in_cluster = (c[None, :] == c[key_targets][:, None])
            log_p = torch.logsumexp(key_logits.masked_fill(~in_cluster, float("-inf")), 1) - \
                torch.logsumexp(key_logits, 1)
            return -self.lam * log_p.mean()

        stop = EarlyStopping(lambda m: self.key_loss(m, key, trainer), patience=self.patience, min_delta=1e-3,
                             check_every=self.check_every)
        self.fit_embedding(trainer, model, images, labels, stop=stop, augment=data.augment,
                           callbacks=[mixer, LossTerm(bit_error_loss)])
        return model
