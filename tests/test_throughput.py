"""Measured throughput (searcher.cost.throughput): what every figure records, input shapes, interleaved
comparison, the on-disk cache, and the lock that keeps a measurement apart from other processes' evaluation.
Timings on a shared CPU are noisy, so only their form is checked."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import queue
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from searcher.cost import throughput as T
from searcher.models.autoformer import AutoFormerSupernet, SubnetConfig, extract_subnet


def tiny_vit(**kwargs: Any) -> nn.Module:
    args = dict(img_size=16, patch_size=4, embed_dim=16, depth=1, num_heads=2, num_classes=3) | kwargs
    return VisionTransformer(**args).eval()


class Counting(nn.Module):
    """Wraps a model and counts its forward passes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0
        self.patch_embed = model.patch_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(x)


def test_measure_records_its_conditions() -> None:
    tp = T.measure(tiny_vit(), batch_size=4, device="cpu", repeats=3, warmup=1)
    assert tp.img_s_min <= tp.img_s <= tp.img_s_max and tp.img_s > 0
    assert (tp.repeats, tp.batch_size, tp.dtype, tp.torch) == (3, 4, "float32", torch.__version__)
    assert tp.device.startswith("cpu: ") and f"({torch.get_num_threads()} threads)" in tp.device
    assert tp.threads == torch.get_num_threads()
    assert tp.peak_mem_mb is None  # on CPU: none rather than a guess
    assert tp.spread_pct >= 0
    assert json.loads(json.dumps(tp.to_dict()))["batch_size"] == 4


def test_measure_min_time_repeats_short_runs() -> None:
    model = Counting(tiny_vit())
    T.measure(model, batch_size=2, device="cpu", repeats=2, warmup=1, min_time=0.02)
    assert model.calls >= 3  # warm-up, then at least one pass per repetition


def test_input_shapes() -> None:
    """timm: patch-embed size and input channels; AutoFormer supernets and extracted subnets: their config."""
    assert T.input_shape_of(tiny_vit(img_size=(8, 12), in_chans=1)) == (1, 8, 12)
    sn = AutoFormerSupernet(img_size=8, patch_size=4, in_chans=1, num_classes=3, embed_dim=16, depth=1,
                            num_heads=2, mlp_ratio=2.0, head_dim=8, max_relative_position=2)
    assert T.input_shape_of(sn) == (1, 8, 8)
    assert T.input_shape_of(extract_subnet(sn, SubnetConfig(8, 1, (2.0,), (1,)))) == (1, 8, 8)
    with pytest.raises(ValueError, match="input_shape"):
        T.input_shape_of(nn.Linear(2, 2))
    tp = T.measure(sn, batch_size=2, device="cpu", repeats=1, warmup=0)
    assert tp.img_s > 0


def test_compare_interleaves_and_reports_the_ratio() -> None:
    a, b = Counting(tiny_vit(depth=2)), Counting(tiny_vit(depth=1))
    r = T.compare(a, b, batch_size=2, device="cpu", repeats=3, warmup=1)
    assert a.calls == b.calls == 4
    assert r["ratio_min"] <= r["ratio"] <= r["ratio_max"] and r["ratio"] > 0
    assert {"a_img_s", "b_img_s", "device", "dtype", "torch", "threads", "batch_size"} <= set(r)



def test_measure_and_compare_refuse_empty_counts_and_keep_the_model_s_mode() -> None:
    """Until 2026-12-08 ``batch_size=0`` measured 0 img/s, ``repeats=0`` was a StatisticsError, and a model being
    trained was left in eval mode (``evaluate`` puts it back)."""
    from searcher.errors import ConfigError

    model = tiny_vit().train()
    for kwargs, message in ((dict(batch_size=0), "batch_size must be a whole number of at least 1, got 0"),
                            (dict(repeats=0), "repeats must .* at least 1"), (dict(warmup=-1), "warmup"),
                            (dict(batch_size=2.5), "got 2.5")):
        with pytest.raises(ConfigError, match=message):
            T.measure(model, device="cpu", **kwargs)
        with pytest.raises(ConfigError, match=message):
            T.compare(model, tiny_vit(), device="cpu", **kwargs)
    assert T.measure(model, batch_size=2, device="cpu", repeats=1, warmup=0).img_s > 0 and model.training
    other = tiny_vit()
    T.compare(model, other, batch_size=2, device="cpu", repeats=1, warmup=0)
    assert model.training and not other.training

