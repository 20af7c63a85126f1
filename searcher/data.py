"""Evaluation and training data: Fashion-MNIST (IDX files) and ImageFolder (ImageNet layout).

Every split is held as a uint8 tensor (N, C, H, W) after the geometric transform (pad, resize, crop) plus the
normalisation constants; batches are normalised on the fly. The uint8 tensors are cached on disk
(safetensors), keyed by the source files (checksums, or paths, sizes and mtimes) and the transform, so a
second run loads in well under a second and trials never decode images again.

Splits: ``train`` (for ``searcher train`` only), ``search`` (held out from training, used by the search) and
``test`` (only for confirming the Pareto set). For Fashion-MNIST ``search`` is 200 images per class drawn from
the training set with a fixed seed, and ``train`` is the other 58,000. For an ImageFolder the user names the
folders (and optionally a file list or a per-class count) of each split; see :func:`load_splits`.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import math
import os
import random
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .errors import ConfigError, DataError

__all__ = [
    "Split",
    "FASHION_CLASSES",
    "IMAGE_EXTENSIONS",
    "fashion_mnist",
    "find_fashion_mnist",
    "read_idx",
    "image_folder",
    "data_config_for",
    "resolve_data_spec",
    "load_splits",
    "check_data",
    "load_split",
    "cache_dir",
    "atomic_write",
    "atomic_write_bytes",
]

log = logging.getLogger(__name__)

FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)  # training-set statistics of the 28×28 images
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
SYSTEM_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
SEARCH_PER_CLASS = 200
SEARCH_SEED = 0
_TRANSFORM_VERSION = "pad2-v1"  # part of the cache key: change it when the preprocessing changes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff", ".gif")
_IMAGEFOLDER_VERSION = "imagefolder-v1"  # part of the cache key
_DATA_CONFIG_KEYS = ("input_size", "img_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
_CROP_MODES = ("center", "squash", "border")
_INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos", "box", "hamming")
PARALLEL_MIN_FILES = 64  # fewer images than this are decoded in the calling thread


@dataclass
class Split:
    """One split held in memory: uint8 images (N, C, H, W), int64 labels (N,), normalisation constants."""

    name: str
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: list[str]
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalize(self, images_u8: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) → normalised float32."""
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        return (images_u8.float() / 255.0 - mean) / std

    def batches(self, batch_size: int, start: int = 0,
                stop: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised (images, labels) batches over ``[start, stop)`` in order."""
        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size=}")
        stop = len(self) if stop is None else min(stop, len(self))
        for i in range(start, stop, batch_size):
            j = min(i + batch_size, stop)
            yield self.normalize(self.images[i:j]), self.labels[i:j]

    def subset(self, n: int) -> Split:
        """The first ``n`` images (splits are already shuffled or stratified where it matters)."""
        return Split(self.name, self.images[:n], self.labels[:n], self.mean, self.std, self.classes,
                     self.source, dict(self.meta))

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def fingerprint(self, n: int | None = None) -> str:
        """sha256 of what identifies the first ``n`` images: labels, class names, normalisation and, for an
        ImageFolder split, each file (path within its root, size) and the data config — equal for the same files
        wherever they lie, whichever Pillow decodes them — else the pixels themselves."""
        h = hashlib.sha256(json.dumps([self.classes, list(self.mean), list(self.std)]).encode())
        h.update(self.labels[:n].contiguous().numpy().data)
        if "sizes" in self.meta:
            files = [self.meta["files"][:n], self.meta["sizes"][:n], self.meta.get("data_config")]
            h.update(json.dumps(files).encode())
        else:
            h.update(self.images[:n].contiguous().numpy().data)  # hashed in place (no copy of a large split)
        return h.hexdigest()


# ------------------------------------------------------------------------------------------------- utilities
def cache_dir() -> Path:
    """Where preprocessed tensors and timings are cached: ``$SEARCHER_CACHE`` or ``~/.cache/searcher``."""
    return Path(os.environ.get("SEARCHER_CACHE") or Path.home() / ".cache" / "searcher")


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary file beside ``path``, then rename it into place: a crash never leaves half a
    file, and an error (or Ctrl-C) leaves no temporary file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def held_alone(lock_path: Path, refuse: Callable[[str], Exception]) -> Iterator[None]:
    """Run the block holding an exclusive ``flock`` on ``lock_path`` (which records this process's pid); another
    process holding it: ``refuse(who)`` is raised (who: "pid N"). The lock goes with the process, however it ends.
    Where there is no flock (Windows; a file system without locks, such as NFS without lockd) the block runs
    unlocked, with a warning."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock_path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise refuse(f.read().strip() or "another process") from None
        except OSError as e:
            log.warning(f"cannot lock {lock_path} ({e.strerror or e}): nothing keeps a second run away from it")
            yield
            return
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_key(prefix: str, parts: Any) -> str:
    return f"{prefix}-" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _cache_path(key: str) -> Path:
    return cache_dir() / f"{key}.safetensors"


def _mapped(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, memory-mapped copy-on-write instead of read: pages are read as they are
    used and shared by every process that maps the file (a study's workers share one copy of the split, and
    never read the test split, which only the end's evaluation uses: at ImageNet scale 7.5 GB per process).
    Anything else than our caches' tensors (another dtype, an empty tensor, a big-endian host) is read."""
    import sys

    import numpy as np

    dtypes = {"U8": np.uint8, "I64": np.int64, "F32": np.float32, "F64": np.float64, "I32": np.int32}
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    if sys.byteorder != "little" or not all(v.get("dtype") in dtypes and math.prod(v["shape"]) > 0 and v["shape"]
                                            for v in header.values()):
        return load_file(str(path))
    size, out = path.stat().st_size, {}
    for name, info in header.items():
        (begin, end), shape, dtype = info["data_offsets"], tuple(info["shape"]), np.dtype(dtypes[info["dtype"]])
        if 8 + n + end > size or end - begin != dtype.itemsize * math.prod(shape):
            raise ValueError(f"tensor {name} lies outside the file")
        out[name] = torch.from_numpy(np.memmap(path, dtype=dtype, mode="c", offset=8 + n + begin, shape=shape))
    return out


def _cache_load(key: str, required: Iterable[str] = ()) -> dict[str, torch.Tensor] | None:
    """The cached tensors under ``key`` (memory-mapped), or None when absent, unreadable or missing one of
    ``required``."""
    path = _cache_path(key)
    if not path.exists():
        return None
    try:
        tensors = _mapped(path)
    except Exception as e:  # a damaged cache file is rebuilt, never trusted
        log.warning("ignoring unreadable cache file %s (%s)", path, e)
        return None
    missing = [k for k in required if k not in tensors]
    if missing:
        log.warning("ignoring cache file %s without %s", path, missing)
        return None
    return tensors


def _cache_save(key: str, tensors: dict[str, torch.Tensor]) -> bool:
    """Whether ``tensors`` were cached under ``key``."""
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        atomic_write(_cache_path(key), lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp)))
        return True
    except Exception as e:  # caching is an optimisation; a read-only or full disk must not stop a run
        log.warning("could not write cache in %s (%s)", d, e)
        return False


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------------------------ IDX reading
def read_idx(path: Path, expect_dims: int) -> torch.Tensor:
    """Read an IDX file (gzip or raw) of unsigned bytes with ``expect_dims`` dimensions.

    Checks the magic number, the dimension count and that the payload size matches the header.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise DataError(f"cannot read {path}: {e}; reinstall the data (apt-get install dataset-fashion-mnist)"
                        ) from e
    if len(raw) < 4:
        raise DataError(f"{path} is not an IDX file: only {len(raw)} bytes; reinstall the data")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08 or ndim != expect_dims:
        raise DataError(
            f"{path} has magic number 0x{raw[:4].hex()}, expected 0x0000080{expect_dims} "
            f"(unsigned bytes, {expect_dims} dimensions); is it the right file?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header ({len(raw)} of {header} bytes); "
                        "reinstall the data")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = 1
    for d in dims:
        expected *= d
    found = len(raw) - header
    if found != expected:
        raise DataError(
            f"{path} is truncated or padded: header says {'x'.join(map(str, dims))} = {expected} bytes, "
            f"found {found}; reinstall the data"
        )
    if expected == 0:  # torch.frombuffer rejects an empty buffer
        return torch.empty(dims, dtype=torch.uint8)
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)


def _candidate_dirs(data_dir: str | Path | None) -> list[Path]:
    if data_dir:
        root = Path(data_dir).expanduser()
    elif os.environ.get("SEARCHER_DATA"):
        root = Path(os.environ["SEARCHER_DATA"]).expanduser()
    else:
        root = SYSTEM_FASHION_DIR
    # the directory itself, then torchvision's download layout under it
    return [root, root / "FashionMNIST" / "raw", root / "fashion-mnist"]


def _find_file(d: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (d / name).is_file():
            return d / name
    return None


def find_fashion_mnist(data_dir: str | Path | None = None) -> dict[str, Path]:
    """Locate the four IDX files: ``--data-dir``, else ``$SEARCHER_DATA``, else the Debian package's
    directory; under each, also torchvision's ``FashionMNIST/raw`` layout."""
    tried = _candidate_dirs(data_dir)
    for d in tried:
        found = {k: _find_file(d, stem) for k, stem in FASHION_FILES.items()}
        if all(found.values()):
            return {k: v for k, v in found.items() if v is not None}
        if any(found.values()):  # a partial set is a clearer error than "not found"
            missing = [FASHION_FILES[k] + "[.gz]" for k, v in found.items() if v is None]
            raise DataError(f"{d} has only some of the Fashion-MNIST IDX files: missing "
                            f"{', '.join(missing)}; copy them there or reinstall the data "
                            "(apt-get install dataset-fashion-mnist)")
    where = ", ".join(str(d) for d in tried)
    hint = "" if tried[0].is_dir() else (f" ({tried[0]} is a file, not a directory)" if tried[0].exists()
                                          else f" ({tried[0]} does not exist)")
    raise DataError(
        f"Fashion-MNIST IDX files not found (looked in {where}){hint}; install them with "
        "'apt-get install dataset-fashion-mnist', or pass --data-dir / set SEARCHER_DATA to a directory "
        "holding train-images-idx3-ubyte[.gz] and the other three files"
    )


def _pad_to_32(images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) uint8 → (N, 1, 32, 32), zero padding of 2 on each side."""
    return torch.nn.functional.pad(images.unsqueeze(1), (2, 2, 2, 2))


_FASHION_SPLITS = ("train", "search", "test")


def _fashion_tensors_ok(t: dict[str, torch.Tensor]) -> bool:
    for name in _FASHION_SPLITS:
        x, y = t[f"{name}_images"], t[f"{name}_labels"]
        if (x.dtype != torch.uint8 or y.dtype != torch.int64 or x.ndim != 4
                or tuple(x.shape[1:]) != (1, 32, 32) or y.shape != (x.shape[0],)):
            return False
    return True


def fashion_mnist(data_dir: str | Path | None = None) -> dict[str, Split]:
    """The three Fashion-MNIST splits (``train`` 58,000, ``search`` 2,000 stratified, ``test`` 10,000)."""
    files = find_fashion_mnist(data_dir)
    sums = {k: _sha256(p) for k, p in sorted(files.items())}
    key = _cache_key("fmnist", [sums, _TRANSFORM_VERSION, SEARCH_PER_CLASS, SEARCH_SEED])
    required = [f"{n}_{part}" for n in _FASHION_SPLITS for part in ("images", "labels")]
    tensors = _cache_load(key, required)
    if tensors is not None and not _fashion_tensors_ok(tensors):
        log.warning("ignoring inconsistent cache file %s", _cache_path(key))
        tensors = None
    if tensors is None:
        tensors = _build_fashion(files)
        _cache_save(key, tensors)
    source = str(files["train_images"].parent)
    return {
        name: Split(name, tensors[f"{name}_images"], tensors[f"{name}_labels"], FASHION_MEAN, FASHION_STD,
                    FASHION_CLASSES, source,
                    {"checksums": dict(sums), "files": {k: str(p) for k, p in files.items()}})
        for name in _FASHION_SPLITS
    }


def _build_fashion(files: dict[str, Path]) -> dict[str, torch.Tensor]:
    train_x, train_y = read_idx(files["train_images"], 3), read_idx(files["train_labels"], 1)
    test_x, test_y = read_idx(files["test_images"], 3), read_idx(files["test_labels"], 1)
    for x, y, what in ((train_x, train_y, "train"), (test_x, test_y, "test")):
        images, labels = files[f"{what}_images"], files[f"{what}_labels"]
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{images} has {x.shape[0]} images but {labels} has {y.shape[0]} labels; "
                            "reinstall the data")
        if x.shape[0] == 0:
            raise DataError(f"{images} holds no images; reinstall the data")
        if x.shape[1:] != (28, 28):
            raise DataError(f"{images} holds {'x'.join(map(str, x.shape[1:]))} images, expected 28x28; "
                            "is it the right file?")
        if int(y.max()) >= len(FASHION_CLASSES):
            raise DataError(f"{labels} has label {int(y.max())}, out of range 0-9; reinstall the data")
    train_y, test_y = train_y.long(), test_y.long()
    g = torch.Generator().manual_seed(SEARCH_SEED)
    search_idx = []
    for c in range(len(FASHION_CLASSES)):
        idx = (train_y == c).nonzero().flatten()
        if len(idx) < 2 * SEARCH_PER_CLASS:
            raise DataError(f"{files['train_labels']} has only {len(idx)} images of class {c}, "
                            f"need at least {2 * SEARCH_PER_CLASS}; is the file complete?")
        search_idx.append(idx[torch.randperm(len(idx), generator=g)[:SEARCH_PER_CLASS]])
    search = torch.cat(search_idx)
    search = search[torch.randperm(len(search), generator=g)]  # interleave classes: any prefix is ~balanced
    mask = torch.ones(len(train_y), dtype=torch.bool)
    mask[search] = False
    train_x = _pad_to_32(train_x)
    return {
        "train_images": train_x[mask].contiguous(), "train_labels": train_y[mask].contiguous(),
        "search_images": train_x[search].contiguous(), "search_labels": train_y[search].contiguous(),
        "test_images": _pad_to_32(test_x).contiguous(), "test_labels": test_y.contiguous(),
    }


# ------------------------------------------------------------------------------------------------ ImageFolder
def data_config_for(model: Any, overrides: dict | None = None) -> dict:
    """The timm eval data config (input_size, interpolation, mean, std, crop_pct, crop_mode) of ``model``.

    ``model`` is a timm model name (its pretrained config is read; nothing is downloaded), an ``nn.Module``
    (its ``pretrained_cfg``, timm's ImageNet defaults without one), None (timm's defaults), or a dict of
    data-config fields (``input_size`` [C, H, W] or ``img_size``, ``interpolation``, ``mean``, ``std``,
    ``crop_pct``, ``crop_mode``). ``overrides`` (the same fields) take precedence; what neither gives comes
    from timm's defaults, as ``timm.data.resolve_data_config`` resolves them.
    """
    from timm.data import resolve_data_config

    args: dict = {}
    pretrained: dict = {}
    for fields in (model if isinstance(model, dict) else {}, overrides or {}):
        unknown = sorted(set(fields) - set(_DATA_CONFIG_KEYS))
        if unknown:
            raise ConfigError(f"unknown data-config field(s) {unknown}; use {list(_DATA_CONFIG_KEYS)}")
        args.update({k: v for k, v in fields.items() if v is not None})
    if isinstance(model, str):
        pretrained = _timm_pretrained_cfg(model)
    elif model is None or isinstance(model, dict):
        pass
    elif isinstance(model, torch.nn.Module):
        cfg = getattr(model, "pretrained_cfg", None) or {}
        pretrained = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
        defaults = [k for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
                    if k not in args and not (k == "input_size" and "img_size" in args)]
        if not pretrained and defaults:  # a config's recorded data config gives every field: nothing to say
            log.warning("%s has no timm pretrained_cfg; using timm's default ImageNet %s", type(model).__name__,
                        ", ".join(defaults))
    else:
        raise ConfigError(f"cannot derive a data config from {type(model).__name__}; give a timm model name "
                          "or a dict such as {'input_size': [3, 224, 224], 'crop_pct': 0.875}")
    for k in ("mean", "std"):  # one number for every channel, as timm's ``--mean 0.5`` takes it
        if _is_number(args.get(k)):
            args[k] = [args[k]]
    if args.get("crop_pct") is not None and not _is_number(args["crop_pct"]):
        raise ConfigError(f"data config crop_pct={args['crop_pct']!r} must be a number in (0, 1]")
    if args.get("crop_pct") == 0:  # resolve_data_config would silently replace a falsy 0 by its default
        raise ConfigError("data config crop_pct=0 must be in (0, 1]")
    try:
        # resolve_data_config insists on one non-empty source; (3, 224, 224) is its own default
        cfg = resolve_data_config(args=args, pretrained_cfg=pretrained or {"input_size": (3, 224, 224)})
        out: dict[str, Any] = {
            "input_size": [int(v) for v in cfg["input_size"]],
            "interpolation": str(cfg["interpolation"]),
            "mean": [float(v) for v in cfg["mean"]],
            "std": [float(v) for v in cfg["std"]],
            "crop_pct": float(cfg["crop_pct"]),
            "crop_mode": str(cfg["crop_mode"]),
        }
    except (AssertionError, TypeError, ValueError, KeyError) as e:  # timm checks with bare asserts
        raise ConfigError(f"invalid data config {str(model)[:200]}: input_size must be [C, H, W], img_size "
                          "an integer, and mean/std one value or one per channel") from e
    c, h, w = out["input_size"]
    if c not in (1, 3) or h < 1 or w < 1:
        raise ConfigError(f"data config input_size {out['input_size']} must be [1 or 3, H, W] with H, W >= 1")
    if not 0 < out["crop_pct"] <= 1:
        raise ConfigError(f"data config crop_pct={out['crop_pct']} must be in (0, 1]")
    if out["crop_mode"] not in _CROP_MODES:
        raise ConfigError(f"data config crop_mode={out['crop_mode']!r} must be one of {list(_CROP_MODES)}")
    if out["interpolation"] not in _INTERPOLATIONS:
        raise ConfigError(f"data config interpolation={out['interpolation']!r} must be one of "
                          f"{list(_INTERPOLATIONS)}")
    if len(out["mean"]) != c or len(out["std"]) != c or min(out["std"]) <= 0:
        raise ConfigError(f"data config mean {out['mean']} and std {out['std']} need {c} value(s), std > 0")
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _timm_pretrained_cfg(name: str) -> dict:
    import timm
    from timm.models import get_pretrained_cfg

    if not timm.is_model(name):
        raise ConfigError(f"{name!r} is not a timm model, so its data config is unknown; give the data "
                          "config as a dict instead, e.g. {'input_size': [3, 224, 224], 'crop_pct': 0.875}")
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as e:  # a wrong pretrained tag
        raise ConfigError(f"timm model {name!r}: {e}") from e
    return cfg.to_dict() if cfg is not None else {}


def _geometric_transform(cfg: dict):
    """timm's eval transform for ``cfg`` without ToTensor/Normalize: PIL image → uint8 (C, H, W) tensor.

    ``use_prefetcher=True`` is how timm itself defers normalisation (to its GPU prefetcher); here
    :meth:`Split.normalize` does it per batch.
    """
    from timm.data import create_transform

    try:
        return create_transform(input_size=tuple(cfg["input_size"]), is_training=False,
                                interpolation=cfg["interpolation"], mean=tuple(cfg["mean"]),
                                std=tuple(cfg["std"]), crop_pct=cfg["crop_pct"], crop_mode=cfg["crop_mode"],
                                use_prefetcher=True)
    except (KeyError, ValueError) as e:  # e.g. an unknown interpolation name
        raise ConfigError(f"invalid data config {cfg}: {e!r}") from e


def _class_folders(root: Path) -> list[str]:
    if not root.exists():
        raise DataError(f"ImageFolder root {root} does not exist; give a folder with one subfolder per "
                        "class")
    if not root.is_dir():
        raise DataError(f"ImageFolder root {root} is not a folder; give a folder with one subfolder per "
                        "class")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        loose = sum(1 for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        hint = f" ({loose} images lie directly in it)" if loose else ""
        raise DataError(f"ImageFolder root {root} has no class folders{hint}; expected the ImageNet layout "
                        "root/<class>/<image>.jpg")
    return names


def _images_in(root: Path, cls: str) -> list[str]:
    """Image paths under ``root/cls`` (recursively, hidden entries skipped, symlinks followed, each folder once:
    a link to a folder already walked or above the class folder is a loop), relative to root, sorted."""
    out = []
    start, seen = os.path.realpath(root / cls), set()
    for dirpath, dirnames, filenames in os.walk(root / cls, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen or start.startswith(real + os.sep):
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(root).as_posix()
        out += [f"{rel}/{f}" for f in filenames
                if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(out)


def _read_file_list(files: str | Path | Sequence[str]) -> tuple[list[str], str]:
    """Entries of a file list (a text file: one relative path a line, ``#`` comments) and its name."""
    if isinstance(files, str | Path):
        path = Path(files).expanduser()
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()  # a byte-order mark is not part of a path
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read file list {path}: {e}") from e
        where = str(path)
    else:
        lines, where = [str(f) for f in files], "the file list"
    entries = [ln.strip() for ln in lines]
    entries = [e for e in entries if e and not e.startswith("#")]
    if not entries:
        raise DataError(f"{where} names no images; write one path relative to the root per line")
    return list(dict.fromkeys(e.replace("\\", "/").removeprefix("./") for e in entries)), where


def _imagenet_subset(model: Any) -> str | None:
    """The ImageNet subset (``imagenet-1k``, …) a timm model name or module was trained on, if known."""
    from timm.data import infer_imagenet_subset

    if isinstance(model, str):
        try:
            return infer_imagenet_subset(_timm_pretrained_cfg(model))
        except ConfigError:
            return None
    if isinstance(model, torch.nn.Module):
        try:
            return infer_imagenet_subset(model)
        except AttributeError:  # a pretrained_cfg of None
            return None
    return None


def _resolve_classes(classes: str | Path | Sequence[str] | None, folders: Iterable[str], model: Any,
                     where: str, outputs: int | None = None) -> list[str]:
    """The ordered class list: label ``i`` is ``classes[i]``.

    ``None`` (auto): the class order of the ImageNet subset the timm model was trained on when every folder is
    one of its WordNet ids (so a folder holding only some ImageNet classes still gets the model's label
    indices), else the sorted folder names; also when the model's ``outputs`` are as many as the folders and not
    the subset's classes (a model fine-tuned on them, ordered as timm's ``train.py`` orders them). A string is a
    text file (one class a line) or an ImageNet subset name known to timm (``imagenet-1k``); a list is used as
    given.
    """
    folders = sorted(set(folders))
    if classes is None:
        subset = _imagenet_subset(model)
        if subset:
            from timm.data import ImageNetInfo

            names = list(ImageNetInfo(subset).label_names())
            others = [f for f in folders if f not in set(names)]
            if outputs == len(folders) != len(names):
                log.info("the model has %d outputs, one per class folder: using their sorted order", outputs)
                return folders
            if not others:
                log.info("class folders are %s WordNet ids; using that label order", subset)
                return names
            if len(others) < len(folders):  # some are: the others are strays, not classes of their own
                raise DataError(f"{where} mixes {subset} WordNet-id class folders with {len(others)} other "
                                f"folder(s) {others[:5]}; move those out, or give 'classes' explicitly")
            if isinstance(model, torch.nn.Module) and getattr(model, "num_classes", None) == len(names):
                raise DataError(f"{where} has class folders {others[:3]} that are not {subset} WordNet ids, but "
                                f"the model classifies the {len(names)} {subset} classes; give the folder whose "
                                "sub-folders are the ImageNet classes (such as ImageNet's val/, not its root), or "
                                "a model trained on these classes")
        return folders
    if isinstance(classes, str | Path):
        path = Path(classes).expanduser()
        if path.is_file():
            try:
                names = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()]
            except (OSError, UnicodeDecodeError) as e:
                raise DataError(f"cannot read class list {path}: {e}") from e
        else:
            from timm.data import ImageNetInfo

            try:
                names = list(ImageNetInfo(str(classes)).label_names())
            except AssertionError as e:
                raise ConfigError(f"classes {str(classes)!r} is neither a file (one class a line) nor an "
                                  "ImageNet subset known to timm such as 'imagenet-1k'") from e
    else:
        names = [str(c) for c in classes]
    if len(set(names)) != len(names) or not names:
        raise ConfigError(f"the class list {str(classes)[:80]!r} is empty or names a class twice")
    extra = [f for f in folders if f not in set(names)]
    if extra:
        raise DataError(f"{where} has class folder(s) {extra[:5]} that are not in the class list "
                        f"({len(names)} classes: {names[:3]}…); fix the folders or the 'classes' option")
    return names


def _select(root: Path, classes: list[str], folders: list[str], files: str | Path | Sequence[str] | None,
            per_class: int | None, seed: int) -> list[str]:
    """Relative paths of the split's images: all images of each class folder, or the file list; then at most
    ``per_class`` per class (a fixed-seed sample), interleaved in a fixed-seed order."""
    known = set(classes)
    by_class: dict[str, list[str]] = {}
    if files is None:
        for cls in folders:
            found = _images_in(root, cls)
            if not found:
                raise DataError(f"class folder {root / cls} holds no images (looked for "
                                f"{', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder")
            by_class[cls] = found
    else:
        entries, where = _read_file_list(files)
        for rel in entries:
            parts = rel.split("/")
            if rel.startswith("/") or ".." in parts or len(parts) < 2:
                raise DataError(f"{where}: {rel!r} must be a path relative to {root} that starts with its "
                                "class folder, such as 'n01440764/img_001.JPEG'")
            if parts[0] not in known:
                raise DataError(f"{where}: {rel!r} is in folder {parts[0]!r}, which is not a class; entries are "
                                f"paths relative to {root}, starting with the class folder")
            if not (root / rel).is_file():
                raise DataError(f"{where}: {root / rel} does not exist")
            by_class.setdefault(parts[0], []).append(rel)
    if per_class is not None:
        if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
            raise ConfigError(f"per_class of the split in {root} must be a positive integer, got {per_class!r}")
        for cls, paths in by_class.items():
            if len(paths) < per_class:
                log.warning("class %s has only %d images in %s (per_class=%d); using all of them",
                            cls, len(paths), root, per_class)
            else:  # a seed per class: changing one folder does not reshuffle the others
                by_class[cls] = sorted(random.Random(f"{seed}/{cls}").sample(paths, per_class))
    chosen = [p for cls in sorted(by_class) for p in by_class[cls]]
    random.Random(seed).shuffle(chosen)  # interleave classes: any prefix is ~balanced
    return chosen


def _decode(path: Path, transform, mode: str) -> torch.Tensor:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return transform(im.convert(mode))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path}: {e}; replace or delete it, or leave it out of the "
                        "file list") from e


