"""``searcher train``: seeded, deterministic on CPU, and a resumed run ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from searcher.errors import ConfigError
from searcher.train import TrainConfig, augment, train


def small(tmp_path: Path, data_dir: Path, name: str, **kw) -> TrainConfig:
    return TrainConfig(
        model="fashion-vit",
        out=str(tmp_path / name),
        epochs=2,
        batch_size=32,
        limit=96,
        eval_images=64,
        data_dir=str(data_dir),
        warmup_epochs=0.5,
        **kw,
    )


def test_resumed_run_equals_uninterrupted_run(tmp_path: Path, make_fashion) -> None:
    data_dir = make_fashion(n_train=4000, n_test=100)
    meta = train(small(tmp_path, data_dir, "straight"))
    assert meta is not None and 0 <= meta["accuracy"]["test_top1"] <= 100
    assert train(small(tmp_path, data_dir, "resumed"), stop_at=4) is None  # 6 steps in all: stop after 4
    assert (tmp_path / "resumed" / "checkpoint.pt").exists()
    train(small(tmp_path, data_dir, "resumed"))
    a = load_file(str(tmp_path / "straight" / "fashion-vit.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "fashion-vit.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = json.loads((tmp_path / "straight" / "fashion-vit.json").read_text())
    assert saved["training"]["seed"] == 0 and saved["data"]["checksums"]


def test_resume_with_other_options_is_refused(tmp_path: Path, make_fashion) -> None:
    data_dir = make_fashion(n_train=4000, n_test=100)
    train(small(tmp_path, data_dir, "run"), stop_at=1)
    with pytest.raises(ConfigError, match="lr"):
        train(small(tmp_path, data_dir, "run", lr=5e-4))


def test_unknown_training_option_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown training options"):
        TrainConfig.from_dict({"model": "fashion-vit", "epochz": 3})


def test_augment_translates_and_flips_within_bounds() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).reshape(2, 1, 6, 6)
    y = augment(x, 2, True, g)
    assert y.shape == x.shape and y.dtype == torch.uint8
    for i in range(2):  # every output pixel is zero padding or a pixel of the same image
        assert set(y[i].flatten().tolist()) <= set(x[i].flatten().tolist()) | {0}
