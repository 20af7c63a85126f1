"""Fashion-MNIST (IDX reading, discovery, the split rule, the cache) and the ``searcher data`` command.

ImageFolder (layout, transforms, selection, cache, errors, study specs) is in the last sections. Synthetic IDX
files come from the ``make_fashion`` and ``idx`` fixtures in ``conftest.py``, a tiny ImageFolder from
``tiny_imagefolder``; the real Fashion-MNIST is used when it is installed.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from searcher import data
from searcher.cli import main
from searcher.data import (
    FASHION_CLASSES,
    Split,
    check_data,
    fashion_mnist,
    find_fashion_mnist,
    image_folder,
    load_splits,
    read_idx,
    resolve_data_spec,
)
from searcher.errors import ConfigError, DataError


@pytest.fixture
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEARCHER_CACHE", str(cache))
    return cache


def cache_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.safetensors"))


# ------------------------------------------------------------------------------------------------- IDX files
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, idx, gz: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = idx.write(tmp_path / "x-idx3-ubyte", array, gz=gz)
    out = read_idx(path, 3)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 4)
    assert np.array_equal(out.numpy(), array)


def test_read_idx_of_zero_items(tmp_path: Path, idx) -> None:
    path = idx.write(tmp_path / "empty-idx1-ubyte", np.zeros((0,), np.uint8))
    assert read_idx(path, 1).shape == (0,)


def _gzip_with_bad_crc(raw: bytes) -> bytes:
    z = bytearray(gzip.compress(raw))
    z[-8] ^= 0xFF  # the CRC32 in the trailer
    return bytes(z)


def _gzip_with_bad_stream(raw: bytes) -> bytes:
    z = bytearray(gzip.compress(raw))
    z[10:20] = b"\xff" * 10  # garbage where the deflate stream starts
    return bytes(z)


BROKEN_IDX = {
    "wrong dtype in magic": (lambda b: b"\x00\x00\x09\x03" + b[4:], "magic number 0x00000903"),
    "wrong ndim in magic": (lambda b: b"\x00\x00\x08\x02" + b[4:], "magic number 0x00000802"),
    "not an IDX file at all": (lambda b: b"PK\x03\x04" + b[4:], "magic number 0x504b0304"),
    "truncated payload": (lambda b: b[:-5], "truncated or padded"),
    "padded payload": (lambda b: b + b"\x00", "truncated or padded"),
    "truncated header": (lambda b: b[:10], "truncated inside its header"),
    "only two bytes": (lambda b: b[:2], "not an IDX file"),
    "empty file": (lambda b: b"", "not an IDX file"),
    "truncated gzip": (lambda b: gzip.compress(b)[: len(gzip.compress(b)) // 2], "cannot read"),
    "gzip with bad CRC": (_gzip_with_bad_crc, "cannot read"),
    "gzip with corrupt stream": (_gzip_with_bad_stream, "cannot read"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_IDX))
def test_broken_idx_files_name_the_file(tmp_path: Path, idx, case: str) -> None:
    corrupt, message = BROKEN_IDX[case]
    raw = idx.bytes(np.ones((5, 28, 28), np.uint8))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(corrupt(raw))
    with pytest.raises(DataError, match=message) as e:
        read_idx(path, 3)
    assert str(path) in str(e.value)


def _break(directory: Path, stem: str, content: bytes) -> Path:
    for p in directory.glob(stem + "*"):
        p.unlink()
    (directory / stem).write_bytes(content)
    return directory / stem


@pytest.mark.parametrize("gz", [False, True])
def test_corrupt_file_in_a_data_set_names_it(make_fashion, private_cache: Path, gz: bool) -> None:
    d = make_fashion(gz=gz)
    bad = _break(d, "t10k-labels-idx1-ubyte", b"\x00\x00\x08\x03garbage")
    with pytest.raises(DataError, match="magic number") as e:
        fashion_mnist(d)
    assert str(bad) in str(e.value)
    assert cache_files(private_cache) == []  # nothing half-written


def test_label_count_mismatch(make_fashion, idx, private_cache: Path) -> None:
    d = make_fashion()
    labels = idx.synthetic(4000, 500)["test_labels"][:-1]
    bad = _break(d, "t10k-labels-idx1-ubyte", idx.bytes(labels))
    with pytest.raises(DataError, match="500 images but .* 499 labels") as e:
        fashion_mnist(d)
    assert str(bad) in str(e.value)


def test_labels_out_of_range(make_fashion, idx, private_cache: Path) -> None:
    d = make_fashion()
    labels = idx.synthetic(4000, 500)["train_labels"].copy()
    labels[17] = 10
    bad = _break(d, "train-labels-idx1-ubyte", idx.bytes(labels))
    with pytest.raises(DataError, match="label 10, out of range 0-9") as e:
        fashion_mnist(d)
    assert str(bad) in str(e.value)


def test_images_of_the_wrong_size(make_fashion, idx, private_cache: Path) -> None:
    d = make_fashion()
    bad = _break(d, "t10k-images-idx3-ubyte", idx.bytes(np.zeros((500, 32, 32), np.uint8)))
    with pytest.raises(DataError, match="32x32 images, expected 28x28") as e:
        fashion_mnist(d)
    assert str(bad) in str(e.value)


def test_empty_and_too_small_training_sets(make_fashion, idx, private_cache: Path) -> None:
    d = make_fashion()
    _break(d, "train-images-idx3-ubyte", idx.bytes(np.zeros((0, 28, 28), np.uint8)))
    _break(d, "train-labels-idx1-ubyte", idx.bytes(np.zeros((0,), np.uint8)))
    with pytest.raises(DataError, match="holds no images"):
        fashion_mnist(d)
    small = make_fashion("small", n_train=1000)  # 100 per class, fewer than 2 x 200
    with pytest.raises(DataError, match="only 100 images of class 0"):
        fashion_mnist(small)


# ------------------------------------------------------------------------------------------------- discovery
@pytest.mark.parametrize("layout, gz", [("flat", False), ("flat", True), ("torchvision", False),
                                        ("torchvision", True)])
def test_discovery_layouts(make_fashion, layout: str, gz: bool) -> None:
    root = make_fashion(gz=gz, layout=layout)
    files = find_fashion_mnist(root)
    expected_dir = root / "FashionMNIST" / "raw" if layout == "torchvision" else root
    assert {p.parent for p in files.values()} == {expected_dir}
    assert all(p.name.endswith(".gz") == gz for p in files.values())
    assert len(fashion_mnist(root)["test"]) == 500


def test_discovery_order(make_fashion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_dir, arg_dir, system_dir = make_fashion("env"), make_fashion("arg"), make_fashion("system")
    monkeypatch.setattr(data, "SYSTEM_FASHION_DIR", system_dir)
    assert find_fashion_mnist()["train_images"].parent == system_dir
    monkeypatch.setenv("SEARCHER_DATA", str(env_dir))
    assert find_fashion_mnist()["train_images"].parent == env_dir
    assert find_fashion_mnist(arg_dir)["train_images"].parent == arg_dir
    # an explicit directory without the files is an error, not a silent fall-back to another copy
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="not found"):
        find_fashion_mnist(empty)


def test_missing_directory_and_partial_sets(make_fashion, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as e:
        find_fashion_mnist(tmp_path / "nowhere")
    assert "apt-get install dataset-fashion-mnist" in str(e.value)
    (tmp_path / "afile").write_text("")
    with pytest.raises(DataError, match="afile is a file, not a directory"):  # "does not exist" until 2026-12-07
        find_fashion_mnist(tmp_path / "afile")
    d = make_fashion()
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"missing t10k-labels-idx1-ubyte\[\.gz\]"):
        find_fashion_mnist(d)


# ------------------------------------------------------------------------------------------------ split rule
def test_split_rule_on_synthetic_data(make_fashion, idx) -> None:
    d = make_fashion(n_train=4000, n_test=500)
    src = idx.synthetic(4000, 500)
    splits = fashion_mnist(d)
    train, search, test = splits["train"], splits["search"], splits["test"]
    assert (len(train), len(search), len(test)) == (2000, 2000, 500)
    assert search.class_counts() == [200] * 10
    for s in splits.values():
        assert s.images.dtype == torch.uint8 and s.images.shape[1:] == (1, 32, 32)
        assert s.labels.dtype == torch.int64 and s.classes == FASHION_CLASSES
        assert s.mean == (0.2860,) and s.std == (0.3530,)
        assert s.images[:, :, :2].sum() == 0 and s.images[:, :, :, -2:].sum() == 0  # 2-pixel zero padding

    def origin(s: Split) -> np.ndarray:  # which source image each split image is (pixels (0,0), (0,1))
        return s.images[:, 0, 2, 2].numpy().astype(int) * 256 + s.images[:, 0, 2, 3].numpy()

    train_ids, search_ids = origin(train), origin(search)
    assert set(train_ids).isdisjoint(search_ids)
    assert sorted([*train_ids, *search_ids]) == list(range(4000))
    assert np.array_equal(search.labels.numpy(), src["train_labels"][search_ids])
    assert np.array_equal(search.images[:, 0, 2:30, 2:30].numpy(), src["train_images"][search_ids])
    assert np.array_equal(train_ids, np.sort(train_ids))  # train keeps the file order
    assert np.array_equal(origin(test), np.arange(500))
    assert len(set(search.labels[:200].tolist())) == 10  # classes are interleaved, not in blocks


def test_full_size_synthetic_split_and_cli(tmp_path: Path, idx, capsys: pytest.CaptureFixture) -> None:
    """The documented numbers without the real data: 60,000 + 10,000 images give 58,000 / 2,000 / 10,000."""
    d = tmp_path / "full"
    d.mkdir()
    for part, n in (("train", 60_000), ("test", 10_000)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0], images[:, 0, 1] = np.arange(n) // 256, np.arange(n) % 256
        idx.write(d / idx.stems[f"{part}_images"], images)
        idx.write(d / idx.stems[f"{part}_labels"], (np.arange(n) * 7 % 10).astype(np.uint8))
    assert main(["data", "--json", "--data-dir", str(d)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {n: s["images"] for n, s in out["splits"].items()} == {"train": 58_000, "search": 2_000,
                                                                  "test": 10_000}
    assert out["splits"]["search"]["class_counts"] == [200] * 10
    assert out["splits"]["train"]["class_counts"] == [5_800] * 10


def test_split_is_deterministic(make_fashion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = make_fashion()
    monkeypatch.setenv("SEARCHER_CACHE", str(tmp_path / "a"))
    first = fashion_mnist(d)
    monkeypatch.setenv("SEARCHER_CACHE", str(tmp_path / "b"))
    second = fashion_mnist(d)  # built again from the files, not read from the first cache
    for name in ("train", "search", "test"):
        assert torch.equal(first[name].images, second[name].images)
        assert torch.equal(first[name].labels, second[name].labels)


def test_split_helpers() -> None:
    images = torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1) * 51
    split = Split("s", images, torch.tensor([0, 1, 1, 2, 2, 2]), (0.5,), (0.25,), ["a", "b", "c"])
    assert split.class_counts() == [1, 2, 3]
    batches = list(split.batches(4))
    assert [len(y) for _, y in batches] == [4, 2]
    assert torch.allclose(batches[0][0].flatten(), (torch.tensor([0, 51, 102, 153]) / 255 - 0.5) / 0.25)
    assert [len(y) for _, y in split.batches(2, start=1, stop=4)] == [2, 1]
    assert len(split.subset(3)) == 3 and split.subset(3).classes == ["a", "b", "c"]
    with pytest.raises(ConfigError):
        next(split.batches(0))


# ----------------------------------------------------------------------------------------------------- cache
def test_second_load_comes_from_the_cache(make_fashion, private_cache: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    d = make_fashion()
    first = fashion_mnist(d)
    [cached] = cache_files(private_cache)
    assert not list(private_cache.glob(".*"))  # no temporary files left behind

    def no_rebuild(*_):
        raise AssertionError("rebuilt although the cache is valid")

    monkeypatch.setattr(data, "_build_fashion", no_rebuild)
    t = time.process_time()
    second = fashion_mnist(d)
    assert time.process_time() - t < 1.0
    for name in first:
        assert torch.equal(first[name].images, second[name].images)
        assert torch.equal(first[name].labels, second[name].labels)
    assert cache_files(private_cache) == [cached]


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "other tensors", "wrong shapes"])
def test_damaged_cache_is_rebuilt(make_fashion, private_cache: Path, damage: str,
                                  caplog: pytest.LogCaptureFixture) -> None:
    from safetensors.torch import save_file

    d = make_fashion()
    good = fashion_mnist(d)
    [path] = cache_files(private_cache)
    if damage == "garbage":
        path.write_bytes(os.urandom(1000))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:-1000])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "other tensors":
        save_file({"x": torch.zeros(3)}, str(path))
    else:
        save_file({f"{n}_{p}": torch.zeros(2, dtype=torch.uint8) for n in ("train", "search", "test")
                   for p in ("images", "labels")}, str(path))
    with caplog.at_level("WARNING", logger="searcher.data"):
        rebuilt = fashion_mnist(d)
    assert "ignoring" in caplog.text
    assert torch.equal(rebuilt["search"].images, good["search"].images)
    again = data._cache_load(path.stem)  # the rebuilt file is valid again
    assert again is not None and torch.equal(again["search_labels"], good["search"].labels)


def test_cache_key_follows_the_file_contents(make_fashion, idx, private_cache: Path) -> None:
    d = make_fashion()
    fashion_mnist(d)
    labels = idx.synthetic(4000, 500)["test_labels"].copy()
    labels[0] = (labels[0] + 1) % 10
    _break(d, "t10k-labels-idx1-ubyte", idx.bytes(labels))
    assert fashion_mnist(d)["test"].labels[0] == labels[0]
    assert len(cache_files(private_cache)) == 2


def test_unwritable_cache_is_not_fatal(make_fashion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SEARCHER_CACHE", str(blocker / "cache"))  # cannot be created under a file
    with caplog.at_level("WARNING", logger="searcher.data"):
        assert len(fashion_mnist(make_fashion())["search"]) == 2000
    assert "could not write cache" in caplog.text


# ---------------------------------------------------------------------------------------------- the real data
@pytest.fixture(scope="session")
def real_splits(real_fashion_dir: Path) -> dict[str, Split]:
    return fashion_mnist(real_fashion_dir)


# sha256 of the search split's images and labels: the embedded models were trained on the complement, so the
# split must never change silently (that would let them see search images)
REAL_SEARCH_SHA256 = "5145b733ff6b1d5c4347c04d9b14457ae043fc9051eb39088b01d9f68fb5e202"


def test_real_fashion_mnist_splits(real_splits: dict[str, Split], real_fashion_dir: Path) -> None:
    train, search, test = real_splits["train"], real_splits["search"], real_splits["test"]
    assert (len(train), len(search), len(test)) == (58_000, 2_000, 10_000)
    assert search.class_counts() == [200] * 10
    assert train.class_counts() == [5800] * 10 and test.class_counts() == [1000] * 10
    digest = hashlib.sha256(search.images.numpy().tobytes() + search.labels.numpy().tobytes()).hexdigest()
    assert digest == REAL_SEARCH_SHA256
    raw = read_idx(real_fashion_dir / "train-images-idx3-ubyte.gz", 3).numpy()
    as_set = Counter(r.tobytes() for r in raw)
    used = Counter(r.tobytes() for r in torch.cat([train.images, search.images])[:, 0, 2:30, 2:30].numpy())
    assert used == as_set  # train + search is exactly the training file, each image once


def test_real_fashion_mnist_loads_fast_from_cache(real_splits: dict[str, Split],
                                                  real_fashion_dir: Path) -> None:
    t = time.process_time()  # CPU time: wall time on a shared machine measures the neighbours
    again = fashion_mnist(real_fashion_dir)
    elapsed = time.process_time() - t
    assert elapsed < 1.0, f"cached load took {elapsed:.2f} s of CPU"  # ~0.05 s here
    assert torch.equal(again["search"].images, real_splits["search"].images)


def test_cli_data_json_on_real_data(real_splits: dict[str, Split], capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["num_classes"] == 10
    assert {n: s["images"] for n, s in out["splits"].items()} == {"train": 58_000, "search": 2_000,
                                                                  "test": 10_000}
    assert out["splits"]["search"]["class_counts"] == [200] * 10


# -------------------------------------------------------------------------------------------------------- CLI
def test_cli_data_json(make_fashion, capsys: pytest.CaptureFixture) -> None:
    d = make_fashion(gz=True)
    assert main(["data", "--json", "--data-dir", str(d)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == str(d) and out["image_shape"] == [1, 32, 32]
    assert out["splits"]["search"] == {"images": 2000, "class_counts": [200] * 10}
    assert out["splits"]["train"]["images"] == 2000 and out["splits"]["test"]["images"] == 500
    assert main(["data", "--data-dir", str(d)]) == 0
    assert "search" in capsys.readouterr().out
    # a study's data section says where its data is: --data-dir beside it was ignored, exit 0, until 2026-12-07
    assert main(["data", "--study", "fashion-vit", "--data-dir", "/nonexistent"]) == 2
    assert "give --study or --data-dir, not both" in _one_error_line(capsys.readouterr().err)


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "Traceback" not in stderr
    return lines[0]


def test_cli_user_errors(make_fashion, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in _one_error_line(capsys.readouterr().err)
    (tmp_path / "folder" / "cat").mkdir(parents=True)  # an ImageNet-layout folder: described by a study spec
    assert main(["data", "--data-dir", str(tmp_path / "folder")]) == 2
    assert "searcher data --study SPEC" in _one_error_line(capsys.readouterr().err)
    d = make_fashion()
    bad = _break(d, "train-images-idx3-ubyte", b"\x00\x00\x08\x03\x00\x00")
    assert main(["data", "--data-dir", str(d)]) == 2
    captured = capsys.readouterr()
    assert str(bad) in _one_error_line(captured.err) and captured.out == ""


def test_cli_error_in_a_real_process(make_fashion, tmp_path: Path) -> None:
    d = make_fashion(gz=True)
    _break(d, "t10k-images-idx3-ubyte.gz", gzip.compress(b"\x00\x00\x08\x03")[:-6])
    env = {**os.environ, "SEARCHER_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "searcher.cli", "data", "--data-dir", str(d)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "t10k-images-idx3-ubyte.gz" in _one_error_line(proc.stderr)


# ----------------------------------------------------------------------------------------------- ImageFolder
SMALL = {"input_size": [3, 16, 16]}  # a data config that keeps the tests fast


def folder_of(split: Split, i: int) -> str:
    return split.meta["files"][i].split("/", 1)[0]


def test_imagefolder_layout_and_labels(tiny_imagefolder: Path) -> None:
    split = image_folder(tiny_imagefolder, SMALL, name="test")
    assert split.name == "test" and split.source == str(tiny_imagefolder)
    assert split.classes == ["ant", "bee", "cat"]  # sorted folders; .git, notes.txt and .hidden.jpg skipped
    assert len(split) == 24 and split.class_counts() == [8, 8, 8]
    assert split.images.dtype == torch.uint8 and split.images.shape == (24, 3, 16, 16)
    assert all(split.classes[int(split.labels[i])] == folder_of(split, i) for i in range(len(split)))
    assert split.mean == pytest.approx((0.485, 0.456, 0.406))
    assert split.std == pytest.approx((0.229, 0.224, 0.225))
    assert len(set(split.labels[:6].tolist())) > 1  # classes are interleaved


def test_imagefolder_matches_timm_eval_transform(tiny_imagefolder: Path) -> None:
    """The model's own timm data config, and uint8 storage + on-the-fly normalisation gives exactly timm's
    eval pipeline (resize, center crop, to tensor, normalise)."""
    import timm
    from PIL import Image
    from timm.data import create_transform, resolve_model_data_config

    split = image_folder(tiny_imagefolder, "deit_tiny_patch16_224", per_class=1)
    cfg = resolve_model_data_config(timm.create_model("deit_tiny_patch16_224", pretrained=False))
    as_lists = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}
    assert split.meta["data_config"] == as_lists
    assert split.images.shape == (3, 3, 224, 224)
    reference = create_transform(**cfg, is_training=False)
    for i in range(len(split)):
        with Image.open(tiny_imagefolder / split.meta["files"][i]) as im:
            expected = reference(im.convert("RGB"))
        assert torch.allclose(split.normalize(split.images[i:i + 1])[0], expected, atol=1e-5)


def test_imagefolder_grayscale_config(tiny_imagefolder: Path) -> None:
    split = image_folder(tiny_imagefolder, {"input_size": [1, 8, 12], "mean": [0.5], "std": [0.5]})
    assert split.images.shape == (24, 1, 8, 12) and split.mean == (0.5,)


def test_per_class_sample_is_fixed_by_the_seed(tiny_imagefolder: Path) -> None:
    a = image_folder(tiny_imagefolder, SMALL, per_class=3)
    b = image_folder(tiny_imagefolder, SMALL, per_class=3)
    c = image_folder(tiny_imagefolder, SMALL, per_class=3, seed=1)
    assert a.class_counts() == [3, 3, 3]
    assert a.meta["files"] == b.meta["files"] and torch.equal(a.images, b.images)
    assert sorted(a.meta["files"]) != sorted(c.meta["files"])


def test_per_class_above_the_class_size_keeps_all(tiny_imagefolder: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="searcher.data"):
        assert image_folder(tiny_imagefolder, SMALL, per_class=50).class_counts() == [8, 8, 8]
    assert "only 8 images" in caplog.text
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="per_class"):
            image_folder(tiny_imagefolder, SMALL, per_class=bad)


def test_explicit_file_list(tiny_imagefolder: Path, tmp_path: Path) -> None:
    listed = ["bee/img_2.png", "ant/img_0.JPEG", "cat/img_7.png", "./ant/img_3.png"]
    path = tmp_path / "files.txt"
    path.write_text("# my subset\n\n" + "\n".join(listed) + "\nant/img_0.JPEG\n")
    split = image_folder(tiny_imagefolder, SMALL, files=path)
    assert sorted(split.meta["files"]) == sorted(["bee/img_2.png", "ant/img_0.JPEG", "cat/img_7.png",
                                                  "ant/img_3.png"])
    assert split.class_counts() == [2, 1, 1] and split.classes == ["ant", "bee", "cat"]
    assert split.meta["file_list"] == str(path)
    as_list = image_folder(tiny_imagefolder, SMALL, files=listed)
    assert torch.equal(as_list.images, split.images)
    assert image_folder(tiny_imagefolder, SMALL, files=path, per_class=1).class_counts() == [1, 1, 1]
    path.write_text("\ufeff" + "\n".join(listed), encoding="utf-8")  # saved by an editor with a byte-order mark
    assert image_folder(tiny_imagefolder, SMALL, files=path).class_counts() == [2, 1, 1]


@pytest.mark.parametrize("entry, message", [
    ("ant/missing.jpg", "does not exist"),
    ("../escape/img.jpg", "must be a path relative"),
    ("/abs/ant/img_0.JPEG", "must be a path relative"),
    ("img_0.JPEG", "must be a path relative"),
    ("dog/img_0.JPEG", "not a class; entries are paths relative to"),
])
def test_bad_file_list_entries(tiny_imagefolder: Path, tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "files.txt"
    path.write_text(f"ant/img_0.JPEG\n{entry}\n")
    with pytest.raises(DataError, match=message) as e:
        image_folder(tiny_imagefolder, SMALL, files=path)
    assert str(path) in str(e.value)


def test_empty_or_missing_file_list(tiny_imagefolder: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(DataError, match="names no images"):
        image_folder(tiny_imagefolder, SMALL, files=tmp_path / "empty.txt")
    with pytest.raises(DataError, match="cannot read file list"):
        image_folder(tiny_imagefolder, SMALL, files=tmp_path / "nope.txt")


def test_imagefolder_cache(tiny_imagefolder: Path, tmp_path: Path, private_cache: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_imagefolder, root)
    first = image_folder(root, SMALL)
    assert len(cache_files(private_cache)) == 1
    decode = data._decode

    def no_decode(*_):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(data, "_decode", no_decode)
    t = time.process_time()
    second = image_folder(root, SMALL)
    assert time.process_time() - t < 1.0
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    # memory-mapped, copy-on-write: the processes of a study share one copy, and a change stays in its process
    (cached,) = cache_files(private_cache)
    if Path("/proc/self/maps").exists():
        assert str(cached) in Path("/proc/self/maps").read_text()
    second.images[0] = 255 - second.images[0]
    assert torch.equal(image_folder(root, SMALL).images, first.images)
    monkeypatch.setattr(data, "_decode", decode)
    # touching an image changes the key; so does another transform
    os.utime(root / "bee" / "img_1.png", ns=(1, 1))
    image_folder(root, SMALL)
    image_folder(root, {"input_size": [3, 16, 16], "crop_pct": 1.0})
    assert len(cache_files(private_cache)) == 3
    # a damaged cache file is rebuilt
    for p in cache_files(private_cache):
        p.write_bytes(p.read_bytes()[:100])
    assert torch.equal(image_folder(root, {"input_size": [3, 16, 16], "crop_pct": 1.0}).labels,
                       image_folder(root, {"input_size": [3, 16, 16], "crop_pct": 1.0}).labels)


def test_parallel_decoding_matches_sequential(tiny_imagefolder: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "PARALLEL_MIN_FILES", 2)
    monkeypatch.setenv("SEARCHER_CACHE", str(tmp_path / "a"))
    sequential = image_folder(tiny_imagefolder, SMALL, workers=1)
    monkeypatch.setenv("SEARCHER_CACHE", str(tmp_path / "b"))
    parallel = image_folder(tiny_imagefolder, SMALL, workers=2)
    assert torch.equal(sequential.images, parallel.images)


def _folder(tmp_path: Path, spec: dict[str, int]) -> Path:
    from PIL import Image

    root = tmp_path / "folder"
    for cls, n in spec.items():
        (root / cls).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (10, 12), (i, 2 * i, 3 * i)).save(root / cls / f"{i}.png")
    return root


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        image_folder(tmp_path / "nowhere", SMALL)
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="is not a folder"):
        image_folder(tmp_path / "file", SMALL)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="has no class folders"):
        image_folder(empty, SMALL)
    loose = _folder(tmp_path, {})
    loose.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (4, 4)).save(loose / "a.jpg")
    with pytest.raises(DataError, match=r"no class folders \(1 images lie directly in it\)"):
        image_folder(loose, SMALL)
    (loose / "a").mkdir()
    (loose / "b").mkdir()
    Image.new("RGB", (4, 4)).save(loose / "a" / "x.jpg")
    (loose / "b" / "readme.txt").write_text("")
    with pytest.raises(DataError, match="class folder .*b holds no images") as e:
        image_folder(loose, SMALL)
    assert str(loose / "b") in str(e.value)


@pytest.mark.parametrize("content", [b"", b"not a jpeg at all", "truncated"])
@pytest.mark.parametrize("workers", [1, 2])
def test_unreadable_image_is_named(tmp_path: Path, content: bytes | str, workers: int,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from PIL import Image

    monkeypatch.setattr(data, "PARALLEL_MIN_FILES", 2)
    root = _folder(tmp_path, {"a": 5, "b": 5})
    if content == "truncated":
        buf = io.BytesIO()
        Image.new("RGB", (64, 64), (9, 9, 9)).save(buf, "JPEG")
        content = buf.getvalue()[:200]
    assert isinstance(content, bytes)
    bad = root / "b" / "broken.jpg"
    bad.write_bytes(content)
    with pytest.raises(DataError, match="cannot read image") as e:
        image_folder(root, SMALL, workers=workers)
    assert str(bad) in str(e.value)


def test_data_config_sources(tiny_imagefolder: Path) -> None:
    from timm.models import VisionTransformer

    assert data.data_config_for("deit_tiny_patch16_224")["crop_pct"] == 0.9
    assert data.data_config_for({"img_size": 64})["input_size"] == [3, 64, 64]
    assert data.data_config_for({"input_size": [3, 32, 48], "crop_mode": "squash"})["crop_mode"] == "squash"
    overridden = data.data_config_for("deit_tiny_patch16_224", {"crop_pct": 1.0, "img_size": 32})
    assert overridden["crop_pct"] == 1.0 and overridden["input_size"] == [3, 32, 32]
    assert overridden["interpolation"] == "bicubic"  # the rest is still the model's
    with pytest.raises(ConfigError, match="unknown data-config field"):
        data.data_config_for("deit_tiny_patch16_224", {"size": 32})
    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=3)
    vit.pretrained_cfg = {"input_size": (3, 32, 32), "crop_pct": 1.0, "mean": (0.5,) * 3, "std": (0.5,) * 3}
    assert data.data_config_for(vit)["input_size"] == [3, 32, 32]
    assert load_splits({"kind": "imagefolder", "test": {"root": str(tiny_imagefolder), "per_class": 1}},
                       model=vit)["test"].images.shape == (3, 3, 32, 32)
    bad_configs: list = [
        {"input_size": [3, 16, 16], "colour": "blue"}, {"input_size": [3, 16]}, {"input_size": [4, 16, 16]},
        {"crop_pct": 0}, {"crop_mode": "zoom"}, {"interpolation": "sharpest"}, {"mean": [0.5, 0.5]},
        {"std": [0, 1, 1]}, "not_a_timm_model", 42,
    ]
    for bad in bad_configs:
        with pytest.raises(ConfigError):
            data_config = data.data_config_for(bad)
            data._geometric_transform(data_config)
    with pytest.raises(ConfigError, match="needs the model"):
        image_folder("/nowhere")
    one = data.data_config_for("deit_small_patch16_224", {"mean": 0.5, "std": 0.5})  # one value for every channel
    assert one["mean"] == one["std"] == [0.5] * 3



def test_a_module_without_pretrained_cfg_warns_only_of_the_fields_it_takes_from_timm_s_defaults(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An AutoFormer config records its whole data config: until 2026-12-08 evaluating it warned that timm's
    default ImageNet data config was used, which the recorded fields had replaced."""
    from timm.models import VisionTransformer

    vit = VisionTransformer(img_size=32, patch_size=8, embed_dim=16, depth=1, num_heads=2, num_classes=3)
    vit.pretrained_cfg = {}
    full = data.data_config_for("deit_tiny_patch16_224")
    with caplog.at_level("WARNING", logger="searcher.data"):
        assert data.data_config_for(vit, full) == full
        assert not caplog.text
        data.data_config_for(vit, {"img_size": 32, "crop_pct": 1.0})
    assert "default ImageNet interpolation, mean, std, crop_mode" in caplog.text