def _decode_all(root: Path, rel: list[str], transform, shape: tuple[int, int, int], workers: int | None,
                desc: str) -> torch.Tensor:
    """Decode and transform every image into one preallocated uint8 tensor (N, C, H, W).

    Threads, because PIL releases the GIL while decoding and resizing, and they fill ``out`` in place.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    mode = "L" if shape[0] == 1 else "RGB"
    out = torch.empty((len(rel), *shape), dtype=torch.uint8)

    def work(lo: int, hi: int) -> int:
        for i in range(lo, hi):
            out[i] = _decode(root / rel[i], transform, mode)
        return hi - lo

    n, n_jobs = len(rel), workers or _usable_cores()
    with tqdm(total=n, desc=desc, unit="img", disable=None, leave=False) as bar:
        if n_jobs <= 1 or n < PARALLEL_MIN_FILES:
            for i in range(n):
                bar.update(work(i, i + 1))
        else:
            step = max(8, min(256, n // (8 * n_jobs)))
            jobs = (delayed(work)(lo, min(lo + step, n)) for lo in range(0, n, step))
            for done in Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator_unordered")(jobs):
                bar.update(done)
    return out


def image_folder(root: str | Path, model: Any = None, *, data_config: dict | None = None,
                 per_class: int | None = None, files: str | Path | Sequence[str] | None = None, seed: int = 0,
                 name: str = "search", classes: str | Path | Sequence[str] | None = None,
                 workers: int | None = None) -> Split:
    """One split from an ImageNet-layout folder ``root/<class>/<image>``, preprocessed once and cached.

    The transform is the model's own timm eval transform (``resolve_data_config`` + ``create_transform``),
    stored as uint8 after its geometric part (resize, center crop); the config's mean/std normalise batches
    on the fly.

    Args:
        root: folder with one subfolder per class (images may be nested deeper inside it).
        model: a timm model name, an ``nn.Module`` or a data-config dict (see :func:`data_config_for`).
        data_config: data-config fields that override the model's (or, without a model, timm's defaults).
        per_class: keep at most this many images per class, a fixed-seed sample.
        files: a text file of paths relative to ``root`` (one a line, ``#`` comments), or a list of them;
            only these images are used. The first path component is the class folder.
        seed: seed of the per-class sample and of the (class-interleaving) image order.
        name: the split's name (``search``, ``test``, ``train``).
        classes: the class order (see :func:`_resolve_classes`): None for auto, a text file, an ImageNet
            subset name such as ``imagenet-1k``, or a list.
        workers: decoding threads (default: all usable cores).

    The cache key covers the resolved root, every selected path with its size and mtime, the labels, the
    data config and the transform, so editing, adding or touching an image rebuilds the cache.
    """
    if model is None and data_config is None:
        raise ConfigError("an ImageFolder split needs the model (a timm name) or a data config to preprocess "
                          "its images")
    cfg = data_config_for(model, data_config)
    root = Path(root).expanduser()
    folders = _class_folders(root)
    class_list = _resolve_classes(classes, folders, model, str(root))
    return _image_folder_split(root, cfg, class_list, folders, files, per_class, seed, name, workers)


def _image_folder_split(root: Path, cfg: dict, class_list: list[str], folders: list[str],
                        files: str | Path | Sequence[str] | None, per_class: int | None, seed: int, name: str,
                        workers: int | None) -> Split:
    from PIL import __version__ as pil_version

    rel = _select(root, class_list, folders, files, per_class, seed)
    index = {c: i for i, c in enumerate(class_list)}
    labels = torch.tensor([index[p.split("/", 1)[0]] for p in rel], dtype=torch.int64)
    stats = []
    for p in rel:
        try:
            st = (root / p).stat()
        except OSError as e:
            raise DataError(f"cannot read image {root / p}: {e}") from e
        stats.append([p, st.st_size, st.st_mtime_ns])
    transform = _geometric_transform(cfg)
    shape = tuple(cfg["input_size"])
    key = _cache_key("imagefolder", [_IMAGEFOLDER_VERSION, str(root.resolve()), stats, class_list, cfg,
                                     repr(transform), pil_version])
    tensors = _cache_load(key, ("images", "labels"))
    if tensors is not None and (tensors["images"].dtype != torch.uint8
                                or tuple(tensors["images"].shape) != (len(rel), *shape)
                                or not torch.equal(tensors["labels"], labels)):
        log.warning("ignoring inconsistent cache file %s", _cache_path(key))
        tensors = None
    decoded = tensors is None
    if tensors is None:
        log.info("decoding %d images from %s once; cached as %s", len(rel), root, _cache_path(key))
        images = _decode_all(root, rel, transform, (shape[0], shape[1], shape[2]), workers, f"decode {name}")
        tensors = {"images": images, "labels": labels}
        if _cache_save(key, tensors):  # mapped from the file just written: the decoded copy's memory goes
            tensors = _cache_load(key, ("images", "labels")) or tensors
    meta = {"kind": "imagefolder", "root": str(root), "files": rel, "sizes": [st[1] for st in stats],
            "data_config": cfg,
            "per_class": per_class, "seed": seed,
            "file_list": str(files) if isinstance(files, str | Path) else None,
            "cache": str(_cache_path(key)), "decoded": decoded}
    return Split(name, tensors["images"], tensors["labels"], tuple(cfg["mean"]), tuple(cfg["std"]),
                 class_list, str(root), meta)


# ---------------------------------------------------------------------------------------------------- specs
_FASHION_KEYS = ("kind", "dir")
_IMAGEFOLDER_KEYS = ("kind", "model", "data_config", "classes", "seed", "workers", "train", "search", "test")
_SPLIT_KEYS = ("root", "per_class", "files", "seed")


def load_splits(spec: dict | None = None, model: Any = None, outputs: int | None = None) -> dict[str, Split]:
    """The splits of a study's ``data`` section.

    Fashion-MNIST (the default)::

        {"kind": "fashion-mnist", "dir": "/path/to/idx"}   # dir optional: $SEARCHER_DATA, then the system

    gives ``train``, ``search`` and ``test``. ImageFolder (ImageNet layout)::

        {"kind": "imagefolder",
         "model": "deit_small_patch16_224",   # timm name or data-config dict {"input_size": [3, 224, 224], …}
         "data_config": {"crop_pct": 1.0},    # optional: fields that override the model's data config
         "classes": "imagenet-1k",            # optional class order (see image_folder); default: auto
         "seed": 0,                           # optional, for per_class and the image order
         "search": {"root": "/data/imagenet/train", "per_class": 10},
         "test": {"root": "/data/imagenet/val", "files": "val_subset.txt"},
         "train": {...}}                      # optional; at least one of train/search/test

    Each split is ``{"root": …, "per_class": N, "files": PATH, "seed": S}`` (only ``root`` required) or just
    the root as a string. Paths are used as given (relative to the working directory); file-list entries are
    relative to the split's root. All splits share one class list (auto: the union of their class folders,
    sorted, or the model's ImageNet order), so labels agree between them. The ``model`` argument (a timm name
    or ``nn.Module``) is used when the spec has no ``model``; ``outputs``, the number of the model's outputs,
    tells a model fine-tuned on the folders' classes from one of the ImageNet subset's. Splits that share images
    are an error: the search split is never the test split, and no model may train on it.
    """
    spec = dict(spec or {})
    if _data_kind(spec) == "fashion-mnist":
        return fashion_mnist(spec.get("dir"))
    return _imagefolder_splits(spec, model, outputs)


def _data_kind(spec: dict) -> str:
    """The spec's kind, its keys checked."""
    kind = str(spec.get("kind", "fashion-mnist")).lower()
    if kind == "fashion-mnist":
        _check_keys(spec, _FASHION_KEYS, "the fashion-mnist data spec")
        if spec.get("dir") is not None and not isinstance(spec["dir"], str | Path):
            raise ConfigError(f"'dir' of the fashion-mnist data spec must be a folder, got {spec['dir']!r}")
    elif kind == "imagefolder":
        _check_keys(spec, _IMAGEFOLDER_KEYS, "the imagefolder data spec")
    else:
        raise ConfigError(f"unknown data kind {kind!r}; use 'fashion-mnist' or 'imagefolder'")
    return kind


