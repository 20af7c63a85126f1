"""The timm ViT adapter: official-ToMe fixture, r = 0 bit-identity, every reducer on every ViT flavour."""

from __future__ import annotations

import copy
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import Block, ParallelThingsBlock, ResPostBlock, VisionTransformer
from torch import nn

import searcher.models.timm_vit as timm_vit
from searcher.errors import ConfigError
from searcher.patch import apply, is_patched, remove, token_state
from searcher.reduce import NEEDS_CLS_ATTENTION
from searcher.schedule import Schedule, tokens_per_block

torch.set_num_threads(1)

SHARED = Path(os.environ.get("SEARCHER_SHARED") or Path(__file__).resolve().parents[2] / "shared")
TOME_FIXTURE = SHARED / "fixtures" / "tome_reference.pt"

TINY = dict(img_size=32, patch_size=4, embed_dim=32, depth=3, num_heads=2, num_classes=10)
VARIANTS: dict[str, Callable[[], VisionTransformer]] = {
    "vit": lambda: VisionTransformer(**TINY),
    "deit-distilled": lambda: VisionTransformerDistilled(**TINY),
    "layerscale": lambda: VisionTransformer(**TINY, init_values=0.1),
    "qk-norm": lambda: VisionTransformer(**TINY, qk_norm=True),
    "registers": lambda: VisionTransformer(**TINY, reg_tokens=4, no_embed_class=True),
    "avg-pool": lambda: VisionTransformer(**TINY, global_pool="avg"),
    "avg-pool-no-cls": lambda: VisionTransformer(**TINY, global_pool="avg", class_token=False),
    "wider-deeper": lambda: VisionTransformer(
        img_size=24, patch_size=3, embed_dim=48, depth=5, num_heads=3, mlp_ratio=2.0, num_classes=7
    ),
}
RECIPES: dict[str, dict[str, Any]] = {
    "tome": {"r": 8},
    "tofu": {"r": 8, "switch": 1},
    "pitome": {"r": 8},
    "rapid": {"r": 8, "switch": 1},
    "topk": {"r": 8},
    "topk-nofuse": {"r": 8, "fuse": False},
    "diffrate": {},
}


def build(name: str, seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    return VARIANTS[name]().eval()


def images(model: VisionTransformer, batch: int = 3, seed: int = 1) -> torch.Tensor:
    size = model.patch_embed.img_size
    return torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed))


def recipe(kind: str, model: VisionTransformer) -> Schedule:
    depth, n = len(model.blocks), model.patch_embed.num_patches + model.num_prefix_tokens
    if kind == "diffrate":
        kept = [n - 6 * (i + 1) for i in range(depth)]
        return Schedule.recipe("diffrate", depth=depth, prune_kept=kept, merge_kept=[k - 3 for k in kept])
    params = dict(RECIPES[kind])
    return Schedule.recipe(kind.removesuffix("-nofuse"), depth=depth, **params)


def needs_cls(schedule: Schedule) -> bool:
    return any(x.op in NEEDS_CLS_ATTENTION and not x.is_identity for x in schedule.layers)


# -- the official-ToMe fixture -------------------------------------------------------------------------------
def test_official_tome_fixture() -> None:
    if not TOME_FIXTURE.exists():
        pytest.skip(
            f"official ToMe fixture not found at {TOME_FIXTURE}; set SEARCHER_SHARED to the shared/ folder"
        )
    ref = torch.load(TOME_FIXTURE, weights_only=True)
    model = VisionTransformer(**ref["model_kwargs"]).eval()
    model.load_state_dict(ref["state_dict"])
    x = ref["input"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref["unreduced_logits"], rtol=0, atol=1e-4)
    depth = ref["model_kwargs"]["depth"]
    for case in ref["cases"]:
        r, prop = case["r"], case["prop_attn"]
        if isinstance(r, tuple):
            schedule = Schedule.tome_inflection(depth, *r, prop_attn=prop)
        elif isinstance(r, list):
            schedule = Schedule.from_list(r, depth=depth, prop_attn=prop)
        else:
            schedule = Schedule.constant(depth, r, prop_attn=prop)
        apply(model, schedule, trace_source=True)
        with torch.no_grad():
            logits = model(x)
        state = token_state(model)
        torch.testing.assert_close(logits, case["logits"], rtol=0, atol=1e-4, msg=f"case r={r}")
        assert state.history == case["tokens_after_each_block"]
        assert tokens_per_block(schedule, 65)[1:] == case["tokens_after_each_block"]
        assert state.source is not None and torch.equal(state.source, case["source"].to(state.source.dtype))
    remove(model)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref["unreduced_logits"], rtol=0, atol=1e-4)


