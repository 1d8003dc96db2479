"""Parameter checks run when a scheme or attack is built, before any training starts."""

from __future__ import annotations


class InvalidParameter(ValueError):
    """A configured value is out of range; the message names the key, value and what is allowed."""


def require(ok: bool, key: str, value, allowed: str) -> None:
    """Raise `InvalidParameter` naming `key`, `value` and `allowed` unless `ok`."""
    if not ok:
        raise InvalidParameter(f"{key}={value!r} is not allowed: must be {allowed}")


def in_range(key: str, value, low: float, high: float, *, low_open: bool = False,
             high_open: bool = False) -> None:
    """Check low ≤ value ≤ high (open ends where asked); booleans and strings are rejected."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = is_number and (value > low if low_open else value >= low) and \
        (value < high if high_open else value <= high)
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    require(ok, key, value, f"a number in {interval}")


def positive_int(key: str, value) -> None:
    require(isinstance(value, int) and not isinstance(value, bool) and value >= 1, key, value,
            "an integer ≥ 1")
