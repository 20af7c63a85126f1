"""Search spaces: a declarative YAML file → Optuna suggestions → a :class:`Candidate`.

A space names the reducer types to search, how the tokens removed per block are parametrised, the ranges of the
reducers' own parameters (RAPID's switch layer, τ, ρ, λ and merge op; ToFu's switch; …) and, for AutoFormer
supernets, the architecture choices. Example (``spaces/fashion-vit.yaml``)::

    reducers: [tome, tofu, pitome, rapid, topk]   # or [none]: architecture only, no token reduction
    schedule:
      parametrisation: budget      # budget (default) | per-block
      r: {low: 0, high: 32}        # per-block r range; a cap in budget mode
      target: {low: 0.6, high: 1.0}  # budget mode: share of the budget a candidate aims at
      profile_power: 3             # budget mode: w_l = u_l ** 3 (see below)
    rapid:
      switch: {low: 1, high: 4}
      tau: {low: 0.5, high: 0.9}
      rho: {low: 0.05, high: 0.5}
      lambda: {low: 1.0, high: 100.0, log: true}
      merge: [mlerp, wavg]

**Budget-aware parametrisation** (the default). Per-block r drawn independently puts most trials above the budget.
Instead a trial draws a depth *profile* ``w_l ∈ [0, 1]`` and a target share ``t`` of the budget, and the schedule
is ``r_l = min(r_max, floor(s · w_l))`` with the largest scale ``s`` whose analytic FLOPs stay under ``t · budget``
(FLOPs are monotone in ``s``, and cheap to compute), so every candidate reaches its target by construction and the
targets spread the Pareto front below the budget. The sampler draws ``u_l ∈ [0, 1]`` and the profile is
``w_l = u_l ** profile_power``: with the default power 3 a profile with a few heavy blocks and many light ones (one
large merge early, little after it) is drawn several times as often as with uniform weights, whose profiles are
mostly bumpy and flat; such schedules are where constant r loses most (fashion-vit at 40 %, bench/search.py). A
flat profile (every u_l = 1, the constant-r baselines) stays flat at any power.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import BaseTrial

from .errors import ConfigError
from .schedule import POSITION_MODES, RECIPES, Schedule, published_prop_attn

__all__ = ["Range", "ArchSpace", "SearchSpace", "Candidate", "find_spec", "scale_levels", "shipped", "solve_scale"]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ ranges
@dataclass(frozen=True)
class Range:
    """A numeric range ``[low, high]``; ``integer`` ranges are suggested with ``suggest_int``."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @classmethod
    def parse(cls, where: str, value: Any, integer: bool = False) -> Range:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = {"low": value, "high": value}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a range like {{low: 1, high: 4}}, got {value!r}")
        unknown = set(value) - {"low", "high", "log"}
        if unknown:
            raise ConfigError(f"{where} has unknown key(s) {sorted(unknown, key=str)}; a range has low, high and log")
        try:
            low, high = value["low"], value["high"]
        except KeyError as e:
            raise ConfigError(f"{where} needs both 'low' and 'high'") from e
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ConfigError(f"{where}.{name} must be a number, got {v!r}{yaml_number_hint(v)}")
            if integer and int(v) != v:
                raise ConfigError(f"{where}.{name} must be an integer, got {v!r}")
        log_ = value.get("log", False)
        if not isinstance(log_, bool):
            raise ConfigError(f"{where}.log must be true or false, got {log_!r}")
        if low > high:
            raise ConfigError(f"{where} is empty: low={low} > high={high}")
        if log_ and low <= 0:
            raise ConfigError(f"{where} is log-scaled, so low must be > 0, got {low}")
        return cls(float(low), float(high), log_, integer)

    def suggest(self, trial: BaseTrial, name: str) -> float | int:
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "low": int(self.low) if self.integer else self.low,
            "high": int(self.high) if self.integer else self.high,
        }
        if self.log:
            d["log"] = True
        return d


SHIPPED = Path(__file__).parent  # the shipped specs, package data: SHIPPED/studies/*.yaml, SHIPPED/spaces/*.yaml


def shipped(kind: str) -> list[str]:
    """Names of the shipped ``studies`` or ``spaces``."""
    return sorted(p.stem for p in (SHIPPED / kind).glob("*.yaml"))


