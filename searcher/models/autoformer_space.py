"""AutoFormer architectures as data: one subnet (:class:`SubnetConfig`), a search space with its supernet
(:class:`SearchSpace`), and the presets of the paper and of the embedded default model.

The official code (microsoft/Cream, ``AutoFormer/supernet_train.py``, ``lib/config.py``) describes a subnet as
``{'embed_dim': [E]*depth, 'layer_num': depth, 'mlp_ratio': [...], 'num_heads': [...]}`` and samples it with
``sample_configs``: depth uniformly, then embed dim once and every layer's MLP ratio and heads independently.
:meth:`SubnetConfig.from_dict` reads that format as well as ours; :meth:`SearchSpace.sample` draws the same
way.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["SubnetConfig", "SupernetConfig", "SearchSpace", "PRESETS", "SUBNETS", "get_space", "get_subnet"]

SUBNET_CONFIG_VERSION = 1


def _index(n: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(n, (1,), generator=generator).item())


@dataclass(frozen=True)
class SubnetConfig:
    """One AutoFormer subnet: a single embedding width and per-layer MLP ratio and head count."""

    embed_dim: int  # width of the residual stream (the same in every layer, as in the official spaces)
    depth: int  # number of blocks used, the first ``depth`` of the supernet
    mlp_ratio: tuple[float, ...]  # per layer; hidden width = int(embed_dim * ratio) as in the official code
    num_heads: tuple[int, ...]  # per layer; q/k/v width = heads * head_dim (``change_qkv``)
    version: int = SUBNET_CONFIG_VERSION

    def __post_init__(self) -> None:
        def integer(name: str, v: Any) -> int:  # 13.9 layers or 3.5 heads are a mistake, not 13 or 3
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise ConfigError(f"AutoFormer subnet {name} must be an integer, got {v!r}")
            return int(v)

        def ratio(v: Any) -> float:
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ConfigError(f"AutoFormer subnet mlp_ratio must be finite numbers, got {v!r}")
            return float(v)

        object.__setattr__(self, "embed_dim", integer("embed_dim", self.embed_dim))
        object.__setattr__(self, "depth", integer("depth", self.depth))
        object.__setattr__(self, "version", integer("version", self.version))
        object.__setattr__(self, "mlp_ratio", tuple(ratio(r) for r in self.mlp_ratio))
        object.__setattr__(self, "num_heads", tuple(integer("num_heads", h) for h in self.num_heads))
        if self.version != SUBNET_CONFIG_VERSION:
            raise ConfigError(f"AutoFormer subnet config version {self.version} is not supported "
                              f"(this searcher reads version {SUBNET_CONFIG_VERSION})")
        if self.embed_dim <= 0 or self.depth <= 0:
            raise ConfigError(f"AutoFormer subnet needs positive embed_dim and depth, got "
                              f"{self.embed_dim=}, {self.depth=}")
        if len(self.mlp_ratio) != self.depth or len(self.num_heads) != self.depth:
            raise ConfigError(f"AutoFormer subnet needs one mlp_ratio and one num_heads per layer: "
                              f"{self.depth=}, {len(self.mlp_ratio)=}, {len(self.num_heads)=}")
        if min(self.num_heads) <= 0 or min(self.hidden_dims()) <= 0:
            raise ConfigError(f"AutoFormer subnet needs positive heads and MLP widths (embed_dim × mlp_ratio), "
                              f"got {self}")

    def hidden_dims(self) -> list[int]:
        """MLP hidden width per layer, ``int(embed_dim * mlp_ratio)`` as in ``TransformerEncoderLayer``."""
        return [int(self.embed_dim * r) for r in self.mlp_ratio]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mlp_ratio"], d["num_heads"] = list(self.mlp_ratio), list(self.num_heads)
        return d

    def text(self) -> str:
        """One line for tables: ``embed 96, depth 6, heads 2-2-4-4-2-4, mlp 4-4-4-4-4-2``."""
        return (f"embed {self.embed_dim}, depth {self.depth}, heads {'-'.join(map(str, self.num_heads))}, "
                f"mlp {'-'.join(f'{r:g}' for r in self.mlp_ratio)}")

    def to_official(self) -> dict[str, Any]:
        """The official sample-config dict (``Vision_TransformerSuper.set_sample_config``)."""
        return {"embed_dim": [self.embed_dim] * self.depth, "layer_num": self.depth,
                "mlp_ratio": list(self.mlp_ratio), "num_heads": list(self.num_heads)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SubnetConfig:
        """Read our format or the official one (``embed_dim`` list, ``layer_num``)."""
        if not isinstance(d, dict):
            raise ConfigError(f"AutoFormer subnet config must be a mapping, got {type(d).__name__}")
        d = dict(d)
        if "layer_num" in d:
            if "depth" in d and d["depth"] != d["layer_num"]:
                raise ConfigError(f"AutoFormer subnet config has depth {d['depth']} and layer_num "
                                  f"{d['layer_num']}")
            d["depth"] = d.pop("layer_num")
        embed = d.get("embed_dim")
        if isinstance(embed, (list, tuple)):
            if len(set(embed)) != 1:
                raise ConfigError(f"AutoFormer subnets use one embed_dim in every layer, got {list(embed)}")
            if "depth" in d and len(embed) != d["depth"]:
                raise ConfigError(f"AutoFormer subnet config lists {len(embed)} embed_dims for {d['depth']} layers")
            d["embed_dim"] = embed[0]
        known = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(d) - known), sorted(known - {"version"} - set(d))
        if unknown or missing:
            what = "; ".join(f"{k} keys {v}" for k, v in (("unknown", unknown), ("missing", missing)) if v)
            raise ConfigError(f"AutoFormer subnet config: {what} (expected {sorted(known)})")
        try:
            return cls(embed_dim=d["embed_dim"], depth=d["depth"], mlp_ratio=tuple(d["mlp_ratio"]),
                       num_heads=tuple(d["num_heads"]), version=d.get("version", SUBNET_CONFIG_VERSION))
        except (TypeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"AutoFormer subnet config has a malformed value: {e}") from e


@dataclass(frozen=True)
class SupernetConfig:
    """Constructor arguments of :class:`~searcher.models.autoformer.AutoFormerSupernet` (the super dims)."""

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 768  # super embedding width
    depth: int = 12  # super depth
    num_heads: int = 12  # super head count; q/k/v super width = num_heads * head_dim
    mlp_ratio: float = 4.0  # super MLP ratio; hidden super width = int(embed_dim * mlp_ratio)
    head_dim: int = 64  # the official code hard-codes 64 (``sample_num_heads_this_layer * 64``)
    qkv_bias: bool = True
    rel_pos: bool = True  # 2D relative position tables on keys and values
    max_relative_position: int = 14
    gp: bool = True  # classify the mean of the patch tokens (else the CLS token)
    abs_pos: bool = True  # absolute position embedding
    change_qkv: bool = True  # q/k/v width follows the sampled head count

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SupernetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"AutoFormer supernet config: unknown keys {unknown} (known: {sorted(known)})")
        return cls(**d)


@dataclass(frozen=True)
class SearchSpace:
    """The choices of an AutoFormer search space and the supernet that holds them."""

    name: str
    embed_dim: tuple[int, ...]
    depth: tuple[int, ...]
    num_heads: tuple[int, ...]
    mlp_ratio: tuple[float, ...]
    supernet: SupernetConfig = field(default_factory=SupernetConfig)

    def __post_init__(self) -> None:
        s = self.supernet
        if (max(self.embed_dim) > s.embed_dim or max(self.depth) > s.depth
                or max(self.num_heads) > s.num_heads or max(self.mlp_ratio) > s.mlp_ratio):
            raise ConfigError(f"search space {self.name!r} has choices beyond its supernet ({s})")

    def largest(self) -> SubnetConfig:
        d = max(self.depth)
        return SubnetConfig(max(self.embed_dim), d, (max(self.mlp_ratio),) * d, (max(self.num_heads),) * d)

    def smallest(self) -> SubnetConfig:
        d = min(self.depth)
        return SubnetConfig(min(self.embed_dim), d, (min(self.mlp_ratio),) * d, (min(self.num_heads),) * d)

    def sample(self, generator: torch.Generator | None = None) -> SubnetConfig:
        """A uniformly drawn subnet, as the official ``sample_configs`` (depth, then per-layer choices)."""
        depth = self.depth[_index(len(self.depth), generator)]
        mlp = tuple(self.mlp_ratio[_index(len(self.mlp_ratio), generator)] for _ in range(depth))
        heads = tuple(self.num_heads[_index(len(self.num_heads), generator)] for _ in range(depth))
        embed = self.embed_dim[_index(len(self.embed_dim), generator)]
        return SubnetConfig(embed, depth, mlp, heads)

    def contains(self, cfg: SubnetConfig) -> bool:
        return (cfg.embed_dim in self.embed_dim and cfg.depth in self.depth
                and all(h in self.num_heads for h in cfg.num_heads)
                and all(r in self.mlp_ratio for r in cfg.mlp_ratio))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "embed_dim": list(self.embed_dim), "depth": list(self.depth),
                "num_heads": list(self.num_heads), "mlp_ratio": list(self.mlp_ratio),
                "supernet": self.supernet.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSpace:
        try:
            return cls(name=str(d["name"]), embed_dim=tuple(int(v) for v in d["embed_dim"]),
                       depth=tuple(int(v) for v in d["depth"]),
                       num_heads=tuple(int(v) for v in d["num_heads"]),
                       mlp_ratio=tuple(float(v) for v in d["mlp_ratio"]),
                       supernet=SupernetConfig.from_dict(d.get("supernet", {})))
        except (KeyError, TypeError) as e:
            raise ConfigError(f"malformed AutoFormer search space: {e!r}") from e


# The released supernets (REFERENCE.md; official experiments/supernet/supernet-{T,S,B}.yaml).
def _imagenet(embed_dim: int, depth: int, num_heads: int) -> SupernetConfig:
    return SupernetConfig(img_size=224, patch_size=16, in_chans=3, num_classes=1000, embed_dim=embed_dim,
                          depth=depth, num_heads=num_heads, mlp_ratio=4.0, head_dim=64)


PRESETS: dict[str, SearchSpace] = {
    "autoformer-t": SearchSpace("autoformer-t", (192, 216, 240), (12, 13, 14), (3, 4), (3.5, 4.0),
                                _imagenet(256, 14, 4)),
    "autoformer-s": SearchSpace("autoformer-s", (320, 384, 448), (12, 13, 14), (5, 6, 7), (3.0, 3.5, 4.0),
                                _imagenet(448, 14, 7)),
    "autoformer-b": SearchSpace("autoformer-b", (528, 576, 624), (14, 15, 16), (8, 9, 10), (3.0, 3.5, 4.0),
                                _imagenet(640, 16, 10)),
    # The embedded default (issue 5): Fashion-MNIST padded to 32x32, one channel, 8x8 patches of 4 px.
    "fashion-autoformer": SearchSpace(
        "fashion-autoformer", (96, 128, 160), (5, 6, 7), (2, 3, 4), (2.0, 3.0, 4.0),
        SupernetConfig(img_size=32, patch_size=4, in_chans=1, num_classes=10, embed_dim=160, depth=7,
                       num_heads=4, mlp_ratio=4.0, head_dim=32)),
}

# The searched subnets of the paper (official experiments/subnet/AutoFormer-{T,S,B}.yaml). AutoFormer-T has
# MLP ratio 3.0 in three layers, outside its space's {3.5, 4.0}; it fits the supernet all the same.
SUBNETS: dict[str, SubnetConfig] = {
    "autoformer-t": SubnetConfig(192, 13, (3.5, 3.5, 3.0, 3.5, 3.0, 3.0, 4.0, 4.0, 3.5, 4.0, 3.5, 4.0, 3.5),
                                 (3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3)),
    "autoformer-s": SubnetConfig(384, 13, (3.0, 3.5, 3.0, 3.5, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.5, 4.0),
                                 (6, 6, 5, 7, 5, 5, 5, 6, 6, 7, 7, 6, 7)),
    "autoformer-b": SubnetConfig(576, 14,
                                 (3.5, 3.5, 4.0, 3.5, 4.0, 3.5, 3.5, 3.0, 4.0, 4.0, 3.0, 4.0, 3.0, 3.5),
                                 (9, 9, 9, 9, 9, 10, 9, 9, 10, 9, 10, 9, 9, 10)),
}


def get_space(name: str) -> SearchSpace:
    """The preset search space ``name`` (``autoformer-t|s|b``, ``fashion-autoformer``; a ``-supernet``
    suffix is accepted)."""
    key = name.removesuffix("-supernet")
    if key not in PRESETS:
        raise ConfigError(f"unknown AutoFormer search space {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[key]


def get_subnet(name: str) -> SubnetConfig:
    """The searched subnet ``name`` of the paper (``autoformer-t|s|b``)."""
    if name not in SUBNETS:
        raise ConfigError(f"unknown AutoFormer subnet {name!r}; known: {sorted(SUBNETS)}")
    return SUBNETS[name]
