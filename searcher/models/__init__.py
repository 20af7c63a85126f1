"""Model adapters and the one registry of model names.

``--model`` accepts any timm ViT name (``deit_small_patch16_224``, …), the embedded defaults ``fashion-vit`` and
``fashion-autoformer`` (weights shipped in ``searcher/assets``), and the AutoFormer names ``autoformer-t|s|b`` and
``autoformer-t|s|b-supernet``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import CheckpointError, ConfigError

__all__ = [
    "EmbeddedSpec",
    "EMBEDDED",
    "ASSETS",
    "create_model",
    "embedded_metadata",
    "load_embedded_weights",
    "sha256_file",
    "local_checkpoint",
    "download_path",
    "download_hint",
    "ModelSource",
]

log = logging.getLogger(__name__)
ASSETS = Path(__file__).resolve().parent.parent / "assets"


@dataclass(frozen=True)
class EmbeddedSpec:
    """An embedded default model: its family and constructor arguments (the metadata JSON repeats them)."""

    family: str  # "timm-vit" | "autoformer"
    kwargs: dict[str, Any] = field(default_factory=dict)


# 32×32 Fashion-MNIST (28×28 padded), patch 4 → 64 patches + CLS, one channel, 10 classes.
EMBEDDED: dict[str, EmbeddedSpec] = {
    "fashion-vit": EmbeddedSpec(
        "timm-vit",
        dict(
            img_size=32,
            patch_size=4,
            in_chans=1,
            num_classes=10,
            embed_dim=128,
            depth=6,
            num_heads=4,
            mlp_ratio=4.0,
        ),
    ),
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
        raise CheckpointError(
            f"embedded model {name!r} has no weights in {ASSETS}; train it with "
            f"'searcher train --model {name}' and copy the result there"
        )
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
        raise CheckpointError(
            f"{path} has sha256 {digest[:12]}…, but {name}.json expects "
            f"{str(meta.get('sha256'))[:12]}…; the weights were changed or damaged — reinstall them"
        )
    missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit {name}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model


def _is_safetensors(path: str) -> bool:
    """Whether the file begins as safetensors does: the header's length (8 bytes, little-endian), then its JSON."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        size = os.path.getsize(path)
    except OSError:
        return False
    return len(head) == 9 and head[8:] == b"{" and 8 + int.from_bytes(head[:8], "little") <= size


DOWNLOAD_TIMEOUT_S = 60.0  # seconds a checkpoint's server may stay silent


def download_path(url: str) -> Path:
    """Where :func:`local_checkpoint` keeps the download of an ``http(s)://`` URL: torch.hub's checkpoint folder,
    under a hash of the whole URL before its file name (torch.hub's own cache goes by the file name alone: a second
    URL of the same name got the first one's weights, silently)."""
    from urllib.parse import unquote, urlparse

    import torch

    name = Path(unquote(urlparse(url).path)).name or "checkpoint"
    return Path(torch.hub.get_dir()) / "checkpoints" / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"


def download_hint(path_or_url: str | Path) -> str:
    """For an error about an ``http(s)://`` checkpoint, where its download lies (used until deleted); "" for a
    path."""
    url = str(path_or_url)
    return f" ({download_path(url)}: delete it to download again)" if url.startswith(("http://", "https://")) else ""


def local_checkpoint(path_or_url: str | Path) -> Path:
    """The local file of a checkpoint: a path as given, a ``file://`` URL's path, or an ``http(s)://`` URL
    downloaded once (:func:`download_path`)."""
    import sys
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    import torch

    text = str(path_or_url)
    if text.startswith("file://"):
        url = urlparse(text)
        if url.netloc not in ("", "localhost") or not url.path:  # file://deit_s.pth: a host named deit_s.pth
            raise ConfigError(f"{text} is not a file URL of a local path: a file URL is absolute "
                              f"(file:///abs/path/weights.pth); give a relative path as a plain path")
        return Path(url2pathname(url.path))
    if not text.startswith(("http://", "https://")):
        return Path(text)
    dst = download_path(text)
    if not dst.is_file():
        log.warning(f"downloading {text} to {dst}")
        before = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # torch.hub sets none: a server that never answers hung the run
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(text, str(dst), progress=sys.stderr.isatty())  # a temporary file, moved
        except (OSError, ValueError) as e:  # URLError is an OSError: no network, 404, a timeout; a bad URL
            # offline (not a server's answer such as 404): torch.hub's own download of that name, its cache until
            # 2026-12-07, which a resumed study's or an exported config's sha256 then checks
            legacy = dst.parent / os.path.basename(urlparse(text).path)
            if isinstance(e, URLError) and not isinstance(e, HTTPError) and legacy.is_file():
                log.warning(f"could not download {text} ({e}); using {legacy}, torch.hub's file of that name, which "
                            f"may be another URL's: check it, and copy it to {dst} to silence this")
                return legacy
            raise CheckpointError(f"could not download {text}: {e}; download it by hand and pass the local path "
                                  "instead") from e
        finally:
            socket.setdefaulttimeout(before)
    return dst


