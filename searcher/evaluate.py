"""Top-1 / top-5 of any classifier on a :class:`~searcher.data.Split`.

Batched, under ``torch.inference_mode``, with fp16 autocast on CUDA. :func:`evaluate_chunks` yields running
counts after each chunk so a search can stop a hopeless trial early; :func:`evaluate` consumes it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .data import Split
from .errors import SearcherError

__all__ = ["Accuracy", "NumericalError", "default_device", "evaluate", "evaluate_chunks"]

log = logging.getLogger(__name__)


class NumericalError(SearcherError):
    """The model produced NaN or inf logits."""


@dataclass
class Accuracy:
    """Running counts on a split; ``top1``/``top5`` are percentages of the images seen so far."""

    correct1: int = 0
    correct5: int = 0
    n: int = 0
    total: int = 0  # size of the whole split

    @property
    def top1(self) -> float:
        return 100.0 * self.correct1 / max(self.n, 1)

    @property
    def top5(self) -> float:
        return 100.0 * self.correct5 / max(self.n, 1)

    def to_dict(self) -> dict:
        return {"top1": self.top1, "top5": self.top5, **asdict(self)}


def default_device() -> torch.device:
    """CUDA when available, else the CPU with all its cores."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(os.cpu_count() or 1)
    return torch.device("cpu")


def evaluate_chunks(model: nn.Module, split: Split, batch_size: int = 256, chunk: int | None = None,
                    device: torch.device | str | None = None, limit: int | None = None,
                    progress: bool = False) -> Iterator[Accuracy]:
    """Evaluate ``model`` on ``split`` and yield the running :class:`Accuracy` after every ``chunk`` images
    (after every batch when ``chunk`` is None). Raises :class:`NumericalError` on NaN/inf logits."""
    device = torch.device(device) if device is not None else default_device()
    n_total = len(split) if limit is None else min(limit, len(split))
    chunk = chunk or batch_size
    model.eval().to(device)
    acc = Accuracy(total=n_total)
    use_amp = device.type == "cuda"
    bar = tqdm(total=n_total, desc=f"eval {split.name}", unit="img", disable=not progress, leave=False)
    next_report = chunk
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
        for images, labels in split.batches(batch_size, stop=n_total):
            images, labels = images.to(device, non_blocking=True), labels.to(device)
            logits = model(images).float()
            if not torch.isfinite(logits).all():
                raise NumericalError(f"the model produced NaN or inf logits on split {split.name!r}")
            k = min(5, logits.shape[-1])
            top = logits.topk(k, dim=-1).indices
            hits = top == labels[:, None]
            acc.correct1 += int(hits[:, 0].sum())
            acc.correct5 += int(hits.any(-1).sum())
            acc.n += int(labels.shape[0])
            bar.update(int(labels.shape[0]))
            bar.set_postfix(top1=f"{acc.top1:.2f}")
            if acc.n >= next_report or acc.n == n_total:
                next_report = acc.n + chunk
                yield acc
    bar.close()


def evaluate(model: nn.Module, split: Split, batch_size: int = 256, device: torch.device | str | None = None,
             limit: int | None = None, progress: bool = False) -> Accuracy:
    """Top-1 and top-5 of ``model`` on ``split`` (the first ``limit`` images when given)."""
    acc = Accuracy(total=len(split))
    for acc in evaluate_chunks(model, split, batch_size, None, device, limit, progress):
        pass
    return acc