def test_class_order_options(tmp_path: Path) -> None:
    root = _folder(tmp_path, {"n15075141": 1, "n01440764": 1, "n01443537": 1})  # ImageNet ids 999, 0, 1
    assert image_folder(root, SMALL).classes == ["n01440764", "n01443537", "n15075141"]
    for classes in ("imagenet-1k", None):  # auto: the timm model is an ImageNet-1k model
        model = "deit_tiny_patch16_224" if classes is None else None
        split = image_folder(root, model, data_config=SMALL, classes=classes)
        assert split.num_classes == 1000
        by_folder = {folder_of(split, i): int(split.labels[i]) for i in range(len(split))}
        assert by_folder == {"n01440764": 0, "n01443537": 1, "n15075141": 999}
    explicit = image_folder(root, SMALL, classes=["n15075141", "n01443537", "n01440764", "extra"])
    assert {folder_of(explicit, i): int(explicit.labels[i]) for i in range(3)} == {
        "n15075141": 0, "n01443537": 1, "n01440764": 2}
    (tmp_path / "classes.txt").write_text("n01443537\nn01440764\nn15075141\n")
    assert image_folder(root, SMALL, classes=tmp_path / "classes.txt").classes[0] == "n01443537"
    with pytest.raises(DataError, match="not in the class list"):
        image_folder(root, SMALL, classes=["n01440764"])
    with pytest.raises(ConfigError, match="neither a file"):
        image_folder(root, SMALL, classes="imagenet-5k")
    with pytest.raises(ConfigError, match="twice"):
        image_folder(root, SMALL, classes=["a", "a"])


