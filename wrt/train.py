"""The one training loop, used by source training, watermark embedding and attacks.

Schemes and attacks plug in through callbacks (`Callback`, no-op by default) instead of
copying the loop. At each step the loop draws a `Batch` from the data, then

- `on_batch(batch, step)` may replace the batch (mixup) or append rows to it, tagged with a
  name (`batch.append("key", images, targets)`: watermark keys, adversarial examples);
- `loss(model, batch, logits) -> Tensor | None` adds a term to the cross-entropy (white-box
  regularisers, SNNL on the rows of a tag, ...);
- `should_stop(model, steps) -> bool`, after the step, ends training early
  (`EarlyStopping` on the watermark loss, checked every `check_every` steps).

Callbacks run in list order. The loop runs in the run's `precision` (`fp32`, or `bf16` autocast;
`auto` picks bf16 on CUDA and on CPUs where it is the faster, `wrt.hardware.resolve_precision`) and
with channels_last tensors; the data is already on the device (`TensorLoader`), so a step makes no
host round-trip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from wrt.data.loader import TensorLoader, to_float
from wrt.hardware import resolve_precision
from wrt.store import CorruptArtifact, atomic_write, error_summary
from wrt.validation import require


# ---- learning-rate schedules: multiplier of the base lr at a fractional epoch -------------

class Constant:
    def __call__(self, epoch: float, total_epochs: int) -> float:
        return 1.0


class OneCycle:
    """Linear warm-up over the first `warmup` fraction, then linear decay to zero."""

    def __init__(self, warmup: float = 0.2):
        self.warmup = warmup

    def __call__(self, epoch: float, total_epochs: int) -> float:
        t = epoch / max(total_epochs, 1e-9)
        return t / self.warmup if t < self.warmup else max(0.0, (1 - t) / (1 - self.warmup))


class Cosine:
    def __call__(self, epoch: float, total_epochs: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(epoch / max(total_epochs, 1e-9), 1.0)))


class StepDecay:
    """Multiply by `gamma` at each epoch in `milestones` (e.g. ÷10 at epochs 3 and 4)."""

    def __init__(self, milestones: Iterable[float] = (), gamma: float = 0.1):
        self.milestones = sorted(milestones)
        self.gamma = gamma

    def __call__(self, epoch: float, total_epochs: int) -> float:
        return self.gamma ** sum(epoch >= m for m in self.milestones)


# ---- callbacks ------------------------------------------------------------------------------

@dataclass
class Batch:
    """One training step's data: float `images` on the device, `targets` (class indices [N] or
    probability rows [N, C]) and `rows`, the slices of rows appended by callbacks, by tag."""

    images: torch.Tensor
    targets: torch.Tensor
    rows: dict[str, slice] = field(default_factory=dict)

    def append(self, tag: str, images: torch.Tensor, targets: torch.Tensor) -> None:
        """Append rows (moved to the batch's device) and record them under `tag`."""
        start = len(self.images)
        self.images = torch.cat([self.images, images.to(self.images.device)])
        self.targets = torch.cat([self.targets, targets.to(self.targets.device)])
        self.rows[tag] = slice(start, len(self.images))


class Callback:
    """A training hook; override any of the three methods (the defaults do nothing)."""

    def on_batch(self, batch: Batch, step: int) -> None:
        """Change `batch` in place before step `step` (0-based) is trained on it."""

    def loss(self, model: nn.Module, batch: Batch, logits: torch.Tensor) -> torch.Tensor | None:
        """A term added to the step's loss (None: none)."""
        return None

    def should_stop(self, model: nn.Module, steps: int) -> bool:
        """Whether to end training, asked after each step with the number of steps done."""
        return False


class LossTerm(Callback):
    """A stateless loss term `term(model, batch, logits)`, added at every `every`-th step."""

    def __init__(self, term: Callable[[nn.Module, Batch, torch.Tensor], torch.Tensor], every: int = 1):
        self.term, self.every, self.step = term, every, 0

    def on_batch(self, batch: Batch, step: int) -> None:
        self.step = step

    def loss(self, model, batch, logits):
        return None if self.step % self.every else self.term(model, batch, logits)


class KeyMixer(Callback):
    """Appends `per_batch` samples of a watermark key to each batch under `tag`, cycling
    through the key in seeded random orders."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, per_batch: int, seed: int = 0,
                 tag: str = "key"):
        self.images, self.targets, self.per_batch = to_float(images), targets, max(1, per_batch)
        self.tag = tag
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)

    def on_batch(self, batch: Batch, step: int) -> None:
        while len(self.order) < self.per_batch:
            self.order = torch.cat([self.order, torch.randperm(len(self.images), generator=self.generator)])
        idx, self.order = self.order[:self.per_batch], self.order[self.per_batch:]
        batch.append(self.tag, self.images[idx], self.targets[idx])


class EarlyStopping(Callback):
    """Stops once `loss_fn(model)`, evaluated every `check_every` steps, has not improved by
    `min_delta` for `patience` checks, or has reached `goal`."""

    def __init__(self, loss_fn: Callable[[nn.Module], float], patience: int = 5, min_delta: float = 0.0,
                 check_every: int = 1, goal: float = -math.inf):
        self.loss_fn, self.patience, self.min_delta = loss_fn, patience, min_delta
        self.check_every, self.goal = check_every, goal
        self.best, self.bad_checks = math.inf, 0

    @property
    def reached_goal(self) -> bool:
        return self.best <= self.goal

    def should_stop(self, model: nn.Module, steps: int) -> bool:
        if steps % self.check_every:
            return False
        loss = self.loss_fn(model)
        if loss < self.best - self.min_delta:
            self.best, self.bad_checks = loss, 0
        else:
            self.bad_checks += 1
        return self.bad_checks >= self.patience or self.reached_goal


@dataclass
class TrainHistory:
    steps: int = 0
    epochs: float = 0.0
    losses: list[float] = field(default_factory=list)  # mean loss per epoch
    stopped_early: bool = False


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite."""


def save_checkpoint(path: Path, epoch: int, model, opt, sched, loader: TensorLoader,
                    history: TrainHistory) -> None:
    state = {"epoch": epoch, "steps": history.steps, "losses": torch.tensor(history.losses),
             "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "loader_rng": loader.generator.get_state(), "torch_rng": torch.get_rng_state()}
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def resume_checkpoint(path: Path, model, opt, sched, loader: TensorLoader, history: TrainHistory) -> int:
    """Restore the training state saved at `path`; returns the epoch to continue with."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        loader.generator.set_state(state["loader_rng"])
        torch.set_rng_state(state["torch_rng"])
    except Exception as e:
        raise CorruptArtifact(f"cannot resume from checkpoint {path} ({error_summary(e)}); "
                              "delete it and rerun") from None
    history.steps, history.losses = state["steps"], state["losses"].tolist()
    return state["epoch"]


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0):
    """Cross-entropy on class indices or on soft labels (probability vectors)."""
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


class Trainer:
    """Trains and evaluates models on in-memory tensors.

    `optimizer` is a partially applied optimizer class (Hydra `_partial_: true`), `schedule`
    a callable (epoch, total_epochs) → lr multiplier. `epoch_scale` shrinks the epochs that
    attacks request (their configs hold the paper's values; budgets scale them). Embeddings
    are not scaled: they run to their own stopping rule, at most the scheme's `epochs`, or
    `embed_max_epochs` where a budget caps them lower (budget=smoke, so tests stay quick).
    """

    def __init__(self, epochs: int = 1, batch_size: int = 128, optimizer: Callable | None = None,
                 schedule: Callable[[float, int], float] | None = None, epoch_scale: float = 1.0,
                 embed_max_epochs: float | None = None,
                 device: str | torch.device = "cpu", precision: str = "fp32",
                 channels_last: bool = True, compile: bool = False, progress: bool = True, seed: int = 0):
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer or partial(torch.optim.SGD, lr=0.01, momentum=0.9)
        self.schedule = schedule or Constant()
        self.epoch_scale = epoch_scale
        require(embed_max_epochs is None or (isinstance(embed_max_epochs, (int, float))
                                             and not isinstance(embed_max_epochs, bool) and embed_max_epochs > 0),
                "trainer.embed_max_epochs", embed_max_epochs, "null or a number > 0")
        self.embed_max_epochs = embed_max_epochs
        self.device = torch.device(device)
        # `fp32` or `bf16` (autocast): recorded in the run JSON and part of the store key
        self.precision = resolve_precision(precision, self.device)
        self.channels_last = channels_last
        self.compile = compile
        self.progress = progress
        self.seed = seed

    def scaled_epochs(self, epochs: float) -> int:
        """The number of epochs this budget runs for a configured (paper) value."""
        return max(1, round(epochs * self.epoch_scale))

    def embedding_epochs(self, max_epochs: float) -> int:
        """The cap of an embedding: the scheme's `max_epochs`, lowered to the budget's
        `embed_max_epochs` if that is set; never scaled by `epoch_scale`."""
        cap = max_epochs if self.embed_max_epochs is None else min(max_epochs, self.embed_max_epochs)
        return max(1, round(cap))

    def prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def fit(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *,
            epochs: float | None = None, scale_epochs: bool = True, lr: float | None = None,
            params: Iterable[nn.Parameter] | None = None, optimizer: Callable | None = None,
            schedule: Callable[[float, int], float] | None = None, augment: dict | None = None,
            label_smoothing: float = 0.0, weight_decay: float | None = None,
            callbacks: Iterable[Callback] = (), max_steps: int | None = None,
            checkpoint: str | Path | None = None, checkpoint_every: int = 1,
            desc: str = "train") -> TrainHistory:
        """Train `model` in place on (images, targets); returns the loss history.

        With `checkpoint`, the training state (model, optimizer, schedule, data order and RNG) is
        saved atomically every `checkpoint_every` epochs and after the last one; a later call with
        the same path resumes from it — on the CPU with the same result as an uninterrupted run.
        The caller removes the file once the trained model is safely stored (`Store` does).
        Resuming does not restore the state of `callbacks`, so use it for plain training
        (source models, retraining).
        """
        model = self.prepare(model)
        callbacks = list(callbacks)
        epochs = self.epochs if epochs is None else epochs
        epochs = self.scaled_epochs(epochs) if scale_epochs else max(1, round(epochs))
        loader = TensorLoader(images, targets, self.batch_size, shuffle=True, augment=augment,
                              device=self.device, seed=self.seed)
        overrides = {k: v for k, v in (("lr", lr), ("weight_decay", weight_decay)) if v is not None}
        params = [p for p in (model.parameters() if params is None else params) if p.requires_grad]
        opt = (optimizer or self.optimizer)(params, **overrides)
        schedule = schedule or self.schedule
        steps_per_epoch = len(loader)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: schedule(step / steps_per_epoch, epochs))
        step_fn = torch.compile(model) if self.compile else model
        history = TrainHistory()
        start_epoch = 0
        if checkpoint is not None and Path(checkpoint).exists():
            start_epoch = resume_checkpoint(Path(checkpoint), model, opt, sched, loader, history)
        model.train()
        bar = tqdm(total=epochs * steps_per_epoch, initial=history.steps, desc=desc,
                   disable=None if self.progress else True, leave=False, dynamic_ncols=True)
        for epoch in range(start_epoch, epochs):
            epoch_loss, epoch_steps = torch.zeros((), device=self.device), 0
            for x, y in loader:
                batch = Batch(x, y)
                for callback in callbacks:
                    callback.on_batch(batch, history.steps)
                if self.channels_last:
                    batch.images = batch.images.contiguous(memory_format=torch.channels_last)
                with self.autocast():
                    logits = step_fn(batch.images)
                    loss = classification_loss(logits, batch.targets, label_smoothing)
                    for callback in callbacks:
                        term = callback.loss(model, batch, logits)
                        if term is not None:
                            loss = loss + term
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                epoch_loss += loss.detach()
                epoch_steps += 1
                history.steps += 1
                bar.update()
                if any([callback.should_stop(model, history.steps) for callback in callbacks]):
                    history.stopped_early = True
                if history.stopped_early or (max_steps and history.steps >= max_steps):
                    break
            mean_loss = (epoch_loss / epoch_steps).item()
            if not math.isfinite(mean_loss):
                bar.close()
                raise NonFiniteLoss(f"{desc}: loss is {mean_loss} in epoch {epoch + 1}")
            history.losses.append(mean_loss)
            history.epochs = history.steps / steps_per_epoch
            bar.set_postfix(loss=f"{mean_loss:.3f}")
            if history.stopped_early or (max_steps and history.steps >= max_steps):
                break
            if checkpoint is not None and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs):
                save_checkpoint(Path(checkpoint), epoch + 1, model, opt, sched, loader, history)
        bar.close()
        model.eval()
        return history

    @torch.no_grad()
    def predict(self, model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Logits (float32, on the CPU) for all images, in order."""
        model = self.prepare(model)
        was_training = model.training
        model.eval()
        outputs = []
        for start in range(0, len(images), batch_size):
            x = to_float(images[start:start + batch_size].to(self.device))
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with self.autocast():
                outputs.append(model(x).float())
        model.train(was_training)
        return torch.cat(outputs).cpu() if outputs else torch.empty(0)

    def accuracy(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Fraction of images whose top-1 prediction equals the label."""
        if len(images) == 0:
            return float("nan")
        return (self.predict(model, images).argmax(1) == labels.cpu()).float().mean().item()

