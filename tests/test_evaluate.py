"""Top-1/top-5 and running accuracy, with a fake model whose answers the test chooses."""

from __future__ import annotations

import fcntl

import pytest
import torch
from torch import nn

from searcher.cost.throughput import DeviceLock
from searcher.data import Split
from searcher.errors import ConfigError, SearcherError
from searcher.evaluate import Accuracy, NumericalError, default_device, evaluate, evaluate_chunks

N, C = 20, 10


def id_split(n: int = N, num_classes: int = C) -> Split:
    """Image ``i`` holds ``i`` in its first pixel (mean 0, std 1: the model sees i / 255); label ``i % C``."""
    images = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return Split("search", images, torch.arange(n) % num_classes, (0.0,), (1.0,),
                 [f"c{i}" for i in range(num_classes)])


class Lookup(nn.Module):
    """Returns ``table[i]`` for image ``i``; records batch sizes and whether inference mode was on."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("table", table)
        self.batch_sizes: list[int] = []
        self.inference: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes.append(x.shape[0])
        self.inference.append(torch.is_inference_mode_enabled() and not self.training)
        ids = (x[:, 0, 0, 0] * 255).round().long()
        return self.table[ids]


def ranked_table(rank_of_label: list[int]) -> torch.Tensor:
    """Logits where the label of image ``i`` is the ``rank_of_label[i]``-th best class (0 = top-1)."""
    table = torch.zeros(len(rank_of_label), C)
    for i, rank in enumerate(rank_of_label):
        order = [c for c in range(C) if c != i % C]
        order.insert(rank, i % C)
        table[i, order] = torch.linspace(1.0, 0.0, C)
    return table


# images 0-7 right, 8-13 right within the top 5 (label ranked 3rd), 14-19 wrong (label ranked last)
RANKS = [0] * 8 + [2] * 6 + [9] * 6


def test_top1_top5() -> None:
    acc = evaluate(Lookup(ranked_table(RANKS)), id_split(), batch_size=7, device="cpu")
    assert (acc.correct1, acc.correct5, acc.n, acc.total) == (8, 14, 20, 20)
    assert acc.top1 == pytest.approx(40.0) and acc.top5 == pytest.approx(70.0)
    assert acc.to_dict() == {"top1": 40.0, "top5": 70.0, "correct1": 8, "correct5": 14, "n": 20, "total": 20}


def test_runs_in_inference_and_eval_mode() -> None:
    model = Lookup(ranked_table(RANKS)).train()
    evaluate(model, id_split(), batch_size=8, device="cpu")
    assert model.inference == [True, True, True]  # eval mode inside ...
    assert model.training  # ... and the training mode back afterwards (left in eval until 2026-12-07)


def test_chunks_report_running_accuracy_at_exact_boundaries() -> None:
    model = Lookup(ranked_table(RANKS))
    reports = list(evaluate_chunks(model, id_split(), batch_size=4, chunk=6, device="cpu"))
    assert [r.n for r in reports] == [6, 12, 18, 20]
    assert model.batch_sizes == [4, 2, 4, 2, 4, 2, 2]  # batches never straddle a chunk boundary
    for r in reports:  # each report is a snapshot of the first r.n images
        assert r.correct1 == sum(rank == 0 for rank in RANKS[: r.n])
        assert r.correct5 == sum(rank < 5 for rank in RANKS[: r.n])
        assert r.total == 20
    assert [r.done for r in reports] == [False, False, False, True]
    assert reports[0].top1 == pytest.approx(100.0) and reports[-1].top1 == pytest.approx(40.0)


def test_chunk_defaults_to_the_batch_and_can_stop_early() -> None:
    model = Lookup(ranked_table(RANKS))
    assert [r.n for r in evaluate_chunks(model, id_split(), batch_size=8, device="cpu")] == [8, 16, 20]
    for report in evaluate_chunks(model, id_split(), batch_size=5, chunk=5, device="cpu", progress=True):
        if report.top1 < 100:  # a search abandons the trial here
            break
    assert report.n == 10


def test_a_caller_runs_outside_inference_mode_between_chunks_and_after_stopping() -> None:
    """Inference mode and autocast are thread-wide. Yielded from inside them, a caller ran in them between chunks
    and, once it stopped early, after: with interleaved stopped trials ``optimize`` left inference mode on in the
    user's thread (no gradients, models built of inference tensors) until 2026-12-07."""
    model = Lookup(ranked_table(RANKS))
    stopped = []
    for _ in range(3):  # several evaluations stopped at once and left suspended, as a study's pruned trials are
        chunks = evaluate_chunks(model, id_split(), batch_size=5, chunk=5, device="cpu")
        next(chunks)
        assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()
        stopped.append(chunks)
    assert all(r.n for r in evaluate_chunks(model, id_split(), batch_size=5, chunk=5, device="cpu"))
    del stopped
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()
    assert model.inference and all(model.inference)  # the batches themselves ran in inference mode


