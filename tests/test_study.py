"""``searcher optimize`` end to end on a tiny timm ViT and a synthetic Fashion-MNIST: constraints, baselines,
resume, export, and the errors a user can cause."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import torch
import yaml
from timm.models.vision_transformer import VisionTransformer

from searcher.cli import main
from searcher.errors import ConfigError, SearcherError, StorageError
from searcher.evaluate import evaluate_chunks
from searcher.export import export_run
from searcher.patch import is_patched, token_state
from searcher.report import report_data
from searcher.schedule import Schedule
from searcher.space import Candidate
from searcher.study import (
    DRAWS_PER_TRIAL,
    FINISHED,
    StudySpec,
    is_evaluated,
    is_over_budget,
    is_repeat,
    load_study,
    open_storage,
    optimize,
    pareto_trials,
)

TINY = dict(img_size=32, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=4, num_heads=2)


@pytest.fixture
def tiny_spec(tmp_path: Path, make_fashion) -> StudySpec:
    data_dir = make_fashion(n_train=4000, n_test=300)
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pth"
    torch.save(VisionTransformer(**TINY).state_dict(), ckpt)
    return StudySpec.from_dict(
        {
            "name": "tiny",
            "model": "vit_tiny_patch16_224",
            "model_kwargs": TINY,
            "checkpoint": str(ckpt),
            "data": {"kind": "fashion-mnist", "dir": str(data_dir)},
            "space": {"reducers": ["tome", "rapid"], "schedule": {"r": {"low": 0, "high": 32}}},
            "budget": "60%",
            "trials": 8,
            "search_images": 400,
            "batch_size": 250,
            "chunk": 250,
            "throughput_batch": 16,
            "throughput_repeats": 2,
            "seed": 0,
        }
    )


def test_optimize_runs_resumes_and_exports(
    tiny_spec: StudySpec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    optuna.logging.enable_propagation()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)  # the CLI, in an earlier test, may have quietened it
    try:
        with caplog.at_level(logging.INFO):
            res = optimize(tiny_spec, out, progress=False)
    finally:
        optuna.logging.disable_propagation()
        optuna.logging.set_verbosity(verbosity)
    assert "draws" not in caplog.text  # every candidate asked for was found
    # Optuna says once that the study is new, not then that it uses an existing one
    assert "A new study created" in caplog.text and "Using an existing study" not in caplog.text
    study = res.study
    finished = [t for t in study.trials if t.state in FINISHED]
    evaluated = [t for t in finished if "duplicate_of" not in t.user_attrs]
    assert len(evaluated) == 8 and len(finished) == 8 + res.stats["repeats"]  # repeated draws do not count
    # baselines were enqueued first: the constant-r recipe of each searched reducer at the budget
    baselines = [t for t in study.trials if t.user_attrs.get("baseline")]
    assert {t.params["reducer"] for t in baselines} == {"tome", "rapid"}
    assert all(t.user_attrs["gflops"] <= res.budget * (1 + 1e-9) for t in baselines)
    # every feasible trial is under the budget, and carries its candidate and FLOPs
    for t in study.trials:
        if t.user_attrs.get("feasible"):
            assert t.user_attrs["gflops"] <= res.budget * (1 + 1e-9)
            assert t.constraints["gflops"] <= 0
            assert "candidate" in t.user_attrs
    # the Pareto set was re-evaluated on the test split
    assert res.pareto and all(row["test_top1"] is not None for row in res.pareto)
    assert {row["trial"] for row in res.pareto} == {t.number for t in pareto_trials(study)}
    # throughput decides nothing here, so no trial times its candidate: the Pareto set is timed after the search
    assert not any("throughput" in t.user_attrs for t in study.trials)
    for row in res.pareto:
        assert row["img_s"] > 0 and study.user_attrs[f"throughput:{row['trial']}"]["img_s"] == row["img_s"]
    # the default SQLite storage logs ahead (a commit appends to study.db-wal): every trial writes ~20 times
    with contextlib.closing(sqlite3.connect(out / "study.db")) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    # resume: asking for more trials continues the same study in the same storage
    more = optimize(tiny_spec.override(trials=11), out, progress=False)
    finished2 = [t for t in more.study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    assert sum("duplicate_of" not in t.user_attrs for t in finished2) == 11
    assert {t.number for t in finished} <= {t.number for t in finished2}

    files = export_run(more.study, out)
    configs = sorted((out / "configs").glob("*.json"))
    assert configs and all(p in files for p in configs)
    cfg = json.loads(configs[0].read_text())
    assert cfg["version"] == 1 and cfg["model"]["name"] == "vit_tiny_patch16_224"
    assert cfg["provenance"]["study"] == "tiny" and "gflops" in cfg["metrics"]
    assert (out / "trials.csv").read_text().count("\n") == len(more.study.trials) + 1
    assert load_study(None, f"sqlite:///{out / 'study.db'}").study_name == "tiny"


def test_an_unreachable_throughput_floor_times_every_evaluated_candidate(
    tiny_spec: StudySpec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No candidate meets the floor, so the front stays empty and every evaluated candidate could join it; the
    run says how fast the fastest ran (it ended with '(no feasible trial)' alone until 2026-12-07)."""
    with caplog.at_level(logging.WARNING, logger="searcher"):
        res = optimize(tiny_spec.override(trials=3, min_throughput="1e12img/s"), tmp_path / "run", progress=False)
    assert re.search(r"no candidate reached the throughput floor of 1e\+12 img/s \(the fastest timed: [\d.e+]+ "
                     r"img/s\); lower --min-throughput", caplog.text), caplog.text
    evaluated = [t for t in res.study.trials if t.state == optuna.trial.TrialState.COMPLETE and "top1" in t.user_attrs]
    assert len(evaluated) >= 2  # the baselines at least: they are never stopped early
    for t in evaluated:
        assert t.user_attrs["throughput"]["img_s"] > 0
        assert t.constraints["throughput"] > 0 and t.user_attrs["feasible"] is False  # under the floor
        assert t.user_attrs["infeasible"].startswith("below the throughput floor")
    assert res.pareto == []
    # the summary's share counts the floor too (it said 100 % feasible until 2026-12-07)
    judged = res.stats["trials"] - res.stats["untimed"]  # not the stopped early: never timed, either side of it
    assert res.stats["feasible_share"] == sum(map(is_repeat, res.study.trials)) / judged < 1


def test_a_throughput_floor_times_only_candidates_that_could_be_pareto_optimal(tiny_spec: StudySpec,
                                                                              tmp_path: Path) -> None:
    """A candidate that an earlier feasible trial dominates (no more FLOPs, higher top-1) is not timed; every
    other evaluated candidate, and every baseline, is, and the Pareto set needs no timing afterwards."""
    spec = tiny_spec.override(trials=12, min_throughput="1img/s")
    res = optimize(replace(spec, early_stop=False), tmp_path / "run", progress=False)
    done = [t for t in res.study.trials if t.state == optuna.trial.TrialState.COMPLETE and "top1" in t.user_attrs]

    def dominated(t: optuna.trial.FrozenTrial) -> bool:
        return any(o.number < t.number and o.user_attrs.get("feasible") and o.user_attrs["gflops"] <= t.user_attrs[
            "gflops"] and o.user_attrs["top1"] > t.user_attrs["top1"] for o in done)

    skipped = [t for t in done if "not_timed" in t.user_attrs]
    assert skipped, "no candidate was dominated: the test does not exercise the rule"
    for t in done:
        if t in skipped:
            assert dominated(t) and "baseline" not in t.user_attrs
            assert "throughput" not in t.user_attrs and "throughput" not in t.constraints
        else:
            assert not dominated(t) or "baseline" in t.user_attrs
            assert t.user_attrs["throughput"]["img_s"] > 1 and t.constraints["throughput"] < 0
    assert res.pareto and not any(k.startswith("throughput:") for k in res.study.user_attrs)
    assert {row["trial"] for row in res.pareto}.isdisjoint(t.number for t in skipped)
    export_run(res.study, tmp_path / "run")
    frame = pd.read_csv(tmp_path / "run" / "trials.csv").set_index("trial")
    assert frame.loc[[t.number for t in skipped], "not_timed"].str.startswith("dominated by the front").all()
    # and the summary's share is of the trials with a verdict (the untimed counted as feasible until 2026-12-08)
    assert res.stats["untimed"] == len(skipped) and frame.loc[[t.number for t in skipped], "feasible"].isna().all()


