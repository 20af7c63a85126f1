"""AutoFormer supernet: official semantics (fixtures from the official code), presets, subnets, extraction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import timm
import torch

from searcher.errors import CheckpointError, ConfigError
from searcher.models.autoformer import (
    PRESETS,
    SUBNETS,
    AutoFormerSubnet,
    AutoFormerSupernet,
    ReducedTokens,
    SearchSpace,
    SubnetConfig,
    create_supernet,
    extract_subnet,
    load_checkpoint,
    num_params,
    relative_attention,
    relative_index,
)
from searcher.patch import apply, is_patched, remove, token_state
from searcher.schedule import POSITION_MODES, Schedule, tokens_per_block

SHARED = Path(os.environ.get("SEARCHER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FIXTURES = SHARED / "fixtures"
CKPT = FIXTURES / "autoformer_supernet_tiny_official_format.pth"
REF = FIXTURES / "autoformer_reference.pt"

needs_fixtures = pytest.mark.skipif(
    not (CKPT.exists() and REF.exists()),
    reason=f"AutoFormer reference fixtures not found under {FIXTURES} "
           "(set SEARCHER_SHARED to the shared/ folder)")


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(REF, weights_only=True)


@pytest.fixture(scope="module")
def official(reference: dict) -> AutoFormerSupernet:
    """The tiny official-format supernet, loaded as it is."""
    import argparse

    kw = dict(reference["supernet_kwargs"])
    kw["rel_pos"] = kw.pop("relative_position")
    kw.pop("drop_rate"), kw.pop("drop_path_rate")
    model = AutoFormerSupernet(**kw)
    with torch.serialization.safe_globals([argparse.Namespace]):
        state = torch.load(CKPT, weights_only=True)["model"]
    model.load_state_dict(state, strict=True)
    return model.eval()


@needs_fixtures
def test_official_subnets_logits_and_params(official: AutoFormerSupernet, reference: dict) -> None:
    for case in reference["subnets"]:
        cfg = SubnetConfig.from_dict(case["subnet"])
        official.set_sample_config(cfg)
        with torch.no_grad():
            logits = official(reference["input"])
        torch.testing.assert_close(logits, case["logits"], atol=1e-4, rtol=0)
        assert official.sampled_num_params() == case["params"]
        sub = extract_subnet(official, cfg)
        assert sum(p.numel() for p in sub.parameters()) == case["params"]
        with torch.no_grad():
            torch.testing.assert_close(sub(reference["input"]), logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,millions", [("autoformer-t", 5.868), ("autoformer-s", 22.891),
                                           ("autoformer-b", 53.692)])
def test_preset_param_counts(name: str, millions: float) -> None:
    cfg, space = SUBNETS[name], PRESETS[name]
    assert round(num_params(cfg, space.supernet) / 1e6, 3) == millions
    with torch.device("meta"):  # the real module, without allocating its weights
        sub = AutoFormerSubnet(cfg, space.supernet)
    assert sum(p.numel() for p in sub.parameters()) == num_params(cfg, space.supernet)
    # The released AutoFormer-T uses MLP ratio 3.0 in three layers, outside its space's {3.5, 4.0}
    # (official experiments/subnet/AutoFormer-T.yaml); it still fits the supernet.
    assert space.contains(cfg) == (name != "autoformer-t")


def test_subnet_config_round_trips() -> None:
    cfg = SUBNETS["autoformer-s"]
    assert SubnetConfig.from_dict(cfg.to_dict()) == cfg
    assert SubnetConfig.from_dict(cfg.to_official()) == cfg
    for space in PRESETS.values():
        assert SearchSpace.from_dict(space.to_dict()) == space


@pytest.mark.parametrize("bad", [
    {"embed_dim": [192, 216], "layer_num": 2, "mlp_ratio": [4.0, 4.0], "num_heads": [3, 3]},
    {"embed_dim": 192, "depth": 3, "mlp_ratio": [4.0, 4.0], "num_heads": [3, 3]},
    {"embed_dim": 192, "depth": 2, "mlp_ratio": [4.0, 4.0], "num_heads": [3, 3], "heads": 3},
    {"embed_dim": 192, "depth": 2, "mlp_ratio": [4.0, 4.0]},
    {"embed_dim": "wide", "depth": 2, "mlp_ratio": [4.0, 4.0], "num_heads": [3, 3]},
])
def test_subnet_config_rejects_malformed(bad: dict) -> None:
    with pytest.raises(ConfigError):
        SubnetConfig.from_dict(bad)


def test_fashion_space_sampling_and_bounds() -> None:
    space = PRESETS["fashion-autoformer"]
    model = create_supernet("fashion-autoformer").eval()
    x = torch.randn(2, 1, 32, 32)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for cfg in [space.largest(), space.smallest()] + [space.sample(g) for _ in range(4)]:
        assert space.contains(cfg)
        model.set_sample_config(cfg)
        with torch.no_grad():
            assert model(x).shape == (2, 10)
        seen.add(cfg)
    assert len(seen) > 2
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert [space.sample(g1) for _ in range(3)] == [space.sample(g2) for _ in range(3)]
    with pytest.raises(ConfigError, match="does not fit"):
        model.set_sample_config(SubnetConfig(192, 5, (4.0,) * 5, (4,) * 5))
    with pytest.raises(ConfigError, match="does not fit"):
        model.set_sample_config(SubnetConfig(160, 8, (4.0,) * 8, (4,) * 8))


def test_extract_subnet_matches_supernet_and_trains() -> None:
    torch.manual_seed(0)
    model = create_supernet("fashion-autoformer").eval()
    space = PRESETS["fashion-autoformer"]
    x = torch.randn(3, 1, 32, 32)
    cfg = space.sample(torch.Generator().manual_seed(1))
    before = model.sample_config
    sub = extract_subnet(model, cfg)
    assert model.sample_config == before  # extraction leaves the supernet's choice alone
    model.set_sample_config(cfg)
    with torch.no_grad():
        torch.testing.assert_close(sub(x), model(x), atol=1e-5, rtol=0)
    assert sum(p.numel() for p in sub.parameters()) == model.sampled_num_params()
    assert not any(isinstance(m, torch.nn.Linear) and type(m) is not torch.nn.Linear for m in sub.modules())
    # gradients reach the shared weights through the slices (one-shot supernet training)
    model.train()
    model(x).sum().backward()
    assert model.blocks[0].attn.qkv.weight.grad is not None
    assert model.blocks[cfg.depth - 1].fc1.weight.grad is not None
    if cfg.depth < len(model.blocks):
        assert model.blocks[cfg.depth].fc1.weight.grad is None


# -- checkpoints ---------------------------------------------------------------------------------------------
class _NotAllowed:  # a class the safe unpickler must refuse
    pass


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    import argparse

    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(CKPT, weights_only=True)["model"]


@needs_fixtures
def test_load_checkpoint_official_file_and_url(reference: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               official_state: dict) -> None:
    import argparse

    model = load_checkpoint(CKPT)
    assert model.config.embed_dim == 192 and model.config.depth == 3 and model.config.img_size == 32
    case = reference["subnets"][0]
    model.set_sample_config(case["subnet"])
    with torch.no_grad():
        torch.testing.assert_close(model(reference["input"]), case["logits"], atol=1e-4, rtol=0)
    # the official files also pickle the training args (argparse.Namespace), under a DDP prefix at times
    with_args = tmp_path / "with_args.pth"
    torch.save({"model": {f"module.{k}": v for k, v in official_state.items()}, "epoch": 3,
                "args": argparse.Namespace(gp=True, relative_position=True)}, with_args)
    assert load_checkpoint(with_args).config == model.config
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    from_url = load_checkpoint(with_args.as_uri())  # file:// goes through torch.hub like http(s)
    torch.testing.assert_close(from_url.state_dict(), model.state_dict())


@needs_fixtures
def test_load_checkpoint_errors(tmp_path: Path, official_state: dict) -> None:
    raw = CKPT.read_bytes()
    cases: dict[str, tuple[object, str]] = {
        "truncated": (raw[: len(raw) // 2], "truncated or corrupt"),
        "garbage": (b"not a checkpoint at all" * 10, "corrupt"),
        "evil": ({"model": official_state, "args": _NotAllowed()}, "pickles .*_NotAllowed"),
        "nan": ({"model": {**official_state, "norm.weight": torch.full((192,), float("nan"))}}, "NaN"),
        "vit": ({"model": timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=4,
                                            num_classes=10).state_dict()}, "timm/DeiT"),
        "partial": ({"model": {k: v for k, v in official_state.items() if not k.startswith("head.")}},
                    "lacks 'head.weight'"),
        "empty": ({"epoch": 1}, "no model state dict"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name}.pth"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint(path)
        assert str(path) in str(info.value), name
    with pytest.raises(CheckpointError, match="wrong shapes.*autoformer-t|autoformer-t.*wrong shapes"):
        load_checkpoint(CKPT, "autoformer-t")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="could not download"):
        load_checkpoint("http://127.0.0.1:9/supernet-tiny.pth")


# -- token reduction -----------------------------------------------------------------------------------------
RECIPES: dict[str, dict] = {
    "tome": {"r": 8}, "tofu": {"r": 8, "switch": 1}, "pitome": {"r": 8}, "rapid": {"r": 8, "switch": 1},
    "topk": {"r": 8}, "topk-nofuse": {"r": 8, "fuse": False},
    "diffrate": {"prune_kept": [60, 52, 44], "merge_kept": [56, 48, 40]},
}
SMALL = SubnetConfig(96, 3, (2.0, 3.0, 2.0), (2, 3, 2))  # a fast subnet of fashion-autoformer


def small_supernet(seed: int = 0) -> AutoFormerSupernet:
    torch.manual_seed(seed)
    model = create_supernet("fashion-autoformer").eval()
    model.set_sample_config(SMALL)
    return model


def fashion_images(batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def recipe(kind: str, positions: str = "tracked") -> Schedule:
    return Schedule.recipe(kind.removesuffix("-nofuse"), depth=SMALL.depth, positions=positions,
                           **RECIPES[kind])


def test_r0_patched_is_bit_identical_and_remove_restores() -> None:
    model = small_supernet()
    sub = extract_subnet(model)
    x = fashion_images()
    keys = list(model.state_dict())
    with torch.no_grad():
        before = model(x)
        for m in (model, sub):
            for kind in ("tome", "tofu", "pitome", "rapid", "topk"):
                for positions in POSITION_MODES:
                    apply(m, Schedule.recipe(kind, depth=SMALL.depth, r=0, positions=positions))
                    assert is_patched(m)
                    assert torch.equal(m(x), before), (type(m).__name__, kind, positions)
            apply(m, recipe("tome"))
            assert not torch.equal(m(x), before)
            remove(m)
            assert not is_patched(m) and torch.equal(m(x), before)
            remove(m)  # a no-op when not patched
    assert list(model.state_dict()) == keys


@pytest.mark.parametrize("kind", sorted(RECIPES))
def test_every_reducer_on_supernet_and_extracted_subnet(kind: str) -> None:
    model = small_supernet()
    sub = extract_subnet(model)
    x = fashion_images()
    for positions in POSITION_MODES:
        schedule = recipe(kind, positions)
        with torch.no_grad():
            logits = apply(model, schedule)(x)
            history = token_state(model).history
            torch.testing.assert_close(apply(sub, schedule)(x), logits, atol=1e-5, rtol=0)
            one = model(x[:1])
        assert logits.shape == (3, 10) and torch.isfinite(logits).all()
        torch.testing.assert_close(one[0], logits[0], atol=1e-5, rtol=1e-4)  # batch independence
        assert history == tokens_per_block(schedule, 65)[1:] and history[-1] < 65


class _Shuffling(ReducedTokens):
    """Permutes the patch tokens, with their sizes and positions, after block ``at``'s reduction."""

    at = 0

    def reduce(self, x: torch.Tensor, keys: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        x = super().reduce(x, keys, attn)
        if self.state.block - 1 != self.at:
            return x
        B, N, _ = x.shape
        g = torch.Generator().manual_seed(7)
        perm = torch.cat([torch.zeros(B, 1, dtype=torch.long),
                          1 + torch.stack([torch.randperm(N - 1, generator=g) for _ in range(B)])], dim=1)

        def take(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.gather(1, perm[..., None].expand(-1, -1, t.shape[-1]))

        st = self.state
        x, st.sizes, st.positions = take(x), take(st.sizes), take(st.positions)
        self.update(N - 1, None if st.positions is None else st.positions[:, 1:])
        return x


@pytest.mark.parametrize("r", [0, 8])
def test_tracked_positions_make_blocks_order_invariant(r: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shuffling the patch tokens together with their sizes and positions inside a block changes nothing with
    tracked or anchored positions and size-weighted gp (here after ToMe merged 8 tokens in block 0); with index-derived
    positions it does."""
    model = small_supernet()
    with torch.no_grad():  # tables as large as trained ones, so that positions matter
        for name, p in model.named_parameters():
            if "embeddings_table" in name:
                p.normal_(0.0, 1.0)
    x = fashion_images()
    for positions in POSITION_MODES:
        apply(model, Schedule.from_list([r, 0, 0], "tome", depth=3, positions=positions))
        with torch.no_grad():
            plain = model(x)
            monkeypatch.setattr(model, "_begin",
                                lambda t: _Shuffling(model._searcher_state, t, model.max_relative_position))
            shuffled = model(x)
            monkeypatch.undo()
        if positions != "index":
            torch.testing.assert_close(shuffled, plain, atol=1e-5, rtol=0)
        else:
            assert (shuffled - plain).abs().max() > 2e-3  # logits are ~0.05 with random weights


def test_gp_pooling_is_size_weighted() -> None:
    model = small_supernet()
    x = torch.randn(2, 5, 96)
    size = torch.tensor([1.0, 3.0, 1.0, 2.0, 1.0])[None, :, None].expand(2, -1, -1)
    expected = (x[:, 1:] * size[:, 1:]).sum(1) / size[:, 1:].sum(1)
    torch.testing.assert_close(model.forward_head(x, pre_logits=True, size=size), expected)
    torch.testing.assert_close(model.forward_head(x, pre_logits=True), x[:, 1:].mean(1))


def test_forward_head_of_a_patched_supernet_pools_with_its_forward_s_sizes() -> None:
    """``forward_head(forward_features(x))`` is ``forward(x)``: the unweighted mean was used (0.35 off, until
    2026-12-07)."""
    model = small_supernet()
    model.gp = True
    apply(model, Schedule.constant(3, SMALL.depth))
    x = fashion_images(2)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))
        with pytest.raises(ConfigError, match="sizes of the last forward_features"):
            model.forward_head(model.forward_features(x)[:1])


def test_reduction_errors() -> None:
    model = small_supernet()
    with pytest.raises(ConfigError, match="3 blocks|depth"):
        apply(model, Schedule.constant(7, 4))
    apply(model, Schedule.constant(3, 4))
    model.set_sample_config(PRESETS["fashion-autoformer"].largest())  # deeper subnet, stale schedule
    with pytest.raises(ConfigError, match="schedule has 3 layers"):
        model(fashion_images())
    with pytest.raises(ConfigError, match="unknown option"):
        apply(model, Schedule.constant(7, 4), positions="tracked")


def test_relative_attention_matches_dense_official_form() -> None:
    """The gather/scatter relative attention equals the official dense form (materialised (N, N, d) tables),
    values and gradients, with per-image fractional positions and an additive bias."""
    g = torch.Generator().manual_seed(0)
    B, H, N, d, rows = 2, 3, 17, 8, 30
    positions = torch.rand(B, N - 1, 2, generator=g) * 6
    index = relative_index(positions, 14)
    bias = torch.randn(B, 1, 1, N, generator=g, dtype=torch.double)
    inputs = [torch.randn(B, H, N, d, generator=g, dtype=torch.double, requires_grad=True) for _ in range(3)]
    inputs += [torch.randn(rows * 2, d, generator=g, dtype=torch.double, requires_grad=True) for _ in range(2)]

    def dense(q, k, v, tk, tv):  # official AttentionSuper.forward, per image
        rk, rv = tk[index[0]] + tk[index[1]], tv[index[0]] + tv[index[1]]  # (B, N, N, d)
        a = ((q @ k.transpose(-2, -1) + torch.einsum("bhid,bijd->bhij", q, rk)) * 0.3 + bias).softmax(-1)
        return a @ v + torch.einsum("bhij,bijd->bhid", a, rv)

    ours = relative_attention(*inputs[:3], 0.3, inputs[3], inputs[4], index, bias)[0]
    ref = dense(*inputs)
    torch.testing.assert_close(ours, ref)
    for a, b in zip(torch.autograd.grad(ours.sum(), inputs), torch.autograd.grad(ref.sum(), inputs), strict=True):
        torch.testing.assert_close(a, b)


def test_create_model_knows_the_autoformer_names() -> None:
    """``searcher evaluate --model autoformer-t --checkpoint F`` builds the paper's searched subnet; ``-supernet`` the
    whole one."""
    from searcher.models import create_model
    from searcher.models.autoformer import AutoFormerSubnet

    sub = create_model("autoformer-t", weights=False)
    assert isinstance(sub, AutoFormerSubnet) and sub.config == SUBNETS["autoformer-t"]
    assert isinstance(create_model("autoformer-t-supernet", weights=False), AutoFormerSupernet)
    with pytest.raises(ConfigError, match="takes no model arguments"):
        create_model("autoformer-t", img_size=64)
    # with its weights it needs its checkpoint: evaluate printed random weights' top-1 (until 2026-12-07)
    with pytest.raises(ConfigError, match="autoformer-t needs its trained weights: give its checkpoint"):
        create_model("autoformer-t")


def test_torch_export_before_any_forward_leaves_eager_forwards_right() -> None:
    """The relative-position index of the patch grid is cached per process; computed first under ``torch.export``,
    the cache held the tracer's placeholder, and every later forward of any AutoFormer computed wrong logits
    without an error (until 2026-12-07)."""
    from searcher.models import create_model
    from searcher.models.autoformer import _cached_grid_index

    model = create_model("fashion-autoformer")
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    _cached_grid_index.cache_clear()
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        after = model(x)
        _cached_grid_index.cache_clear()
        fresh = model(x)
        assert torch.equal(after, fresh) and torch.allclose(exported.module()(x), fresh, atol=1e-5)


def test_a_preset_takes_the_files_pooling_and_head(tmp_path: Path) -> None:
    """An AutoFormer-T file trained with ``gp=False``, or fine-tuned on 100 classes, loads as autoformer-t with its
    own pooling and head (until 2026-12-07 the preset's gp=True was used silently, and another head was refused
    with advice the CLI could not follow); a change_qkv=False file, whose shapes say nothing, is refused."""
    import argparse

    state = create_supernet("autoformer-t").state_dict()
    torch.save({"model": state, "args": argparse.Namespace(gp=False)}, tmp_path / "cls.pth")
    assert load_checkpoint(tmp_path / "cls.pth", "autoformer-t").gp is False
    head = {"head.weight": torch.zeros(100, state["head.weight"].shape[1]), "head.bias": torch.zeros(100)}
    torch.save({"model": {**state, **head}}, tmp_path / "c100.pth")
    model = load_checkpoint(tmp_path / "c100.pth", "autoformer-t")
    assert model.num_classes == 100 and model.gp
    torch.save({"model": state, "args": argparse.Namespace(change_qkv=False)}, tmp_path / "fixed.pth")
    with pytest.raises(CheckpointError, match="change_qkv=False"):
        load_checkpoint(tmp_path / "fixed.pth", "autoformer-t")


def test_a_schedule_keeping_no_patch_token_is_refused_where_patches_are_averaged() -> None:
    """DiffRate down to the class token: AutoFormer's ``gp`` (and timm's ``avg``) pooling averaged nothing and
    computed NaN logits without an error until 2026-12-07; with CLS pooling the class token is enough."""
    from timm.models.vision_transformer import VisionTransformer

    from searcher.models import create_model

    kept = [65] * 6 + [1]
    schedule = Schedule.recipe("diffrate", depth=7, prune_kept=kept, merge_kept=kept)
    with pytest.raises(ConfigError, match="layer 6: the schedule keeps no patch token"):
        apply(create_model("fashion-autoformer"), schedule)
    tiny = dict(img_size=32, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=7, num_heads=2)
    with pytest.raises(ConfigError, match="keeps no patch token"):
        apply(VisionTransformer(**tiny, global_pool="avg"), schedule)
    model = apply(VisionTransformer(**tiny).eval(), schedule)  # the class token pools
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(2, 1, 32, 32))).all()


def test_the_embedded_supernet_loads_an_official_format_file_given_as_a_path(tmp_path: Path) -> None:
    """``{'model': state, 'args': Namespace}`` (how AutoFormer saves) and a ``Path``: both refused until
    2026-12-07 for the embedded supernet ("Weights only load failed", "'PosixPath' has no attribute")."""
    import argparse

    from searcher.models import create_model

    shipped = create_model("fashion-autoformer")
    torch.save({"model": shipped.state_dict(), "args": argparse.Namespace(gp=True)}, tmp_path / "f.pth")
    loaded = create_model("fashion-autoformer", checkpoint=tmp_path / "f.pth")
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(), loaded.state_dict().values(),
                                                 strict=True))
    torch.save({"model": shipped.state_dict(), "args": _NotAllowed()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match="pickles .*_NotAllowed, and searcher unpickles nothing but tensors"):
        create_model("fashion-autoformer", checkpoint=tmp_path / "evil.pth")
