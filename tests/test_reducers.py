"""Reducers: the conformance suite every registered reducer passes, plus hand-computed examples."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from searcher.errors import ConfigError
from searcher.patch import ADAPTERS, Adapter, apply, register_adapter, remove, token_state
from searcher.reduce import (
    REDUCERS,
    Plan,
    ReduceInput,
    TokenState,
    apply_plan,
    bipartite_scores,
    cls_attention,
    get_reducer,
    mlerp,
)
from searcher.reduce.pitome import pitome_energy
from searcher.reduce.rapid import importance_scores, redundancy_scores
from searcher.schedule import Layer, Schedule, effective_r, tokens_per_block

torch.set_num_threads(1)

MERGE_OPS = {"tome", "tofu-merge", "pitome", "rapid-merge", "diffrate"}  # sizes are conserved
CLS_OPS = {"rapid-merge", "topk-prune", "diffrate"}
N_PATCHES, DIM = 16, 8


def make_layer(op: str, r: int, n: int, prefix: int = 1) -> Layer:
    """A schedule layer removing ``r`` of ``n`` tokens with ``op`` (DiffRate: by merging, see
    test_diffrate_*)."""
    if op == "diffrate":
        return Layer.make("diffrate", prune_kept=n, merge_kept=n - effective_r(r, n, prefix))
    extra = {"tau": 0.0} if op == "rapid-prune" else {}  # random keys: make redundancy positive somewhere
    return Layer.make(op, r, **extra)


def make_input(
    batch: int = 3, prefix: int = 1, dtype: torch.dtype = torch.float32, seed: int = 0, sizes: bool = False
) -> ReduceInput:
    g = torch.Generator().manual_seed(seed)
    n = prefix + N_PATCHES
    x = torch.randn(batch, n, DIM, generator=g).to(dtype)
    metric = torch.randn(batch, n, DIM, generator=g).to(dtype)
    attn = torch.randn(batch, n, generator=g).softmax(-1)
    s = torch.randint(1, 4, (batch, n, 1), generator=g).float() if sizes else None
    if s is not None:
        s[:, :prefix] = 1
    return ReduceInput(x=x, metric=metric, num_prefix=prefix, sizes=s, cls_attn=lambda: attn, layer=1, depth=4)


def run(op: str, inp: ReduceInput, r: int, **state: torch.Tensor | None):
    layer = make_layer(op, r, inp.x.shape[1], inp.num_prefix)
    plan = REDUCERS[op](inp, layer.r, **layer.kw)
    if plan is None:
        return None, layer
    return apply_plan(plan, inp.x, inp.sizes, state.get("positions"), state.get("source")), layer


# -- conformance ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("op", "prefix"), [(op, p) for op in sorted(REDUCERS) for p in (0, 1, 2, 5) if p or op not in CLS_OPS]
)
@pytest.mark.parametrize("r", [1, 4, 8, 30])
def test_shapes_counts_and_protected_tokens(op: str, prefix: int, r: int) -> None:
    inp = make_input(prefix=prefix, sizes=True)
    out, layer = run(op, inp, r)
    n = inp.x.shape[1]
    expected = tokens_per_block(Schedule(layers=(layer,)), n, prefix)[1]
    assert out is not None
    x, sizes, _, _ = out
    assert x.shape == (3, expected, DIM)
    assert torch.isfinite(x).all()
    assert torch.equal(x[:, :prefix], inp.x[:, :prefix])  # protected tokens untouched, in front
    assert sizes is not None and torch.equal(sizes[:, :prefix], torch.ones(3, prefix, 1))
    assert (sizes > 0).all()
    if op in MERGE_OPS:
        assert torch.allclose(sizes.sum(1), inp.sizes.sum(1))


@pytest.mark.parametrize("op", sorted(REDUCERS))
def test_r_zero_is_identity(op: str) -> None:
    inp = make_input()
    layer = make_layer(op, 0, inp.x.shape[1])
    assert REDUCERS[op](inp, layer.r, **layer.kw) is None


@pytest.mark.parametrize("op", sorted(set(REDUCERS) - {"diffrate"}))
def test_caller_errors(op: str) -> None:
    with pytest.raises(ValueError, match="r="):
        REDUCERS[op](make_input(), -1)


@pytest.mark.parametrize("op", sorted(REDUCERS))
def test_batch_independence(op: str) -> None:
    inp = make_input(batch=4, sizes=True)
    (x, sizes, _, _), _ = run(op, inp, 6)
    for b in range(4):
        one = ReduceInput(
            x=inp.x[b : b + 1],
            metric=inp.metric[b : b + 1],
            num_prefix=1,
            sizes=inp.sizes[b : b + 1],
            cls_attn=lambda b=b: inp.cls_attention("t")[b : b + 1],
        )
        (x1, s1, _, _), _ = run(op, one, 6)
        torch.testing.assert_close(x1[0], x[b], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(s1[0], sizes[b])


@pytest.mark.parametrize("op", sorted(REDUCERS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(op: str, dtype: torch.dtype) -> None:
    inp = make_input(dtype=dtype, sizes=True)
    (x, sizes, _, _), layer = run(op, inp, 6)
    assert x.dtype == dtype and torch.isfinite(x).all()
    assert x.shape[1] == tokens_per_block(Schedule(layers=(layer,)), inp.x.shape[1])[1]
    if op in MERGE_OPS:
        assert torch.allclose(sizes.sum(1), inp.sizes.sum(1))


@pytest.mark.parametrize("positions", ["tracked", "anchored"])
@pytest.mark.parametrize("op", sorted(REDUCERS))
def test_positions_and_source_follow_tokens(op: str, positions: str) -> None:
    """Positions stay inside the grid and are size-weighted centroids ("tracked") or the position of one of
    the token's sources ("anchored"); the source map partitions the input."""
    inp = make_input(sizes=False)
    n = inp.x.shape[1]
    schedule = Schedule(layers=(make_layer(op, 6, n),), positions=positions)
    state = TokenState(schedule, 1, trace_source=True, track_positions=True)
    state.begin(inp.x)
    x = state.reduce(inp.x, inp.metric, cls_attn=inp.cls_attn)
    assert state.history == [x.shape[1]]
    pos, src = state.positions, state.source
    assert pos is not None and src is not None
    assert pos.shape == (3, x.shape[1], 2) and (pos >= 0).all() and (pos <= 3).all()
    grid = torch.stack([torch.arange(16) // 4, torch.arange(16) % 4], -1).float()
    grid = torch.cat([torch.zeros(1, 2), grid])  # (n, 2), prefix (0, 0)
    if op == "topk-prune":
        return  # the fused token's position is attention-weighted
    sizes = state.sizes if state.sizes is not None else torch.ones(3, x.shape[1], 1)
    assert torch.allclose(src.sum(-1, keepdim=True), sizes)  # each output covers `size` inputs
    if positions == "tracked":
        torch.testing.assert_close(pos, (src @ grid) / src.sum(-1, keepdim=True))
    else:  # on the grid, where one of the token's own sources was
        at = (grid[None, None] == pos[:, :, None]).all(-1)  # (B, M, n): which input sits at the position
        assert (at & (src > 0)).any(-1).all()
    if op in MERGE_OPS:
        assert torch.equal(src.sum(1), torch.ones(3, n))  # every input token covered exactly once


def test_registry_unknown_op() -> None:
    with pytest.raises(ConfigError, match="known ops"):
        get_reducer("tome2")
    assert get_reducer("tome") is REDUCERS["tome"]


def test_cls_ops_need_the_row() -> None:
    inp = ReduceInput(x=torch.randn(1, 9, 4), metric=torch.randn(1, 9, 4), cls_attn=None)
    with pytest.raises(ValueError, match="CLS attention"):
        REDUCERS["topk-prune"](inp, 2)


def test_state_without_cls_token() -> None:
    state = TokenState(Schedule.constant(1, 2, "topk-prune"), num_prefix=0, has_cls=False)
    x = torch.randn(1, 8, 4)
    state.begin(x)
    with pytest.raises(ConfigError, match="no class token"):
        state.reduce(x, x, cls_attn=lambda: torch.ones(1, 8) / 8)


def test_state_depth_and_mask() -> None:
    state = TokenState(Schedule.constant(1, 2), num_prefix=1)
    x = torch.randn(2, 9, 4)
    state.begin(x)
    assert state.attn_mask() is None  # all sizes 1: no mask, fused kernels stay usable
    y = state.reduce(x, x)
    mask = state.attn_mask(torch.float16)
    assert mask is not None and mask.shape == (2, 1, 1, 7) and mask.dtype == torch.float16
    assert torch.allclose(mask.float().exp().sum(-1), torch.full((2, 1, 1), 9.0), atol=1e-2)
    with pytest.raises(ConfigError, match="1 layers"):
        state.reduce(y, y)
    state = TokenState(Schedule.constant(1, 2).replace(prop_attn=False), num_prefix=1)
    state.begin(x)
    state.reduce(x, x)
    assert state.sizes is not None and state.attn_mask() is None


def test_index_positions_mode() -> None:
    state = TokenState(Schedule.constant(1, 4).replace(positions="index"), num_prefix=1)
    x = torch.randn(1, 17, 4)
    state.begin(x)
    state.reduce(x, x)
    pos = state.token_positions()  # 12 patches: w = int(sqrt(12)) = 3
    assert pos.shape == (1, 13, 2)
    assert pos[0, 1:5].tolist() == [[0, 0], [0, 1], [0, 2], [1, 0]]


# -- hand-computed examples --------------------------------------------------------------------------------
def test_mlerp_by_hand() -> None:
    """ToFu eq. 5: the mean rescaled to the largest norm of the group — not to the destination's own norm."""
    x = torch.tensor([[[3.0, 0.0], [0.0, 4.0], [1.0, 1.0]]])  # norms 3, 4, √2
    sizes = torch.tensor([[[3.0], [1.0], [1.0]]])
    plan = Plan(keep=torch.tensor([[2, 0]]), src=torch.tensor([[1]]), dst=torch.tensor([[1]]), mode="mlerp")
    out, s, _, _ = apply_plan(plan, x, sizes)
    mean = torch.tensor([9.0, 4.0]) / 4  # (3·[3,0] + 1·[0,4]) / 4 = [2.25, 1]
    expected = mean * 4.0 / math.hypot(2.25, 1.0)  # max norm 4 (the source's), over ‖mean‖
    torch.testing.assert_close(out[0, 1], expected)
    torch.testing.assert_close(out[0, 0], x[0, 2])  # untouched token keeps its value exactly
    assert s.flatten().tolist() == [1.0, 4.0]
    torch.testing.assert_close(mlerp(torch.tensor([3.0, 4.0]), torch.tensor([10.0])), torch.tensor([6.0, 8.0]))


@pytest.mark.parametrize("mode", ["wavg", "mlerp", "avg"])
def test_half_precision_tokens_merge_without_overflow(mode: str) -> None:
    """Two size-40 tokens of activations near 1500 sum to 120,000, above float16's 65,504: the merged token was
    inf (NaN logits) where the unreduced model is finite (until 2026-12-07); the sums are float32 now."""
    x = torch.full((1, 3, 2), 1500.0, dtype=torch.float16)
    sizes = torch.tensor([[[1.0], [40.0], [40.0]]])
    plan = Plan(keep=torch.tensor([[0, 2]]), src=torch.tensor([[1]]), dst=torch.tensor([[1]]), mode=mode)
    out, s, _, _ = apply_plan(plan, x, sizes)
    assert out.dtype == torch.float16 and torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 1].float(), torch.full((2,), 1500.0))


