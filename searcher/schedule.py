"""Token-reduction schedules: one entry (op, r, params) per transformer block.

A :class:`Schedule` is data. Builders turn a compact parameterisation (constant r, a per-layer list, ToMe's
``(r, inflection)``, or a reducer *recipe* such as RAPID's prune-then-merge switch) into one :class:`Layer`
per block; :meth:`Schedule.to_dict` / :meth:`Schedule.from_dict` give the versioned JSON of DESIGN.md
"Contracts"::

    {"version": 1, "prop_attn": true, "positions": "anchored",
     "layers": [{"op": "rapid-prune", "r": 8, "tau": 0.7}, {"op": "tome", "r": 8}, {"op": "none"}]}

:func:`tokens_per_block` is the exact token-count rule the reducers follow (including ToMe's 50 % cap), so
costs can be computed without running a model.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import numbers
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "read_schedule",
    "SCHEDULE_VERSION",
    "OPS",
    "RECIPES",
    "OpSpec",
    "Layer",
    "Schedule",
    "tokens_per_block",
    "tokens_per_stage",
    "effective_r",
    "published_prop_attn",
]

logger = logging.getLogger(__name__)

SCHEDULE_VERSION = 1
POSITION_MODES = ("tracked", "anchored", "index")
TRACKED_POSITION_MODES = ("tracked", "anchored")  # modes that carry (row, col) through every reduction
Param = bool | int | float | str


@dataclass(frozen=True)
class OpSpec:
    """What an op accepts: whether it takes ``r``, and its parameters with their types and defaults."""

    uses_r: bool  # the op removes ``r`` tokens (capped at 50 % of the reducible tokens)
    params: Mapping[str, tuple[type, Param | None]] = field(
        default_factory=dict
    )  # name -> (type, default|None)
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # allowed values of str params


# Every op a schedule may contain (REDUCERS.md); a parameter default of None means "required".
OPS: dict[str, OpSpec] = {
    "none": OpSpec(uses_r=False),
    "tome": OpSpec(uses_r=True),
    "tofu-prune": OpSpec(uses_r=True),
    "tofu-merge": OpSpec(uses_r=True),
    # margin defaults to 0.75 - 0.75 * l / L (PiToMe), filled in from the layer index when missing.
    "pitome": OpSpec(uses_r=True, params={"margin": (float, None)}),
    "rapid-prune": OpSpec(uses_r=True, params={"tau": (float, 0.7)}),
    "rapid-merge": OpSpec(
        uses_r=True,
        params={"rho": (float, 0.2), "lambda": (float, 50.0), "merge": (str, "mlerp")},
        choices={"merge": ("mlerp", "wavg")},
    ),
    "topk-prune": OpSpec(uses_r=True, params={"fuse": (bool, True)}),
    "diffrate": OpSpec(
        uses_r=False,
        params={"prune_kept": (int, None), "merge_kept": (int, None), "sizes": (str, "sum")},
        choices={"sizes": ("sum", "similarity")},
    ),
}

RECIPES = ("tome", "tofu", "pitome", "rapid", "topk", "diffrate")


def pitome_margin(layer: int, depth: int) -> float:
    """PiToMe's per-layer energy margin ``0.75 - 0.75 * l / L`` (official ``init_margin``)."""
    return 0.75 - 0.75 * layer / depth


