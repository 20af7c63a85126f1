"""``searcher.load_config`` (deploy): a config back to the accelerated model, and every way a config can be wrong
for the weights or the model it is loaded onto — each a clear :class:`~searcher.errors.SearcherError` (exit code 2
in the CLI), never a silently different network.

The round trip of a config written by ``searcher export`` for a real study is in ``tests/test_export.py``.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

import searcher
from searcher.cli import main
from searcher.cost.flops import flops
from searcher.deploy import CONFIG_VERSION, check_input, config_data, config_for, load_config, read_config
from searcher.errors import CheckpointError, ConfigError, SearcherError
from searcher.models.autoformer_space import get_subnet
from searcher.patch import is_patched
from searcher.schedule import Schedule

TINY = dict(img_size=32, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=4, num_heads=2)
SUBNET = {"embed_dim": 96, "depth": 5, "mlp_ratio": [2.0, 3.0, 4.0, 3.0, 2.0], "num_heads": [2, 3, 4, 3, 2]}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deploy")


def _tiny_weights(path: Path, seed: int, **changes: Any) -> Path:
    torch.manual_seed(seed)
    torch.save(VisionTransformer(**{**TINY, **changes}).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def configs(root: Path) -> dict[str, dict[str, Any]]:
    """Configs of the embedded ViT (RAPID), an embedded AutoFormer subnet (ToMe, anchored positions) and a timm
    ViT from a local checkpoint (ToFu), as :func:`searcher.deploy.config_for` writes them."""
    ckpt = _tiny_weights(root / "tiny.pth", 0)
    return {
        "fashion-vit": config_for("fashion-vit", Schedule.recipe("rapid", 6, 8)),
        "fashion-autoformer": config_for("fashion-autoformer", Schedule.recipe("tome", 5, 8), SUBNET),
        "timm": config_for("vit_tiny_patch16_224", Schedule.recipe("tofu", 4, 10), checkpoint=str(ckpt), kwargs=TINY),
    }


def _write(path: Path, config: Any) -> Path:
    path.write_text(json.dumps(config))
    return path


def test_config_for_records_a_local_checkpoint_absolute(root: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """As a study does: a relative path broke the config in another directory, and a Path was a JSON TypeError
    (until 2026-12-07)."""
    ckpt = _tiny_weights(tmp_path / "w.pth", 0)
    monkeypatch.chdir(tmp_path)
    for given in ("w.pth", Path("w.pth")):
        cfg = config_for("vit_tiny_patch16_224", Schedule.recipe("tome", 4, 4), checkpoint=given, kwargs=TINY)
        assert cfg["model"]["checkpoint"] == str(ckpt)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    load_config(json.loads(json.dumps(cfg)))


# ------------------------------------------------------------------------------------------------ round trip
@pytest.mark.parametrize("name", ["fashion-vit", "fashion-autoformer", "timm"])
def test_load_config_rebuilds_the_recorded_model(name: str, configs: dict, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    cfg = configs[name]
    assert cfg["version"] == CONFIG_VERSION and len(cfg["model"]["sha256"]) == 64
    path = _write(tmp_path / "c.json", cfg)
    assert read_config(path) == cfg
    model = searcher.load_config(path)
    assert "metrics" not in caplog.text  # its GFLOPs and tokens are its network's
    assert not model.training and is_patched(model)
    with torch.inference_mode():
        logits = model(check_input(cfg["check"]["input"]))
    torch.testing.assert_close(logits, torch.tensor(cfg["check"]["logits"]), atol=1e-4, rtol=0)
    assert flops(model) == pytest.approx(cfg["metrics"]["gflops"], rel=1e-9)
    assert cfg["metrics"]["gflops"] < cfg["metrics"]["full_gflops"]


def test_edited_metrics_are_named(configs: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """GFLOPs or token counts edited in a config passed load_config, evaluate and onnx without a word (until
    2026-12-07); they are named, and the network stays the schedule's."""
    cfg = copy.deepcopy(configs["fashion-vit"])
    cfg["metrics"].update(gflops=123.0, tokens=[65, 1, 1, 1, 1, 1, 1])
    path = _write(tmp_path / "c.json", cfg)
    searcher.load_config(path)
    assert f"{path} records 123.0 GFLOPs where its network has" in caplog.text
    assert "and tokens [65, 1, 1, 1, 1, 1, 1] where its network keeps [65, " in caplog.text


