"""Measured throughput (images/s) and peak memory of a model.

Convention (DESIGN.md): the study's batch size on its device (CUDA when available, else CPU), inference mode,
fp16 autocast on CUDA, warm-up, the median of several timed runs, each synchronised; every figure carries the
device name, batch size, dtype, torch version and thread count it was measured with. On CPU, peak memory is
reported as None rather than guessed.
"""

from __future__ import annotations

import logging
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["Throughput", "measure", "compare", "device_name"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Throughput:
    """One throughput figure and the conditions it was measured under."""

    img_s: float  # median images per second
    img_s_min: float
    img_s_max: float
    repeats: int
    batch_size: int
    device: str  # e.g. "cpu: AMD EPYC (2 threads)" or "cuda: NVIDIA H100"
    dtype: str  # "float32" on CPU, "float16" (autocast) on CUDA
    torch: str
    threads: int
    peak_mem_mb: float | None  # CUDA max allocated; None on CPU

    @property
    def spread_pct(self) -> float:
        """(max − min) / median, in percent: how repeatable the figure is on this machine."""
        return 100.0 * (self.img_s_max - self.img_s_min) / self.img_s

    def to_dict(self) -> dict:
        return asdict(self)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"cpu: {cpu} ({torch.get_num_threads()} threads)"


def _runner(model: nn.Module, x: torch.Tensor, device: torch.device) -> Callable[[], float]:
    """A closure that runs one synchronised forward pass and returns its wall time in seconds."""
    use_amp = device.type == "cuda"

    def run() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t

    return run


def _input(model: nn.Module, batch_size: int, input_shape: tuple[int, ...] | None, device: torch.device):
    if input_shape is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        input_shape = tuple(cfg.get("input_size", ()))
        if not input_shape:
            img = getattr(getattr(model, "patch_embed", None), "img_size", (224, 224))
            chans = getattr(model, "in_chans", 3)
            input_shape = (chans, *tuple(img))
    return torch.randn(batch_size, *input_shape, device=device)


def measure(
    model: nn.Module,
    batch_size: int = 64,
    input_shape: tuple[int, ...] | None = None,
    device: torch.device | str | None = None,
    repeats: int = 5,
    warmup: int = 2,
    min_time: float = 0.0,
) -> Throughput:
    """Median throughput of ``model`` over ``repeats`` timed forward passes after ``warmup`` untimed ones.

    ``min_time`` > 0 repeats each timed run until it lasts at least that many seconds (for tiny models).
    """
    device = (
        torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    model = model.eval().to(device)
    x = _input(model, batch_size, input_shape, device)
    run = _runner(model, x, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(warmup):
        run()
    rates = []
    for _ in range(repeats):
        n, t = 0, 0.0
        while n == 0 or t < min_time:
            t += run()
            n += 1
        rates.append(n * batch_size / t)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return Throughput(
        statistics.median(rates),
        min(rates),
        max(rates),
        repeats,
        batch_size,
        device_name(device),
        "float16" if device.type == "cuda" else "float32",
        torch.__version__,
        torch.get_num_threads(),
        peak,
    )


def compare(
    a: nn.Module,
    b: nn.Module,
    batch_size: int = 64,
    input_shape: tuple[int, ...] | None = None,
    device: torch.device | str | None = None,
    repeats: int = 7,
    warmup: int = 2,
) -> dict:
    """Throughput of ``a`` and ``b`` measured in interleaved runs (a, b, a, b, …) and the median of the
    per-pair ratios b/a — robust to a noisy machine whose speed drifts during the measurement."""
    device = (
        torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    xa = _input(a.eval().to(device), batch_size, input_shape, device)
    run_a, run_b = _runner(a, xa, device), _runner(b.eval().to(device), xa, device)
    for _ in range(warmup):
        run_a(), run_b()
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(run_a())
        tb.append(run_b())
    ratios = [x / y for x, y in zip(ta, tb, strict=True)]
    return {
        "a_img_s": batch_size / statistics.median(ta),
        "b_img_s": batch_size / statistics.median(tb),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "batch_size": batch_size,
        "device": device_name(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