# -- every flavour ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_r0_is_bit_identical_and_remove_restores(name: str) -> None:
    model = build(name)
    x = images(model)
    cls, keys = type(model), list(model.state_dict())
    with torch.no_grad():
        before = model(x)
        apply(model, Schedule.constant(len(model.blocks), 0))
        assert is_patched(model) and type(model) is not cls
        assert torch.equal(model(x), before)
        apply(model, Schedule.none(len(model.blocks)))
        assert torch.equal(model(x), before)
        apply(model, recipe("tome", model))
        assert not torch.equal(model(x), before)
        assert list(model.state_dict()) == keys  # patching swaps classes, never weights
        remove(model)
        assert type(model) is cls and not is_patched(model)
        assert all(type(b) is Block for b in model.blocks)
        assert not hasattr(model.blocks[0], "_searcher_state")
        assert torch.equal(model(x), before)
        remove(model)  # a no-op when not patched


@pytest.mark.parametrize("kind", sorted(RECIPES))
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_reducer_on_every_flavour(name: str, kind: str) -> None:
    model = build(name)
    schedule = recipe(kind, model)
    if needs_cls(schedule) and model.cls_token is None:
        with pytest.raises(ConfigError, match="class token"):
            apply(model, schedule)
        return
    apply(model, schedule)
    x = images(model)
    with torch.no_grad():
        logits = model(x)
        one = model(x[:1])  # batch 1, and batch independence
    assert logits.shape == (3, model.num_classes) and torch.isfinite(logits).all()
    torch.testing.assert_close(one[0], logits[0], rtol=1e-4, atol=1e-5)
    n = model.patch_embed.num_patches + model.num_prefix_tokens
    assert token_state(model).history == tokens_per_block(schedule, n, model.num_prefix_tokens)[1:]


def test_apply_is_idempotent_and_accepts_json() -> None:
    model = build("vit")
    x = images(model)
    schedule = recipe("rapid", model)
    with torch.no_grad():
        once = apply(model, schedule)(x)
        twice = apply(model, schedule.to_dict())(x)
    assert torch.equal(once, twice)
    assert sum(c.__name__.startswith("Reducing") for c in type(model).__mro__) == 1
    apply(model, recipe("tome", model))  # re-configure in place
    assert token_state(model).schedule == recipe("tome", model)
    remove(model)
    assert type(model) is VisionTransformer


def test_size_weighted_avg_pool() -> None:
    model = build("avg-pool")
    apply(model, Schedule.constant(len(model.blocks), 12))
    with torch.no_grad():
        feats = model.forward_features(images(model))
        sizes = token_state(model).sizes
        assert sizes is not None and sizes.shape[1] == feats.shape[1]
        pooled = model.pool(feats)
        patches, s = feats[:, 1:], sizes[:, 1:]
        torch.testing.assert_close(pooled, (patches * s).sum(1) / s.sum(1))
        assert not torch.allclose(pooled, patches.mean(1))


