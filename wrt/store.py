"""Artifact store: models and keys cached under a hash of the config that determines them.

A sweep of S schemes × A attacks trains the source model once and embeds each scheme once:
every later run finds them here. Files are written atomically (temporary file + rename),
loaded with `torch.load(weights_only=True)` (no code runs on load), checked against the spec
they were made for, and guarded by a file lock so concurrent runs that need the same artifact
compute it once. Store entries are never followed through symbolic links, so a link planted in a
shared store cannot make a run write to (or read from) a file outside it.
"""

from __future__ import annotations

import errno
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


class LinkedEntry(RuntimeError):
    """A store entry is a symbolic link; wrt refuses to follow it."""


def refuse_link(path: Path) -> None:
    """Raise `LinkedEntry` naming `path` if it is a symbolic link."""
    if os.path.islink(path):
        raise LinkedEntry(f"{path} is a symbolic link, which wrt never follows in its store; "
                          f"remove the link and rerun")


def open_nofollow(path: Path, flags: int, mode: str):
    """`open(path, mode)` that refuses a symbolic link at `path` (O_NOFOLLOW) with `LinkedEntry`."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)  # less the umask
    except OSError as e:
        if e.errno == errno.ELOOP:
            refuse_link(path)
        raise
    return os.fdopen(fd, mode)


UMASK = os.umask(0o022)
os.umask(UMASK)  # read once: the process's umask, which files written here respect


def atomic_write(path: Path, write: Callable, binary: bool = True) -> None:
    """Call `write(file)` on a new temporary file beside `path` (created with O_EXCL, never
    through a link), then fsync it and rename it over `path` (a link there is replaced, not
    followed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~UMASK)  # as open() would (mkstemp makes 0600): a shared store stays readable
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def atomic_write_json(path: Path, obj) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, allow_nan=True) + "\n"), binary=False)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Tensors plus JSON metadata, in a file that `torch.load(weights_only=True)` reads."""
    payload = {"tensors": {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
               "meta": json.dumps(meta, default=str)}
    atomic_write(path, lambda f: torch.save(payload, f))


def remove_temporaries(path: Path) -> None:
    """Delete the temporaries that killed `atomic_write`s of `path` left behind."""
    for tmp in Path(path).parent.glob(f".{Path(path).name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def error_summary(error: BaseException) -> str:
    """`Type: first line of the message` (at most 120 characters), for one-line errors."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0][:120] if lines else ''}".rstrip(": ")


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    fix = f"delete {path} and rerun, or rerun with force=true"
    try:
        with open_nofollow(path, os.O_RDONLY, "rb") as f:
            payload = torch.load(f, map_location="cpu", weights_only=True)
        tensors, meta = payload["tensors"], json.loads(payload["meta"])
    except LinkedEntry:
        raise
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


def check_spec(path: Path, meta: dict, spec: dict) -> None:
    """Raise `CorruptArtifact` unless the artifact at `path` was made for `spec`."""
    if "spec" not in meta:
        problem = "records no spec (made by an older wrt or not by wrt)"
    elif spec_digest(meta["spec"]) != spec_digest(spec):
        problem = "was made for another config (its recorded spec differs from the requested one)"
    else:
        return
    raise CorruptArtifact(f"{path} {problem}; delete it and rerun, or rerun with force=true")


@contextmanager
def file_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if absent, opened read-only without following
    a link: the lock file is never written). `on_wait` is called once if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_nofollow(path, os.O_RDONLY | os.O_CREAT, "r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Store:
    """Artifacts under `root/<kind>/<digest>.pt`, keyed by the spec that made them, with their
    lock (`.lock`) and training checkpoint (`.ckpt`) beside them."""

    def __init__(self, root: str | Path, force: bool = False):
        self.root = Path(root)
        self.force = force

    def path(self, kind: str, spec: dict) -> Path:
        return self.root / kind / f"{spec_digest(spec)}.pt"

    def checkpoint_path(self, kind: str, spec: dict) -> Path:
        """Where the training of an artifact saves its progress; removed once the artifact is saved."""
        return self.path(kind, spec).with_suffix(".ckpt")

    @contextmanager
    def lock(self, kind: str, spec: dict) -> Iterator[None]:
        with file_lock(self.path(kind, spec).with_suffix(".lock")):
            yield

    def get_or_create(self, kind: str, spec: dict,
                      create: Callable[[], tuple[dict[str, torch.Tensor], dict]]
                      ) -> tuple[dict[str, torch.Tensor], dict, bool]:
        """(tensors, meta, cached): load the artifact, or create and save it under a lock.

        A loaded artifact must carry the spec it was requested for (its `meta["spec"]`). With
        `force`, existing, corrupt and foreign files are recomputed; without it such a file
        raises `CorruptArtifact` naming the file and the fix. Leftover temporaries of killed
        writes are removed, and the artifact's checkpoint once the artifact is saved.
        """
        path, checkpoint = self.path(kind, spec), self.checkpoint_path(kind, spec)
        with self.lock(kind, spec):
            for entry in (path, checkpoint):
                refuse_link(entry)
                remove_temporaries(entry)  # only a writer holding this lock creates them
            if path.exists() and not self.force:
                tensors, meta = load_tensors(path)
                check_spec(path, meta, spec)
                return tensors, meta, True
            tensors, meta = create()
            meta = {**meta, "spec": spec}
            save_tensors(path, tensors, meta)
            checkpoint.unlink(missing_ok=True)
            return tensors, meta, False