def test_with_throughput_as_an_objective_a_faster_config_joins_the_front() -> None:
    """Two objectives: the front is in (top1, GFLOPs); with throughput a third, a less accurate config at the same
    FLOPs that runs faster is Pareto-optimal too (the front printed and exported ignored img/s until 2026-12-07)."""
    study = optuna.create_study(directions=["maximize", "minimize", "maximize"])
    study.set_metric_names(["top1", "gflops", "throughput"])
    for top1, gflops, img_s in [(80.0, 0.04, 100.0), (78.0, 0.04, 150.0), (77.0, 0.05, 120.0), (70.0, 0.02, 90.0)]:
        study.add_trial(optuna.trial.create_trial(
            values=[top1, gflops, img_s],
            user_attrs={"top1": top1, "gflops": gflops, "feasible": True, "throughput": {"img_s": img_s},
                        "candidate": {"top1": top1, "img_s": img_s}}))
    three = [t.user_attrs["top1"] for t in pareto_trials(study)]
    assert sorted(three) == [70.0, 78.0, 80.0]  # 77 % is slower, costlier and less accurate than 78 %
    assert sorted(t.user_attrs["top1"] for t in pareto_trials(study, speed=False)) == [70.0, 80.0]


@pytest.mark.parametrize("rival_img_s, stops", [(1e9, True), (1e-3, False)])
def test_throughput_as_an_objective_stops_a_trial_only_against_faster_points(
    tiny_spec: StudySpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rival_img_s: float, stops: bool
) -> None:
    """A perfect rival at no cost finishes while the trial evaluates: with throughput an objective it dominates the
    trial only if it is also faster, so the trial (timed before its evaluation) stops against a fast rival and runs
    in full, and joins the front, beside a slow one."""
    url = f"journal:{tmp_path / 'study.journal'}"  # a shared storage: the front is read again before each chunk
    spec = StudySpec.from_dict({**tiny_spec.to_dict(), "trials": 1, "storage": url, "baselines": False,
                                "objectives": ["top1", "gflops", "throughput"]})
    unreduced = Candidate("tome", Schedule.none(TINY["depth"]), None).to_dict()

    def chunks_with_a_rival(model, *args, **kwargs):
        evaluated.append(is_patched(model) and token_state(model).schedule)  # the candidate's model is evaluated
        for i, acc in enumerate(evaluate_chunks(model, *args, **kwargs)):
            if i == 0:
                rival = optuna.load_study(study_name=spec.name, storage=open_storage(url))
                attrs = {"top1": 100.0, "gflops": 0.0, "feasible": True, "candidate": unreduced,
                         "throughput": {"img_s": rival_img_s}}
                rival.add_trial(optuna.trial.create_trial(values=[100.0, 0.0, rival_img_s], user_attrs=attrs))
            yield acc

    evaluated: list[Any] = []
    monkeypatch.setattr("searcher.study.evaluate_chunks", chunks_with_a_rival)
    res = optimize(spec, tmp_path / "run", progress=False)
    ran = res.study.trials[0]  # the rival is trial 1
    assert ran.user_attrs["throughput"]["img_s"] > 0  # timed whether it stops or not
    # timing builds a copy and unpatched the shared model before it was evaluated (caught on 2026-12-07)
    assert evaluated[0] and evaluated[0].to_dict() == ran.user_attrs["candidate"]["schedule"]
    assert not evaluated[0].is_identity
    if stops:
        assert ran.state == optuna.trial.TrialState.PRUNED and ran.user_attrs["images_evaluated"] == 250
        assert [row["trial"] for row in res.pareto] == [1]
    else:
        assert ran.state == optuna.trial.TrialState.COMPLETE and ran.values[2] == ran.user_attrs["throughput"]["img_s"]
        assert {row["trial"] for row in res.pareto} == {0, 1}  # the rival is better in top-1 and FLOPs, not speed
    assert not any(k.startswith("throughput:") for k in res.study.user_attrs)  # nothing left to time at the end
    data = report_data(res.study)
    assert data.front == [row["trial"] for row in res.pareto]
    assert any(note.startswith("throughput is an objective") for note in data.notes)


def test_fewer_trials_than_published_recipes_still_run_every_recipe(
    tiny_spec: StudySpec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``--trials 1`` with two searched reducers: both constant-r recipes run (the search is compared with each),
    with a warning; until 2026-12-07 the second stayed WAITING and the study ended."""
    with caplog.at_level(logging.WARNING, logger="searcher.study"):
        res = optimize(tiny_spec.override(trials=1), tmp_path / "run", progress=False)
    assert "1 trials leave 2 published recipe(s) unrun, and a study runs them all; running 2" in caplog.text
    recipes = [t for t in res.study.trials if t.user_attrs.get("baseline")]
    assert len(recipes) == 2 and all(t.state in FINISHED for t in recipes)
    assert not [t for t in res.study.trials if t.state == optuna.trial.TrialState.WAITING]


def test_budget_below_the_cheapest_candidate_is_a_clear_error(tiny_spec: StudySpec, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"below the cheapest candidate .*every block at r=32\); raise the budget "
                       "or widen schedule.r"):
        optimize(tiny_spec.override(budget="1%"), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match=r"reducers lists 'none' .* no architecture section .*; list reducers"):
        optimize(replace(tiny_spec, space={"reducers": ["none"]}, budget="90%"), tmp_path / "run", progress=False)
    # above the unreduced model, as a share above 100 % is: until 2026-12-07 it ran, every recipe at r = 0
    with pytest.raises(ConfigError, match=r"budget 3.3GFLOPs \(3.3 GFLOPs\) is above the unreduced model's"):
        optimize(tiny_spec.override(budget="3.3GFLOPs"), tmp_path / "run", progress=False)
    # all of it (until 2026-12-07: every recipe at r = 0, five copies of the unreduced model on the front)
    with pytest.raises(ConfigError, match=r"budget '100%' must be a share in \(0%, 100%\)"):
        optimize(tiny_spec.override(budget="100%"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_start_that_failed_before_any_trial_does_not_bind_the_study(tiny_spec: StudySpec, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A study whose first run stopped after recording its settings but before queuing a trial (a space the model
    refused as its baselines were built) resumes under corrected settings: it was refused as "run with another
    search space" until 2026-12-07, though no trial had run."""
    from searcher import study as study_module

    def refuse(study: optuna.Study, ctx: Any) -> None:
        raise ConfigError("this space does not fit the model")

    monkeypatch.setattr(study_module, "_enqueue_baselines", refuse)
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="does not fit"):
        optimize(tiny_spec, out, progress=False)
    monkeypatch.undo()
    fixed = replace(tiny_spec, space={"reducers": ["tome"], "schedule": {"r": {"low": 0, "high": 32}}}, trials=1)
    res = optimize(fixed, out, progress=False)
    assert res.study.user_attrs["space"]["reducers"] == ["tome"]
    with pytest.raises(ConfigError, match="was run with another search space"):  # once a trial ran, it binds
        optimize(tiny_spec, out, progress=False)


def test_a_key_given_twice_in_a_spec_is_an_error(tmp_path: Path) -> None:
    """PyYAML keeps the last of two equal keys: a spec naming two studies ran the second, silently. Merge keys
    (``<<: *anchor``) may still be overridden, and a list as a key is one clear error."""
    (tmp_path / "s.yaml").write_text("name: fashion-vit\nmodel: fashion-vit\nname: other\n")
    with pytest.raises(ConfigError, match="line 3, column 1: key 'name' appears twice"):
        StudySpec.from_yaml(tmp_path / "s.yaml")
    (tmp_path / "merge.yaml").write_text("name: merged\nmodel: fashion-vit\nbase: &b {batch_size: 64, chunk: 500}\n"
                                         "sizes: {<<: *b, chunk: 250}\n")
    from searcher.space import load_yaml

    assert load_yaml(tmp_path / "merge.yaml", "study spec")["sizes"] == {"batch_size": 64, "chunk": 250}
    (tmp_path / "list-key.yaml").write_text("? [1, 2]\n: 3\n")
    with pytest.raises(ConfigError, match="a key must be a plain value"):
        StudySpec.from_yaml(tmp_path / "list-key.yaml")
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match=r"must be a mapping of options \(model:, space:, budget:, …\), got an empty"):
        StudySpec.from_yaml(tmp_path / "empty.yaml")