def read_state_dict(path_or_url: str | Path) -> dict[str, Any]:
    """Tensors of a checkpoint without executing code: safetensors, or ``torch.load(weights_only=True)``; a URL
    is downloaded once (:func:`local_checkpoint`). Unwraps ``{'model'|'state_dict'|'state_dict_ema': …}`` (the
    EMA first, as timm does; ``ema`` of a ``searcher train`` checkpoint too) and ``module.``."""
    import argparse

    import torch

    from .autoformer_checkpoint import forbidden_global

    name, path = str(path_or_url), str(local_checkpoint(path_or_url))
    cached = download_hint(name)  # a URL's download that is no checkpoint (a login page) stays in the cache
    # safetensors by name, or by its first bytes under another name (.bin, .pth)
    safetensors = path.endswith(".safetensors") or _is_safetensors(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # training args, as timm and AutoFormer save
            if safetensors:
                from safetensors.torch import load_file

                sd: Any = load_file(path)
            else:
                sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint {name} does not exist; check the path") from e
    except Exception as e:  # truncated zip, pickle with forbidden globals, bad safetensors header, …
        forbidden = forbidden_global(name, e)
        if forbidden:
            raise forbidden from e
        if not safetensors and Path(path).is_file():
            with open(path, "rb") as f:
                head = f.read(4)
            if not head.startswith((b"PK", b"\x80")):  # neither torch.save's zip archive nor a (legacy) pickle
                raise CheckpointError(f"checkpoint {path_or_url} is not a PyTorch or safetensors weights file (it "
                                      f"begins {head!r}){cached}; check the path") from e
        why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(
            f"cannot load checkpoint {path_or_url}: {why}; is it a complete PyTorch or safetensors weights "
            f"file?{cached}"
        ) from e
    for key in ("state_dict_ema", "model_ema", "ema", "state_dict", "model"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path_or_url} holds no state dict of tensors; is it a weights file?{cached}")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_timm_checkpoint(model: nn.Module, path_or_url: str | Path) -> nn.Module:
    """Load weights into a timm model (or an embedded model: ``create_model`` with a checkpoint); a checkpoint of
    another model, or with NaN weights, is an error."""
    import torch

    sd = read_state_dict(path_or_url)
    bad = [k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{path_or_url} has NaN or inf weights in {bad[:3]}; it is damaged")
    own = model.state_dict()
    keys_differ = own.keys() != sd.keys()
    mismatched = sorted(k for k in own.keys() & sd.keys() if own[k].shape != sd[k].shape)
    resampled = _resampled_pos_embed(model, sd) if not keys_differ and "pos_embed" in mismatched else None
    try:
        model.load_state_dict({**sd, "pos_embed": resampled} if resampled is not None else sd, strict=True)
        if resampled is not None:  # another image size, adapted as timm adapts its pretrained weights
            log.warning("%s: position embeddings %s resampled to the model's %s, as timm does for its pretrained "
                        "weights", path_or_url, tuple(sd["pos_embed"].shape), tuple(own["pos_embed"].shape))
        return model
    except RuntimeError as e:
        error = e
    lines = str(error).splitlines()
    first = lines[1].strip() if len(lines) > 1 else str(error)
    head, outputs = sd.get("head.weight"), getattr(model, "num_classes", None)
    heads = [k for k in mismatched if k.startswith(("head.", "head_dist."))]  # a distilled DeiT has two
    if (not keys_differ and heads and set(mismatched) <= {*heads, "pos_embed"} and head is not None
            and isinstance(outputs, int)):
        raise CheckpointError(
            f"{path_or_url} has a head of {head.shape[0]} classes, the model {outputs}: give the model its head, "
            f"--num-classes {head.shape[0]} (evaluate) or model_kwargs: {{num_classes: {head.shape[0]}}} "
            "(study spec)"
        ) from error
    raise CheckpointError(
        f"{path_or_url} does not fit this model ({first[:200]}); is it a checkpoint of another model or size?"
    ) from error


def _resampled_pos_embed(model: nn.Module, sd: dict[str, Any]) -> Any:
    """``sd``'s position embeddings resampled to ``model``'s patch grid (timm's ``resample_abs_pos_embed``, as
    timm loads pretrained weights at another image size), or None where that does not apply: no timm patch
    embedding, another number of prefix tokens, a checkpoint grid that is not square."""
    import math

    from timm.layers import resample_abs_pos_embed

    patch_embed: Any = getattr(model, "patch_embed", None)
    if patch_embed is None or not hasattr(patch_embed, "grid_size"):
        return None
    prefix = 0 if getattr(model, "no_embed_class", False) else int(getattr(model, "num_prefix_tokens", 1))
    own, theirs = model.state_dict()["pos_embed"], sd["pos_embed"]
    side = math.isqrt(max(theirs.shape[1] - prefix, 0))
    if theirs.ndim != 3 or theirs.shape[2] != own.shape[2] or side * side != theirs.shape[1] - prefix or side == 0:
        return None
    return resample_abs_pos_embed(theirs, list(patch_embed.grid_size), num_prefix_tokens=prefix)


def _build_embedded(name: str, weights: bool) -> nn.Module:
    spec = EMBEDDED[name]
    if spec.family == "timm-vit":
        from timm.models.vision_transformer import VisionTransformer

        model: nn.Module = VisionTransformer(**spec.kwargs)
    else:
        from .autoformer import create_supernet

        model = create_supernet(spec.kwargs["preset"])
    if weights:
        load_embedded_weights(name, model)
    return model.eval()


def _needs_weights(name: str) -> ConfigError:
    """The error for an AutoFormer model asked for with its weights but given no checkpoint (no hub has them)."""
    return ConfigError(f"{name} needs its trained weights: give its checkpoint (a path or URL: 'checkpoint:' in a "
                       "study spec, --checkpoint, checkpoint= in Python; studies/autoformer-s-imagenet.yaml names the "
                       "official release's); costs alone need none (searcher flops)")


def create_model(name: str, *, weights: bool = True, checkpoint: str | Path | None = None, **kwargs: Any
                 ) -> nn.Module:
    """Build a model by name. ``weights=False`` gives random weights (enough for costs and training)."""
    if name in EMBEDDED:  # the shipped weights, or a checkpoint of it (e.g. from `searcher train`)
        if kwargs:
            raise ConfigError(f"{name} takes no model arguments (got {sorted(kwargs)})")
        model = _build_embedded(name, weights and not checkpoint)
        return load_timm_checkpoint(model, checkpoint).eval() if checkpoint else model
    if name.removesuffix("-supernet") in AUTOFORMER_NAMES:  # the searched subnet, or the whole supernet
        from .autoformer import create_autoformer

        if kwargs:
            raise ConfigError(f"{name} takes no model arguments (got {sorted(kwargs)})")
        if weights and not checkpoint:  # evaluate printed random weights' top-1 with a warning (until 2026-12-07)
            raise _needs_weights(name)
        return create_autoformer(name, checkpoint)
    import timm

    if timm.is_model(name):
        try:
            model = timm.create_model(name, pretrained=weights and checkpoint is None, **kwargs)
        except TypeError as e:
            raise ConfigError(f"bad model arguments for {name}: {e}") from e
        except (OSError, RuntimeError) as e:  # no network, or the hub does not have the weights
            raise CheckpointError(
                f"cannot fetch pretrained weights for {name} ({str(e).splitlines()[0]}); give a local weights "
                "file: --checkpoint PATH (evaluate, flops) or 'checkpoint: PATH' in the study spec"
            ) from e
        if checkpoint:
            load_timm_checkpoint(model, checkpoint)
        return model.eval()
    known = ", ".join(EMBEDDED) + ", autoformer-t|s|b[-supernet], or any timm ViT name"
    raise ConfigError(f"unknown model {name!r}; use one of {known}")


# ----------------------------------------------------------------------------------------- model source
def _input_shape(model: nn.Module, in_chans: int) -> tuple[int, int, int]:
    """(C, H, W) of the model's input resolution (timm's ``patch_embed.img_size``; AutoFormer's config)."""
    config = getattr(model, "config", None)
    size: Any = getattr(config, "img_size", None) or getattr(getattr(model, "patch_embed", None), "img_size", 224)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    return (in_chans, int(h), int(w))


AUTOFORMER_NAMES = ("autoformer-t", "autoformer-s", "autoformer-b")


class ModelSource:
    """One study's model: builds the base network once, then patched candidates; analytic FLOPs per candidate.

    ``arch`` arguments are AutoFormer subnet dicts (``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``) for
    supernets, and None for plain ViTs and fixed subnets (``autoformer-t|s|b``).
    """

    def __init__(
        self,
        name: str,
        model: nn.Module,
        family: str,
        checkpoint: str | None = None,
        fixed_arch: dict[str, Any] | None = None,
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        from ..cost.flops import describe

        self.name, self.model, self.family, self.checkpoint = name, model.eval(), family, checkpoint
        self.fixed_arch = fixed_arch  # autoformer-t|s|b: the paper's subnet on the supernet
        self.model_kwargs = dict(model_kwargs or {})  # timm create_model arguments (img_size, num_classes, …)
        self.preset = None  # AutoFormer: the preset search space of the supernet
        if family == "autoformer":
            from .autoformer_space import get_space

            self.preset = get_space(EMBEDDED[name].kwargs["preset"] if name in EMBEDDED else name)
        self._shapes: dict[str, Any] = {}
        shape = describe(model, self._subnet(self.full_arch(None)) if family == "autoformer" else None)
        self.n_tokens = shape.num_patches + shape.num_prefix
        self.num_prefix = shape.num_prefix
        self.input_shape = _input_shape(model, shape.in_chans)

    # -- construction ---------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        name: str,
        checkpoint: str | None = None,
        arch_space: Any = None,
        model_kwargs: dict[str, Any] | None = None,
        weights: bool = True,
    ) -> ModelSource:
        """``weights=False``: random weights, no checkpoint read or download (the shapes, for costs)."""
        base = name.removesuffix("-supernet")
        if model_kwargs and (name in EMBEDDED or base in AUTOFORMER_NAMES):  # create_model refuses them too
            raise ConfigError(f"{name} takes no model arguments; remove model_kwargs {model_kwargs}")
        supernet = name.endswith("-supernet") or (name in EMBEDDED and EMBEDDED[name].family == "autoformer")
        if arch_space is not None and not supernet:
            which = (f"{name} is the paper's searched subnet; search architectures on {name}-supernet"
                     if base in AUTOFORMER_NAMES else f"{name} is not an AutoFormer supernet")
            raise ConfigError(f"the space has an architecture section, but {which}: remove the section")
        if name in EMBEDDED:
            if checkpoint:
                raise ConfigError(f"{name} ships its own weights; remove the checkpoint (checkpoint: or --checkpoint)")
            return cls(name, create_model(name, weights=weights), EMBEDDED[name].family)
        if base in AUTOFORMER_NAMES:
            from .autoformer import create_supernet, load_checkpoint
            from .autoformer_space import get_subnet

            if weights and not checkpoint:  # a whole study on random weights, exported as if trained (until 2026-12-07)
                raise _needs_weights(name)
            model: nn.Module = load_checkpoint(checkpoint, base) if weights and checkpoint else create_supernet(base)
            # a supernet without an architecture section: its largest subnet (full_arch), as for fashion-autoformer
            fixed = None if name.endswith("-supernet") else get_subnet(base).to_dict()
            return cls(name, model, "autoformer", checkpoint, fixed)
        model = create_model(name, weights=weights, checkpoint=checkpoint if weights else None, **(model_kwargs or {}))
        return cls(name, model, "timm-vit", checkpoint, model_kwargs=model_kwargs)

    @property
    def averages_patches(self) -> bool:
        """Whether the model pools by averaging its patch tokens (a schedule must keep at least one)."""
        if self.family == "autoformer":
            return bool(self.model.gp)
        from .timm_vit import averages_patches

        return averages_patches(self.model)  # type: ignore[arg-type]

    def check_data(self, split: Any, fix: str) -> None:
        """A :class:`~searcher.data.Split` whose images are not this model's input (C, H, W) is an error (the
        model would fail on every batch), ending with ``fix``; so is one with another number of classes than the
        model has outputs (its labels would be scored against other logits)."""
        shape, wanted = tuple(split.images.shape[1:]), tuple(self.input_shape)
        if shape != wanted:
            raise ConfigError(f"the {split.name} split's images are {shape} but {self.name} takes {wanted}; {fix}")
        outputs = getattr(self.model, "num_classes", None)
        if isinstance(outputs, int) and outputs != split.num_classes:
            raise ConfigError(
                f"{self.name} has {outputs} outputs but the {split.name} split has {split.num_classes} classes "
                f"({', '.join(split.classes[:3])}{', …' if split.num_classes > 3 else ''}): it is not the model for "
                "this data; an ImageNet model needs class folders named by WordNet id (n01440764, …), another "
                "model its own head (model_kwargs: {num_classes: N} and a checkpoint trained on these classes), "
                "the data's 'classes' left out (the folders' sorted order) or listing them in the head's order"
            )

    # -- architecture ---------------------------------------------------------------------------------------
    def _subnet(self, arch: dict[str, Any] | None):
        from .autoformer_space import SubnetConfig

        arch = arch if arch is not None else self.full_arch(None)  # a supernet's own: its largest subnet
        return None if arch is None else SubnetConfig.from_dict(dict(arch))

    def full_arch(self, arch_space: Any) -> dict[str, Any] | None:
        """The unreduced model's architecture: the largest subnet of the space, or the fixed one."""
        if arch_space is not None:
            return arch_space.largest()
        if self.fixed_arch is not None:
            return self.fixed_arch
        if self.preset is not None:  # a supernet searched without an architecture section: its largest
            return self.preset.largest().to_dict()
        return None

    def depth_of(self, arch: dict[str, Any] | None) -> int:
        arch = arch if arch is not None else self.full_arch(None)
        if arch is not None:
            return int(arch["depth"])
        return len(self.model.blocks)  # type: ignore[arg-type]

    def depths(self, arch_space: Any) -> list[int]:
        return list(arch_space.depth) if arch_space is not None else [self.depth_of(None)]

    def _shape(self, arch: dict[str, Any] | None):
        from ..cost.flops import describe

        key = repr(sorted(arch.items())) if arch else ""
        if key not in self._shapes:
            self._shapes[key] = describe(self.model, self._subnet(arch) if self.family == "autoformer" else None)
        return self._shapes[key]

    # -- costs ----------------------------------------------------------------------------------------------
    def flops(self, arch: dict[str, Any] | None, schedule: Any) -> float:
        """Analytic GFLOPs per image (fvcore convention) of ``arch`` reduced by ``schedule``."""
        from ..cost.flops import count

        return count(self._shape(arch), schedule).total

    def tokens(self, candidate: Any) -> list[int]:
        """Tokens entering each block, then the final count."""
        from ..schedule import tokens_per_block

        return list(tokens_per_block(candidate.schedule, self.n_tokens, self.num_prefix))

    def cheapest_gflops(self, space: Any) -> float:
        """The cheapest candidate of a search space: the smallest subnet with every block at the largest r."""
        from ..schedule import Schedule

        arch = space.architecture.smallest() if space.architecture is not None else self.full_arch(None)
        depth = self.depth_of(arch)

        def cheapest(red: str) -> Schedule:
            if red == "none":
                return Schedule.none(depth)
            if red == "diffrate":
                return Schedule.constant(depth, int(space.r.high))
            return Schedule.recipe(red, depth, [int(space.r.high)] * depth)

        return min(self.flops(arch, cheapest(red)) for red in space.reducers)

    def constant_r_for_budget(self, arch: dict[str, Any] | None, build: Any, budget: float) -> int:
        """The least constant r whose schedule fits ``budget``, i.e. the most FLOPs under it (how the published
        recipes are run at a budget)."""
        depth = self.depth_of(arch)
        for r in range(0, self.n_tokens):
            if self.flops(arch, build([r] * depth)) <= budget:
                return r
        return self.n_tokens

    # -- models ---------------------------------------------------------------------------------------------
    def build(self, arch: dict[str, Any] | None, schedule: Any, compact: bool = False) -> nn.Module:
        """The patched model of a candidate. For a supernet the subnet is sampled in place, or extracted into
        a standalone compact module with ``compact=True`` (what deployment and throughput use)."""
        from ..patch import apply, remove

        if self.family != "autoformer":
            if compact:
                import copy

                return apply(copy.deepcopy(remove(self.model)), schedule)
            return apply(self.model, schedule)
        from .autoformer import extract_subnet

        sub = self._subnet(arch)
        remove(self.model)
        if compact:
            return apply(extract_subnet(self.model, sub), schedule)
        self.model.set_sample_config(sub)  # type: ignore[operator]
        return apply(self.model, schedule)

    def describe(self) -> dict[str, Any]:
        """The model source for exported configs: name, family, checkpoint and its sha256."""
        d: dict[str, Any] = {"name": self.name, "family": self.family}
        if self.name in EMBEDDED:
            d["weights"] = f"searcher/assets/{self.name}.safetensors"
            d["sha256"] = embedded_metadata(self.name).get("sha256")
        elif self.checkpoint:
            d["checkpoint"] = self.checkpoint
            local = local_checkpoint(self.checkpoint)  # a URL's download, made when the model was opened
            if local.is_file():
                d["sha256"] = sha256_file(local)
        if self.fixed_arch is not None:
            d["arch"] = self.fixed_arch
        if self.model_kwargs:
            d["kwargs"] = self.model_kwargs
        return d