# ----------------------------------------------------------------------------------------------- study specs
def test_imagefolder_spec(tiny_imagefolder: Path, tmp_path: Path) -> None:
    test_list = tmp_path / "test.txt"
    test_list.write_text("ant/img_1.png\nbee/img_1.png\n")
    search_list = tmp_path / "search.txt"
    search_list.write_text("".join(f"{c}/img_{i}.png\n" for c in ("ant", "bee", "cat") for i in (2, 3, 5)))
    spec = {"kind": "imagefolder", "model": SMALL, "seed": 3,
            "search": {"root": str(tiny_imagefolder), "files": str(search_list), "per_class": 2},
            "test": {"root": str(tiny_imagefolder), "files": str(test_list)}}
    splits = load_splits(spec)
    assert list(splits) == ["search", "test"]
    assert splits["search"].class_counts() == [2, 2, 2] and splits["test"].class_counts() == [1, 1, 0]
    assert splits["search"].classes == splits["test"].classes == ["ant", "bee", "cat"]
    assert splits["search"].meta["seed"] == 3
    only = load_splits({"kind": "imagefolder", "model": SMALL, "test": str(tiny_imagefolder)})
    assert list(only) == ["test"] and len(only["test"]) == 24
    # workers 0 (every core) and a negative seed worked before the spec's types were checked (2026-12-07)
    again = load_splits({**spec, "workers": 0, "seed": -3})
    assert again["search"].meta["seed"] == -3 and again["search"].class_counts() == [2, 2, 2]
    both = load_splits({"kind": "imagefolder", "model": "deit_tiny_patch16_224", "data_config": SMALL,
                        "test": {"root": str(tiny_imagefolder), "per_class": 1}})
    assert both["test"].images.shape == (3, 3, 16, 16)
    assert both["test"].meta["data_config"]["crop_pct"] == 0.9  # deit's own, under the override