def test_size_weighted_merge_by_hand() -> None:
    x = torch.tensor([[[1.0], [2.0], [10.0], [4.0]]])
    sizes = torch.tensor([[[1.0], [2.0], [1.0], [3.0]]])
    positions = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 3.0]]])
    plan = Plan(keep=torch.tensor([[0, 3]]), src=torch.tensor([[1, 2]]), dst=torch.tensor([[1, 1]]))
    out, s, pos, _ = apply_plan(plan, x, sizes, positions)
    torch.testing.assert_close(out.flatten(), torch.tensor([1.0, (2 * 2 + 10 + 3 * 4) / 6]))
    assert s.flatten().tolist() == [1.0, 6.0]
    torch.testing.assert_close(pos[0, 1], torch.tensor([4 / 6, 10 / 6]))  # size-weighted centroid


def test_unweighted_mean_and_fused_sum() -> None:
    x = torch.tensor([[[1.0], [2.0], [6.0]]])
    sizes = torch.tensor([[[1.0], [1.0], [5.0]]])
    plan = Plan(keep=torch.tensor([[0, 1]]), src=torch.tensor([[2]]), dst=torch.tensor([[1]]), mode="avg")
    out, s, _, _ = apply_plan(plan, x, sizes)
    assert out.flatten().tolist() == [1.0, 4.0] and s.flatten().tolist() == [1.0, 6.0]
    plan = Plan(
        keep=torch.tensor([[0]]),
        src=torch.tensor([[1, 2]]),
        dst=torch.tensor([[1, 1]]),
        mode="sum",
        weight=torch.tensor([[0.5, 0.25]]),
        n_new=1,
    )
    out, s, _, _ = apply_plan(plan, x, None)
    assert out.flatten().tolist() == [1.0, 0.5 * 2 + 0.25 * 6] and s is None  # EViT: unnormalised, size 1