def test_second_optimize_on_a_busy_sqlite_study_is_refused(tiny_spec: StudySpec, tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".optimize.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(StorageError, match="already being optimised"):
            optimize(tiny_spec, out, progress=False)


def test_a_timing_batch_out_of_memory_fails_its_trial_alone(tiny_spec: StudySpec, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a throughput floor each trial times its candidate: running out of memory there fails that trial and
    the search goes on (the one-line error a final timing gives must stay a RuntimeError for Optuna's catch)."""
    from searcher import study as study_module

    calls, real = [], study_module.measure

    def short_of_memory(model, batch_size, *args, **kwargs):
        calls.append(batch_size)
        return real(model, 10**12 if len(calls) == 2 else batch_size, *args, **kwargs)

    monkeypatch.setattr(study_module, "measure", short_of_memory)
    res = optimize(replace(tiny_spec, min_throughput="1img/s", trials=4, early_stop=False), tmp_path / "run",
                   progress=False)
    failed = [t for t in res.study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["fail_reason"].startswith(
        "BatchTooLarge: a batch of 1000000000000 images does not fit in the memory")
    assert res.stats["failed"] == 1 and len(calls) > 4


def test_a_file_that_is_no_journal_is_refused_untouched(tmp_path: Path) -> None:
    """``--storage journal:notes.txt`` cut the user's one-line file as a journal record cut short and ran a study in
    it (or appended to it, then a JSONDecodeError traceback), until 2026-12-07."""
    from searcher.study import open_storage

    for text in (b"my notes: budget 45% looked best", b"hi\n", b"a,b\n1,2\n"):
        notes = tmp_path / "notes.txt"
        notes.write_bytes(text)
        with pytest.raises(StorageError, match="notes.txt is not an Optuna journal"):
            open_storage(f"journal:{notes}")
        assert notes.read_bytes() == text
    for i, text in enumerate((b'{"op_code":0,"worker_id":"ab', b'{"op_', b"\0\0\0\0")):  # the first record cut short
        cut = tmp_path / f"cut{i}.journal"  # by a kill or a full disk, zeros after a power cut: an empty journal
        cut.write_bytes(text)
        assert optuna.get_all_study_summaries(open_storage(f"journal:{cut}")) == []
    open_storage(f"journal:{tmp_path / 'new.journal'}")


def test_a_study_elsewhere_is_not_held_up_by_an_unreadable_file_in_its_run_directory(tiny_spec: StudySpec,
                                                                                    tmp_path: Path) -> None:
    """With --storage elsewhere, the run directory's own study.db is only looked into for another study's name: one
    that cannot be opened does not stop the run (a review found its error blamed a URL the user never gave)."""
    from searcher.study import _check_run_dir_study

    out = tmp_path / "run"
    out.mkdir()
    (out / "study.db").write_bytes(b"this is not an SQLite database" * 100)
    elsewhere = f"journal:{tmp_path / 'elsewhere.journal'}"
    _check_run_dir_study(replace(tiny_spec, storage=elsewhere), elsewhere, out)
    with pytest.raises(StorageError, match="cannot open storage"):  # the study's own storage: its error stands
        _check_run_dir_study(tiny_spec, f"sqlite:///{out / 'study.db'}", out)


def test_a_read_only_study_file_is_refused_in_one_line(tiny_spec: StudySpec, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only study.db (or its -shm) failed at the first write with Optuna's "invalid data in the commit"
    traceback, until 2026-12-07; now before the model loads (root ignores file modes: the test stands in for
    os.access)."""
    from searcher import study as study_module

    out = tmp_path / "run"
    out.mkdir()
    optuna.create_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    (out / "study.db-shm").write_bytes(b"")
    monkeypatch.setattr(study_module, "_context", lambda spec: pytest.fail("loaded the model"))
    for name in ("study.db", "study.db-shm"):
        monkeypatch.setattr(study_module.os, "access", lambda path, mode, name=name: not str(path).endswith(name))
        with pytest.raises(StorageError, match=f"^cannot write .*{name}: the file is read-only; make it writable"):
            optimize(tiny_spec, out, progress=False)
    study_module.open_storage(f"sqlite:///{out / 'study.db'}")  # export, report and the dashboard only read


@pytest.mark.parametrize(
    "change, words",
    [
        ({"trials": 0}, "trials must be at least 1"),
        ({"budget": "150%"}, "(0%, 100%)"),
        ({"objectives": ["gflops"]}, "include 'top1'"),
        ({"sampler": "magic"}, "unknown sampler"),
        ({"bogus": 1}, "unknown key"),
        ({"min_throughput": "fast"}, "img/s"),
        ({"seed": -1}, "seed must be in 0 to 2**32 - 1"),  # NumPy's ValueError, with a traceback, until 2026-12-07
        ({"seed": 2**32}, "seed must be in 0 to 2**32 - 1"),
        ({"timeout": 0}, "timeout must be a positive"),  # ran nothing, then "no completed trial"
        ({"search_images": 0}, "search_images must be at least 1"),
        ({"test_images": -5}, "test_images must be at least 1"),
        ({"throughput_batch": 0}, "throughput_batch must be at least 1"),  # unchecked until 2026-12-07
        ({"throughput_repeats": "5"}, "'throughput_repeats' must be an integer"),
        ({"chunk": 0}, "chunk must be at least 1"),
        # accepted until 2026-12-07: an empty checkpoint or storage was ignored, an empty space said " is a
        # directory", a bare number was taken as img/s (the CLI refuses it), a blank name made a run folder "  "
        ({"checkpoint": ""}, "'checkpoint' is empty"),
        ({"storage": " "}, "'storage' is empty"),
        ({"space": ""}, "'space' is empty"),
        ({"min_throughput": 1500}, "min_throughput 1500 needs its unit: write '1500img/s'"),
        ({"name": "  "}, "must be a plain name"),
        ({"trails": 3, 1: 2}, "unknown key(s) [1, 'trails']"),  # a TypeError from sorting them until 2026-12-07
        # an inline space was checked only when the run loaded it, so its errors did not say where (2026-12-08)
        ({"space": {"reducers": ["tome", "bogus"]}}, "space: reducers has an unknown choice 'bogus'"),
    ],
)
def test_bad_specs_name_the_problem(tiny_spec: StudySpec, change: dict, words: str) -> None:
    d = {**tiny_spec.to_dict(), **change}
    with pytest.raises(ConfigError) as e:
        StudySpec.from_dict(d)
    assert words in str(e.value)



def test_optimize_json_rows_name_their_config(tiny_spec: StudySpec, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``optimize --json``: one JSON document whose Pareto rows name their config file, as ``export --json``'s do
    (until 2026-12-08 only the order of ``files`` linked them), and say whether a Ctrl-C stopped the study."""
    import yaml

    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump({**tiny_spec.to_dict(), "trials": 3}))
    assert main(["optimize", "--study", str(spec), "--out", str(tmp_path / "o"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pareto"] and summary["interrupted"] is False
    for row in summary["pareto"]:
        config = json.loads((tmp_path / "o" / row["config"]).read_text())
        assert config["metrics"]["gflops"] == row["gflops"] and config["provenance"]["trial"] == row["trial"]


@pytest.mark.parametrize("press_in, rc", [(1, 130), (3, 0)])
def test_one_ctrl_c_exports_and_exits_130_unless_the_study_was_done(
    tiny_spec: StudySpec, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    press_in: int, rc: int,
) -> None:
    """A Ctrl-C in the first of 3 trials: that trial finishes, the study is tested and exported, and the exit code
    is 130 with "interrupted": true (it was 0, until 2026-12-08: a script could not tell). In the last trial the
    study is complete: exit 0."""
    import os
    import signal

    import yaml

    import searcher.study as study_module

    chunks, calls = study_module.evaluate_chunks, [0]

    def pressed(*args, **kwargs):
        calls[0] += 1
        if calls[0] == press_in:
            os.kill(os.getpid(), signal.SIGINT)
        yield from chunks(*args, **kwargs)

    monkeypatch.setattr(study_module, "evaluate_chunks", pressed)
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump({**tiny_spec.to_dict(), "trials": 3, "early_stop": False}))
    assert main(["optimize", "--study", str(spec), "--out", str(tmp_path / "o"), "--json"]) == rc
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["interrupted"] is (rc == 130) and summary["pareto"] and (tmp_path / "o" / "trials.csv").exists()
    assert summary["stats"]["trials"] == press_in
    assert ("interrupted: stopped after the current trial" in err) is (rc == 130)

def test_python_m_searcher_is_the_command() -> None:
    """``python -m searcher`` (no __main__ until 2026-12-07), with the command's exit codes."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "searcher", "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("searcher ")
    run = subprocess.run([sys.executable, "-m", "searcher", "frob"], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.startswith("error: argument COMMAND: invalid choice: 'frob'")


def test_a_late_ctrl_c_prints_no_traceback_from_the_exit_handlers() -> None:
    """A second Ctrl-C that arrives as the command ends (after its last line) raised KeyboardInterrupt in the
    interpreter's exit handlers (torch._dynamo's), a traceback after the output (a reliability test, 2026-12-07)."""
    import subprocess
    import sys

    late = ("import atexit, os, signal, sys; from searcher.cli import console; sys.argv = ['searcher', 'data', "
            "'--data-dir', '/nonexistent']; "
            "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGINT), [0 for _ in range(10**6)])); console()")
    run = subprocess.run([sys.executable, "-c", late], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.startswith("error: ") and "Traceback" not in run.stderr, run.stderr


def test_cli_reports_bad_input_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2  # no command: the help is a usage error, on stderr
    out, err = capsys.readouterr()
    assert not out and "usage: searcher" in err
    usage = ((["optimize", "--trials", "x"], "--trials", "optimize"), (["frob"], "frob", ""),
             (["export", "--nope"], "--nope", "export"), (["--nope", "export", "--out", "o"], "--nope", ""),
             (["optimize", "--study", "fashion-vit", "--out", ""], "--out is empty", "optimize"),
             (["onnx", "c.json", ""], "OUT is empty; give a file", "onnx"),
             # "expected one argument" alone until 2026-12-08: argparse reads -10% as an option
             (["optimize", "--budget", "-10%"], "read as an option: write --budget=VALUE", "optimize"))
    for argv, named, command in usage:
        with pytest.raises(SystemExit) as exit_:  # argparse's own usage errors: one line too, naming the --help
            main(argv)
        err = capsys.readouterr().err.splitlines()
        assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("error:") and named in err[0], err
        assert err[0].endswith(f"(see '{' '.join(['searcher', command]).strip()} --help')"), err
    spec = tmp_path / "s.yaml"
    spec.write_text("name: s\nmodel: fashion-vit\nspace: {}\nbudget: 3.3\n")
    assert main(["optimize", "--study", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "3.3" in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("sampler", ["nsga2", "random", "gp"])
def test_every_sampler_runs_a_study(
    tiny_spec: StudySpec, tmp_path: Path, sampler: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec = tiny_spec.override(sampler=sampler, trials=6)
    with caplog.at_level(logging.WARNING, logger="searcher.study"):
        res = optimize(spec, tmp_path / "run", progress=False)
    # nsga2 and gp read complete trials only: the user learns that early stopping starves them
    assert ("learns from complete trials only" in caplog.text) == (sampler != "random")
    kinds = {"nsga2": optuna.samplers.NSGAIISampler, "random": optuna.samplers.RandomSampler,
             "gp": optuna.samplers.GPSampler}
    assert isinstance(res.study.sampler, kinds[sampler])
    finished = [t for t in res.study.trials if t.state.is_finished()]
    assert len(finished) >= 6 and any(t.user_attrs.get("feasible") and not t.user_attrs.get("baseline")
                                      for t in finished)


@pytest.mark.parametrize("sampler", ["nsga2", "gp"])
def test_a_published_recipe_the_space_cannot_draw_does_not_empty_the_sampler_s_space(
    tiny_spec: StudySpec, tmp_path: Path, sampler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recipe outside the space (RAPID's τ = 0.7 under tau 0.8-0.9; DiffRate's schedule on DeiT-S) runs as a trial
    without parameters; NSGA-II and GP search the parameters every complete trial shares, so it left them none and
    every later draw was random (GP warned once per parameter and trial), until 2026-12-08."""
    import searcher.study as S

    # both recipes outside the space (τ, and ToMe's proportional attention): NSGA-II's generations index trials by
    # number, and a view without them failed every trial (IndexError) in a first version of the fix
    space = {**tiny_spec.to_dict()["space"], "rapid": {"tau": {"low": 0.8, "high": 0.9}}, "prop_attn": False}
    nsga = S._NSGAII
    monkeypatch.setattr(S, "_NSGAII", lambda seed, population_size: nsga(seed=seed, population_size=3))
    spec = StudySpec.from_dict({**tiny_spec.to_dict(), "space": space, "sampler": sampler, "trials": 12,
                                "early_stop": False})
    res = optimize(spec, tmp_path / "run", progress=False)
    fixed = [t for t in res.study.trials if "fixed_candidate" in t.user_attrs]
    assert len(fixed) == 2 and all(not t.params and t.state == optuna.trial.TrialState.COMPLETE for t in fixed)
    assert res.stats["failed"] == 0
    searched = res.study.sampler.infer_relative_search_space(res.study, res.study.trials[-1])
    assert {"reducer", "target", "w0"} <= set(searched), searched
    if sampler == "nsga2":  # later generations bred (generation 0 for ever with one fixed recipe before)
        assert max(t.system_attrs.get("NSGAIISampler:generation", 0) for t in res.study.trials) >= 1


def test_gp_without_scipy_is_a_clear_error(tiny_spec: StudySpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy", None)  # import scipy raises ImportError
    with pytest.raises(ConfigError, match=r"gp sampler needs scipy.*searcher\[gp\]"):
        tiny_spec.override(sampler="gp")


def test_draws_over_the_budget_do_not_count_toward_trials(
    tiny_spec: StudySpec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # per-block r drawn independently often misses a tight budget: such draws are recorded, unevaluated, and the
    # study goes on until it has evaluated the candidates asked for
    space = {"reducers": ["tome"], "schedule": {"parametrisation": "per-block", "r": {"low": 0, "high": 16}}}
    spec = StudySpec.from_dict({**tiny_spec.to_dict(), "space": space, "budget": "60%", "trials": 6})
    res = optimize(spec, tmp_path / "run", progress=False)
    finished = [t for t in res.study.trials if t.state in FINISHED]
    over = [t for t in finished if is_over_budget(t)]
    evaluated = [t for t in finished if is_evaluated(t)]
    assert over and res.stats["over_budget"] == len(over)
    assert len(evaluated) == 6 and all("images_evaluated" in t.user_attrs for t in evaluated)
    assert not any("images_evaluated" in t.user_attrs or t.user_attrs["feasible"] for t in over)
    assert all(t.user_attrs["gflops"] > res.budget for t in over)
    assert res.stats["feasible_share"] == pytest.approx(len(evaluated) / len(finished))

    # at a budget that only the heaviest draws meet, the study stops at its cap of draws, and says why and what to do
    spec = StudySpec.from_dict({**spec.to_dict(), "budget": "52%", "baselines": False, "trials": 4})
    with caplog.at_level(logging.WARNING, logger="searcher.study"):
        res = optimize(spec, tmp_path / "tight", progress=False)
    assert res.stats["trials"] == DRAWS_PER_TRIAL * 4 and res.stats["over_budget"] > DRAWS_PER_TRIAL * 4 - 4
    n = res.stats["over_budget"]
    assert f"with {12 - n} of the 4 candidates asked for evaluated: {n} draws were over the budget" in caplog.text
    assert "budget-aware parametrisation" in caplog.text


def test_a_candidate_drawn_twice_is_evaluated_once(
    tiny_spec: StudySpec, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # one reducer and r fixed at 1 in every block: every trial draws the baseline's candidate again
    space = {"reducers": ["tome"], "schedule": {"parametrisation": "per-block", "r": {"low": 1, "high": 1}}}
    spec = StudySpec.from_dict({**tiny_spec.to_dict(), "space": space, "budget": "99%", "trials": 5})
    with caplog.at_level(logging.WARNING, logger="searcher.study"):
        res = optimize(spec, tmp_path / "run", progress=False)
    # the user learns why the study has fewer candidates than asked for, and what to do
    assert "after 15 draws (3 per trial asked for), with 1 of the 5 candidates asked for evaluated" in caplog.text
    assert "widen the space's ranges" in caplog.text
    trials = [t for t in res.study.trials if t.state in FINISHED]
    twins = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert len(twins) == len(trials) - 1
    # repeats do not count toward the 5 trials asked for: the study draws until its cap of 3 draws per trial
    assert len(trials) == DRAWS_PER_TRIAL * 5 and res.stats["repeats"] == len(twins)
    by_number = {t.number: t for t in res.study.trials}
    for t in twins:
        first = by_number[t.user_attrs["duplicate_of"]]
        assert first.number < t.number and "duplicate_of" not in first.user_attrs
        # the result is the first trial's; the repeat is pruned, so the sampler learns nothing new was found there,
        # and it writes nothing but its parameters and the pointer (candidate, FLOPs, constraint: the first's)
        assert t.state == optuna.trial.TrialState.PRUNED and "top1" in first.user_attrs
        assert set(t.user_attrs) == {"duplicate_of"} and not t.constraints and t.params
    assert res.stats["feasible_share"] == 1.0  # a repeat is under the budget, as its first trial is
    export_run(res.study, tmp_path / "run")
    rows = (tmp_path / "run" / "trials.csv").read_text().splitlines()
    assert rows[0].split(",")[2] == "duplicate_of"
    pointers = [int(r.split(",")[2]) for r in rows[1:] if r.split(",")[2]]  # trial numbers, not 0.0
    assert pointers == [t.user_attrs["duplicate_of"] for t in twins]
    # only the originals were evaluated, and the front lists each candidate once
    assert res.stats["images_evaluated"] <= (len(trials) - len(twins)) * 400
    keys = [json.dumps(t.user_attrs["candidate"], sort_keys=True) for t in pareto_trials(res.study)]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_early_stop_uses_the_front_other_workers_finish_meanwhile(
    tiny_spec: StudySpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, storage: str
) -> None:
    # another worker finishes a perfect trial at no cost while this one evaluates its first chunk: on a storage that
    # several workers share, this trial reads the front again and stops (its upper bound cannot reach 100 %); on
    # SQLite, which one run holds alone, the front read when the trial started stands
    url = f"journal:{tmp_path / 'study.journal'}" if storage == "journal" else None
    spec = StudySpec.from_dict({**tiny_spec.to_dict(), "trials": 1, "storage": url, "baselines": False})

    def chunks_with_a_rival(*args, **kwargs):
        for i, acc in enumerate(evaluate_chunks(*args, **kwargs)):
            if i == 0:
                rival = optuna.load_study(study_name=spec.name, storage=open_storage(url or default))
                attrs = {"top1": 100.0, "gflops": 0.0, "feasible": True, "candidate": unreduced}
                rival.add_trial(optuna.trial.create_trial(values=[100.0, 0.0], user_attrs=attrs))
            yield acc

    unreduced = Candidate("tome", Schedule.none(TINY["depth"]), None).to_dict()
    default = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    monkeypatch.setattr("searcher.study.evaluate_chunks", chunks_with_a_rival)
    res = optimize(spec, tmp_path / "run", progress=False)
    ran = res.study.trials[0]  # the rival is trial 1
    if storage == "journal":
        assert ran.state == optuna.trial.TrialState.PRUNED and ran.user_attrs["images_evaluated"] == 250
        assert res.stats["stopped_early"] == 1 and res.stats["images_evaluated"] == 250
        assert res.stats["images_saved_by_early_stop"] == 150
    else:
        assert ran.state == optuna.trial.TrialState.COMPLETE and ran.user_attrs["images_evaluated"] == 400
        assert res.stats["stopped_early"] == res.stats["images_saved_by_early_stop"] == 0


def test_the_python_api_names_a_wrong_argument(tmp_path: Path) -> None:
    """A notebook user's slips were TypeErrors, AttributeErrors and KeyErrors from deep inside (until
    2026-12-07); --objectives' comma form was refused as "not distinct names"."""
    from searcher.export import export_run, pareto_table

    spec = StudySpec.from_yaml("fashion-vit")
    assert spec.override(objectives="top1,gflops,throughput").objectives == ["top1", "gflops", "throughput"]
    slips = [
        (lambda: spec.override(objectives=[["top1"]]), "a list of distinct names"),
        (lambda: StudySpec.from_yaml(None), "a study spec's path or a shipped spec's name"),
        (lambda: optimize(123), "optimize takes a StudySpec"),
        (lambda: optimize(spec, out=123), "out must be a folder's path"),
        (lambda: optimize(spec, out=""), "out must be a folder's path, got '' "),  # the CLI refuses it too
        (lambda: export_run("x", tmp_path), "export takes an optuna.Study"),
        (lambda: pareto_table("x"), "pareto_table takes the rows of optimize's result.pareto"),
        (lambda: pareto_table([{}]), "pareto_table takes the rows"),
    ]
    for call, words in slips:
        with pytest.raises(ConfigError, match=re.escape(words)):
            call()


def test_a_run_stopped_by_the_timeout_says_so(tiny_spec: StudySpec, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """A run that the timeout stopped ended as a finished one did (exit 0, no word; --json could not tell)."""
    spec = replace(tiny_spec, trials=4, baselines=False, timeout=1e-3)
    with caplog.at_level(logging.WARNING, logger="searcher"):
        res = optimize(spec, tmp_path / "run", progress=False)
    assert res.timed_out and not res.interrupted and res.stats["trials"] < 4
    assert "stopped by the timeout (0.001 s of trials) with 1 of the 4 candidates" in caplog.text
    finished = optimize(replace(spec, timeout=None), tmp_path / "run", progress=False)
    assert not finished.timed_out and finished.stats["trials"] == 4


def test_workers_are_not_started_for_a_finished_study(
    tiny_spec: StudySpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"journal:{tmp_path / 'study.journal'}"
    spec = StudySpec.from_dict({**tiny_spec.to_dict(), "trials": 2, "storage": url, "baselines": False})
    first = optimize(spec, tmp_path / "run", progress=False)

    def started(*args: object) -> bool:
        raise AssertionError("workers started for a finished study")

    monkeypatch.setattr("searcher.study._run_workers", started)
    again = optimize(replace(spec, workers=2), tmp_path / "run", progress=False)
    assert len(again.study.trials) == len(first.study.trials) and again.pareto == first.pareto
    more = replace(spec, workers=2, trials=3)  # more trials asked for: the workers start
    with pytest.raises(AssertionError, match="workers started"):
        optimize(more, tmp_path / "run", progress=False)


def test_help_describes_every_command_and_its_examples_parse() -> None:
    """The example command lines at the end of `searcher --help` parse, and the study specs they name are shipped;
    each command's --help starts with the line that `searcher --help` lists it with."""
    import shlex

    from searcher.cli import EXAMPLES, build_parser

    parser = build_parser()
    for line, _ in EXAMPLES:
        assert line in parser.format_help()
        args = parser.parse_args(shlex.split(line)[1:])
        if args.command == "optimize":
            StudySpec.from_yaml(args.study)  # a shipped name, found from any directory
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(commands.choices) == 9
    for listed in commands._choices_actions:
        line = listed.help
        assert commands.choices[listed.dest].description.startswith(line[0].upper() + line[1:] + "."), listed.dest
    # -v before the command or after it
    assert [parser.parse_args(a).verbose for a in (["report"], ["-v", "report"], ["report", "-v"])] == [0, 1, 1]


def test_optimize_from_python_leaves_the_caller_as_it_was(tiny_spec: StudySpec, tmp_path: Path) -> None:
    """No Optuna ExperimentalWarning reaches a Python caller (heartbeats, TPE's options and metric names are used on
    purpose: until 2026-12-07 two of them warned), and the thread's grad mode and SIGINT handler are restored."""
    import signal
    import warnings

    handler = signal.getsignal(signal.SIGINT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        optimize(tiny_spec.override(trials=2), tmp_path / "run", progress=False)
        optimize(tiny_spec.override(trials=3), tmp_path / "run", progress=False)  # resumed
    assert not [w for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert signal.getsignal(signal.SIGINT) is handler


def test_the_readme_s_python_study_runs(
    tiny_spec: StudySpec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's study example as written, on the tiny study (a spec file instead of a shipped name), 1 trial."""
    import re

    import yaml

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "optimize(" in b]
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_spec.to_dict()))
    for old, new in {
        '"fashion-vit"': repr(str(tmp_path / "tiny.yaml")),
        "trials=60": "trials=1",
        '"runs/fashion-vit-40"': repr(str(tmp_path / "run")),
    }.items():
        assert old in code, old
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert (tmp_path / "run" / "study.db").is_file() and result.pareto
    assert len(list((tmp_path / "run" / "configs").glob("*.json"))) == len(result.pareto)
    assert result.study.user_attrs["spec"]["budget"] == "40%"
    assert "test_top1" in capsys.readouterr().out


def test_a_study_resumes_only_under_its_budget_floor_split_and_model(tiny_spec: StudySpec, tmp_path: Path) -> None:
    """Re-running with another budget, throughput floor, search split or model is refused before any trial: its
    trials were measured under the old ones (an over-budget config would reach the front). Trials, sampler and seed
    may change; the objectives, not even their order."""
    out = tmp_path / "run"
    spec = replace(tiny_spec, trials=1)
    optimize(spec, out, progress=False)
    url = f"sqlite:///{out / 'study.db'}"
    before = load_study("tiny", url)
    budget, n_trials = before.user_attrs["budget_gflops"], len(before.trials)
    ckpt = tmp_path / "other.pth"
    torch.manual_seed(1)
    torch.save(VisionTransformer(**TINY).state_dict(), ckpt)
    for change, words in [
        ({"budget": "50%"}, "a budget of 60% "),
        ({"min_throughput": "10img/s"}, "a throughput floor of none, not 10img/s"),
        ({"checkpoint": str(ckpt)}, f"other weights of {ckpt}: sha256 "),  # two bare hashes until 2026-12-08
        ({"search_images": 200}, "a search split of 400 images, not 200"),
        # an edited space: reordered reducers crashed in Optuna ("dynamic value space"), a new range mixed silently
        ({"space": {"reducers": ["rapid", "tome"], "schedule": {"r": {"low": 0, "high": 32}}}},
         "another search space (reducers: ['tome', 'rapid'] then, ['rapid', 'tome'] now)"),
        ({"space": {"reducers": ["tome", "rapid"], "schedule": {"r": {"low": 0, "high": 20}}}},
         "another search space (schedule: {"),
    ]:
        with pytest.raises(ConfigError, match="another --out") as e:
            optimize(spec.override(**change), out, progress=False)
        assert words in str(e.value), str(e.value)
    # a budget within rounding of the study's: the message shows the digits where they differ
    with pytest.raises(ConfigError, match="another --out") as e:
        optimize(spec.override(budget=f"{budget:.3g}GFLOPs"), out, progress=False)
    shown = re.findall(r"\(([0-9.e+-]+) GFLOPs\)", str(e.value))
    assert len(shown) == 2 and shown[0] != shown[1] and float(shown[0]) == pytest.approx(budget, rel=1e-3), str(e.value)
    # the objectives in another order: the stored values would be read as the other objective's
    with pytest.raises(SearcherError, match=r"other objectives \(top1,gflops\), not gflops,top1; use another --out"):
        optimize(spec.override(objectives=["gflops", "top1"]), out, progress=False)
    # another spec (another name) in the same run directory: a second study there, whose exports replaced the
    # first one's, and export/report refused the directory as holding two (until 2026-12-08)
    with pytest.raises(ConfigError, match=f"{out} holds the study 'tiny', not 'tiny-copy' .*another --out"):
        optimize(replace(spec, name="tiny-copy"), out, progress=False)
    # ... also with --storage elsewhere: it replaced the directory's exports, exit 0, until 2026-12-07
    elsewhere = f"journal:{out.parent / 'elsewhere.journal'}"
    with pytest.raises(ConfigError, match=f"{out} holds the study 'tiny', not 'tiny-copy' .*another --out"):
        optimize(replace(spec, name="tiny-copy", storage=elsewhere), out, progress=False)
    with pytest.raises(ConfigError, match=f"{out.parent / 'exports'} holds the exports of the study 'tiny', not "
                       "'tiny-copy'"):
        (out.parent / "exports" / "configs").mkdir(parents=True)
        (out.parent / "exports" / "configs" / "a.json").write_text(json.dumps({"version": 1,
                                                                             "provenance": {"study": "tiny"}}))
        optimize(replace(spec, name="tiny-copy", storage=elsewhere), out.parent / "exports", progress=False)
    assert optuna.get_all_study_names(url) == ["tiny"]
    study = load_study("tiny", url)  # untouched by the refused runs
    assert len(study.trials) == n_trials and study.metric_names == ["top1", "gflops"]
    assert study.user_attrs["budget_gflops"] == budget and study.user_attrs["spec"]["budget"] == "60%"
    finished = len([t for t in study.trials if t.state in FINISHED])
    res = optimize(spec.override(trials=3, sampler="random", seed=3), out, progress=False)  # these may change
    assert len([t for t in res.study.trials if t.state in FINISHED]) > finished
    # the budget as the summary prints it (4 digits), or in MFLOPs: the study's own budget, kept as it began
    # (refused as another budget until 2026-12-07)
    for copied in (f"{budget:.4g}GFLOPs", f"{budget * 1e3:.5g} MFLOPs"):
        res = optimize(spec.override(trials=len(res.study.trials) + 1, budget=copied), out, progress=False)
        assert res.budget == budget and res.study.user_attrs["budget_gflops"] == budget
        assert res.study.user_attrs["spec"]["budget"] == "60%"


def test_storages_that_cannot_hold_a_study_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-memory SQLite URL (each connection its own empty database: Optuna's 'no such table' traceback until
    2026-12-07) and PostgreSQL without a driver (Optuna's "Failed to import DB access module") name the fix."""
    for url in ("sqlite://", "sqlite:///:memory:"):
        with pytest.raises(ConfigError, match="in-memory database.*sqlite:///PATH"):
            open_storage(url)
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(ConfigError, match=r"pip install 'searcher\[postgres\]'"):
        open_storage("postgresql://user@db.example/searcher")


def test_resume_compares_images_and_tests_a_changed_test_split_again(
    tiny_spec: StudySpec, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """The test split may change between runs: the Pareto set's stored test results are measured again on the new
    one. A study begun before fingerprints were recorded resumes by its data spec, and records one."""
    out = tmp_path / "run"
    res = optimize(tiny_spec.override(trials=2), out, progress=False)
    assert {v["images"] for k, v in res.study.user_attrs.items() if k.startswith("test:")} == {300}
    with caplog.at_level(logging.INFO, logger="searcher.study"):
        res = optimize(replace(tiny_spec, trials=2, test_images=100), out, progress=False)
    assert "the test split is not the one this study was tested on (now 100 images)" in caplog.text  # "None now"
    assert {v["images"] for k, v in res.study.user_attrs.items() if k.startswith("test:") and v} == {100}
    tested = sum(k.startswith("test:") and bool(v) for k, v in res.study.user_attrs.items())
    assert f"testing {tested} Pareto-optimal config(s) on the test split (100 images)" in capsys.readouterr().err
    with contextlib.closing(sqlite3.connect(out / "study.db")) as con, con:
        con.execute("DELETE FROM study_user_attributes WHERE key = 'search_fingerprint'")
    with caplog.at_level(logging.INFO, logger="searcher.study"):
        res = optimize(replace(tiny_spec, trials=2, test_images=100), out, progress=False)
    assert "search_fingerprint" in res.study.user_attrs
    assert "testing" not in capsys.readouterr().err  # the Pareto set's results are stored: nothing to announce


def test_data_preprocessed_as_another_model_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """A copied spec whose ``model`` was edited but whose data still names the old one: another mean/std/crop
    than the searched model's is a warning, unless the data's own ``data_config`` makes them agree."""
    from types import SimpleNamespace

    import timm

    from searcher.study import _check_preprocessing

    source = SimpleNamespace(family="timm-vit", model=timm.create_model("vit_tiny_patch16_224.augreg_in21k_ft_in1k"))
    data = {"kind": "imagefolder", "model": "deit_tiny_patch16_224", "search": "x"}
    spec = StudySpec.from_dict({"name": "s", "model": "vit_tiny_patch16_224.augreg_in21k_ft_in1k", "data": data,
                                "space": "deit-vit-224"})
    with caplog.at_level(logging.WARNING, logger="searcher.study"):
        _check_preprocessing(spec, source)
    assert "preprocessed as deit_tiny_patch16_224" in caplog.text and "mean" in caplog.text
    caplog.clear()
    same = {"mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 0.9}
    with caplog.at_level(logging.WARNING, logger="searcher.study"):
        _check_preprocessing(replace(spec, data={**data, "data_config": same}), source)
    assert not caplog.text


def test_published_recipes_outside_the_space_are_evaluated_as_fixed_baselines(
    tiny_spec: StudySpec, tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    """A space that excludes a paper default (RAPID's τ 0.7 and MLERP, top-k's fuse)
    still gets the published recipes as baselines, evaluated as fixed candidates the sampler does not draw. Until
    2026-12-07 they were enqueued as out-of-range parameters (Optuna warnings; TPE learnt from points outside the
    space), a listed choice crashed the study with a ValueError, and a per-block r cap dropped the recipe."""
    space = {"reducers": ["tome", "rapid", "topk"], "schedule": {"r": {"low": 0, "high": 32}},
             "rapid": {"tau": {"low": 0.8, "high": 0.9}}, "topk": {"fuse": [False]}}
    res = optimize(tiny_spec.override(space=space, trials=3), tmp_path / "run", progress=False)
    base = {t.user_attrs["baseline"]: t for t in res.study.trials if "baseline" in t.user_attrs}
    assert sorted(base) == ["rapid constant r", "tome constant r", "topk constant r"]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in base.values())
    assert "fixed_candidate" not in base["tome constant r"].user_attrs and base["tome constant r"].params
    for red, want in (("rapid", {"tau": 0.7}), ("topk", {"fuse": True})):
        t = base[f"{red} constant r"]
        assert "fixed_candidate" in t.user_attrs and not t.params  # invisible to the sampler
        layers = t.user_attrs["candidate"]["schedule"]["layers"]
        assert all(any(layer.get(k) == v for layer in layers) for k, v in want.items()), layers
    assert not [w for w in recwarn if "out of" in str(w.message)]  # Optuna: "out of (the) range"
    # per-block, the recipe's r below the space's r.low: evaluated as a fixed candidate too
    per_block = {"reducers": ["tome"], "schedule": {"parametrisation": "per-block", "r": {"low": 3, "high": 8}}}
    res = optimize(tiny_spec.override(name="low", space=per_block, trials=1, budget="97%"), tmp_path / "low",
                   progress=False)
    (tome,) = [t for t in res.study.trials if "baseline" in t.user_attrs]
    assert "fixed_candidate" in tome.user_attrs and tome.user_attrs["feasible"]
    assert max(layer.get("r", 0) for layer in tome.user_attrs["candidate"]["schedule"]["layers"]) < 3
    assert not [w for w in recwarn if "out of" in str(w.message)]


def test_a_size_range_short_of_the_largest_subnet_makes_the_supernet_baselines_fixed() -> None:
    """``architecture.size`` up to 1.2 × the budget cannot reach the largest subnet: the enqueued parameters drew
    the recipe on a smaller subnet (until 2026-12-07), so the published recipe runs as a fixed candidate on it."""
    from types import SimpleNamespace

    from searcher.models import ModelSource
    from searcher.space import SearchSpace, find_spec, load_yaml
    from searcher.study import _Context, _outside_space

    d = {**load_yaml(find_spec("fashion-autoformer", "spaces"), "space")}
    space = SearchSpace.from_dict(d)
    source = ModelSource.open("fashion-autoformer", None, arch_space=space.architecture)
    largest = space.architecture.largest()
    full = source.flops(largest, Schedule.none(largest["depth"]))
    for size, fixed in ((None, False), ({"low": 1.0, "high": 1.2}, True)):
        sp = SearchSpace.from_dict({**d, "architecture": {**d["architecture"], **({"size": size} if size else {})}})
        ctx = SimpleNamespace(space=sp, source=source, budget=0.4 * full)
        ctx.draw = lambda trial, ctx=ctx: _Context.draw(ctx, trial)  # type: ignore[arg-type]
        top = sp.arch_size(full, ctx.budget).high
        params = sp.baseline_params("tome", 7, 7, sp.architecture.params_of_largest(top))
        rs = [source.constant_r_for_budget(largest, lambda rs: Schedule.recipe("tome", 7, rs), ctx.budget)] * 7
        sched = Schedule.recipe("tome", 7, rs).capped(source.n_tokens, source.num_prefix)
        published = Candidate("tome", sched, largest)
        why = _outside_space(ctx, params, published)
        assert (why is not None) == fixed, why
        if fixed:
            assert "architecture.size does not reach the largest" in why


def test_a_space_or_model_arguments_the_model_cannot_take_are_refused() -> None:
    """Until 2026-12-07: an architecture section on a timm ViT drew weights that changed nothing and exported configs
    with a made-up subnet; on the paper's fixed AutoFormer-T subnet it searched the supernet; model_kwargs on the
    embedded models were ignored; 'none' without an architecture drew the unreduced model, over any budget."""
    from searcher.models import ModelSource
    from searcher.space import SearchSpace

    arch = SearchSpace.from_dict({"reducers": ["tome"], "architecture": {
        "embed_dim": [64, 128], "depth": [6], "num_heads": [2, 4], "mlp_ratio": [2.0, 4.0]}}).architecture
    with pytest.raises(ConfigError, match="architecture section, but fashion-vit is not an AutoFormer supernet"):
        ModelSource.open("fashion-vit", arch_space=arch)
    with pytest.raises(ConfigError, match="autoformer-t is the paper's searched subnet; search architectures on "
                                          "autoformer-t-supernet"):
        ModelSource.open("autoformer-t", arch_space=arch)
    for name in ("fashion-vit", "fashion-autoformer", "autoformer-t-supernet"):
        with pytest.raises(ConfigError, match=f"{name} takes no model arguments; remove model_kwargs"):
            ModelSource.open(name, model_kwargs={"img_size": 64})
    with pytest.raises(ConfigError, match="reducers lists 'none' .*; remove it"):
        SearchSpace.from_dict({"reducers": ["none", "tome"]})


def test_reducers_that_rank_by_cls_attention_are_refused_on_a_model_without_a_class_token(
    tiny_spec: StudySpec, tmp_path: Path
) -> None:
    """Until 2026-12-07 the study started and stopped at the first top-k or RAPID draw (an Optuna traceback)."""
    kwargs = {**TINY, "class_token": False, "global_pool": "avg"}
    torch.save(VisionTransformer(**kwargs).state_dict(), tmp_path / "nocls.pth")
    spec = replace(tiny_spec, model_kwargs=kwargs, checkpoint=str(tmp_path / "nocls.pth"))
    with pytest.raises(ConfigError, match=r"^rapid, topk rank tokens by CLS attention but vit_tiny_patch16_224 has no "
                                          "class token; remove them"):
        optimize(replace(spec, space={"reducers": ["tome", "rapid", "topk"]}), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    res = optimize(replace(spec, space={"reducers": ["tome", "pitome"]}, trials=2), tmp_path / "ok", progress=False)
    assert res.stats["failed"] == 0


def test_a_published_diffrate_schedule_must_keep_what_its_blocks_get(tiny_spec: StudySpec, tmp_path: Path) -> None:
    """Counts above the tokens a block gets, or merging to more than pruning kept, ran as an unreduced schedule with
    a 70 recorded for 65 tokens (until 2026-12-07)."""
    for kept, words in (
        ({"prune_kept": [65, 60, 50, 40], "merge_kept": [70, 55, 45, 35]}, "block 0 keeps 65 tokens after pruning "
         "and 70 after merging of the 65 it gets"),
        ({"prune_kept": [500] * 4, "merge_kept": [400] * 4}, "block 0 keeps 500 tokens after pruning"),
        ({"prune_kept": [60, 58, 50, 40], "merge_kept": [55, 55, 45, 35]}, "block 1 keeps 58 tokens after pruning and "
         "55 after merging of the 55 it gets"),
    ):
        with pytest.raises(ConfigError, match=f"diffrate_baseline does not fit .*: {words}"):
            optimize(replace(tiny_spec, diffrate_baseline=kept), tmp_path / "run", progress=False)


def test_a_study_in_a_read_only_folder_says_why_it_cannot_be_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite in write-ahead-log mode cannot be read from a read-only folder (its -shm file): the error said to
    check the URL and the server (until 2026-12-07)."""
    import searcher.study as S

    db = tmp_path / "study.db"
    db.write_bytes(b"")

    def unable(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(S, "_RDBStorage", unable)
    monkeypatch.setattr(S.os, "access", lambda path, mode: False)  # root ignores permissions: as a read-only mount
    with pytest.raises(StorageError, match=r"its folder is read-only, .*study.db-shm\); copy study.db to a writable"):
        open_storage(f"sqlite:///{db}")


def test_override_names_an_unknown_key_and_takes_a_tuple_of_objectives(tiny_spec: StudySpec) -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['foo'\]"):  # a TypeError from dataclasses before
        tiny_spec.override(foo=1)
    assert tiny_spec.override(objectives=("top1", "gflops")).objectives == ["top1", "gflops"]


def test_a_study_begun_before_the_prop_attn_default_changed_keeps_it_on(tiny_spec: StudySpec, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Left out of a space, proportional attention is each recipe's own since 2026-12-07 (off for PiToMe); a study
    begun before (no recorded space) resumes with it on for every reducer, not a mix of both."""
    out = tmp_path / "run"
    spec = replace(tiny_spec, space={"reducers": ["pitome"]}, trials=1)
    optimize(spec, out, progress=False)
    assert load_study("tiny", f"sqlite:///{out / 'study.db'}").trials[0].user_attrs["candidate"]["schedule"][
        "prop_attn"] is False  # today's default: the official PiToMe
    with contextlib.closing(sqlite3.connect(out / "study.db")) as con, con:  # as a study of an older searcher
        con.execute("DELETE FROM study_user_attributes WHERE key IN ('space', 'prop_attn_per_recipe')")
    res = optimize(replace(spec, trials=3), out, progress=False)
    drawn = [t.user_attrs["candidate"]["schedule"]["prop_attn"] for t in res.study.trials[1:]
             if "candidate" in t.user_attrs]
    assert len(drawn) >= 2 and all(drawn), drawn
    assert res.study.user_attrs["space"]["prop_attn"] is True
    # a study begun since with prop_attn: true and resumed without it was taken for an old one, and went on with
    # it on, the edit ignored (a probe of 2026-12-07): another space, refused
    out = tmp_path / "explicit"
    optimize(replace(spec, space={"reducers": ["pitome"], "prop_attn": True}), out, progress=False)
    with pytest.raises(ConfigError, match="another search space"):
        optimize(replace(spec, trials=2), out, progress=False)
    # begun so before studies were marked: it cannot be told from an old study's default, kept, and said so
    with contextlib.closing(sqlite3.connect(out / "study.db")) as con, con:
        con.execute("DELETE FROM study_user_attributes WHERE key = 'prop_attn_per_recipe'")
    with caplog.at_level(logging.WARNING, logger="searcher.study"):
        optimize(replace(spec, trials=2), out, progress=False)
    assert "begun with prop_attn: true for every reducer (given, or the default before 2026-12-07): kept" in caplog.text


def test_storage_passwords_stay_out_of_messages_records_and_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PostgreSQL password reached every exported config (provenance.command) and two error messages in clear
    (until 2026-12-07)."""
    from searcher.export import _command
    from searcher.study import _redact

    assert _redact("postgresql://probe:s3cret@db:5432/optdb") == "postgresql://probe:***@db:5432/optdb"
    assert _redact("postgresql://probe@db/optdb?sslmode=require&password=s3cret") == (
        "postgresql://probe@db/optdb?sslmode=require&password=***")  # no fake ":***" for a user without one
    monkeypatch.setattr(sys, "argv", ["/usr/bin/searcher", "optimize", "--storage", "mysql://u:s3cret@h/db"])
    assert "s3cret" not in _command() and "mysql://u:***@h/db" in _command()
    with pytest.raises(ConfigError, match=r"'postgres://u:\*\*\*@h/db'; .*\(postgres:// is written postgresql://\)"):
        open_storage("postgres://u:s3cret@h/db")


def test_a_baseline_abandoned_with_ctrl_c_runs_again_on_resume(tiny_spec: StudySpec, tmp_path: Path) -> None:
    """A published recipe whose trial was abandoned (a second Ctrl-C) or whose worker died for good was never run
    again: the resumed study counted itself done without it (until 2026-12-07)."""
    out = tmp_path / "run"
    optimize(replace(tiny_spec, trials=2), out, progress=False)
    with contextlib.closing(sqlite3.connect(out / "study.db")) as con, con:  # as a second Ctrl-C leaves it
        (trial_id,) = con.execute("SELECT trial_id FROM trials WHERE number = 1").fetchone()
        con.execute("UPDATE trials SET state = 'FAIL' WHERE trial_id = ?", (trial_id,))
        con.execute("INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (?, 'fail_reason', ?)",
                    (trial_id, json.dumps("KeyboardInterrupt: abandoned with Ctrl-C")))
    res = optimize(replace(tiny_spec, trials=2), out, progress=False)
    runs = [t for t in res.study.trials if t.user_attrs.get("baseline") == "rapid constant r"]
    assert [t.state.name for t in runs] == ["FAIL", "COMPLETE"]
    assert runs[1].params == runs[0].params


def test_a_read_only_journal_and_a_table_race_on_a_new_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_spec: StudySpec
) -> None:
    """A read-only journal was Optuna's traceback from its lock file (rc 1); workers started at once on a new
    PostgreSQL database raced to create the tables, and one stopped with a UniqueViolation (until 2026-12-07)."""
    import searcher.study as S

    journal = tmp_path / "ro" / "study.journal"
    journal.parent.mkdir()
    journal.write_text("")
    real_access = os.access
    monkeypatch.setattr(S.os, "access", lambda p, mode: False if Path(p) == journal.parent else real_access(p, mode))
    with pytest.raises(StorageError, match="cannot write the journal .*: its folder is read-only; copy the journal"):
        S._create_study(tiny_spec, f"journal:{journal}")
    monkeypatch.undo()

    calls = {"n": 0}
    real = S._RDBStorage

    def racing(url: str, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError('duplicate key value violates unique constraint "pg_type_typname_nsp_index"')
        return real(url, **kwargs)

    monkeypatch.setattr(S, "_RDBStorage", racing)
    monkeypatch.setattr(S.time, "sleep", lambda s: None)
    assert open_storage(f"sqlite:///{tmp_path / 'race.db'}") is not None and calls["n"] == 2


def test_a_result_that_cannot_be_written_to_stdout_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``searcher flops --json > /dev/full`` was an OSError traceback (exit 1) until 2026-12-08."""

    class Full:
        def write(self, text: str) -> int:
            raise OSError(28, "No space left on device")

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", Full())
    assert main(["flops", "--model", "fashion-vit", "--json"]) == 2
    assert capsys.readouterr().err == "error: cannot write the result to stdout: No space left on device\n"


def test_a_ctrl_c_before_any_trial_finished_leaves_nothing_to_export(
    tiny_spec: StudySpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped before a trial completed (workers still starting, or the first trial failed): KeyboardInterrupt with
    the reason, exit 130 in the CLI; a single worker went on to export and failed with 'no completed trial' (exit 2)
    until 2026-12-08."""
    import searcher.study as study_module

    monkeypatch.setattr(study_module, "_optimize_loop", lambda *args, **kwargs: True)  # pressed, nothing ran
    with pytest.raises(KeyboardInterrupt, match="stopped before any trial finished; run the same command"):
        optimize(replace(tiny_spec, trials=2), tmp_path / "run", progress=False)


def test_waiting_for_another_process_s_timing_is_neither_evaluation_nor_overhead(
        tiny_spec: StudySpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trial whose batches wait while another process times a model (the device lock, shared by every study of
    this user) counted the wait as evaluation: 209 s of eval_s for 2,000 images beside another study (until
    2026-12-08), and the overhead share was understated by it. The wait is now ``wait_s``, its own share."""
    import tempfile
    import threading

    import searcher.study
    from searcher.cost import throughput

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a lock of this test's own
    monkeypatch.setattr(throughput, "_LOCKS", {})
    other, held, release = throughput.DeviceLock("cpu"), threading.Event(), threading.Event()

    def timing() -> None:  # another process's measurement (another open file: flock tells them apart)
        with other.exclusive():
            held.set()
            release.wait(10)

    chunks = searcher.study.evaluate_chunks

    def evaluate_chunks(*args, **kwargs):  # the other's timing ends 1.5 s after the first trial begins evaluating
        if not release.is_set():
            threading.Timer(1.5, release.set).start()
        return chunks(*args, **kwargs)

    monkeypatch.setattr(searcher.study, "evaluate_chunks", evaluate_chunks)
    thread = threading.Thread(target=timing)
    thread.start()
    held.wait(10)
    try:
        res = optimize(replace(tiny_spec, trials=1, search_images=250), tmp_path / "run", progress=False)
    finally:
        release.set()
        thread.join()
    first, *rest = res.study.trials  # the published recipes of both reducers: the first waits
    assert first.user_attrs["wait_s"] >= 1.0 and first.user_attrs["eval_s"] < first.user_attrs["wait_s"]
    wall = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in res.study.trials)
    waited = sum(t.user_attrs.get("wait_s", 0.0) for t in res.study.trials)  # written only where it waited
    assert res.stats["wait_share"] == pytest.approx(waited / wall)
    assert res.stats["overhead_share"] < 0.5  # the wait is not overhead: 1 - (eval + timing + wait) / wall


def test_a_relative_storage_in_a_spec_lies_beside_it(tiny_spec: StudySpec, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """As the spec's checkpoint and data roots: the working directory's file when there is one, else the spec
    folder's. It was the working directory's alone (until 2026-12-08), so the study moved with the shell's cwd."""
    folder, elsewhere = tmp_path / "specs", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    d = {k: v for k, v in tiny_spec.to_dict().items() if k != "base_dir"}
    (folder / "s.yaml").write_text(yaml.safe_dump({**d, "storage": "sqlite:///study-here.db", "trials": 1}))
    monkeypatch.chdir(elsewhere)
    spec = StudySpec.from_yaml(folder / "s.yaml")
    assert spec.storage == f"sqlite:///{folder / 'study-here.db'}"
    optimize(spec, tmp_path / "out", progress=False)
    assert (folder / "study-here.db").is_file() and not (elsewhere / "study-here.db").exists()
    from searcher.export import study_target

    assert study_target(str(folder / "s.yaml"))[2] == spec.storage  # export --study s.yaml finds it
    (elsewhere / "study-here.db").write_bytes((folder / "study-here.db").read_bytes())  # the working directory's
    assert StudySpec.from_yaml(folder / "s.yaml").storage == f"sqlite:///{elsewhere / 'study-here.db'}"
