"""Measured throughput (images/s) and peak memory of a model.

Convention (DESIGN.md): the study's batch size on its device (CUDA when available, else CPU), inference mode,
fp16 autocast on CUDA, warm-up, the median of several timed runs, each synchronised; every figure carries the
device name, batch size, dtype, torch version and thread count it was measured with. On CPU, peak memory is
reported as None rather than guessed.

:func:`cached_measure` memoises :func:`measure` on disk (joblib) under a key made of the candidate, the device
(name and thread count), the measuring settings and the torch/timm/searcher versions, so a study that resumes,
or meets the same candidate twice, does not time it again. :func:`compare` times two models in interleaved
runs and reports their ratio, for benchmarks on a noisy machine. :class:`DeviceLock` keeps a measurement apart
from the work of other processes on the same device (several search workers on one GPU or CPU).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .flops import eval_mode

__all__ = [
    "Throughput",
    "measure",
    "compare",
    "device_name",
    "cached_measure",
    "throughput_key",
    "input_shape_of",
    "DeviceLock",
    "device_lock",
]

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


def input_shape_of(model: nn.Module) -> tuple[int, ...]:
    """(C, H, W) of one input image: AutoFormer's config, else timm's patch embedding (image size and the
    input channels of its convolution), else ``pretrained_cfg['input_size']``."""
    config = getattr(model, "supernet_config", None) or getattr(model, "config", None)
    if config is not None and hasattr(config, "img_size") and hasattr(config, "in_chans"):  # AutoFormer
        return (int(config.in_chans), int(config.img_size), int(config.img_size))
    pe = getattr(model, "patch_embed", None)
    conv = getattr(pe, "proj", None)
    if pe is not None and isinstance(conv, nn.Conv2d) and getattr(pe, "img_size", None) is not None:
        chans = getattr(pe, "in_chans", None) or conv.in_channels  # a hybrid's convolution follows its backbone
        return (int(chans), *(int(v) for v in pe.img_size))
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("input_size"):
        return tuple(int(v) for v in cfg["input_size"])
    raise ValueError(f"cannot tell the input size of a {type(model).__name__}; pass input_shape=(C, H, W)")


def _input(model: nn.Module, batch_size: int, input_shape: tuple[int, ...] | None, device: torch.device):
    shape = input_shape_of(model) if input_shape is None else tuple(input_shape)
    return torch.randn(batch_size, *shape, device=device)


def _device(device: torch.device | str | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_counts(batch_size: int, repeats: int, warmup: int) -> None:
    for name, value, least in (("batch_size", batch_size, 1), ("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:  # 0 images: 0 img/s
            raise ConfigError(f"{name} must be a whole number of at least {least}, got {value!r}")


class BatchTooLarge(ConfigError, RuntimeError):
    """A timing batch that does not fit in memory: one error line for the user; a RuntimeError still, so that a
    trial timing a candidate fails alone, as Optuna's ``catch`` lets it, and the search goes on."""


