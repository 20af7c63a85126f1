"""Analytic FLOPs (searcher.cost.flops): exact agreement with fvcore on random tiny models and schedules, and
the published figures of REFERENCE.md (DESIGN.md "Conventions: FLOPs")."""

from __future__ import annotations

import functools
import json
import math
import time
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from timm.layers import SwiGLU
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from searcher.cost import flops as F
from searcher.cost.flops import PARTS, Breakdown, autoformer_shape, count, describe, fvcore_flops
from searcher.errors import ConfigError
from searcher.models.autoformer import AutoFormerSupernet, SubnetConfig, extract_subnet
from searcher.models.autoformer_space import SUBNETS, get_space
from searcher.patch import apply
from searcher.reduce.registry import NEEDS_CLS_ATTENTION
from searcher.schedule import OPS, POSITION_MODES, Layer, Schedule


# ---------------------------------------------------------------------------------------------- helpers
@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is fastest, and kind to a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


GROUPS = ("patch_embed", "qkv", "proj", "mlp", "head", "norm")


def assert_agree(a: Breakdown, f: F.FvcoreCount) -> None:
    """Analytic and fvcore counts agree exactly (up to float summation), part by part."""
    for g in GROUPS:
        assert math.isclose(a.parts[g], f.parts[g], rel_tol=1e-9, abs_tol=1e-15), (g, a.parts, f.parts)
    mixed = a.parts["attention"] + a.parts["rel_pos"] + a.parts["reducer"]
    assert math.isclose(mixed, f.parts["attention_reducer"], rel_tol=1e-9, abs_tol=1e-15), (a.parts, f.parts)
    assert abs(f.parts["other"]) < 1e-15, f.parts
    assert math.isclose(a.total, f.total, rel_tol=1e-9)
    assert abs(a.total / f.total - 1) < 0.005  # the bound, far looser than the above


@functools.cache
def meta_timm(name: str) -> nn.Module:
    """A timm model without weights (shapes only): FLOPs are analytic."""
    import timm

    with torch.device("meta"):
        return timm.create_model(name)


# ---------------------------------------------------------------------------------------------- strategies
@st.composite
def layers(draw: st.DrawFn, depth: int, n_tokens: int, num_prefix: int, has_cls: bool) -> Schedule:
    """A random schedule: any op per block (CLS-attention ops only with a class token), random r."""
    ops = [op for op in OPS if has_cls or op not in NEEDS_CLS_ATTENTION]
    out = []
    for i in range(depth):
        op = draw(st.sampled_from(ops))
        if op == "diffrate":
            lo = num_prefix + 1  # a patch token stays: models that average them refuse to keep none
            kept = draw(st.lists(st.integers(lo, n_tokens + 1), min_size=2, max_size=2))
            out.append(Layer.make(op, layer=i, depth=depth, prune_kept=kept[0], merge_kept=kept[1],
                                  sizes=draw(st.sampled_from(["sum", "similarity"]))))
        elif op == "topk-prune":
            out.append(Layer.make(op, draw(st.integers(0, 12)), layer=i, depth=depth, fuse=draw(st.booleans())))
        elif op == "rapid-merge":
            out.append(Layer.make(op, draw(st.integers(0, 12)), layer=i, depth=depth,
                                  merge=draw(st.sampled_from(["mlerp", "wavg"]))))
        else:
            out.append(Layer.make(op, draw(st.integers(0, 12)) if OPS[op].uses_r else 0, layer=i, depth=depth))
    return Schedule(tuple(out), prop_attn=draw(st.booleans()), positions=draw(st.sampled_from(POSITION_MODES)))


