"""Bad input, table-driven: every malformed input a user can give ``searcher`` ends with exit code 2 and one
``error:`` line that names the input and the fix, no traceback, and nothing written.

Each case is a command line with placeholders (``{bad}``: the malformed files, written once per session;
``{tiny}``: the tiny study's valid spec; ``{root}``: its data and checkpoint; ``{ws}``: the test's empty working
directory, ``{out}`` a run directory in it), the text that names the input, and the text that names the fix.
Every case runs in-process through :func:`searcher.cli.main` (what the ``searcher`` script calls); the cases in
``SUBPROCESS`` also run as real ``searcher`` processes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
import yaml
from chaos import TINY, run_cli, tiny_spec_dict
from optuna.distributions import FloatDistribution
from PIL import Image
from timm.models.vision_transformer import VisionTransformer

from searcher.cli import main


@dataclass(frozen=True)
class Case:
    id: str
    argv: str  # the command line after ``searcher``, with placeholders
    names: str  # the message names the input: this text (placeholders filled in) appears in it
    fix: str  # ... and says what to do: this text appears in it


CASES = [
    # -- budgets and rates -------------------------------------------------------------------------------------
    Case("budget-bare-number", "optimize --study {tiny} --budget 3.3 --out {out}", "'3.3'", "write"),
    Case("budget-unit-typo", "optimize --study {tiny} --budget 3.3GFLOP --out {out}", "3.3GFLOP", "'3.3GFLOPs'"),
    Case("budget-negative", "optimize --study {tiny} --budget=-1GFLOPs --out {out}", "-1GFLOPs", "write"),
    Case("budget-zero-share", "optimize --study {tiny} --budget 0% --out {out}", "0%", "(0%, 100%)"),
    Case("budget-share-above-100", "optimize --study {tiny} --budget 150% --out {out}", "150%", "(0%, 100%)"),
    Case("budget-nan", "optimize --study {tiny} --budget nanGFLOPs --out {out}", "nanGFLOPs", "write"),
    Case("budget-above-petaflop", "optimize --study {tiny} --budget 2e6GFLOPs --out {out}", "2e6GFLOPs", "write"),
    Case("budget-empty", "optimize --study {tiny} --budget= --out {out}", "budget ''", "write"),
    Case("rate-word", "optimize --study {tiny} --min-throughput fast --out {out}", "'fast'", "1500img/s"),
    Case("rate-zero", "optimize --study {tiny} --min-throughput 0img/s --out {out}", "0img/s", "1500img/s"),
    Case("rate-no-unit", "optimize --study {tiny} --min-throughput 1500 --out {out}", "'1500'", "1500img/s"),
    Case("objectives-unknown", "optimize --study {tiny} --objectives top1,latency --out {out}", "latency", "top1"),
    Case("trials-zero", "optimize --study {tiny} --trials 0 --out {out}", "trials", "at least 1"),
    Case("sampler-unknown", "optimize --study {tiny} --sampler magic --out {out}", "'magic'", "use one of"),
    Case("seed-negative", "optimize --study {tiny} --seed -1 --out {out}", "got -1", "0 to 2**32 - 1"),
    Case("timeout-zero", "optimize --study {tiny} --timeout 0 --out {out}", "timeout", "positive number of seconds"),
    # -- study spec YAML ---------------------------------------------------------------------------------------
    Case("spec-missing-file", "optimize --study {bad}/nope.yaml --out {out}", "{bad}/nope.yaml", "check the path"),
    Case("spec-invalid-yaml", "optimize --study {bad}/invalid.yaml --out {out}",
         "{bad}/invalid.yaml is not valid YAML at line 2, column 6", "fix the YAML syntax"),
    Case("spec-yaml-tab-indent", "optimize --study {bad}/tab.yaml --out {out}",
         "{bad}/tab.yaml is not valid YAML at line 3, column 1", "fix the YAML syntax"),
    Case("spec-not-utf8", "optimize --study {bad}/latin1.yaml --out {out}", "{bad}/latin1.yaml", "save it as UTF-8"),
    Case("spec-not-a-mapping", "optimize --study {bad}/list.yaml --out {out}", "{bad}/list.yaml", "mapping"),
    Case("spec-unknown-key", "optimize --study {bad}/unknown-key.yaml --out {out}", "{bad}/unknown-key.yaml", "bogus"),
    Case("spec-wrong-type", "optimize --study {bad}/trials-word.yaml --out {out}", "{bad}/trials-word.yaml", "int"),
    Case("spec-data-not-a-mapping", "optimize --study {bad}/data-list.yaml --out {out}", "data-list.yaml", "a mapping"),
    Case("spec-missing-model", "optimize --study {bad}/no-model.yaml --out {out}", "no-model.yaml", "'model'"),
    Case("spec-name-with-slash", "optimize --study {bad}/slash-name.yaml --out {out}", "slash-name.yaml", "plain"),
    Case("spec-unknown-data-kind", "optimize --study {bad}/data-kind.yaml --out {out}", "'mnist'", "fashion-mnist"),
    Case("spec-embedded-with-checkpoint", "optimize --study {bad}/embedded-ckpt.yaml --out {out}", "fashion-vit",
         "remove the checkpoint"),
    Case("spec-unknown-model", "optimize --study {bad}/unknown-model.yaml --out {out}", "'resnet-9000'", "use one"),
    # -- search space YAML -------------------------------------------------------------------------------------
    Case("space-invalid-yaml", "optimize --study {bad}/space-invalid.yaml --out {out}",
         "{bad}/space-invalid.space.yaml is not valid YAML at line 2, column 3", "fix the YAML syntax"),
    Case("space-unknown-key", "optimize --study {bad}/space-unknown-key.yaml --out {out}",
         "{bad}/space-unknown-key.space.yaml", "allowed"),
    Case("space-empty-reducers", "optimize --study {bad}/space-empty-reducers.yaml --out {out}",
         "{bad}/space-empty-reducers.space.yaml", "non-empty list"),
    Case("space-unknown-reducer", "optimize --study {bad}/space-unknown-reducer.yaml --out {out}", "'magic'",
         "allowed"),
    Case("space-r-wrong-type", "optimize --study {bad}/space-r-type.yaml --out {out}", "schedule.r.low", "number"),
    Case("space-r-empty-range", "optimize --study {bad}/space-r-empty.yaml --out {out}", "schedule.r",
         "low=8 > high=2"),
    Case("space-empty-arch-choices", "optimize --study {bad}/space-arch-empty.yaml --out {out}",
         "architecture.depth", "non-empty list"),
    Case("space-tau-outside-unit", "optimize --study {bad}/space-tau.yaml --out {out}", "rapid.tau", "[0, 1]"),
    Case("space-switch-beyond-depth", "optimize --study {bad}/space-switch.yaml --out {out}", "rapid.switch",
         "lower rapid.switch.high"),
    Case("space-r-above-tokens", "optimize --study {bad}/space-r-high.yaml --out {out}", "goes up to 100",
         "lower schedule.r.high"),
    Case("space-r-low-above-half", "optimize --study {bad}/space-r-low.yaml --out {out}", "starts at 40",
         "lower schedule.r.low"),
    Case("budget-below-cheapest", "optimize --study {tiny} --budget 1% --out {out}", "budget 1%",
         "raise the budget"),
    # -- schedule JSON -----------------------------------------------------------------------------------------
    Case("schedule-missing-file", "flops --model fashion-vit --schedule {bad}/nope.json", "{bad}/nope.json",
         "pass the path"),
    Case("schedule-not-json", "flops --model fashion-vit --schedule {bad}/not-json.json", "{bad}/not-json.json",
         '"layers": [{{"op": "tome", "r": 8}}'),  # the format itself (it named a file users do not have)
    Case("schedule-wrong-version", "flops --model fashion-vit --schedule {bad}/sched-version.json",
         "{bad}/sched-version.json", "version 1"),
    Case("schedule-wrong-depth", "flops --model fashion-vit --schedule {bad}/sched-depth.json",
         "{bad}/sched-depth.json", "6 blocks"),
    Case("schedule-unknown-op", "flops --model fashion-vit --schedule {bad}/sched-op.json", "{bad}/sched-op.json",
         "known ops"),
    Case("schedule-missing-r", "flops --model fashion-vit --schedule {bad}/sched-no-r.json",
         "{bad}/sched-no-r.json", "needs 'r'"),
    Case("schedule-wrong-depth-evaluate", "evaluate --model fashion-vit --schedule {bad}/sched-depth.json --limit 8",
         "{bad}/sched-depth.json", "6 blocks"),
    # -- exported config JSON (searcher.deploy) ----------------------------------------------------------------
    Case("config-not-json", "evaluate {bad}/not-json.json --limit 8", "{bad}/not-json.json", "searcher export"),
    Case("config-wrong-version", "evaluate {bad}/cfg-version.json --limit 8", "{bad}/cfg-version.json",
         "export the study again"),
    Case("config-wrong-depth", "evaluate {bad}/cfg-depth.json --limit 8", "{bad}/cfg-depth.json",
         "export it again"),
    Case("config-unknown-op", "evaluate {bad}/cfg-op.json --limit 8", "{bad}/cfg-op.json", "known ops"),
    Case("config-of-another-model", "evaluate {bad}/cfg-other-model.json --limit 8", "{bad}/cfg-other-model.json",
         "does not fit fashion-autoformer"),
    Case("config-onto-other-weights", "evaluate {bad}/cfg-tiny.json --checkpoint {bad}/wrong-model.pth --limit 8",
         "{bad}/wrong-model.pth", "pass the file the study used"),
    Case("config-onto-changed-weights", "evaluate {bad}/cfg-tiny-nosha.json --checkpoint {bad}/tiny-reseeded.pth "
         "--limit 8", "{bad}/cfg-tiny-nosha.json", "weights the study used"),
    Case("onnx-config-wrong-version", "onnx {bad}/cfg-version.json {out}.onnx", "{bad}/cfg-version.json",
         "export the study again"),
    Case("onnx-out-unwritable", "onnx {bad}/cfg-tiny.json /dev/null/m.onnx", "/dev/null/m.onnx",
         "not a directory; create the folder, or choose another OUT"),
    # -- data files --------------------------------------------------------------------------------------------
    Case("data-missing-dir", "data --data-dir {bad}/no-such-dir", "{bad}/no-such-dir", "--data-dir"),
    Case("data-missing-file", "data --data-dir {bad}/idx-partial", "{bad}/idx-partial", "reinstall"),
    Case("data-corrupt-file", "data --data-dir {bad}/idx-corrupt", "{bad}/idx-corrupt", "right file"),
    Case("data-truncated-file", "data --data-dir {bad}/idx-truncated", "{bad}/idx-truncated", "reinstall"),
    Case("data-missing-in-study", "optimize --study {bad}/data-missing.yaml --out {out}", "{bad}/no-such-dir",
         "--data-dir"),
    Case("imagefolder-empty", "data --study {bad}/folder-empty.yaml", "{bad}/folder-empty", "ImageNet layout"),
    Case("imagefolder-class-without-images", "data --study {bad}/folder-class-empty.yaml", "{bad}/folder-class-empty",
         "holds no images"),
    Case("imagefolder-corrupt-image", "data --study {bad}/folder-corrupt.yaml", "broken.png", "replace or delete"),
    # -- checkpoints -------------------------------------------------------------------------------------------
    Case("ckpt-missing", "optimize --study {bad}/ckpt-missing.yaml --out {out}", "{bad}/nope.pth", "check the path"),
    Case("ckpt-truncated", "optimize --study {bad}/ckpt-truncated.yaml --out {out}", "{bad}/truncated.pth",
         "complete"),
    Case("ckpt-not-weights", "optimize --study {bad}/ckpt-text.yaml --out {out}", "{bad}/text.pth",
         "is not a PyTorch or safetensors weights file"),
    Case("ckpt-wrong-model", "optimize --study {bad}/ckpt-wrong.yaml --out {out}", "{bad}/wrong-model.pth",
         "another model"),
    Case("ckpt-nan-weights", "optimize --study {bad}/ckpt-nan.yaml --out {out}", "{bad}/nan.pth", "damaged"),
    Case("ckpt-evaluate-truncated",
         "evaluate --model vit_tiny_patch16_224 --checkpoint {bad}/truncated.pth --data-dir {bad}",
         "{bad}/truncated.pth", "complete"),
    Case("autoformer-ckpt-truncated", "flops --model autoformer-t --checkpoint {bad}/af-truncated.pth",
         "{bad}/af-truncated.pth", "download it again"),
    Case("autoformer-ckpt-of-a-vit", "flops --model autoformer-t --checkpoint {bad}/wrong-model.pth",
         "{bad}/wrong-model.pth", "the model it belongs to"),
    Case("autoformer-ckpt-nan", "flops --model autoformer-t --checkpoint {bad}/af-nan.pth", "{bad}/af-nan.pth",
         "another checkpoint"),
    # -- storages ----------------------------------------------------------------------------------------------
    Case("storage-unsupported-scheme", "optimize --study {tiny} --storage redis://127.0.0.1/0 --out {out}",
         "redis://127.0.0.1/0", "use sqlite:///PATH"),
    Case("storage-postgres-unreachable",
         "optimize --study {tiny} --storage postgresql+psycopg://me:s3cret@127.0.0.1:9/db --out {out}",
         "postgresql+psycopg://me:***@127.0.0.1:9/db", "reachable"),
    Case("storage-journal-unwritable", "optimize --study {tiny} --storage journal:/dev/null/j/study.journal "
         "--out {out}", "journal:/dev/null/j/study.journal", "writable"),
    Case("export-storage-missing", "export --storage sqlite:///{ws}/nope.db --out {out}", "{ws}/nope.db",
         "check --storage"),
    Case("export-storage-unreachable", "export --storage postgresql+psycopg://me@127.0.0.1:9/db --out {out}",
         "127.0.0.1:9", "reachable"),
    Case("export-no-study-in-out", "export --out {ws}/empty-run", "{ws}/empty-run", "searcher optimize"),
    Case("optimize-out-configs-is-a-file", "optimize --study {tiny} --out {bad}/run-configs-file",
         "{bad}/run-configs-file/configs", "move it away"),
    Case("report-unknown-study", "report --study nope --storage sqlite:///{bad}/done.db --out {out}", "'nope'",
         "check --study"),
    # -- unwritable --out --------------------------------------------------------------------------------------
    Case("optimize-out-unwritable", "optimize --study {tiny} --out /dev/null/run", "/dev/null/run",
         "writable --out"),
    Case("export-out-unwritable", "export --storage sqlite:///{bad}/done.db --out /dev/null/run", "/dev/null/run",
         "writable --out"),
    Case("report-html-unwritable", "report --storage sqlite:///{bad}/done.db --html /dev/null/r.html",
         "/dev/null/r.html", "writable"),
    Case("train-out-unwritable",
         "train --out /dev/null/train --epochs 1 --limit 64 --batch-size 32 --data-dir {root}/idx",
         "/dev/null/train", "writable --out"),
    Case("train-missing-data", "train --out {out} --epochs 1 --limit 64 --data-dir {bad}/no-such-dir",
         "{bad}/no-such-dir", "--data-dir"),
    Case("train-epochs-zero", "train --out {out} --epochs 0", "epochs", "at least 1"),
    Case("train-lr-negative", "train --out {out} --lr=-1", "lr", "positive"),
    Case("evaluate-timm-without-data-dir", "evaluate --model vit_tiny_patch16_224", "vit_tiny_patch16_224",
         "--data-dir"),
    Case("evaluate-limit-zero", "evaluate --model fashion-vit --limit 0", "--limit", "at least 1"),
]

# also run as real processes: the console script's exit code and stderr, not only main()'s return value
SUBPROCESS = ["budget-unit-typo", "spec-unknown-key", "schedule-wrong-version", "data-truncated-file",
              "ckpt-nan-weights", "storage-postgres-unreachable", "optimize-out-unwritable", "space-invalid-yaml"]


# ------------------------------------------------------------------------------------------- the bad files
def _spec(bad: Path, filename: str, root: Path, **changes) -> None:
    (bad / filename).write_text(yaml.safe_dump(tiny_spec_dict(root, **changes), sort_keys=False))


def _space(bad: Path, name: str, root: Path, space: dict) -> None:
    (bad / f"{name}.space.yaml").write_text(yaml.safe_dump(space))
    _spec(bad, f"{name}.yaml", root, space=f"{name}.space.yaml")


@pytest.fixture(scope="session")
def bad(tiny: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of malformed inputs (and the few valid ones they need), written once."""
    root: Path = tiny.root
    bad = tmp_path_factory.mktemp("bad")
    # study specs
    (bad / "invalid.yaml").write_text("name: [unclosed\nmodel: fashion-vit\n")
    (bad / "tab.yaml").write_text("name: x\nspace:\n\treducers: [tome]\n")
    (bad / "latin1.yaml").write_bytes("name: caf\u00e9\nmodel: fashion-vit\n".encode("latin-1"))
    (bad / "list.yaml").write_text("- name\n- model\n")
    _spec(bad, "unknown-key.yaml", root, bogus=1)
    _spec(bad, "trials-word.yaml", root, trials="ten")
    _spec(bad, "data-list.yaml", root, data=["fashion-mnist"])
    (bad / "no-model.yaml").write_text("name: x\nspace: {}\n")
    _spec(bad, "slash-name.yaml", root, name="a/b")
    _spec(bad, "data-kind.yaml", root, data={"kind": "mnist"})
    _spec(bad, "embedded-ckpt.yaml", root, model="fashion-vit", model_kwargs={})
    _spec(bad, "unknown-model.yaml", root, model="resnet-9000", checkpoint=None, model_kwargs={})
    _spec(bad, "data-missing.yaml", root, data={"kind": "fashion-mnist", "dir": str(bad / "no-such-dir")})
    (bad / "run-configs-file").mkdir()
    (bad / "run-configs-file" / "configs").write_text("the user's, not an export's")
    # search spaces
    ok = {"reducers": ["tome", "rapid"], "schedule": {"r": {"low": 0, "high": 32}}}
    _space(bad, "space-unknown-key", root, {**ok, "reducer": ["tome"]})
    _space(bad, "space-invalid", root, {})
    (bad / "space-invalid.space.yaml").write_text("reducers: [tome]\n  schedule: {r: {low: 0, high: 4}}\n")
    _space(bad, "space-empty-reducers", root, {**ok, "reducers": []})
    _space(bad, "space-unknown-reducer", root, {**ok, "reducers": ["tome", "magic"]})
    _space(bad, "space-r-type", root, {**ok, "schedule": {"r": {"low": "a", "high": 4}}})
    _space(bad, "space-r-empty", root, {**ok, "schedule": {"r": {"low": 8, "high": 2}}})
    _space(bad, "space-arch-empty", root, {**ok, "architecture": {"embed_dim": [32], "depth": [],
                                                                  "num_heads": [2], "mlp_ratio": [4.0]}})
    _space(bad, "space-tau", root, {**ok, "rapid": {"tau": {"low": 0.5, "high": 1.5}}})
    _space(bad, "space-switch", root, {**ok, "rapid": {"switch": {"low": 1, "high": 9}}})
    _space(bad, "space-r-high", root, {**ok, "schedule": {"r": {"low": 0, "high": 100}}})
    _space(bad, "space-r-low", root, {**ok, "schedule": {"parametrisation": "per-block", "r": {"low": 40, "high": 64}}})
    # schedules (fashion-vit has 6 blocks)
    layers = [{"op": "tome", "r": 4}] * 6
    (bad / "not-json.json").write_text("{'version': 1,")
    (bad / "sched-version.json").write_text(json.dumps({"version": 99, "layers": layers}))
    (bad / "sched-depth.json").write_text(json.dumps({"version": 1, "layers": layers[:3]}))
    (bad / "sched-op.json").write_text(json.dumps({"version": 1, "layers": [{"op": "magic", "r": 4}, *layers[1:]]}))
    (bad / "sched-no-r.json").write_text(json.dumps({"version": 1, "layers": [{"op": "tome"}, *layers[1:]]}))
    # exported configs
    from searcher.deploy import config_for
    from searcher.schedule import Schedule

    vit = config_for("fashion-vit", Schedule.recipe("tome", 6, 4))
    (bad / "cfg-version.json").write_text(json.dumps({**vit, "version": 2}))
    (bad / "cfg-depth.json").write_text(json.dumps({**vit, "schedule": {**vit["schedule"],
                                                                         "layers": vit["schedule"]["layers"][:3]}}))
    op = json.loads(json.dumps(vit))
    op["schedule"]["layers"][2]["op"] = "magic"
    (bad / "cfg-op.json").write_text(json.dumps(op))
    other = json.loads(json.dumps(vit))
    other["model"] = {"name": "fashion-autoformer", "family": "autoformer"}
    (bad / "cfg-other-model.json").write_text(json.dumps(other))
    tiny_cfg = config_for("vit_tiny_patch16_224", Schedule.recipe("tome", 4, 4), checkpoint=str(root / "tiny.pth"),
                          kwargs=TINY, data={"kind": "fashion-mnist", "dir": str(root / "idx")})
    (bad / "cfg-tiny.json").write_text(json.dumps(tiny_cfg))
    (bad / "cfg-tiny-nosha.json").write_text(json.dumps({**tiny_cfg, "model": {
        k: v for k, v in tiny_cfg["model"].items() if k != "sha256"}}))
    torch.manual_seed(1)
    torch.save(VisionTransformer(**TINY).state_dict(), bad / "tiny-reseeded.pth")
    # data files
    good = root / "idx"
    for name in ("idx-partial", "idx-corrupt", "idx-truncated"):
        shutil.copytree(good, bad / name)
    (bad / "idx-partial" / "t10k-labels-idx1-ubyte").unlink()
    raw = (good / "train-images-idx3-ubyte").read_bytes()
    (bad / "idx-corrupt" / "train-images-idx3-ubyte").write_bytes(b"\x01\x02" + raw[2:])
    (bad / "idx-truncated" / "train-images-idx3-ubyte").write_bytes(raw[: len(raw) // 3])
    # image folders
    (bad / "folder-empty").mkdir()
    for name in ("folder-class-empty", "folder-corrupt"):
        for cls in ("ant", "bee"):
            (bad / name / cls).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (20, 20), (40 * i, 80, 120)).save(bad / name / cls / f"{i}.png")
    for f in (bad / "folder-class-empty" / "bee").iterdir():
        f.unlink()
    (bad / "folder-corrupt" / "bee" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    dc = {"input_size": [3, 16, 16], "crop_pct": 1.0}
    for name in ("folder-empty", "folder-class-empty", "folder-corrupt"):
        _spec(bad, f"{name}.yaml", root, data={"kind": "imagefolder", "model": dc,
                                              "search": str(bad / name), "test": str(bad / name)})
    # checkpoints
    good_ckpt = (root / "tiny.pth").read_bytes()
    (bad / "truncated.pth").write_bytes(good_ckpt[: len(good_ckpt) // 2])
    (bad / "text.pth").write_text("these are not weights\n")
    torch.save(VisionTransformer(**{**TINY, "embed_dim": 48}).state_dict(), bad / "wrong-model.pth")
    sd = VisionTransformer(**TINY).state_dict()
    sd["blocks.1.mlp.fc1.weight"][0, 0] = float("nan")
    torch.save(sd, bad / "nan.pth")
    for name, ckpt in (("missing", "nope"), ("truncated", "truncated"), ("text", "text"), ("wrong", "wrong-model"),
                       ("nan", "nan")):
        _spec(bad, f"ckpt-{name}.yaml", root, checkpoint=str(bad / f"{ckpt}.pth"))
    from searcher.models.autoformer import create_supernet

    af = create_supernet("autoformer-t").state_dict()
    af["blocks.0.fc1.weight"][0, 0] = float("nan")
    torch.save({"model": af, "epoch": 1, "args": argparse.Namespace(gp=True)}, bad / "af-nan.pth")
    raw = (bad / "af-nan.pth").read_bytes()
    (bad / "af-truncated.pth").write_bytes(raw[: len(raw) // 2])
    # a finished study, for export and report
    study = optuna.create_study(study_name="done", storage=f"sqlite:///{bad / 'done.db'}",
                                directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(
        params={"w0": 0.5}, distributions={"w0": FloatDistribution(0, 1)}, values=[50.0, 0.002],
        user_attrs={"top1": 50.0, "gflops": 0.002, "feasible": True,
                    "candidate": {"reducer": "none", "schedule": {"version": 1, "layers": [{"op": "none"}] * 4}}}))
    return bad


# ------------------------------------------------------------------------------------------------- checks
def _fill(text: str, bad: Path, tiny: SimpleNamespace, ws: Path) -> str:
    return text.format(bad=bad, tiny=tiny.spec, root=tiny.root, ws=ws, out=ws / "out")


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under ``roots``: (size, mtime_ns) — to prove nothing was written or changed."""
    seen = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                st = p.lstat()
                seen[str(p)] = (st.st_size if name in filenames else 0, st.st_mtime_ns)
    return seen


def _check_error(case: Case, rc: int, err: str, bad: Path, tiny: SimpleNamespace, ws: Path) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, f"{case.id}: exit code {rc}\n{err}"
    assert "Traceback" not in err, f"{case.id}: traceback\n{err}"
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, f"{case.id}: expected one 'error:' line\n{err}"
    assert lines == errors, f"{case.id}: more than the error line on stderr\n{err}"
    names, fix = _fill(case.names, bad, tiny, ws), _fill(case.fix, bad, tiny, ws)
    assert names in errors[0], f"{case.id}: the message does not name the input {names!r}\n{errors[0]}"
    assert fix in errors[0], f"{case.id}: the message does not give the fix {fix!r}\n{errors[0]}"
    assert "s3cret" not in err


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_error_and_writes_nothing(
    case: Case, bad: Path, tiny: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], searcher_cache: Path,
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.chdir(ws)
    watched = (ws, bad, tiny.root)
    before = _snapshot(*watched)
    cache_before = set(os.listdir(searcher_cache))
    capsys.readouterr()
    rc = main(_fill(case.argv, bad, tiny, ws).split())
    out, err = capsys.readouterr()
    _check_error(case, rc, err, bad, tiny, ws)
    assert not out.strip(), f"{case.id}: printed on stdout\n{out}"
    assert _snapshot(*watched) == before, f"{case.id}: files were written or changed"
    # the cache may gain the preprocessed tensors of valid data read before the mistake, never a temporary file
    assert not [f for f in set(os.listdir(searcher_cache)) - cache_before if f.endswith(".tmp")]


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)
    assert set(SUBPROCESS) <= {c.id for c in CASES}


@pytest.mark.parametrize("case", [c for c in CASES if c.id in SUBPROCESS], ids=SUBPROCESS)
def test_bad_input_as_a_real_process(case: Case, bad: Path, tiny: SimpleNamespace, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    before = _snapshot(ws, bad, tiny.root)
    proc = run_cli(_fill(case.argv, bad, tiny, ws).split(), cwd=ws)
    _check_error(case, proc.returncode, proc.stderr, bad, tiny, ws)
    assert not proc.stdout.strip()
    assert _snapshot(ws, bad, tiny.root) == before


def test_library_errors_are_one_family(bad: Path, tiny: SimpleNamespace) -> None:
    """The same mistakes through the library raise :class:`SearcherError` subclasses (what the CLI prints)."""
    from searcher.data import load_splits
    from searcher.errors import CheckpointError, ConfigError, DataError, StorageError
    from searcher.models import read_state_dict
    from searcher.models.autoformer_checkpoint import read_checkpoint
    from searcher.schedule import Schedule
    from searcher.space import SearchSpace
    from searcher.study import StudySpec, open_storage
    from searcher.units import parse_budget, parse_rate

    for text in ("3.3", "3.3GFLOP", "0%", "nanGFLOPs", ""):
        with pytest.raises(ConfigError):
            parse_budget(text)
    with pytest.raises(ConfigError):
        parse_rate("fast")
    with pytest.raises(ConfigError, match="unknown-key.yaml"):
        StudySpec.from_yaml(bad / "unknown-key.yaml")
    with pytest.raises(ConfigError, match="space-empty-reducers"):
        SearchSpace.from_yaml(bad / "space-empty-reducers.space.yaml")
    with pytest.raises(ConfigError, match="unsupported schedule version"):
        Schedule.from_dict(json.loads((bad / "sched-version.json").read_text()))
    with pytest.raises(DataError):
        load_splits({"kind": "fashion-mnist", "dir": str(bad / "idx-truncated")})
    with pytest.raises(CheckpointError):
        read_state_dict(str(bad / "truncated.pth"))
    with pytest.raises(CheckpointError):
        read_checkpoint(bad / "af-truncated.pth")
    with pytest.raises(StorageError):
        open_storage("postgresql+psycopg://me@127.0.0.1:9/db")