def test_a_batch_that_does_not_fit_in_memory_says_what_to_lower() -> None:
    """A study's ``throughput_batch`` too large for the device failed with a RuntimeError traceback after the whole
    search, when the final Pareto set was timed, until 2026-12-07 (the study keeps its trials: a smaller batch
    finishes it). Another RuntimeError keeps its traceback."""
    from searcher.errors import ConfigError

    model = tiny_vit()
    with pytest.raises(ConfigError, match="a batch of 1000000000000 images does not fit in the memory of cpu.*"
                       "throughput_batch in a study spec"):
        T.measure(model, batch_size=10**12, device="cpu")
    with pytest.raises(ConfigError, match="does not fit in the memory"):
        T.compare(model, tiny_vit(), batch_size=10**12, device="cpu")
    with pytest.raises(RuntimeError, match="channels") as e:
        T.measure(model, batch_size=2, input_shape=(5, 16, 16), device="cpu")
    assert not isinstance(e.value, ConfigError)


def test_cached_measure_times_each_key_once(tmp_path: Path) -> None:
    model = Counting(tiny_vit())
    cand = {"model": "tiny", "schedule": {"version": 1, "layers": [{"op": "none"}]}}
    kw: dict[str, Any] = dict(batch_size=2, device="cpu", repeats=2, warmup=1, cache_dir=tmp_path)
    first = T.cached_measure(model, cand, **kw)
    calls = model.calls
    assert calls == 3
    again = T.cached_measure(model, cand, **kw)
    assert again == first and model.calls == calls  # from disk, not re-timed
    T.cached_measure(model, {**cand, "arch": "other"}, **kw)  # another candidate
    assert model.calls == 2 * calls
    T.cached_measure(model, cand, **(kw | {"batch_size": 3}))  # other settings
    assert model.calls == 3 * calls


def test_throughput_key_names_device_settings_and_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    key = json.loads(T.throughput_key({"schedule": "s"}, "cpu", 8))
    assert key["candidate"] == {"schedule": "s"} and key["batch_size"] == 8 and key["dtype"] == "float32"
    assert key["device"] == T.device_name(torch.device("cpu"))
    assert {"torch", "timm", "searcher"} <= set(key)
    before = T.throughput_key({"schedule": "s"}, "cpu", 8)
    monkeypatch.setattr(torch, "__version__", "0.0.0-other")
    assert T.throughput_key({"schedule": "s"}, "cpu", 8) != before
    monkeypatch.undo()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert T.throughput_key({"schedule": "s"}, "cpu", 8) != before  # the thread count is part of the device
    finally:
        torch.set_num_threads(threads)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_measure_on_cuda_uses_fp16_and_reports_peak_memory() -> None:
    tp = T.measure(tiny_vit(), batch_size=8, device="cuda", repeats=3, warmup=1)
    assert tp.dtype == "float16" and tp.device.startswith("cuda: ")
    assert tp.peak_mem_mb is not None and tp.peak_mem_mb > 0


def _hold_shared(lock: T.DeviceLock, start: float, until: float, out: Any) -> None:
    """A worker evaluating chunk after chunk (0.1 s each) under the shared lock; records each chunk's interval."""
    time.sleep(max(0.0, start - time.monotonic()))
    while time.monotonic() < until:
        with lock.shared():
            t0 = time.monotonic()
            time.sleep(0.1)
            out.put((t0, time.monotonic()))


def test_device_lock_times_alone_and_before_waiting_chunks(tmp_path: Path) -> None:
    """Two processes whose chunks overlap, so one of them always holds the lock shared: a measurement still gets
    it at once (after the chunks running now, not after they stop), and no chunk runs while it holds it."""
    lock = T.DeviceLock("cpu", tmp_path)
    with lock.shared():  # opened here first: the forked children must open their own lock files
        pass
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    t = time.monotonic() + 0.5
    procs = [ctx.Process(target=_hold_shared, args=(lock, t + 0.05 * i, t + 3.0, out)) for i in range(2)]
    for p in procs:
        p.start()
    time.sleep(max(0.0, t + 0.5 - time.monotonic()))
    asked = time.monotonic()
    with lock.exclusive():
        got = time.monotonic()
        time.sleep(0.3)
        done = time.monotonic()
    for p in procs:
        p.join(timeout=10)
        assert p.exitcode == 0
    chunks = []
    with contextlib.suppress(queue.Empty):
        while True:
            chunks.append(out.get(timeout=1))
    assert got - asked < 0.5, f"the measurement waited {got - asked:.2f} s for overlapping chunks"
    assert not [c for c in chunks if c[0] < done and c[1] > got], "a chunk ran during the measurement"
    assert sum(c[0] >= done for c in chunks) >= 4, "the chunks did not resume after the measurement"
    assert T.DeviceLock("cpu", tmp_path).path == lock.path == tmp_path / "cpu.lock"


def test_device_lock_without_a_usable_directory_warns_and_locks_nothing(tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file").write_text("")
    lock = T.DeviceLock("cpu", tmp_path / "file" / "locks")
    with lock.exclusive(), lock.shared():  # would wait for ever if it locked
        pass
    assert "cannot use the device lock" in caplog.text and "Not a directory" in caplog.text