@st.composite
def timm_candidates(draw: st.DrawFn) -> tuple[nn.Module, Schedule, bool]:
    """A random tiny timm ViT (DeiT-distilled, registers, no class token, avg/map pooling, qk-norm, SwiGLU,
    unfused attention, …), a random schedule for it, and whether to count norms."""
    heads, head_dim = draw(st.integers(1, 3)), draw(st.sampled_from([4, 8]))
    embed, depth = heads * head_dim, draw(st.integers(1, 3))
    img = (draw(st.sampled_from([8, 12, 16])), draw(st.sampled_from([8, 16])))
    distilled = draw(st.booleans())
    class_token = distilled or draw(st.booleans())
    reg = draw(st.integers(0, 2))
    pools = ["token", "avg", "map"] if class_token else ["avg", "map"]
    pool = "token" if distilled else draw(st.sampled_from(pools))
    kwargs: dict[str, Any] = dict(
        img_size=img, patch_size=4, embed_dim=embed, depth=depth, num_heads=heads,
        mlp_ratio=draw(st.sampled_from([1.0, 2.0, 2.5])), qkv_bias=draw(st.booleans()),
        qk_norm=draw(st.booleans()), num_classes=draw(st.sampled_from([0, 3, 10])), global_pool=pool,
        class_token=class_token, reg_tokens=reg, pre_norm=draw(st.booleans()),
        fc_norm=draw(st.sampled_from([None, True, False])))
    if not class_token or pool != "token":
        kwargs["no_embed_class"] = draw(st.booleans())
    if draw(st.booleans()):
        kwargs["mlp_layer"] = SwiGLU
    model = (VisionTransformerDistilled if distilled else VisionTransformer)(**kwargs).eval()
    if draw(st.booleans()):
        for blk in model.blocks:
            blk.attn.fused_attn = False
    n_tokens = (img[0] // 4) * (img[1] // 4) + model.num_prefix_tokens
    sched = draw(layers(depth, n_tokens, model.num_prefix_tokens, model.cls_token is not None))
    return model, sched, draw(st.booleans())


@pytest.fixture(scope="module")
def supernets() -> list[AutoFormerSupernet]:
    """Two tiny AutoFormer supernets: relative positions + mean pooling, and neither."""
    torch.manual_seed(0)
    common = dict(img_size=16, patch_size=4, in_chans=3, num_classes=5, embed_dim=32, depth=3, num_heads=4,
                  mlp_ratio=4.0, head_dim=8, max_relative_position=3)
    return [AutoFormerSupernet(**common, rel_pos=True, gp=True).eval(),
            AutoFormerSupernet(**common, rel_pos=False, gp=False).eval()]


@st.composite
def autoformer_candidates(draw: st.DrawFn) -> tuple[int, SubnetConfig, bool, Schedule, bool]:
    depth = draw(st.integers(1, 3))
    arch = SubnetConfig(draw(st.sampled_from([16, 24, 32])), depth,
                        tuple(draw(st.sampled_from([1.0, 2.0, 3.5, 4.0])) for _ in range(depth)),
                        tuple(draw(st.integers(1, 4)) for _ in range(depth)))
    sched = draw(layers(depth, 17, 1, True))
    return draw(st.integers(0, 1)), arch, draw(st.booleans()), sched, draw(st.booleans())


# ---------------------------------------------------------------------------------------------- agreement
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_analytic_equals_fvcore_on_random_candidates(data: st.DataObject, supernets: list) -> None:
    """200 random candidates — tiny timm ViTs of every variant and AutoFormer subnets (sliced in the supernet
    or extracted), every reducer op with random per-layer r — counted both ways: equal, part by part."""
    if data.draw(st.integers(0, 9), label="family") < 6:
        model, sched, norms = data.draw(timm_candidates(), label="timm")
        shape = describe(model)
    else:
        which, arch, extract, sched, norms = data.draw(autoformer_candidates(), label="autoformer")
        model = supernets[which]
        model.set_sample_config(arch)
        if extract:
            model = extract_subnet(model, arch)
        shape = describe(model)
        assert shape == describe(supernets[which], arch) == autoformer_shape(arch, supernets[which].config)
    apply(model, sched)  # in place: fvcore_flops would otherwise copy the model
    assert_agree(count(shape, sched, norms=norms), fvcore_flops(model, norms=norms))


def test_fvcore_flops_applies_schedule_and_arch_to_a_copy(supernets: list) -> None:
    sn = supernets[0]
    arch = SubnetConfig(24, 2, (2.0, 4.0), (3, 2))
    before, state = sn.sample_config, getattr(sn, "_searcher_state", None)
    sched = Schedule.recipe("rapid", depth=2, r=4, switch=1)
    f = fvcore_flops(sn, sched, arch)
    assert sn.sample_config == before and getattr(sn, "_searcher_state", None) is state
    assert_agree(count(describe(sn, arch), sched), f)
    assert F.flops(sn, sched, arch) == pytest.approx(f.total, rel=1e-9)


def test_fused_attention_is_counted_by_the_sdpa_handle() -> None:
    """Without the handle fvcore misses q·kᵀ and attn·v (REFERENCE.md: 4.25 G instead of 4.6 G for DeiT-S)."""
    model = VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=2, num_classes=3).eval()
    f = fvcore_flops(model)
    a = count(describe(model))
    assert f.by_operator["scaled_dot_product_attention"] == pytest.approx(a.parts["attention"], rel=1e-12)
    assert a.parts["attention"] == pytest.approx(2 * 2 * 17**2 * 16 / 1e9)  # 2·N²·D per block
    assert_agree(a, f)


