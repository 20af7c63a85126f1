"""``searcher export`` on a real tiny study: the configs a deployer loads, the tables, atomic writes, and the errors a
user can cause (each a :class:`~searcher.errors.SearcherError`, exit code 2 in the CLI, and no file written).

One tiny study (a 4-block timm ViT on synthetic Fashion-MNIST, as in ``tests/test_study.py``) is run once for
the module; the report of that real study is drawn here too.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

import searcher
from searcher.cost.flops import flops
from searcher.errors import ConfigError, SearcherError, StorageError
from searcher.export import check_input, export_command, export_run, export_text, find_storage, study_target
from searcher.models import create_model
from searcher.patch import apply
from searcher.report import report_command
from searcher.schedule import Schedule
from searcher.study import StudySpec, optimize, pareto_trials

TINY = dict(img_size=32, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=4, num_heads=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, idx) -> Iterator[Path]:
    """A finished tiny study in ``<run>/study.db`` (6 trials: the two baselines and four searched)."""
    root = tmp_path_factory.mktemp("export")
    data = root / "idx"
    data.mkdir()
    for key, array in idx.synthetic(4000, 300).items():
        idx.write(data / idx.stems[key], array)
    torch.manual_seed(0)
    torch.save(VisionTransformer(**TINY).state_dict(), root / "tiny.pth")
    spec = StudySpec.from_dict(
        {
            "name": "tiny",
            "model": "vit_tiny_patch16_224",
            "model_kwargs": TINY,
            "checkpoint": str(root / "tiny.pth"),
            "data": {"kind": "fashion-mnist", "dir": str(data)},
            "space": {"reducers": ["tome", "rapid"], "schedule": {"r": {"low": 0, "high": 32}}},
            "budget": "60%",
            "trials": 6,
            "search_images": 250,
            "test_images": 200,
            "batch_size": 250,
            "chunk": 250,
            "throughput_batch": 8,
            "throughput_repeats": 1,
            "seed": 0,
        }
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: no thread contention, less wall time
    try:
        optimize(spec, root / "run", progress=False)
    finally:
        torch.set_num_threads(threads)
    yield root / "run"


@pytest.fixture(scope="module")
def exported(run_dir: Path) -> dict:
    return export_command(None, run_dir, None, command="searcher export --out RUN")


def _study(run_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir / 'study.db'}")


def _configs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "configs").glob("*.json"))


# ------------------------------------------------------------------------------------------------ what is written
def test_export_writes_one_config_per_pareto_trial_and_the_tables(run_dir: Path, exported: dict) -> None:
    study = _study(run_dir)
    pareto = pareto_trials(study)
    configs = _configs(run_dir)
    assert pareto and len(configs) == len(pareto) == len(exported["pareto"])
    assert exported["study"] == "tiny" and exported["running"] == 0
    # the rows the printed table is made from carry the subnet (None for a ViT; none until a review of 2026-12-07)
    assert all("arch" in row and row["arch"] is None for row in exported["pareto"])
    assert exported["trials"] == len(study.trials) and exported["states"]["COMPLETE"] >= 1
    assert {str(p) for p in configs} <= set(exported["files"])
    by_trial = {t.number: t for t in pareto}
    for path in configs:
        # a stable name that says what the config is: <model>.<reducer>.<GFLOPs>g.json
        m = re.fullmatch(r"vit_tiny_patch16_224\.(tome|rapid)\.([0-9.e-]+)g(\.t\d+)?\.json", path.name)
        assert m, path.name
        cfg = json.loads(path.read_text())
        trial = by_trial[cfg["provenance"]["trial"]]
        assert cfg["version"] == 1 and cfg["reducer"] == m[1] == trial.user_attrs["candidate"]["reducer"]
        assert float(m[2]) == pytest.approx(cfg["metrics"]["gflops"], rel=5e-3)
        assert cfg["model"]["name"] == "vit_tiny_patch16_224" and len(cfg["model"]["sha256"]) == 64
        assert cfg["model"]["kwargs"] == TINY and cfg["arch"] is None
        assert Schedule.from_dict(cfg["schedule"]).depth == TINY["depth"]
        metrics = cfg["metrics"]
        assert metrics["search_top1"] == trial.user_attrs["top1"] and metrics["gflops"] == trial.user_attrs["gflops"]
        assert metrics["test_top1"] is not None and metrics["test_images"] == 200
        assert {"img_s", "device", "batch_size", "dtype"} <= set(metrics["throughput"])
        prov = cfg["provenance"]
        assert prov["study"] == "tiny" and prov["trial"] == trial.number
        assert {"searcher", "torch", "timm", "command"} <= set(prov) and prov["torch"] == torch.__version__
        assert prov["exported_by"] == "searcher export --out RUN"
        # how the study was run, not who exported last (until 2026-12-07 both were the export's command)
        assert prov["command"] == study.user_attrs["command"] and prov["command"].startswith("python ")
        assert cfg["check"]["input"]["shape"] == [2, 1, 32, 32] and len(cfg["check"]["logits"][0]) == 10
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == len(study.trials) and {"param_reducer", "search_top1", "gflops", "state"} <= set(trials)
    front = pd.read_csv(run_dir / "pareto.csv")
    assert list(front["trial"]) == [t.number for t in pareto]
    # integer columns stay integers where some rows are blank (batch size: only the timed Pareto set has one)
    rows = (run_dir / "pareto.csv").read_text().splitlines()
    batch = rows[0].split(",").index("batch_size")
    assert {r.split(",")[batch] for r in rows[1:]} == {"8"}
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".") and p.name != ".optimize.lock"]
    text = export_text(exported)
    assert "Pareto set" in text and "configs/" in text



def test_trials_csv_gives_a_trial_stopped_early_its_partial_top1() -> None:
    """As the report shows it ("top-1 83.60 % after 1500 images"); the CSV had no column for it until 2026-12-08."""
    from searcher.export import trials_frame

    study = optuna.create_study(directions=["maximize", "minimize"])
    dist = {"r": optuna.distributions.IntDistribution(0, 8)}
    study.add_trial(optuna.trial.create_trial(params={"r": 3}, distributions=dist, values=[80.0, 0.5],
                                              user_attrs={"top1": 80.0, "gflops": 0.5, "images_evaluated": 2000}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={"r": 8}, distributions=dist,
                                              user_attrs={"top1_partial": 61.5, "images_evaluated": 500}))
    frame = trials_frame(study)
    assert frame["top1_partial"].isna().tolist() == [True, False] and frame["top1_partial"][1] == 61.5
    assert frame["search_top1"].isna().tolist() == [False, True]


def test_feasible_is_blank_where_no_verdict_was_reached_and_tables_print_missing_as_a_dash() -> None:
    """A repeat, a failed or a waiting trial was ``feasible=False`` in trials.csv (unlike optimize's count), and the
    export's table printed None and NaN for a test top-1 or img/s not measured yet, until 2026-12-07."""
    from searcher.export import pareto_table, trials_frame

    study = optuna.create_study(directions=["maximize", "minimize"])
    dist = {"r": optuna.distributions.IntDistribution(0, 8)}
    ok = {"top1": 80.0, "gflops": 0.5, "feasible": True}
    study.add_trial(optuna.trial.create_trial(params={"r": 3}, distributions=dist, values=[80.0, 0.5], user_attrs=ok))
    study.add_trial(optuna.trial.create_trial(params={"r": 0}, distributions=dist, values=[0.0, 0.9],
                                              user_attrs={"gflops": 0.9, "feasible": False}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={"r": 3}, distributions=dist,
                                              user_attrs={"duplicate_of": 0, "gflops": 0.5}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={"r": 5}, distributions=dist,
                                              user_attrs={"gflops": 0.6, "feasible": True}))  # set as it began
    study.enqueue_trial({"r": 1})
    assert trials_frame(study)["feasible"].tolist() == [True, False, pd.NA, pd.NA, pd.NA]
    # under a throughput floor, a trial never timed (stopped early, or dominated) is on neither side of it: it was
    # feasible=True until 2026-12-07; a timed one keeps its verdict
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={"r": 4}, distributions=dist,
                                              user_attrs={"gflops": 0.4, "feasible": True, "top1_partial": 50.0}))
    study.add_trial(optuna.trial.create_trial(params={"r": 2}, distributions=dist, values=[82.0, 0.6], user_attrs={
        **ok, "top1": 82.0, "gflops": 0.6, "throughput": {"img_s": 900.0}}))
    assert trials_frame(study)["feasible"].tolist()[-2:] == [True, True]
    study.set_user_attr("spec", {"min_throughput": "500img/s"})
    assert trials_frame(study)["feasible"].tolist() == [pd.NA, False, pd.NA, pd.NA, pd.NA, pd.NA, True]
    # a killed worker's trial has no duration: its end is when a later run found it dead (until 2026-12-07, the
    # time until then)
    for why in ("worker died: its heartbeat stopped", "out of memory"):
        study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={"r": 5},
                                                  distributions=dist, user_attrs={"fail_reason": why}))
    assert trials_frame(study)["duration_s"].isna().tolist()[-2:] == [True, False]
    rows = [{"trial": 0, "reducer": "tome", "tokens": [65, 30], "search_top1": 80.0, "test_top1": None, "gflops": 0.5,
             "img_s": None}, {"trial": 4, "reducer": "rapid", "tokens": [65, 20], "search_top1": 81.0,
                              "test_top1": 80.5, "gflops": 0.6, "img_s": None}]
    table = pareto_table(rows)
    assert "None" not in table and "NaN" not in table and table.count("–") == 3
    plain = pareto_table([{**r, "arch": None} for r in rows])
    assert "arch" not in plain.splitlines()[0].split()  # a plain ViT's: no subnet column
    # a joint AutoFormer study's rows read alike but for their subnet (none was shown until 2026-12-07)
    subnet = {"embed_dim": 96, "depth": 2, "num_heads": [2, 4], "mlp_ratio": [4.0, 3.5]}
    table = pareto_table([{**rows[0], "arch": subnet}, {**rows[1], "arch": {**subnet, "embed_dim": 120}}])
    assert "embed 96, depth 2, heads 2-4, mlp 4-3.5" in table and "embed 120, depth 2" in table
    assert "embed" not in pareto_table([{**r, "arch": subnet} for r in rows])  # one fixed subnet: no column

