"""ONNX export (``searcher onnx``, :func:`searcher.deploy.to_onnx`) of every reducer on both embedded models.

For each reducer (tome, tofu, pitome, rapid, topk, diffrate) on the embedded ViT and on an embedded AutoFormer
subnet with anchored positions, one dynamic-batch export (shared by the module's tests) must agree with
PyTorch within 1e-4 on every logit of 512 real test images, with the same top-1, and run at batch 1 and 7.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from searcher.cli import main
from searcher.data import fashion_mnist
from searcher.deploy import (
    build_model,
    compare_onnx,
    config_for,
    export_mode,
    onnx_bytes,
    open_source,
    ort_session,
    to_onnx,
)
from searcher.errors import ConfigError
from searcher.reduce import merge
from searcher.study import build_schedule

REDUCERS = ("tome", "tofu", "pitome", "rapid", "topk", "diffrate")
# An embedded AutoFormer subnet with different heads and MLP ratios per layer.
SUBNET = {"embed_dim": 128, "depth": 5, "mlp_ratio": [3.0, 2.0, 4.0, 3.0, 2.0], "num_heads": [2, 3, 4, 3, 2]}
R = 8  # tokens removed per block: 65 tokens → 25 (AutoFormer) / 17 (ViT)
ATOL = 1e-4


@pytest.fixture(scope="module")
def test_images(real_fashion_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    split = fashion_mnist(real_fashion_dir)["test"].subset(512)
    return split.normalize(split.images), split.labels


@pytest.fixture(scope="module")
def sources() -> dict[str, Any]:
    return {name: open_source({"name": name}) for name in ("fashion-vit", "fashion-autoformer")}


@pytest.fixture(scope="module")
def exported(sources: dict[str, Any]) -> Any:
    """``exported(model, reducer)`` → (PyTorch model, ONNX bytes of its dynamic-batch export), made once."""
    _EXPORTS: dict[tuple[str, str], tuple[torch.nn.Module, bytes]] = {}

    def get(name: str, reducer: str) -> tuple[torch.nn.Module, bytes]:
        if (name, reducer) not in _EXPORTS:
            source = sources[name]
            arch = SUBNET if name == "fashion-autoformer" else None
            depth = source.depth_of(arch)
            schedule = build_schedule(source, reducer, depth, [R] * depth)
            assert name == "fashion-vit" or schedule.positions == "anchored"
            model = build_model(source, arch, schedule)
            _EXPORTS[name, reducer] = model, onnx_bytes(model, source.input_shape, "dynamic", opset=17)
        return _EXPORTS[name, reducer]

    return get


@pytest.mark.parametrize("reducer", REDUCERS)
@pytest.mark.parametrize("name", ["fashion-vit", "fashion-autoformer"])
def test_onnx_matches_pytorch_on_512_test_images(
    name: str, reducer: str, exported: Any, test_images: tuple[torch.Tensor, torch.Tensor]
) -> None:
    model, data = exported(name, reducer)
    session = ort_session(data)  # as `searcher onnx` checks: PyTorch's threads (OMP_NUM_THREADS), not one per core
    assert session.get_session_options().intra_op_num_threads == torch.get_num_threads()
    images, labels = test_images
    result = compare_onnx(model, session, images, labels, "dynamic", chunk=128)
    assert result["images"] == 512
    assert result["max_abs_diff"] <= ATOL, result
    assert result["top1_agreement"] == 1.0, result
    assert result["onnx_top1"] == result["torch_top1"] > 60.0  # a trained model, reduced
    for batch in (1, 7):  # dynamic batch: sizes other than the traced one
        x = images[100 : 100 + batch]
        with torch.inference_mode():
            ref = model(x).numpy()
        out = session.run(["logits"], {"images": x.numpy()})[0]
        assert out.shape == (batch, 10)
        np.testing.assert_allclose(out, ref, atol=ATOL, rtol=0)
    if reducer == REDUCERS[0]:  # a session that does not spin (bench/deploy.py) computes the same
        quiet = ort_session(data, threads=2, spin=False)
        assert quiet.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
        x = images[:8].numpy()
        out = quiet.run(["logits"], {"images": x})[0]
        np.testing.assert_allclose(out, session.run(["logits"], {"images": x})[0], atol=ATOL, rtol=0)


def test_the_graph_has_static_token_counts_and_no_fused_attention(exported: Any) -> None:
    """Merges are ScatterElements 'add' (no 'max', which needs opset 18, no 'mean'); attention is explicit."""
    model, data = exported("fashion-vit", "tofu")  # tofu-merge: MLERP, the group max
    graph = onnx.load_from_string(data).graph
    ops = {n.op_type for n in graph.node}
    reductions = {
        a.s.decode() for n in graph.node if n.op_type == "ScatterElements" for a in n.attribute if a.name == "reduction"
    }
    assert reductions == {"add"}
    assert "Softmax" in ops and "ReduceMax" in ops and not ops & {"Attention", "MultiHeadAttention", "Loop"}
    assert [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", 1, 32, 32]
    # the eager model keeps timm's fused attention after the export
    assert all(blk.attn.fused_attn for blk in model.blocks)  # type: ignore[union-attr]


def test_export_mode_switches_fused_attention_off_and_back(sources: dict[str, Any]) -> None:
    model = build_model(sources["fashion-vit"], None, build_schedule(sources["fashion-vit"], "tome", 6, [R] * 6))
    with export_mode(model):
        assert not any(blk.attn.fused_attn for blk in model.blocks)  # type: ignore[union-attr]
    assert all(blk.attn.fused_attn for blk in model.blocks)  # type: ignore[union-attr]


def test_a_half_model_or_a_fractional_batch_is_a_clear_error(sources: dict[str, Any]) -> None:
    """A float16 model failed in its first layer ("Input type (float) and bias type (c10::Half)"); batch 2.5 was
    exported as 2 (until 2026-12-07)."""
    from searcher.deploy import parse_batch

    model = build_model(sources["fashion-vit"], None, build_schedule(sources["fashion-vit"], "tome", 6, [R] * 6))
    with pytest.raises(ConfigError, match=r"the model is torch.float16; export it in float32 \(model.float\(\)\)"):
        onnx_bytes(copy.deepcopy(model).half(), (1, 32, 32))
    with pytest.raises(ConfigError, match="--batch must be a positive integer"):
        parse_batch(2.5)  # type: ignore[arg-type]
    assert parse_batch(4.0) == 4  # type: ignore[arg-type]


def test_dense_group_max_equals_scatter_reduce(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ONNX form of MLERP's group max gives exactly the eager ``scatter_reduce('amax')``."""
    g = torch.Generator().manual_seed(0)
    out, values = torch.rand(3, 9, 1, generator=g), 2 * torch.rand(3, 6, 1, generator=g)
    dst = torch.randint(0, 9, (3, 6), generator=g)
    eager = merge._group_max(out, dst, values)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    assert torch.equal(merge._group_max(out, dst, values), eager)
    assert torch.equal(eager, out.scatter_reduce(1, dst.unsqueeze(-1), values, "amax"))


