"""Evaluation and training data: Fashion-MNIST (IDX files) and ImageFolder (ImageNet layout).

Every split is held as a uint8 tensor (N, C, H, W) after the geometric transform (pad, resize, crop) plus the
normalisation constants; batches are normalised on the fly. The uint8 tensors are cached on disk (safetensors),
keyed by the source files' checksums and the transform, so a second run loads in well under a second and trials
never decode images again.

Splits: ``train`` (for ``searcher train`` only), ``search`` (held out from training, used by the search) and
``test`` (only for confirming the Pareto set). For Fashion-MNIST ``search`` is 200 images per class drawn from
the training set with a fixed seed, and ``train`` is the other 58,000.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import DataError

__all__ = [
    "Split",
    "FASHION_CLASSES",
    "fashion_mnist",
    "find_fashion_mnist",
    "read_idx",
    "image_folder",
    "load_splits",
    "cache_dir",
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

    def batches(self, batch_size: int, start: int = 0, stop: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Normalised (images, labels) batches over ``[start, stop)`` in order."""
        stop = len(self) if stop is None else min(stop, len(self))
        for i in range(start, stop, batch_size):
            j = min(i + batch_size, stop)
            yield self.normalize(self.images[i:j]), self.labels[i:j]

    def subset(self, n: int) -> Split:
        """The first ``n`` images (splits are already shuffled or stratified where it matters)."""
        return Split(self.name, self.images[:n], self.labels[:n], self.mean, self.std, self.classes, self.source,
                     dict(self.meta))

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()


