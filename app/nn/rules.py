"""Rules for settings: a kind, a range or choices, and what the setting means.

A setting's rule is stated once. The engine checks values against it, and
the API's request schemas are generated from the same rules (ranges,
defaults, descriptions), so that changing a range is one edit.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Kind = Literal["int", "float", "bool", "choice"]


@dataclass(frozen=True)
class Rule:
    """What values a setting takes. Bounds are inclusive (ge, le) or strict (gt, lt)."""

    kind: Kind
    description: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False  # None is allowed; the description says what it means

    def problem(self, name: str, value: object) -> str | None:
        """Why `value` breaks the rule, as a sentence naming `name`; None if it does not."""
        if value is None and self.nullable:
            return None
        if self.kind == "choice":
            ok = value in self.choices
        elif self.kind == "bool":
            ok = isinstance(value, bool)
        elif self.kind == "int":
            ok = isinstance(value, int | np.integer) and not isinstance(value, bool)
        else:
            ok = (
                isinstance(value, int | float | np.number)
                and not isinstance(value, bool)
                and math.isfinite(float(value))
            )
        if ok and self.kind in ("int", "float"):
            # an integer is compared as one: 2**63 - 1 must stay below 2**63
            number: Any = value
            v = int(number) if self.kind == "int" else float(number)
            ok = (
                (self.ge is None or v >= self.ge)
                and (self.gt is None or v > self.gt)
                and (self.le is None or v <= self.le)
                and (self.lt is None or v < self.lt)
            )
        return None if ok else f"{name} must be {self.expected()}, got {value!r}"

    def expected(self) -> str:
        """The rule in words: "an integer >= 1", "in [0, 1)", "'relu' or 'tanh'"."""
        if self.kind == "choice":
            quoted = [repr(c) for c in self.choices]
            text = ", ".join(quoted[:-1]) + " or " + quoted[-1]
        elif self.kind == "bool":
            text = "a bool"
        else:
            noun = "an integer" if self.kind == "int" else "a number"
            low = self.ge if self.ge is not None else self.gt
            high = self.le if self.le is not None else self.lt
            if low is not None and high is not None:
                opening = "[" if self.ge is not None else "("
                closing = "]" if self.le is not None else ")"
                interval = f"{opening}{_number(low)}, {_number(high)}{closing}"
                text = f"{noun} in {interval}" if self.kind == "int" else f"in {interval}"
            elif low is not None:
                text = f"{noun} {'>=' if self.ge is not None else '>'} {_number(low)}"
            elif high is not None:
                text = f"{noun} {'<=' if self.le is not None else '<'} {_number(high)}"
            else:
                text = noun
        return f"{text} or None" if self.nullable else text


def _number(v: float) -> str:
    if v == 2**63:
        return "2**63"
    return str(int(v)) if float(v).is_integer() else repr(v)


def rule(default: Any, kind: Kind, description: str, **bounds: Any) -> Any:
    """A dataclass field holding `default`, with its Rule in the field's metadata."""
    return dataclasses.field(default=default, metadata={"rule": Rule(kind, description, **bounds)})
