"""Hostile files: a checkpoint, config or YAML from elsewhere can neither run code nor write outside ``--out``.

Every hostile pickle here would run ``touch MARKER`` through ``os.system`` if it were unpickled (the test proves
that first, with ``weights_only=False``); each loader must refuse it with a one-line error while the marker
stays absent. YAML documents with Python tags (``!!python/object/apply:os.system``) must be refused by the safe
loader. Names recorded in a study (model, reducer) cannot steer export's file names out of ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
import yaml
from chaos import TINY, run_cli, tiny_spec_dict
from optuna.distributions import FloatDistribution
from timm.models.vision_transformer import VisionTransformer

from searcher.cli import main
from searcher.errors import CheckpointError

SEARCHER = Path(__file__).resolve().parents[2] / "searcher"


class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


@pytest.fixture
def hostile(tmp_path: Path, marker: Path) -> dict[str, Path]:
    """Hostile checkpoints in every container torch.load reads, including payloads hidden next to real weights
    and inside the one class the AutoFormer loader allows (``argparse.Namespace``)."""
    d = tmp_path / "hostile"
    d.mkdir()
    sd = VisionTransformer(**TINY).state_dict()
    files = {
        "zip": ({"model": Payload(marker)}, {}),
        "legacy": (Payload(marker), {"_use_new_zipfile_serialization": False}),
        "beside-weights": ({"model": sd, "optimizer": Payload(marker)}, {}),
        "in-namespace": ({"model": sd, "args": argparse.Namespace(gp=True, hook=Payload(marker))}, {}),
    }
    out = {}
    for name, (obj, kwargs) in files.items():
        out[name] = d / f"{name}.pth"
        torch.save(obj, out[name], **kwargs)
    out["raw-pickle"] = d / "raw-pickle.pth"
    out["raw-pickle"].write_bytes(pickle.dumps(Payload(marker)))
    return out


def test_the_payloads_are_live(hostile: dict[str, Path], marker: Path) -> None:
    """The files really run the command when unpickled without restrictions (so the other tests mean something)."""
    for path in hostile.values():
        marker.unlink(missing_ok=True)
        if path.name == "raw-pickle.pth":
            pickle.loads(path.read_bytes())  # noqa: S301 (the point of the test)
        else:
            torch.load(path, weights_only=False)
        assert marker.exists(), path
    marker.unlink()


def _loaders(tiny: SimpleNamespace) -> dict[str, Callable[[Path], object]]:
    from searcher.models import ModelSource, read_state_dict
    from searcher.models.autoformer import load_checkpoint
    from searcher.models.autoformer_checkpoint import read_checkpoint

    return {
        "read_state_dict": lambda p: read_state_dict(str(p)),
        "timm-model-source": lambda p: ModelSource.open("vit_tiny_patch16_224", str(p), model_kwargs=TINY),
        "autoformer-read_checkpoint": read_checkpoint,
        "autoformer-load_checkpoint": lambda p: load_checkpoint(p, "autoformer-t"),
    }


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, about the raw pickle.dumps payload
@pytest.mark.parametrize("loader", ["read_state_dict", "timm-model-source", "autoformer-read_checkpoint",
                                    "autoformer-load_checkpoint"])
def test_checkpoint_loaders_never_unpickle_code(
    loader: str, hostile: dict[str, Path], marker: Path, tiny: SimpleNamespace
) -> None:
    load = _loaders(tiny)[loader]
    for name, path in hostile.items():
        with pytest.raises(CheckpointError) as e:
            load(path)
        assert str(path) in str(e.value), name
        assert not marker.exists(), f"{loader} ran the payload of {name}"


@pytest.mark.parametrize(
    "argv",
    [
        "evaluate --model vit_tiny_patch16_224 --checkpoint {evil}",
        "flops --model autoformer-t --checkpoint {evil}",
        "flops --model vit_tiny_patch16_224 --checkpoint {evil}",
        "optimize --study {spec} --out {ws}/run",
    ],
    ids=["evaluate", "flops-autoformer", "flops-timm", "optimize"],
)
def test_cli_refuses_hostile_checkpoints(
    argv: str, hostile: dict[str, Path], marker: Path, tiny: SimpleNamespace, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("zip", "beside-weights", "in-namespace"):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(yaml.safe_dump(tiny_spec_dict(tiny.root, checkpoint=str(hostile[name]))))
        rc = main(argv.format(evil=hostile[name], spec=spec, ws=tmp_path).split())
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert not marker.exists()
        assert not (tmp_path / "run").exists()


def test_train_refuses_a_hostile_resume_checkpoint(
    hostile: dict[str, Path], marker: Path, tiny: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``searcher train`` resumes from ``OUT/checkpoint.pt``: a planted (or damaged) file is refused."""
    out = tmp_path / "train"
    out.mkdir()
    for name in ("zip", "beside-weights"):
        (out / "checkpoint.pt").write_bytes(hostile[name].read_bytes())
        rc = main(["train", "--out", str(out), "--epochs", "1", "--limit", "64", "--batch-size", "32",
                   "--data-dir", str(tiny.root / "idx")])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error: ") and "checkpoint.pt" in err and err.count("\n") == 1, err
        assert not marker.exists()


