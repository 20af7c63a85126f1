"""The bookkeeping behind bench/search.py's figures (README's search tables): which trial is the pick, which
baseline it is compared with, and the hypervolume of the first n candidates, on a hand-made study."""

from __future__ import annotations

import datetime
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
from optuna.trial import TrialState

_spec = importlib.util.spec_from_file_location("bench_search", Path(__file__).parents[1] / "bench" / "search.py")
assert _spec is not None and _spec.loader is not None
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)

# (state, gflops, search top-1, test top-1, extra user attrs); trial numbers follow the list, baselines first as
# `optimize` enqueues them. Budget 0.4 GFLOPs of an unreduced 1.0.
TRIALS = [
    (TrialState.COMPLETE, 0.39, 80.0, 78.5, {"baseline": "pitome constant r", "candidate": {
        "reducer": "pitome", "schedule": {"layers": [{"op": "pitome", "r": 14}] * 2}}}),
    (TrialState.COMPLETE, 0.30, 75.0, 74.0, {"baseline": "topk constant r", "candidate": {
        "reducer": "topk", "schedule": {"layers": [{"op": "none"}, {"op": "topk-prune", "r": 20}]}}}),
    (TrialState.COMPLETE, 0.35, 81.0, 80.0, {}),
    (TrialState.COMPLETE, 0.38, 82.0, 79.0, {}),  # the best search top-1 under the budget: the pick
    (TrialState.PRUNED, 0.38, 95.0, 0.0, {"duplicate_of": 3}),  # a repeat: not a candidate
    (TrialState.PRUNED, 0.20, 60.0, 0.0, {"top1_partial": 60.0}),  # stopped early: not on the front
    (TrialState.COMPLETE, 0.45, 90.0, 0.0, {"feasible": False}),  # over the budget
    (TrialState.COMPLETE, 0.33, 78.0, 81.0, {}),  # the 7th candidate: after the repeat
]