@dataclass(frozen=True)
class Layer:
    """One block's reduction: the op, the number of tokens it removes, and the op's parameters."""

    op: str = "none"  # a key of OPS
    r: int = 0  # tokens removed in this block (before the 50 % cap); 0 for ops without r
    params: tuple[tuple[str, Param], ...] = ()  # sorted (name, value) pairs; see OPS[op].params

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ConfigError(f"unknown op {self.op!r}; known ops: {sorted(OPS)}")
        r = _as_int(self.r)
        if r is None or r < 0:
            raise ConfigError(f"'r' must be an integer >= 0 (tokens removed in the block), got {self.r!r}")
        object.__setattr__(self, "r", r)
        object.__setattr__(self, "params", tuple(sorted(dict(self.params).items())))

    @property
    def kw(self) -> dict[str, Param]:
        """The parameters as a dict (a copy)."""
        return dict(self.params)

    def get(self, name: str) -> Param:
        """One parameter; the op's default when it has one."""
        d = dict(self.params)
        if name in d:
            return d[name]
        default = OPS[self.op].params[name][1]
        if default is None:
            raise KeyError(name)
        return default

    @property
    def is_identity(self) -> bool:
        """True when this layer never changes the tokens."""
        return self.op == "none" or (OPS[self.op].uses_r and self.r == 0)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.op}
        if OPS[self.op].uses_r:
            out["r"] = self.r
        out.update(self.params)
        return out

    @classmethod
    def make(cls, op: str, r: int = 0, *, layer: int = 0, depth: int = 1, **params: Any) -> Layer:
        """Build and validate a layer (defaults filled in) — the same checks as ``from_dict``."""
        d: dict[str, Any] = {"op": op, **params}
        if op not in OPS:
            raise ConfigError(f"layer {layer}: unknown op {op!r}; known ops: {sorted(OPS)}")
        if OPS[op].uses_r:
            d["r"] = r
        elif r:
            raise ConfigError(f"layer {layer}: op {op!r} takes no 'r' (got {r=}); remove it")
        return _layer_from_dict(d, layer, depth)


def _type_name(t: type) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}[t]


