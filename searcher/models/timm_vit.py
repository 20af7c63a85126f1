"""timm ViT adapter: token reduction in any ``timm`` ``VisionTransformer`` (ViT, DeiT, DeiT-distilled, …).

Patching swaps classes in place, never weights: every ``Block`` becomes :class:`ReducingBlock` and its
``Attention`` :class:`ReducingAttention` (subclasses that call the block's own ``norm1``, ``attn.qkv``,
``q_norm``/``k_norm``, ``ls1``/``ls2``, ``drop_path1``/``drop_path2``, ``mlp``), and the model class becomes a
subclass whose ``pool`` is size-weighted for ``global_pool='avg'``. Attention stays fused
(``F.scaled_dot_product_attention``); proportional attention is its additive ``attn_mask``, ``None`` while all
sizes are 1, so an unreduced block runs the same kernels — with r = 0 everywhere the logits are bit-identical.
Protected prefix tokens come from ``num_prefix_tokens`` (CLS, DeiT's distillation token, register tokens).
"""

from __future__ import annotations

import inspect
import logging
from functools import partial
from typing import Any

import torch.nn.functional as F
from timm.layers import Attention
from timm.models.vision_transformer import Block, VisionTransformer
from torch import Tensor, nn

from ..errors import ConfigError
from ..patch import Adapter, register_adapter
from ..reduce.matching import cls_attention
from ..reduce.registry import NEEDS_CLS_ATTENTION
from ..reduce.state import TokenState
from ..schedule import Schedule, check_fits

__all__ = ["ReducingAttention", "ReducingBlock", "TimmViTAdapter", "ADAPTER"]

logger = logging.getLogger(__name__)


class ReducingAttention(Attention):
    """timm ``Attention`` that also returns its queries and keys (for matching and the CLS attention row)."""

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        return self.attend(x, attn_mask, is_causal)[0]

    def attend(
        self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(output (B, N, C), q (B, H, N, d), k (B, H, N, d)); the same computation as timm's ``forward``."""
        B, N, _ = x.shape
        gate_proj = getattr(self, "gate", None)  # timm's optional output gate
        gate = gate_proj(x).sigmoid() if gate_proj is not None else None
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, H, N, d) each
        q, k = self.q_norm(q), self.k_norm(k)
        if attn_mask is not None and attn_mask.dtype != q.dtype:
            attn_mask = attn_mask.to(q.dtype)
        if self.fused_attn:
            out = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=attn_mask,
                dropout_p=self.attn_drop.p if self.training else 0.0,
                is_causal=is_causal,
            )
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)  # (B, H, N, N)
            if is_causal:
                attn = attn + attn.new_full((N, N), float("-inf")).triu_(1)
            elif attn_mask is not None:
                attn = attn + attn_mask
            out = self.attn_drop(attn.softmax(dim=-1)) @ v
        out = self.norm(out.transpose(1, 2).reshape(B, N, self.attn_dim))
        if gate is not None:
            out = out * gate
        return self.proj_drop(self.proj(out)), q, k


def _cls_row(q: Tensor, k: Tensor, scale: float, mask: Tensor | None) -> Tensor:
    """CLS attention row (B, N) from q, k (B, H, N, d): computed only when the block's op asks for it."""
    return cls_attention(q[:, :, 0], k, scale, mask)


class ReducingBlock(Block):
    """timm ``Block`` with a token reduction between attention and MLP (REDUCERS.md, "Notation")."""

    _searcher_state: TokenState
    _searcher_index: int

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        state = self._searcher_state
        if attn_mask is not None or is_causal:
            raise ValueError("a token-reduced ViT cannot take an external attn_mask or is_causal")
        if self._searcher_index == 0:
            state.begin(x)  # the one per-forward reset
        attn: ReducingAttention = self.attn  # type: ignore[assignment]
        mask = state.attn_mask()  # (B, 1, 1, N) log sizes, or None
        y, q, k = attn.attend(self.norm1(x), attn_mask=mask)
        x = x + self.drop_path1(self.ls1(y))
        x = state.reduce(x, k, cls_attn=partial(_cls_row, q, k, attn.scale, mask))
        del y, q, k  # free the qkv buffer before the MLP, as timm's own Attention does
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x


_MODEL_CLASSES: dict[type, type] = {}


