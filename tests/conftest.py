"""Shared fixtures: a private cache for the whole session, synthetic IDX data sets, a tiny ImageFolder.

Tests never read or write ``~/.cache``: ``SEARCHER_CACHE`` points into pytest's temporary directory before
any test runs, and ``SEARCHER_DATA`` is cleared so the machine's setting cannot leak in.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


# One torch thread per test process (subprocesses inherit it): the suite runs on shared 2-core machines, where two
# threads per process contend with every other job (a resume test took 552 s with two threads under load, 10 s with
# one). Benchmarks, not tests, measure speed.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

@pytest.fixture(scope="session", autouse=True)
def searcher_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache directory for the session; tests that check caching set their own with monkeypatch."""
    cache = tmp_path_factory.mktemp("searcher-cache")
    saved = {k: os.environ.get(k) for k in ("SEARCHER_CACHE", "SEARCHER_DATA")}
    os.environ["SEARCHER_CACHE"] = str(cache)
    os.environ.pop("SEARCHER_DATA", None)
    yield cache
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def idx_bytes(array: np.ndarray, magic: bytes | None = None) -> bytes:
    """An IDX file of unsigned bytes: magic 0x000008<ndim>, one big-endian uint32 per dimension, the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = magic if magic is not None else bytes([0, 0, 8, array.ndim])
    return magic + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(path: Path, data: np.ndarray | bytes, gz: bool = False) -> Path:
    raw = data if isinstance(data, bytes) else idx_bytes(data)
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw, compresslevel=1)
    path.write_bytes(raw)
    return path


def synthetic_fashion(n_train: int = 4000, n_test: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
    """Balanced labels in a shuffled order; image ``i`` carries its index in pixels (0, 0)-(0, 1) and its
    label in pixel (0, 2), so a test can tell which source image each split image came from."""
    rng = np.random.default_rng(seed)
    out = {}
    for part, n in (("train", n_train), ("test", n_test)):
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        idx = np.arange(n)
        images[:, 0, 0], images[:, 0, 1], images[:, 0, 2] = idx // 256, idx % 256, labels
        out[f"{part}_images"], out[f"{part}_labels"] = images, labels
    return out


@pytest.fixture(scope="session")
def idx() -> SimpleNamespace:
    """The IDX helpers of this module, for tests that write their own (broken) files."""
    return SimpleNamespace(bytes=idx_bytes, write=write_idx, synthetic=synthetic_fashion, stems=IDX_STEMS)


@pytest.fixture
def make_fashion(tmp_path: Path) -> Callable[..., Path]:
    """``make_fashion(subdir="idx", gz=False, layout="flat"|"torchvision", **sizes)`` writes the four IDX
    files of a synthetic Fashion-MNIST and returns the directory to pass as ``data_dir``."""

    def make(subdir: str = "idx", gz: bool = False, layout: str = "flat", n_train: int = 4000,
             n_test: int = 500) -> Path:
        root = tmp_path / subdir
        d = root / "FashionMNIST" / "raw" if layout == "torchvision" else root
        d.mkdir(parents=True, exist_ok=True)
        for key, array in synthetic_fashion(n_train, n_test).items():
            write_idx(d / IDX_STEMS[key], array, gz=gz)
        return root

    return make


@pytest.fixture(scope="session")
def tiny_imagefolder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/{ant,bee,cat}/…``: 8 images per class of different sizes and kinds (RGB JPEG, RGB PNG, grayscale
    PNG, RGBA PNG), plus things an ImageFolder must skip (a text file, a hidden file, a hidden folder)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imagefolder")
    for c, cls in enumerate(("ant", "bee", "cat")):
        d = root / cls
        d.mkdir()
        for i in range(8):
            w, h = 20 + 7 * i, 36 - 2 * i
            colour = (40 + 80 * c, 10 * i, 200 - 60 * c)
            img = Image.new("RGB", (w, h), colour)
            if i % 4 == 0:
                img.save(d / f"img_{i}.JPEG", quality=95)
            elif i % 4 == 1:
                img.save(d / f"img_{i}.png")
            elif i % 4 == 2:
                img.convert("L").save(d / f"img_{i}.png")
            else:
                img.convert("RGBA").save(d / f"img_{i}.png")
        (d / "notes.txt").write_text("not an image")
        (d / ".hidden.jpg").write_bytes(b"not an image either")
    (root / ".git").mkdir()
    return root


@pytest.fixture(scope="session")
def real_fashion_dir() -> Path:
    """The Debian package's Fashion-MNIST; the test is skipped when it is not installed."""
    if not all((FASHION_DIR / (stem + ".gz")).is_file() or (FASHION_DIR / stem).is_file()
               for stem in IDX_STEMS.values()):
        pytest.skip(f"real Fashion-MNIST not installed in {FASHION_DIR} "
                    "(apt-get install dataset-fashion-mnist; CI installs it)")
    return FASHION_DIR
