"""The real-scale study specs (``studies/*-imagenet.yaml``) run end to end as shipped, on a tiny generated ImageNet
folder and small local checkpoints standing in for the hub weights and the official supernet file. Only the data
roots, the checkpoint and the amount of work change: the timm models become narrow stand-ins (48 wide, the same
depth and token count) with an absolute budget turned into the same share of their FLOPs. Model, space,
objectives and baselines are the file's own."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import timm
import torch
import yaml
from optuna.trial import TrialState

from searcher.cost.flops import count, describe
from searcher.errors import ConfigError
from searcher.models.autoformer_space import get_space
from searcher.study import StudySpec, optimize, pareto_trials
from searcher.units import parse_budget

STUDIES = Path(__file__).resolve().parents[1] / "studies"
WNIDS = ("n01440764", "n01443537")  # the first two ImageNet-1k classes (tench, goldfish)


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/`` and ``val/`` with two ImageNet classes, three JPEGs each, of odd sizes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imagenet")
    for split in ("train", "val"):
        for c, wnid in enumerate(WNIDS):
            d = root / split / wnid
            d.mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (180 + 40 * i, 250 - 30 * i), (60 + 120 * c, 30 * i, 90)).save(d / f"{i}.JPEG")
    return root


SMALL = {"embed_dim": 48, "num_heads": 3}  # timm stand-ins: 12 blocks of 197 tokens, a tiny checkpoint


def _checkpoint(model: str, path: Path) -> str:
    torch.manual_seed(0)
    if model.startswith("autoformer"):
        from searcher.models.autoformer import create_supernet

        # the official file format: {'model': state dict, 'args': the training Namespace}
        state = {"model": create_supernet(model.removesuffix("-supernet")).state_dict(), "args": argparse.Namespace()}
        torch.save(state, path)
    else:
        torch.save(timm.create_model(model, pretrained=False, **SMALL).state_dict(), path)
    return str(path)


@pytest.mark.parametrize("name", ["deit-s-imagenet", "vit-b-imagenet", "autoformer-s-imagenet"])
def test_real_scale_study_runs_on_a_tiny_imagenet(name: str, imagenet: Path, tmp_path: Path) -> None:
    # what the spec's comment asks a user to do: copy it with their own ImageNet roots, and run the copy
    d = yaml.safe_load((STUDIES / f"{name}.yaml").read_text())
    assert d["name"] == name and d["data"]["kind"] == "imagefolder"
    d["data"]["search"].update(root=str(imagenet / "train"), per_class=2)
    d["data"]["test"] = str(imagenet / "val")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / f"my-{name}.yaml").write_text(yaml.safe_dump(d))
    spec = StudySpec.from_yaml(tmp_path / "mine" / f"my-{name}.yaml")  # its `space:` names a shipped space
    timm_model = not spec.model.startswith("autoformer")
    budget = spec.budget
    if timm_model and "%" not in budget:  # the same share of the stand-in's FLOPs as of the real model's
        with torch.device("meta"):
            real = count(describe(timm.create_model(spec.model))).total
        budget = f"{100 * parse_budget(budget).resolve(real) / real:.2f}%"
    recipes = sum(r != "none" for r in spec.load_space().reducers) + bool(spec.diffrate_baseline)
    spec = replace(
        spec,
        budget=budget,
        checkpoint=_checkpoint(spec.model, tmp_path / "weights.pth"),
        model_kwargs=SMALL if timm_model else {},
        trials=recipes + 1,  # the published recipes (DeiT-S: 7, DiffRate's last) and one search
        batch_size=4,
        chunk=4,
        throughput_batch=2,
        throughput_repeats=1,
    )
    res = optimize(spec, tmp_path / "out", progress=False)
    trials = res.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert res.stats["trials"] - res.stats["repeats"] == spec.trials and res.stats["failed"] == 0
    assert all(t.user_attrs.get("baseline") for t in trials[:3])  # the published recipes run first
    evaluated = [t for t in trials if "duplicate_of" not in t.user_attrs]  # repeats do not count
    assert len(evaluated) == spec.trials and all(t.user_attrs["gflops"] <= res.budget * (1 + 1e-9) for t in trials)
    rows = res.pareto
    assert rows and {r["trial"] for r in rows} == {t.number for t in pareto_trials(res.study)}
    assert all(r["test_top1"] is not None and 0 <= r["test_top1"] <= 100 for r in rows)
    largest = res.context.source.full_arch(res.context.space.architecture)
    for t in trials:  # the shipped spaces draw every published recipe, on the largest subnet for the supernet
        if t.user_attrs.get("baseline", "").endswith("constant r"):
            assert "fixed_candidate" not in t.user_attrs and t.params, t.user_attrs["baseline"]
            assert t.user_attrs["candidate"]["arch"] == (largest if res.context.space.architecture else None)
    if spec.diffrate_baseline:  # DiffRate's published DeiT-S schedule runs as a baseline
        (published,) = [t for t in trials if t.user_attrs.get("baseline") == "diffrate published"]
        assert published.user_attrs["tokens"][0] == 197 and published.user_attrs["tokens"][-1] == 3



def test_a_published_schedule_over_the_budget_is_evaluated_as_a_reference(
    imagenet: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """DiffRate's published DeiT-S schedule costs 2.91 GFLOPs, over the 2.9 GFLOPs that the spec's comment and the
    README suggest: until 2026-12-08 it was recorded unevaluated, as an over-budget draw, and the study had nothing
    to compare with DiffRate. Now it is evaluated, infeasible (off the front), with a warning. Here the stand-in's
    budget sits just under the schedule's cost on the stand-in."""
    from searcher.deploy import open_source
    from searcher.schedule import Schedule
    from searcher.study import PUBLISHED_OVER_BUDGET

    spec = StudySpec.from_yaml(STUDIES / "deit-s-imagenet.yaml")
    assert spec.diffrate_baseline is not None
    weights = _checkpoint(spec.model, tmp_path / "weights.pth")
    source = open_source({"name": spec.model, "checkpoint": weights, "kwargs": SMALL})
    kept = spec.diffrate_baseline
    published = Schedule.recipe("diffrate", 12, prune_kept=kept["prune_kept"], merge_kept=kept["merge_kept"])
    g = source.flops(None, published.capped(source.n_tokens, source.num_prefix))
    spec = replace(
        spec,
        data={**spec.data, "search": {"root": str(imagenet / "train"), "per_class": 2}, "test": str(imagenet / "val")},
        budget=f"{0.999 * g}GFLOPs",
        checkpoint=weights,
        model_kwargs=SMALL,
        trials=sum(r != "none" for r in spec.load_space().reducers) + 1,  # the published recipes only
        batch_size=4,
        chunk=4,
        throughput_batch=2,
        throughput_repeats=1,
    )
    with caplog.at_level("WARNING", logger="searcher.study"):
        res = optimize(spec, tmp_path / "out", progress=False)
    assert "DiffRate's published schedule costs" in caplog.text and "evaluated as a reference" in caplog.text
    (ref,) = [t for t in res.study.trials if t.user_attrs.get("baseline") == "diffrate published"]
    assert ref.state == TrialState.COMPLETE and "top1" in ref.user_attrs and ref.user_attrs["gflops"] == g
    assert ref.user_attrs["feasible"] is False and ref.user_attrs["infeasible"] == PUBLISHED_OVER_BUDGET
    assert ref.number not in {r["trial"] for r in res.pareto} and res.stats.get("over_budget", 0) == 0


