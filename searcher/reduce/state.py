"""Per-forward token state and the one entry point a model's blocks call (model-agnostic).

Contract for model adapters (timm ViT, AutoFormer supernet, …)
---------------------------------------------------------------
Create one :class:`TokenState` per patched model (``TokenState(schedule, num_prefix=..., has_cls=...)``) and
share it between the model and its blocks. In every forward pass:

1. ``state.begin(x)`` — once, before the first block, with the tokens entering it (B, N, C), prefix first.
   This is the only reset: sizes become "all ones" (``None``), positions the patch grid, the source map the
   identity, and the block counter 0.
2. In each executed block, in order, with ``mask = state.attn_mask(q.dtype)``:

   - attention: add ``mask`` (B, 1, 1, N) to the attention logits — pass it as ``attn_mask`` to
     ``F.scaled_dot_product_attention``. It is ``None`` while all sizes are 1 or ``prop_attn`` is off, so the
     fastest fused kernel stays usable;
   - ``x = x + attn(...)`` as usual, then
     ``x = state.reduce(x, keys, cls_attn=lambda: cls_attention(q[:, :, 0], keys, scale, mask))``
     where ``keys`` (B, H, N, d) are the block's attention keys (after any k-norm) and ``cls_attn`` returns
     the CLS attention row (B, N) averaged over heads. :func:`~searcher.reduce.matching.cls_attention`
     computes it in O(N·d) from ``q_cls`` (B, H, d); a model whose logits carry extra terms (AutoFormer's
     relative positions) passes its own callable. It is only called when the block's op needs it
     (``state.needs_cls_attention``);
   - the MLP on the returned (possibly shorter) ``x``.

   ``reduce`` must be called exactly once per executed block (it advances the block counter); the schedule
   must have one entry per executed block.
3. After the blocks: ``state.sizes`` (B, N, 1) or ``None`` weights pooling over tokens (size-weighted mean);
   ``state.source`` (B, N, N0) is the source map when ``trace_source`` is on.

Positions: ``state.token_positions()`` (B, N, 2) float (row, col) per token, for models with relative
positions. With the schedule's ``positions="tracked"`` these are carried through every reduction (gathered on
prune, size-weighted centroid on merge; on by default, ``track_positions=False`` turns it off); with
``"anchored"`` likewise, except that a merged token keeps the position of the token it merged into; with
``"index"`` they are derived from the current index as the original AutoFormer code does
(``w = int(sqrt(N - prefix))``, ``row = i // w``, ``col = i % w``). Rows of prefix tokens are (0, 0) and
meaningless.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor

from ..errors import ConfigError
from ..schedule import Layer, Schedule
from .base import ReduceInput
from .matching import cls_attention
from .merge import apply_plan
from .registry import NEEDS_CLS_ATTENTION, get_reducer

__all__ = ["TokenState", "index_positions", "grid_positions"]

logger = logging.getLogger(__name__)

ClsAttn = Callable[[], Tensor] | Tensor | None


def grid_positions(batch: int, num_prefix: int, grid: tuple[int, int], device: Any = None) -> Tensor:
    """(row, col) of a ``grid`` of patch tokens after ``num_prefix`` prefix tokens → (B, prefix + H·W, 2)."""
    h, w = grid
    i = torch.arange(h * w, device=device)
    rc = torch.stack([i // w, i % w], dim=-1).float()  # (H·W, 2)
    rc = torch.cat([rc.new_zeros(num_prefix, 2), rc], dim=0)
    return rc.unsqueeze(0).expand(batch, -1, -1)


def index_positions(batch: int, n_tokens: int, num_prefix: int, device: Any = None) -> Tensor:
    """Naive positions from the current index, as AutoFormer derives them: ``w = int(sqrt(N - prefix))``."""
    n = n_tokens - num_prefix
    w = max(1, int(math.sqrt(n)))
    i = torch.arange(n, device=device)
    rc = torch.stack([i // w, i % w], dim=-1).float()
    rc = torch.cat([rc.new_zeros(num_prefix, 2), rc], dim=0)
    return rc.unsqueeze(0).expand(batch, -1, -1)


T = TypeVar("T")


class _Forward(threading.local):
    """The per-forward fields of a :class:`TokenState`, one set per thread: forwards of one patched model in
    several threads at once (a thread pool serving it, ``nn.DataParallel``'s replicas, which share the state) each
    see their own tokens."""

    def __init__(self) -> None:
        self.sizes: Tensor | None = None
        self.positions: Tensor | None = None
        self.source: Tensor | None = None
        self.block = 0
        self.n_tokens = 0
        self.batch = 0
        self.device: torch.device | None = None
        self.history: list[int] = []


class _PerForward(Generic[T]):
    """An attribute of the calling thread's :class:`_Forward`."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: TokenState, objtype: type | None = None) -> T:
        return getattr(obj._forward, self.name)  # type: ignore[no-any-return]

    def __set__(self, obj: TokenState, value: T) -> None:
        setattr(obj._forward, self.name, value)


class TokenState:
    """Token sizes, positions and sources of one forward pass (of the calling thread), plus the schedule and the
    block counter. Pickling or copying keeps the configuration, not the last forward's tensors."""

    sizes = _PerForward[Tensor | None]()  # (B, N, 1) float32, None while all ones
    positions = _PerForward[Tensor | None]()  # (B, N, 2) float32 (row, col), when track_positions
    source = _PerForward[Tensor | None]()  # (B, N, N0) float32 0/1, when trace_source
    block = _PerForward[int]()  # index of the next block to call reduce()
    n_tokens = _PerForward[int]()  # current sequence length
    batch = _PerForward[int]()  # batch size of the current forward
    device = _PerForward[torch.device | None]()  # device of the current forward
    history = _PerForward[list[int]]()  # tokens after each block of the last forward

    def __init__(
        self,
        schedule: Schedule,
        num_prefix: int = 1,
        *,
        has_cls: bool = True,
        trace_source: bool = False,
        track_positions: bool | None = None,
        grid: tuple[int, int] | None = None,
    ) -> None:
        if num_prefix < 0:
            raise ValueError(f"num_prefix must be >= 0, got {num_prefix=}")
        self.schedule = schedule  # one entry per block
        self.num_prefix = num_prefix  # protected tokens at the front (CLS, distillation, registers)
        self.has_cls = has_cls and num_prefix > 0  # token 0 is a class token (CLS-attention ops need it)
        self.trace_source = trace_source  # keep the (B, N, N0) source map
        # carry (row, col) through reductions; by default when the schedule asks for tracked positions
        self.track_positions = schedule.tracks_positions if track_positions is None else track_positions
        self.grid = grid  # (H, W) patch grid; square when None
        self._forward = _Forward()

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "_forward"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._forward = _Forward()

    def pooling_sizes(self, x: Tensor, unreduced: int) -> Tensor | None:
        """The sizes (B, N, 1) that weight a pooling of ``x`` (B, N, C), the tokens of this thread's last forward;
        None while all ones. Tokens of another forward (another batch or length), or reduced tokens in a thread
        that has run no forward since the schedule was applied, are an error: their sizes are unknown here, and
        an unweighted mean would be silently wrong. ``unreduced``: the model's token count before reduction."""
        if self.device is None:
            if x.shape[1] == unreduced:
                return None
            raise ConfigError(
                f"forward_head weights the tokens by their sizes from the last forward_features in this thread, "
                f"and this thread has run none since the schedule was applied ({x.shape[1]} tokens of {unreduced}); "
                "call forward_features in the same thread first, or call the model"
            )
        if (self.batch, self.n_tokens) != tuple(x.shape[:2]):
            raise ConfigError(
                f"forward_head weights the tokens by the sizes of the last forward_features in this thread "
                f"({self.batch} images of {self.n_tokens} tokens), not of these ({x.shape[0]} of {x.shape[1]}); "
                "pass it the output of that forward_features, or call the model"
            )
        return self.sizes

    # -- per-forward reset ----------------------------------------------------------------------------------
    def begin(self, x: Tensor) -> None:
        """Reset for a new forward pass whose first block receives ``x`` (B, N, C)."""
        batch, n = x.shape[0], x.shape[1]
        if n < self.num_prefix:
            raise ValueError(f"the sequence has {n} tokens but {self.num_prefix=} are protected")
        self.sizes = None
        self.block = 0
        self.n_tokens, self.batch, self.device = n, batch, x.device
        self.history = []
        self.positions = None
        if self.track_positions:
            grid = self.grid
            if grid is None or grid[0] * grid[1] != n - self.num_prefix:
                side = int(math.sqrt(n - self.num_prefix))
                grid = (side, (n - self.num_prefix) // max(side, 1))
                if grid[0] * grid[1] != n - self.num_prefix:
                    grid = (1, n - self.num_prefix)
            self.positions = grid_positions(batch, self.num_prefix, grid, x.device)
        self.source = None
        if self.trace_source:
            self.source = torch.eye(n, device=x.device).unsqueeze(0).expand(batch, -1, -1)

    # -- what a block reads ---------------------------------------------------------------------------------
    @property
    def layer(self) -> Layer:
        """The schedule entry of the next block."""
        if self.block >= self.schedule.depth:
            raise ConfigError(
                f"the schedule has {self.schedule.depth} layers but the model runs more blocks; "
                "build the schedule with the model's depth"
            )
        return self.schedule.layers[self.block]

    @property
    def needs_cls_attention(self) -> bool:
        """Whether the next block's op reads the CLS attention row."""
        layer = self.layer
        return not layer.is_identity and layer.op in NEEDS_CLS_ATTENTION

    def attn_mask(self, dtype: torch.dtype | None = None) -> Tensor | None:
        """Proportional attention (ToMe eq. 1): ``log s`` per key as an additive (B, 1, 1, N) mask, or
        None."""
        if self.sizes is None or not self.schedule.prop_attn:
            return None
        mask = self.sizes.log()[:, None, None, :, 0]  # (B, 1, 1, N)
        return mask if dtype is None else mask.to(dtype)

    def cls_attention(self, q_cls: Tensor, keys: Tensor, scale: float) -> Tensor:
        """CLS attention row (B, N) of plain softmax attention with this state's log-size mask."""
        return cls_attention(q_cls, keys, scale, self.attn_mask())

    def token_positions(self) -> Tensor:
        """(B, N, 2) float (row, col) of the current tokens: tracked or index-derived (see module
        docstring)."""
        if self.schedule.tracks_positions:
            if self.positions is None:
                raise RuntimeError("positions are not tracked; create the TokenState with track_positions=True")
            return self.positions
        return index_positions(self.batch, self.n_tokens, self.num_prefix, self.device)

    # -- the entry point ------------------------------------------------------------------------------------
    def reduce(self, x: Tensor, keys: Tensor, cls_attn: ClsAttn = None) -> Tensor:
        """Apply this block's op to ``x`` (B, N, C) between attention and MLP; returns the reduced ``x``.

        ``keys``: the block's attention keys (B, H, N, d) (or already head-averaged (B, N, d)); ``cls_attn``:
        a callable returning the CLS attention row (B, N) averaged over heads (or that tensor).
        """
        layer = self.layer
        self.block += 1
        if x.shape[1] != self.n_tokens:
            raise RuntimeError(
                f"block {self.block - 1} got {x.shape[1]} tokens but the state expects {self.n_tokens}; "
                "call state.begin(x) before the first block"
            )
        if layer.is_identity:
            self.history.append(self.n_tokens)
            return x
        reducer = get_reducer(layer.op)
        if layer.op in NEEDS_CLS_ATTENTION and not self.has_cls:
            raise ConfigError(
                f"op {layer.op!r} ranks tokens by CLS attention but this model has no class token; "
                "use tome, tofu, pitome or rapid-prune"
            )

        def row() -> Tensor:
            a = cls_attn() if callable(cls_attn) else cls_attn
            if a is None:
                raise ValueError(f"op {layer.op!r} needs the CLS attention row; pass cls_attn to reduce()")
            return a

        with torch.no_grad():
            metric = keys.mean(dim=1) if keys.dim() == 4 else keys  # (B, N, d)
            inp = ReduceInput(
                x=x,
                metric=metric,
                num_prefix=self.num_prefix,
                sizes=self.sizes,
                cls_attn=row,
                layer=self.block - 1,
                depth=self.schedule.depth,
            )
            plan = reducer(inp, layer.r, **layer.kw)
        if plan is not None:
            x, self.sizes, self.positions, self.source = apply_plan(
                plan, x, self.sizes, self.positions, self.source, anchor=self.schedule.positions == "anchored"
            )
            self.n_tokens = x.shape[1]
        self.history.append(self.n_tokens)
        return x