# ---------------------------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def vit_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "fashion-vit.rapid.json"
    from searcher.schedule import Schedule

    path.write_text(json.dumps(config_for("fashion-vit", Schedule.recipe("rapid", 6, R))))
    return path


def test_cli_writes_a_checked_static_batch_onnx(
    vit_config: Path, tmp_path: Path, real_fashion_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.onnx"
    argv = ["onnx", str(vit_config), str(out), "--batch", "7", "--opset", "18", "--images", "70"]
    assert main([*argv, "--data-dir", str(real_fashion_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["onnx"] == str(out) and result["batch"] == 7 and result["opset"] == 18
    assert result["check"]["images"] == 70 and result["check"]["split"] == "test" and result["check"]["reduced"]
    assert result["check"]["max_abs_diff"] <= ATOL and result["check"]["top1_agreement"] == 1.0
    assert result["throughput"]["img_s"] > 0 and result["throughput"]["batch_size"] == 7
    assert out.stat().st_size == result["bytes"] and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    session = ort_session(out)
    assert session.get_inputs()[0].shape == [7, 1, 32, 32]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--opset", "16"], "--opset must be an integer from 17 to 20"),
        (["--batch", "0"], "--batch must be a positive integer or 'dynamic'"),
        (["--images", "0"], "images (--images) must be at least 1"),
    ],
)
def test_cli_bad_options_exit_2(
    vit_config: Path, tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["onnx", str(vit_config), str(tmp_path / "m.onnx"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_cli_unwritable_out_exits_2_before_exporting(
    vit_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import searcher.deploy

    monkeypatch.setattr(searcher.deploy, "onnx_bytes", lambda *a, **k: pytest.fail("exported anyway"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    for out in (blocker / "m.onnx", tmp_path / "missing" / "m.onnx", tmp_path):
        assert main(["onnx", str(vit_config), str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and str(out) in err and err.count("\n") == 1, err
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_out_may_not_be_the_config_or_the_weights_it_exports(
    vit_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``searcher onnx c.json c.json`` replaced the config with the ONNX file, and ``--checkpoint w.pth`` with OUT
    ``w.pth`` the weights (every later load then failed its sha256), exit 0, until 2026-12-07."""
    import shutil

    import searcher.deploy

    monkeypatch.setattr(searcher.deploy, "onnx_bytes", lambda *a, **k: pytest.fail("exported anyway"))
    config = shutil.copy(vit_config, tmp_path / "c.json")
    before = Path(config).read_bytes()
    assert main(["onnx", str(config), str(tmp_path / "." / "c.json")]) == 2
    err = capsys.readouterr().err
    assert "c.json is the config it exports; write the ONNX file to another path" in err and err.count("\n") == 1
    assert Path(config).read_bytes() == before
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"weights")
    cfg = json.loads(before)
    cfg["model"]["checkpoint"] = str(weights)
    with pytest.raises(ConfigError, match="w.pth is the weights it exports"):
        searcher.deploy.to_onnx(cfg, weights)
    assert weights.read_bytes() == b"weights"


def test_without_the_onnx_extra_the_cli_says_what_to_install(
    vit_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnx and onnxruntime are the ``onnx`` extra: a plain install's ``searcher onnx`` ended in a traceback."""
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    assert main(["onnx", str(vit_config), str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'searcher[onnx]'" in err and "onnxruntime is missing" in err and err.count("\n") == 1


def test_failed_write_leaves_nothing(
    vit_config: Path, tmp_path: Path, exported: Any, real_fashion_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails at the end (disk full) is a clear error and leaves neither file nor temporary."""
    import searcher.deploy

    _, data = exported("fashion-vit", "rapid")
    monkeypatch.setattr(searcher.deploy, "onnx_bytes", lambda *a, **k: data)

    def full(src: Any, dst: Any) -> None:
        raise OSError(28, "No space left on device")

    out = tmp_path / "m.onnx"
    with monkeypatch.context() as m:
        m.setattr(os, "replace", full)
        with pytest.raises(ConfigError, match="No space left on device"):
            to_onnx(vit_config, out, images=8, data_dir=real_fashion_dir, throughput_batch=8)
    assert not list(tmp_path.iterdir())


def test_the_summary_explains_a_near_tie_in_the_matching() -> None:
    """A logit 0.17 apart on one image of 10,000 with the same top-1 (a near-tie the rounding breaks the other way)
    was printed without a word until 2026-12-07; a disagreeing top-1 stays a warning."""
    from searcher.deploy import onnx_text

    result = {"onnx": "m.onnx", "bytes": 1e6, "opset": 17, "batch": "dynamic", "export_s": 1.0,
              "check": {"images": 10000, "split": "test", "max_abs_diff": 0.17, "top1_agreement": 1.0, "reduced": True},
              "throughput": {"img_s": 100.0, "batch_size": 64, "threads": 1, "onnxruntime": "1.23"}}
    assert "nearly tie" in onnx_text(result) and "warning" not in onnx_text(result)
    result["check"].update(reduced=False)  # no matching to blame: a real difference, shown as it is
    assert "nearly tie" not in onnx_text(result)
    result["check"].update(max_abs_diff=4e-6, reduced=True)
    assert "nearly tie" not in onnx_text(result)
    result["check"].update(max_abs_diff=0.5, top1_agreement=0.999)
    assert "warning: ONNX and PyTorch disagree" in onnx_text(result) and "nearly tie" not in onnx_text(result)
