"""FLOPs of a (token-reduced) Vision Transformer: an analytic count, and fvcore's count to check it against.

Convention (DESIGN.md "Conventions: FLOPs"): fvcore's. One multiply-add is one FLOP; every matmul counts —
attention's q·kᵀ and attn·v (fvcore does not see ``aten::scaled_dot_product_attention``, so
:func:`sdpa_flop_jit` is registered for it), relative-position terms, and the reducers' own similarity and
CLS-attention matmuls; elementwise ops, softmax, norms, gathers, sorts and scatters are free. Per image, at the
model's input resolution, in GFLOPs (1e9).

:func:`count` is the analytic path the search loop uses: no forward pass, tens of microseconds, from a
:class:`ModelShape` (read off a model by :func:`describe`) and the token counts of
:func:`searcher.schedule.tokens_per_stage`. Per block, with ``N`` tokens entering attention, ``M`` leaving the
reducer, residual width ``E``, q/k/v width ``A = heads · d``, head dim ``d`` and ``p`` protected prefix tokens
(multiply-adds)::

    qkv        N·E·3A            (+ N·E·A for timm's gated attention)
    attention  2·N²·A            q·kᵀ and attn·v
    rel_pos    2·N·2R·A          AutoFormer's tables on keys and values as searcher runs them (2R table rows:
                                 q·T_kᵀ and bins·T_v), or 2·N²·A as the official code materialises them
                                 (``rel_pos="dense"``), or 0 (``rel_pos="none"``)
    proj       N·A·E
    reducer    exactly the matmuls of searcher.reduce (see REDUCER_COSTS); nothing when it removes nothing
    mlp        M·(E·fc1 + hidden·E)

plus the patch embedding ``P·E·C·k²`` and the classifier(s) on the pooled features. The attention, its
relative positions and the reducer run at the block's input length, the MLP at the reduced length.

:func:`fvcore_flops` runs fvcore's ``FlopCountAnalysis`` on the real, patched model with only the matmul and
convolution handles, plus :func:`sdpa_flop_jit` and an exact :func:`einsum_flop_jit` (fvcore's own rounds to 4
significant digits); the tests require both paths to agree exactly, part by part.

Published figures (REFERENCE.md) were taken with fvcore's *default* handles, which also count LayerNorms (5
FLOPs per element), and on the official AutoFormer code, which materialises its relative positions:
``count(shape, norms=True, rel_pos="dense")`` reproduces them — DeiT-S 4.61, ViT-B/16 17.58, DeiT-Ti 1.26,
AutoFormer-S 5.17 G. Under this project's convention (no norms, relative positions as run) they read 4.599,
17.564, 1.254 and 4.892 G. The survey's ToMe figures on AutoFormer-S leave relative positions out
(``rel_pos="none"``).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..schedule import Layer, Schedule, effective_r, read_schedule, tokens_per_stage

__all__ = [
    "PARTS",
    "REL_POS_MODES",
    "CLS_ROW_MODES",
    "REDUCER_COSTS",
    "BlockShape",
    "AttnPoolShape",
    "ModelShape",
    "Breakdown",
    "FvcoreCount",
    "describe",
    "autoformer_shape",
    "count",
    "flops",
    "reducer_macs",
    "fvcore_flops",
    "sdpa_flop_jit",
    "einsum_flop_jit",
    "example_input",
    "flops_report",
]

log = logging.getLogger(__name__)

# The parts of a breakdown, in the order of a forward pass.
# "norm" is 0 unless asked for (count(..., norms=True)).
PARTS = ("patch_embed", "qkv", "attention", "rel_pos", "proj", "reducer", "mlp", "head", "norm")
# How relative-position terms are counted: as searcher runs them, as the official AutoFormer code does, or not.
REL_POS_MODES = ("tables", "dense", "none")
# How a block hands reducers its CLS attention row: an O(N·A) einsum of q_cls with the keys (timm, fused
# attention), or read off the attention map the block materialised anyway (AutoFormer): free.
CLS_ROW_MODES = ("einsum", "attn")
GIGA = 1e9


# ------------------------------------------------------------------------------------------------- shapes
@dataclass(frozen=True)
class BlockShape:
    """What one transformer block's FLOPs depend on."""

    embed_dim: int  # E: width of the residual stream
    attn_dim: int  # A = num_heads · head_dim: width of q, k and v
    num_heads: int
    mlp_hidden: int  # input width of the MLP's output layer (fc2)
    mlp_fc1: int = 0  # total output width of the MLP's input layer(s); 0: equal to mlp_hidden (2× for SwiGLU)
    gate: bool = False  # timm's gated attention: an extra Linear(E, A)
    norm_attn: int = 0  # LayerNorm FLOPs per token at the attention's length (norm1, q/k norms, scale norm)
    norm_mlp: int = 0  # LayerNorm FLOPs per token at the MLP's length (norm2, the MLP's own norm)

    def __post_init__(self) -> None:
        if min(self.embed_dim, self.attn_dim, self.num_heads, self.mlp_hidden) < 1 or self.mlp_fc1 < 0:
            raise ConfigError(f"a block needs positive widths and heads, got {self}")
        if self.attn_dim % self.num_heads:
            raise ConfigError(f"attention width {self.attn_dim} is not a multiple of {self.num_heads} heads")

    @property
    def head_dim(self) -> int:
        return self.attn_dim // self.num_heads

    @property
    def fc1(self) -> int:
        return self.mlp_fc1 or self.mlp_hidden