def test_imagefolder_spec_shares_one_class_list(tmp_path: Path) -> None:
    search = _folder(tmp_path / "s", {"a": 2, "b": 2, "c": 2})
    test = _folder(tmp_path / "t", {"a": 1, "c": 1})  # no "b": "c" must still be label 2
    splits = load_splits({"kind": "imagefolder", "model": SMALL, "search": {"root": search},
                          "test": {"root": test}})
    assert splits["test"].classes == ["a", "b", "c"] and splits["test"].class_counts() == [1, 0, 1]


def test_overlapping_splits_are_refused(tiny_imagefolder: Path) -> None:
    spec = {"kind": "imagefolder", "model": SMALL, "search": {"root": str(tiny_imagefolder), "per_class": 2},
            "test": {"root": str(tiny_imagefolder), "per_class": 4}}
    with pytest.raises(DataError, match="'search' and 'test' splits share"):
        load_splits(spec)


def test_a_split_copied_from_another_is_named(tiny_imagefolder: Path, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """A search folder made by copying test images (cp -r val search) passed: only the same paths were refused."""
    import shutil

    shutil.copytree(tiny_imagefolder, tmp_path / "copy")
    spec = {"kind": "imagefolder", "model": SMALL, "search": {"root": str(tmp_path / "copy"), "per_class": 2},
            "test": str(tiny_imagefolder)}
    with caplog.at_level(logging.WARNING, logger="searcher"):
        load_splits(spec)
    assert re.search(r"'search' and 'test' splits hold \d+ byte-identical images \(e.g. .*copy.* and ", caplog.text)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="searcher"):  # once: not again from the cache (a worker, a resume)
        load_splits(spec)
    assert "byte-identical" not in caplog.text
    for p in (tmp_path / "copy").rglob("*.png"):  # other files (bytes after the PNG's end): no warning
        p.write_bytes(p.read_bytes() + b"x")
    with caplog.at_level(logging.WARNING, logger="searcher"):
        load_splits(spec)
    assert "byte-identical" not in caplog.text
    # files of one size are hashed; the same size alone is no copy
    (tmp_path / "a").mkdir()
    for name, content in (("a/1", b"abc"), ("a/2", b"xyz"), ("b1", b"abd"), ("b2", b"xyz")):
        (tmp_path / name).write_bytes(content)

    def split(files: list[str]) -> SimpleNamespace:
        return SimpleNamespace(meta={"root": str(tmp_path), "files": files, "sizes": [3] * len(files)})

    assert data._copies(split(["a/1", "a/2"]), split(["b1", "b2"])) == [(tmp_path / "a/2", tmp_path / "b2")]