def test_rapid_redundancy_score_by_hand() -> None:
    """``red_i = Σ_j max(0, S_ij − τ)``; without redundancy, ``max_j S_ij − 1``; protected rows stay -inf."""
    s = torch.tensor([[[-math.inf, -math.inf, -math.inf], [0.9, 0.8, 0.1], [0.5, 0.6, 0.2]]])
    rank = redundancy_scores(s, tau=0.7)
    assert rank[0, 0] == -math.inf
    torch.testing.assert_close(rank[0, 1:], torch.tensor([0.2 + 0.1, 0.6 - 1.0]))


def test_rapid_importance_score_by_hand() -> None:
    """``Ŝ = max_j S_ij − λ(a_i − θ)``, θ the k-th largest patch attention with k = ceil(ρ·T)."""
    attn = torch.tensor([[0.4, 0.3, 0.1, 0.15, 0.05]])  # CLS + 4 patches; A = tokens 0, 2, 4
    s = torch.tensor([[[-math.inf, -math.inf], [0.8, 0.2], [0.1, 0.6]]])
    rank, idx = importance_scores(s, attn, rho=0.5, lam=50.0, num_prefix=1)  # k = 2 → θ = 0.15
    assert rank[0, 0] == -math.inf
    torch.testing.assert_close(rank[0, 1:], torch.tensor([0.8 - 50 * (0.1 - 0.15), 0.6 - 50 * (0.05 - 0.15)]))
    assert idx[0, 1:].tolist() == [0, 1]