def _imagefolder_parts(spec: dict) -> dict[str, dict]:
    """The splits an ImageFolder spec defines, each ``{"root": Path, …}``, with every option's type checked (a
    wrong one is a ConfigError naming it, not a TypeError deep in the loading)."""

    def count(value: Any, what: str, low: int | None = 1) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or low is not None and value < low):
            least = "a positive integer" if low == 1 else "a non-negative integer" if low == 0 else "an integer"
            raise ConfigError(f"{what} of the imagefolder data spec must be {least}, got {value!r}")

    if spec.get("model") is not None and not isinstance(spec["model"], str | dict):
        raise ConfigError(f"'model' of the imagefolder data spec must be a timm model name or a data-config "
                          f"mapping, got {spec['model']!r}")
    count(spec.get("seed"), "'seed'", low=None)
    count(spec.get("workers"), "'workers' (decoding threads; 0: every usable core)", low=0)
    classes = spec.get("classes")
    if classes is not None and not (isinstance(classes, str | Path) or isinstance(classes, list | tuple) and all(
            isinstance(c, str | int) and not isinstance(c, bool) for c in classes)):
        raise ConfigError(f"'classes' of the imagefolder data spec must be a class-list file, an ImageNet subset "
                          f"such as 'imagenet-1k', or a list of class-folder names, got {classes!r}")
    if spec.get("data_config") is not None and not isinstance(spec["data_config"], dict):
        raise ConfigError(f"'data_config' of the imagefolder data spec must be a mapping such as "
                          f"{{input_size: [3, 224, 224]}}, got {spec['data_config']!r}")
    parts: dict[str, dict] = {}
    for name in ("train", "search", "test"):
        if spec.get(name) is None:
            continue
        part = spec[name]
        if not isinstance(part, str | Path | dict):
            raise ConfigError(f"the imagefolder {name!r} split must be a folder or {{root: FOLDER, per_class: N, "
                              f"files: LIST}}, got {part!r}")
        part = {"root": part} if isinstance(part, str | Path) else dict(part)
        _check_keys(part, _SPLIT_KEYS, f"the imagefolder {name!r} split")
        if not part.get("root") or not isinstance(part["root"], str | Path):
            raise ConfigError(f"the imagefolder {name!r} split needs 'root': the folder with one subfolder "
                              f"per class, got {part.get('root')!r}")
        count(part.get("per_class"), f"'per_class' of the {name!r} split")
        count(part.get("seed"), f"'seed' of the {name!r} split", low=None)
        files = part.get("files")
        if files is not None and not (isinstance(files, str | Path) or isinstance(files, list | tuple)
                                      and all(isinstance(f, str) for f in files)):
            raise ConfigError(f"'files' of the {name!r} split must be a list file or a list of paths, got "
                              f"{files!r}")
        part["root"] = Path(part["root"]).expanduser()
        parts[name] = part
    if not parts:
        raise ConfigError("the imagefolder data spec defines no split; give 'search' and 'test' (and "
                          "optionally 'train'), each {'root': FOLDER, 'per_class': N, 'files': LIST}")
    return parts


