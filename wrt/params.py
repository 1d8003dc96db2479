"""Declared parameters: a scheme's or attack's parameters are dataclass fields, each declared once
with its type (the annotation), default and allowed values (`param`), and checked generically
when the object is built (`Configurable`), with the one-line message of `wrt.validation`.

    @dataclass(eq=False)
    class Noise(SourceTargetScheme):
        sigma: float = param(0.4, low=0, high=10, low_open=True)

Rules that relate several parameters stay in a `check()` hook, run after the declared checks;
state derived from the parameters is built in `__post_init__` after `super().__post_init__()`.
`declared(cls)` lists the declarations (tests generate their cases from it).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass
from typing import ClassVar

from wrt.validation import require

SIMPLE_TYPES = (bool, int, float, str)

# Ranges shared by the training parameters of schemes and attacks: `param(0.01, **LR)`.
LR = dict(low=0, high=1, low_open=True)
EPOCHS = dict(low=0, high=1000, low_open=True)


def param(default, *, low=None, high=None, low_open: bool = False, high_open: bool = False,
          choices: tuple | None = None, null: str | None = None, what: str | None = None):
    """A dataclass field with its allowed values: bounds `low`/`high` (closed unless `*_open`),
    `choices`, `null` (what None means, for `X | None` fields) and `what` (how the message names
    the value, e.g. "a layer name of the model"; default: from the type)."""
    rules = dict(low=low, high=high, low_open=low_open, high_open=high_open, choices=choices, null=null,
                 what=what)
    return dataclasses.field(default=default, metadata={"param": rules})


@dataclass(frozen=True)
class Declaration:
    """One declared parameter: its name, accepted types (bool, int, float, str; empty: not checked
    by type), whether None is accepted, its default and its rules (`param`'s keywords)."""

    name: str
    types: tuple[type, ...]
    nullable: bool
    default: object
    low: object = None
    high: object = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    null: str | None = None
    what: str | None = None

    def allowed(self) -> str:
        """What the value must be, as the error message says it."""
        if self.choices is not None:
            text = "one of " + ", ".join(map(str, self.choices))
        elif self.types == (bool,):
            text = "true or false"
        elif self.types and set(self.types) <= {int, float}:
            noun = self.what or ("an integer" if self.types == (int,) else "a number")
            text = noun + self.bounds()
        elif self.types == (str,):
            text = self.what or "a non-empty string"
        else:  # not checked by type: `what` says it (checked in `check()`)
            text = self.what or "a valid value"
        if self.nullable:
            return f"null ({self.null}) or {text}" if self.null else f"null or {text}"
        return text

    def bounds(self) -> str:
        if self.low is not None and self.high is not None:
            return (f" in {'(' if self.low_open else '['}{self.low}, {self.high}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f" {'>' if self.low_open else '≥'} {self.low}"
        if self.high is not None:
            return f" {'<' if self.high_open else '≤'} {self.high}"
        return ""

    def accepts(self, value) -> bool:
        if not self.types:
            return True
        if value is None:
            return self.nullable
        if not any(is_a(value, t) for t in self.types):
            return False
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, str):
            return value != ""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return True
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return low_ok and high_ok


def is_a(value, kind: type) -> bool:
    """`value` is of the declared simple type: bool is no number, an int is a float."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _types(annotation) -> tuple[tuple[type, ...], bool]:
    """The simple types an annotation accepts, and whether it accepts None; other annotations
    (containers, configs) are not checked by type."""
    members = typing.get_args(annotation) if isinstance(annotation, types.UnionType) or \
        typing.get_origin(annotation) is typing.Union else (annotation,)
    nullable = type(None) in members
    kinds = tuple(m for m in members if m is not type(None))
    return (kinds if all(k in SIMPLE_TYPES for k in kinds) else ()), nullable


@functools.cache
def declared(cls: type) -> dict[str, Declaration]:
    """The declared parameters of a class, by name, in declaration order (none: not a dataclass);
    fields with `init=False` are state, not parameters."""
    if not dataclasses.is_dataclass(cls):
        return {}
    hints = typing.get_type_hints(cls)
    result = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        kinds, nullable = _types(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        result[f.name] = Declaration(f.name, kinds, nullable, default, **f.metadata.get("param", {}))
    return result


class Configurable:
    """Base of dataclasses whose fields are parameters: after `__init__`, every field is checked
    against its declaration (`InvalidParameter`: "{group}.{name}={value!r} is not allowed: must be
    ..."), then `check()` runs the rules that relate several fields."""

    group: ClassVar[str] = ""

    def __post_init__(self):
        for name, declaration in declared(type(self)).items():
            value = getattr(self, name)
            require(declaration.accepts(value), f"{self.group}.{name}", value, declaration.allowed())
        self.check()

    def check(self) -> None:
        """Rules that relate several parameters (`self.require`); call `super().check()`."""

    def require(self, ok: bool, name: str, allowed: str | None = None) -> None:
        """Reject parameter `name` unless `ok`, saying `allowed` (default: its declared values)."""
        require(ok, f"{self.group}.{name}", getattr(self, name), allowed or declared(type(self))[name].allowed())