def test_symlinked_folders_are_followed_once(tiny_imagefolder: Path, tmp_path: Path) -> None:
    """A test split made of symlinks to the search split's class folders (how ImageNet subsets are made) shares
    its images; links inside a class folder back to it, or above it, are loops, not more images (until
    2026-12-07: the overlap went unseen, a loop counted each image 41 times or never ended)."""
    linked = tmp_path / "linked"
    linked.mkdir()
    for cls in ("ant", "bee"):
        (linked / cls).symlink_to(tiny_imagefolder / cls)
    spec = {"kind": "imagefolder", "model": SMALL, "search": str(tiny_imagefolder), "test": str(linked)}
    with pytest.raises(DataError, match="'search' and 'test' splits share 16 images"):
        load_splits(spec)
    loops = tmp_path / "loops"
    shutil.copytree(tiny_imagefolder / "ant", loops / "ant")
    (loops / "ant" / "self").symlink_to(loops / "ant")
    (loops / "ant" / "up").symlink_to(loops)
    assert len(image_folder(loops, SMALL)) == 8


@pytest.mark.parametrize("spec, message", [
    ({"kind": "imagenet"}, "unknown data kind"),
    ({"kind": "fashion-mnist", "root": "/x"}, "unknown field"),
    ({"kind": "imagefolder", "model": SMALL}, "defines no split"),
    ({"kind": "imagefolder", "search": {"root": "/x"}}, "needs 'model'"),
    ({"kind": "imagefolder", "model": SMALL, "search": {"root": "/x", "perclass": 3}}, "unknown field"),
    ({"kind": "imagefolder", "model": SMALL, "search": {"per_class": 3}}, "needs 'root'"),
    ({"kind": "imagefolder", "model": SMALL, "validation": {"root": "/x"}}, "unknown field"),
    # each a TypeError or ValueError traceback, some only once the images were decoded, until 2026-12-07
    ({"kind": "imagefolder", "model": SMALL, "search": {"root": 5}}, "needs 'root'.*got 5"),
    ({"kind": "imagefolder", "model": SMALL, "search": ["/x"]}, "must be a folder or"),
    ({"kind": "imagefolder", "model": SMALL, "search": "/x", "classes": 5}, "'classes' .* must be a class-list"),
    ({"kind": "imagefolder", "model": SMALL, "search": "/x", "workers": "many"}, "'workers' .* non-negative integer"),
    ({"kind": "imagefolder", "model": SMALL, "search": "/x", "workers": -1}, "'workers' .* non-negative integer"),
    ({"kind": "imagefolder", "model": SMALL, "search": "/x", "seed": "x"}, "'seed' .* an integer"),
    ({"kind": "imagefolder", "model": SMALL, "search": {"root": "/x", "per_class": 2.5}}, "'per_class' of the"),
    ({"kind": "imagefolder", "model": SMALL, "search": {"root": "/x", "files": 3}}, "'files' of the 'search'"),
    ({"kind": "imagefolder", "model": 7, "search": "/x"}, "'model' of the imagefolder data spec"),
    ({"kind": "imagefolder", "model": SMALL, "data_config": [3, 32, 32], "search": "/x"}, "'data_config'"),
    ({"kind": "fashion-mnist", "dir": 5}, "'dir' of the fashion-mnist data spec must be a folder"),
    ({"kind": "imagefolder", "model": SMALL, "search": "/x", 1: 2, "serach": "/y"}, r"unknown field\(s\) \[1, "),
])
def test_bad_specs(spec: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_splits(spec)
    if message != "needs 'model'":  # a study's own model stands in for it
        with pytest.raises(ConfigError, match=message):  # what a study checks before it loads the model
            check_data(resolve_data_spec(spec, "/"))


def test_check_data_wants_the_splits_a_study_uses(tiny_imagefolder: Path) -> None:
    """A study searches on 'search' and confirms on 'test': a spec without one was a KeyError once the model had
    loaded (without 'test': after the whole search), until 2026-12-07."""
    root = str(tiny_imagefolder)
    check_data({"kind": "imagefolder", "model": SMALL, "search": root}, need=())
    for spec, missing in (({"search": root}, "'test'"), ({"test": root}, "'search'"), ({"train": root},
                                                                                   "'search' or 'test'")):
        with pytest.raises(ConfigError, match=f"has no {missing} split"):
            check_data({"kind": "imagefolder", "model": SMALL, **spec}, need=("search", "test"))
    with pytest.raises(DataError, match="-gone does not exist"):
        check_data({"kind": "imagefolder", "model": SMALL, "search": root, "test": root + "-gone"},
                   need=("search", "test"))
    check_data({"kind": "fashion-mnist"}, need=("search", "test"))


def test_fashion_spec(make_fashion) -> None:
    d = make_fashion()
    assert len(load_splits({"kind": "fashion-mnist", "dir": str(d)})["search"]) == 2000


def test_resolve_data_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_imagefolder: Path) -> None:
    """A study's data made independent of where it runs: relative folders are the working directory's, else the
    spec's folder's, made absolute; an ImageNet subset's name stays a name (a folder called ``imagenet-1k`` in the
    working directory is not a class list); the automatic class order is written out; resolving twice changes
    nothing (every worker resolves the spec it is given)."""
    spec_dir, cwd = tmp_path / "specs", tmp_path / "cwd"
    (spec_dir / "val").mkdir(parents=True)
    (cwd / "train").mkdir(parents=True)
    (cwd / "imagenet-1k").mkdir()
    monkeypatch.chdir(cwd)
    data = {"kind": "imagefolder", "model": "deit_tiny_patch16_224", "classes": "imagenet-1k",
            "search": {"root": "train", "per_class": 2}, "test": "val"}
    out = resolve_data_spec(data, spec_dir)
    assert out["search"] == {"root": str(cwd / "train"), "per_class": 2}  # the working directory's first
    assert out["test"] == str(spec_dir / "val") and out["classes"] == "imagenet-1k"
    assert resolve_data_spec(out, spec_dir) == out
    assert resolve_data_spec({"kind": "fashion-mnist", "dir": "train"})["dir"] == str(cwd / "train")
    assert resolve_data_spec(None) == {"kind": "fashion-mnist"}
    auto = {"kind": "imagefolder", "model": SMALL, "search": str(tiny_imagefolder)}
    splits = load_splits(auto)
    assert resolve_data_spec(auto, splits=splits)["classes"] == ["ant", "bee", "cat"]