def _reducing_model_class(cls: type) -> type:
    """A subclass of the model's own class whose ``pool`` weights tokens by size (cached per class)."""
    if cls in _MODEL_CLASSES:
        return _MODEL_CLASSES[cls]

    def pool(self: Any, x: Tensor, pool_type: str | None = None) -> Tensor:
        state: TokenState = self._searcher_state
        pool_type = self.global_pool if pool_type is None else pool_type
        if self.attn_pool is not None or pool_type not in ("avg", "avgmax"):
            return cls.pool(self, x, pool_type)  # type: ignore[attr-defined]
        unreduced = self.patch_embed.num_patches + self.num_prefix_tokens if self.patch_embed.num_patches else -1
        sizes = state.pooling_sizes(x, unreduced)
        if sizes is None:
            return cls.pool(self, x, pool_type)  # type: ignore[attr-defined]
        start = 0 if self.pool_include_prefix else self.num_prefix_tokens
        tokens, s = x[:, start:], sizes[:, start:].to(x.dtype)  # (B, T, C), (B, T, 1)
        avg = (tokens * s).sum(dim=1) / s.sum(dim=1)  # size-weighted mean
        return avg if pool_type == "avg" else 0.5 * (tokens.amax(dim=1) + avg)

    def forward_intermediates(self: Any, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        state: TokenState = self._searcher_state
        bound = inspect.signature(cls.forward_intermediates).bind(self, x, *args, **kwargs)  # type: ignore[attr-defined]
        bound.apply_defaults()
        if bound.arguments.get("output_fmt") == "NCHW" and any(
            not layer.is_identity for layer in state.schedule.layers
        ):
            raise ConfigError(
                "forward_intermediates(output_fmt='NCHW') reshapes every block's tokens to the patch grid, but this "
                "model's schedule removes tokens; pass output_fmt='NLC' (the tokens each block keeps), or "
                "searcher.remove(model) first"
            )
        return cls.forward_intermediates(self, x, *args, **kwargs)  # type: ignore[attr-defined]

    def set_grad_checkpointing(self: Any, enable: bool = True) -> None:
        if enable:  # a recomputed block would reduce its tokens again, out of step with the state
            raise ConfigError("token reduction does not support gradient checkpointing; searcher.remove(model) "
                              "first, or train without it")
        cls.set_grad_checkpointing(self, enable)  # type: ignore[attr-defined]

    name = f"Reducing{cls.__name__}"
    body = {"pool": pool, "set_grad_checkpointing": set_grad_checkpointing, "__module__": __name__,
            "__qualname__": name}
    if hasattr(cls, "forward_intermediates"):
        body["forward_intermediates"] = forward_intermediates
    new_cls = type(name, (cls,), body)
    if name not in globals():  # importable by name, so a patched model can be pickled (torch.save)
        globals()[name] = new_cls
    _MODEL_CLASSES[cls] = new_cls
    return new_cls


def averages_patches(model: VisionTransformer) -> bool:
    """Whether the model pools its patch tokens alone by averaging them (then a schedule must keep one)."""
    return (model.global_pool in ("avg", "avgmax", "max") and getattr(model, "attn_pool", None) is None
            and not getattr(model, "pool_include_prefix", False))


class TimmViTAdapter(Adapter):
    """Adapter for timm's ``VisionTransformer`` and its subclasses (DeiT-distilled)."""

    name = "timm-vit"

    def matches(self, model: nn.Module) -> bool:
        return isinstance(model, VisionTransformer)

    def state(self, model: nn.Module) -> TokenState | None:
        return getattr(model, "_searcher_state", None)

    def apply(self, model: nn.Module, schedule: Schedule, *, trace_source: bool = False, **options: Any) -> nn.Module:
        if options:
            raise ConfigError(f"unknown option(s) {sorted(options)} for the timm ViT adapter; known: trace_source")
        assert isinstance(model, VisionTransformer)
        blocks = list(model.blocks)
        for i, blk in enumerate(blocks):
            attn = getattr(blk, "attn", None)  # parallel blocks (ParallelThingsBlock) have none
            if type(blk) not in (Block, ReducingBlock) or type(attn) not in (Attention, ReducingAttention):
                raise ConfigError(
                    f"block {i} is a {type(blk).__name__} with {type(attn).__name__}; token reduction "
                    "supports timm's pre-norm Block with the standard Attention"
                )
        schedule.check_depth(len(blocks))
        n_patches = getattr(model.patch_embed, "num_patches", None)
        if n_patches is not None:  # what a schedule keeps against the prefix (DiffRate), before any forward
            check_fits(schedule, n_patches + model.num_prefix_tokens, model.num_prefix_tokens,
                       averages_patches(model))
        has_cls = getattr(model, "cls_token", None) is not None
        if not has_cls and any(not x.is_identity and x.op in NEEDS_CLS_ATTENTION for x in schedule.layers):
            raise ConfigError("this schedule ranks tokens by CLS attention but the model has no class token")
        if model.grad_checkpointing:
            raise ConfigError("token reduction does not support gradient checkpointing; disable it first")
        grid = tuple(model.patch_embed.grid_size) if getattr(model.patch_embed, "grid_size", None) else None
        state = TokenState(
            schedule,
            model.num_prefix_tokens,
            has_cls=has_cls,
            trace_source=trace_source,
            track_positions=False,  # absolute position embeddings only: nothing reads positions
            grid=grid,  # type: ignore[arg-type]
        )
        if self.state(model) is None:
            model._searcher_original_class = type(model)  # type: ignore[assignment]
            model.__class__ = _reducing_model_class(type(model))
        model._searcher_state = state  # type: ignore[assignment]
        for i, blk in enumerate(blocks):
            blk.__class__ = ReducingBlock
            blk.attn.__class__ = ReducingAttention
            blk._searcher_state = state  # type: ignore[assignment]
            blk._searcher_index = i  # type: ignore[assignment]
        logger.debug("patched %s with %s", type(model).__name__, schedule)
        return model

    def remove(self, model: nn.Module) -> nn.Module:
        if self.state(model) is None:
            return model
        model.__class__ = model._searcher_original_class  # type: ignore[assignment]
        del model._searcher_original_class, model._searcher_state
        for blk in model.blocks:  # type: ignore[union-attr]
            blk.__class__ = Block
            blk.attn.__class__ = Attention
            del blk._searcher_state, blk._searcher_index
        return model


ADAPTER = register_adapter(TimmViTAdapter())