def _result(trials=TRIALS, trial_s: float = 1.0) -> SimpleNamespace:
    """A study of ``trials``, run one after another, ``trial_s`` seconds each."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    test = {}
    t0 = datetime.datetime(2026, 12, 7)
    for number, (state, gflops, top1, test_top1, extra) in enumerate(trials):
        attrs = {"feasible": True, "gflops": gflops, "top1": top1, "tokens": [50, 40],
                 "candidate": {"reducer": "tome"}, **extra}
        values = [top1, gflops] if state == TrialState.COMPLETE else None
        trial = optuna.trial.create_trial(state=state, values=values, user_attrs=attrs)
        trial.datetime_start, trial.datetime_complete = (t0 + datetime.timedelta(seconds=trial_s * i)
                                                         for i in (number, number + 1))
        study.add_trial(trial)
        test[number] = {"top1": test_top1}
    return SimpleNamespace(study=study, budget=0.4, full_gflops=1.0, test=lambda t: test[t.number], interrupted=False)


def test_the_pick_is_the_best_searched_candidate_under_the_budget():
    best = B.best_searched(_result())
    assert (best["trial"], best["search_top1"], best["test_top1"]) == (3, 82.0, 79.0)


def test_the_margin_is_against_the_best_baseline_at_the_same_or_lower_flops():
    m = B.margin(_result())
    assert m["baseline"] == "top-k r=20"  # PiToMe (39 %) costs more than the pick (38 %)
    assert m["margin"] == pytest.approx(79.0 - 74.0)
    assert m["margin_any"] == pytest.approx(79.0 - 78.5)  # against every baseline under the budget


def test_a_pick_cheaper_than_every_baseline_is_compared_with_all_of_them():
    cheap = [t for t in TRIALS if t[1] != 0.38] + [(TrialState.COMPLETE, 0.25, 83.0, 77.0, {})]
    m = B.margin(_result(cheap))
    assert (m["share"], m["baseline"]) == (0.25, "PiToMe r=14")
    assert m["margin"] == pytest.approx(m["margin_any"]) == pytest.approx(77.0 - 78.5)


def test_hypervolume_counts_the_first_n_candidates_and_the_chosen_reference():
    res = _result()
    # (0.30, 75) to 0.35, (0.35, 81) to 0.38, (0.38, 82) to the budget; chance level 10 %
    # the repeat does not count: the first 6 candidates are trials 0-3, 5 and 6
    assert B.hv(res, 6) == pytest.approx(0.05 * 65 + 0.03 * 71 + 0.02 * 72)
    assert B.hv(res, 7) == pytest.approx(0.03 * 65 + 0.02 * 68 + 0.03 * 71 + 0.02 * 72)  # trial 7's (0.33, 78)
    assert B.hv(res, 3) == pytest.approx(0.05 * 65 + 0.05 * 71)  # (0.39, 80) is dominated by (0.35, 81)
    assert B.hv(res, 60, "baseline") == pytest.approx(0.03 * 1 + 0.02 * 2)  # above the best baseline's 80 %
    assert B.cheapest_searched(res, 7) == pytest.approx(0.33)
    assert B.cheapest_searched(res, 6) == pytest.approx(0.35)


def test_the_scale_part_saves_its_figures(tmp_path, monkeypatch, capsys):
    """``--parts scale`` printed its table but wrote ``{}`` to results.json (until 2026-12-07). The rate is of the
    trials' span: the loop's wall time of several workers includes spawning them and loading the model in each,
    which one worker does before its loop (until 2026-12-07 the rates were of the loop's wall time)."""
    def fake_optimize(spec, out, progress):
        trials = TRIALS if spec.workers > 1 or torch.get_num_threads() == 1 else [*TRIALS, (TrialState.FAIL, 0.3, 0,
                                                                                             0, {})]
        res = _result(trials, trial_s=1.0 / spec.workers)
        res.stats = {"wall_s": 8.0 / spec.workers + 5.0 * (spec.workers > 1), "images_evaluated": 100, "repeats": 0,
                     "failed": sum(t[0] == TrialState.FAIL for t in trials)}
        return res

    monkeypatch.setattr(B, "optimize", fake_optimize)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    B.main(["--parts", "scale", "--models", "fashion-vit", "--budgets", "40", "--scale-trials", "2",
            "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved) == 3 and all(k.startswith("scale|fashion-vit|40|s0|") for k in saved)  # 1 x 1, 2 x n, 1 x all
    one, two, every = (saved[f"scale|fashion-vit|40|s0|{c}"] for c in ("1x1", "2x1", "1x2"))
    assert two["trials"] == 7 and two["span_s"] == pytest.approx(4.0)  # not the repeat; 8 trials of 0.5 s
    assert two["speedup"] == pytest.approx(2.0) and two["startup_s"] == pytest.approx(5.0)
    assert one["intact"] and two["intact"] and not every["intact"]  # a failed trial is lost
    assert "2 worker(s)" in capsys.readouterr().out


def test_a_correlation_of_too_few_candidates_is_a_dash():
    assert B._num(float("nan")) == "-" and B._num(0.375) == "0.38"


def test_a_study_begun_by_other_code_is_named(tmp_path, monkeypatch, capsys):
    """A finished study is only re-read: its recipes and trials stay those of the code that began it (a recipe
    changed on 2026-12-07), so the bench says so when the code has changed since."""
    def fake_optimize(spec, out, progress):
        out.mkdir(parents=True, exist_ok=True)
        res = _result()
        res.stats = {"repeats": 0}
        return res

    monkeypatch.setattr(B, "optimize", fake_optimize)
    for code, warned in (("abc123", False), ("abc123", False), ("def456+changes", True)):
        monkeypatch.setattr(B, "code_version", lambda code=code: code)
        args = SimpleNamespace(results={}, trials=8, out=tmp_path)
        B.run(args, "fashion-vit", 40, 0)
        out = capsys.readouterr().out
        assert ("was begun at abc123, not def456+changes" in out) is warned, out
    assert (tmp_path / "fashion-vit-40-tpe-s0" / "bench-code.txt").read_text() == "abc123"
    (tmp_path / "fashion-vit-50-tpe-s0").mkdir()  # a study begun before the stamps
    B.run(SimpleNamespace(results={}, trials=8, out=tmp_path), "fashion-vit", 50, 0)
    assert "was begun at code before bench stamps, not def456+changes" in capsys.readouterr().out