@dataclass(frozen=True)
class AttnPoolShape:
    """timm's attention pooling head (``global_pool='map'``): latent queries attending over the final tokens."""

    token_macs: int  # per pooled token: its k/v projection and the latent queries' q·kᵀ and attn·v
    fixed_macs: int  # the latent query projection, output projection and MLP
    include_prefix: bool = False  # whether prefix tokens are pooled too (``pool_include_prefix``)
    norm_token: int = 0  # LayerNorm FLOPs per pooled token (k norm)
    norm_fixed: int = 0  # LayerNorm FLOPs of the latent queries (q norm, the MLP's pre-norm)


@dataclass(frozen=True)
class ModelShape:
    """Everything the FLOPs of a ViT depend on (hashable: usable as a cache key).

    ``n_tokens = num_patches + num_prefix`` tokens enter block 0. ``head_dims`` lists the classifier Linears
    applied to the pooled features (two for DeiT-distilled, none for a headless model).
    """

    in_chans: int  # image channels
    patch_size: tuple[int, int]  # patch-embedding kernel = stride
    embed_dim: int  # patch-embedding output width
    num_patches: int  # patch tokens at the model's input resolution
    num_prefix: int  # CLS, distillation and register tokens (never reduced)
    blocks: tuple[BlockShape, ...]
    rel_pos: bool = False  # relative position tables on keys and values (AutoFormer)
    rel_pos_rows: int = 0  # rows of the concatenated tables [T_v; T_h]: 2·(2·max_relative_position + 2)
    head_dims: tuple[tuple[int, int], ...] = ()  # (in, out) of each classifier Linear
    attn_pool: AttnPoolShape | None = None
    cls_row: str = "einsum"  # one of CLS_ROW_MODES
    family: str = "timm-vit"  # "timm-vit" | "autoformer" (informational)
    # LayerNorm FLOPs as fvcore's default handle counts them (5 per element, 4 without affine), only counted
    # with ``count(..., norms=True)``: per patch (patch-embed norm), per token entering block 0 (``norm_pre``),
    # per token after the last block (final norm), per image after pooling (``fc_norm``).
    norm_patch: int = 0
    norm_token: int = 0
    norm_final: int = 0
    norm_pooled: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "patch_size", tuple(self.patch_size))
        object.__setattr__(self, "head_dims", tuple(tuple(h) for h in self.head_dims))
        if self.cls_row not in CLS_ROW_MODES:
            raise ConfigError(f"cls_row must be one of {list(CLS_ROW_MODES)}, got {self.cls_row!r}")
        if not self.blocks:
            raise ConfigError("a model shape needs at least one block")
        if self.num_patches < 1 or self.num_prefix < 0:
            raise ConfigError(f"bad token counts: {self.num_patches=}, {self.num_prefix=}")
        if self.rel_pos and self.rel_pos_rows < 1:
            raise ConfigError("relative positions need rel_pos_rows (2·(2·max_relative_position + 2))")

    @property
    def depth(self) -> int:
        return len(self.blocks)

    @property
    def n_tokens(self) -> int:
        """Tokens entering block 0, prefix included."""
        return self.num_patches + self.num_prefix


# ------------------------------------------------------------------------------------------------- reducers
def _cls_row(n: int, blk: BlockShape, shape: ModelShape) -> int:
    """The CLS attention row (B, N): ``einsum('bhd,bhnd->bhn', q_cls, k)`` = N·A, or free (see CLS_ROW_MODES)."""
    return n * blk.attn_dim if shape.cls_row == "einsum" else 0