# ---------------------------------------------------------------------------------------------- published
@pytest.mark.parametrize("name, published, ours", [
    ("deit_small_patch16_224", 4.61, 4.598882304),
    ("vit_base_patch16_224", 17.58, 17.563828224),
    ("deit_tiny_patch16_224", 1.26, 1.2536832),
])
def test_timm_models_match_published_figures(name: str, published: float, ours: float) -> None:
    """REFERENCE.md: the published figures are fvcore's default handles (LayerNorms at 5 FLOPs per element)
    plus attention; DESIGN.md's convention leaves the norms out (DeiT-Ti then reads 1.2537 G, 0.50 % lower)."""
    shape = describe(meta_timm(name))
    assert count(shape, norms=True).total == pytest.approx(published, rel=0.005)
    assert count(shape).total == pytest.approx(ours, rel=1e-12)
    if name != "deit_tiny_patch16_224":
        assert count(shape).total == pytest.approx(published, rel=0.005)


def test_autoformer_s_with_and_without_relative_positions() -> None:
    """AutoFormer-S: 5.17 G with relative positions counted as the official code runs them (REFERENCE.md); the
    breakdown's rel_pos share gives the figure without them (the official 4.9 G convention charges them almost
    nothing); searcher's own table form costs a third of the dense one."""
    shape = autoformer_shape(SUBNETS["autoformer-s"], get_space("autoformer-s").supernet)
    dense = count(shape, rel_pos="dense")
    assert dense.total == pytest.approx(5.17, rel=0.01)
    assert count(shape, rel_pos="dense", norms=True).total == pytest.approx(5.17, rel=0.002)
    share = dense.parts["rel_pos"]
    assert share == pytest.approx(sum(2 * 197**2 * 64 * h for h in SUBNETS["autoformer-s"].num_heads) / 1e9)
    without = count(shape, rel_pos="none")
    assert without.total == pytest.approx(dense.total - share) == pytest.approx(4.774, abs=0.001)
    assert without.total == pytest.approx(4.92, rel=0.035)
    tables = count(shape)
    assert tables.parts["rel_pos"] == pytest.approx(share * 60 / 197)  # 2R = 60 table rows instead of N = 197
    for name, fvcore_published in (("autoformer-t", 1.49), ("autoformer-b", 11.71)):
        s = autoformer_shape(SUBNETS[name], get_space(name).supernet)
        assert count(s, rel_pos="dense", norms=True).total == pytest.approx(fvcore_published, rel=0.01)


@pytest.mark.parametrize("r, survey", [(3, 4.36), (6, 3.81), (9, 3.27), (12, 2.75), (15, 2.24), (18, 1.87)])
def test_autoformer_s_tome_matches_the_survey(r: int, survey: float) -> None:
    """The survey's Table III GFLOPs of AutoFormer-S with ToMe at constant r, without relative-position terms:
    attention at the block's input length, MLP at the reduced length."""
    shape = autoformer_shape(SUBNETS["autoformer-s"], get_space("autoformer-s").supernet)
    b = count(shape, Schedule.constant(13, r), rel_pos="none")
    assert b.total == pytest.approx(survey, rel=0.025)
    assert b.parts["rel_pos"] == 0 and b.parts["reducer"] > 0
    assert b.tokens[0] == 197 and b.tokens[1] == 197 - r


def test_diffrate_deit_s_schedule_is_2_9_gflops() -> None:
    """DiffRate's searched DeiT-S schedule at 2.9 GFLOPs (REDUCERS.md), as a searcher schedule."""
    sched = Schedule.recipe("diffrate", depth=12,
                            prune_kept=[197, 196, 190, 168, 150, 139, 129, 117, 99, 78, 58, 3],
                            merge_kept=[197, 194, 176, 156, 141, 133, 121, 107, 88, 64, 56, 3])
    b = count(describe(meta_timm("deit_small_patch16_224")), sched)
    assert b.total == pytest.approx(2.9, rel=0.02)
    assert b.tokens == (197, 197, 194, 176, 156, 141, 133, 121, 107, 88, 64, 56, 3)


# ---------------------------------------------------------------------------------------------- unit checks
def test_reducer_costs_cover_every_op() -> None:
    assert set(F.REDUCER_COSTS) | {"none", "diffrate"} == set(OPS)