# --------------------------------------------------------------------------------------------------- utilities
def cache_dir() -> Path:
    """Where preprocessed tensors and timings are cached: ``$SEARCHER_CACHE`` or ``~/.cache/searcher``."""
    return Path(os.environ.get("SEARCHER_CACHE", Path.home() / ".cache" / "searcher"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_load(key: str) -> dict[str, torch.Tensor] | None:
    path = cache_dir() / f"{key}.safetensors"
    if not path.exists():
        return None
    try:
        return load_file(str(path))
    except Exception as e:  # a damaged cache file is rebuilt, never trusted
        log.warning("ignoring unreadable cache file %s (%s)", path, e)
        return None


def _cache_save(key: str, tensors: dict[str, torch.Tensor]) -> None:
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{key}.{os.getpid()}.tmp"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, d / f"{key}.safetensors")
    except OSError as e:  # caching is an optimisation; a read-only home must not stop a run
        log.warning("could not write cache in %s (%s)", d, e)


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
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read {path}: {e}; reinstall the data (apt-get install dataset-fashion-mnist)") from e
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
        raise DataError(f"{path} is truncated inside its header; reinstall the data")
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
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)


def _candidate_dirs(data_dir: str | Path | None) -> list[Path]:
    roots: list[Path] = []
    if data_dir:
        roots.append(Path(data_dir))
    elif os.environ.get("SEARCHER_DATA"):
        roots.append(Path(os.environ["SEARCHER_DATA"]))
    else:
        roots.append(SYSTEM_FASHION_DIR)
    dirs = []
    for r in roots:  # the directory itself, then torchvision's download layout under it
        dirs += [r, r / "FashionMNIST" / "raw", r / "fashion-mnist"]
    return dirs


def _find_file(d: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (d / name).is_file():
            return d / name
    return None


def find_fashion_mnist(data_dir: str | Path | None = None) -> dict[str, Path]:
    """Locate the four IDX files: ``--data-dir``, else ``$SEARCHER_DATA``, else the Debian package's directory;
    in each, also torchvision's ``FashionMNIST/raw`` layout."""
    tried = _candidate_dirs(data_dir)
    for d in tried:
        found = {k: _find_file(d, stem) for k, stem in FASHION_FILES.items()}
        if all(found.values()):
            return {k: v for k, v in found.items() if v is not None}
    where = ", ".join(str(d) for d in tried)
    raise DataError(
        f"Fashion-MNIST IDX files not found (looked in {where}); install them with "
        "'apt-get install dataset-fashion-mnist', or pass --data-dir / set SEARCHER_DATA to a directory holding "
        "train-images-idx3-ubyte[.gz] and the other three files"
    )


def _pad_to_32(images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) uint8 → (N, 1, 32, 32), zero padding of 2 on each side."""
    return torch.nn.functional.pad(images.unsqueeze(1), (2, 2, 2, 2))


def fashion_mnist(data_dir: str | Path | None = None) -> dict[str, Split]:
    """The three Fashion-MNIST splits (``train`` 58,000, ``search`` 2,000 stratified, ``test`` 10,000)."""
    files = find_fashion_mnist(data_dir)
    sums = {k: _sha256(p) for k, p in sorted(files.items())}
    key = "fmnist-" + hashlib.sha256(json.dumps([sums, _TRANSFORM_VERSION, SEARCH_PER_CLASS, SEARCH_SEED]).encode()
                                     ).hexdigest()[:16]
    tensors = _cache_load(key)
    if tensors is None:
        tensors = _build_fashion(files)
        _cache_save(key, tensors)
    source = str(files["train_images"].parent)
    meta = {"checksums": sums, "files": {k: str(p) for k, p in files.items()}}
    return {
        name: Split(name, tensors[f"{name}_images"], tensors[f"{name}_labels"], FASHION_MEAN, FASHION_STD,
                    FASHION_CLASSES, source, meta)
        for name in ("train", "search", "test")
    }


def _build_fashion(files: dict[str, Path]) -> dict[str, torch.Tensor]:
    train_x, train_y = read_idx(files["train_images"], 3), read_idx(files["train_labels"], 1)
    test_x, test_y = read_idx(files["test_images"], 3), read_idx(files["test_labels"], 1)
    for x, y, what in ((train_x, train_y, "train"), (test_x, test_y, "test")):
        if x.shape[0] != y.shape[0]:
            raise DataError(f"Fashion-MNIST {what}: {x.shape[0]} images but {y.shape[0]} labels; reinstall the data")
        if x.shape[1:] != (28, 28):
            raise DataError(f"Fashion-MNIST {what}: images are {tuple(x.shape[1:])}, expected 28x28")
        if int(y.max()) >= len(FASHION_CLASSES):
            raise DataError(f"Fashion-MNIST {what}: label {int(y.max())} out of range 0-9; reinstall the data")
    train_y, test_y = train_y.long(), test_y.long()
    g = torch.Generator().manual_seed(SEARCH_SEED)
    search_idx = []
    for c in range(len(FASHION_CLASSES)):
        idx = (train_y == c).nonzero().flatten()
        if len(idx) < 2 * SEARCH_PER_CLASS:
            raise DataError(f"Fashion-MNIST train has only {len(idx)} images of class {c}; is the file complete?")
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
def image_folder(*args, **kwargs) -> Split:  # implemented below the Fashion-MNIST reader; see _image_folder
    return _image_folder(*args, **kwargs)


def _image_folder(root: str | Path, model=None, per_class: int | None = None, files: list[str] | None = None,
                  seed: int = 0, name: str = "search", data_config: dict | None = None) -> Split:
    raise DataError("ImageFolder support is not built yet")


def load_splits(spec: dict | None = None) -> dict[str, Split]:
    """Splits for a study's ``data`` section: ``{"kind": "fashion-mnist", "dir": …}`` (default) or an
    ImageFolder spec (see :func:`image_folder`)."""
    spec = dict(spec or {})
    kind = spec.pop("kind", "fashion-mnist")
    if kind == "fashion-mnist":
        return fashion_mnist(spec.get("dir"))
    raise DataError(f"unknown data kind {kind!r}; use 'fashion-mnist' or 'imagefolder'")
