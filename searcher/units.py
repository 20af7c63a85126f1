"""Budgets and rates as users write them: ``3.3GFLOPs``, ``850MFLOPs``, ``3.3e9FLOPs``, ``60%``,
``1500img/s``.

FLOPs follow fvcore's convention (one multiply-add is one FLOP) and are per image. A relative budget is a
share of the unreduced model's FLOPs. Parsing is case-insensitive and accepts one optional space before the
unit; anything else (a bare number, a sign, nan/inf, a share outside (0%, 100%), a unit typo) is a
:class:`~searcher.errors.ConfigError` whose message shows the accepted forms.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import ConfigError

__all__ = ["Budget", "parse_budget", "parse_rate", "format_gflops", "written_as"]

_NUMBER = r"(-?(?:[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?|[0-9]+\.))"  # signed: a negative one is named as such
_FLOPS_RE = re.compile(rf"{_NUMBER} ?([kmgt]?)flops", re.IGNORECASE)
_PERCENT_RE = re.compile(rf"{_NUMBER} ?%", re.IGNORECASE)
_RATE_RE = re.compile(rf"{_NUMBER} ?(?:img|images?)/s", re.IGNORECASE)
_PREFIX = {"": 1e-9, "k": 1e-6, "m": 1e-3, "g": 1.0, "t": 1e3}  # → GFLOPs

BUDGET_FORMS = ("an absolute FLOPs budget such as '3.3GFLOPs', '850MFLOPs' or '3.3e9FLOPs', "
                "or a share of the unreduced model such as '60%'")
RATE_FORMS = "a throughput such as '1500img/s'"


@dataclass(frozen=True)
class Budget:
    """A FLOPs budget: absolute (``gflops``) or relative to the unreduced model (``fraction``)."""

    gflops: float | None = None  # absolute budget in GFLOPs per image
    fraction: float | None = None  # share of the unreduced model's FLOPs, in (0, 1)

    def __post_init__(self) -> None:
        if (self.gflops is None) == (self.fraction is None):
            raise ConfigError(f"a budget is absolute or relative, not both or neither: {self.gflops=}, "
                              f"{self.fraction=}")

    def resolve(self, full_gflops: float) -> float:
        """The budget in GFLOPs for a model whose unreduced cost is ``full_gflops``."""
        if self.gflops is not None:
            return self.gflops
        assert self.fraction is not None
        return self.fraction * full_gflops

    def __str__(self) -> str:
        if self.gflops is not None:
            return format_gflops(self.gflops)
        return f"{100 * (self.fraction or 0):g}%"


def _finite_positive(what: str, text: str, value: float, forms: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what} {text!r} must be a finite positive number; write {forms}")
    return value


def parse_budget(text: str | Budget) -> Budget:
    """Parse ``'3.3GFLOPs'``, ``'850 MFLOPs'``, ``'3.3e9FLOPs'`` or ``'60%'`` into a :class:`Budget`."""
    if isinstance(text, Budget):
        return text
    s = str(text).strip()
    if m := _FLOPS_RE.fullmatch(s):
        value = _finite_positive("budget", s, float(m.group(1)) * _PREFIX[m.group(2).lower()], BUDGET_FORMS)
        if value > 1e6:
            raise ConfigError(f"budget {text!r} is above a PetaFLOP per image; write {BUDGET_FORMS}")
        return Budget(gflops=value)
    if m := _PERCENT_RE.fullmatch(s):
        pct = float(m.group(1))
        if not (0 < pct < 100) or pct / 100 == 0:  # 100 %: nothing to remove; the second: a share that underflows
            raise ConfigError(f"budget {text!r} must be a share in (0%, 100%); write {BUDGET_FORMS}")
        return Budget(fraction=pct / 100)
    raise ConfigError(f"cannot read budget {text!r}; write {BUDGET_FORMS}")


def written_as(text: str | Budget, gflops: float) -> bool:
    """Whether the absolute budget ``text`` is ``gflops`` rounded to the digits it is written with, at least the
    4 that summaries print: a budget copied from one (``0.1234GFLOPs`` or ``123.4MFLOPs`` for 0.12340567) names
    that budget; ``0.12GFLOPs`` is another."""
    m = _FLOPS_RE.fullmatch(str(text).strip())
    if not m:
        return False
    mantissa = re.split("e", m.group(1).lstrip("-"), flags=re.IGNORECASE)[0]
    digits = len(mantissa.replace(".", "").lstrip("0"))
    if digits < 4:
        return False
    exact = gflops / _PREFIX[m.group(2).lower()]  # in the unit written
    return float(f"{exact:.{digits}g}") == float(m.group(1))


def parse_rate(text: str | float) -> float:
    """Parse a throughput floor such as ``'1500img/s'`` into images per second."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return _finite_positive("throughput", str(text), float(text), RATE_FORMS)
    s = str(text).strip()
    if m := _RATE_RE.fullmatch(s):
        return _finite_positive("throughput", s, float(m.group(1)), RATE_FORMS)
    raise ConfigError(f"cannot read throughput {text!r}; write {RATE_FORMS}")


def format_gflops(gflops: float) -> str:
    """``3.2712 → '3.27GFLOPs'``; below 1 G it switches to MFLOPs."""
    if gflops < 1:
        return f"{gflops * 1e3:.3g}MFLOPs"
    return f"{gflops:.3g}GFLOPs"