def test_fused_attention_mask_only_when_sizes_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unreduced blocks call the fused kernel with attn_mask=None; after a merge, a (B, 1, 1, N) mask."""
    masks: list[Any] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args: Any, attn_mask: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        masks.append(None if attn_mask is None else tuple(attn_mask.shape))
        return sdpa(*args, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(timm_vit.F, "scaled_dot_product_attention", spy)
    model = build("vit")
    assert all(b.attn.fused_attn for b in model.blocks)
    apply(model, Schedule.from_list([0, 8, 0], depth=3))
    with torch.no_grad():
        model(images(model, batch=2))
    assert masks == [None, None, (2, 1, 1, 57)]
    masks.clear()
    apply(model, Schedule.constant(3, 8, "tofu-prune"))  # pruning keeps all sizes 1
    with torch.no_grad():
        model(images(model, batch=2))
    assert masks == [None, None, None]


@pytest.mark.parametrize("kind", ["tome", "rapid", "topk", "diffrate"])
def test_unfused_attention_matches_fused(kind: str) -> None:
    model = build("vit")
    slow = copy.deepcopy(model)
    for blk in slow.blocks:
        blk.attn.fused_attn = False
    apply(model, recipe(kind, model))
    apply(slow, recipe(kind, model))
    x = images(model)
    with torch.no_grad():
        torch.testing.assert_close(slow(x), model(x), rtol=1e-4, atol=1e-5)


def test_train_mode_backward() -> None:
    torch.manual_seed(0)
    model = VisionTransformer(**TINY, drop_rate=0.1, drop_path_rate=0.1, attn_drop_rate=0.1).train()
    for kind in ("tome", "rapid", "topk", "diffrate", "pitome"):
        apply(model, recipe(kind, model))
        model.zero_grad()
        loss = model(images(model, batch=2)).logsumexp(-1).mean()
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert all(g is not None and torch.isfinite(g).all() for g in grads), kind


def test_autocast_bf16() -> None:
    model = build("vit")
    for kind in ("tome", "rapid"):
        apply(model, recipe(kind, model))
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.isfinite(model(images(model)).float()).all()


def test_distilled_tokens_are_protected() -> None:
    model = build("deit-distilled")
    apply(model, Schedule.constant(3, 30), trace_source=True)
    with torch.no_grad():
        model(images(model))
    source = token_state(model).source
    assert source is not None and source.shape == (3, 11, 66)  # 66 → 36 → 19 → 11: r = min(30, (t − 2) // 2)
    assert torch.equal(source[:, :2, :2], torch.eye(2).expand(3, 2, 2))  # CLS and dist tokens stay alone
    assert torch.equal(source[:, :2].sum(-1), torch.ones(3, 2))


@pytest.mark.parametrize("clone", ["deepcopy", "pickle"])
def test_copy_of_a_patched_model(clone: str) -> None:
    model = build("deit-distilled")
    apply(model, recipe("tome", model))
    twin = copy.deepcopy(model) if clone == "deepcopy" else pickle.loads(pickle.dumps(model))
    assert token_state(twin) is not token_state(model)
    assert twin.blocks[1]._searcher_state is token_state(twin)
    x = images(model)
    with torch.no_grad():
        assert torch.equal(twin(x), model(x))


def test_errors() -> None:
    with pytest.raises(ConfigError, match="no token-reduction adapter for a torch.nn.modules.linear.Linear"):
        apply(nn.Linear(2, 2), Schedule.constant(1, 1))
    model = build("vit")
    with pytest.raises(ConfigError, match="3 blocks"):
        apply(model, Schedule.constant(12, 8))
    with pytest.raises(ConfigError, match="unknown option"):
        apply(model, Schedule.constant(3, 8), trace=True)
    with pytest.raises(ConfigError, match="Schedule"):
        apply(model, [8, 8, 8])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not patched"):
        token_state(model)
    post = VisionTransformer(**TINY, block_fn=ResPostBlock)
    with pytest.raises(ConfigError, match="ResPostBlock"):
        apply(post, Schedule.constant(3, 8))
    parallel = VisionTransformer(**TINY, block_fn=ParallelThingsBlock)  # no .attn: named, not an AttributeError
    with pytest.raises(ConfigError, match="ParallelThingsBlock with NoneType"):
        apply(parallel, Schedule.constant(3, 8))
    model.set_grad_checkpointing(True)
    with pytest.raises(ConfigError, match="checkpointing"):
        apply(model, Schedule.constant(3, 8))
    model.set_grad_checkpointing(False)
    apply(model, Schedule.constant(3, 8))
    registers = build("registers")  # 5 prefix tokens: a DiffRate schedule keeping 3 is refused by apply, as by flops
    with pytest.raises(ConfigError, match="diffrate keeps 3 tokens but the model has 5 protected prefix tokens"):
        apply(registers, Schedule.recipe("diffrate", 3, prune_kept=[3] * 3, merge_kept=[3] * 3))
    assert not is_patched(registers)
    with pytest.raises(ConfigError, match="checkpointing"):  # turned on after apply: refused too, not a bad backward
        model.set_grad_checkpointing(True)
    assert not model.grad_checkpointing
    model.set_grad_checkpointing(False)
    with pytest.raises(ValueError, match="attn_mask"):
        model.blocks[0](torch.randn(1, 65, 32), attn_mask=torch.zeros(1, 1, 65, 65))


def test_r0_runs_exactly_the_unpatched_ops() -> None:
    """Profile: a patched model at r = 0 dispatches the same aten ops, fused attention included."""
    from torch.profiler import profile

    model = build("vit")
    x = images(model, batch=2)

    def op_counts() -> dict[str, int]:
        with torch.inference_mode(), profile() as prof:
            model(x)
        return {e.key: e.count for e in prof.key_averages()}

    plain = op_counts()
    apply(model, Schedule.none(len(model.blocks)))
    assert op_counts() == plain
    assert plain["aten::scaled_dot_product_attention"] == len(model.blocks)


def test_forward_intermediates_of_a_reduced_model() -> None:
    """timm's ``forward_intermediates``: the tokens each block keeps (NLC); the patch-grid maps (NCHW) need every
    token, so asking for them while tokens are removed is a clear error (it was a reshape error)."""
    model = build("vit")
    x = images(model)
    schedule = Schedule.constant(3, 8)
    apply(model, schedule)
    _, tokens = model.forward_intermediates(x, output_fmt="NLC")  # after each block, prefix tokens left out
    n = model.patch_embed.num_patches + model.num_prefix_tokens
    assert [t.shape[1] for t in tokens] == [c - model.num_prefix_tokens for c in tokens_per_block(schedule, n)[1:]]
    with pytest.raises(ConfigError, match="output_fmt='NLC'"):
        model.forward_intermediates(x)
    with pytest.raises(ConfigError, match="output_fmt='NLC'"):  # indices given by position, as timm users do
        model.forward_intermediates(x, [0, 1, 2])
    _, tokens = model.forward_intermediates(x, [2], False, False, False, "NLC")
    assert [t.shape[1] for t in tokens] == [tokens_per_block(schedule, n)[-1] - model.num_prefix_tokens]
    apply(model, Schedule.none(3))
    _, maps = model.forward_intermediates(x)
    assert maps[0].shape[-2:] == model.patch_embed.grid_size


def test_concurrent_forwards_of_one_patched_model() -> None:
    """Threads running one patched model at once (a serving thread pool, ``nn.DataParallel``'s replicas) each see
    their own tokens (one shared state until 2026-12-07: errors and silently wrong logits); a pickled or copied
    model keeps its schedule, not the last forward's tensors."""
    import io
    import threading

    model = build("vit")
    apply(model, Schedule.constant(3, 6), trace_source=True)
    xs = [images(model, batch=b) for b in (1, 4)]
    with torch.no_grad():
        refs = [model(x) for x in xs]
    bad: list[str] = []

    def work(i: int) -> None:
        for _ in range(15):
            try:
                with torch.no_grad():
                    if not torch.equal(model(xs[i]), refs[i]):
                        bad.append("wrong logits")
            except Exception as e:  # noqa: BLE001 - what a thread saw is the test's result
                bad.append(repr(e))

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1, 0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad
    avg = build("avg-pool")
    apply(avg, Schedule.constant(3, 6))
    with torch.no_grad():
        features = avg.forward_features(xs[1])
        assert torch.equal(avg.forward_head(features), avg(xs[1]))  # pooled with the sizes of its forward
        with pytest.raises(ConfigError, match="sizes of the last forward_features"):  # not an unweighted mean
            avg.forward_head(features[:1])
        # another thread, or the schedule applied again: no sizes for these tokens (an unweighted mean until
        # 2026-12-07)
        seen: list[BaseException] = []
        other = threading.Thread(target=lambda: _catch(seen, avg.forward_head, features))
        other.start()
        other.join()
        assert len(seen) == 1 and "this thread has run none since the schedule was applied" in str(seen[0])
        apply(avg, Schedule.constant(3, 6))
        with pytest.raises(ConfigError, match="this thread has run none"):
            avg.forward_head(features)
    state = token_state(model)
    assert state.source is not None and state.history  # this thread's last forward
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert token_state(loaded).source is None and token_state(loaded).schedule == state.schedule
    with torch.no_grad():
        assert torch.equal(loaded(xs[1]), refs[1])


def _catch(seen: list[BaseException], fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except BaseException as e:  # noqa: BLE001 - what the thread raised is the test's result
        seen.append(e)