def check_data(spec: dict | None, need: Sequence[str] = ()) -> None:
    """That a study's ``data`` section is well formed (its keys and their types) and names the splits ``need``,
    and that the folders of an ImageFolder spec exist (one directory listing each): what a study checks before it
    fetches the model's weights, which :func:`load_splits` needs first."""
    spec = dict(spec or {})
    kind = _data_kind(spec)
    if kind == "fashion-mnist":
        return
    parts = _imagefolder_parts(spec)
    missing = [name for name in need if name not in parts]
    if missing:
        raise ConfigError(f"the imagefolder data spec has no {' or '.join(map(repr, missing))} split; a study "
                          "searches on 'search' and confirms on 'test', each {'root': FOLDER} or a folder")
    for part in parts.values():
        _class_folders(part["root"])


def load_split(spec: dict | None, name: str, model: Any = None) -> Split:
    """The split ``name`` of :func:`load_splits`; an error naming the splits there are when it is missing."""
    splits = load_splits(spec, model=model)
    if name not in splits:
        raise ConfigError(f"the data has no {name!r} split; choose --split from {sorted(splits)}")
    return splits[name]


def resolve_data_spec(spec: dict | None, base_dir: str | Path | None = None,
                      splits: dict[str, Split] | None = None) -> dict:
    """``spec`` (a study's ``data``) made independent of the working directory: relative folders are the working
    directory's when they exist there, else ``base_dir``'s (the spec's folder), and are made absolute; with the
    ``splits`` loaded from it, an ImageFolder spec's automatic class order is written out (the ImageNet subset's
    name, or the folder names), so that a config re-evaluated on one split's folder keeps its labels."""
    out = dict(spec or {"kind": "fashion-mnist"})

    def absolute(path: Any) -> str:
        p = Path(path).expanduser()
        if not p.is_absolute() and not p.exists() and base_dir is not None and (Path(base_dir) / p).exists():
            p = Path(base_dir) / p
        return str(p.resolve())

    kind = str(out.get("kind", "fashion-mnist")).lower()
    if kind == "fashion-mnist" and out.get("dir") and isinstance(out["dir"], str | Path):
        out["dir"] = absolute(out["dir"])
    if kind == "imagefolder":  # other types are left for check_data's error
        for name in ("train", "search", "test"):
            part = out.get(name)
            if isinstance(part, str | Path):
                out[name] = absolute(part)
            elif isinstance(part, dict) and part.get("root") and isinstance(part["root"], str | Path):
                out[name] = {**part, "root": absolute(part["root"])}
                if isinstance(part.get("files"), str | Path):
                    out[name]["files"] = absolute(part["files"])
        if isinstance(out.get("classes"), str | Path) and Path(out["classes"]).expanduser().is_file():
            out["classes"] = absolute(out["classes"])  # a class-list file (else an ImageNet subset's name)
        if isinstance(out.get("data_config"), dict) and splits:  # every field, as the splits were read with them:
            # a config evaluated later on a model without timm's pretrained_cfg (AutoFormer) needs no defaults
            out["data_config"] = data_config_for(out.get("model"), out["data_config"])
        if out.get("classes") is None and splits:
            classes = next(iter(splits.values())).classes
            subset = _imagenet_subset(out.get("model"))
            if subset:
                from timm.data import ImageNetInfo

                out["classes"] = subset if list(ImageNetInfo(subset).label_names()) == classes else list(classes)
            else:
                out["classes"] = list(classes)
    return out


