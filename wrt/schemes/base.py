"""The scheme protocol, and the shared machinery of backdoor-style (trigger set) schemes.

A scheme makes a secret key (`keygen`), embeds it into a model (`embed`) and measures the
watermark accuracy of any model against that key (`extract`). Keys are data: tensors plus
JSON-able metadata, stored by `wrt.store` without pickles and reproducible from their seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from wrt.data import Dataset
from wrt.params import EPOCHS, LR, Configurable, param
from wrt.train import EarlyStopping, KeyMixer, TrainHistory, Trainer


class KeyMismatch(Exception):
    """The model has no place for the key: the marked layer is missing or has another shape
    (e.g. after a structural obfuscation attack). The verifier finds no watermark there."""


@dataclass
class Key:
    """A watermarking key: named tensors plus JSON-able metadata."""

    tensors: dict[str, torch.Tensor]
    meta: dict = field(default_factory=dict)


class Scheme(Configurable):
    """Base class. `bits` is True for schemes whose watermark accuracy is a bit-match rate.
    Subclasses declare their parameters as dataclass fields (`wrt.params`)."""

    group = "scheme"
    bits: bool = False
    # the watermark accuracy is the fraction of key entries (bits, labels) an unmarked model matches
    # by chance independently, so the binomial bound gives a threshold; False: a score (DeepMarks'
    # correlation) whose threshold comes from null runs only
    match_rate: bool = True
    exact_verification: bool = False  # a claim must match every bit (signature-bound keys)
    while_training: bool = False  # embeds while training a fresh model with the source setup
    active: bool = False  # answers queries through its own wrapper (`wrap`): a white-box attack first extracts a
    # model from it and attacks that (SoK Fig. 3; `wrt.pipeline.EXTRACT_FIRST`)
    # key draws per null run: `null_keys` may not exceed this default bound; a scheme with a costly keygen
    # declares a lower one, to which larger `null_keys` are capped (docs/analysis.md)
    max_null_keys: int = 1000
    embedding: dict | None = None  # how the last `embed` stopped (`embedding_record`); None: no training

    def keygen(self, model: nn.Module, data: Dataset, generator: torch.Generator) -> Key:
        raise NotImplementedError

    def embed(self, model: nn.Module, data: Dataset, key: Key, trainer: Trainer) -> nn.Module:
        raise NotImplementedError

    def extract(self, model: nn.Module, key: Key, trainer: Trainer) -> float:
        """Watermark accuracy of `model` on `key`, in [0, 1]."""
        raise NotImplementedError

    def wrap(self, model: nn.Module, key: Key) -> nn.Module:
        """The model as the defender deploys it (active schemes such as DAWN wrap it)."""
        return model

    def key_length(self, key: Key) -> int:
        return len(next(iter(key.tensors.values()))) if key.tensors else 0

    def forge(self, model: nn.Module, image_shape: tuple, num_classes: int, generator: torch.Generator,
              trainer: Trainer) -> Key:
        """A counterfeit key in this scheme's format, made for `model` without training data
        (the ambiguity attack, `wrt.attacks.forging`)."""
        raise NotImplementedError(f"{type(self).__name__} has no counterfeit-key strategy")


class NoWatermark(Scheme):
    """The unmarked baseline: nothing is embedded and there is no watermark accuracy."""

    def keygen(self, model, data, generator) -> Key:
        return Key({})

    def embed(self, model, data, key, trainer):
        return model

    def extract(self, model, key, trainer) -> float:
        return float("nan")


def embedding_record(history: TrainHistory, stop: EarlyStopping | None, max_epochs: float) -> dict:
    """How an embedding ended, for the run JSON's `marked.embedding`: `stopped` is `target` (the
    stopping rule's goal was reached), `early_stopping` (no improvement for `patience` checks)
    or `cap` (it ran `max_epochs`, the cap, or the full schedule of an embedding while training)."""
    stopped = ("target" if stop is not None and stop.reached_goal
               else "early_stopping" if history.stopped_early else "cap")
    return {"stopped": stopped, "epochs": round(history.epochs, 4), "steps": history.steps,
            "max_epochs": max_epochs}


@dataclass(eq=False)
class EmbeddingParams:
    """Embedding by training until the scheme's stopping rule (SoK Appendix XII: early stopping on
    the watermark loss, patience 5, checked every `check_every` batches), at most `epochs` epochs:
    a cap, not scaled by the budget's `epoch_scale` (`Trainer.embedding_epochs`)."""

    lr: float = param(0.01, **LR)
    epochs: float = param(5, **EPOCHS)
    patience: int = param(5, low=1)
    check_every: int = param(100, low=1)

    def fit_embedding(self, trainer: Trainer, model: nn.Module, images, labels, *,
                      stop: EarlyStopping | None, **fit_args) -> TrainHistory:
        """`trainer.fit` until `stop` fires or the cap is reached; records `self.embedding`."""
        cap = trainer.embedding_epochs(self.epochs)
        callbacks = [*fit_args.pop("callbacks", ()), *([stop] if stop is not None else [])]
        history = trainer.fit(model, images, labels, epochs=cap, scale_epochs=False,
                              lr=fit_args.pop("lr", self.lr), callbacks=callbacks,
                              desc=fit_args.pop("desc", "embed"), **fit_args)
        self.embedding = embedding_record(history, stop, cap)
        return history


LAYER = dict(null="the model's default", what="a layer name of the model")  # `layer: str | None`


@dataclass(eq=False)
class TriggerSetScheme(EmbeddingParams, Scheme):
    """A key of (image, label) pairs that the marked model must classify as labelled.

    Embedding fine-tunes the source model on the defender's data with the key repeated
    `repeats` times (SoK Appendix XII-A: 100× on CIFAR-10, 1000× on ImageNet), i.e. each
    batch carries the key's share of that enlarged training set, with early stopping on the
    watermark loss (cross-entropy on the key) checked every `check_every` batches.
    Subclasses implement `keygen` returning tensors `images` (float in [0, 1]) and `labels`.
    """

    key_size: int = param(100, low=1)
    repeats: int = param(100, low=1)
    lr: float = param(1e-3, **LR)

    def key_loss(self, model: nn.Module, key: Key, trainer: Trainer) -> float:
        logits = trainer.predict(model, key.tensors["images"])
        return F.cross_entropy(logits, key.tensors["labels"]).item()

    def embed(self, model, data, key, trainer):
        images, labels = data.defender()
        n_key = len(key.tensors["labels"]) * self.repeats
        per_batch = round(trainer.batch_size * n_key / (len(labels) + n_key))
        mixer = KeyMixer(key.tensors["images"], key.tensors["labels"], per_batch, seed=trainer.seed)
        stop = EarlyStopping(lambda m: self.key_loss(m, key, trainer), patience=self.patience,
                             min_delta=1e-3, check_every=self.check_every)
        self.fit_embedding(trainer, model, images, labels, stop=stop, augment=data.augment, callbacks=[mixer])
        return model

    def extract(self, model, key, trainer) -> float:
        return trainer.accuracy(model, key.tensors["images"], key.tensors["labels"])

    def forge(self, model, image_shape, num_classes, generator, trainer) -> Key:
        """Uniform-noise images labelled with the stolen model's own answers: a trigger set the
        model passes by construction (nothing ties a trigger set to its owner)."""
        images = torch.rand(self.key_size, *image_shape, generator=generator)
        return Key({"images": images, "labels": trainer.predict(model, images).argmax(1)}, {"forged": True})