def test_a_config_cannot_smuggle_a_pickle_through_its_checkpoint(
    hostile: dict[str, Path], marker: Path, tiny: SimpleNamespace, tmp_path: Path
) -> None:
    """A config from elsewhere may name a hostile checkpoint with its correct sha256: still no code runs."""
    from searcher.deploy import load_config
    from searcher.schedule import Schedule

    for name in ("zip", "beside-weights"):
        evil = hostile[name]
        config = {
            "version": 1,
            "model": {"name": "vit_tiny_patch16_224", "family": "timm-vit", "checkpoint": str(evil),
                      "sha256": hashlib.sha256(evil.read_bytes()).hexdigest(), "kwargs": TINY},
            "reducer": "tome",
            "arch": None,
            "schedule": Schedule.recipe("tome", 4, 2).to_dict(),
        }
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config))
        with pytest.raises(CheckpointError):
            load_config(path)
        assert not marker.exists()


def test_every_torch_load_in_searcher_is_weights_only() -> None:
    """A static guard for code added later: ``torch.load`` always with ``weights_only=True``; no pickle, marshal,
    ``np.load(allow_pickle=True)``, unsafe YAML loaders, ``eval`` or ``exec`` of file contents."""
    calls, problems = 0, []
    for path in SEARCHER.rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            call = text[m.start(): text.find(")", m.end()) + 1]
            calls += 1
            if "weights_only=True" not in call:
                problems.append(f"{path.name}: {call}")
        for pattern in (r"\bpickle\.loads?\(", r"\bmarshal\.loads?\(", r"allow_pickle\s*=\s*True", r"yaml\.load\(",
                        r"yaml\.unsafe_load", r"yaml\.(Full|Unsafe)?Loader\b", r"(?<![.\w])eval\(", r"\bexec\(",
                        r"torch\.jit\.load\(", r"joblib\.load\("):
            problems += [f"{path.name}: {m.group(0)}" for m in re.finditer(pattern, text)]
    assert calls >= 3, "expected torch.load calls in the checkpoint readers and train"
    assert not problems, problems


YAML_ATTACKS = [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
]


