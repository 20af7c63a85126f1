"""Top-1 / top-5 of any classifier on a :class:`~searcher.data.Split`.

Batched, under ``torch.inference_mode``, with fp16 autocast on CUDA. :func:`evaluate_chunks` yields running
counts after each chunk so a search can stop a hopeless trial early; :func:`evaluate` consumes it. Given a
:class:`~searcher.cost.throughput.DeviceLock`, each batch holds it shared, so that no throughput measurement in
another process runs beside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import Split
from .errors import ConfigError, SearcherError

if TYPE_CHECKING:
    from .cost.throughput import DeviceLock

__all__ = ["Accuracy", "NumericalError", "default_device", "evaluate", "evaluate_chunks"]

log = logging.getLogger(__name__)


class NumericalError(SearcherError):
    """The model produced NaN or inf logits."""


@dataclass
class Accuracy:
    """Running counts on a split; ``top1``/``top5`` are percentages of the images seen so far."""

    correct1: int = 0
    correct5: int = 0
    n: int = 0  # images seen so far
    total: int = 0  # images that will be seen in all (the split, or its first ``limit`` images)

    @property
    def top1(self) -> float:
        return 100.0 * self.correct1 / max(self.n, 1)

    @property
    def top5(self) -> float:
        return 100.0 * self.correct5 / max(self.n, 1)

    @property
    def done(self) -> bool:
        return self.n >= self.total

    def to_dict(self) -> dict:
        return {"top1": self.top1, "top5": self.top5, **asdict(self)}


def default_device() -> torch.device:
    """CUDA when available, else the CPU.

    On the CPU torch's own thread pool already spans all (physical) cores; this function does not call
    ``torch.set_num_threads``, so a thread count chosen by the caller (``searcher train --threads``) stands.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def evaluate_chunks(model: nn.Module, split: Split, batch_size: int = 256, chunk: int | None = None,
                    device: torch.device | str | None = None, limit: int | None = None,
                    progress: bool = False, lock: DeviceLock | None = None) -> Iterator[Accuracy]:
    """Evaluate ``model`` on ``split`` and yield the running :class:`Accuracy` after every ``chunk`` images
    (after every batch when ``chunk`` is None) and at the end.

    Batches never straddle a chunk boundary, so the k-th report covers exactly the first ``k * chunk`` images.
    Each report is a separate object (collecting them gives the history). Stopping the iteration early is
    how a search abandons a hopeless trial. ``lock``: held shared for each batch (released between batches).
    Raises :class:`NumericalError` on NaN/inf logits and
    :class:`~searcher.errors.ConfigError` when the model's outputs do not fit the split's classes.
    """
    if batch_size < 1 or (chunk is not None and chunk < 1):
        raise ConfigError(f"batch size and chunk must be at least 1, got {batch_size=}, {chunk=}")
    if limit is not None and limit < 0:  # limit=-5 scored 0 % as if it were 0
        raise ConfigError(f"limit must not be negative, got {limit}; None evaluates the whole split")
    device = torch.device(device) if device is not None else default_device()
    n_total = len(split) if limit is None else min(limit, len(split))
    chunk = chunk or batch_size
    was_training = model.training
    model.eval().to(device)
    acc = Accuracy(total=n_total)
    use_amp = device.type == "cuda"
    hold = lock.shared if lock is not None else contextlib.nullcontext
    bar = tqdm(total=n_total, desc=f"eval {split.name}", unit="img", disable=not progress, leave=False)
    try:
        for lo in range(0, n_total, chunk):
            # inference mode and autocast are thread-wide: they end before each yield, so the caller runs outside
            # them, and a caller that stops early (the generator left suspended) leaves no mode on behind it
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                for images, labels in split.batches(batch_size, start=lo, stop=min(lo + chunk, n_total)):
                    with hold():  # the counts below synchronise: the batch's work is done when it is released
                        images, labels = images.to(device, non_blocking=True), labels.to(device)
                        logits = model(images).float()  # (B, num_classes)
                        _check_logits(logits, labels, split)
                        k = min(5, logits.shape[-1])
                        top = logits.topk(k, dim=-1).indices  # (B, k)
                        hits = top == labels[:, None]  # (B, k)
                        acc.correct1 += int(hits[:, 0].sum())
                        acc.correct5 += int(hits.any(-1).sum())
                    acc.n += int(labels.shape[0])
                    bar.update(int(labels.shape[0]))
                    bar.set_postfix(top1=f"{acc.top1:.2f}")
            yield dataclasses.replace(acc)
    finally:  # when the generator ends or is closed (a caller that stops early: once it is closed or collected)
        bar.close()
        model.train(was_training)  # a model evaluated in the middle of its training goes on training


def _check_logits(logits: torch.Tensor, labels: torch.Tensor, split: Split) -> None:
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ConfigError(f"the model returned shape {tuple(logits.shape)} for a batch of {labels.shape[0]} "
                          f"images; expected ({labels.shape[0]}, {split.num_classes}) class logits")
    if logits.shape[1] != split.num_classes:  # labels would be scored against other logits
        raise ConfigError(f"the model has {logits.shape[1]} outputs but split {split.name!r} has "
                          f"{split.num_classes} classes; is it the right model for this data?")
    if not torch.isfinite(logits).all():
        raise NumericalError(f"the model produced NaN or inf logits on split {split.name!r}")


def evaluate(model: nn.Module, split: Split, batch_size: int = 256, device: torch.device | str | None = None,
             limit: int | None = None, progress: bool = False, lock: DeviceLock | None = None) -> Accuracy:
    """Top-1 and top-5 of ``model`` on ``split`` (the first ``limit`` images when given); ``lock`` as in
    :func:`evaluate_chunks`."""
    n_total = len(split) if limit is None else max(0, min(limit, len(split)))
    acc = Accuracy(total=n_total)
    # one chunk: a single report at the end
    for acc in evaluate_chunks(model, split, batch_size, max(n_total, 1), device, limit, progress, lock):  # noqa: B007
        pass
    return acc