def test_reducer_macs_by_hand() -> None:
    """The matmuls of searcher.reduce at N = 11 tokens, A = 8 (2 heads of 4), E = 8, one prefix token."""
    shape = F.ModelShape(3, (4, 4), 8, 10, 1, (F.BlockShape(8, 8, 2, 16),))
    blk = shape.blocks[0]

    def cost(op: str, r: int = 2, **p: Any) -> int:
        return F.reducer_macs(Layer.make(op, r, **p), 11, blk, shape)

    assert cost("tome") == cost("tofu-prune") == cost("rapid-prune") == 6 * 5 * 4  # |A|·|B|·d
    assert cost("rapid-merge") == 6 * 5 * 4 + 11 * 8  # + the CLS row q_cls·kᵀ
    assert cost("pitome") == 10 * 10 * 4  # energy graph over the 10 patch tokens
    assert cost("topk-prune") == 11 * 8
    assert cost("tome", 0) == 0 and cost("pitome", 0) == 0  # nothing removed, nothing computed
    assert cost("diffrate", 0, prune_kept=11, merge_kept=20) == 0  # keeps all
    assert cost("diffrate", 0, prune_kept=9, merge_kept=20) == 11 * 8  # prune only: the CLS row
    assert cost("diffrate", 0, prune_kept=9, merge_kept=6) == 11 * 8 + 3 * 6 * 8  # + merged × kept × E
    assert cost("diffrate", 0, prune_kept=9, merge_kept=1) == 11 * 8  # only the prefix left: pure prune
    attn = F.ModelShape(3, (4, 4), 8, 10, 1, (blk,), cls_row="attn")  # AutoFormer reads the row off the map
    assert F.reducer_macs(Layer.make("topk-prune", 2), 11, blk, attn) == 0


def test_count_is_fast_and_well_formed() -> None:
    """Under 1 ms per candidate (the search calls it dozens of times per trial)."""
    shape = autoformer_shape(SUBNETS["autoformer-s"], get_space("autoformer-s").supernet)
    sched = Schedule.recipe("rapid", depth=13, r=9)
    b = count(shape, sched)
    assert tuple(b.parts) == PARTS and b.total == pytest.approx(sum(b.parts.values()))
    json.dumps(b.to_dict())
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(50):
            count(shape, sched)
        best = min(best, (time.perf_counter() - t) / 50)
    assert best < 1e-3


def test_count_and_describe_errors() -> None:
    shape = describe(meta_timm("deit_tiny_patch16_224"))
    with pytest.raises(ConfigError, match="12 blocks"):
        count(shape, Schedule.constant(6, 2))
    with pytest.raises(ConfigError, match="rel_pos"):
        count(shape, rel_pos="sparse")
    with pytest.raises(ConfigError, match="no FLOPs model"):
        describe(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="arch"):
        describe(meta_timm("deit_tiny_patch16_224"), SUBNETS["autoformer-t"])
    # a hybrid's patch embedding is a CNN ending in a strided convolution: its FLOPs are not modelled
    with pytest.raises(ConfigError, match="hybrid ViTs are not modelled"):
        describe(meta_timm("vit_tiny_r_s16_p8_224"))
    assert count(shape, Schedule.constant(12, 8).to_dict()).total == count(shape, Schedule.constant(12, 8)).total


def test_flops_uses_the_patched_schedule() -> None:
    model = VisionTransformer(img_size=16, patch_size=4, embed_dim=16, depth=2, num_heads=2, num_classes=3)
    full = F.flops(model)
    sched = Schedule.constant(2, 4)
    apply(model, sched)
    assert F.flops(model) == F.flops(model, sched) < full
    assert F.flops(model, Schedule.none(2)) == full


def test_flops_report(tmp_path: Any) -> None:
    """The dict behind ``searcher flops --json``, with and without a schedule file."""
    r = F.flops_report("fashion-vit")
    assert set(r) >= {"gflops", "fvcore_gflops", "params", "breakdown", "tokens", "conventions"}
    assert r["gflops"] == pytest.approx(r["fvcore_gflops"], rel=1e-9) and r["params"] > 0
    assert sum(r["breakdown"].values()) == pytest.approx(r["gflops"])
    path = tmp_path / "s.json"
    path.write_text(json.dumps(Schedule.constant(6, 8).to_dict()))
    reduced = F.flops_report("fashion-vit", path)
    assert reduced["gflops"] < r["gflops"] and reduced["tokens"] == [65, 57, 49, 41, 33, 25, 17]
    assert reduced["gflops"] == pytest.approx(reduced["fvcore_gflops"], rel=1e-9)
    json.dumps(reduced)
    with pytest.raises(ConfigError, match="does not exist"):
        F.flops_report("fashion-vit", tmp_path / "missing.json")
    wrapped = tmp_path / "wrapped.json"  # {"schedule": …} without a model, as read_schedule takes it
    wrapped.write_text(json.dumps({"schedule": Schedule.constant(6, 8).to_dict()}))
    assert F.flops_report("fashion-vit", wrapped)["gflops"] == reduced["gflops"]
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot read"):
        F.flops_report("fashion-vit", tmp_path / "bad.json")