def test_missing_data_folders_are_reported_before_the_weights_are_fetched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped spec as is, on a machine without ~/data/imagenet: the data error comes first (until 2026-12-08
    the weights came first: ViT-B's 350 MB from the hub, or a minute of retries offline, then the data error).
    Here the weights are a file that does not exist, whose error would otherwise come first."""
    from searcher.errors import DataError

    spec = StudySpec.from_yaml(STUDIES / "vit-b-imagenet.yaml")
    spec = replace(spec, data={**spec.data, "search": {"root": str(tmp_path / "no-imagenet" / "train")}},
                   checkpoint=str(tmp_path / "missing.pth"))
    with pytest.raises(DataError, match="ImageFolder root .*no-imagenet/train does not exist.* copy .*"
                                        "vit-b-imagenet.yaml, edit its data roots"):  # a shipped spec: copy it
        optimize(spec, tmp_path / "out", progress=False)
    # `searcher data --study` of the shipped spec as is says so too (the bare "does not exist" until 2026-12-08)
    from searcher.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))  # its ~/data/imagenet: not there
    assert main(["data", "--study", "deit-s-imagenet"]) == 2
    assert "deit-s-imagenet.yaml, edit its data roots" in capsys.readouterr().err

def test_a_budget_out_of_range_is_refused_before_the_weights_and_the_data(
    imagenet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget is checked on the model's shapes alone: it was checked after the weights were fetched and both
    splits decoded (at ImageNet scale 55,000 images, and ViT-B's 350 MB), and so was a model searcher cannot count
    (until 2026-12-07). Here the weights are a file that does not exist and decoding fails."""
    from searcher.errors import ConfigError

    def decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("the data was decoded")

    monkeypatch.setattr("searcher.study.load_splits", decode)
    spec = StudySpec.from_yaml(STUDIES / "deit-s-imagenet.yaml")
    data = {**spec.data, "search": {**spec.data["search"], "root": str(imagenet / "train")},
            "test": str(imagenet / "val")}
    spec = replace(spec, data=data, checkpoint=str(tmp_path / "missing.pth"))
    for budget, words in (("10GFLOPs", "above the unreduced model's 4.599"), ("0.5GFLOPs", "below the cheapest")):
        with pytest.raises(ConfigError, match=words):
            optimize(spec.override(budget=budget), tmp_path / "out", progress=False)
    with pytest.raises(ConfigError, match="no FLOPs model"):
        optimize(replace(spec, model="resnet18"), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_model_that_takes_other_images_than_the_data_is_refused_before_the_study(
    imagenet: Path, tmp_path: Path
) -> None:
    """A timm model built at 112 pixels on data prepared for 224 (the data's ``model`` is the 224-pixel DeiT-S):
    one error before the study exists; until 2026-12-07 every trial failed with timm's assertion and the failed
    study pinned the wrong data, so the corrected spec was refused at the same ``--out``."""
    from searcher.errors import ConfigError

    spec = StudySpec.from_yaml(STUDIES / "deit-s-imagenet.yaml")
    data = {**spec.data, "search": {"root": str(imagenet / "train"), "per_class": 2}, "test": str(imagenet / "val")}
    (tmp_path / "specs").mkdir()
    torch.save(timm.create_model(spec.model, pretrained=False, **SMALL, img_size=112).state_dict(),
               tmp_path / "specs" / "w.pth")
    spec = replace(spec, data=data, budget="60%", checkpoint="w.pth", base_dir=str(tmp_path / "specs"),
                   model_kwargs={**SMALL, "img_size": 112}, trials=1, baselines=False, diffrate_baseline=None)
    with pytest.raises(ConfigError, match=r"images are \(3, 224, 224\) but deit_small_patch16_224 takes \(3, 112"):
        optimize(spec, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "study.db").exists()
    # fixed as the message says; the checkpoint, relative to the spec's folder, is recorded as an absolute path
    spec = replace(spec, data={**data, "data_config": {"input_size": [3, 112, 112]}}, batch_size=4, chunk=4)
    res = optimize(spec, tmp_path / "out", progress=False)
    assert res.pareto and res.study.user_attrs["model_source"]["checkpoint"] == str(tmp_path / "specs" / "w.pth")


def test_data_summary_of_an_imagenet_subset(imagenet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``searcher data`` on two of ImageNet's classes: labels index the model's 1000, and the counts say how many
    of them the folders hold (it printed "per class 0-3" until 2026-12-07). Roots relative to the spec's folder
    are found from another working directory, as ``optimize`` finds them (until 2026-12-08: "does not exist")."""
    import os

    from searcher.cli import main

    d = yaml.safe_load((STUDIES / "deit-s-imagenet.yaml").read_text())
    search, test = (os.path.relpath(imagenet / split, tmp_path) for split in ("train", "val"))
    d["data"].update(search={"root": search, "per_class": 2}, test=test)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["data", "--study", str(tmp_path / "s.yaml")]) == 0
    out = capsys.readouterr().out
    assert "1000 classes" in out and "per class 2-2 of 2 classes" in out and "per class 3-3 of 2 classes" in out


def test_a_study_checks_the_classes_and_records_where_its_data_is(imagenet: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Until 2026-12-07: a 1000-class model on a folder of other classes scored 0 % without a word, a stray folder
    beside ImageNet's class folders dropped the ImageNet label order for every split, a study recorded its data
    folders as written (relative to where it ran) and compared them as text on resume."""
    import shutil

    from searcher.deploy import config_data
    from searcher.errors import ConfigError, DataError
    from searcher.export import export_run

    spec = StudySpec.from_yaml(STUDIES / "deit-s-imagenet.yaml")
    (tmp_path / "specs").mkdir()
    torch.save(timm.create_model(spec.model, pretrained=False, **SMALL).state_dict(), tmp_path / "specs" / "w.pth")
    spec = replace(spec, budget="60%", checkpoint="w.pth", base_dir=str(tmp_path / "specs"), model_kwargs=SMALL,
                   trials=1, baselines=False, diffrate_baseline=None, batch_size=4, chunk=4)

    def run(train: Path | str, val: Path | str, out: str = "out"):  # the class order automatic, not imagenet-1k
        data = {**{k: v for k, v in spec.data.items() if k != "classes"},
                "search": {"root": str(train), "per_class": 2}, "test": str(val)}
        return optimize(replace(spec, data=data), tmp_path / out, progress=False)

    other = tmp_path / "pets"  # not ImageNet's classes
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            shutil.copytree(imagenet / split / WNIDS[0], other / split / cls)
    with pytest.raises(ConfigError, match="has 1000 outputs but the search split has 2 classes"):
        run(other / "train", other / "val")
    assert not (tmp_path / "out").exists()
    stray = tmp_path / "stray"
    shutil.copytree(imagenet, stray)
    (stray / "val" / "backup").mkdir()
    shutil.copy(imagenet / "val" / WNIDS[0] / "0.JPEG", stray / "val" / "backup")
    with pytest.raises(DataError, match=r"mixes imagenet-1k WordNet-id class folders with 1 other folder\(s\) "
                                        r"\['backup'\]"):
        run(stray / "train", stray / "val")

    # folders relative to the spec's: recorded absolute, with the class order (the ImageNet subset's)
    shutil.copytree(imagenet, tmp_path / "specs" / "imagenet")
    res = run("imagenet/train", "imagenet/val")
    data = res.study.user_attrs["spec"]["data"]
    assert data["search"]["root"] == str(tmp_path / "specs" / "imagenet" / "train")
    assert data["test"] == str(tmp_path / "specs" / "imagenet" / "val") and data["classes"] == "imagenet-1k"
    (config,) = [p for p in export_run(res.study, res.out) if p.suffix == ".json"]

    cfg = json.loads(config.read_text())
    assert cfg["metrics"]["data"] == data
    assert set(config_data(cfg, None, "test")) == {"kind", "model", "classes", "test"}  # the search folder not needed
    # the same images elsewhere resume the study; other images at the same place do not
    shutil.move(tmp_path / "specs" / "imagenet", tmp_path / "moved")
    assert run(tmp_path / "moved" / "train", tmp_path / "moved" / "val").study.user_attrs["spec"]["data"] != data
    shutil.copy(tmp_path / "moved" / "train" / WNIDS[0] / "1.JPEG", tmp_path / "moved" / "train" / WNIDS[0] / "0.JPEG")
    with pytest.raises(ConfigError, match="other search images under the same data spec"):
        run(tmp_path / "moved" / "train", tmp_path / "moved" / "val")
    # a model fine-tuned on these two WordNet-id folders (model_kwargs num_classes: 2): their sorted order, as
    # timm's train.py labels them (until 2026-12-07 the imagenet-1k order, refused as 1000 classes for 2 outputs)
    tuned = {**SMALL, "num_classes": 2}
    torch.save(timm.create_model(spec.model, pretrained=False, **tuned).state_dict(), tmp_path / "specs" / "w.pth")
    spec = replace(spec, model_kwargs=tuned)
    res = run(tmp_path / "moved" / "train", tmp_path / "moved" / "val", out="tuned")
    assert res.study.user_attrs["spec"]["data"]["classes"] == sorted(WNIDS)
    # `searcher data --study` shows the labels optimize uses
    from searcher.cli import main

    data = {k: v for k, v in spec.data.items() if k != "classes"}
    data.update(search=str(tmp_path / "moved" / "train"), test=str(tmp_path / "moved" / "val"))
    (tmp_path / "tuned.yaml").write_text(yaml.safe_dump({"model": spec.model, "model_kwargs": tuned, "data": data,
                                                         "space": "deit-vit-224", "budget": "60%"}))
    assert main(["data", "--study", str(tmp_path / "tuned.yaml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == sorted(WNIDS)


def test_url_checkpoints_are_cached_by_their_whole_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """torch.hub caches a URL's file by its name alone: a second URL of the same file name was given the first
    one's weights, silently (and file:// was refused for timm models). Each URL is its own download, a file://
    URL is its path, and the config records the sha256 of what was loaded."""
    import functools
    import http.server
    import threading

    from searcher.errors import CheckpointError
    from searcher.models import ModelSource, local_checkpoint, read_state_dict, sha256_file

    for i, folder in enumerate(("a", "b")):
        (tmp_path / "www" / folder).mkdir(parents=True)
        torch.save({"w": torch.full((2,), float(i))}, tmp_path / "www" / folder / "weights.pth")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert [read_state_dict(f"{base}/{f}/weights.pth")["w"][0].item() for f in ("a", "b", "a")] == [0, 1, 0]
        assert len(list((Path(torch.hub.get_dir()) / "checkpoints").iterdir())) == 2  # each downloaded once
        from searcher.deploy import open_source  # a config's URL whose bytes changed: the cached download named

        with pytest.raises(CheckpointError, match=r"weights .*/a/weights.pth \(.*-weights.pth: delete it to "
                                                  r"download again\) have sha256 .*, but the study used"):
            open_source({"name": "vit_tiny_patch16_224", "checkpoint": f"{base}/a/weights.pth", "sha256": "0" * 64})
        mine = (tmp_path / "www" / "a" / "weights.pth").as_uri()  # a file: nothing to delete
        with pytest.raises(CheckpointError, match=r"weights file://.*/a/weights.pth have sha256"):
            open_source({"name": "vit_tiny_patch16_224", "checkpoint": mine, "sha256": "0" * 64})
        torch.save({"w": torch.zeros(2)}, Path(torch.hub.get_dir()) / "checkpoints" / "gone.pth")
        with pytest.raises(CheckpointError, match="could not download .*gone.pth: HTTP Error 404"):
            read_state_dict(f"{base}/gone.pth")  # the server's answer: no stand-in of that name
        (tmp_path / "www" / "login.pth").write_text("<html>sign in</html>")  # what a proxy may serve instead
        with pytest.raises(CheckpointError, match=r"\(.*-login.pth: delete it to download again\)"):
            read_state_dict(f"{base}/login.pth")
    finally:
        server.shutdown()
        server.server_close()
    # a server that accepts and never answers: an error after the timeout (torch.hub waited for ever)
    import socket

    silent = socket.create_server(("127.0.0.1", 0))
    monkeypatch.setattr("searcher.models.DOWNLOAD_TIMEOUT_S", 0.5)
    try:
        with pytest.raises(CheckpointError, match="could not download .*timed out"):
            read_state_dict(f"http://127.0.0.1:{silent.getsockname()[1]}/w.pth")
    finally:
        silent.close()
    assert socket.getdefaulttimeout() is None
    # offline: torch.hub's own file of that name (its cache until 2026-12-07) is used, with a warning
    torch.save({"w": torch.full((2,), 7.0)}, Path(torch.hub.get_dir()) / "checkpoints" / "old.pth")
    with caplog.at_level(logging.WARNING, logger="searcher"):
        assert read_state_dict(f"{base}/old.pth")["w"][0].item() == 7
    assert "could not download" in caplog.text and "which may be another URL's" in caplog.text
    local = tmp_path / "www" / "b" / "weights.pth"
    assert local_checkpoint(local.as_uri()) == local and read_state_dict(local.as_uri())["w"][0].item() == 1
    model = timm.create_model("vit_tiny_patch16_224", embed_dim=48, depth=2, num_heads=2, img_size=32)
    torch.save(model.state_dict(), tmp_path / "vit.pth")
    source = ModelSource.open("vit_tiny_patch16_224", (tmp_path / "vit.pth").as_uri(),
                              model_kwargs={"embed_dim": 48, "depth": 2, "num_heads": 2, "img_size": 32})
    assert source.describe()["sha256"] == sha256_file(tmp_path / "vit.pth")


def test_a_checkpoint_is_adapted_as_timm_adapts_pretrained_weights(tmp_path: Path) -> None:
    """A 224-pixel checkpoint in a model built at 160 pixels has its position embeddings resampled, as timm does
    for its pretrained weights (it failed on pos_embed's shape); a fine-tuned head of another size names the fix."""
    from searcher.errors import CheckpointError
    from searcher.models import create_model

    torch.save(timm.create_model("deit_tiny_patch16_224", **SMALL).state_dict(), tmp_path / "224.pth")
    model = create_model("deit_tiny_patch16_224", checkpoint=tmp_path / "224.pth", img_size=160, **SMALL)
    assert model.pos_embed.shape[1] == 1 + (160 // 16) ** 2 and model(torch.zeros(1, 3, 160, 160)).shape == (1, 1000)
    torch.save(timm.create_model("deit_tiny_patch16_224", num_classes=3, **SMALL).state_dict(), tmp_path / "3.pth")
    with pytest.raises(CheckpointError, match=r"head of 3 classes, the model 1000: .*--num-classes 3 \(evaluate\) "
                                              r"or model_kwargs: \{num_classes: 3\}"):
        create_model("deit_tiny_patch16_224", checkpoint=tmp_path / "3.pth", **SMALL)
    # another model: refused, not converted (another patch size), and no head hint where more than the head differs
    torch.save(timm.create_model("deit_tiny_patch16_224", patch_size=32, **SMALL).state_dict(), tmp_path / "p32.pth")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        create_model("deit_tiny_patch16_224", checkpoint=tmp_path / "p32.pth", **SMALL)
    wider = timm.create_model("deit_tiny_patch16_224", num_classes=3, embed_dim=96, num_heads=3)
    torch.save(wider.state_dict(), tmp_path / "wide3.pth")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        create_model("deit_tiny_patch16_224", checkpoint=tmp_path / "wide3.pth", **SMALL)
    # a grid that is not square, another prefix: an error, not a traceback from the resampling
    torch.save(timm.create_model("deit_tiny_patch16_224", img_size=(224, 160), **SMALL).state_dict(),
               tmp_path / "oblong.pth")
    with pytest.raises(CheckpointError, match="does not fit this model"):
        create_model("deit_tiny_patch16_224", checkpoint=tmp_path / "oblong.pth", **SMALL)
    with pytest.raises(CheckpointError, match="does not fit this model"):
        create_model("deit_tiny_patch16_224", checkpoint=tmp_path / "224.pth", no_embed_class=True, **SMALL)
    # the head hint for a distilled DeiT's two heads, and for a fine-tune at another size
    torch.save(timm.create_model("deit_tiny_distilled_patch16_224", num_classes=3, **SMALL).state_dict(),
               tmp_path / "d3.pth")
    with pytest.raises(CheckpointError, match="head of 3 classes"):
        create_model("deit_tiny_distilled_patch16_224", checkpoint=tmp_path / "d3.pth", **SMALL)
    torch.save(timm.create_model("deit_tiny_patch16_224", img_size=384, num_classes=3, **SMALL).state_dict(),
               tmp_path / "384-3.pth")
    with pytest.raises(CheckpointError, match="head of 3 classes"):
        create_model("deit_tiny_patch16_224", checkpoint=tmp_path / "384-3.pth", **SMALL)


def test_an_architecture_space_of_another_supernet_names_the_right_one(tmp_path: Path) -> None:
    from searcher.errors import ConfigError

    # larger (autoformer-b's choices do not fit) and smaller (autoformer-t's: untrained slices of the weights; run
    # without a word until 2026-12-07)
    cases = (("autoformer-b", r"embed_dim \[528, 576, 624\]"), ("autoformer-t", r"embed_dim \[192, 216, 240\]"))
    for other, outside in cases:
        spec = StudySpec.from_dict({"name": "s", "model": "autoformer-s-supernet", "space": other, "budget": "40%"})
        with pytest.raises(ConfigError, match=rf"choices {outside}.* are not among those the autoformer-s-supernet "
                                              r"supernet was trained with \(embed_dim \[320, 384, 448\].*\(space: "
                                              r"autoformer-s\)"):
            optimize(spec, tmp_path / "out", progress=False)


def test_the_budget_is_of_the_loaded_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An AutoFormer file brings its own head (here 10 classes): the budget and the unreduced FLOPs are the loaded
    model's, not those of the shapes checked before it loads (the preset's 1000-class head)."""
    import dataclasses

    from searcher import study as study_module
    from searcher.models import ModelSource
    from searcher.models.autoformer import AutoFormerSupernet
    config = dataclasses.replace(get_space("autoformer-t").supernet, num_classes=10)
    torch.save({"model": AutoFormerSupernet.from_config(config).state_dict(), "args": argparse.Namespace()},
               tmp_path / "t10.pth")
    costs = []

    def recorded(*args: object) -> tuple[float, float]:
        costs.append(check(*args))
        return costs[-1]

    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    check = study_module._check_costs
    monkeypatch.setattr(study_module, "_check_costs", recorded)
    monkeypatch.setattr(study_module, "load_splits", stop)
    spec = StudySpec.from_dict({"name": "t", "model": "autoformer-t-supernet", "space": "autoformer-t",
                                "checkpoint": str(tmp_path / "t10.pth"), "budget": "40%"})
    with pytest.raises(KeyboardInterrupt):
        study_module._context(spec)
    source = ModelSource.open("autoformer-t-supernet", str(tmp_path / "t10.pth"), arch_space=spec.load_space())
    full = source.flops(source.full_arch(spec.load_space().architecture), None)
    assert costs[-1] == pytest.approx((full, 0.4 * full), rel=1e-12) and costs[0][0] != pytest.approx(full, rel=1e-9)


def test_evaluate_checks_the_data_folder_before_the_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Offline, timm's hub retries took 51 s before the missing folder was named (until 2026-12-07)."""
    from searcher.cli import main

    def fetch(*args: object, **kwargs: object) -> None:
        raise AssertionError("the weights were fetched")

    monkeypatch.setattr("searcher.models.create_model", fetch)
    assert main(["evaluate", "--model", "deit_tiny_patch16_224", "--data-dir", str(tmp_path / "none")]) == 2
    assert "ImageFolder root" in capsys.readouterr().err


def test_data_labels_the_folders_as_an_autoformer_files_own_head(imagenet: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """An AutoFormer file fine-tuned on two WordNet-id folders brings a 2-class head: ``searcher data --study``
    labels the folders in their sorted order, as optimize does from the loaded model (until 2026-12-07 it read
    ``model_kwargs`` alone and showed the ImageNet-1k order of the data's timm model). A URL not downloaded yet is
    not fetched for it."""
    import dataclasses

    from searcher.cli import main
    from searcher.models.autoformer import AutoFormerSupernet
    config = dataclasses.replace(get_space("autoformer-t").supernet, num_classes=2)
    torch.save({"model": AutoFormerSupernet.from_config(config).state_dict(), "args": argparse.Namespace()},
               tmp_path / "t2.pth")
    d = yaml.safe_load((STUDIES / "autoformer-s-imagenet.yaml").read_text())
    del d["data"]["classes"], d["data"]["data_config"]
    d["data"]["model"] = "deit_tiny_patch16_224"  # preprocessed as it: an ImageNet-1k model, its labels by default
    d["data"].update(search=str(imagenet / "train"), test=str(imagenet / "val"))
    d.update(model="autoformer-t-supernet", space="autoformer-t", checkpoint="t2.pth", budget="60%")  # t2.pth: the
    # spec's folder's
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    assert main(["data", "--study", str(tmp_path / "s.yaml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["classes"] == sorted(WNIDS)
    from searcher.study import _context

    _, splits = _context(StudySpec.from_yaml(tmp_path / "s.yaml"))
    assert splits["test"].classes == sorted(WNIDS)  # what optimize labels them with

    d["checkpoint"] = "http://127.0.0.1:9/never-downloaded.pth"  # nothing listens: a fetch would fail
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(d))
    assert main(["data", "--study", str(tmp_path / "s.yaml"), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["classes"]) == 1000  # ImageNet's labels, as for its own head


def test_the_hub_s_retries_are_quiet_unless_verbose(imagenet: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Offline, huggingface_hub logged each retry twice (its own handler's line and ours) before searcher's one
    error line, until 2026-12-07; with -v they are shown."""
    from searcher.cli import main
    from searcher.errors import CheckpointError

    def offline(*args: object, **kwargs: object) -> None:
        logging.getLogger("huggingface_hub.utils._http").warning("'[Errno -2]' thrown while requesting HEAD …")
        raise CheckpointError("cannot fetch pretrained weights of deit_tiny_patch16_224")

    monkeypatch.setattr("searcher.models.create_model", offline)
    argv = ["evaluate", "--model", "deit_tiny_patch16_224", "--data-dir", str(imagenet / "val")]
    assert main(argv) == 2
    assert not [r for r in caplog.records if r.name.startswith("huggingface_hub")]
    assert capsys.readouterr().err.startswith("error: cannot fetch pretrained weights")
    assert main([*argv, "-v"]) == 2
    assert [r for r in caplog.records if r.name.startswith("huggingface_hub")]
    # a fresh process, where timm imports the Hub after the CLI set its level (which the import reset, until a
    # review of 2026-12-07)
    import os
    import subprocess
    import sys

    check = ("import logging, sys; from searcher.cli import main; main(sys.argv[1:]); import timm; "
             "print(logging.getLogger('huggingface_hub').getEffectiveLevel())")
    for flags, level in (([], logging.ERROR), (["-v"], logging.INFO)):
        run = subprocess.run([sys.executable, "-c", check, *flags, "data", "--data-dir", str(imagenet / "none")],
                             capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                                  if k != "HF_HUB_VERBOSITY"})
        assert run.stdout.strip() == str(level), run.stderr[-2000:]


def test_an_autoformer_study_without_weights_is_refused(imagenet: Path, tmp_path: Path) -> None:
    """A copied AutoFormer spec without its checkpoint ran the whole study on random weights (0 % top-1, exported
    as if trained) with a warning, until 2026-12-07; a timm model without weights was refused all along."""
    d = yaml.safe_load((STUDIES / "autoformer-s-imagenet.yaml").read_text())
    del d["checkpoint"]
    d["data"].update(search=str(imagenet / "train"), test=str(imagenet / "val"))
    with pytest.raises(ConfigError, match="autoformer-s-supernet needs its trained weights: give its checkpoint"):
        optimize(StudySpec.from_dict(d), tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_supernet_without_an_architecture_section_searches_its_largest_subnet(
        imagenet: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Schedule-only search on a supernet's largest subnet (the issue's third arm): fashion-autoformer did it, an
    ``autoformer-*-supernet`` was refused ("give the space an 'architecture' section") until 2026-12-08."""
    d = {"name": "t", "model": "autoformer-t-supernet", "checkpoint": _checkpoint("autoformer-t", tmp_path / "t.pth"),
         "space": {"reducers": ["tome"]}, "budget": "60%", "trials": 2, "batch_size": 4, "chunk": 4,
         "throughput_batch": 2, "throughput_repeats": 1,
         "data": {**yaml.safe_load((STUDIES / "autoformer-s-imagenet.yaml").read_text())["data"],
                  "search": str(imagenet / "train"), "test": str(imagenet / "val")}}
    del d["data"]["data_config"]["crop_mode"]  # a user's data config, short of a field
    res = optimize(StudySpec.from_dict(d), tmp_path / "out", progress=False)
    largest = get_space("autoformer-t").largest().to_dict()
    assert res.context.source.full_arch(None) == largest and res.stats["failed"] == 0
    full = res.context.source.flops(largest, None)
    assert res.full_gflops == pytest.approx(full)  # the budget's 100 %: the whole supernet's until 2026-12-08
    assert all(t.user_attrs["gflops"] <= 0.6 * full * (1 + 1e-9) for t in res.study.trials)
    from searcher.deploy import load_config
    from searcher.export import export_study

    config = export_study(res.study, res.out).files[0]
    model = load_config(config)  # the deployer's model: the largest subnet, reduced (refused until 2026-12-08)
    assert len(model.blocks) == largest["depth"] and model.blocks[0].attn.num_heads == largest["num_heads"][0]
    # the config records the data config the study read the images with, every field: evaluating it warned that
    # AutoFormer "has no timm pretrained_cfg; using timm's default ImageNet crop_mode" (until 2026-12-08)
    recorded = json.loads(config.read_text())["metrics"]["data"]["data_config"]
    assert recorded["crop_mode"] == "center" and len(recorded) == 6
    from searcher.cli import main

    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", str(config), "--split", "test"]) in (0, None)
    assert "pretrained_cfg" not in caplog.text, caplog.text


def test_a_relative_file_url_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``file://deit_s.pth`` names a host, not a file here: "[Errno 21] Is a directory: '.'" until 2026-12-08."""
    from searcher.models import create_model, local_checkpoint

    monkeypatch.chdir(tmp_path)
    path = _checkpoint("deit_small_patch16_224", tmp_path / "deit_s.pth")
    assert local_checkpoint(Path(path).as_uri()) == Path(path)
    with pytest.raises(ConfigError, match=r"file://deit_s.pth is not a file URL of a local path: .*file:///abs/path"):
        create_model("deit_small_patch16_224", checkpoint="file://deit_s.pth", **SMALL)