def _bipartite(n: int, blk: BlockShape) -> int:
    """Cosine scores of ToMe's split over the whole sequence: |A|·|B|·d (``bipartite_scores``)."""
    return ((n + 1) // 2) * (n // 2) * blk.head_dim


def _diffrate(layer: Layer, n: int, blk: BlockShape, shape: ModelShape) -> int:
    mid = min(n, int(layer.get("prune_kept")))
    out = min(mid, int(layer.get("merge_kept")))
    if out == n:  # keeps everything: identity, nothing computed
        return 0
    macs = _cls_row(n, blk, shape)  # ranking by CLS attention
    if out == mid or out == shape.num_prefix:  # pure prune
        return macs
    return macs + (mid - out) * out * blk.embed_dim  # hidden-state cosine of merged vs kept tokens


# op -> multiply-adds of its own matmuls at N tokens with r_eff > 0 tokens removed (as searcher.reduce runs):
ReducerCost = Callable[[int, BlockShape, ModelShape], int]
REDUCER_COSTS: dict[str, ReducerCost] = {
    "tome": lambda n, b, s: _bipartite(n, b),
    "tofu-prune": lambda n, b, s: _bipartite(n, b),
    "tofu-merge": lambda n, b, s: _bipartite(n, b),
    "rapid-prune": lambda n, b, s: _bipartite(n, b),
    "rapid-merge": lambda n, b, s: _bipartite(n, b) + _cls_row(n, b, s),
    "pitome": lambda n, b, s: (n - s.num_prefix) ** 2 * b.head_dim,  # energy graph over the patch tokens
    "topk-prune": lambda n, b, s: _cls_row(n, b, s),
}


def reducer_macs(layer: Layer, n: int, blk: BlockShape, shape: ModelShape) -> int:
    """Multiply-adds of one block's reducer on ``n`` tokens: exactly the matmuls :mod:`searcher.reduce` runs.

    ToMe, ToFu and RAPID's prune score the ToMe split (|A|·|B|·d); RAPID's merge adds the CLS attention row;
    PiToMe builds its energy graph over the patch tokens ((N−p)²·d); top-k needs only the CLS row; DiffRate
    the CLS row, plus the hidden-state cosine of the tokens it merges against those it keeps. A reducer that
    removes nothing (r = 0, or capped to 0 by the 50 % rule) returns before computing anything.
    """
    if layer.is_identity:
        return 0
    if layer.op == "diffrate":
        return _diffrate(layer, n, blk, shape)
    try:
        cost = REDUCER_COSTS[layer.op]
    except KeyError:
        raise ConfigError(f"no FLOPs model for reducer op {layer.op!r}; known: {sorted(REDUCER_COSTS)}") from None
    if effective_r(layer.r, n, shape.num_prefix) == 0:
        return 0
    return cost(n, blk, shape)


# ------------------------------------------------------------------------------------------------- count
@dataclass(frozen=True)
class Breakdown:
    """FLOPs of one model and schedule, by part (GFLOPs per image, keys in :data:`PARTS` order)."""

    parts: dict[str, float]
    tokens: tuple[int, ...] = ()  # tokens entering each block, then the final count (prefix included)
    rel_pos: str = "tables"  # how relative positions were counted (REL_POS_MODES)

    @property
    def total(self) -> float:
        """GFLOPs per image."""
        return sum(self.parts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "parts": dict(self.parts), "tokens": list(self.tokens),
                "rel_pos": self.rel_pos}


def count(shape: ModelShape, schedule: Schedule | Mapping[str, Any] | None = None, *,
          rel_pos: str = "tables", norms: bool = False) -> Breakdown:
    """Analytic FLOPs of ``shape`` run with ``schedule`` (None: no reduction), without a forward pass.

    ``rel_pos`` says how relative-position terms are counted (models without them are unaffected):
    ``"tables"`` (default) as searcher's AutoFormer runs them, so the count equals fvcore's on the real model;
    ``"dense"`` as the official AutoFormer code materialises them (H·N²·d per term, as in the published
    AutoFormer figures); ``"none"`` leaves them out (the survey's and AutoFormer's ``get_complexity``).
    ``norms=True`` adds LayerNorms as fvcore's *default* handles count them (5 FLOPs per element), which the
    published timm figures include (DeiT-Ti 1.26 G); the convention of DESIGN.md leaves them out.
    """
    if rel_pos not in REL_POS_MODES:
        raise ConfigError(f"rel_pos must be one of {list(REL_POS_MODES)}, got {rel_pos!r}")
    if schedule is None:
        sched = Schedule.none(shape.depth)
    elif isinstance(schedule, Schedule):
        sched = schedule
        sched.check_depth(shape.depth)
    else:
        sched = Schedule.from_dict(schedule, depth=shape.depth)
    stages = tokens_per_stage(sched, shape.n_tokens, shape.num_prefix)
    kh, kw = shape.patch_size
    patch = shape.num_patches * shape.embed_dim * shape.in_chans * kh * kw
    qkv = attention = rel = proj = reducer = mlp = norm = 0
    for blk, layer, (n, m) in zip(shape.blocks, sched.layers, stages, strict=True):
        e, a = blk.embed_dim, blk.attn_dim
        qkv += n * e * (4 * a if blk.gate else 3 * a)
        attention += 2 * n * n * a
        if shape.rel_pos and rel_pos != "none":
            rel += 2 * n * (n if rel_pos == "dense" else shape.rel_pos_rows) * a
        proj += n * a * e
        reducer += reducer_macs(layer, n, blk, shape)
        mlp += m * e * (blk.fc1 + blk.mlp_hidden)
        norm += n * blk.norm_attn + m * blk.norm_mlp
    final = stages[-1][1]
    head = sum(i * o for i, o in shape.head_dims)
    norm += (shape.num_patches * shape.norm_patch + shape.n_tokens * shape.norm_token
             + final * shape.norm_final + shape.norm_pooled)
    pool = shape.attn_pool
    if pool is not None:
        pooled = final - (0 if pool.include_prefix else shape.num_prefix)
        head += pooled * pool.token_macs + pool.fixed_macs
        norm += pooled * pool.norm_token + pool.norm_fixed
    macs = {"patch_embed": patch, "qkv": qkv, "attention": attention, "rel_pos": rel, "proj": proj,
            "reducer": reducer, "mlp": mlp, "head": head, "norm": norm if norms else 0}
    return Breakdown({k: macs[k] / GIGA for k in PARTS}, (stages[0][0], *(m for _, m in stages)),
                     rel_pos if shape.rel_pos else "tables")


# ------------------------------------------------------------------------------------------------- describe
def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _ln(module: Any) -> int:
    """FLOPs fvcore's default handle gives a LayerNorm per normalised vector: 5 per element (4 without
    affine); 0 for anything else (Identity, RMSNorm)."""
    if isinstance(module, nn.LayerNorm):
        return math.prod(module.normalized_shape) * (5 if module.weight is not None else 4)
    return 0


def _timm_block(i: int, blk: nn.Module) -> BlockShape:
    attn, mlp = getattr(blk, "attn", None), getattr(blk, "mlp", None)
    qkv, proj = getattr(attn, "qkv", None), getattr(attn, "proj", None)
    if not isinstance(qkv, nn.Linear) or not isinstance(proj, nn.Linear) or mlp is None:
        raise ConfigError(f"block {i} ({type(blk).__name__}) has no attn.qkv/attn.proj Linears and mlp; "
                          "FLOPs are modelled for timm's standard pre-norm Block")
    e, a = qkv.in_features, qkv.out_features // 3
    heads = int(getattr(attn, "num_heads", 0))
    if qkv.out_features != 3 * a or proj.in_features != a or heads < 1:
        raise ConfigError(f"block {i}: unexpected attention shapes (qkv {qkv.out_features}, proj "
                          f"{proj.in_features}, {heads} heads)")
    lins = _linears(mlp)
    convs = [m for m in mlp.modules() if isinstance(m, nn.Conv1d | nn.Conv2d)]
    if len(lins) < 2 or convs or lins[-1].out_features != e or any(m.in_features != e for m in lins[:-1]):
        raise ConfigError(f"block {i}: the MLP ({type(mlp).__name__}) is not Linear layers E→hidden→E")
    fc1 = sum(m.out_features for m in lins[:-1])
    hidden = lins[-1].in_features
    gate = isinstance(getattr(attn, "gate", None), nn.Linear)
    norm_attn = (_ln(getattr(blk, "norm1", None)) + _ln(getattr(attn, "norm", None))
                 + heads * (_ln(getattr(attn, "q_norm", None)) + _ln(getattr(attn, "k_norm", None))))
    norm_mlp = _ln(getattr(blk, "norm2", None)) + _ln(getattr(mlp, "norm", None))
    return BlockShape(e, a, heads, hidden, 0 if fc1 == hidden else fc1, gate, norm_attn, norm_mlp)


def _timm_attn_pool(pool: Any, include_prefix: bool) -> AttnPoolShape:
    q, kv, proj = getattr(pool, "q", None), getattr(pool, "kv", None), getattr(pool, "proj", None)
    if not isinstance(kv, nn.Linear):
        raise ConfigError(f"attention pooling {type(pool).__name__} has no kv Linear; FLOPs are modelled for "
                          "timm's AttentionPoolLatent")
    latent = int(pool.latent_len)
    embed = kv.out_features // 2
    token = kv.in_features * kv.out_features + 2 * latent * embed  # k/v projection, q·kᵀ and attn·v
    fixed = latent * (q.in_features * q.out_features if isinstance(q, nn.Linear) else 0)
    fixed += latent * (proj.in_features * proj.out_features if isinstance(proj, nn.Linear) else 0)
    mlp = getattr(pool, "mlp", None)
    if mlp is not None:
        fixed += latent * sum(m.in_features * m.out_features for m in _linears(mlp))
    heads = int(pool.num_heads)
    norm_token = heads * _ln(getattr(pool, "k_norm", None))
    norm_fixed = latent * (heads * _ln(getattr(pool, "q_norm", None)) + _ln(getattr(pool, "norm", None)))
    return AttnPoolShape(token, fixed, include_prefix, norm_token, norm_fixed)


def _describe_timm(model: Any) -> ModelShape:
    from timm.models.deit import VisionTransformerDistilled

    pe = model.patch_embed
    conv = getattr(pe, "proj", None)
    if (getattr(pe, "backbone", None) is not None or not isinstance(conv, nn.Conv2d) or conv.groups != 1
            or tuple(conv.stride) != tuple(conv.kernel_size)):
        raise ConfigError(f"{type(model).__name__}: the patch embedding is not one strided convolution "
                          "(hybrid ViTs are not modelled)")
    kh, kw = conv.kernel_size
    blocks = tuple(_timm_block(i, b) for i, b in enumerate(model.blocks))
    heads = tuple((m.in_features, m.out_features) for m in (getattr(model, "head", None),
                                                            getattr(model, "head_dist", None))
                  if isinstance(m, nn.Linear))
    pool = getattr(model, "attn_pool", None)
    attn_pool = (_timm_attn_pool(pool, bool(getattr(model, "pool_include_prefix", False)))
                 if pool is not None else None)
    fc_norm = getattr(model, "fc_norm", None)
    if isinstance(model, VisionTransformerDistilled):  # classifies CLS and distillation tokens: no pooling
        attn_pool, fc_norm = None, None
    return ModelShape(in_chans=conv.in_channels, patch_size=(kh, kw), embed_dim=conv.out_channels,
                      num_patches=int(pe.num_patches), num_prefix=int(model.num_prefix_tokens), blocks=blocks,
                      head_dims=heads, attn_pool=attn_pool, cls_row="einsum", family="timm-vit",
                      norm_patch=_ln(getattr(pe, "norm", None)), norm_token=_ln(getattr(model, "norm_pre", None)),
                      norm_final=_ln(getattr(model, "norm", None)),
                      norm_pooled=_ln(fc_norm))


def autoformer_shape(subnet: Any, supernet: Any) -> ModelShape:
    """The shape of AutoFormer subnet ``subnet`` (a ``SubnetConfig`` or its dict) of ``supernet`` (a
    ``SupernetConfig`` or its dict) — no model needed. Relative positions: two tables of
    ``2·max_relative_position + 2`` rows each on keys and on values; the reducers read the CLS row off the
    materialised attention map."""
    from ..models.autoformer_space import SubnetConfig, SupernetConfig

    sub = subnet if isinstance(subnet, SubnetConfig) else SubnetConfig.from_dict(dict(subnet))
    sup = supernet if isinstance(supernet, SupernetConfig) else SupernetConfig.from_dict(dict(supernet))
    e = sub.embed_dim
    ln = 5 * e  # every AutoFormer LayerNorm is affine over the embed dim
    blocks = tuple(BlockShape(e, h * sup.head_dim, h, hidden, norm_attn=ln, norm_mlp=ln)
                   for h, hidden in zip(sub.num_heads, sub.hidden_dims(), strict=True))
    grid = sup.img_size // sup.patch_size
    return ModelShape(in_chans=sup.in_chans, patch_size=(sup.patch_size, sup.patch_size), embed_dim=e,
                      num_patches=grid * grid, num_prefix=1, blocks=blocks, rel_pos=sup.rel_pos,
                      rel_pos_rows=2 * (2 * sup.max_relative_position + 2) if sup.rel_pos else 0,
                      head_dims=((e, sup.num_classes),), cls_row="attn", family="autoformer",
                      norm_final=ln)


def describe(model: nn.Module, arch: Any = None) -> ModelShape:
    """The :class:`ModelShape` of a timm ``VisionTransformer`` (any variant: distilled, registers, no class
    token, avg or attention pooling, gated MLPs), an AutoFormer supernet running ``arch`` (a ``SubnetConfig``
    or its dict, ours or the official format; default: its sampled subnet) or an extracted AutoFormer subnet.
    Patched or not: the shape does not depend on the schedule."""
    from timm.models.vision_transformer import VisionTransformer

    from ..models.autoformer import AutoFormerSubnet, AutoFormerSupernet, SubnetConfig

    if isinstance(model, VisionTransformer):
        if arch is not None:
            raise ConfigError("arch selects an AutoFormer subnet; a timm ViT takes none")
        return _describe_timm(model)
    if isinstance(model, AutoFormerSupernet):
        cfg = model.sample_config if arch is None else (
            arch if isinstance(arch, SubnetConfig) else SubnetConfig.from_dict(dict(arch)))
        model.check_subnet(cfg)
        return autoformer_shape(cfg, model.config)
    if isinstance(model, AutoFormerSubnet):
        if arch is not None:
            cfg = arch if isinstance(arch, SubnetConfig) else SubnetConfig.from_dict(dict(arch))
            if cfg != model.config:
                raise ConfigError("arch differs from the extracted subnet's own architecture; leave arch out")
        return autoformer_shape(model.config, model.supernet_config)
    raise ConfigError(f"no FLOPs model for a {type(model).__module__}.{type(model).__name__}; expected a timm "
                      "VisionTransformer or an AutoFormer supernet/subnet")


def _patched_schedule(model: nn.Module) -> Schedule | None:
    from ..patch import find_adapter

    try:
        state = find_adapter(model).state(model)
    except ConfigError:
        return None
    return None if state is None else state.schedule


def flops(model: nn.Module, schedule: Schedule | Mapping[str, Any] | None = None, arch: Any = None, *,
          rel_pos: str = "tables", img_size: int | tuple[int, int] | None = None) -> float:
    """Analytic GFLOPs per image of ``model`` with ``schedule`` (fvcore convention, no forward pass).

    ``schedule`` None: the schedule the model is patched with, or no reduction. ``arch``: the AutoFormer subnet
    (supernets only). ``rel_pos``: see :func:`count`. ``img_size``: for a timm model built with
    ``dynamic_img_size=True``, the input it runs at (default: the size it was built for).
    """
    if schedule is None:
        schedule = _patched_schedule(model)
    shape = describe(model, arch)
    if img_size is not None:
        pe = getattr(model, "patch_embed", None)
        if not getattr(model, "dynamic_img_size", False) or pe is None:
            raise ConfigError("img_size applies to a timm ViT built with dynamic_img_size=True; this model runs "
                              "only at the size it was built for")
        from timm.layers import to_2tuple

        (h, w), (ph, pw) = to_2tuple(img_size), to_2tuple(pe.patch_size)
        if getattr(pe, "dynamic_img_pad", False):  # padded up to whole patches, as the model does
            h, w = -(-h // ph) * ph, -(-w // pw) * pw
        elif h % ph or w % pw:  # timm's patch embedding refuses it
            raise ConfigError(f"img_size {h}x{w} is not a multiple of the patch size {ph}x{pw}: the model runs only "
                              "at multiples of it (or any size with dynamic_img_pad=True)")
        shape = replace(shape, num_patches=(h // ph) * (w // pw))
    return count(shape, schedule, rel_pos=rel_pos).total


# ------------------------------------------------------------------------------------------------- fvcore
def sdpa_flop_jit(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention``: B·H·Nq·Nk·(d_qk + d_v) multiply-adds
    (q·kᵀ and attn·v; the mask, scale and softmax are elementwise and free)."""
    from fvcore.nn.jit_handles import get_shape

    q, k, v = (get_shape(x) for x in inputs[:3])
    return math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def einsum_flop_jit(inputs: list[Any], outputs: list[Any]) -> float:
    """fvcore handle for ``aten::einsum``, exact for two operands: the product of the sizes of all indices
    (each output element sums over the contracted ones). fvcore's own handle parses numpy's
    ``einsum_path`` report, printed to 4 significant digits, so it is off by up to 0.05 % per op; it is kept
    for other equations."""
    from fvcore.nn import jit_handles as jh

    equation = str(inputs[0].toIValue()).replace(" ", "")
    shapes = [jh.get_shape(v) for v in inputs[1].node().inputs()]
    lhs = equation.split("->")[0].split(",")
    if len(lhs) != 2 or "." in equation or any(len(t) != len(sh) for t, sh in zip(lhs, shapes, strict=True)):
        return jh.einsum_flop_jit(inputs, outputs)
    sizes = {c: n for term, sh in zip(lhs, shapes, strict=True) for c, n in zip(term, sh, strict=True)}
    return float(math.prod(sizes.values()))


def _handles(norms: bool = False) -> dict[str, Any]:
    from fvcore.nn import jit_handles as jh

    # Matmuls and convolutions only: fvcore's defaults also count norms (kept with ``norms``) and a few
    # elementwise ops, which the convention leaves out.
    handles = {"aten::addmm": jh.addmm_flop_jit, "aten::bmm": jh.bmm_flop_jit, "aten::mm": jh.matmul_flop_jit,
               "aten::matmul": jh.matmul_flop_jit, "aten::linear": jh.linear_flop_jit,
               "aten::einsum": einsum_flop_jit, "aten::_convolution": jh.conv_flop_jit,
               "aten::scaled_dot_product_attention": sdpa_flop_jit}
    if norms:
        handles["aten::layer_norm"] = jh.norm_flop_counter(2)
    return handles


@dataclass(frozen=True)
class FvcoreCount:
    """fvcore's count of the real model (GFLOPs per image), grouped by module.

    fvcore attributes ops to modules, so attention, relative positions and reducers (all computed inside a
    block, outside its Linear layers) fall into one group, ``attention_reducer``; compare it with the
    analytic ``attention + rel_pos + reducer``. ``by_operator`` splits the whole model by op
    (``scaled_dot_product_attention`` is timm's fused attention).
    """

    parts: dict[str, float]  # patch_embed, qkv, proj, mlp, head, attention_reducer, norm, other
    by_operator: dict[str, float] = field(default_factory=dict)
    unsupported: dict[str, int] = field(default_factory=dict)  # ops fvcore skipped (free by convention)

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "parts": dict(self.parts), "by_operator": dict(self.by_operator)}


def example_input(model: nn.Module, batch: int = 1) -> torch.Tensor:
    """A random image batch at the model's input resolution (timm ``pretrained_cfg`` or patch grid;
    AutoFormer's config)."""
    config = getattr(model, "supernet_config", None) or getattr(model, "config", None)
    if config is not None and hasattr(config, "img_size") and hasattr(config, "in_chans"):
        shape: tuple[int, ...] = (config.in_chans, config.img_size, config.img_size)
    else:
        pe = getattr(model, "patch_embed", None)
        conv = getattr(pe, "proj", None)
        if pe is None or not isinstance(conv, nn.Conv2d):
            raise ConfigError(f"cannot tell the input size of a {type(model).__name__}; pass input=")
        shape = (conv.in_channels, *tuple(pe.img_size))
    ref = next(model.parameters(), None)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=gen)
    return x if ref is None else x.to(device=ref.device, dtype=ref.dtype)


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """The block with ``models`` in eval mode; each is put back in the mode it had (training or not)."""
    training = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(models, training, strict=True):
            m.train(mode)


def _groups(names: list[str]) -> dict[str, list[str]]:
    """Module names of each fvcore group (every name counted once: none is an ancestor of another)."""
    groups: dict[str, list[str]] = {k: [] for k in ("patch_embed", "qkv", "proj", "mlp", "head")}
    for name in names:
        parts = name.split(".")
        if name in ("patch_embed", "patch_embed_super"):
            groups["patch_embed"].append(name)
        elif name in ("head", "head_dist", "attn_pool"):
            groups["head"].append(name)
        elif len(parts) == 4 and parts[0] == "blocks" and parts[2] == "attn" and parts[3] in ("qkv", "gate"):
            groups["qkv"].append(name)
        elif len(parts) == 4 and parts[0] == "blocks" and parts[2] == "attn" and parts[3] == "proj":
            groups["proj"].append(name)
        elif len(parts) == 3 and parts[0] == "blocks" and parts[2] in ("mlp", "fc1", "fc2"):
            groups["mlp"].append(name)
    return groups


def fvcore_flops(model: nn.Module, schedule: Schedule | Mapping[str, Any] | None = None, arch: Any = None,
                 input: torch.Tensor | None = None, *, norms: bool = False) -> FvcoreCount:
    """fvcore's ``FlopCountAnalysis`` of the real ``model`` patched with ``schedule`` (None: as it is),
    running AutoFormer subnet ``arch`` (supernets only), on ``input`` (default: one random image at the
    model's resolution). GFLOPs per image, grouped as :class:`FvcoreCount` says.

    Handles: fvcore's for matmuls, linears, einsum and convolutions, :func:`sdpa_flop_jit` for fused attention
    and, with ``norms=True``, fvcore's LayerNorm handle (its default; reported as the part ``norm``). The
    reducers introduce no other op with multiply-adds (their scores are ``matmul``, the CLS row ``einsum``).
    The caller's model is not changed: a schedule or arch is applied to a copy.
    """
    with warnings.catch_warnings():  # fvcore.nn scripts its focal loss at import: torch deprecates jit.script
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        from fvcore.nn import FlopCountAnalysis

    from ..models.autoformer import AutoFormerSupernet
    from ..patch import apply

    if schedule is not None or arch is not None:
        model = copy.deepcopy(model)
        if arch is not None:
            if not isinstance(model, AutoFormerSupernet):
                raise ConfigError("arch selects an AutoFormer subnet; only a supernet takes one")
            model.set_sample_config(arch)
        if schedule is not None:
            apply(model, schedule)
    x = example_input(model) if input is None else input
    scale = 1.0 / (x.shape[0] * GIGA)  # per image, in GFLOPs
    with eval_mode(model), torch.no_grad():
        fa = FlopCountAnalysis(model, x)
        fa.clear_op_handles().set_op_handle(**_handles(norms))
        fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        by_module = fa.by_module_and_operator()
        unsupported = fa.unsupported_ops()

    def own(name: str) -> float:  # a module's count without its LayerNorms
        ops = by_module.get(name, {})
        return (sum(ops.values()) - ops.get("layer_norm", 0)) * scale

    groups = _groups(list(by_module))
    parts = {g: sum(own(n) for n in names) for g, names in groups.items()}
    parts["attention_reducer"] = own("blocks") - parts["qkv"] - parts["proj"] - parts["mlp"]
    parts["norm"] = by_module[""].get("layer_norm", 0) * scale
    other = own("") - sum(v for k, v in parts.items() if k != "norm")
    parts["other"] = other if abs(other) > 1e-9 * own("") else 0.0  # float noise of the subtraction
    by_op = {k: v * scale for k, v in by_module[""].items()}
    return FvcoreCount(parts, by_op, dict(unsupported))


# ------------------------------------------------------------------------------------------------- report
def _config_model(path: str | Path) -> dict[str, Any]:
    """The model an exported config names (``name``, timm ``kwargs``, AutoFormer ``arch``), the config checked as
    ``evaluate`` checks it (version, fields); {} for a plain schedule JSON. A file that cannot be read is the
    error :func:`read_schedule` gives."""
    from ..deploy import read_config
    from ..schedule import read_schedule

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        read_schedule(path)  # raises, saying why
        raise
    if not isinstance(data, dict) or "layers" in data or not isinstance(data.get("model"), dict):
        return {}  # a schedule (or {"schedule": …} without a model)
    config = read_config(path)
    return {"name": config["model"]["name"], "kwargs": config["model"].get("kwargs") or {}, "arch": config.get("arch")}


def _num_params(model: nn.Module) -> int:
    """Parameters of the network that runs: AutoFormer's official count of the sampled/extracted subnet."""
    from ..models.autoformer import AutoFormerSubnet, AutoFormerSupernet, num_params

    if isinstance(model, AutoFormerSupernet):
        return model.sampled_num_params()
    if isinstance(model, AutoFormerSubnet):
        return num_params(model.config, model.supernet_config)
    return sum(p.numel() for p in model.parameters())


def flops_report(model_name: str | None, schedule_path: str | Path | None = None,
                 checkpoint: str | None = None) -> dict[str, Any]:
    """What ``searcher flops --model M [--schedule FILE] --json`` prints (DESIGN.md "Contracts"):
    ``{"gflops", "fvcore_gflops", "params", "breakdown"}`` (DESIGN.md's convention; the breakdown in GFLOPs by
    part) plus ``tokens`` (entering each block, then final), ``fvcore_breakdown`` (fvcore's module groups) and
    ``conventions``: the total under the other counting conventions — ``published`` (fvcore's default handles
    on the official code: LayerNorms counted, relative positions materialised; what the papers report),
    and for models with relative positions ``rel_pos_dense`` and ``rel_pos_none`` (see :func:`count`).

    ``model_name``: a timm name, an embedded model or ``autoformer-t|s|b[-supernet]`` (random weights unless
    ``checkpoint``: FLOPs do not depend on them); None: the exported config's. ``schedule_path``: a schedule
    JSON, or an exported config: its model arguments (timm ``kwargs``) and AutoFormer subnet (``arch``) are
    counted too. Errors a user can cause raise :class:`~searcher.errors.SearcherError`."""
    from ..models import create_model
    from ..models.autoformer import AutoFormerSupernet, extract_subnet

    config = _config_model(schedule_path) if schedule_path is not None else {}
    if model_name is None:
        if not config.get("name"):
            raise ConfigError("give --model NAME, or an exported config (which names its model) as --schedule")
        model_name = str(config["name"])
    elif config.get("name") and config["name"] != model_name:
        raise ConfigError(f"{schedule_path} is a config of {config['name']}, not {model_name}; "
                          f"pass --model {config['name']} or leave --model out")
    model = create_model(model_name, weights=False, checkpoint=checkpoint, **config.get("kwargs", {}))
    if config.get("arch") and isinstance(model, AutoFormerSupernet):  # the config's subnet, not the supernet
        model = extract_subnet(model, config["arch"])
    shape = describe(model)
    schedule = read_schedule(schedule_path, shape.depth) if schedule_path is not None else None
    analytic = count(shape, schedule)
    fv = fvcore_flops(model, schedule)
    params = _num_params(model)
    report: dict[str, Any] = {
        "model": model_name,
        "gflops": analytic.total,
        "fvcore_gflops": fv.total,
        "params": params,
        "breakdown": dict(analytic.parts),
        "tokens": list(analytic.tokens),
        "fvcore_breakdown": dict(fv.parts),
    }
    conventions = {"published": count(shape, schedule, rel_pos="dense", norms=True).total}
    if shape.rel_pos:
        conventions["rel_pos_dense"] = count(shape, schedule, rel_pos="dense").total
        conventions["rel_pos_none"] = count(shape, schedule, rel_pos="none").total
    report["conventions"] = conventions
    return report
