"""Parameter checks run before any training starts (scheme and attack parameters: `wrt.params`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

# Seeds are at most 2**32 - 1: the seeds derived from them (seed + 104729, 1_000_003 · (seed + 1)
# + attempt, ...) then stay inside torch.manual_seed's range [0, 2**64).
SEED_MAX = 2**32 - 1


class InvalidParameter(ValueError):
    """A configured value is out of range; the message names the key, value and what is allowed."""


def require(ok: bool, key: str, value, allowed: str) -> None:
    """Raise `InvalidParameter` naming `key`, `value` and `allowed` unless `ok`."""
    if not ok:
        raise InvalidParameter(f"{key}={value!r} is not allowed: must be {allowed}")


def writable_dir(key: str, value, subdir: str | None = None) -> None:
    """Create the folder `value` (and its `subdir`) if needed and check that a file can be written
    there; raise `InvalidParameter` naming `key`, `value` and the reason otherwise."""
    require(isinstance(value, str) and value.strip() != "", key, value, "the path of a writable folder")
    path = Path(value) / subdir if subdir else Path(value)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except FileExistsError as e:
        raise InvalidParameter(f"{key}={value!r} is not allowed: must be a writable folder "
                               f"({e.filename} is a file, not a folder)") from None
    except OSError as e:
        reason = f"{e.strerror or e}: {e.filename}" if e.filename else f"{e.strerror or e}"
        raise InvalidParameter(f"{key}={value!r} is not allowed: must be a writable folder ({reason})") from None


def check_output_dirs(cfg) -> None:
    """`results_dir` (with its `runs/`) and `store_dir` must be writable folders (created if absent)."""
    writable_dir("results_dir", cfg.results_dir)
    writable_dir("results_dir", cfg.results_dir, "runs")
    writable_dir("store_dir", cfg.store_dir)