@pytest.mark.parametrize("where", ["spec", "space", "data"])
@pytest.mark.parametrize("attack", YAML_ATTACKS, ids=["apply", "new", "name"])
def test_yaml_goes_through_the_safe_loader(
    where: str, attack: str, marker: Path, tiny: SimpleNamespace, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload = attack.format(marker=marker)
    spec = tiny_spec_dict(tiny.root)
    if where == "space":
        (tmp_path / "space.yaml").write_text(f"reducers: [tome]\nschedule: {payload}\n")
        spec["space"] = str(tmp_path / "space.yaml")
    text = yaml.safe_dump(spec, sort_keys=False)
    if where == "spec":
        text += f"seed: {payload}\n"
    if where == "data":
        text = text.replace("data:\n", f"data: {payload}\nold_data:\n")
    (tmp_path / "s.yaml").write_text(text)
    commands = [["optimize", "--study", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run")]]
    if where != "space":  # these read the spec, not the space
        commands += [["data", "--study", str(tmp_path / "s.yaml")],
                     ["export", "--study", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run")]]
    for argv in commands:
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, (argv, err)
        assert not marker.exists()
        assert not (tmp_path / "run").exists()


def test_a_hostile_yaml_spec_in_a_real_process(marker: Path, tiny: SimpleNamespace, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(f"name: x\nmodel: !!python/object/apply:os.system ['touch {marker}']\n")
    proc = run_cli(["optimize", "--study", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run")], cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: "), proc.stderr
    assert "s.yaml" in proc.stderr and "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_names_recorded_in_a_study_cannot_write_outside_out(tmp_path: Path) -> None:
    """A study from elsewhere whose model name and reducer are paths: export keeps every file under --out."""
    from searcher.export import export_study

    outside = tmp_path / "outside"
    url = f"sqlite:///{tmp_path / 'evil.db'}"
    study = optuna.create_study(study_name="evil", storage=url, directions=["maximize", "minimize"])
    study.set_user_attr("model_source", {"name": f"../../{outside.name}/x", "family": "timm-vit"})
    for i, reducer in enumerate([f"../../../{outside.name}/y", "/etc/z", "..", "a/../../b"]):
        study.add_trial(optuna.trial.create_trial(
            params={"w0": i / 10}, distributions={"w0": FloatDistribution(0, 1)}, values=[50.0 + i, 0.01 * (i + 1)],
            user_attrs={"top1": 50.0 + i, "gflops": 0.01 * (i + 1), "feasible": True,
                        "candidate": {"reducer": reducer, "schedule": {"version": 1, "layers": [{"op": "none"}]}}}))
    out = tmp_path / "run" / "inner"
    before = {p for p in tmp_path.rglob("*") if "run" not in p.parts}
    result = export_study(study, out, check=False)
    assert len(result.files) == 6  # 4 configs + trials.csv + pareto.csv
    for f in result.files:
        assert f.resolve().is_relative_to(out.resolve()), f
    assert {p for p in tmp_path.rglob("*") if "run" not in p.parts} == before
    assert sorted(p.name for p in (out / "configs").iterdir()) == sorted(Path(f).name for f in result.files[:4])


def test_onnx_writes_only_its_out_file(tiny: SimpleNamespace, tmp_path: Path) -> None:
    """``searcher onnx CONFIG OUT``: whatever paths a config holds (data directory, checkpoint, provenance),
    the only file written is OUT."""
    pytest.importorskip("onnxruntime")
    from searcher.deploy import config_for
    from searcher.schedule import Schedule

    config = config_for("vit_tiny_patch16_224", Schedule.recipe("tome", 4, 4), checkpoint=str(tiny.root / "tiny.pth"),
                        kwargs=TINY, reducer="../../../escaped", data={"kind": "fashion-mnist",
                                                                       "dir": str(tiny.root / "idx")})
    config["provenance"]["command"] = "searcher export --out ../../escaped"
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "config.json").write_text(json.dumps(config))
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    tiny_before = {p: p.stat().st_mtime_ns for p in tiny.root.rglob("*")}
    rc = main(["onnx", str(work / "config.json"), str(work / "out" / "m.onnx"), "--images", "8"])
    assert rc == 2  # OUT's directory does not exist: refused before anything is written
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
    (work / "out").mkdir()
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert main(["onnx", str(work / "config.json"), str(work / "out" / "m.onnx"), "--images", "8"]) == 0
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert set(after) - set(before) == {work / "out" / "m.onnx"}
    assert all(after[p] == t for p, t in before.items() if p != work / "out")
    assert {p: p.stat().st_mtime_ns for p in tiny.root.rglob("*")} == tiny_before