def _as_int(value: Any) -> int | None:
    """``value`` as an int when it is an integer (Python, numpy, a 0-d integer tensor: ``__index__``), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _check_value(where: str, name: str, value: Any, t: type, choices: tuple[str, ...] | None) -> Param:
    if t is bool:
        ok = isinstance(value, bool)
    elif t is int:  # numpy's integers and 0-d integer tensors too
        ok = _as_int(value) is not None
        value = _as_int(value) if ok else value
    elif t is float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{where}: {name!r} must be {_type_name(t)}, got {value!r}")
    if choices is not None and value not in choices:
        raise ConfigError(f"{where}: {name!r} must be one of {list(choices)}, got {value!r}")
    return value


def _check_range(where: str, op: str, params: dict[str, Param]) -> None:
    def bad(name: str, rule: str) -> ConfigError:
        return ConfigError(f"{where}: {name!r} must be {rule}, got {params[name]!r}")

    if op == "rapid-prune" and not -1.0 <= float(params["tau"]) <= 1.0:
        raise bad("tau", "a cosine-similarity threshold in [-1, 1] (RAPID uses 0.7)")
    if op == "rapid-merge":
        if not 0.0 < float(params["rho"]) <= 1.0:
            raise bad("rho", "a fraction in (0, 1] (RAPID uses 0.2)")
        if float(params["lambda"]) < 0:
            raise bad("lambda", ">= 0 (RAPID uses 50)")
    if op == "diffrate":
        for name in ("prune_kept", "merge_kept"):
            if int(params[name]) < 1:
                raise bad(name, "a token count >= 1 (prefix tokens included)")


def _layer_from_dict(d: Any, i: int, depth: int) -> Layer:
    where = f"layer {i}"
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected an object such as {{'op': 'tome', 'r': 8}}, got {d!r}")
    if "op" not in d:
        raise ConfigError(f"{where}: missing 'op'; add one of {sorted(OPS)}")
    op = d["op"]
    if op not in OPS:
        raise ConfigError(f"{where}: unknown op {op!r}; known ops: {sorted(OPS)}")
    spec = OPS[op]
    allowed = {"op", *spec.params} | ({"r"} if spec.uses_r else set())
    extra = sorted(set(d) - allowed)
    if extra:
        raise ConfigError(f"{where}: op {op!r} has no field(s) {extra}; allowed: {sorted(allowed)}")
    r = 0
    if spec.uses_r:
        if "r" not in d:
            raise ConfigError(f"{where}: op {op!r} needs 'r' (tokens removed in this block), e.g. 'r': 8")
        r = _check_value(where, "r", d["r"], int, None)  # type: ignore[assignment]
        if r < 0:
            raise ConfigError(f"{where}: 'r' must be >= 0 (tokens removed in this block), got {r=}")
    params: dict[str, Param] = {}
    for name, (t, default) in spec.params.items():
        if name in d:
            params[name] = _check_value(where, name, d[name], t, spec.choices.get(name))
        elif op == "pitome" and name == "margin":
            params[name] = pitome_margin(i, depth)
        elif default is None:
            raise ConfigError(f"{where}: op {op!r} needs {name!r}")
        else:
            params[name] = default
    _check_range(where, op, params)
    return Layer(op=op, r=r, params=tuple(params.items()))


def _pad(values: Sequence[int], depth: int, what: str) -> list[int]:
    values = list(values)
    if len(values) > depth:
        raise ConfigError(f"{what} has {len(values)} entries but the model has {depth} blocks; shorten it")
    return values + [0] * (depth - len(values))


def _check_depth(depth: Any) -> int:
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ConfigError(f"depth must be a positive integer (number of blocks), got {depth!r}")
    return depth


@dataclass(frozen=True)
class Schedule:
    """A per-block token-reduction schedule (DESIGN.md "Contracts").

    ``prop_attn`` adds ``log(size)`` to the attention logits of merged tokens (ToMe eq. 1). ``positions`` says
    how models with relative positions (AutoFormer) locate tokens after a reduction: ``"tracked"`` carries
    each token's (row, col) through every reduction (size-weighted centroid on merge); ``"anchored"`` carries
    them too, but a merged token keeps the position of the token it merged into, so every position stays on
    the patch grid (ToMe's bipartite matching often pairs distant tokens, whose centroid is a position
    neither came from; on the embedded supernet centroids lose 3× the accuracy); ``"index"`` is the naive,
    index-derived behaviour of the original code, kept so the difference can be measured.
    """

    layers: tuple[Layer, ...]  # one entry per block, block 0 first
    prop_attn: bool = True  # proportional attention (additive log-size mask)
    positions: str = "anchored"  # POSITION_MODES
    version: int = SCHEDULE_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ConfigError(
                    f"layer {i} is {layer!r}, not a Layer; build schedules with Schedule.from_list, recipe or "
                    "from_dict"
                )
        if not isinstance(self.prop_attn, bool):  # "false" would switch it on
            raise ConfigError(f"'prop_attn' must be a boolean, got {self.prop_attn!r}")
        if self.positions not in POSITION_MODES:
            raise ConfigError(f"'positions' must be one of {list(POSITION_MODES)}, got {self.positions!r}")
        if self.version != SCHEDULE_VERSION:
            raise ConfigError(
                f"unsupported schedule version {self.version!r}; "
                f"this searcher reads version {SCHEDULE_VERSION}"
            )

    # -- views ---------------------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def tracks_positions(self) -> bool:
        """True when tokens carry their (row, col) through every reduction (``tracked`` or ``anchored``)."""
        return self.positions in TRACKED_POSITION_MODES

    @property
    def rs(self) -> list[int]:
        """``r`` of every block (0 for ops without r)."""
        return [layer.r for layer in self.layers]

    @property
    def is_identity(self) -> bool:
        """True when no block reduces tokens."""
        return all(layer.is_identity for layer in self.layers)

    def capped(self, n_tokens: int, num_prefix: int = 1) -> Schedule:
        """The same computation with each ``r`` cut to what its block removes (:func:`effective_r`), so that two
        spellings of one schedule (r = 30 or 32 where the cap is 25) are one candidate."""
        layers, t = [], n_tokens
        for i, layer in enumerate(self.layers):
            if OPS[layer.op].uses_r:
                layer = dataclasses.replace(layer, r=effective_r(layer.r, t, num_prefix))
            layers.append(layer)
            t = _tokens_out(layer, t, num_prefix, i)
        return self.replace(layers=tuple(layers))

    def check_depth(self, depth: int) -> None:
        """Raise :class:`ConfigError` unless the schedule has exactly ``depth`` entries."""
        if self.depth != depth:
            raise ConfigError(
                f"the schedule has {self.depth} layers but the model has {depth} blocks; "
                f"build the schedule with depth={depth}"
            )

    def replace(self, **changes: Any) -> Schedule:
        """A copy with some fields changed (``prop_attn``, ``positions``, ``layers``)."""
        return dataclasses.replace(self, **changes)

    # -- JSON ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "prop_attn": self.prop_attn,
            "positions": self.positions,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, d: Any, depth: int | None = None) -> Schedule:
        """Parse the JSON form strictly; ``depth`` (when given) must equal the number of layers."""
        if not isinstance(d, Mapping):
            raise ConfigError(
                f"a schedule must be a JSON object with 'version' and 'layers', got {type(d).__name__}"
            )
        allowed = {"version", "prop_attn", "positions", "layers"}
        extra = sorted(set(d) - allowed)
        if extra:
            raise ConfigError(f"schedule has unknown field(s) {extra}; allowed: {sorted(allowed)}")
        for name in ("version", "layers"):
            if name not in d:
                raise ConfigError(
                    f"schedule is missing {name!r}; write e.g. {{'version': 1, 'layers': [...]}}"
                )
        version = d["version"]
        if version != SCHEDULE_VERSION or isinstance(version, bool):
            raise ConfigError(
                f"unsupported schedule version {version!r}; this searcher reads version {SCHEDULE_VERSION}"
            )
        prop_attn = _check_value("schedule", "prop_attn", d.get("prop_attn", True), bool, None)
        positions = _check_value("schedule", "positions", d.get("positions", "anchored"), str, POSITION_MODES)
        layers = d["layers"]
        if not isinstance(layers, Sequence) or isinstance(layers, str | bytes) or not layers:
            raise ConfigError("schedule 'layers' must be a non-empty list with one object per block")
        n = len(layers)
        schedule = cls(
            layers=tuple(_layer_from_dict(layer, i, n) for i, layer in enumerate(layers)),
            prop_attn=bool(prop_attn),
            positions=str(positions),
        )
        if depth is not None:
            schedule.check_depth(depth)
        return schedule

    # -- builders ------------------------------------------------------------------------------------------
    @classmethod
    def none(cls, depth: int, **options: Any) -> Schedule:
        """No reduction anywhere."""
        return cls(layers=tuple(Layer() for _ in range(_check_depth(depth))), **options)

    @classmethod
    def constant(
        cls,
        depth: int,
        r: int,
        op: str = "tome",
        *,
        prop_attn: bool = True,
        positions: str = "anchored",
        **params: Any,
    ) -> Schedule:
        """The same ``op`` removing ``r`` tokens in every block."""
        return cls.from_list(
            [r] * _check_depth(depth), op=op, depth=depth, prop_attn=prop_attn, positions=positions, **params
        )

    @classmethod
    def from_list(
        cls,
        rs: Sequence[int],
        op: str = "tome",
        depth: int | None = None,
        *,
        prop_attn: bool = True,
        positions: str = "anchored",
        **params: Any,
    ) -> Schedule:
        """Per-block ``r``; a list shorter than ``depth`` is padded with 0 (ToMe's ``parse_r``)."""
        if hasattr(rs, "tolist"):  # a numpy array or a tensor
            rs = rs.tolist()
        if isinstance(rs, str | bytes) or not isinstance(rs, Sequence):
            raise ConfigError(f"r must be a list of integers, one per block, got {rs!r}")
        depth = _check_depth(len(rs) if depth is None else depth)
        rs = _pad(rs, depth, "the r list")
        layers = tuple(Layer.make(op, r, layer=i, depth=depth, **params) for i, r in enumerate(rs))
        return cls(layers=layers, prop_attn=prop_attn, positions=positions)

    @classmethod
    def tome_inflection(cls, depth: int, r: int, inflection: float, **options: Any) -> Schedule:
        """ToMe's ``(r, inflection)`` schedule: ``min=int(r(1-infl))``, ``max=2r-min``, linear in between."""
        depth = _check_depth(depth)
        lo = int(r * (1.0 - inflection))
        hi = 2 * r - lo
        step = (hi - lo) / (depth - 1) if depth > 1 else 0.0
        rs = [int(lo + step * i) for i in range(depth)]
        if min(rs) < 0:
            raise ConfigError(
                f"(r, inflection)=({r}, {inflection}) gives a negative r {rs}; use |inflection| <= 1"
            )
        return cls.from_list(rs, "tome", depth, **options)

    @classmethod
    def recipe(
        cls,
        kind: str,
        depth: int,
        r: int | Sequence[int] = 0,
        *,
        prop_attn: bool | None = None,
        positions: str = "anchored",
        n_tokens: int | None = None,
        num_prefix: int = 1,
        **params: Any,
    ) -> Schedule:
        """Expand a reducer *type* into per-block ops (what a study searches over).

        - ``tome``: ``tome`` everywhere.
        - ``tofu``: ``tofu-prune`` in blocks ``< switch``, ``tofu-merge`` from it on; ``switch`` defaults to
          ``depth // 2 + 1`` (the re-implementations prune for ``l <= L//2``).
        - ``pitome``: ``pitome`` with ``margin = 0.75 - 0.75 l/L``; ``keep`` (κ, per layer or one value) with
          ``n_tokens`` gives ``r = floor(T - Tκ)`` over the patch tokens T, as in the official code.
        - ``rapid``: ``rapid-prune`` (``tau``) in blocks ``< switch``, ``rapid-merge`` (``rho``, ``lambda``,
          ``merge``) from it on; ``switch`` defaults to ``round(depth / 3)`` (4 of 12, RAPID Table 3).
        - ``topk``: EViT-style ``topk-prune`` (``fuse`` the dropped tokens into one); ``blocks`` restricts it
          to some blocks (EViT: 3, 6, 9); ``keep`` (κ) with ``n_tokens`` sets ``r`` from the keep rate.
        - ``diffrate``: ``prune_kept`` and ``merge_kept`` lists (prefix tokens included), no ``r``.

        ``prop_attn`` defaults to on, except for ``pitome`` (off, as in the official timm patch).
        """
        depth = _check_depth(depth)
        if hasattr(r, "tolist"):  # a numpy array or scalar, or a tensor
            r = r.tolist()
        if prop_attn is None:
            prop_attn = published_prop_attn(kind)
        opts: dict[str, Any] = {"prop_attn": prop_attn, "positions": positions}
        if kind not in RECIPES:
            raise ConfigError(f"unknown reducer recipe {kind!r}; known recipes: {list(RECIPES)}")
        if kind == "diffrate":
            if r:
                raise ConfigError("the diffrate recipe takes prune_kept/merge_kept lists, not r; remove r")
            return _diffrate_recipe(depth, params, opts)
        keep = params.pop("keep", None)
        blocks: Any = params.pop("blocks", None) if kind == "topk" else None
        if hasattr(blocks, "tolist"):  # a numpy array or a tensor
            blocks = blocks.tolist()
        if blocks is not None and not (
            isinstance(blocks, Sequence) and not isinstance(blocks, str | bytes)
            and all(_as_int(b) is not None for b in blocks)
        ):
            raise ConfigError(f"topk blocks must be a list of block indices such as [3, 6, 9], got {blocks!r}")
        active = set(range(depth)) if blocks is None else {int(b) for b in blocks}
        if any(not 0 <= b < depth for b in active):
            raise ConfigError(f"topk blocks must be block indices in [0, {depth}), got {sorted(active)}")
        if keep is not None:
            if kind not in ("pitome", "topk"):
                raise ConfigError(
                    f"'keep' (a keep rate) applies to the pitome and topk recipes, not {kind!r}"
                )
            if any(r) if isinstance(r, Sequence) else r:
                raise ConfigError("give either r or a keep rate, not both")
            # the keep rate applies in the active blocks only (EViT: 0.7 at blocks 3, 6 and 9)
            kappas = [k if i in active else 1.0 for i, k in enumerate(_per_layer(keep, depth, "keep"))]
            fused = kind == "topk" and params.get("fuse", True) is True  # EViT keeps ceil(κT) + the fused token
            rs = _rs_from_keep(kappas, depth, n_tokens, num_prefix, fused)
        elif isinstance(r, Sequence) and not isinstance(r, str | bytes):
            rs = _pad([_check_value("recipe", "r", v, int, None) for v in r], depth, "the r list")  # type: ignore[misc]
        else:
            rs = [int(_check_value("recipe", "r", r, int, None))] * depth
        if any(v < 0 for v in rs):
            raise ConfigError(f"r must be >= 0 in every block, got {rs}")

        def build(ops: list[str], per_op: dict[str, dict[str, Any]]) -> Schedule:
            layers = tuple(
                Layer.make(op, rv, layer=i, depth=depth, **per_op.get(op, {}))
                for i, (op, rv) in enumerate(zip(ops, rs, strict=True))
            )
            return cls(layers=layers, **opts)

        def take(names: Sequence[str]) -> dict[str, Any]:
            return {n: params.pop(n) for n in names if n in params}

        def no_leftovers() -> None:
            if params:
                raise ConfigError(f"recipe {kind!r} has no parameter(s) {sorted(params)}")

        if kind == "tome":
            no_leftovers()
            return build(["tome"] * depth, {})
        if kind in ("tofu", "rapid"):
            default_switch = depth // 2 + 1 if kind == "tofu" else round(depth / 3)
            switch = _check_value("recipe", "switch", params.pop("switch", default_switch), int, None)
            if not 0 <= int(switch) <= depth:
                raise ConfigError(f"switch must be a block index in [0, {depth}], got {switch=}")
            prune_op, merge_op = f"{kind}-prune", f"{kind}-merge"
            per_op = {prune_op: take(["tau"]), merge_op: take(["rho", "lambda", "merge"])}
            no_leftovers()
            return build([prune_op if i < int(switch) else merge_op for i in range(depth)], per_op)
        if kind == "pitome":
            margins = params.pop("margin", None)
            no_leftovers()
            per_layer = (
                [{}] * depth
                if margins is None
                else [{"margin": m} for m in _per_layer(margins, depth, "margin")]
            )
            return cls(
                layers=tuple(
                    Layer.make("pitome", rv, layer=i, depth=depth, **per_layer[i]) for i, rv in enumerate(rs)
                ),
                **opts,
            )
        # topk
        per_op = {"topk-prune": take(["fuse"])}
        no_leftovers()
        rs = [rv if i in active else 0 for i, rv in enumerate(rs)]
        ops = ["topk-prune" if i in active else "none" for i in range(depth)]
        layers = tuple(
            Layer.make(op, rv, layer=i, depth=depth, **(per_op["topk-prune"] if op != "none" else {}))
            for i, (op, rv) in enumerate(zip(ops, rs, strict=True))
        )
        return cls(layers=layers, **opts)


def _per_layer(value: Any, depth: int, name: str) -> list[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if len(value) != depth:
            raise ConfigError(f"{name} has {len(value)} entries but the model has {depth} blocks")
        return list(value)
    return [value] * depth


def _rs_from_keep(keep: Any, depth: int, n_tokens: int | None, num_prefix: int, fused: bool = False) -> list[int]:
    """``r = floor(T - Tκ)`` block by block over the patch tokens T that remain (PiToMe / EViT keep rates): the
    ``ceil(κT)`` tokens kept; ``fused``: one less, the token the pruned ones are fused into (EViT's ``fuse_token``:
    it keeps ``ceil(κT)`` patch tokens and adds the fused one)."""
    if n_tokens is None:
        raise ConfigError("a keep rate needs n_tokens (tokens entering block 0, prefix included)")
    kappas = _per_layer(keep, depth, "keep")
    rs, t = [], n_tokens
    for kappa in kappas:
        kappa = float(_check_value("recipe", "keep", kappa, float, None))
        if not 0.0 < kappa <= 1.0:
            raise ConfigError(f"keep rates must be in (0, 1], got {kappa}")
        patches = t - num_prefix
        r = math.floor(patches - patches * kappa)
        if fused:
            r = max(0, r - 1)
        rs.append(r)
        t -= effective_r(r, t, num_prefix)
    return rs


def _diffrate_recipe(depth: int, params: dict[str, Any], opts: dict[str, Any]) -> Schedule:
    try:
        prune, merge = params.pop("prune_kept"), params.pop("merge_kept")
    except KeyError as e:
        raise ConfigError(
            "the diffrate recipe needs prune_kept and merge_kept lists, one entry per block"
        ) from e
    sizes = params.pop("sizes", "sum")
    if params:
        raise ConfigError(f"recipe 'diffrate' has no parameter(s) {sorted(params)}")
    prune, merge = _per_layer(prune, depth, "prune_kept"), _per_layer(merge, depth, "merge_kept")
    layers = tuple(
        Layer.make("diffrate", layer=i, depth=depth, prune_kept=p, merge_kept=m, sizes=sizes)
        for i, (p, m) in enumerate(zip(prune, merge, strict=True))
    )
    return Schedule(layers=layers, **opts)


# -- token counts --------------------------------------------------------------------------------------------
def effective_r(r: int, n_tokens: int, num_prefix: int) -> int:
    """ToMe's cap: at most half of the reducible tokens go in one block, ``min(r, (t - protected) // 2)``."""
    return max(0, min(r, (n_tokens - num_prefix) // 2))


def _tokens_out(layer: Layer, t: int, num_prefix: int, index: int) -> int:
    if layer.op == "none":
        return t
    if layer.op == "diffrate":
        kept = min(t, int(layer.get("prune_kept")), int(layer.get("merge_kept")))
        if kept < num_prefix:
            raise ConfigError(
                f"layer {index}: diffrate keeps {kept} tokens but the model has {num_prefix} protected "
                f"prefix tokens; keep at least {num_prefix}"
            )
        return kept
    return t - effective_r(layer.r, t, num_prefix)


def published_prop_attn(kind: str) -> bool:
    """Whether the published recipe of reducer ``kind`` uses proportional attention: on, except PiToMe (off in
    its official timm patch)."""
    return kind != "pitome"


def tokens_per_block(schedule: Schedule | Mapping[str, Any], n_tokens: int, num_prefix: int = 1) -> list[int]:
    """Tokens entering each block, then the final count (``depth + 1`` numbers), prefix tokens included.
    ``schedule``: a :class:`Schedule` or its dict form, as ``apply`` and ``flops`` take.

    Exactly what the patched model does: e.g. constant ToMe r=13 on 197 tokens and 12 blocks ends at 41.
    """
    if not isinstance(schedule, Schedule):
        schedule = Schedule.from_dict(schedule)
    if n_tokens < num_prefix:
        raise ValueError(f"n_tokens must include the prefix tokens, got {n_tokens=}, {num_prefix=}")
    counts = [n_tokens]
    for i, layer in enumerate(schedule.layers):
        counts.append(_tokens_out(layer, counts[-1], num_prefix, i))
    return counts


def check_fits(schedule: Schedule, n_tokens: int, num_prefix: int, pools_patches: bool) -> None:
    """What a model checks when a schedule is applied: the token counts are valid (:func:`tokens_per_block`), and a
    model that averages its patch tokens (``pools_patches``) keeps at least one of them (0/0 would be NaN)."""
    counts = tokens_per_block(schedule, n_tokens, num_prefix)
    if pools_patches and counts[-1] <= num_prefix:
        block = next(i for i, c in enumerate(counts[1:]) if c <= num_prefix)
        raise ConfigError(f"layer {block}: the schedule keeps no patch token, but the model averages its patch "
                          "tokens; keep at least one more token than the prefix")


def tokens_per_stage(schedule: Schedule, n_tokens: int, num_prefix: int = 1) -> list[tuple[int, int]]:
    """Per block, (tokens entering attention, tokens entering the MLP): reduction sits between the two."""
    counts = tokens_per_block(schedule, n_tokens, num_prefix)
    return list(zip(counts[:-1], counts[1:], strict=True))


SCHEDULE_EXAMPLE = '{"version": 1, "layers": [{"op": "tome", "r": 8}, ...]}'  # one layer per block


def read_schedule(path: str | Path, depth: int | None = None) -> Schedule:
    """A schedule JSON file (:meth:`Schedule.to_dict`), or an exported config (its ``schedule``); ``depth`` (when
    given) must equal the number of layers."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"schedule file {p} does not exist; pass the path of a schedule JSON or of an exported config"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read schedule {p}: {e}; write it as {SCHEDULE_EXAMPLE}, one layer per block, "
                          "or pass an exported config") from None
    if isinstance(data, dict) and "schedule" in data and "layers" not in data:  # an exported config
        data = data["schedule"]
    try:
        return Schedule.from_dict(data, depth=depth)
    except ConfigError as e:
        raise ConfigError(f"schedule {p}: {e}") from None