def test_the_autoformer_config_is_its_subnet_with_anchored_positions(configs: dict, tmp_path: Path) -> None:
    model = load_config(_write(tmp_path / "c.json", configs["fashion-autoformer"]))
    assert type(model).__name__ == "AutoFormerSubnet" and len(model.blocks) == 5  # type: ignore[arg-type]
    assert [blk.attn.num_heads for blk in model.blocks] == SUBNET["num_heads"]  # type: ignore[union-attr]
    assert searcher.patch.token_state(model).schedule.positions == "anchored"
    with pytest.raises(ConfigError, match="load_config takes a config file or a config mapping, got list"):
        load_config([1, 2])  # type: ignore[arg-type]  # was a TypeError from pathlib
    with pytest.raises(ConfigError, match=r"weights must be the path \(or URL\) of a weights file, got dict"):
        load_config(configs["fashion-autoformer"], weights={"cls_token": 0})  # type: ignore[arg-type]  # an OSError


# ---------------------------------------------------------------------------------------------- bad configs
def _mutate(config: dict, change: Any) -> dict:
    config = copy.deepcopy(config)
    change(config)
    return config


BAD = {
    "version 2": (lambda c: c.update(version=2), "config version 2, but this searcher reads version 1"),
    "version '1'": (lambda c: c.update(version="1"), "'version' must be the number 1, not the string '1'"),
    "no version": (lambda c: c.pop("version"), "has no 'version'"),
    "unknown field": (lambda c: c.update(colour="red"), "unknown field(s) ['colour'] in the config"),
    "unknown model field": (lambda c: c["model"].update(url="x"), "unknown field(s) ['url'] in 'model'"),
    "no model": (lambda c: c.pop("model"), "is missing 'model'"),
    "unknown op": (lambda c: c["schedule"]["layers"][0].update(op="magic"), "unknown op 'magic'"),
    "wrong depth": (lambda c: c["schedule"]["layers"].pop(), "the schedule has 5 layers but fashion-vit has 6 blocks"),
    "bad sha256": (lambda c: c["model"].update(sha256="abc"), "sha256 must be 64 hex digits"),
    "bad check": (lambda c: c["check"].pop("logits"), "'check' needs 'input' and 'logits'"),
    # silently ignored until 2026-12-07
    "wrong family": (lambda c: c["model"].update(family="autoformer"),
                     "model.family is 'autoformer', but fashion-vit is 'timm-vit'"),
    "arch on a ViT": (lambda c: c.update(arch=SUBNET), "an 'arch' (an AutoFormer subnet) on fashion-vit"),
    # the label of a RAPID schedule edited into ToMe: unchecked until 2026-12-08 (a label of one's own is not checked)
    "reducer relabelled": (lambda c: c.update(reducer="tome"),
                           "'reducer' is 'tome' but the schedule uses ['rapid-merge', 'rapid-prune']"),
    # each a TypeError or ValueError traceback (from torch, pathlib or dict) until 2026-12-07
    "ragged logits": (lambda c: c["check"]["logits"][1].pop(), "check.logits must be 2 rows of as many numbers"),
    "text logits": (lambda c: c["check"]["logits"][0].__setitem__(0, "a"), "check.logits must be 2 rows"),
    "logits of 1 image": (lambda c: c["check"]["logits"].pop(), "check.logits must be 2 rows"),
    "shape 5": (lambda c: c["check"]["input"].update(shape=5), "check.input must be {'kind': 'randn'"),
    "shape of text": (lambda c: c["check"]["input"].update(shape=["a", 1, 32, 32]), "check.input must be"),
    "seed of text": (lambda c: c["check"]["input"].update(seed="x"), "check.input must be"),
    "atol of text": (lambda c: c["check"].update(atol="x"), "check.atol must be a tolerance of at least 0, got 'x'"),
    "negative atol": (lambda c: c["check"].update(atol=-1), "check.atol must be a tolerance of at least 0, got -1"),
    "data of text": (lambda c: c["metrics"].update(data="fashion-mnist"), "metrics.data must be a JSON object"),
    "checkpoint 5": (lambda c: c["model"].update(checkpoint=5), "model.checkpoint must be a path or URL, got 5"),
    # its schedule alone: "unknown field(s) ['layers', …] in the config" until 2026-12-07
    "a schedule": (lambda c: (schedule := c["schedule"], c.clear(), c.update(schedule)),
                   "is a schedule, not a config (no model): evaluate it with 'searcher evaluate --model NAME"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_configs_are_clear_errors(
    case: str, configs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    change, message = BAD[case]
    path = _write(tmp_path / "bad.json", _mutate(configs["fashion-vit"], change))
    with pytest.raises(ConfigError) as info:
        read_config(path)
    assert message in str(info.value) and str(path) in str(info.value)
    with pytest.raises(ConfigError):
        load_config(path)
    assert main(["evaluate", str(path)]) == 2  # the CLI: one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_unreadable_configs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_config(tmp_path / "missing.json")
    (tmp_path / "half.json").write_text('{"version": 1, "model": ')
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_config(tmp_path / "half.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        read_config(tmp_path / "list.json")



def test_an_edited_check_input_shape_is_a_clear_error(
    configs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The check logits are recomputed on the recorded input: of another image size, one line (it was timm's
    AssertionError traceback until 2026-12-07)."""
    path = _write(tmp_path / "c.json", _mutate(configs["fashion-vit"],
                                               lambda c: c["check"]["input"].update(shape=[2, 1, 64, 64])))
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "the check input is images of (1, 64, 64), but fashion-vit takes (1, 32, 32)" in err
    assert err.count("\n") == 1


# ------------------------------------------------------------------------------------ weights and other models
def test_changed_embedded_weights_are_a_sha256_error(configs: dict, tmp_path: Path) -> None:
    path = _write(tmp_path / "c.json", _mutate(configs["fashion-vit"], lambda c: c["model"].update(sha256="0" * 64)))
    with pytest.raises(CheckpointError, match="shipped weights of fashion-vit .* not the ones the config was made"):
        load_config(path)
    with pytest.raises(ConfigError, match="ships its own weights"):
        load_config(_write(tmp_path / "ok.json", configs["fashion-vit"]), weights="other.pth")


def test_other_weights_are_a_sha256_error(configs: dict, root: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "c.json", configs["timm"])
    other = _tiny_weights(tmp_path / "other.pth", 1)
    with pytest.raises(CheckpointError, match=r"sha256 .* but the study used weights with sha256"):
        load_config(path, weights=str(other))
    with pytest.raises(CheckpointError, match="do not exist"):
        load_config(path, weights=str(tmp_path / "missing.pth"))
    moved = _mutate(configs["timm"], lambda c: c["model"].update(checkpoint=str(other)))  # the file was replaced
    with pytest.raises(CheckpointError, match="sha256"):
        load_config(_write(tmp_path / "moved.json", moved))
    assert load_config(path, weights=str(root / "tiny.pth"))  # the right file at another path is fine


def test_a_config_on_a_different_model_is_an_error(configs: dict, tmp_path: Path) -> None:
    # The check logits catch weights nobody recorded a sha256 for (pretrained hub weights, say).
    unhashed = _mutate(configs["timm"], lambda c: c["model"].pop("sha256"))
    path = _write(tmp_path / "c.json", unhashed)
    other = _tiny_weights(tmp_path / "other.pth", 1)
    with pytest.raises(CheckpointError, match="does not compute the recorded check logits"):
        load_config(path, weights=str(other))
    assert is_patched(load_config(path, weights=str(other), verify=False))  # on purpose: allowed
    # weights of another architecture
    wider = _tiny_weights(tmp_path / "wider.pth", 0, embed_dim=48)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        load_config(path, weights=str(wider))
    # the embedded ViT's config named as the embedded AutoFormer (7 blocks in its largest subnet)
    renamed = _mutate(configs["fashion-vit"], lambda c: c["model"].update(name="fashion-autoformer", sha256=None))
    with pytest.raises(ConfigError, match="model.family is 'timm-vit', but fashion-autoformer is 'autoformer'"):
        load_config(_write(tmp_path / "renamed.json", renamed))
    renamed["model"].pop("family")
    with pytest.raises(ConfigError, match="does not fit fashion-autoformer: the schedule has 6 layers"):
        load_config(_write(tmp_path / "renamed.json", renamed))
    # a timm config whose model arguments changed
    deeper = _mutate(configs["timm"], lambda c: c["model"]["kwargs"].update(depth=6))
    with pytest.raises(ConfigError, match="the schedule has 4 layers but vit_tiny_patch16_224 has 6 blocks"):
        load_config(_write(tmp_path / "deeper.json", deeper))


def test_an_autoformer_config_needs_its_checkpoint(tmp_path: Path) -> None:
    subnet = get_subnet("autoformer-t").to_dict()
    config = {
        "version": 1,
        "model": {"name": "autoformer-t", "family": "autoformer", "arch": subnet},
        "schedule": Schedule.recipe("tome", subnet["depth"], 4).to_dict(),
    }
    with pytest.raises(CheckpointError, match="autoformer-t needs its checkpoint"):
        load_config(_write(tmp_path / "c.json", config))
    with pytest.raises(SearcherError, match="does not exist"):
        load_config(_write(tmp_path / "c.json", config), weights=str(tmp_path / "supernet-tiny.pth"))


# ---------------------------------------------------------------------------------------------------- the CLI
def test_cli_evaluate_config(
    configs: dict, tmp_path: Path, real_fashion_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "c.json", configs["fashion-vit"])
    argv = ["evaluate", str(path), "--split", "test", "--limit", "256", "--data-dir", str(real_fashion_dir)]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["split"] == "test" and result["images"] == 256 and 60 < result["top1"] <= result["top5"]
    assert main(["evaluate", str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.startswith("error: config")


def test_cli_evaluates_a_timm_model_on_an_imagenet_layout_folder(
    tmp_path: Path, tiny_imagefolder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``evaluate --model`` with a timm model reads an ImageNet-layout ``--data-dir`` with the model's data config;
    until 2026-12-07 it fed the model 32x32 Fashion-MNIST and died with a traceback."""
    import timm

    from searcher.data import load_splits
    from searcher.evaluate import evaluate
    from searcher.models import create_model

    ckpt = tmp_path / "deit.pth"
    torch.save(timm.create_model("deit_tiny_patch16_224").state_dict(), ckpt)
    argv = ["evaluate", "--model", "deit_tiny_patch16_224", "--checkpoint", str(ckpt)]
    assert main(argv) == 2  # which folder: one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("error: give --data-dir DIR to evaluate deit_tiny_patch16_224") and err.count("\n") == 1
    assert main([*argv, "--data-dir", str(tiny_imagefolder), "--limit", "0"]) == 2
    assert "--limit must be at least 1" in capsys.readouterr().err
    # ant/bee/cat are not ImageNet classes: labels 0-2 would score a 1000-class head against tench, goldfish…
    assert main([*argv, "--data-dir", str(tiny_imagefolder)]) == 2
    assert "not imagenet-1k WordNet ids" in capsys.readouterr().err
    val = tmp_path / "val"  # the same images in ImageNet class folders (tench, goldfish, great white shark)
    for cls, wnid in zip(("ant", "bee", "cat"), ("n01440764", "n01443537", "n01484850"), strict=True):
        shutil.copytree(tiny_imagefolder / cls, val / wnid)
    assert main([*argv, "--data-dir", str(val), "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    model = create_model("deit_tiny_patch16_224", checkpoint=str(ckpt))
    split = load_splits({"kind": "imagefolder", "test": str(val)}, model=model)["test"]
    assert split.labels.unique().tolist() == [0, 1, 2]  # the model's label indices of those classes
    assert split.images.shape[1:] == (3, 224, 224)  # the model's data config, not Fashion-MNIST's
    expected = evaluate(model, split, batch_size=8)
    assert (result["split"], result["images"], result["top1"]) == ("test", 24, expected.top1)


def test_cli_evaluates_an_imagefolder_config_where_its_data_now_is(
    tmp_path: Path, tiny_imagefolder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A config searched on folders of another machine: ``--data-dir`` gives the folder of ``--split`` (keeping
    the config's per_class); the other splits are not needed. Until 2026-12-07 it was refused for any
    imagefolder config."""
    import timm

    ckpt = tmp_path / "deit.pth"
    torch.save(timm.create_model("deit_tiny_patch16_224", num_classes=3).state_dict(), ckpt)  # the folder's classes
    gone = tmp_path / "elsewhere"
    data = {"kind": "imagefolder", "model": "deit_tiny_patch16_224",
            "search": {"root": str(gone / "train"), "per_class": 2}, "test": str(gone / "val")}
    config = config_for("deit_tiny_patch16_224", Schedule.constant(12, 8), checkpoint=str(ckpt), data=data,
                        kwargs={"num_classes": 3})
    path = _write(tmp_path / "c.json", config)
    assert main(["evaluate", str(path)]) == 2  # the folders it was searched on are not here
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", str(path), "--data-dir", str(tiny_imagefolder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 24
    assert main(["evaluate", str(path), "--split", "search", "--data-dir", str(tiny_imagefolder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 6  # 2 per class, as the config's search split
    # the same weights without a config: a timm name with its head's classes, as timm's --num-classes
    base = ["evaluate", "--model", "deit_tiny_patch16_224", "--checkpoint", str(ckpt), "--data-dir",
            str(tiny_imagefolder), "--json"]
    assert main(base) == 2  # its error names the flag that fixes it
    assert re.search(r"head of 3 classes, the model 1000: .*--num-classes 3 \(evaluate\)", capsys.readouterr().err)
    assert main([*base, "--num-classes", "3"]) == 0 and json.loads(capsys.readouterr().out)["images"] == 24
    assert main([*base, "--batch-size", "0"]) == 2 and "--batch-size must be at least 1" in capsys.readouterr().err
    here = _write(tmp_path / "here.json", {**config, "metrics": {**config["metrics"], "data": {
        "kind": "imagefolder", "model": "deit_tiny_patch16_224", "test": str(tiny_imagefolder)}}})
    assert main(["evaluate", str(here), "--split", "train"]) == 2  # a KeyError traceback until 2026-12-07
    assert "the data has no 'train' split; choose --split from ['test']" in capsys.readouterr().err
    pytest.importorskip("onnxruntime")
    with pytest.raises(ConfigError, match=r"no 'train' split; choose --split from \['test'\]"):
        searcher.deploy.to_onnx(here, tmp_path / "m.onnx", split="train")  # the same check, before the model loads
    moved = config_data(config, tiny_imagefolder, "test")
    assert moved["test"] == {"root": str(tiny_imagefolder)} and "search" not in moved
    assert config_data(config) == data


def test_cli_evaluates_an_embedded_model_with_other_weights(
    tmp_path: Path, real_fashion_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``evaluate --model fashion-vit --checkpoint FILE`` (weights from ``searcher train``) scores those weights;
    until 2026-12-07 it scored the shipped ones, and a missing file went unnoticed."""
    from searcher.models import create_model

    torch.manual_seed(0)
    ckpt = tmp_path / "untrained.pth"
    torch.save(create_model("fashion-vit", weights=False).state_dict(), ckpt)
    argv = ["evaluate", "--model", "fashion-vit", "--limit", "300", "--data-dir", str(real_fashion_dir), "--json"]
    assert main(argv) == 0
    shipped = json.loads(capsys.readouterr().out)["top1"]
    assert main([*argv, "--checkpoint", str(ckpt)]) == 0
    untrained = json.loads(capsys.readouterr().out)["top1"]
    assert shipped > 70 and untrained < 40
    assert main([*argv, "--checkpoint", str(tmp_path / "missing.pth")]) == 2
    assert "missing.pth does not exist" in capsys.readouterr().err


def test_evaluate_checks_a_config_s_data_and_a_config_given_as_schedule(
    configs: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Until 2026-12-07: a config whose model takes other images than its data was a traceback from the model's
    first layer (onnx gave this error); a config of another model as --schedule was evaluated with its schedule on
    the wrong model (top-1 89.5 %), and an AutoFormer config as --schedule lost its subnet."""
    big = _tiny_weights(tmp_path / "big.pth", 0, img_size=64)
    wide = config_for("vit_tiny_patch16_224", Schedule.recipe("tome", 4, 4), checkpoint=big,
                      kwargs={**TINY, "img_size": 64}, data={"kind": "fashion-mnist"})
    assert main(["evaluate", str(_write(tmp_path / "wide.json", wide)), "--limit", "8"]) == 2
    assert "images are (1, 32, 32) but vit_tiny_patch16_224 takes (1, 64, 64)" in capsys.readouterr().err
    af = _write(tmp_path / "af.json", configs["fashion-autoformer"])
    assert main(["evaluate", "--model", "fashion-vit", "--schedule", str(af), "--limit", "8"]) == 2
    assert f"{af} is a config of fashion-autoformer, not fashion-vit; evaluate the config" in capsys.readouterr().err
    for args in (["--model", "fashion-autoformer", "--schedule", str(af)], [str(af)]):
        assert main(["evaluate", *args, "--limit", "8", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["images"] == 8
    # a CONFIG with --schedule or --model: until 2026-12-08 both were ignored (the config's own result, exit 0)
    other = _write(tmp_path / "r30.json", Schedule.constant(6, 30).to_dict())
    for args, given in ((["--schedule", str(other)], "--schedule"), (["--model", "fashion-autoformer"], "--model")):
        assert main(["evaluate", str(af), *args, "--limit", "8"]) == 2
        err = capsys.readouterr().err
        assert f"error: {given} and a CONFIG: the config fixes its model and schedule" in err and err.count("\n") == 1
