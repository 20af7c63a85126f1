"""Model adapters and the one registry of model names.

``--model`` accepts any timm ViT name (``deit_small_patch16_224``, …), the embedded defaults ``fashion-vit`` and
``fashion-autoformer`` (weights shipped in ``searcher/assets``), and the AutoFormer names ``autoformer-t|s|b`` and
``autoformer-t|s|b-supernet``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError

__all__ = ["EmbeddedSpec", "EMBEDDED", "ASSETS", "create_model", "embedded_metadata", "load_embedded_weights",
           "sha256_file"]

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent.parent / "assets"


@dataclass(frozen=True)
class EmbeddedSpec:
    """An embedded default model: its family and constructor arguments (the metadata JSON repeats them)."""

    family: str  # "timm-vit" | "autoformer"
    kwargs: dict[str, Any] = field(default_factory=dict)


# 32×32 Fashion-MNIST (28×28 padded), patch 4 → 64 patches + CLS, one channel, 10 classes.
EMBEDDED: dict[str, EmbeddedSpec] = {
    "fashion-vit": EmbeddedSpec("timm-vit", dict(img_size=32, patch_size=4, in_chans=1, num_classes=10,
                                                 embed_dim=128, depth=6, num_heads=4, mlp_ratio=4.0)),
    "fashion-autoformer": EmbeddedSpec("autoformer", dict(preset="fashion-autoformer")),
}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def embedded_metadata(name: str) -> dict:
    path = ASSETS / f"{name}.json"
    if not path.exists():
        raise CheckpointError(f"embedded model {name!r} has no weights in {ASSETS}; train it with "
                              f"'searcher train --model {name}' and copy the result there")
    return json.loads(path.read_text())


def load_embedded_weights(name: str, model: nn.Module) -> nn.Module:
    """Load the shipped safetensors into ``model`` after checking its sha256 against the metadata JSON."""
    from safetensors.torch import load_file

    meta = embedded_metadata(name)
    path = ASSETS / f"{name}.safetensors"
    if not path.exists():
        raise CheckpointError(f"{path} is missing; reinstall searcher or retrain with 'searcher train --model {name}'")
    digest = sha256_file(path)
    if digest != meta.get("sha256"):
        raise CheckpointError(f"{path} has sha256 {digest[:12]}…, but {name}.json expects "
                              f"{str(meta.get('sha256'))[:12]}…; the weights were changed or damaged — reinstall them")
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit {name}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model


def _build_embedded(name: str, weights: bool) -> nn.Module:
    spec = EMBEDDED[name]
    if spec.family == "timm-vit":
        from timm.models.vision_transformer import VisionTransformer

        model: nn.Module = VisionTransformer(**spec.kwargs)
    else:
        from .autoformer import build_preset_supernet

        model = build_preset_supernet(spec.kwargs["preset"])
    if weights:
        load_embedded_weights(name, model)
    return model.eval()


def create_model(name: str, *, weights: bool = True, checkpoint: str | None = None, **kwargs: Any) -> nn.Module:
    """Build a model by name. ``weights=False`` gives random weights (enough for costs and training)."""
    if name in EMBEDDED:
        return _build_embedded(name, weights)
    import timm

    if timm.is_model(name):
        model = timm.create_model(name, pretrained=weights and checkpoint is None, **kwargs)
        if checkpoint:
            timm.models.load_checkpoint(model, checkpoint)
        return model.eval()
    known = ", ".join(EMBEDDED) + ", autoformer-t|s|b[-supernet], or any timm ViT name"
    raise ConfigError(f"unknown model {name!r}; use one of {known}")