def find_spec(value: str | Path, kind: str, base: str | Path | None = None) -> Path:
    """The YAML file that ``value`` names: a path (as given, then relative to ``base``), or the bare name of a
    shipped spec of ``kind`` (``studies`` or ``spaces``: ``fashion-vit`` is ``searcher/studies/fashion-vit.yaml``),
    so that the shipped specs work from any directory and in a plain ``pip install``."""
    path = Path(value).expanduser()
    what = "study spec" if kind == "studies" else "search space"
    if path.is_file():
        return path
    if base is not None and (Path(base) / path).is_file():
        return Path(base) / path
    if path.suffix not in (".yaml", ".yml") and len(path.parts) == 1 and (SHIPPED / kind / f"{path}.yaml").is_file():
        return SHIPPED / kind / f"{path}.yaml"  # a shipped name, even where a folder of that name exists (runs/)
    if path.is_dir():
        raise ConfigError(f"{value} is a directory; give a {what} YAML file in it, or a shipped name")
    if path.is_absolute():
        return path
    if path.suffix not in (".yaml", ".yml") and len(path.parts) == 1:
        raise ConfigError(
            f"no {what} {str(value)!r}: not a file, nor a shipped name ({', '.join(shipped(kind))}); "
            "give a YAML path or one of those names"
        )
    return Path(base) / path if base is not None else path  # for load_yaml to say that it cannot be read


class _YAML11Number(yaml.constructor.ConstructorError):
    """Valid YAML 1.1 that reads as another number than it looks."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                twice = key in seen
            except TypeError:  # a list or mapping as a key
                raise yaml.constructor.ConstructorError(
                    None, None, f"a key must be a plain value, got {key!r}", key_node.start_mark
                ) from None
            if twice:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> int:
        """YAML 1.1's octal (``010`` is 8) and base-60 (``1:30`` is 90) integers are refused: read silently, they
        change a spec's numbers (YAML 1.2 reads ``010`` as 10 and ``1:30`` as text)."""
        value = super().construct_yaml_int(node)
        text = str(node.value).replace("_", "").lstrip("+-")
        if ":" in text or text[:1] == "0" and text.isdigit() and int(text, 8) != int(text, 10):
            raise _YAML11Number(
                None, None, f"{node.value!r} reads as {value} in YAML 1.1 ({'base 60' if ':' in text else 'octal'}); "
                "write the number without a leading zero or colon, or quote it if it is text", node.start_mark)
        return value

    def construct_yaml_float(self, node: Any) -> float:
        value = super().construct_yaml_float(node)
        if ":" in str(node.value):
            raise _YAML11Number(
                None, None, f"{node.value!r} reads as {value} in YAML 1.1 (base 60); write the number without a colon, "
                "or quote it if it is text", node.start_mark)
        return value


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _UniqueKeyLoader.construct_yaml_float)
YAML_MAX_VALUES = 1_000_000  # values a spec or space may hold once its aliases are expanded


def _check_size(data: Any, where: str) -> None:
    """Aliases nested in aliases (``&a [x, x]``, ``&b [*a, *a]``, …) make a file of a few hundred bytes hold
    billions of values, which any walk over it (validation, an error message's repr) would take forever to visit."""
    todo, seen = [data], 0
    while todo:
        x = todo.pop()
        seen += 1
        if seen > YAML_MAX_VALUES:
            raise ConfigError(f"{where} holds more than {YAML_MAX_VALUES:,} values once its aliases are expanded "
                              "(aliases nested in aliases?); write the values out")
        if isinstance(x, dict):
            todo.extend(x.keys())
            todo.extend(x.values())
        elif isinstance(x, list):
            todo.extend(x)


