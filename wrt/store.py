"""Artifact store: models and keys cached under a hash of the config that determines them.

A sweep of S schemes × A attacks trains the source model once and embeds each scheme once:
every later run finds them here. Files are written atomically (temporary file + rename),
loaded with `torch.load(weights_only=True)` (no code runs on load), and guarded by a file
lock so concurrent runs that need the same artifact compute it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch


class CorruptArtifact(RuntimeError):
    """A stored file cannot be read or does not fit; the message names the file and the fix."""


def spec_digest(spec: dict) -> str:
    """A stable short hash of a JSON-able spec."""
    text = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, allow_nan=True) + "\n"))


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Tensors plus JSON metadata, in a file that `torch.load(weights_only=True)` reads."""
    payload = {"tensors": {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
               "meta": json.dumps(meta, default=str)}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def error_summary(error: BaseException) -> str:
    """`Type: first line of the message` (at most 120 characters), for one-line errors."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0][:120] if lines else ''}".rstrip(": ")


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    fix = f"delete {path} and rerun, or rerun with force=true"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        tensors, meta = payload["tensors"], json.loads(payload["meta"])
    except Exception as e:
        raise CorruptArtifact(f"cannot read {path} ({error_summary(e)}); {fix}") from None
    if not isinstance(tensors, dict) or not isinstance(meta, dict):
        raise CorruptArtifact(f"{path} is not a wrt artifact; {fix}")
    return tensors, meta


def load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load a state dict, turning an architecture mismatch into a one-line error."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise CorruptArtifact(f"{path} does not fit {type(model).__name__} ({first[:120]}); delete it "
                              f"and rerun, or rerun with force=true") from None


class Store:
    """Artifacts under `root/<kind>/<digest>.pt`, keyed by the spec that made them."""

    def __init__(self, root: str | Path, force: bool = False):
        self.root = Path(root)
        self.force = force

    def path(self, kind: str, spec: dict) -> Path:
        return self.root / kind / f"{spec_digest(spec)}.pt"

    @contextmanager
    def lock(self, kind: str, spec: dict) -> Iterator[None]:
        lock_path = self.path(kind, spec).with_suffix(".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def get_or_create(self, kind: str, spec: dict,
                      create: Callable[[], tuple[dict[str, torch.Tensor], dict]]
                      ) -> tuple[dict[str, torch.Tensor], dict, bool]:
        """(tensors, meta, cached): load the artifact, or create and save it under a lock.

        With `force`, existing and corrupt files are recomputed; without it a corrupt file
        raises `CorruptArtifact` naming the file and the fix.
        """
        path = self.path(kind, spec)
        with self.lock(kind, spec):
            if path.exists() and not self.force:
                tensors, meta = load_tensors(path)
                return tensors, meta, True
            tensors, meta = create()
            meta = {**meta, "spec": spec}
            save_tensors(path, tensors, meta)
            return tensors, meta, False
