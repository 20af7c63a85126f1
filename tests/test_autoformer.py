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
    SearchSpace,
    SubnetConfig,
    create_supernet,
    extract_subnet,
    load_checkpoint,
    num_params,
)

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