def _check_keys(spec: dict, allowed: Sequence[str], what: str) -> None:
    unknown = sorted(set(spec) - set(allowed), key=str)
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown} in {what}; allowed: {list(allowed)}")


def _imagefolder_splits(spec: dict, model: Any, outputs: int | None = None) -> dict[str, Split]:
    parts = _imagefolder_parts(spec)
    source = spec.get("model", model)  # the model: its data config and (auto) its ImageNet class order
    if source is None and spec.get("data_config") is None:
        raise ConfigError("the imagefolder data spec needs 'model': a timm model name or a data-config dict "
                          "such as {'input_size': [3, 224, 224], 'crop_pct': 0.875}")
    cfg = data_config_for(source, spec.get("data_config"))
    seed = spec.get("seed", 0)
    folders = {name: _class_folders(p["root"]) for name, p in parts.items()}
    union = sorted({f for fs in folders.values() for f in fs})
    where = " and ".join(str(p["root"]) for p in parts.values())
    class_list = _resolve_classes(spec.get("classes"), union, source, where, outputs)
    splits = {
        name: _image_folder_split(p["root"], cfg, class_list, folders[name], p.get("files"),
                                  p.get("per_class"), p.get("seed", seed), name, spec.get("workers"))
        for name, p in parts.items()
    }
    names = list(splits)
    real = {  # the files themselves: symlinked class folders (how ImageNet subsets are made) point at one image
        name: {os.path.realpath(Path(split.meta["root"]) / p) for p in split.meta["files"]}
        for name, split in splits.items()
    }
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = real[a] & real[b]
            if shared:
                raise DataError(f"the {a!r} and {b!r} splits share {len(shared)} images (e.g. "
                                f"{min(shared)}); use separate folders or disjoint file lists: the search "
                                "split must never be the test split, and no model may train on it")
            # once, when a split is first decoded (not in each worker, nor on each resume)
            copies = _copies(splits[a], splits[b]) if splits[a].meta["decoded"] or splits[b].meta["decoded"] else []
            if copies:  # a few exact duplicates are in public datasets; a copied split is a mistake
                log.warning(f"the {a!r} and {b!r} splits hold {len(copies)} byte-identical images (e.g. "
                            f"{copies[0][0]} and {copies[0][1]}): if one split was copied from the other's images, "
                            "the search selects on the test images; use separate images")
    return splits


def _copies(a: Split, b: Split) -> list[tuple[Path, Path]]:
    """Pairs of files of two ImageFolder splits with the same bytes: files of a size found in both are hashed,
    no other (at ImageNet scale a few percent of them)."""
    def files(split: Split) -> list[tuple[int, Path]]:
        root = Path(split.meta["root"])
        return [(size, root / p) for p, size in zip(split.meta["files"], split.meta["sizes"], strict=True)]

    in_a, in_b = files(a), files(b)
    common = {size for size, _ in in_a} & {size for size, _ in in_b}
    try:
        hashed = {_sha256(p): p for size, p in in_a if size in common}
        return [(hashed[h], p) for size, p in in_b if size in common and (h := _sha256(p)) in hashed]
    except OSError as e:  # removed or unreadable since it was decoded
        raise DataError(f"cannot read image {e.filename}: {e.strerror}") from e
