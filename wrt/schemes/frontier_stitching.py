"""Le Merrer et al., "Adversarial Frontier Stitching for Remote Neural Network Watermarking"
(Neural Computing and Applications 2020), §3; SoK §III-B and Appendix XII-B.

Key generation (the paper's Algorithm 1): the Fast Gradient (sign) Method with perturbation
ε (the SoK ablates 0.1 ≤ ε ≤ 0.25; 0.25 is the paper's MNIST value and our default) is applied
to correctly classified defender images. Perturbed images that the source model now
misclassifies are *true adversaries*; those it still classifies correctly, *false adversaries*
(they lie close to the decision frontier). The key holds equally many of each (50 + 50 for
N = 100), every one labelled with its original, true class. Embedding fine-tunes the model on
the key mixed into its training data until it classifies the key correctly — "stitching" the
frontier around the true adversaries — which we run as Adi's embedding (the key repeated 100×,
early stopping on the watermark loss); extraction is the key's accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from wrt.adversarial import batched, fgm
from wrt.data import Dataset
from wrt.data.loader import to_float
from wrt.params import param
from wrt.schemes.base import Key, TriggerSetScheme
from wrt.validation import require


# the SoK's ablation range of ε (Appendix XII-B), searched in steps of 0.025 when the
# configured ε finds too few true or false adversaries on a model
EPS_RANGE = (0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25)


@dataclass(eq=False)
class FrontierStitching(TriggerSetScheme):
    # each key searches the defender's images for true and false adversaries (≈ 12 s at budget=smoke on
    # 2 CPU cores, 25× the extraction): a null run measures at most 10 keys (docs/analysis.md)
    max_null_keys = 10
    eps: float = param(0.25, low=0, high=1, low_open=True)

    @torch.no_grad()
    def _predict(self, model, images):
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        out = torch.cat([model(images[i:i + 512].to(device)).argmax(1).cpu() for i in range(0, len(images), 512)])
        model.train(was_training)
        return out

    def adversaries(self, model, images, labels, order, eps: float, n_true: int, n_false: int):
        """FGM at `eps` on correctly classified images in `order` until both halves are full:
        (true_x, true_y, false_x, false_y, candidates tried)."""
        true_x, false_x, true_y, false_y = [], [], [], []
        tried = 0
        for start in range(0, len(order), 1024):
            idx = order[start:start + 1024]
            x, y = to_float(images[idx]), labels[idx]
            correct = self._predict(model, x) == y
            x, y = x[correct], y[correct]
            adv = batched(fgm, model, x, y, eps=eps).cpu()
            still_correct = self._predict(model, adv) == y
            tried += len(y)
            true_x.append(adv[~still_correct]), true_y.append(y[~still_correct])
            false_x.append(adv[still_correct]), false_y.append(y[still_correct])
            if sum(map(len, true_y)) >= n_true and sum(map(len, false_y)) >= n_false:
                break
        return (torch.cat(true_x)[:n_true], torch.cat(true_y)[:n_true],
                torch.cat(false_x)[:n_false], torch.cat(false_y)[:n_false], tried)

    def keygen(self, model, data: Dataset, generator: torch.Generator) -> Key:
        """The configured ε first; where it finds too few true or false adversaries on this model
        (a stronger step makes fewer false ones, a weaker one fewer true ones), the next ε of the
        paper's range by distance from it. The key records the ε it used."""
        images, labels = data.defender()
        n_true = self.key_size // 2
        n_false = self.key_size - n_true
        order = torch.randperm(len(labels), generator=generator)
        tries = sorted(dict.fromkeys([self.eps, *EPS_RANGE]), key=lambda e: abs(e - self.eps))
        found = []
        for eps in tries:
            true_x, true_y, false_x, false_y, tried = self.adversaries(model, images, labels, order, eps,
                                                                       n_true, n_false)
            if len(true_y) == n_true and len(false_y) == n_false:
                break
            found.append(f"ε {eps:g}: {len(true_y)} and {len(false_y)}")
        require(len(true_y) == n_true and len(false_y) == n_false, "scheme.eps", self.eps,
                f"a perturbation giving {n_true} true and {n_false} false adversaries among the defender's "
                f"images for some ε in [{EPS_RANGE[0]}, {EPS_RANGE[-1]}] (found {'; '.join(found)})")
        return Key({"images": torch.cat([true_x, false_x]), "labels": torch.cat([true_y, false_y]),
                    "true_adversary": torch.cat([torch.ones(n_true), torch.zeros(n_false)]).bool()},
                   {"eps": eps, "eps_configured": self.eps, "true_adversaries": n_true,
                    "false_adversaries": n_false, "candidates_tried": tried})
