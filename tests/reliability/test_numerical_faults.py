"""Numerical faults: a candidate whose forward pass gives NaN or inf logits, or runs out of memory (CUDA or CPU),
becomes a FAILED trial with the reason recorded (user attribute ``fail_reason``, and ``trials.csv``); the study
goes on and still finishes the requested number of trials.

The faults are injected into the trial's evaluation (the model the objective evaluates is wrapped so that its
forward pass misbehaves), so detection runs through the real code: the NaN/inf check on the logits, and the
exceptions the optimisation loop catches.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
from torch import nn

import searcher.study
from searcher.export import export_run
from searcher.study import StudySpec, optimize

FAULTS = {
    1: ("nan", "NumericalError"),
    3: ("inf", "NumericalError"),
    4: ("cuda-oom", "OutOfMemoryError"),
    6: ("cpu-oom", "RuntimeError"),
    7: ("memory", "MemoryError"),
}


class Faulty(nn.Module):
    """``model`` whose forward pass gives NaN logits, +inf logits, or runs out of memory."""

    def __init__(self, model: nn.Module, kind: str) -> None:
        super().__init__()
        self.model, self.kind = model, kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if self.kind == "nan":
            return logits * torch.nan
        if self.kind == "inf":
            return logits.index_fill(1, torch.tensor([3]), float("inf"))
        if self.kind == "cuda-oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 15.78 GiB total)")
        if self.kind == "cpu-oom":
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: not enough memory: "
                               "you tried to allocate 21474836480 bytes.")
        raise MemoryError()


def test_faulty_candidates_fail_with_a_reason_and_the_study_goes_on(
    tiny: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluations = itertools.count()
    injected: dict[int, str] = {}  # trial number -> fault
    real = searcher.study.evaluate_chunks

    def faulty_chunks(model, split, *args, **kwargs):
        i = next(evaluations)
        if i in FAULTS:
            model = Faulty(model, FAULTS[i][0])
        return real(model, split, *args, **kwargs)

    monkeypatch.setattr(searcher.study, "evaluate_chunks", faulty_chunks)
    trials = 6
    spec = StudySpec.from_yaml(tiny.write_spec(tmp_path / "tiny.yaml", trials=trials, early_stop=False))
    out = tmp_path / "run"
    result = optimize(spec, out, progress=False)

    study = result.study
    all_trials = study.get_trials(deepcopy=False)
    evaluated = [t for t in all_trials if "eval_s" in t.user_attrs or t.state == optuna.trial.TrialState.FAIL]
    # the i-th evaluation is the i-th trial that reached the evaluation (over-budget ones never do)
    order = sorted(evaluated, key=lambda t: t.datetime_start)
    for i, (kind, error) in FAULTS.items():
        t = order[i]
        injected[t.number] = kind
        assert t.state == optuna.trial.TrialState.FAIL, (kind, t.state)
        reason = t.user_attrs.get("fail_reason", "")
        assert reason.startswith(error), (kind, reason)
        assert "candidate" in t.user_attrs and "gflops" in t.user_attrs  # what failed stays known
    failed = {t.number for t in all_trials if t.state == optuna.trial.TrialState.FAIL}
    assert failed == set(injected)
    finished = [t for t in all_trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert sum("duplicate_of" not in t.user_attrs for t in finished) == trials  # the study went on
    assert result.stats["failed"] == len(FAULTS)
    assert all(row["trial"] not in failed for row in result.pareto)
    # trials.csv says which trials failed and why
    export_run(study, out)
    with open(out / "trials.csv") as f:
        rows = {int(r["trial"]): r for r in csv.DictReader(f)}
    for n in failed:
        assert rows[n]["state"] == "FAIL" and rows[n]["fail_reason"], rows[n]
    assert all(not rows[t.number]["fail_reason"] for t in finished)