def _held(lock: DeviceLock) -> bool:
    """Whether someone holds ``lock`` (asked through another open file, without waiting)."""
    with open(lock.path, "a+") as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False


def test_each_batch_holds_the_device_lock_shared(tmp_path) -> None:
    """Every forward pass runs holding the lock shared, and it is released between batches (a throughput
    measurement in another process can take it there), also when the caller stops early."""
    lock = DeviceLock("cpu", tmp_path)
    held: list[bool] = []

    class Probe(Lookup):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            held.append(_held(lock))
            return super().forward(x)

    model = Probe(ranked_table(RANKS))
    assert evaluate(model, id_split(), batch_size=7, device="cpu", lock=lock).n == N
    assert held == [True, True, True] and not _held(lock)
    for _ in evaluate_chunks(model, id_split(), batch_size=5, chunk=5, device="cpu", lock=lock):
        assert not _held(lock)  # between batches
        break
    assert not _held(lock)


def test_limit_and_empty() -> None:
    acc = evaluate(Lookup(ranked_table(RANKS)), id_split(), batch_size=3, device="cpu", limit=10)
    assert (acc.n, acc.total, acc.correct1, acc.correct5) == (10, 10, 8, 10)
    empty = evaluate(Lookup(ranked_table(RANKS)), id_split(), device="cpu", limit=0)
    assert (empty.n, empty.top1) == (0, 0.0)
    with pytest.raises(ConfigError, match="limit must not be negative, got -5"):  # 0 % "on -5 images" before
        evaluate(Lookup(ranked_table(RANKS)), id_split(), device="cpu", limit=-5)


def test_fewer_than_five_classes() -> None:
    split = id_split(6, num_classes=3)
    table = torch.tensor([[0.0, 0.0, 1.0]]).repeat(6, 1)  # always class 2
    acc = evaluate(Lookup(table), split, device="cpu")
    assert acc.top1 == pytest.approx(100 / 3) and acc.top5 == 100.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_logits(bad: float) -> None:
    table = ranked_table(RANKS)
    table[13, 4] = bad
    with pytest.raises(NumericalError, match="NaN or inf logits on split 'search'") as e:
        evaluate(Lookup(table), id_split(), batch_size=4, device="cpu")
    assert isinstance(e.value, SearcherError)


def test_outputs_that_do_not_fit_the_split() -> None:
    with pytest.raises(ConfigError, match="has 5 outputs but split 'search' has 10 classes"):
        evaluate(Lookup(torch.zeros(N, 5)), id_split(), device="cpu")
    with pytest.raises(ConfigError, match="returned shape"):
        evaluate(Lookup(torch.zeros(N, 2, C)), id_split(), device="cpu")
    with pytest.raises(ConfigError, match="at least 1"):
        evaluate(Lookup(torch.zeros(N, C)), id_split(), batch_size=0, device="cpu")


def test_a_real_vit_on_a_small_split() -> None:
    from timm.models import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(img_size=8, patch_size=4, in_chans=1, embed_dim=16, depth=1, num_heads=2,
                            num_classes=C)
    split = Split("test", torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8), torch.arange(12) % C,
                  (0.5,), (0.5,), [str(i) for i in range(C)])
    acc = evaluate(vit, split, batch_size=5)
    assert acc.n == 12 and 0 <= acc.top1 <= acc.top5 <= 100


def test_default_device_leaves_threads_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert default_device() == torch.device("cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_accuracy_of_nothing() -> None:
    assert Accuracy().top1 == 0.0 and Accuracy(total=3).done is False