def test_rapid_merge_ranks_by_importance() -> None:
    """Two equally similar sources: the one the CLS token attends to less is merged first."""
    metric = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [1.0, 0.01], [1.0, 0.0], [1.0, 0.01]]])
    attn = torch.tensor([[0.2, 0.2, 0.5, 0.05, 0.05]])
    inp = ReduceInput(x=metric.clone(), metric=metric, num_prefix=1, cls_attn=lambda: attn)
    plan = REDUCERS["rapid-merge"](inp, 1, rho=0.2, merge="wavg", **{"lambda": 50.0})
    assert plan is not None and plan.src.tolist() == [[4]]  # token 2 (a=0.5) is kept
    plan = REDUCERS["tome"](inp, 1)
    assert plan is not None and plan.src.tolist() in ([[2]], [[4]])


def test_pitome_energy_by_hand() -> None:
    """``E_i = (1/T) Σ_j ELU(W_ij − margin)`` with the margin subtracted in both branches (official code)."""
    metric = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]])  # W = [[1,1,0],[1,1,0],[0,0,1]]
    energy, w = pitome_energy(metric, margin=0.5)
    neg = math.exp(-0.5) - 1.0
    torch.testing.assert_close(energy[0], torch.tensor([(1.0 + neg) / 3, (1.0 + neg) / 3, (2 * neg + 0.5) / 3]))
    torch.testing.assert_close(w[0], torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))