def load_yaml(path: Path, what: str) -> Any:
    """A YAML file through the safe loader; unreadable or malformed files are a :class:`ConfigError` whose one-line
    message names the file and, for a syntax error, its line and column."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}; check the path") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {e.start}); save it as UTF-8 YAML") from e
    try:
        loader = _UniqueKeyLoader(text)  # a SafeLoader: plain data only
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
        if isinstance(e, yaml.reader.ReaderError):  # a character YAML does not allow: a position, not a mark
            line, col = text.count("\n", 0, e.position), e.position - (text.rfind("\n", 0, e.position) + 1)
            code = e.character if isinstance(e.character, int) else ord(e.character)
            mark, problem = yaml.Mark("", e.position, line, col, None, None), f"{e.reason} (#x{code:04x})"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = problem or " ".join(str(e).split())
        context, context_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and context_mark is not None:
            problem += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
        if isinstance(e, _YAML11Number):
            raise ConfigError(f"{what} {path}{where}: {problem}") from e
        raise ConfigError(f"{what} {path} is not valid YAML{where}: {problem}; fix the YAML syntax") from e
    _check_size(data, f"{what} {path}")
    return data


def yaml_number_hint(v: Any) -> str:
    """For a number YAML read as text (``1e2``: YAML 1.1 needs a dot and a signed exponent), how to write it so
    that YAML reads a number, every digit kept: ``1.e+02`` (and ``100`` where that is the same number)."""
    try:
        number = float(v) if isinstance(v, str) else None
    except ValueError:
        number = None
    if number is None or not math.isfinite(number) or re.fullmatch(r"[+-]?[0-9]+(\.[0-9]*)?", v.strip()):
        return ""  # not a number, or one that YAML reads as such unless it is quoted (or given from Python)
    import numpy as np

    forms = [np.format_float_scientific(number, unique=True, exp_digits=2)]
    plain = f"{number:.15g}"
    if "e" not in plain and float(plain) == number:
        forms.insert(0, plain if "." in plain or number.is_integer() else f"{plain}.0")
    return f" (YAML reads {v} as text: write {' or '.join(forms)})"


def _choices(where: str, value: Any, kind: type | tuple[type, ...], allowed: Sequence[Any] | None = None) -> tuple:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list of choices, got {value!r}")
    for v in value:
        if isinstance(v, bool) and kind is not bool or not isinstance(v, kind):
            raise ConfigError(f"{where} has a choice {v!r} of the wrong type")
        if allowed is not None and v not in allowed:
            raise ConfigError(f"{where} has an unknown choice {v!r}; allowed: {list(allowed)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{where} has a choice {v!r}; choices are finite numbers")
        if value.count(v) > 1:  # a repeated choice would be drawn twice as often
            raise ConfigError(f"{where} lists {v!r} more than once; list each choice once")
    return tuple(value)


def _check_keys(where: str, d: Any, allowed: Sequence[str]) -> dict:
    if d is None:
        return {}
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(d).__name__}")
    unknown = set(d) - set(allowed)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {sorted(unknown, key=str)}; allowed: {sorted(allowed)}")
    return dict(d)


# ------------------------------------------------------------------------------------------- architecture
_ARCH_KEYS = ("embed_dim", "depth", "num_heads", "mlp_ratio")


@dataclass(frozen=True)
class ArchSpace:
    """AutoFormer choices; per-layer heads and MLP ratio are searched for every possible layer.

    ``parametrisation: budget`` (the default) draws a *shape*, a weight ``u_k ∈ [0, 1]`` for each choice (embed
    dim, depth, every layer's heads and MLP ratio), and a *size*, the subnet's unreduced FLOPs as a share of the
    budget (``target`` for an unreduced subnet, ``arch_size`` for one whose tokens are removed; see
    :meth:`SearchSpace.suggest`); the subnet is the largest scale of the shape under that size (each choice at level
    ``min(n_k - 1, floor(s · u_k))`` of its sorted options, :func:`scale_levels`), and every choice that still fits
    a step up then takes it, heaviest weight first: no single choice of the subnet can grow within its size. So
    every subnet is aimed at the budget, small corners of the space included. ``per-layer`` draws every choice
    independently, as AutoFormer's evolution does, and leaves the budget to the FLOPs check."""

    embed_dim: tuple[int, ...]
    depth: tuple[int, ...]
    num_heads: tuple[int, ...]
    mlp_ratio: tuple[float, ...]
    parametrisation: str = "budget"
    size: Range | None = None  # budget mode: arch_size's range; None → SearchSpace.arch_size's default

    @classmethod
    def from_dict(cls, d: Any) -> ArchSpace:
        d = _check_keys("architecture", d, [*_ARCH_KEYS, "parametrisation", "size"])
        missing = set(_ARCH_KEYS) - set(d)
        if missing:
            raise ConfigError(f"architecture is missing {sorted(missing)}")
        par = d.get("parametrisation", "budget")
        if par not in ("budget", "per-layer"):
            raise ConfigError(f"architecture.parametrisation must be 'budget' or 'per-layer', got {par!r}")
        size = Range.parse("architecture.size", d["size"]) if d.get("size") is not None else None
        if size is not None and par == "per-layer":
            raise ConfigError("architecture.size belongs to the budget parametrisation; per-layer draws every choice "
                              "and leaves the budget to the FLOPs check: remove it")
        if size is not None and size.low <= 0:
            raise ConfigError(f"architecture.size is a share of the budget, so low must be > 0, got {size.to_dict()}")
        arch = cls(
            _choices("architecture.embed_dim", d["embed_dim"], int),
            _choices("architecture.depth", d["depth"], int),
            _choices("architecture.num_heads", d["num_heads"], int),
            tuple(float(v) for v in _choices("architecture.mlp_ratio", d["mlp_ratio"], (int, float))),
            par,
            size,
        )
        for name in _ARCH_KEYS:
            if any(v <= 0 for v in getattr(arch, name)):
                raise ConfigError(f"architecture.{name} choices must be positive")
        return arch

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {name: list(getattr(self, name)) for name in _ARCH_KEYS}
        d["parametrisation"] = self.parametrisation
        if self.size is not None:
            d["size"] = self.size.to_dict()
        return d

    def suggest(self, trial: BaseTrial) -> dict[str, Any]:
        """Per-layer parametrisation: every choice drawn independently."""
        depth = trial.suggest_categorical("depth", list(self.depth))
        embed = trial.suggest_categorical("embed_dim", list(self.embed_dim))
        heads = [trial.suggest_categorical(f"heads{i}", list(self.num_heads)) for i in range(max(self.depth))]
        mlp = [trial.suggest_categorical(f"mlp{i}", list(self.mlp_ratio)) for i in range(max(self.depth))]
        return {"embed_dim": embed, "depth": depth, "num_heads": heads[:depth], "mlp_ratio": mlp[:depth]}

    # -- budget parametrisation: a shape (one weight per choice) scaled to a size ----------------------------
    def _knobs(self) -> list[tuple[str, tuple]]:
        """(Optuna weight name, sorted options) of every choice, in the order of the levels."""
        n = max(self.depth)
        return [
            ("w_embed_dim", tuple(sorted(self.embed_dim))),
            ("w_depth", tuple(sorted(self.depth))),
            *((f"w_heads{i}", tuple(sorted(self.num_heads))) for i in range(n)),
            *((f"w_mlp{i}", tuple(sorted(self.mlp_ratio))) for i in range(n)),
        ]

    def at_levels(self, levels: Sequence[int]) -> dict[str, Any]:
        """The subnet whose every choice is at the given level (index into its sorted options)."""
        opts = [o for _, o in self._knobs()]
        n = max(self.depth)
        depth = opts[1][levels[1]]
        heads = [opts[2 + i][levels[2 + i]] for i in range(n)]
        mlp = [opts[2 + n + i][levels[2 + n + i]] for i in range(n)]
        return {"embed_dim": opts[0][levels[0]], "depth": depth, "num_heads": heads[:depth], "mlp_ratio": mlp[:depth]}

    def suggest_scaled(self, trial: BaseTrial, cost: Callable[[dict[str, Any]], float], goal: float) -> dict:
        """Budget parametrisation: the largest subnet of a drawn shape whose unreduced cost is ≤ ``goal`` (the
        smallest of that shape when none is)."""
        knobs = self._knobs()
        weights = [trial.suggest_float(name, 0.0, 1.0) for name, _ in knobs]
        caps = [len(opts) - 1 for _, opts in knobs]

        def fits(levels: list[int]) -> bool:
            return cost(self.at_levels(levels)) <= goal * (1 + 1e-9)

        levels = scale_levels(weights, caps, fits, grow=True)
        # the options are coarse (one step of the embed dim can cost a third more), so the scale alone can stop
        # far under the goal: then every choice still fitting a step up takes it, heaviest weight first
        for k in sorted(range(len(levels)), key=lambda k: -weights[k]):
            while levels[k] < caps[k] and fits(up := levels[:k] + [levels[k] + 1] + levels[k + 1 :]):
                levels = up
        return self.at_levels(levels)

    def largest(self) -> dict[str, Any]:
        d = max(self.depth)
        return {
            "embed_dim": max(self.embed_dim),
            "depth": d,
            "num_heads": [max(self.num_heads)] * d,
            "mlp_ratio": [max(self.mlp_ratio)] * d,
        }

    def smallest(self) -> dict[str, Any]:
        d = min(self.depth)
        return {
            "embed_dim": min(self.embed_dim),
            "depth": d,
            "num_heads": [min(self.num_heads)] * d,
            "mlp_ratio": [min(self.mlp_ratio)] * d,
        }

    def params_of_largest(self, size: float | None = None) -> dict[str, Any]:
        """Optuna parameters that draw the largest subnet (for enqueued baselines). Budget parametrisation: every
        weight 1 at the given ``size`` (the top of the size range, which reaches the largest subnet)."""
        if self.parametrisation == "budget":
            return {"arch_size": size, **{name: 1.0 for name, _ in self._knobs()}}
        n = max(self.depth)
        return {
            "depth": max(self.depth),
            "embed_dim": max(self.embed_dim),
            **{f"heads{i}": max(self.num_heads) for i in range(n)},
            **{f"mlp{i}": max(self.mlp_ratio) for i in range(n)},
        }


# ----------------------------------------------------------------------------------------------- candidate
@dataclass(frozen=True)
class Candidate:
    """What one trial evaluates: the reducer type, the per-block schedule and (AutoFormer) the subnet."""

    reducer: str  # a recipe name, or "none"
    schedule: Schedule
    arch: dict[str, Any] | None = None  # AutoFormer subnet: embed_dim, depth, num_heads[], mlp_ratio[]

    def to_dict(self) -> dict[str, Any]:
        return {"reducer": self.reducer, "schedule": self.schedule.to_dict(), "arch": self.arch}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Candidate:
        d = _check_keys("candidate", d, ["reducer", "schedule", "arch"])
        if "schedule" not in d:
            raise ConfigError("candidate has no 'schedule'")
        return cls(str(d.get("reducer", "custom")), Schedule.from_dict(d["schedule"]), d.get("arch"))


# A cost function: (arch or None, schedule) → analytic GFLOPs per image.
FlopsFn = Callable[[dict[str, Any] | None, Schedule], float]


_TINY = 1e-6


def scale_levels(
    weights: Sequence[float],
    caps: Sequence[int],
    fits: Callable[[list[int]], bool],
    grow: bool,
    iters: int = 40,
) -> list[int]:
    """Levels ``l_k = min(cap_k, floor(s · w_k))`` at the scale ``s`` nearest the budget that still ``fits``.

    The cost is monotone in ``s``: it falls as ``s`` grows when the levels remove something (tokens per block,
    ``grow=False``: the smallest fitting ``s``, the least reduction), and rises when they add something
    (architecture choices, ``grow=True``: the largest fitting ``s``, the largest subnet). The scale is found by
    bisection. When nothing fits, the cheapest end is returned (every positive weight at its cap, or every level at
    0) and the caller finds it over; when everything fits, the costliest.

    Near the solution several levels step at once, which can leave a few percent of the goal unused; the levels
    that stepped then take single steps toward the first scale that does not fit, heaviest weight first, while the
    levels still fit. A flat profile (all positive weights equal) stays flat, as the constant-r recipes do.
    """
    positive = [w for w in weights if w > 0]

    def at(s: float) -> list[int]:
        return [min(c, int(math.floor(s * w + 1e-9))) for w, c in zip(weights, caps, strict=True)]

    if not positive:
        return at(0.0)
    top = max(caps) / min(positive) + 1.0  # at(top) has every positive weight at its cap
    costly, cheap = (top, 0.0) if grow else (0.0, top)
    if fits(at(costly)):
        return at(costly)
    if not fits(at(cheap)):
        return at(cheap)
    good, bad = cheap, costly  # invariant: at(good) fits, at(bad) does not
    for _ in range(iters):
        mid = (good + bad) / 2
        good, bad = (mid, bad) if fits(at(mid)) else (good, mid)
        if abs(bad - good) < 1e-3:
            break
    levels, over = at(good), at(bad)
    if len(set(positive)) == 1:
        return levels
    for k in sorted(range(len(levels)), key=lambda k: -weights[k]):  # fill the goal: take what the step left
        step = 1 if over[k] > levels[k] else -1
        while levels[k] != over[k]:
            trial = levels[:k] + [levels[k] + step] + levels[k + 1 :]
            if not fits(trial):
                break
            levels = trial
    return levels


def solve_scale(
    weights: Sequence[float],
    r_max: int,
    build: Callable[[list[int]], Schedule],
    cost: Callable[[Schedule], float],
    goal: float,
) -> Schedule:
    """The least reduction ``r_l = min(r_max, floor(s · w_l))`` whose cost is ≤ ``goal`` (:func:`scale_levels`):
    the schedule that uses its budget fully. When even the most aggressive schedule of this profile (every block
    with ``w_l > 0`` at ``r_max``) costs more than ``goal``, that schedule is returned and the caller finds it over.
    A flat profile is the constant-r recipe and stays constant."""
    weights = [w if w > _TINY else 0.0 for w in weights]  # a tiny weight never reaches r = 1 anyway
    rs = scale_levels(weights, [r_max] * len(weights), lambda rs: cost(build(rs)) <= goal, grow=False)
    return build(rs)


# ------------------------------------------------------------------------------------------------- space
_RAPID_DEFAULTS: dict[str, Any] = {
    "switch": None,
    "tau": Range(0.5, 0.9),
    "rho": Range(0.05, 0.5),
    "lambda": Range(1.0, 100.0, log=True),
    "merge": ("mlerp", "wavg"),
}
_PARAM_KEYS = {
    "tome": [],
    "tofu": ["switch"],
    "pitome": [],
    "rapid": ["switch", "tau", "rho", "lambda", "merge"],
    "topk": ["fuse"],
    "diffrate": ["prune_share"],
}


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space; see the module docstring for the YAML form."""

    reducers: tuple[str, ...] = ("tome", "tofu", "pitome", "rapid", "topk")
    parametrisation: str = "budget"  # "budget": profile + solved scale; "per-block": independent r per block
    r: Range = Range(0, 32, integer=True)  # per-block r (a cap in budget mode)
    target: Range = Range(0.6, 1.0)  # budget mode: share of the budget a candidate aims at
    profile_power: float = 3.0  # budget mode: w_l = u_l ** p with u_l drawn in [0, 1]
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # reducer → name → Range | choices
    architecture: ArchSpace | None = None
    # proportional attention: None, each reducer's published default (on; off for PiToMe, as its official code);
    # one choice for every reducer; two make it a searched parameter
    prop_attn: tuple[bool, ...] | None = None
    positions: str = "anchored"  # relative-position models: where merged tokens sit (Schedule)
    name: str = ""
    r_given: bool = field(default=True, compare=False)  # schedule.r written in the space (not the default)

    # -- parsing -------------------------------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        """A search space file, or the name of a shipped one (``deit-vit-224``: searcher/spaces/deit-vit-224.yaml)."""
        path = find_spec(path, "spaces")
        d = load_yaml(path, "search space")
        if d is None:  # an empty file, or comments only: not the default space
            raise ConfigError(f"search space {path} is empty; write at least its reducers, e.g. reducers: [tome]")
        try:
            return replace(cls.from_dict(d), name=path.stem)
        except ConfigError as e:
            raise ConfigError(f"search space {path}: {e}") from e

    @classmethod
    def from_dict(cls, d: Any) -> SearchSpace:
        d = _check_keys(
            "search space",
            d,
            ["reducers", "schedule", "architecture", "prop_attn", "positions", *_PARAM_KEYS],
        )
        reducers = _choices("reducers", d.get("reducers", list(cls.reducers)), str, (*RECIPES, "none"))
        sched = _check_keys("schedule", d.get("schedule"), ["parametrisation", "r", "target", "profile_power"])
        par = sched.get("parametrisation", "budget")
        if par not in ("budget", "per-block"):
            raise ConfigError(f"schedule.parametrisation must be 'budget' or 'per-block', got {par!r}")
        r = Range.parse("schedule.r", sched.get("r", {"low": 0, "high": 32}), integer=True)
        if r.low < 0:
            raise ConfigError(f"schedule.r must not be negative, got low={int(r.low)}")
        target = Range.parse("schedule.target", sched.get("target", {"low": 0.6, "high": 1.0}))
        if not 0 < target.low <= target.high <= 1:
            raise ConfigError(f"schedule.target is a share of the budget in (0, 1], got {target.to_dict()}")
        arch_d = d.get("architecture")  # budget-parametrised subnets drawn unreduced aim at target × budget
        arch_target = isinstance(arch_d, Mapping) and arch_d.get("parametrisation", "budget") == "budget"
        if par == "per-block" and ("profile_power" in sched or "target" in sched and not arch_target):
            raise ConfigError(f"schedule.{'profile_power' if 'profile_power' in sched else 'target'} belongs to the "
                              "budget parametrisation; per-block draws each r from schedule.r: remove it")
        if par == "budget" and r.low > 0:  # r is solved from a profile; schedule.r.high caps it
            raise ConfigError(f"schedule.r.low is {int(r.low)}, but the budget parametrisation solves r (0 where the "
                              "profile is light) and uses schedule.r.high as a cap only; set low to 0, or use "
                              "parametrisation: per-block")
        power = sched.get("profile_power", cls.profile_power)
        if isinstance(power, bool) or not isinstance(power, int | float) or not 0 < power <= 10:
            raise ConfigError(f"schedule.profile_power must be a number in (0, 10], got {power!r}")
        params: dict[str, dict[str, Any]] = {}
        for red in _PARAM_KEYS:
            given = _check_keys(red, d.get(red), _PARAM_KEYS[red])
            if given and red not in reducers:
                raise ConfigError(f"'{red}' parameters are given but '{red}' is not in reducers {list(reducers)}")
            params[red] = {k: cls._parse_param(red, k, v) for k, v in given.items()}
        positions = d.get("positions", "anchored")
        if positions not in POSITION_MODES:
            raise ConfigError(f"positions must be one of {list(POSITION_MODES)}, got {positions!r}")
        prop_attn = d.get("prop_attn")
        if prop_attn is not None and not isinstance(prop_attn, bool | list):
            raise ConfigError(f"prop_attn must be true or false, or [true, false] to search it; got {prop_attn!r}")
        if prop_attn is not None:
            prop_attn = (prop_attn,) if isinstance(prop_attn, bool) else _choices("prop_attn", prop_attn, bool)
        arch = ArchSpace.from_dict(d["architecture"]) if d.get("architecture") is not None else None
        if "none" in reducers and arch is None:
            raise ConfigError(
                f"reducers lists 'none' (no token reduction) but the space has no architecture section to search, so "
                f"it is the unreduced model, over any budget; {'remove it' if len(reducers) > 1 else 'list reducers'}"
            )
        return cls(reducers, par, r, target, float(power), params, arch, prop_attn, positions, r_given="r" in sched)

    @staticmethod
    def _parse_param(red: str, key: str, value: Any) -> Any:
        where = f"{red}.{key}"
        if key == "merge":
            return _choices(where, value, str, ("mlerp", "wavg"))
        if key == "fuse":
            return _choices(where, value, bool)
        rng = Range.parse(where, value, integer=key == "switch")
        if key in ("tau", "rho", "prune_share") and not (0 <= rng.low and rng.high <= 1):
            raise ConfigError(f"{where} must lie in [0, 1], got {rng.to_dict()}")
        if key == "rho" and rng.low <= 0:  # a quantile of the tokens: RAPID's merge needs some
            raise ConfigError(f"{where} is a share in (0, 1], so low must be > 0 (RAPID uses 0.2), got {rng.to_dict()}")
        if key in ("switch", "lambda") and rng.low < 0:
            raise ConfigError(f"{where} must not be negative, got {rng.to_dict()}")
        return rng

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "reducers": list(self.reducers),
            "schedule": {
                "parametrisation": self.parametrisation,
                "r": self.r.to_dict(),
                "target": self.target.to_dict(),
                "profile_power": self.profile_power,
            },
        }
        for red, ps in self.params.items():
            if ps:
                d[red] = {k: v.to_dict() if isinstance(v, Range) else list(v) for k, v in ps.items()}
        if self.architecture is not None:
            d["architecture"] = self.architecture.to_dict()
        if self.prop_attn is not None:
            d["prop_attn"] = self.prop_attn[0] if len(self.prop_attn) == 1 else list(self.prop_attn)
        d["positions"] = self.positions
        return d

    # -- validation against a model ------------------------------------------------------------------------
    def check_model(self, depths: Sequence[int], n_tokens: int, num_prefix: int) -> None:
        """Errors for choices the model cannot take: a switch beyond its depth, r above its token count."""
        for red in ("rapid", "tofu"):
            sw = self.params.get(red, {}).get("switch")
            if red in self.reducers and sw is not None and sw.high > max(depths):
                raise ConfigError(
                    f"{red}.switch goes up to {int(sw.high)} but the model has only {max(depths)} "
                    f"blocks; lower {red}.switch.high"
                )
        reducible = n_tokens - num_prefix
        if self.r.low > reducible // 2:
            raise ConfigError(
                f"schedule.r starts at {int(self.r.low)}, above the {reducible // 2} tokens a block "
                f"can remove (50% of {reducible}); lower schedule.r.low"
            )
        per_block = self.parametrisation == "per-block" and self.r_given
        if self.r.high > (reducible // 2 if per_block else reducible):
            # per-block draws r from the range, and a block removes at most half its tokens: a draw above that would
            # be cut to it, piling the draws at the cap (the budget parametrisation takes r.high as a cap only, up to
            # the model's patch tokens; the default range is cut so on a model of fewer than 64, as it always was)
            limit, why = ((reducible // 2, f"the {reducible // 2} tokens a block can remove (50% of the model's "
                           f"{reducible} patch tokens)") if per_block else
                          (reducible, f"the model's {reducible} patch tokens (r.high caps each block's draw)"))
            raise ConfigError(f"schedule.r goes up to {int(self.r.high)}, above {why}; lower schedule.r.high to at "
                              f"most {limit}")

    # -- suggestions -----------------------------------------------------------------------------------------
    def _param(self, red: str, key: str) -> Any:
        return self.params.get(red, {}).get(key)

    def suggest_reducer_params(self, trial: BaseTrial, red: str, depth: int, max_depth: int) -> dict[str, Any]:
        """The reducer's own parameters (RAPID τ/ρ/λ/merge/switch, …), as recipe keyword arguments."""
        out: dict[str, Any] = {}
        if red in ("rapid", "tofu"):
            sw = self._param(red, "switch") or Range(
                1, max(1, round(max_depth / 3) * 2 if red == "rapid" else max_depth - 1), integer=True
            )
            out["switch"] = min(int(sw.suggest(trial, f"{red}_switch")), depth)
        if red == "rapid":
            for key in ("tau", "rho", "lambda"):
                rng: Range = self._param(red, key) or _RAPID_DEFAULTS[key]
                out[key] = rng.suggest(trial, f"rapid_{key}")
            out["merge"] = trial.suggest_categorical(
                "rapid_merge", list(self._param(red, "merge") or ("mlerp", "wavg"))
            )
        if red == "topk":
            out["fuse"] = trial.suggest_categorical("topk_fuse", list(self._param(red, "fuse") or (True, False)))
        if red == "diffrate":
            rng = self._param(red, "prune_share") or Range(0.0, 1.0)
            out["prune_share"] = rng.suggest(trial, "diffrate_prune_share")
        return out

    def suggest(
        self,
        trial: BaseTrial,
        depth_of: Callable[[dict[str, Any] | None], int],
        flops: FlopsFn,
        budget: float,
        build: Callable[..., Schedule],
    ) -> tuple[Candidate, dict[str, Any]]:
        """Draw a candidate. ``build(reducer, depth, rs, **params)`` makes the schedule; returns the candidate
        (over the budget when no schedule of the drawn profile meets it) and derived facts to record.

        Supernets, architecture in its budget parametrisation: the first choice is ``remove_tokens``. Without
        (reducer ``none``) the architecture alone meets the budget, as in AutoFormer, so joint search contains
        architecture-only search, with even odds however many reducers are listed: the largest subnet of a drawn
        shape under ``target`` × budget, unreduced. With, a reducer takes a subnet under a drawn ``arch_size`` ×
        budget (:meth:`arch_size`, above the budget) and removes tokens down to its target. Per-layer
        architecture: the subnet is drawn first, one that already fits the budget runs unreduced, and tokens are
        removed only from those over it."""
        arch_space, facts = self.architecture, dict[str, Any]()
        scaled = arch_space is not None and arch_space.parametrisation == "budget"
        budget_mode = self.parametrisation == "budget" and self.reducers != ("none",)
        arch = arch_space.suggest(trial) if arch_space is not None and not scaled else None
        target = None
        if budget_mode and not scaled:
            target = self.target.suggest(trial, "target")
            facts["goal_gflops"] = target * budget
            if arch is not None and flops(arch, Schedule.none(depth_of(arch))) <= budget:  # nothing to reduce
                return Candidate("none", Schedule.none(depth_of(arch), positions=self.positions), arch), facts
        reducers = [r for r in self.reducers if r != "none"]
        if scaled and reducers:  # even odds for the architecture alone, however many reducers are listed
            assert arch_space is not None
            smallest = arch_space.smallest()
            remove = True  # ... unless no subnet fits the budget unreduced: then every draw removes tokens
            if flops(smallest, Schedule.none(depth_of(smallest))) <= budget:
                remove = trial.suggest_categorical("remove_tokens", [False, True])
            red = trial.suggest_categorical("reducer", reducers) if remove else "none"
        else:
            red = trial.suggest_categorical("reducer", list(self.reducers))
        if scaled:
            assert arch_space is not None
            largest = arch_space.largest()
            if red == "none":
                size = self.target.suggest(trial, "target")
            else:
                size = self.arch_size(flops(largest, Schedule.none(depth_of(largest))), budget).suggest(
                    trial, "arch_size"
                )
            facts["arch_goal_gflops"] = size * budget
            arch = arch_space.suggest_scaled(
                trial, lambda a: flops(a, Schedule.none(depth_of(a), positions=self.positions)), size * budget
            )
        depth = depth_of(arch)
        max_depth = max(arch_space.depth) if arch_space is not None else depth
        unreduced = Schedule.none(depth, positions=self.positions)
        if red == "none":  # no token reduction: only the architecture meets the budget (as in AutoFormer)
            return Candidate(red, unreduced, arch), facts
        rparams = self.suggest_reducer_params(trial, red, depth, max_depth)
        prop_attn = self.prop_attn[0] if self.prop_attn else None  # None: the recipe's own
        if self.prop_attn and len(self.prop_attn) > 1:
            prop_attn = trial.suggest_categorical("prop_attn", list(self.prop_attn))
        r_max = int(self.r.high)

        def make(rs: list[int]) -> Schedule:
            return build(red, depth, rs, prop_attn=prop_attn, positions=self.positions, **rparams)

        if not budget_mode:
            rs = [int(self.r.suggest(trial, f"r{i}")) for i in range(max_depth)][:depth]
            return Candidate(red, make(rs), arch), facts
        if target is None:
            target = self.target.suggest(trial, "target")
            facts["goal_gflops"] = target * budget
        p = self.profile_power
        weights = [trial.suggest_float(f"w{i}", 0.0, 1.0) ** p for i in range(max_depth)][:depth]
        sched = solve_scale(weights, r_max, make, lambda s: flops(arch, s), target * budget)
        if scaled and sched.is_identity:  # a subnet that came out under its target: nothing was removed
            return Candidate("none", unreduced, arch), facts
        return Candidate(red, sched, arch), facts

    def arch_size(self, largest_gflops: float, budget: float) -> Range:
        """The range of ``arch_size``, the unreduced FLOPs of a subnet whose tokens are removed, as a share of the
        budget (budget parametrisation of the architecture): ``architecture.size`` when given, else log-uniform from
        the budget to the largest subnet."""
        assert self.architecture is not None
        if self.architecture.size is not None:
            return self.architecture.size
        return Range(1.0, max(1.0, largest_gflops / budget), log=True)

    def baseline_params(
        self, red: str, depth: int, max_depth: int, arch_params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Optuna parameters of the published recipe of ``red`` (constant r, paper defaults) at the full budget.

        In budget mode a flat profile with target 1 solves to the largest constant r under the budget."""
        params: dict[str, Any] = {"reducer": red, **(arch_params or {})}
        if self.architecture is not None and self.architecture.parametrisation == "budget":
            params["remove_tokens"] = True
        if self.prop_attn and len(self.prop_attn) > 1:  # the recipe's own (PiToMe's official code has it off)
            params["prop_attn"] = published_prop_attn(red)
        if red == "rapid":  # RAPID's paper: τ 0.7, ρ 20 %, λ 50, MLERP, switch after block L/3
            params.update(
                rapid_switch=max(1, round(depth / 3)),
                rapid_tau=0.7,
                rapid_rho=0.2,
                rapid_lambda=50.0,
                rapid_merge="mlerp",
            )
        if red == "tofu":
            params["tofu_switch"] = depth // 2 + 1
        if red == "topk":
            params["topk_fuse"] = True
        if red == "diffrate":
            params["diffrate_prune_share"] = 0.5
        if self.parametrisation == "budget":
            params.update({f"w{i}": 1.0 for i in range(max_depth)}, target=1.0)
        return params