@contextlib.contextmanager
def _fits(batch_size: int, device: torch.device) -> Iterator[None]:
    """Running out of memory at a timing batch is a :class:`BatchTooLarge` that says what to lower (a traceback
    otherwise, after a whole search when the final Pareto set is timed)."""
    try:
        yield
    except (RuntimeError, MemoryError) as e:
        if not isinstance(e, MemoryError | torch.OutOfMemoryError) and not any(
                words in str(e) for words in ("out of memory", "can't allocate memory", "not enough memory")):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise BatchTooLarge(f"a batch of {batch_size} images does not fit in the memory of {device_name(device)}; "
                            "time a smaller batch (throughput_batch in a study spec, batch_size in Python)") from e


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

    ``min_time`` > 0 repeats each timed run until it lasts at least that many seconds (for tiny models). The model
    is moved to ``device`` and timed in eval mode; it is left in the mode it had.
    """
    _check_counts(batch_size, repeats, warmup)
    device = _device(device)
    with eval_mode(model), _fits(batch_size, device):
        x = _input(model.to(device), batch_size, input_shape, device)
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
    _check_counts(batch_size, repeats, warmup)
    device = _device(device)
    with eval_mode(a, b), _fits(batch_size, device):
        xa = _input(a.to(device), batch_size, input_shape, device)
        run_a, run_b = _runner(a, xa, device), _runner(b.to(device), xa, device)
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
        "dtype": "float16" if device.type == "cuda" else "float32",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------------------------- device lock
class DeviceLock:
    """A readers-writer lock on one device, between the processes of this host (``flock``).

    Work that only needs the device's results (evaluation) holds it :meth:`shared`, a batch at a time
    (:func:`~searcher.evaluate.evaluate_chunks`); a throughput measurement holds it :meth:`exclusive`: it waits for
    the batches other processes are running, and their next batches wait for it, so it times the model alone, not
    beside another worker's evaluation. The measurement goes first: a reader passes a gate that the measurement holds
    while it waits, so readers whose batches overlap cannot keep it waiting for ever. Uncontended, each call costs a
    few system calls. :attr:`waited` sums the seconds this process has waited for the lock (for another process's
    measurement, or for its batches): neither evaluation nor search overhead.

    The lock files are ``<tmp>/searcher-<uid>/<device>.lock`` and ``.gate``, keyed by the GPU's UUID (the same GPU
    whatever ``CUDA_VISIBLE_DEVICES`` says) or ``cpu``. Only processes of one user on one host take part.
    """

    def __init__(self, device: torch.device | str | None = None, directory: str | Path | None = None):
        device = _device(device)
        directory = Path(directory or Path(tempfile.gettempdir()) / f"searcher-{os.getuid()}")
        self.path = directory / f"{_device_key(device)}.lock"
        self._files: tuple[Any, Any] | None = None
        self._pid = 0
        self.waited = 0.0

    def _open(self) -> tuple[Any, Any] | None:
        """The two open lock files, or None where they cannot be made (then nothing is locked, with a warning)."""
        # flock belongs to an open file: a forked child opens its own, or it would share its parent's lock
        if self._pid != os.getpid():
            self._pid = os.getpid()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._files = (open(self.path.with_suffix(".gate"), "a+"), open(self.path, "a+"))
            except OSError as e:
                log.warning("cannot use the device lock %s (%s): throughput is timed without keeping other "
                            "processes' evaluation away", self.path, e)
                self._files = None
        return self._files

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        files = self._open()
        if files is None:
            yield
            return
        gate, lock = files
        t = time.perf_counter()
        fcntl.flock(gate, fcntl.LOCK_EX)  # waits while a measurement waits or runs
        try:
            fcntl.flock(lock, fcntl.LOCK_SH)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
            self.waited += time.perf_counter() - t
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        files = self._open()
        if files is None:
            yield
            return
        gate, lock = files
        t = time.perf_counter()
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # waits for the batches running now; new ones wait at the gate
            self.waited += time.perf_counter() - t
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)



def _device_key(device: torch.device) -> str:
    if device.type == "cuda":
        uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
        return f"cuda-{uuid}" if uuid is not None else f"cuda{device.index or 0}"
    return device.type


_LOCKS: dict[str, DeviceLock] = {}


def device_lock(device: torch.device | str | None = None) -> DeviceLock:
    """This process's :class:`DeviceLock` for ``device`` (default: CUDA when available, else the CPU)."""
    dev = _device(device)
    key = f"{dev.type}:{dev.index or 0}"
    if key not in _LOCKS:
        _LOCKS[key] = DeviceLock(dev)
    return _LOCKS[key]


# ------------------------------------------------------------------------------------------------- cache
def _versions() -> dict[str, str]:
    import timm

    from .. import __version__

    return {"torch": torch.__version__, "timm": timm.__version__, "searcher": __version__}


def throughput_key(candidate: Any, device: torch.device | str | None = None, batch_size: int = 64,
                   input_shape: tuple[int, ...] | None = None, repeats: int = 5, warmup: int = 2,
                   min_time: float = 0.0) -> str:
    """The cache key of one measurement: the candidate (anything JSON-able that says what the model is: its
    source, arch and schedule), the device by name (CPU: with its thread count), the settings, the dtype and
    the torch/timm/searcher versions — canonical JSON."""
    dev = _device(device)
    return json.dumps({"candidate": candidate, "device": device_name(dev), "batch_size": batch_size,
                       "input_shape": None if input_shape is None else list(input_shape), "repeats": repeats,
                       "warmup": warmup, "min_time": min_time,
                       "dtype": "float16" if dev.type == "cuda" else "float32", **_versions()},
                      sort_keys=True, default=str)


def _measure_for_key(key: str, model: nn.Module, settings: dict[str, Any]) -> dict[str, Any]:
    """What joblib memoises: ``key`` and ``settings`` are hashed, ``model`` is ignored."""
    log.debug("timing %s", key)
    return measure(model, **settings).to_dict()


def cached_measure(model: nn.Module, candidate: Any, batch_size: int = 64,
                   input_shape: tuple[int, ...] | None = None, device: torch.device | str | None = None,
                   repeats: int = 5, warmup: int = 2, min_time: float = 0.0,
                   cache_dir: str | Path | None = None) -> Throughput:
    """:func:`measure`, memoised on disk with joblib under :func:`throughput_key` (the model itself is not
    hashed: ``candidate`` must say what it is). Cached in ``cache_dir``, default
    ``$SEARCHER_CACHE/throughput`` (``~/.cache/searcher/throughput``)."""
    import joblib

    if cache_dir is None:
        from ..data import cache_dir as default_cache

        cache_dir = default_cache() / "throughput"
    dev = _device(device)
    key = throughput_key(candidate, dev, batch_size, input_shape, repeats, warmup, min_time)
    settings = {"batch_size": batch_size, "input_shape": input_shape, "device": str(dev), "repeats": repeats,
                "warmup": warmup, "min_time": min_time}
    cached = joblib.Memory(str(cache_dir), verbose=0).cache(_measure_for_key, ignore=["model"])
    return Throughput(**cached(key, model, settings))