def test_cls_attention_matches_full_softmax() -> None:
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 3, 7, 4, generator=g), torch.randn(2, 3, 7, 4, generator=g)
    bias = torch.rand(2, 1, 1, 7, generator=g).log()
    full = ((q @ k.transpose(-2, -1)) * 0.5 + bias).softmax(-1)[:, :, 0].mean(1)  # (B, N) from N×N
    torch.testing.assert_close(cls_attention(q[:, :, 0], k, 0.5, bias), full)


def _official_tome_merge(metric: torch.Tensor, x: torch.Tensor, r: int, class_token: bool) -> torch.Tensor:
    """facebookresearch/ToMe ``bipartite_soft_matching`` + ``merge_wavg`` (sizes all 1), line for line."""
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[..., ::2, :], metric[..., 1::2, :]
    scores = a @ b.transpose(-1, -2)
    if class_token:
        scores[..., 0, :] = -math.inf
    node_max, node_idx = scores.max(dim=-1)
    edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
    unm_idx, src_idx = edge_idx[..., r:, :], edge_idx[..., :r, :]
    dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)
    if class_token:
        unm_idx = unm_idx.sort(dim=1)[0]

    def merge(t: torch.Tensor) -> torch.Tensor:
        src, dst = t[..., ::2, :], t[..., 1::2, :]
        n, t1, c = src.shape
        unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
        src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
        return torch.cat([unm, dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce="sum")], dim=1)

    size = torch.ones_like(x[..., :1])
    return merge(x * size) / merge(size)


@pytest.mark.parametrize("prefix", [0, 1])
def test_tome_token_order_is_the_official_one(prefix: int) -> None:
    """The official code sorts the unmerged A tokens back into their original order only ``if class_token``;
    without one they stay in match order, which sets the next block's split (sorted always until 2026-12-07:
    logits 8.7e-3 off the official code on a ViT without class token)."""
    inp = make_input(batch=2, prefix=prefix)
    (x, sizes, _, _), _ = run("tome", inp, 5)
    assert torch.allclose(x, _official_tome_merge(inp.metric, inp.x, 5, class_token=bool(prefix)), atol=1e-6)


def test_diffrate_similarity_sizes_stay_positive() -> None:
    """``sizes="similarity"`` scales each merged token's size by its similarity; a token pointing away from every
    kept one adds nothing (it made the size −6.96 and proportional attention NaN until 2026-12-07)."""
    s = Schedule.recipe("diffrate", depth=2, prune_kept=[10, 10], merge_kept=[2, 2], sizes="similarity")
    state = TokenState(s, 1)
    x = torch.zeros(1, 10, 4)
    x[0, 0, 2], x[0, 1, 0] = 1.0, 1.0
    x[0, 2:] = torch.tensor([-1.0, 0.1, 0, 0])  # anti-correlated with the kept patch token
    state.begin(x)
    state.reduce(x, torch.randn(1, 1, 10, 4), cls_attn=torch.tensor([[0.5, 0.4] + [0.1 / 8] * 8]))
    assert state.sizes is not None and state.sizes.flatten().tolist() == [1.0, 1.0]
    mask = state.attn_mask()
    assert mask is not None and torch.isfinite(mask).all()


