"""Schedules: JSON round-trips, strict validation, builders and the token-count rule."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from searcher.errors import ConfigError
from searcher.schedule import OPS, POSITION_MODES, RECIPES, Layer, Schedule, tokens_per_block, tokens_per_stage

# DiffRate's DeiT-S 2.9 GFLOPs entry (its compression_rate.json).
DIFFRATE_PRUNE = [197, 196, 190, 168, 150, 139, 129, 117, 99, 78, 58, 3]
DIFFRATE_MERGE = [197, 194, 176, 156, 141, 133, 121, 107, 88, 64, 56, 3]

finite = st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)


@st.composite
def layers(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(sorted(OPS)))
    d: dict[str, Any] = {"op": op}
    if OPS[op].uses_r:
        d["r"] = draw(st.integers(0, 64))
    if op == "pitome":
        d["margin"] = draw(finite)
    if op == "rapid-prune":
        d["tau"] = draw(finite)
    if op == "rapid-merge":
        d["rho"] = draw(st.floats(0.01, 1.0))
        d["lambda"] = draw(st.floats(0.0, 100.0))
        d["merge"] = draw(st.sampled_from(["mlerp", "wavg"]))
    if op == "topk-prune":
        d["fuse"] = draw(st.booleans())
    if op == "diffrate":
        d["prune_kept"] = draw(st.integers(1, 300))
        d["merge_kept"] = draw(st.integers(1, 300))
        d["sizes"] = draw(st.sampled_from(["sum", "similarity"]))
    return d


schedules = st.builds(
    lambda ls, prop, pos: {"version": 1, "prop_attn": prop, "positions": pos, "layers": ls},
    st.lists(layers(), min_size=1, max_size=16),
    st.booleans(),
    st.sampled_from(POSITION_MODES),
)


@settings(max_examples=60, deadline=None)
@given(schedules)
def test_json_round_trip(d: dict[str, Any]) -> None:
    s = Schedule.from_dict(d)
    assert s.to_dict() == d  # every field explicit, nothing added or lost
    again = Schedule.from_dict(json.loads(json.dumps(s.to_dict())), depth=len(d["layers"]))
    assert again == s and hash(again) == hash(s)


def test_design_md_example() -> None:
    d = {
        "version": 1,
        "prop_attn": True,
        "positions": "tracked",
        "layers": [
            {"op": "rapid-prune", "r": 8, "tau": 0.7},
            {"op": "tome", "r": 8},
            {"op": "rapid-merge", "r": 8, "rho": 0.2, "lambda": 50.0, "merge": "mlerp"},
            {"op": "none"},
        ],
    }
    s = Schedule.from_dict(d, depth=4)
    assert s.to_dict() == d
    assert s.rs == [8, 8, 8, 0] and s.layers[2].get("lambda") == 50.0


def test_defaults_filled_in() -> None:
    s = Schedule.from_dict(
        {"version": 1, "layers": [{"op": "rapid-merge", "r": 2}, {"op": "pitome", "r": 1}]}
    )
    assert s.prop_attn is True and s.positions == "anchored"
    assert s.layers[0].kw == {"rho": 0.2, "lambda": 50.0, "merge": "mlerp"}
    assert s.layers[1].kw == {"margin": 0.75 - 0.75 * 1 / 2}  # PiToMe's per-layer margin
    one = Schedule.from_dict({"version": 1, "layers": [{"op": "rapid-prune", "r": 1, "tau": 1}]})
    assert one.layers[0].get("tau") == 1.0  # an integer is a number


BAD: list[tuple[Any, str]] = [
    ([], "JSON object"),
    ({"layers": [{"op": "none"}]}, "missing 'version'"),
    ({"version": 1}, "missing 'layers'"),
    ({"version": 2, "layers": [{"op": "none"}]}, "version 2"),
    ({"version": 1, "layers": [], "extra": 1}, "unknown field"),
    ({"version": 1, "layers": []}, "non-empty list"),
    ({"version": 1, "layers": "tome"}, "non-empty list"),
    ({"version": 1, "prop_attn": "yes", "layers": [{"op": "none"}]}, "'prop_attn' must be a boolean"),
    ({"version": 1, "positions": "grid", "layers": [{"op": "none"}]}, "'positions' must be one of"),
    ({"version": 1, "layers": [{"op": "none"}, 3]}, "layer 1: expected an object"),
    ({"version": 1, "layers": [{"r": 3}]}, "layer 0: missing 'op'"),
    ({"version": 1, "layers": [{"op": "tome2", "r": 3}]}, "layer 0: unknown op 'tome2'; known ops"),
    ({"version": 1, "layers": [{"op": "none"}, {"op": "tome"}]}, "layer 1: op 'tome' needs 'r'"),
    ({"version": 1, "layers": [{"op": "tome", "r": -1}]}, "layer 0: 'r' must be >= 0"),
    ({"version": 1, "layers": [{"op": "tome", "r": 2.0}]}, "'r' must be an integer"),
    ({"version": 1, "layers": [{"op": "tome", "r": True}]}, "'r' must be an integer"),
    ({"version": 1, "layers": [{"op": "tome", "r": "8"}]}, "'r' must be an integer"),
    ({"version": 1, "layers": [{"op": "tome", "r": 1, "tau": 0.7}]}, "has no field(s) ['tau']"),
    ({"version": 1, "layers": [{"op": "none", "r": 1}]}, "has no field(s) ['r']"),
    ({"version": 1, "layers": [{"op": "rapid-prune", "r": 1, "tau": 2.0}]}, "'tau' must be"),
    (
        {"version": 1, "layers": [{"op": "rapid-prune", "r": 1, "tau": float("nan")}]},
        "'tau' must be a number",
    ),
    ({"version": 1, "layers": [{"op": "rapid-merge", "r": 1, "rho": 0.0}]}, "'rho' must be"),
    ({"version": 1, "layers": [{"op": "rapid-merge", "r": 1, "lambda": -1}]}, "'lambda' must be"),
    ({"version": 1, "layers": [{"op": "rapid-merge", "r": 1, "merge": "max"}]}, "'merge' must be one of"),
    ({"version": 1, "layers": [{"op": "topk-prune", "r": 1, "fuse": 1}]}, "'fuse' must be a boolean"),
    ({"version": 1, "layers": [{"op": "diffrate", "prune_kept": 3}]}, "needs 'merge_kept'"),
    (
        {"version": 1, "layers": [{"op": "diffrate", "prune_kept": 0, "merge_kept": 3}]},
        "'prune_kept' must be",
    ),
]


@pytest.mark.parametrize(("d", "message"), BAD)
def test_validation_errors(d: Any, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        Schedule.from_dict(d)
    assert message in str(e.value)


def test_wrong_depth() -> None:
    d = Schedule.constant(12, 8).to_dict()
    with pytest.raises(
        ConfigError, match="12 layers but the model has 4 blocks; build the schedule with depth=4"
    ):
        Schedule.from_dict(d, depth=4)


def test_builders() -> None:
    assert Schedule.constant(3, 5).to_dict()["layers"] == [{"op": "tome", "r": 5}] * 3
    assert Schedule.constant(2, 4, "rapid-prune", tau=0.5).layers[1].kw == {"tau": 0.5}
    assert Schedule.from_list([3, 2], depth=4).rs == [3, 2, 0, 0]  # ToMe pads with 0
    with pytest.raises(ConfigError, match="shorten"):
        Schedule.from_list([1, 2, 3], depth=2)
    with pytest.raises(ConfigError, match="depth"):
        Schedule.constant(0, 8)
    with pytest.raises(ConfigError, match="unknown op"):
        Schedule.constant(2, 8, "tome2")
    with pytest.raises(ConfigError, match="no field"):
        Schedule.constant(2, 8, "tome", tau=0.3)
    assert Schedule.none(3).is_identity and Schedule.constant(3, 0).is_identity
    assert not Schedule.constant(3, 1).is_identity


def test_tome_inflection_matches_parse_r() -> None:
    assert Schedule.tome_inflection(4, 8, -0.5).rs == [12, 9, 6, 4]  # the fixture's (8, -0.5) case
    assert Schedule.tome_inflection(12, 8, 0.0).rs == [8] * 12
    assert Schedule.tome_inflection(5, 4, 0.5).rs == [2, 3, 4, 5, 6]


def test_rapid_recipe() -> None:
    s = Schedule.recipe("rapid", depth=12, r=8)
    assert [layer.op for layer in s.layers] == ["rapid-prune"] * 4 + ["rapid-merge"] * 8  # RRRR IIIIIIII
    assert s.layers[0].kw == {"tau": 0.7}
    assert s.layers[4].kw == {"rho": 0.2, "lambda": 50.0, "merge": "mlerp"}
    s = Schedule.recipe(
        "rapid", depth=6, r=[1, 2, 3], switch=1, tau=0.5, rho=0.3, merge="wavg", **{"lambda": 10}
    )
    assert s.rs == [1, 2, 3, 0, 0, 0] and s.layers[0].get("tau") == 0.5
    assert s.layers[1].kw == {"rho": 0.3, "lambda": 10.0, "merge": "wavg"}
    assert Schedule.recipe("rapid", depth=9, r=1).layers[2].op == "rapid-prune"  # round(9/3) = 3
    with pytest.raises(ConfigError, match="switch"):
        Schedule.recipe("rapid", depth=4, r=1, switch=5)
    with pytest.raises(ConfigError, match="no parameter"):
        Schedule.recipe("rapid", depth=4, r=1, margin=0.3)


def test_other_recipes() -> None:
    tofu = Schedule.recipe("tofu", depth=12, r=8)
    assert [x.op for x in tofu.layers] == ["tofu-prune"] * 7 + ["tofu-merge"] * 5  # prune for l <= L//2
    assert [x.op for x in Schedule.recipe("tofu", depth=4, r=1, switch=2).layers] == ["tofu-prune"] * 2 + [
        "tofu-merge"
    ] * 2
    assert Schedule.recipe("tome", depth=3, r=[4, 2]).rs == [4, 2, 0]
    pit = Schedule.recipe("pitome", depth=4, r=4)
    assert pit.prop_attn is False and Schedule.recipe("pitome", depth=1, r=1, prop_attn=True).prop_attn
    assert [x.get("margin") for x in pit.layers] == [0.75, 0.5625, 0.375, 0.1875]
    assert Schedule.recipe("pitome", depth=2, r=1, margin=0.1).layers[1].get("margin") == 0.1
    keep = Schedule.recipe("pitome", depth=2, keep=0.9, n_tokens=197)
    assert keep.rs == [19, 17]  # floor(196 - 196·0.9) = 19, then floor(177 - 159.3) = 17
    evit = Schedule.recipe("topk", depth=12, r=20, blocks=[3, 6, 9], fuse=False)
    assert [i for i, x in enumerate(evit.layers) if x.op == "topk-prune"] == [3, 6, 9]
    assert evit.rs[3] == 20 and evit.layers[3].kw == {"fuse": False}
    # EViT's keep rate 0.7 applies at blocks 3, 6 and 9 only: the tokens stay whole until block 3
    # EViT keeps ceil(0.7·196) = 138 patch tokens + CLS + the fused token: 140, then 1 + ceil(0.7·139) + 1 = 100
    # and 1 + ceil(0.7·99) + 1 = 72 (one token fewer per stage until 2026-12-07: the fused token counted as kept)
    evit_keep = Schedule.recipe("topk", depth=12, keep=0.7, n_tokens=197, blocks=[3, 6, 9])
    assert evit_keep.rs == [0, 0, 0, 57, 0, 0, 40, 0, 0, 28, 0, 0]
    assert tokens_per_block(evit_keep, 197)[3:] == [197] + [140] * 3 + [100] * 3 + [72] * 3
    unfused = Schedule.recipe("topk", depth=12, keep=0.7, n_tokens=197, blocks=[3, 6, 9], fuse=False)
    assert tokens_per_block(unfused, 197)[-1] == 1 + math.ceil(0.7 * math.ceil(0.7 * math.ceil(0.7 * 196)))
    with pytest.raises(ConfigError, match="known recipes"):
        Schedule.recipe("evit", depth=12, r=2)
    with pytest.raises(ConfigError, match="n_tokens"):
        Schedule.recipe("topk", depth=12, keep=0.7)
    assert set(RECIPES) == {"tome", "tofu", "pitome", "rapid", "topk", "diffrate"}


def test_diffrate_recipe_and_counts() -> None:
    s = Schedule.recipe("diffrate", depth=12, prune_kept=DIFFRATE_PRUNE, merge_kept=DIFFRATE_MERGE)
    counts = tokens_per_block(s, 197)
    assert counts == [197, 197, 194, 176, 156, 141, 133, 121, 107, 88, 64, 56, 3]
    stages = tokens_per_stage(s, 197)
    assert stages[0] == (197, 197) and stages[2] == (194, 176) and stages[-1] == (56, 3)
    assert Schedule.from_dict(s.to_dict(), depth=12) == s
    with pytest.raises(ConfigError, match="not r"):
        Schedule.recipe("diffrate", depth=2, r=3, prune_kept=[5, 5], merge_kept=[5, 5])
    with pytest.raises(ConfigError, match="needs prune_kept"):
        Schedule.recipe("diffrate", depth=2, prune_kept=[5, 5])
    with pytest.raises(ConfigError, match="protected"):
        tokens_per_block(Schedule.recipe("diffrate", depth=1, prune_kept=1, merge_kept=1), 10, num_prefix=2)


@pytest.mark.parametrize(("r", "final"), [(11, 65), (14, 29), (17, 8), (20, 4)])
def test_rapid_table1_token_counts(r: int, final: int) -> None:
    """RAPID Table 1 headers: constant r on 197 tokens and 12 blocks (ToMe's 50 % cap included)."""
    for kind in ("tome", "tofu", "rapid", "pitome", "topk"):
        assert tokens_per_block(Schedule.recipe(kind, depth=12, r=r), 197)[-1] == final


def test_cap_and_prefix() -> None:
    assert tokens_per_block(Schedule.constant(4, 40), 65) == [65, 33, 17, 9, 5]  # the fixture's r=40 case
    assert tokens_per_block(Schedule.constant(2, 40), 66, num_prefix=2) == [66, 34, 18]
    assert tokens_per_block(Schedule.constant(1, 3), 6, num_prefix=5) == [6, 6]  # one patch: nothing to merge
    assert tokens_per_stage(Schedule.constant(2, 8), 197) == [(197, 189), (189, 181)]
    with pytest.raises(ValueError, match="n_tokens"):
        tokens_per_block(Schedule.constant(1, 1), 0)


def test_layer_make_and_replace() -> None:
    layer = Layer.make("rapid-merge", 3, rho=0.5)
    assert layer.to_dict() == {"op": "rapid-merge", "r": 3, "rho": 0.5, "lambda": 50.0, "merge": "mlerp"}
    with pytest.raises(ConfigError, match="takes no 'r'"):
        Layer.make("diffrate", 3, prune_kept=1, merge_kept=1)
    s = Schedule.constant(2, 1).replace(prop_attn=False, positions="index")
    assert s.to_dict()["prop_attn"] is False and s.positions == "index"
    with pytest.raises(ConfigError, match="positions"):
        Schedule.constant(2, 1).replace(positions="nope")


def test_schedules_built_in_python_are_checked_like_json() -> None:
    """The constructors a Python user calls check what ``from_dict`` checks (until 2026-12-07 ``prop_attn="false"``
    switched proportional attention on, and a bad layer failed only in the forward pass); numpy and torch
    integers are integers."""
    import numpy as np

    with pytest.raises(ConfigError, match="'prop_attn' must be a boolean"):
        Schedule.constant(3, 3, prop_attn="false")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="layer 0 is 8, not a Layer"):
        Schedule(layers=(8, 8))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown op 'bogus'"):
        Layer("bogus", 2)
    with pytest.raises(ConfigError, match="'r' must be an integer >= 0"):
        Layer("tome", -5)
    with pytest.raises(ConfigError, match=r"topk blocks must be a list of block indices such as \[3, 6, 9\], got 3"):
        Schedule.recipe("topk", depth=12, r=2, blocks=3)
    with pytest.raises(ConfigError, match="topk blocks must be a list"):
        Schedule.recipe("topk", depth=12, r=2, blocks=["a"])
    with pytest.raises(ConfigError, match="either r or a keep rate"):
        Schedule.recipe("pitome", depth=12, r=5, keep=0.9, n_tokens=197)
    assert Schedule.from_list(np.array([3, 2, 1])).rs == [3, 2, 1] == Schedule.from_list([np.int64(3), 2, 1]).rs
    assert Schedule.recipe("tome", 3, np.int64(2)).rs == [2, 2, 2] == Schedule.recipe("tome", 3, torch.tensor(2)).rs
    assert Schedule.from_dict(Schedule.constant(3, np.int64(2)).to_dict()).rs == [2, 2, 2]


def test_capped_schedules_are_one_spelling_of_one_computation() -> None:
    """r beyond what a block can remove (ToMe's 50 % cap) changes nothing: capped, two such schedules are equal,
    so a study sees one candidate (a per-block draw was evaluated again beside the constant-r recipe it equals,
    and listed twice in the Pareto set, until 2026-12-07)."""
    a = Schedule.from_list([32, 30, 25, 18, 14, 30], "topk-prune")
    b = Schedule.from_list([32] * 6, "topk-prune")
    assert a != b and a.capped(65) == b.capped(65)
    assert a.capped(65).rs == [32, 16, 8, 4, 2, 1] and tokens_per_block(a.capped(65), 65) == tokens_per_block(a, 65)
    assert a.capped(65).capped(65) == a.capped(65)


def test_tokens_per_block_takes_the_dict_form_as_apply_and_flops_do() -> None:
    schedule = Schedule.constant(13, 12)
    assert tokens_per_block(schedule.to_dict(), 197) == tokens_per_block(schedule, 197)  # AttributeError before
