"""Benchmark: GFLOPs and throughput of every reducer at constant r on timm DeiT-S / ViT-B shapes.

Random weights (token counts, and so speed, do not depend on them). Every configuration is timed once per
round, all configurations interleaved in the same round (in a shuffled order), and the median over rounds is
reported, so the ratios to the unreduced timm model are measured under the same machine load. On CUDA: AMP
fp16, synchronised.

GFLOPs are ``searcher.flops``: the analytic fvcore-convention count (one multiply-add = one FLOP; qkv, q·kᵀ,
attn·v, proj, MLP, patch embedding, head, and the reducers' own similarity matmuls and CLS-attention rows).

``official-tome`` is a re-implementation of the official ToMe timm patch's forward (facebookresearch/ToMe:
explicit softmax attention with the log-size bias, ``k.mean(1)`` metric, ``scatter_reduce`` merges), used only
as a timing baseline since the package cannot be installed here; it computes the same logits as ``tome``.

    python bench/reducers.py --quick                 # DeiT-S, batch 8, r ∈ {0, 13}, 3 rounds
    python bench/reducers.py                         # DeiT-S and ViT-B, batch 32, r ∈ {0, 8, 13, 16}
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import timm
import torch
from timm.models.vision_transformer import Attention, Block, VisionTransformer
from torch import Tensor

from searcher.cli import at_least, run_main
from searcher.cost.flops import flops
from searcher.errors import ConfigError
from searcher.models import create_model
from searcher.patch import apply, remove
from searcher.schedule import Schedule, tokens_per_stage

logger = logging.getLogger("bench.reducers")

KINDS = ("tome", "tofu", "pitome", "rapid", "topk")


# -- official ToMe forward, re-implemented for timing ---------------------------------------------------------
class _ToMeAttention(Attention):
    def forward(self, x: Tensor, size: Tensor | None = None) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        if size is not None:
            attn = attn + size.log()[:, None, None, :, 0]
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x), k.mean(1)


def _bipartite(metric: Tensor, r: int) -> Callable[[Tensor, str], Tensor]:
    t = metric.shape[1]
    r = min(r, (t - 1) // 2)
    if r <= 0:
        return lambda x, mode: x
    with torch.no_grad():
        metric = metric / metric.norm(dim=-1, keepdim=True)
        scores = metric[..., ::2, :] @ metric[..., 1::2, :].transpose(-1, -2)
        scores[..., 0, :] = -math.inf
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
        unm_idx = edge_idx[..., r:, :].sort(dim=1)[0]
        src_idx = edge_idx[..., :r, :]
        dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)

    def merge(x: Tensor, mode: str) -> Tensor:
        src, dst = x[..., ::2, :], x[..., 1::2, :]
        n, t1, c = src.shape
        unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
        src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
        dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
        return torch.cat([unm, dst], dim=1)

    return merge


class _ToMeBlock(Block):
    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        info = self._tome_info  # type: ignore[attr-defined]
        x_attn, metric = self.attn(self.norm1(x), info["size"] if info["prop_attn"] else None)
        x = x + self.drop_path1(x_attn)
        r = info["r"].pop(0)
        if r > 0:
            merge = _bipartite(metric, r)
            size = info["size"] if info["size"] is not None else torch.ones_like(x[..., 0, None])
            x = merge(x * size, "sum")
            info["size"] = merge(size, "sum")
            x = x / info["size"]
        return x + self.drop_path2(self.mlp(self.norm2(x)))


def official_tome(model: VisionTransformer, r: int) -> VisionTransformer:
    """A copy of ``model`` patched the way the official ToMe timm patch does (constant r)."""
    model = copy.deepcopy(model)
    info: dict = {"r": [], "size": None, "prop_attn": True}
    base = type(model)

    class ToMeVisionTransformer(base):  # type: ignore[valid-type, misc]
        def forward(self, x: Tensor) -> Tensor:
            info["r"] = [r] * len(self.blocks)
            info["size"] = None
            return super().forward(x)

    model.__class__ = ToMeVisionTransformer
    for blk in model.blocks:
        blk.__class__ = _ToMeBlock
        blk.attn.__class__ = _ToMeAttention
        blk._tome_info = info
    return model


# -- timing --------------------------------------------------------------------------------------------------
@dataclass
class Config:
    name: str  # reducer label
    r: int
    schedule: Schedule | None  # None: the unpatched timm model
    official: VisionTransformer | None = None  # a separate model (official ToMe baseline)
    times: list[float] | None = None


def run_once(
    model: VisionTransformer, cfg: Config, x: Tensor, device: torch.device, clock: Callable[[], float]
) -> float:
    target = cfg.official if cfg.official is not None else model
    if cfg.official is None:
        if cfg.schedule is None:
            remove(model)
        else:
            apply(model, cfg.schedule)
    use_amp = device.type == "cuda"
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = clock()
        target(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return clock() - start


def bench_model(name: str, args: argparse.Namespace, device: torch.device) -> list[tuple]:
    torch.manual_seed(0)
    model = create_model(name, weights=False).to(device)  # eval mode; an unknown name is a ConfigError
    if not hasattr(model, "blocks") or not hasattr(model, "patch_embed"):
        raise ConfigError(f"--models {name} is not a ViT ({type(model).__name__}); the reducers patch timm "
                          "VisionTransformer models")
    depth = len(model.blocks)
    configs = [Config("timm", 0, None), Config("patched", 0, Schedule.none(depth))]
    for r in (r for r in args.rs if r > 0):
        for kind in args.reducers:
            configs.append(Config(kind, r, Schedule.recipe(kind, depth=depth, r=r)))
        if args.official:
            configs.append(
                Config(
                    "official-tome",
                    r,
                    Schedule.recipe("tome", depth=depth, r=r),
                    official=official_tome(model, r),
                )
            )
    x = torch.randn(args.batch, 3, *model.patch_embed.img_size, device=device)
    for cfg in configs:  # the official-ToMe baseline computes what `tome` computes
        if cfg.official is not None and cfg.schedule is not None:
            with torch.inference_mode():
                ours = apply(model, cfg.schedule)(x[:2])
                torch.testing.assert_close(cfg.official(x[:2]), ours, rtol=1e-3, atol=1e-3)
    for cfg in configs:  # warm-up
        cfg.times = []
        for _ in range(args.warmup):
            run_once(model, cfg, x, device, args.clock)
    rng = random.Random(0)
    for i in range(args.rounds):
        for cfg in rng.sample(configs, len(configs)):  # interleaved, in a fresh order every round
            assert cfg.times is not None
            cfg.times.append(run_once(model, cfg, x, device, args.clock))
        logger.info("%s: round %d/%d done", name, i + 1, args.rounds)
    stat = statistics.median if args.stat == "median" else min
    base_t = stat(configs[0].times or [])
    depth = len(model.blocks)
    base_g = flops(model, Schedule.none(depth))
    rows = []
    n0 = model.patch_embed.num_patches + model.num_prefix_tokens
    for cfg in configs:
        t = stat(cfg.times or [])
        sched = cfg.schedule
        final = tokens_per_stage(sched, n0)[-1][1] if sched is not None else n0
        g = flops(model, sched or Schedule.none(depth))
        rows.append((name, cfg.name, cfg.r, final, g, g / base_g, args.batch / t, base_t / t))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help="timm ViT names (default: deit_small_patch16_224 "
                        "vit_base_patch16_224; --quick: the first)")
    parser.add_argument("--reducers", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--rs", nargs="+", type=at_least(0), default=[0, 8, 13, 16])
    parser.add_argument("--batch", type=at_least(1), default=None, help="default: 32 (CPU) or 128 (CUDA)")
    parser.add_argument("--rounds", type=at_least(1), default=5)
    parser.add_argument("--warmup", type=at_least(0), default=1)
    parser.add_argument("--threads", type=at_least(1), default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-official", dest="official", action="store_false", help="skip official-ToMe")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="'cpu': CPU time of this process (with --threads 1, robust to other jobs on a shared CPU)",
    )
    parser.add_argument("--stat", choices=["median", "min"], default="median", help="statistic over rounds")
    parser.add_argument("--quick", action="store_true", help="DeiT-S (or --models), batch 8, r in {0, 13}, 3 rounds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.quick:
        args.models, args.rs, args.rounds = args.models or ["deit_small_patch16_224"], [0, 13], 3
        args.batch = args.batch or 8
    args.models = args.models or ["deit_small_patch16_224", "vit_base_patch16_224"]
    args.batch = args.batch or (128 if device.type == "cuda" else 32)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and (device.type == "cuda" or torch.get_num_threads() != 1):
        parser.error("--clock cpu measures a single CPU thread: add --threads 1 (CPU only)")
    clock_name = args.clock
    args.clock = time.process_time if args.clock == "cpu" else time.perf_counter
    dev = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    print(
        f"# device {device.type} ({dev}), threads {torch.get_num_threads()}, batch {args.batch}, "
        f"torch {torch.__version__}, timm {timm.__version__}, "
        f"{args.stat} of {args.rounds} interleaved rounds, {clock_name} clock"
    )
    header = (
        f"{'model':<24} {'reducer':<14} {'r':>3} {'tokens':>6} {'GFLOPs':>7} {'×FLOPs':>7} {'img/s':>8} {'×speed':>7}"
    )
    print(header)
    print("-" * len(header))
    for name in args.models:
        for row in bench_model(name, args, device):
            m, red, r, tok, g, gr, ips, sr = row
            print(f"{m:<24} {red:<14} {r:>3} {tok:>6} {g:>7.2f} {gr:>7.2f} {ips:>8.3g} {sr:>7.2f}")


if __name__ == "__main__":
    sys.exit(run_main(main))