def test_bipartite_scores_protect_prefix() -> None:
    metric = torch.randn(1, 7, 4)
    s = bipartite_scores(metric, num_prefix=3)  # A = 0,2,4,6; B = 1,3,5 → rows 0,1 and column 0 protected
    assert torch.isinf(s[0, :2]).all() and torch.isinf(s[0, :, 0]).all() and torch.isfinite(s[0, 2:, 1:]).all()


def test_diffrate_prunes_by_attention_then_merges() -> None:
    """Keep the ``prune_kept`` most attended tokens, then merge those beyond ``merge_kept`` into the rest."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 11, 6, generator=g)
    attn = torch.rand(2, 11, generator=g)
    inp = ReduceInput(x=x, metric=x, num_prefix=1, cls_attn=lambda: attn)
    plan = REDUCERS["diffrate"](inp, prune_kept=8, merge_kept=5)
    assert plan is not None and plan.src is not None
    order = attn[:, 1:].argsort(-1, descending=True) + 1
    assert torch.equal(plan.keep[:, 1:], order[:, :4])  # CLS + the 4 most attended patches
    assert torch.equal(plan.src, order[:, 4:7])  # ranks 5..7 merge; ranks 8.. are pruned
    out, sizes, _, _ = apply_plan(plan, x, None)
    assert out.shape == (2, 5, 6) and sizes.sum().item() == 2 * 8
    assert REDUCERS["diffrate"](inp, prune_kept=11, merge_kept=40) is None
    with pytest.raises(ValueError, match="prefix"):
        REDUCERS["diffrate"](
            ReduceInput(x=x, metric=x, num_prefix=2, cls_attn=lambda: attn), prune_kept=1, merge_kept=1
        )


# -- the model-agnostic entry point, through a registered adapter -------------------------------------------
class _ToyBlock(torch.nn.Module):
    """A minimal pre-norm-free block that follows the TokenState contract (what AutoFormer's blocks do)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.qkv, self.mlp, self.heads = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, dim), heads

    def forward(self, x: torch.Tensor, state: TokenState | None) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        mask = state.attn_mask(q.dtype) if state is not None else None
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + out.transpose(1, 2).reshape(b, n, c)
        if state is not None:
            scale = (c // self.heads) ** -0.5
            x = state.reduce(x, k, cls_attn=lambda: cls_attention(q[:, :, 0], k, scale, mask))
        return x + self.mlp(x)


class _Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([_ToyBlock(8, 2) for _ in range(3)])
        self.state: TokenState | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.state is not None:
            self.state.begin(x)
        for blk in self.blocks:
            x = blk(x, self.state)
        return x


class _ToyAdapter(Adapter):
    name = "toy"

    def matches(self, model: torch.nn.Module) -> bool:
        return isinstance(model, _Toy)

    def apply(self, model: torch.nn.Module, schedule: Schedule, **options: Any) -> torch.nn.Module:
        schedule.check_depth(len(model.blocks))  # type: ignore[arg-type]
        model.state = TokenState(schedule, num_prefix=1, **options)
        return model

    def remove(self, model: torch.nn.Module) -> torch.nn.Module:
        model.state = None
        return model

    def state(self, model: torch.nn.Module) -> TokenState | None:
        return model.state  # type: ignore[return-value]


def test_registered_adapter_drives_the_entry_point() -> None:
    register_adapter(_ToyAdapter())
    try:
        torch.manual_seed(0)
        model, x = _Toy(), torch.randn(2, 17, 8)
        with torch.no_grad():
            before = model(x)
            schedule = Schedule.recipe("rapid", depth=3, r=4, switch=1)
            y = apply(model, schedule, trace_source=True)(x)
            assert y.shape == (2, tokens_per_block(schedule, 17)[-1], 8)
            state = token_state(model)
            assert state.history == [13, 9, 5] and state.positions is not None and state.source is not None
            assert torch.equal(remove(model)(x), before)
        with pytest.raises(ConfigError, match="toy"):
            apply(torch.nn.Linear(1, 1), schedule)  # the error lists the registered adapters
    finally:
        ADAPTERS.pop("toy")
