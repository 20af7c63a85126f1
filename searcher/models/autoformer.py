"""AutoFormer (Chen et al., ICCV'21): a weight-entangled ViT supernet with 2D relative positions, official
semantics and checkpoint layout (microsoft/Cream, ``AutoFormer/model/supernet_transformer.py`` and
``model/module/{multihead,qkv,Linear,layernorm,embedding}_super.py``).

* :class:`AutoFormerSupernet` holds the super weights under the official key names and runs the subnet
  chosen by :meth:`~AutoFormerSupernet.set_sample_config` with sliced weights: embed dim ``E`` slices every
  width, a layer with ``h`` heads uses q/k/v width ``h * head_dim`` (``change_qkv``), its MLP
  ``int(E * mlp_ratio)`` units.
* :func:`extract_subnet` copies the sliced weights into an :class:`AutoFormerSubnet` of plain ``nn.Linear`` /
  ``nn.LayerNorm`` / ``nn.Conv2d`` modules, for deployment and timing.

Both run the same :class:`AutoFormerBlock`: pre-norm attention with relative position tables on keys and
values, then (where a token reducer is patched in) the reduction, then the MLP. Relative distances come from
per-token (row, col) positions kept in a :class:`TokenPositions`, so they stay right when tokens are dropped,
reordered or merged; the official index-derived positions are the special case of an unreduced sequence.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from timm.layers import DropPath, trunc_normal_
from torch import Tensor, nn

from ..errors import ConfigError
from ..patch import Adapter, register_adapter
from ..reduce.state import TokenState
from ..schedule import POSITION_MODES, Schedule, check_fits
from .autoformer_checkpoint import (
    check_state_dict,
    identify_preset,
    infer_supernet_config,
    read_checkpoint,
)
from .autoformer_space import (
    PRESETS,
    SUBNETS,
    SearchSpace,
    SubnetConfig,
    SupernetConfig,
    get_space,
    get_subnet,
)

__all__ = [
    "AutoFormerSupernet", "AutoFormerSubnet", "AutoFormerBlock", "RelativeAttention", "RelativePosition2D",
    "TokenPositions", "SubnetConfig", "SupernetConfig", "SearchSpace", "PRESETS", "SUBNETS", "get_space",
    "get_subnet", "create_supernet", "build_preset_supernet", "extract_subnet", "num_params",
    "grid_positions", "relative_index", "relative_attention", "POSITION_MODES", "load_checkpoint",
    "create_autoformer", "read_checkpoint", "infer_supernet_config", "identify_preset", "ReducedTokens",
    "AutoFormerAdapter",
]

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------
# Relative positions
# ----------------------------------------------------------------------------------------------------
def grid_positions(num_patches: int, device: torch.device | str | None = None) -> Tensor:
    """(row, col) of patch ``i`` as ``RelativePosition2D_super`` derives it: ``w = int(sqrt(M))``,
    ``row = i // w``, ``col = i % w``. Returns (M, 2) float."""
    w = int(num_patches ** 0.5)
    i = torch.arange(num_patches, device=device)
    return torch.stack([i // w, i % w], dim=-1).float()


def relative_index(positions: Tensor, max_relative_position: int) -> Tensor:
    """Rows of the concatenated table ``[T_v; T_h]`` (2R rows, ``R = 2 * max + 2``) that each (query, key)
    pair reads, for one CLS token followed by patch tokens at ``positions`` (B, M, 2) float.

    Distances ``pos_key - pos_query`` are rounded (exact for integer positions), clipped to ``±max`` and
    shifted to ``1 .. 2 max + 1``; row 0 is the CLS entry, as in the official
    ``RelativePosition2D_super.forward``.
    Returns (2, B, M+1, M+1) long: [0] indexes ``T_v``, [1] indexes ``T_h`` (already offset by R).
    """
    m, (B, M, _) = max_relative_position, positions.shape
    rows = 2 * m + 2
    idx = positions.new_empty(2, B, M + 1, M + 1, dtype=torch.long)
    idx[0].fill_(0)  # CLS row and column: entry 0 of T_v ...
    idx[1].fill_(rows)  # ... and of T_h
    for axis in range(2):
        p = positions[..., axis]  # (B, M)
        d = (p[:, None, :] - p[:, :, None]).round_().clamp_(-m, m)  # (B, Mq, Mk): key - query
        idx[axis, :, 1:, 1:] = d.add_(m + 1 + axis * rows)
    return idx


def _grid_index(num_patches: int, max_relative_position: int, device: torch.device) -> Tensor:
    """The relative-table index of the unreduced patch grid, cached per process; computed afresh while a tracer
    (``torch.export``, ``torch.compile``) runs, whose placeholder tensors must not outlive it in the cache."""
    if torch.compiler.is_compiling():
        return relative_index(grid_positions(num_patches, device)[None], max_relative_position)
    return _cached_grid_index(num_patches, max_relative_position, device)


@functools.lru_cache(maxsize=64)
def _cached_grid_index(num_patches: int, max_relative_position: int, device: torch.device) -> Tensor:
    with torch.inference_mode(False), torch.no_grad():  # usable later under autograd
        return relative_index(grid_positions(num_patches, device)[None], max_relative_position)


class TokenPositions:
    """Per-forward token bookkeeping of an AutoFormer: (row, col) of every patch token and the relative-table
    index they imply; :class:`ReducedTokens` adds a token reducer. Created afresh by each forward.

    ``mode="tracked"``: positions follow the tokens through pruning, sorting and merging
    (size-weighted centroids), and relative distances are computed from them; ``"anchored"``: the same, but a
    merged token keeps the position of the token it merged into (the schedules' default). ``mode="index"``: the official
    behaviour, which re-derives positions from sequence indices of whatever length the sequence has (wrong
    after a reduction; kept to measure the difference). Until a reduction changes the tokens both modes use
    the cached grid index.
    """

    def __init__(self, num_patches: int, max_relative_position: int, device: torch.device,
                 mode: str = "tracked") -> None:
        if mode not in POSITION_MODES:
            raise ConfigError(f"unknown positions mode {mode!r}; known: {list(POSITION_MODES)}")
        self.mode = mode
        self.max_relative_position = max_relative_position
        self.device = device
        self.num_patches = num_patches
        self._positions: Tensor | None = None  # (B, M, 2) float once tokens changed; None: the grid
        self._index: Tensor | None = None

    def update(self, num_patches: int, positions: Tensor | None = None) -> None:
        """After a reduction: the new patch count and, when tracked, their positions (B, M', 2)."""
        self.num_patches, self._positions, self._index = num_patches, positions, None

    def index(self) -> Tensor:
        """(2, B or 1, N, N) rows of ``[T_v; T_h]`` for the current sequence (see :func:`relative_index`)."""
        if self._positions is None or self.mode == "index":
            return _grid_index(self.num_patches, self.max_relative_position, self.device)
        if self._index is None:
            self._index = relative_index(self._positions, self.max_relative_position)
        return self._index

    @property
    def sizes(self) -> Tensor | None:
        """(B, N, 1) token sizes; None while all are 1 (always, without a reducer)."""
        return None

    def attn_mask(self) -> Tensor | None:
        """Additive attention logits per key (B, 1, 1, N) (proportional attention), or None."""
        return None

    def reduce(self, x: Tensor, keys: Tensor, attn: Tensor) -> Tensor:
        """Token reduction between attention and MLP of a block; identity without a reducer."""
        return x


class ReducedTokens(TokenPositions):
    """:class:`TokenPositions` driven by a :class:`~searcher.reduce.state.TokenState` (the model-agnostic
    reducer entry point): its log-size mask enters the attention logits, its reductions shorten the sequence,
    and its tracked positions (or, in ``"index"`` mode, the new length alone) re-index the relative tables."""

    def __init__(self, state: TokenState, x: Tensor, max_relative_position: int) -> None:
        super().__init__(x.shape[1] - 1, max_relative_position, x.device, state.schedule.positions)
        self.state = state
        state.begin(x)  # the one per-forward reset of sizes, positions and the block counter

    @property
    def sizes(self) -> Tensor | None:
        return self.state.sizes

    def attn_mask(self) -> Tensor | None:
        return self.state.attn_mask()

    def reduce(self, x: Tensor, keys: Tensor, attn: Tensor) -> Tensor:
        # The CLS row of the attention map the block materialised anyway (relative terms and log sizes in).
        y = self.state.reduce(x, keys, cls_attn=lambda: attn[:, :, 0].float().mean(dim=1))
        if y is not x:  # reduced, reordered or both
            tracked = self.state.positions if self.state.schedule.tracks_positions else None
            self.update(y.shape[1] - 1, None if tracked is None else tracked[:, 1:])
        return y


def relative_attention(q: Tensor, k: Tensor, v: Tensor, scale: float, table_k: Tensor | None,
                       table_v: Tensor | None, index: Tensor | None, attn_bias: Tensor | None = None,
                       attn_drop: float = 0.0, training: bool = False) -> tuple[Tensor, Tensor]:
    """Multi-head attention with 2D relative position embeddings on keys and values
    (official ``AttentionSuper.forward``)::

        a_ij = softmax_j(scale * q_i . (k_j + Tk_v[iv_ij] + Tk_h[ih_ij]) + bias_j)
        o_i  = sum_j a_ij (v_j + Tv_v[iv_ij] + Tv_h[ih_ij])

    The official code materialises the (N, N, d) embeddings; here the table terms go through the 2R table
    rows: ``q @ T^T`` (B, H, N, 2R) gathered at the pair indices, and the attention weights scatter-added into
    2R bins before ``@ T``, so the cost is O(N² + N·R·d) instead of O(N²·d).

    q, k, v: (B, H, N, d); table_k, table_v: (2R, d) = ``[T_v; T_h]``; index: (2, B or 1, N, N) from
    :func:`relative_index`; attn_bias: broadcastable to (B, H, N, N) (proportional attention: log sizes).
    Returns the output (B, H, N, d) and the attention weights (B, H, N, N).
    """
    B, H, N, _ = q.shape
    q = q * scale
    attn = q @ k.transpose(-2, -1)  # (B, H, N, N); in-place adds below: matmul backward keeps only q, k
    iv = ih = None
    if index is not None:
        iv = index[0][:, None].expand(B, H, N, N)
        ih = index[1][:, None].expand(B, H, N, N)
    if table_k is not None:
        assert iv is not None and ih is not None
        qt = q @ table_k.t()  # (B, H, N, 2R)
        attn.add_(qt.gather(-1, iv)).add_(qt.gather(-1, ih))
    if attn_bias is not None:
        attn.add_(attn_bias)
    attn = attn.softmax(dim=-1)
    if attn_drop > 0.0 and training:
        attn = F.dropout(attn, attn_drop, training=True)
    out = attn @ v  # (B, H, N, d)
    if table_v is not None:
        assert iv is not None and ih is not None
        bins = attn.new_zeros(B, H, N, table_v.shape[0])  # (B, H, N, 2R): attention mass per table row
        bins.scatter_add_(-1, iv, attn).scatter_add_(-1, ih, attn)
        out.add_(bins @ table_v)
    return out, attn


# ----------------------------------------------------------------------------------------------------
# Super layers: slice their weights to the sampled dims (official Linear_super / qkv_super / layernorm_super)
# ----------------------------------------------------------------------------------------------------
class LinearSuper(nn.Linear):
    """``LinearSuper``: uses ``weight[:out, :in]`` and ``bias[:out]``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.sample_in, self.sample_out = in_features, out_features

    def set_sample_config(self, sample_in: int, sample_out: int) -> None:
        self.sample_in, self.sample_out = sample_in, sample_out

    def sampled_weights(self) -> tuple[Tensor, Tensor | None]:
        b = self.bias[: self.sample_out] if self.bias is not None else None
        return self.weight[: self.sample_out, : self.sample_in], b

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, *self.sampled_weights())


class QKVSuper(LinearSuper):
    """``qkv_super``: the super weight interleaves q/k/v rows (q = rows 0::3, k = 1::3, v = 2::3) while the
    bias is a contiguous ``[q|k|v]`` prefix. Sampling ``3 * D`` outputs gives weight ``[W[0:3D:3]; W[1:3D:3];
    W[2:3D:3]]`` and bias ``b[:3D]``, so the output is ``[q|k|v]`` with width D each."""

    def sampled_weights(self) -> tuple[Tensor, Tensor | None]:
        w = self.weight[: self.sample_out, : self.sample_in]
        b = self.bias[: self.sample_out] if self.bias is not None else None
        return torch.cat([w[0::3], w[1::3], w[2::3]], dim=0), b


class LayerNormSuper(nn.LayerNorm):
    """``LayerNormSuper``: normalises the first ``sample_dim`` channels with the first affine entries."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.sample_dim = dim

    def set_sample_config(self, sample_dim: int) -> None:
        self.sample_dim = sample_dim

    def forward(self, x: Tensor) -> Tensor:
        d = self.sample_dim
        return F.layer_norm(x, (d,), self.weight[:d], self.bias[:d], self.eps)


class PatchEmbed(nn.Module):
    """Patch embedding: a strided conv, (B, C, H, W) -> (B, M, E)."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size, self.patch_size = img_size, patch_size
        self.grid = img_size // patch_size
        self.num_patches = self.grid * self.grid
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def _check(self, x: Tensor) -> None:
        if x.shape[-2:] != (self.img_size, self.img_size):
            raise ConfigError(f"AutoFormer expects {self.img_size}x{self.img_size} images, got "
                              f"{tuple(x.shape[-2:])}")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, M, E)


class PatchEmbedSuper(PatchEmbed):
    """``PatchembedSuper``: the conv's first ``sample_dim`` filters."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__(img_size, patch_size, in_chans, embed_dim)
        self.sample_dim = embed_dim

    def set_sample_config(self, sample_dim: int) -> None:
        self.sample_dim = sample_dim

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        d = self.sample_dim
        bias = self.proj.bias[:d] if self.proj.bias is not None else None
        x = F.conv2d(x, self.proj.weight[:d], bias, stride=self.patch_size)
        return x.flatten(2).transpose(1, 2)  # (B, M, E)


class RelativePosition2D(nn.Module):
    """``RelativePosition2D_super``'s two tables: vertical and horizontal (2 max + 2, head_dim) embeddings,
    row 0 for the CLS token. With ``change_qkv`` the head dim is fixed, so a supernet uses them whole."""

    def __init__(self, head_dim: int, max_relative_position: int) -> None:
        super().__init__()
        rows = 2 * max_relative_position + 2
        self.max_relative_position = max_relative_position
        self.embeddings_table_v = nn.Parameter(torch.zeros(rows, head_dim))
        self.embeddings_table_h = nn.Parameter(torch.zeros(rows, head_dim))
        trunc_normal_(self.embeddings_table_v, std=0.02)
        trunc_normal_(self.embeddings_table_h, std=0.02)

    def table(self) -> Tensor:
        """``[T_v; T_h]`` (2R, d) as indexed by :func:`relative_index`."""
        return torch.cat([self.embeddings_table_v, self.embeddings_table_h], dim=0)


# ----------------------------------------------------------------------------------------------------
# Attention and block, shared by the supernet and extracted subnets
# ----------------------------------------------------------------------------------------------------
class RelativeAttention(nn.Module):
    """Attention of ``AttentionSuper`` (``change_qkv``, optional relative positions): ``qkv`` maps (B, N, E)
    to ``[q|k|v]`` of width ``num_heads * head_dim`` each, scale ``head_dim ** -0.5``."""

    qkv: nn.Linear
    proj: nn.Linear
    rel_pos_embed_k: RelativePosition2D | None
    rel_pos_embed_v: RelativePosition2D | None

    def __init__(self, qkv: nn.Linear, proj: nn.Linear, num_heads: int, head_dim: int,
                 rel_pos_embed_k: RelativePosition2D | None, rel_pos_embed_v: RelativePosition2D | None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.qkv, self.proj = qkv, proj
        self.rel_pos_embed_k, self.rel_pos_embed_v = rel_pos_embed_k, rel_pos_embed_v
        self.num_heads, self.head_dim = num_heads, head_dim
        self.scale = head_dim ** -0.5
        self.attn_drop, self.proj_drop = attn_drop, proj_drop

    def forward(self, x: Tensor, index: Tensor | None, attn_bias: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, N, E). Returns the output (B, N, E), keys (B, H, N, d) and attention weights
        (B, H, N, N)."""
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, H, N, d)
        table_k = self.rel_pos_embed_k.table() if self.rel_pos_embed_k is not None else None
        table_v = self.rel_pos_embed_v.table() if self.rel_pos_embed_v is not None else None
        out, attn = relative_attention(q, k, v, self.scale, table_k, table_v, index, attn_bias,
                                       self.attn_drop, self.training)
        out = self.proj(out.transpose(1, 2).reshape(B, N, -1))
        if self.proj_drop > 0.0 and self.training:
            out = F.dropout(out, self.proj_drop, training=True)
        return out, k, attn


class AutoFormerBlock(nn.Module):
    """Pre-norm encoder layer (``TransformerEncoderLayer``): ``x + attn(LN(x))``, then
    ``x + fc2(gelu(fc1(LN(x))))``.

    Token reduction, when patched in, runs between the two residual branches through the forward's
    :class:`TokenPositions` (identity when the model is not patched).
    """

    attn_layer_norm: nn.LayerNorm
    attn: RelativeAttention
    ffn_layer_norm: nn.LayerNorm
    fc1: nn.Linear
    fc2: nn.Linear

    def __init__(self, attn_layer_norm: nn.LayerNorm, attn: RelativeAttention, ffn_layer_norm: nn.LayerNorm,
                 fc1: nn.Linear, fc2: nn.Linear, drop_path: float = 0.0) -> None:
        super().__init__()
        self.attn_layer_norm, self.attn, self.ffn_layer_norm = attn_layer_norm, attn, ffn_layer_norm
        self.fc1, self.fc2 = fc1, fc2
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.drop = 0.0  # official ``sample_dropout``: dropout after the MLP activation and output
        self.attn_out_drop = 0.0  # official ``sample_attn_dropout``: dropout on the attention branch

    def forward(self, x: Tensor, tokens: TokenPositions) -> Tensor:
        """x: (B, N, E) -> (B, N', E); N' < N only when a reducer is patched in."""
        index = tokens.index() if self.attn.rel_pos_embed_k is not None else None
        y, k, attn = self.attn(self.attn_layer_norm(x), index, tokens.attn_mask())
        if self.attn_out_drop > 0.0 and self.training:
            y = F.dropout(y, self.attn_out_drop, training=True)
        x = x + self.drop_path(y)
        x = tokens.reduce(x, k, attn)  # between attention and MLP (REDUCERS.md)
        y = F.gelu(self.fc1(self.ffn_layer_norm(x)))
        if self.drop > 0.0 and self.training:
            y = F.dropout(y, self.drop, training=True)
        y = self.fc2(y)
        if self.drop > 0.0 and self.training:
            y = F.dropout(y, self.drop, training=True)
        return x + self.drop_path(y)


# ----------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------
class _AutoFormerBase(nn.Module):
    """What the supernet and an extracted subnet share: embedding, blocks, final norm, pooling, head."""

    num_prefix_tokens = 1
    cls_token: nn.Parameter
    pos_embed: nn.Parameter | None
    norm: nn.Module
    head: nn.Module
    gp: bool
    max_relative_position: int
    grid_size: int  # patches per image side
    _searcher_state: TokenState | None = None  # set by searcher.apply (AutoFormerAdapter)

    def _embed(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _active_blocks(self) -> Sequence[AutoFormerBlock]:
        raise NotImplementedError

    def _embed_dropout(self) -> float:
        return 0.0

    def _features(self, x: Tensor) -> tuple[Tensor, TokenPositions]:
        """Images (B, C, H, W) -> normed tokens (B, N, E) and the token state they ended with."""
        x = self._embed(x)  # (B, M, E)
        B, M, E = x.shape
        x = torch.cat([self.cls_token[..., :E].expand(B, -1, -1), x], dim=1)  # (B, N, E)
        if self.pos_embed is not None:
            x = x + self.pos_embed[..., :E]
        p = self._embed_dropout()
        if p > 0.0 and self.training:
            x = F.dropout(x, p, training=True)
        tokens = self._begin(x)
        for blk in self._active_blocks():
            x = blk(x, tokens)
        return self.norm(x), tokens

    def _begin(self, x: Tensor) -> TokenPositions:
        """The token state of one forward whose first block receives ``x`` (B, N, E): plain relative positions,
        or driven by the reducer :func:`searcher.apply` patched in."""
        state = self._searcher_state
        if state is None:
            return TokenPositions(x.shape[1] - 1, self.max_relative_position, x.device)
        depth = len(self._active_blocks())
        if state.schedule.depth != depth:
            raise ConfigError(f"the token schedule has {state.schedule.depth} layers but this AutoFormer runs "
                              f"{depth} blocks; apply a schedule built for depth {depth}")
        return ReducedTokens(state, x, self.max_relative_position)

    def forward_features(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) -> tokens after the final norm (B, N, E)."""
        return self._features(x)[0]

    def forward_head(self, x: Tensor, pre_logits: bool = False, size: Tensor | None = None) -> Tensor:
        """Pool (``gp``: mean of the patch tokens, weighted by token ``size`` (B, N, 1); by default, with a
        schedule applied, the sizes of this thread's last ``forward_features``, as timm's adapter does; else CLS)
        and classify."""
        if self.gp:
            state = self._searcher_state
            if size is None and state is not None:
                size = state.pooling_sizes(x, self.grid_size**2 + self.num_prefix_tokens)
            patches = x[:, self.num_prefix_tokens:]
            if size is None:
                x = patches.mean(dim=1)
            else:
                s = size[:, self.num_prefix_tokens:].to(patches.dtype)  # (B, M, 1)
                x = (patches * s).sum(dim=1) / s.sum(dim=1)
        else:
            x = x[:, 0]
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        x, tokens = self._features(x)
        return self.forward_head(x, size=tokens.sizes)


class AutoFormerSupernet(_AutoFormerBase):
    """The AutoFormer supernet (official ``Vision_TransformerSuper`` with pre-norm, no ``scale``).

    Arguments are the super dims (:class:`SupernetConfig`); ``head_dim`` is 64 in the official code and
    configurable for small supernets. The state dict has the official key names and layouts, so official
    checkpoints load unchanged. Call :meth:`set_sample_config` to choose the subnet; it starts as the largest.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 head_dim: int = 64, qkv_bias: bool = True, rel_pos: bool = True,
                 max_relative_position: int = 14, gp: bool = True, abs_pos: bool = True,
                 change_qkv: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if not change_qkv:
            raise ConfigError("AutoFormerSupernet supports change_qkv=True only (as every released "
                              "AutoFormer supernet); q/k/v width then follows the sampled heads")
        if img_size % patch_size:
            raise ConfigError(f"AutoFormer img_size must be a multiple of patch_size: {img_size=}, "
                              f"{patch_size=}")
        self.config = SupernetConfig(img_size, patch_size, in_chans, num_classes, embed_dim, depth,
                                     num_heads, mlp_ratio, head_dim, qkv_bias, rel_pos, max_relative_position,
                                     gp, abs_pos, change_qkv)
        self.num_classes, self.embed_dim = num_classes, embed_dim
        self.gp, self.max_relative_position, self.head_dim = gp, max_relative_position, head_dim
        self.drop_rate, self.attn_drop_rate = drop_rate, attn_drop_rate
        self.patch_embed_super = PatchEmbedSuper(img_size, patch_size, in_chans, embed_dim)
        self.grid_size = self.patch_embed_super.grid
        num_patches = self.patch_embed_super.num_patches
        qkv_dim, hidden = num_heads * head_dim, int(embed_dim * mlp_ratio)
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # stochastic depth decay rule
        self.blocks = nn.ModuleList()
        for i in range(depth):
            rel = ([RelativePosition2D(head_dim, max_relative_position) for _ in range(2)] if rel_pos
                   else [None, None])
            attn = RelativeAttention(QKVSuper(embed_dim, 3 * qkv_dim, bias=qkv_bias),
                                     LinearSuper(qkv_dim, embed_dim), num_heads, head_dim, rel[0], rel[1],
                                     attn_drop=attn_drop_rate, proj_drop=drop_rate)
            self.blocks.append(AutoFormerBlock(LayerNormSuper(embed_dim), attn, LayerNormSuper(embed_dim),
                                               LinearSuper(embed_dim, hidden), LinearSuper(hidden, embed_dim),
                                               drop_path=dpr[i]))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim)) if abs_pos else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.norm = LayerNormSuper(embed_dim)
        self.head = LinearSuper(embed_dim, num_classes)
        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        self.apply(_init_weights)
        self.sample_config = SubnetConfig(embed_dim, depth, (mlp_ratio,) * depth, (num_heads,) * depth)
        self.set_sample_config(self.sample_config)

    @classmethod
    def from_config(cls, config: SupernetConfig | dict[str, Any], **kwargs: Any) -> AutoFormerSupernet:
        """Build from a :class:`SupernetConfig` (or its dict); ``kwargs`` add dropout rates."""
        if isinstance(config, dict):
            config = SupernetConfig.from_dict(config)
        return cls(**config.to_dict(), **kwargs)

    def check_subnet(self, cfg: SubnetConfig) -> None:
        """Raise :class:`ConfigError` unless ``cfg`` fits inside this supernet."""
        c = self.config
        problems = []
        if cfg.embed_dim > c.embed_dim:
            problems.append(f"embed_dim {cfg.embed_dim} > {c.embed_dim}")
        if cfg.depth > c.depth:
            problems.append(f"depth {cfg.depth} > {c.depth}")
        if max(cfg.num_heads) > c.num_heads:
            problems.append(f"num_heads {max(cfg.num_heads)} > {c.num_heads}")
        if max(cfg.hidden_dims()) > int(c.embed_dim * c.mlp_ratio):
            problems.append(f"mlp_ratio {max(cfg.mlp_ratio)} makes an MLP wider than "
                            f"{int(c.embed_dim * c.mlp_ratio)}")
        if problems:
            raise ConfigError(f"subnet does not fit the supernet: {', '.join(problems)}")

    def set_sample_config(self, config: SubnetConfig | dict[str, Any]) -> None:
        """Run the subnet ``config`` (a :class:`SubnetConfig` or a dict in our or the official format) from
        now on; the blocks beyond its depth are skipped."""
        cfg = config if isinstance(config, SubnetConfig) else SubnetConfig.from_dict(config)
        self.check_subnet(cfg)
        E, c = cfg.embed_dim, self.config
        self.sample_config = cfg
        self.patch_embed_super.set_sample_config(E)
        for blk, heads, hidden in zip(self._all_blocks(), cfg.num_heads, cfg.hidden_dims(), strict=False):
            qkv_dim = heads * self.head_dim
            cast(LayerNormSuper, blk.attn_layer_norm).set_sample_config(E)
            cast(LayerNormSuper, blk.ffn_layer_norm).set_sample_config(E)
            blk.attn.num_heads = heads
            cast(QKVSuper, blk.attn.qkv).set_sample_config(E, 3 * qkv_dim)
            cast(LinearSuper, blk.attn.proj).set_sample_config(qkv_dim, E)
            cast(LinearSuper, blk.fc1).set_sample_config(E, hidden)
            cast(LinearSuper, blk.fc2).set_sample_config(hidden, E)
            blk.drop = self.drop_rate * E / c.embed_dim  # official calc_dropout
            blk.attn_out_drop = self.attn_drop_rate * E / c.embed_dim
        cast(LayerNormSuper, self.norm).set_sample_config(E)
        cast(LinearSuper, self.head).set_sample_config(E, self.num_classes)

    def _embed(self, x: Tensor) -> Tensor:
        return self.patch_embed_super(x)

    def _embed_dropout(self) -> float:
        return self.drop_rate * self.sample_config.embed_dim / self.config.embed_dim

    def _all_blocks(self) -> list[AutoFormerBlock]:
        return cast(list[AutoFormerBlock], list(self.blocks))

    def _active_blocks(self) -> Sequence[AutoFormerBlock]:
        return self._all_blocks()[: self.sample_config.depth]

    def sampled_num_params(self) -> int:
        """Parameters of the sampled subnet, counted as the official ``get_sampled_params_numel``."""
        return num_params(self.sample_config, self.config)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "rel_pos_embed"}


class AutoFormerSubnet(_AutoFormerBase):
    """A standalone AutoFormer subnet with plain layers (``nn.Linear`` q/k/v in ``[q|k|v]`` order), built by
    :func:`extract_subnet`; the same forward as the supernet with that subnet sampled, without slicing."""

    def __init__(self, config: SubnetConfig, supernet: SupernetConfig) -> None:
        super().__init__()
        E, s = config.embed_dim, supernet
        self.config, self.supernet_config = config, supernet
        self.num_classes, self.embed_dim = s.num_classes, E
        self.gp, self.max_relative_position, self.head_dim = s.gp, s.max_relative_position, s.head_dim
        self.patch_embed = PatchEmbed(s.img_size, s.patch_size, s.in_chans, E)
        self.grid_size = self.patch_embed.grid
        self.blocks = nn.ModuleList()
        for heads, hidden in zip(config.num_heads, config.hidden_dims(), strict=True):
            d = heads * s.head_dim
            rel = ([RelativePosition2D(s.head_dim, s.max_relative_position) for _ in range(2)] if s.rel_pos
                   else [None] * 2)
            attn = RelativeAttention(nn.Linear(E, 3 * d, bias=s.qkv_bias), nn.Linear(d, E), heads, s.head_dim,
                                     rel[0], rel[1])
            self.blocks.append(AutoFormerBlock(nn.LayerNorm(E), attn, nn.LayerNorm(E), nn.Linear(E, hidden),
                                               nn.Linear(hidden, E)))
        num_tokens = self.patch_embed.num_patches + 1
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, E)) if s.abs_pos else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, E))
        self.norm = nn.LayerNorm(E)
        self.head = nn.Linear(E, s.num_classes)

    def _embed(self, x: Tensor) -> Tensor:
        return self.patch_embed(x)

    def _active_blocks(self) -> Sequence[AutoFormerBlock]:
        return cast(list[AutoFormerBlock], list(self.blocks))


def _init_weights(m: nn.Module) -> None:
    """Official ``Vision_TransformerSuper._init_weights``."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def num_params(config: SubnetConfig, supernet: SupernetConfig) -> int:
    """Parameters of a subnet as the official ``get_sampled_params_numel`` counts them: every sliced weight,
    the relative tables at full height, and ``E * (num_patches + 2)`` for the CLS token and position
    embedding."""
    s, E = supernet, config.embed_dim
    m = (s.img_size // s.patch_size) ** 2
    n = E * s.in_chans * s.patch_size ** 2 + E + E * (m + 2)  # patch embed, cls + pos embed
    for heads, hidden in zip(config.num_heads, config.hidden_dims(), strict=True):
        d = heads * s.head_dim
        n += 3 * d * E + (3 * d if s.qkv_bias else 0)  # qkv
        n += (2 * 2 * (2 * s.max_relative_position + 2) * s.head_dim) if s.rel_pos else 0  # rel tables k, v
        n += d * E + E + 4 * E  # proj, two layer norms
        n += E * hidden + hidden + hidden * E + E  # fc1, fc2
    return n + 2 * E + E * s.num_classes + s.num_classes  # final norm, head


def create_supernet(name: str, **kwargs: Any) -> AutoFormerSupernet:
    """A randomly initialised supernet of the preset ``name`` (``autoformer-t|s|b``, ``fashion-autoformer``);
    ``kwargs`` (dropout rates) go to the constructor."""
    return AutoFormerSupernet.from_config(get_space(name).supernet, **kwargs)


build_preset_supernet = create_supernet


def load_checkpoint(path_or_url: str | Path, space: str | SearchSpace | SupernetConfig | None = None
                    ) -> AutoFormerSupernet:
    """An :class:`AutoFormerSupernet` with the weights of an official checkpoint (local path or http(s) URL,
    downloaded once, :func:`~searcher.models.local_checkpoint`), in eval mode with its largest subnet sampled.

    ``space`` (a preset name such as ``"autoformer-s"``, a :class:`SearchSpace` or a :class:`SupernetConfig`)
    says which supernet the file must be; without it the dims are read off the file. Corrupt or truncated
    files, other models' checkpoints, wrong shapes and NaN weights raise :class:`CheckpointError`.
    """
    name = str(path_or_url)
    state, args = read_checkpoint(path_or_url)
    inferred = infer_supernet_config(state, args, name)
    if space is None:
        config, what = inferred, f"the supernet its shapes describe ({inferred})"
    else:
        config = (get_space(space).supernet if isinstance(space, str) else
                  space.supernet if isinstance(space, SearchSpace) else space)
        what = f"the {space if isinstance(space, str) else 'requested'} supernet"
        # what the file says of its training (global pooling, from its args) and its head (a fine-tuned one
        # classifies other classes) are the file's; the backbone's dims must be the preset's
        config = dataclasses.replace(config, num_classes=inferred.num_classes,
                                     gp=inferred.gp if args is not None and hasattr(args, "gp") else config.gp)
        found = identify_preset(dataclasses.replace(inferred, num_classes=1000))
        if found is not None and config != inferred:
            what += f" (the file is the {found} supernet)"
    with torch.device("meta"):  # no random init of weights that are about to be replaced
        model = AutoFormerSupernet.from_config(config)
    check_state_dict(state, model.state_dict(), name, what)
    model.load_state_dict(state, assign=True)
    model.float()  # a half-precision file still runs in float32 on CPU
    log.info("loaded %s as %s", name, identify_preset(config) or config)
    return model.eval()


def create_autoformer(name: str, checkpoint: str | Path | None = None) -> nn.Module:
    """The model names of DESIGN.md: ``autoformer-t|s|b`` (the searched subnet, extracted from the supernet)
    and ``autoformer-t|s|b-supernet`` (the whole supernet, largest subnet sampled). Random weights when no
    ``checkpoint`` is given (enough for costs: :func:`searcher.models.create_model` refuses that for accuracy)."""
    space = get_space(name)
    supernet = create_supernet(space.name) if checkpoint is None else load_checkpoint(checkpoint, space)
    if name.endswith("-supernet") or name not in SUBNETS:
        return supernet.eval()
    return extract_subnet(supernet, get_subnet(name))


@torch.no_grad()
def extract_subnet(supernet: nn.Module, config: SubnetConfig | dict[str, Any] | None = None
                   ) -> AutoFormerSubnet:
    """Copy the weights of subnet ``config`` (default: the sampled one) out of ``supernet`` into a standalone
    :class:`AutoFormerSubnet` (in eval mode); its logits equal the supernet's with ``config`` sampled."""
    if not isinstance(supernet, AutoFormerSupernet):
        raise ConfigError(f"extract_subnet needs an AutoFormerSupernet, got a {type(supernet).__name__}")
    previous = supernet.sample_config
    cfg = config if isinstance(config, SubnetConfig) or config is None else SubnetConfig.from_dict(config)
    cfg = cfg or previous
    supernet.set_sample_config(cfg)
    try:
        sub = AutoFormerSubnet(cfg, supernet.config)
        src = supernet.state_dict()
        for i, blk in enumerate(supernet._active_blocks()):  # the only weight that is not a prefix slice
            src[f"blocks.{i}.attn.qkv.weight"] = cast(QKVSuper, blk.attn.qkv).sampled_weights()[0]
        sliced = {}
        for key, t in sub.state_dict().items():
            w = src[key.replace("patch_embed.", "patch_embed_super.", 1)]
            sliced[key] = w[tuple(slice(0, n) for n in t.shape)]
        sub.load_state_dict(sliced)
        ref = next(supernet.parameters())
        sub.to(device=ref.device, dtype=ref.dtype)
    finally:
        supernet.set_sample_config(previous)
    return sub.eval()


# ----------------------------------------------------------------------------------------------------------
# Token reduction adapter (searcher.apply / searcher.remove)
# ----------------------------------------------------------------------------------------------------------
class AutoFormerAdapter(Adapter):
    """Token reduction in an :class:`AutoFormerSupernet` (its sampled subnet) or an extracted
    :class:`AutoFormerSubnet`. Patching attaches one :class:`~searcher.reduce.state.TokenState` to the model;
    each forward wraps it in a :class:`ReducedTokens` that the blocks call between attention and MLP. The
    schedule's ``positions`` picks anchored (default), tracked or index-derived relative positions; ``gp`` pooling is
    size-weighted. With every ``r = 0`` the patched model computes bit-identical logits."""

    name = "autoformer"

    def matches(self, model: nn.Module) -> bool:
        return isinstance(model, _AutoFormerBase)

    def state(self, model: nn.Module) -> TokenState | None:
        return model._searcher_state if isinstance(model, _AutoFormerBase) else None

    def apply(self, model: nn.Module, schedule: Schedule, *, trace_source: bool = False,
              **options: Any) -> nn.Module:
        if options:
            raise ConfigError(f"unknown option(s) {sorted(options)} for the AutoFormer adapter; known: "
                              "trace_source")
        assert isinstance(model, _AutoFormerBase)
        schedule.check_depth(len(model._active_blocks()))
        grid = model.grid_size
        check_fits(schedule, grid * grid + 1, 1, bool(model.gp))
        model._searcher_state = TokenState(schedule, 1, has_cls=True, trace_source=trace_source,
                                           grid=(grid, grid))
        return model

    def remove(self, model: nn.Module) -> nn.Module:
        if isinstance(model, _AutoFormerBase) and "_searcher_state" in vars(model):
            del model._searcher_state
        return model


ADAPTER = register_adapter(AutoFormerAdapter())