def test_config_rebuilds_the_recorded_logits_and_gflops(run_dir: Path, exported: dict) -> None:
    """The export side of the round trip: the config alone (model source + schedule) rebuilds a model whose
    analytic GFLOPs (``searcher.cost.flops``) and logits on the check input are the recorded ones."""
    for path in _configs(run_dir):
        cfg = json.loads(path.read_text())
        schedule = Schedule.from_dict(cfg["schedule"])
        src = cfg["model"]
        model = create_model(src["name"], checkpoint=src["checkpoint"], **src["kwargs"]).eval()
        assert flops(model, schedule) == pytest.approx(cfg["metrics"]["gflops"], rel=1e-9)
        model = apply(model, schedule)
        assert flops(model) == pytest.approx(cfg["metrics"]["gflops"], rel=1e-9)
        with torch.inference_mode():
            logits = model(check_input(cfg["check"]["input"]))
        torch.testing.assert_close(logits, torch.tensor(cfg["check"]["logits"]), atol=cfg["check"]["atol"], rtol=0)


def test_round_trip_through_load_config(run_dir: Path, exported: dict) -> None:
    """``searcher.load_config`` (deploy) rebuilds the model with the recorded logits and GFLOPs."""
    if importlib.util.find_spec("searcher.deploy") is None:
        pytest.skip("searcher.deploy (load_config) is not written yet; this test runs once it exists")
    load_config = searcher.load_config  # import errors in deploy fail the test, they are not a skip
    for path in _configs(run_dir):
        cfg = json.loads(path.read_text())
        model = load_config(path).eval()
        with torch.inference_mode():
            logits = model(check_input(cfg["check"]["input"]))
        torch.testing.assert_close(logits, torch.tensor(cfg["check"]["logits"]), atol=cfg["check"]["atol"], rtol=0)
        assert flops(model) == pytest.approx(cfg["metrics"]["gflops"], rel=1e-9)