def test_flops_of_an_autoformer_without_weights_warns_of_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Costs need no checkpoint: `searcher flops --model autoformer-t` warned of random weights (until 2026-12-08)."""
    with caplog.at_level("WARNING"):
        r = F.flops_report("autoformer-t")
    assert r["gflops"] > 1 and not caplog.records, caplog.text


def test_flops_report_of_an_exported_config(tmp_path: Any) -> None:
    """An exported config is counted with its own model: the AutoFormer subnet it runs and timm's model
    arguments, not the whole supernet or the default resolution."""
    import timm

    from searcher.deploy import config_for
    from searcher.models.autoformer_space import get_space

    small = get_space("fashion-autoformer").smallest().to_dict()
    schedule = Schedule.constant(small["depth"], 4)
    config = config_for("fashion-autoformer", schedule, small)
    path = tmp_path / "af.json"
    path.write_text(json.dumps(config))
    r = F.flops_report(None, path)
    assert r["model"] == "fashion-autoformer"
    assert r["gflops"] == pytest.approx(config["metrics"]["gflops"], rel=1e-9)
    assert r["gflops"] < F.flops_report("fashion-autoformer")["gflops"]
    assert r["gflops"] == pytest.approx(r["fvcore_gflops"], rel=1e-9)
    with pytest.raises(ConfigError, match="a config of fashion-autoformer, not fashion-vit"):
        F.flops_report("fashion-vit", path)

    vit = tmp_path / "vit.json"  # timm kwargs: a 64-pixel DeiT-Ti (16 patches), not the 224-pixel default
    tiny = Schedule.constant(12, 1)
    vit.write_text(json.dumps({"version": 1, "model": {"name": "deit_tiny_patch16_224", "kwargs": {"img_size": 64}},
                               "schedule": tiny.to_dict()}))
    expected = F.flops(timm.create_model("deit_tiny_patch16_224", img_size=64), tiny)
    assert F.flops_report(None, vit)["gflops"] == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ConfigError, match="give --model"):
        F.flops_report(None, None)
    # checked as evaluate checks it (until 2026-12-07 another version or unknown fields were counted all the same)
    for change, message in (({"version": 2}, "is config version 2"), ({"extra": 1}, r"unknown field\(s\) \['extra'\]")):
        path.write_text(json.dumps({**config, **change}))
        with pytest.raises(ConfigError, match=message):
            F.flops_report(None, path)


def test_flops_of_a_dynamic_img_size_model_at_another_size() -> None:
    """``dynamic_img_size=True`` runs at any size: ``img_size`` counts the tokens of that size (the configured
    size was counted, whatever the input, until 2026-12-07); a fixed-size model refuses it."""
    import timm

    tiny = dict(patch_size=8, embed_dim=32, depth=3, num_heads=2, num_classes=10)
    dynamic = timm.create_model("vit_small_patch16_224", img_size=32, dynamic_img_size=True, **tiny)
    schedule = Schedule.constant(3, 4)
    for size in (48, (40, 64)):
        fixed = timm.create_model("vit_small_patch16_224", img_size=size, **tiny)
        assert F.flops(dynamic, schedule, img_size=size) == pytest.approx(F.flops(fixed, schedule), rel=1e-12)
    assert F.flops(dynamic, schedule) == F.flops(timm.create_model("vit_small_patch16_224", img_size=32, **tiny),
                                                  schedule)
    with pytest.raises(ConfigError, match="dynamic_img_size=True"):
        F.flops(fixed, schedule, img_size=32)
    # a size the model cannot run at is an error; with dynamic_img_pad the padded patches are counted
    with pytest.raises(ConfigError, match="img_size 50x50 is not a multiple of the patch size 8x8"):
        F.flops(dynamic, schedule, img_size=50)
    padded = timm.create_model("vit_small_patch16_224", img_size=32, dynamic_img_size=True, dynamic_img_pad=True,
                               **tiny)
    assert F.flops(padded, schedule, img_size=50) == pytest.approx(F.flops(dynamic, schedule, img_size=56), rel=1e-12)
    with torch.no_grad():  # the model agrees: 7x7 patches at 50 px
        assert padded.forward_features(torch.randn(1, 3, 50, 50)).shape[1] == 49 + 1
