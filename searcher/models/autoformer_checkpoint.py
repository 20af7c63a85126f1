"""Reading official AutoFormer checkpoints safely, and recognising what they hold.

The released supernets (``supernet-tiny.pth``, ``supernet-small.pth``, ``supernet-base.pth``; microsoft/Cream
``AutoFormer/supernet_train.py``) are ``torch.save({'model': state_dict, 'epoch': ..., 'args': Namespace})``.
They are read with ``weights_only=True`` and exactly one extra class allowed, ``argparse.Namespace``;
anything else in the pickle is refused. Every failure is a :class:`~searcher.errors.CheckpointError` that
names the file and says what to do.
"""

from __future__ import annotations

import argparse
import logging
import math
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import CheckpointError
from .autoformer_space import PRESETS, SupernetConfig

__all__ = ["read_checkpoint", "infer_supernet_config", "check_state_dict", "identify_preset"]

log = logging.getLogger(__name__)

_TIMM_VIT_KEYS = ("patch_embed.proj.weight", "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight")


def _load(path_or_url: str | Path) -> Any:
    """``torch.load`` (of a URL's download) with ``weights_only=True`` and ``argparse.Namespace``
    allowed."""
    from . import local_checkpoint

    path = local_checkpoint(path_or_url)  # a URL downloaded once
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path_or_url} does not exist; pass the path of an AutoFormer .pth "
                              "file or an http(s) URL")
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def forbidden_global(name: str, e: BaseException) -> CheckpointError | None:
    """The error for a file whose pickle names a global that the safe unpickler refuses (torch's "Unsupported
    global"), or None for another failure."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
    if not found:
        return None
    return CheckpointError(f"{name} pickles {found.group(1)}, and searcher unpickles nothing but tensors and "
                           "argparse.Namespace (no code from files); if you trust the file, re-save its weights "
                           "alone: torch.save(model.state_dict(), path)")


def read_checkpoint(path_or_url: str | Path) -> tuple[dict[str, Tensor], argparse.Namespace | None]:
    """The model state dict of an AutoFormer checkpoint and its training ``args`` (None when absent).

    Accepts ``{'model': state_dict, ...}`` (the official format) or a bare state dict; strips a DDP
    ``module.`` prefix. Raises :class:`CheckpointError` for missing, truncated or corrupt files, pickles with
    objects other than tensors and ``argparse.Namespace``, and contents without a state dict.
    """
    from . import download_hint

    name = str(path_or_url)
    try:
        obj = _load(path_or_url)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        forbidden = forbidden_global(name, e)
        if forbidden:
            raise forbidden from e
        raise CheckpointError(f"{name} is not a readable PyTorch checkpoint ({e}); the file is corrupt or "
                              f"not a checkpoint — download it again{download_hint(name)}") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, AttributeError) as e:
        detail = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"{name} could not be read ({type(e).__name__}: {detail}); the file is "
                              f"truncated or corrupt — download it again{download_hint(name)}") from e
    args = None
    if isinstance(obj, Mapping) and "model" in obj:
        args = obj.get("args")
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        keys = sorted(obj)[:6] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f"{name} holds no model state dict (found {keys}); expected the official "
                              "format {'model': state_dict, ...} or a bare state dict")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
    return state, args if isinstance(args, argparse.Namespace) else None


def _first_block_keys(state: Mapping[str, Tensor], name: str) -> None:
    if "patch_embed_super.proj.weight" in state and "blocks.0.attn.qkv.weight" in state:
        return
    if all(k in state for k in _TIMM_VIT_KEYS):
        what = "a timm/DeiT VisionTransformer checkpoint"
    else:
        what = f"not an AutoFormer supernet checkpoint (its keys begin {sorted(state)[:4]})"
    raise CheckpointError(f"{name} is {what}; load it with the model it belongs to, or pass an official "
                          "AutoFormer supernet file (supernet-tiny/small/base.pth)")


def infer_supernet_config(state: Mapping[str, Tensor], args: argparse.Namespace | None = None,
                          name: str = "checkpoint") -> SupernetConfig:
    """The supernet dims a state dict was saved from, read off its shapes (``gp`` and, without an absolute
    position embedding, the image size come from ``args`` when present; defaults as the released files)."""
    _first_block_keys(state, name)
    try:
        E, in_chans, patch, _ = state["patch_embed_super.proj.weight"].shape
        depth = 0
        while f"blocks.{depth}.attn.qkv.weight" in state:
            depth += 1
        rel_key = "blocks.0.attn.rel_pos_embed_k.embeddings_table_v"
        rel_pos = rel_key in state
        table = state[rel_key].shape if rel_pos else None
        head_dim = int(table[1]) if table is not None else 64
        max_rel = (int(table[0]) // 2 - 1 if table is not None
                   else int(getattr(args, "max_relative_position", 14)))
        qkv_rows = state["blocks.0.attn.qkv.weight"].shape[0]
        heads, rem = divmod(qkv_rows, 3 * head_dim)
        hidden = state["blocks.0.fc1.weight"].shape[0]
        num_classes = state["head.weight"].shape[0]
        abs_pos = "pos_embed" in state
        if abs_pos:
            grid = math.isqrt(state["pos_embed"].shape[1] - 1)
            img_size = grid * patch
        else:
            img_size = int(getattr(args, "input_size", 224))
    except KeyError as e:
        raise CheckpointError(f"{name} lacks {e.args[0]!r}, which every AutoFormer supernet has; the file is "
                              "incomplete or from another model") from e
    if rem:
        raise CheckpointError(f"{name}: qkv has {qkv_rows} rows, not a multiple of 3 * head_dim "
                              f"({head_dim}); not an AutoFormer supernet with change_qkv")
    if getattr(args, "change_qkv", True) is False:  # the same shapes can mean other q/k/v slices
        raise CheckpointError(f"{name} was trained with change_qkv=False (fixed q/k/v widths); searcher models "
                              "the change_qkv supernets of the released AutoFormer files")
    return SupernetConfig(img_size=int(img_size), patch_size=int(patch), in_chans=int(in_chans),
                          num_classes=int(num_classes), embed_dim=int(E), depth=depth, num_heads=heads,
                          mlp_ratio=hidden / E, head_dim=head_dim, qkv_bias="blocks.0.attn.qkv.bias" in state,
                          rel_pos=rel_pos, max_relative_position=max_rel, gp=bool(getattr(args, "gp", True)),
                          abs_pos=abs_pos, change_qkv=True)


def check_state_dict(state: Mapping[str, Tensor], expected: Mapping[str, Tensor], name: str,
                     what: str = "this AutoFormer supernet") -> None:
    """Raise :class:`CheckpointError` on missing or unexpected keys, shape mismatches and non-finite
    weights."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(t.shape)}" for k, t in expected.items()
             if k in state and state[k].shape != t.shape]
    if missing or unexpected or wrong:
        parts = [f"{label} {items[:3]}{' …' if len(items) > 3 else ''}" for label, items in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shapes", wrong)) if items]
        raise CheckpointError(f"{name} does not fit {what}: {'; '.join(parts)}; pass the preset the "
                              "checkpoint was trained with (autoformer-t|s|b), or none to read the dims from "
                              "the file")
    bad = [k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(f"{name} has NaN or infinite weights in {bad[:3]}; the training run "
                              "diverged or the file is damaged — use another checkpoint")


def identify_preset(config: SupernetConfig) -> str | None:
    """The preset whose supernet is ``config`` (``autoformer-t`` for supernet-tiny.pth, …), else None."""
    for name, space in PRESETS.items():
        if space.supernet == config:
            return name
    return None