def test_export_again_replaces_the_configs_with_the_same_names(run_dir: Path, exported: dict, tmp_path: Path) -> None:
    study = _study(run_dir)
    out = tmp_path / "again"
    export_run(study, out)
    names = [p.name for p in _configs(out)]
    stale = _configs(out)[0].read_text()  # a config of an earlier, different Pareto set
    (out / "configs" / "stale.json").write_text(stale)
    export_run(study, out)
    assert [p.name for p in _configs(out)] == names == [p.name for p in _configs(run_dir)]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_report_of_the_real_study(run_dir: Path, exported: dict) -> None:
    result = report_command(None, run_dir, None)
    study = _study(run_dir)
    assert Path(result["report"]) == run_dir / "report.html" and (run_dir / "report.html").stat().st_size > 1e6
    assert result["points"] == len([t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"])
    assert result["pareto"] == [t.number for t in pareto_trials(study)]


# ----------------------------------------------------------------------------------------------- atomic writes
def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_a_failed_export_changes_nothing(
    run_dir: Path, exported: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _study(run_dir)
    out = tmp_path / "out"
    export_run(study, out)
    before = _snapshot(out)
    real_replace = os.replace
    calls: dict[str, Any] = {"n": 0, "error": OSError(errno.ENOSPC, "No space left on device")}

    def failing_replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
        calls["n"] += 1
        if calls["n"] == 4:  # after configs/ was swapped in and trials.csv moved aside
            raise calls["error"]
        real_replace(src, dst)

    monkeypatch.setattr("searcher.export.os.replace", failing_replace)
    with pytest.raises(ConfigError, match="No space left on device; nothing was changed"):
        export_run(study, out)
    assert _snapshot(out) == before  # the previous export, byte for byte, and no temporary file
    # Ctrl-C there: it left .configs.<pid>.tmp and .trials.csv.old.<pid>.tmp (until 2026-12-07)
    calls.update(n=0, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        export_run(study, out)
    assert _snapshot(out) == before and not list(out.glob(".*"))
    # the old trials.csv cannot be moved aside: that error, not the ENOENT of putting back a backup never made
    # (until 2026-12-07)
    calls.update(n=1, error=OSError(errno.EPERM, "Operation not permitted"))  # the third rename
    with pytest.raises(ConfigError, match="Operation not permitted; nothing was changed"):
        export_run(study, out)
    assert _snapshot(out) == before and not list(out.glob(".*"))
    calls["error"] = OSError(errno.ENOSPC, "No space left on device")

    # into a fresh directory: nothing is left behind, not even the directory
    calls["n"] = 1  # the third rename (pareto.csv) fails
    with pytest.raises(ConfigError):
        export_run(study, tmp_path / "fresh" / "out")
    assert not (tmp_path / "fresh").exists()


# ------------------------------------------------------------------------------------------------------ errors
@pytest.fixture
def empty_storage(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(study_name="empty", storage=url, directions=["maximize", "minimize"])
    return url


def test_broken_inputs_are_clear_errors_and_write_nothing(tmp_path: Path, run_dir: Path, empty_storage: str) -> None:
    out = tmp_path / "out"
    db = f"sqlite:///{run_dir / 'study.db'}"
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite database" * 100)
    (tmp_path / "zero").mkdir()
    zero = tmp_path / "zero" / "study.db"
    zero.write_bytes(b"")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = [
        (("nope", out, db), StorageError, r"no study 'nope' .* \(it holds \['tiny'\]\)"),
        ((None, tmp_path / "no-run", None), StorageError, "no study in .*no-run: the directory does not exist"),
        ((None, tmp_path, None), StorageError, "holds neither study.db nor study.journal"),
        (("empty", out, empty_storage), StorageError, "study 'empty' has no trial; run 'searcher optimize' first"),
        ((None, out, f"sqlite:///{tmp_path / 'missing.db'}"), StorageError, "does not exist"),
        ((None, out, f"journal:{tmp_path / 'missing.journal'}"), StorageError, "does not exist"),
        ((None, out, f"sqlite:///{garbage}"), StorageError, "cannot open storage"),
        # Optuna's tables were written into an empty file, then "it holds 0 studies", until 2026-12-07
        ((None, out, f"sqlite:///{zero}"), StorageError, "study.db is empty, no study database"),
        ((None, zero.parent, None), StorageError, "study.db is empty, no study database"),
        ((None, out, "bogus://host/db"), ConfigError, "unsupported storage URL"),
        ((None, blocker / "out", db), ConfigError, "cannot write to .*a-file/out"),
        ((None, blocker, None), StorageError, "no study in .*a-file: it is a file, not a run directory"),
        ((None, None, None), ConfigError, "pass --out DIR"),
    ]
    for args, kind, words in cases:
        with pytest.raises(kind, match=words):
            export_command(*args)
    assert not out.exists() and not (tmp_path / "no-run").exists()
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "missing.journal").exists()
    assert garbage.read_bytes() == b"this is not an SQLite database" * 100 and zero.read_bytes() == b""
    assert blocker.read_text() == ""


def test_an_export_never_replaces_what_is_not_an_export(run_dir: Path, exported: dict, tmp_path: Path) -> None:
    """``configs/`` is replaced by each export and the CSVs overwritten: a user's directory named ``trials.csv``,
    a file named ``configs``, or a note in ``configs/`` is refused, not deleted (it was, until 2026-12-07)."""
    db = f"sqlite:///{run_dir / 'study.db'}"
    config = json.loads(next((run_dir / "configs").glob("*.json")).read_text())
    other_config = {**config, "provenance": {**config["provenance"], "study": "fashion-autoformer"}}
    for name, make, words in [
        ("trials.csv", lambda p: (p.mkdir(), (p / "keep.txt").write_text("mine")), "is a directory"),
        ("configs", lambda p: p.write_text("mine"), "a file, not a directory"),
        ("configs", lambda p: (p.mkdir(), (p / "notes.md").write_text("mine")), "holds notes.md"),
        # a JSON of the user's own was deleted (until 2026-12-07)
        ("configs", lambda p: (p.mkdir(), (p / "my-notes.json").write_text('{"my": "notes"}')), "holds my-notes.json"),
        # another study's export in its run directory was replaced by this one's (until 2026-12-07)
        ("configs", lambda p: (p.mkdir(), (p / "af.json").write_text(json.dumps(other_config))),
         "holds the configs of study 'fashion-autoformer', not of 'tiny'; .* export to another --out"),
    ]:
        out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
        out.mkdir()
        make(out / name)
        before = _snapshot(out)
        with pytest.raises(ConfigError, match=words):
            export_command(None, out, db)
        assert _snapshot(out) == before


def test_dotfiles_in_configs_do_not_block_an_export(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_command(None, out, f"sqlite:///{run_dir / 'study.db'}")
    (out / "configs" / ".DS_Store").write_bytes(b"")  # refused as "not an exported config" until 2026-12-07
    export_command(None, out, f"sqlite:///{run_dir / 'study.db'}")


def test_a_killed_export_s_leftovers_are_swept_by_the_next(run_dir: Path, exported: dict, tmp_path: Path) -> None:
    """A killed export's temporary files stayed for good (until 2026-12-07); the next export sweeps them, and puts
    back first a backup whose file the kill left missing."""
    out = tmp_path / "out"
    export_run(_study(run_dir), out)
    before = _snapshot(out)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)
    os.replace(out / "trials.csv", out / f".trials.csv.old.{pid}.tmp")  # killed mid-swap
    (out / f".configs.{pid}.tmp").mkdir()
    (out / f".pareto.csv.{pid}.tmp").write_text("half")
    (out / f".pareto.csv.{os.getpid()}.tmp").write_text("a live export's")  # this process lives: kept
    from searcher.export import _sweep

    _sweep(out)  # minutes old at least: an export on another machine sharing the folder writes them for seconds
    assert len(list(out.glob(".*"))) == 4
    _sweep(out, min_age_s=0)
    assert [p.name for p in out.glob(".*")] == [f".pareto.csv.{os.getpid()}.tmp"]
    assert (out / "trials.csv").read_bytes() == before["trials.csv"]


def test_a_study_still_running_is_exported_with_a_note(run_dir: Path, exported: dict, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    optuna.copy_study(from_study_name="tiny", from_storage=f"sqlite:///{run_dir / 'study.db'}", to_storage=url)
    copy = optuna.load_study(study_name="tiny", storage=url)
    copy.ask()  # a trial in flight
    first = pareto_trials(copy)[0].number
    copy.set_user_attr(f"test:{first}", None)  # not tested yet
    import fcntl

    with open(tmp_path / ".optimize.lock", "a+") as lock:  # as the optimize running it holds its study
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = export_command("tiny", tmp_path / "out", url)
    assert result["running"] == 1 and not result["abandoned"]
    assert any("1 trial(s) of study 'tiny' are still running" in w for w in result["warnings"])
    assert "1 trial(s) still running" in export_text(result)
    # that optimize tests the Pareto set when it ends: "rerun 'searcher optimize'" (refused as busy) until 2026-12-07
    assert any(f"trial(s) [{first}] have no test-split result" in w and "tests and times the Pareto set when it ends"
               in w for w in result["warnings"]), result["warnings"]
    # the optimize was killed: "still running; export again when they finish" (they never would), until 2026-12-07
    result = export_command("tiny", tmp_path / "out", url)
    assert result["running"] == 1 and result["abandoned"]
    assert any("1 trial(s) of study 'tiny' were left running by an optimize that stopped" in w and "retries them" in w
               for w in result["warnings"])
    assert "1 trial(s) left running by an optimize that stopped" in export_text(result)
    assert any(f"trial(s) [{first}] have no test-split result" in w and "rerun 'searcher optimize'" in w
               for w in result["warnings"]), result["warnings"]


def test_a_journal_trial_whose_owner_is_gone_is_not_still_running(run_dir: Path, exported: dict,
                                                                  tmp_path: Path) -> None:
    """A journal study killed with a trial in flight: "still running; export again when they finish" (it never
    would) until 2026-12-07; its owner process, recorded by the journal storage, is gone."""
    from searcher.study import _OWNER, _this_process, open_storage

    url = f"journal:{tmp_path / 'copy.journal'}"
    storage = open_storage(url)
    optuna.copy_study(from_study_name="tiny", from_storage=f"sqlite:///{run_dir / 'study.db'}", to_storage=storage)
    copy = optuna.load_study(study_name="tiny", storage=storage)
    trial = copy.ask()  # this process owns it: still running
    result = export_command("tiny", tmp_path / "out", url)
    assert result["running"] == 1 and not result["abandoned"]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    storage.set_trial_system_attr(trial._trial_id, _OWNER, {**_this_process(), "pid": dead.pid, "started": None})
    result = export_command("tiny", tmp_path / "out", url)
    assert result["running"] == 1 and result["abandoned"], result
    assert "left running by an optimize that stopped" in export_text(result)


def test_study_may_be_named_by_its_spec_file(tmp_path: Path) -> None:
    """``--study studies/x.yaml`` (as for optimize) names the study and its storage."""
    spec = tmp_path / "x.yaml"
    spec.write_text("name: x\nmodel: fashion-vit\nspace: {}\n")
    assert study_target(str(spec)) == ("x", Path("runs/x"), None)
    spec.write_text("name: x\nmodel: fashion-vit\nspace: {}\nstorage: journal:/data/x.journal\n")
    assert study_target(str(spec), tmp_path) == ("x", tmp_path, "journal:/data/x.journal")
    assert study_target("x", None, "sqlite:///x.db") == ("x", None, "sqlite:///x.db")
    assert study_target("x") == ("x", Path("runs/x"), None)  # optimize's default run directory
    with pytest.raises(ConfigError, match="cannot read study spec"):
        study_target(str(tmp_path / "missing.yaml"))


def test_find_storage_prefers_the_run_directory_files(tmp_path: Path) -> None:
    (tmp_path / "study.db").write_bytes(b"SQLite format 3\0")
    assert find_storage(tmp_path) == f"sqlite:///{tmp_path / 'study.db'}"
    (tmp_path / "study.journal").write_bytes(b"")
    assert find_storage(tmp_path) == f"journal:{tmp_path / 'study.journal'}"
    assert find_storage(tmp_path, "postgresql://u:p@db/s") == "postgresql://u:p@db/s"


def test_cli_export_errors_exit_2_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from searcher.cli import COMMANDS, main

    if "export" not in COMMANDS:
        pytest.skip("'searcher export' is not wired into the CLI yet (searcher.export.export_command)")
    assert main(["export", "--out", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no study in")
    assert not (tmp_path / "nowhere").exists()
    assert issubclass(StorageError, SearcherError)
