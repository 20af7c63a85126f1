"""Benchmark of the cost models (issue 6): analytic FLOPs vs fvcore, and how repeatable throughput is here.

Prints three tables (``--parts costs``, the default) and a fourth with ``--parts beside``:

1. time per candidate of the analytic count (``searcher.cost.flops.count``, what the search loop calls) and of
   fvcore's ``FlopCountAnalysis`` on the real patched model, on DeiT-S and AutoFormer-S at 224² with random
   schedules (random weights: FLOPs do not depend on them);
2. agreement of the two over a few hundred random candidates: tiny timm ViTs of every variant and AutoFormer
   subnets, every reducer op, random per-layer r (the same families as ``tests/test_flops.py``), plus the
   real-size candidates of table 1;
3. throughput repeatability: the same model measured 5 times (each figure the median of its repetitions), the
   spread (max − min) / median of those 5 figures in percent — what the search uses to choose its repetitions;
4. throughput measured beside another process that evaluates a model in batches of 500 images,
   as a second search worker does, without and with :class:`~searcher.cost.throughput.DeviceLock` (what
   ``optimize`` uses: the other process pauses between batches while the measurement runs), against the same
   measurement alone; alternated for ``--rounds`` rounds, one torch thread per process.

Times are wall-clock and, in brackets, CPU time of this process (all its threads): on a shared machine the
CPU time is the stable figure.

    python bench/costs.py --quick        # 40 agreement candidates, 2 real-size ones, fashion-vit at batch 64
    python bench/costs.py                # 200 agreement candidates, 6 real-size ones, batch 256
    python bench/costs.py --parts beside --rounds 5
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import time
from typing import Any

import torch
from timm.layers import SwiGLU
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from searcher.cli import at_least, run_main
from searcher.cost.flops import count, describe, fvcore_flops
from searcher.cost.throughput import DeviceLock, input_shape_of, measure
from searcher.models import create_model
from searcher.models.autoformer import AutoFormerSupernet, SubnetConfig, create_supernet, extract_subnet
from searcher.models.autoformer_space import SUBNETS
from searcher.patch import apply
from searcher.reduce.registry import NEEDS_CLS_ATTENTION
from searcher.schedule import OPS, POSITION_MODES, Layer, Schedule


# ------------------------------------------------------------------------------------------------ candidates
def random_schedule(rng: random.Random, depth: int, n_tokens: int, num_prefix: int, has_cls: bool,
                    r_max: int = 12) -> Schedule:
    """Any op per block (CLS-attention ops only with a class token), random r (or kept counts for DiffRate)."""
    ops = [op for op in OPS if has_cls or op not in NEEDS_CLS_ATTENTION]
    layers = []
    for i in range(depth):
        op = rng.choice(ops)
        if op == "diffrate":
            lo = num_prefix + 1  # a patch token stays: models that average them refuse to keep none
            layers.append(Layer.make(op, layer=i, depth=depth, prune_kept=rng.randint(lo, n_tokens + 1),
                                     merge_kept=rng.randint(lo, n_tokens + 1)))
        else:
            layers.append(Layer.make(op, rng.randint(0, r_max) if OPS[op].uses_r else 0, layer=i, depth=depth))
    return Schedule(tuple(layers), prop_attn=rng.random() < 0.5, positions=rng.choice(POSITION_MODES))


def tiny_timm(rng: random.Random) -> nn.Module:
    heads, head_dim = rng.randint(1, 3), rng.choice([4, 8])
    distilled = rng.random() < 0.2
    class_token = distilled or rng.random() < 0.8
    pool = "token" if distilled else rng.choice(["token", "avg", "map"] if class_token else ["avg", "map"])
    kwargs: dict[str, Any] = dict(img_size=(rng.choice([8, 12, 16]), rng.choice([8, 16])), patch_size=4,
                                  embed_dim=heads * head_dim, depth=rng.randint(1, 3), num_heads=heads,
                                  mlp_ratio=rng.choice([1.0, 2.0, 2.5]), qk_norm=rng.random() < 0.3,
                                  num_classes=rng.choice([0, 3, 10]), global_pool=pool, class_token=class_token,
                                  reg_tokens=rng.randint(0, 2))
    if rng.random() < 0.3:
        kwargs["mlp_layer"] = SwiGLU
    model = (VisionTransformerDistilled if distilled else VisionTransformer)(**kwargs).eval()
    fused = rng.random() < 0.7
    for blk in model.blocks:
        blk.attn.fused_attn = fused
    return model


def tiny_autoformer(rng: random.Random, supernets: list[AutoFormerSupernet]) -> nn.Module:
    depth = rng.randint(1, 3)
    arch = SubnetConfig(rng.choice([16, 24, 32]), depth, tuple(rng.choice([1.0, 2.0, 4.0]) for _ in range(depth)),
                        tuple(rng.randint(1, 4) for _ in range(depth)))
    sn = rng.choice(supernets)
    if rng.random() < 0.5:
        return extract_subnet(sn, arch)
    model = copy.deepcopy(sn)
    model.set_sample_config(arch)
    return model


def candidates(n: int, seed: int = 0):
    """``n`` random (model, schedule) pairs, 60 % timm and 40 % AutoFormer, patched in place."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    common = dict(img_size=16, patch_size=4, in_chans=3, num_classes=5, embed_dim=32, depth=3, num_heads=4,
                  mlp_ratio=4.0, head_dim=8, max_relative_position=3)
    supernets = [AutoFormerSupernet(**common, rel_pos=True).eval(),
                 AutoFormerSupernet(**common, rel_pos=False, gp=False).eval()]
    for _ in range(n):
        model = tiny_timm(rng) if rng.random() < 0.6 else tiny_autoformer(rng, supernets)
        shape = describe(model)
        sched = random_schedule(rng, shape.depth, shape.n_tokens, shape.num_prefix, shape.num_prefix > 0
                                and getattr(model, "cls_token", None) is not None)
        yield apply(model, sched), sched


def real_size(n: int, seed: int = 1):
    """DeiT-S and AutoFormer-S at 224² with random schedules (r up to 16)."""
    rng = random.Random(seed)
    deit = create_model("deit_small_patch16_224", weights=False)
    supernet = create_supernet("autoformer-s")
    af = extract_subnet(supernet, SUBNETS["autoformer-s"])
    del supernet
    for i in range(n):
        model = deit if i % 2 == 0 else af
        shape = describe(model)
        yield f"{'deit-s' if i % 2 == 0 else 'autoformer-s'}", model, random_schedule(
            rng, shape.depth, shape.n_tokens, 1, True, r_max=16)


# ------------------------------------------------------------------------------------------------ tables
class Clock:
    """Wall and CPU seconds of a ``with`` block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def timing(n_real: int) -> tuple[list[dict[str, Any]], list[float]]:
    rows, errors = [], []
    for name, model, sched in real_size(n_real):
        shape = describe(model)
        reps = 2000
        with Clock() as c_count:
            for _ in range(reps):
                a = count(shape, sched)
        with Clock() as c_describe:
            d = describe(model)
        assert d == shape
        with Clock() as c_fv:
            f = fvcore_flops(model, sched)
        errors.append(abs(a.total / f.total - 1))
        rows.append({"model": name, "ops": "/".join(sorted({x.op for x in sched.layers})),
                     "gflops": a.total, "fvcore_gflops": f.total, "count_us": 1e6 * c_count.wall / reps,
                     "count_cpu_us": 1e6 * c_count.cpu / reps, "describe_ms": 1e3 * c_describe.wall,
                     "fvcore_s": c_fv.wall, "fvcore_cpu_s": c_fv.cpu})
    return rows, errors


def agreement(n: int) -> dict[str, Any]:
    errs, t_fv, t_fv_cpu, t_an, exact = [], [], [], [], 0
    for model, sched in candidates(n):
        with Clock() as c:
            a = count(describe(model), sched)
        t_an.append(c.wall)
        with Clock() as c:
            f = fvcore_flops(model)
        t_fv.append(c.wall)
        t_fv_cpu.append(c.cpu)
        err = abs(a.total / f.total - 1)
        errs.append(err)
        exact += err < 1e-9
    return {"candidates": n, "max_rel_err": max(errs), "exact": exact, "within_0.5%": sum(e < 0.005 for e in errs),
            "describe_count_us": 1e6 * statistics.median(t_an), "fvcore_ms": 1e3 * statistics.median(t_fv),
            "fvcore_cpu_ms": 1e3 * statistics.median(t_fv_cpu)}


def repeatability(batch: int, repeats: int, times: int = 5) -> dict[str, Any]:
    model = create_model("fashion-vit", weights=False)
    figures = [measure(model, batch_size=batch, device=None, repeats=repeats, warmup=2) for _ in range(times)]
    med = [f.img_s for f in figures]
    center = statistics.median(med)
    return {"model": "fashion-vit", "batch": batch, "device": figures[0].device, "dtype": figures[0].dtype,
            "threads": figures[0].threads, "img_s": med, "spread_pct": 100 * (max(med) - min(med)) / center,
            "within_spread_pct": [round(f.spread_pct, 1) for f in figures]}


def _evaluate_beside(locked: bool, lock_dir: str, started, stop, spans) -> None:
    """A second worker: fashion-vit forward passes on batches of 500 images (the embedded studies' batch size)
    until ``stop``, each holding ``DeviceLock`` shared when ``locked`` (as ``evaluate_chunks`` does); records when
    each forward pass began and ended (``time.monotonic``, the same clock in every process) in ``spans``."""
    torch.set_num_threads(1)
    model = create_model("fashion-vit", weights=False).eval()
    x = torch.randn(500, *input_shape_of(model))
    lock = DeviceLock("cpu", lock_dir)
    with torch.inference_mode():
        model(x)
        started.set()
        for i in range(0, len(spans), 2):
            if stop.is_set():
                break
            with lock.shared() if locked else contextlib.nullcontext():
                spans[i] = time.monotonic()
                model(x)
                spans[i + 1] = time.monotonic()


def _images_between(spans, t0: float, t1: float, batch: int = 500) -> float:
    """Images the other worker evaluated in [t0, t1]: each batch counted for the share of it that ran then (a
    whole-batch count was 0 for a window shorter than one batch)."""
    done = 0.0
    for start, end in zip(spans[::2], spans[1::2], strict=True):
        if end > start:
            done += batch * max(0.0, min(end, t1) - max(start, t0)) / (end - start)
    return done


def beside(rounds: int, batch: int, repeats: int) -> dict[str, Any]:
    """Throughput of fashion-vit (one thread) alone, beside an evaluating process, and beside it under the lock."""
    torch.set_num_threads(1)
    model = create_model("fashion-vit", weights=False)
    ctx = mp.get_context("spawn")
    figures: dict[str, list[float]] = {"alone": [], "beside": [], "beside, locked": []}
    other: dict[str, list[float]] = {"beside": [], "beside, locked": []}  # the other process's images/s meanwhile
    with tempfile.TemporaryDirectory() as lock_dir:
        lock = DeviceLock("cpu", lock_dir)
        for _ in range(rounds):
            figures["alone"].append(measure(model, batch_size=batch, device="cpu", repeats=repeats).img_s)
            for mode, locked in (("beside", False), ("beside, locked", True)):
                started, stop, spans = ctx.Event(), ctx.Event(), ctx.Array("d", 2 * 4096)
                proc = ctx.Process(target=_evaluate_beside, args=(locked, lock_dir, started, stop, spans))
                proc.start()
                started.wait()
                time.sleep(1.0)  # the other process is in its loop
                t0 = time.monotonic()  # locked: the other's batch in flight, which the lock waits for, counts
                with lock.exclusive() if locked else contextlib.nullcontext():
                    figures[mode].append(measure(model, batch_size=batch, device="cpu", repeats=repeats).img_s)
                t1 = time.monotonic()
                stop.set()
                proc.join()
                other[mode].append(_images_between(spans[:], t0, t1) / (t1 - t0))
    alone = statistics.median(figures["alone"])
    return {"batch": batch, "repeats": repeats, "rounds": rounds, "img_s": figures, "other_img_s": other,
            "vs_alone": {k: statistics.median(v) / alone for k, v in figures.items()}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer candidates, smaller batch")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--threads", type=at_least(1), default=None, help="torch threads (default: torch's)")
    p.add_argument("--parts", default="costs", help="costs (tables 1-3), beside (table 4), or both: costs,beside")
    p.add_argument("--rounds", type=at_least(1), default=5, help="rounds of the beside part")
    args = p.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts <= {"costs", "beside"}:
        p.error(f"unknown part(s) {sorted(parts - {'costs', 'beside'})}; use costs and/or beside")
    if args.threads:
        torch.set_num_threads(args.threads)
    n_agree, n_real, batch, reps = (40, 2, 64, 3) if args.quick else (200, 6, 256, 5)
    if "beside" in parts:
        b = beside(args.rounds, batch, reps)
        if args.json:
            print(json.dumps({"beside": b}, indent=1))
        else:
            print(f"## Throughput beside another process (fashion-vit, batch {batch}, median of {reps}, one thread "
                  f"each, {args.rounds} rounds)\n")
            print("| measured | img/s (median of rounds) | vs alone | rounds | other process, img/s meanwhile |")
            print("|---|---|---|---|---|")
            for k, v in b["img_s"].items():
                other = f"{statistics.median(b['other_img_s'][k]):.0f}" if k in b["other_img_s"] else "—"
                print(f"| {k} | {statistics.median(v):.0f} | {b['vs_alone'][k]:.3f}× | "
                      f"{', '.join(f'{x:.0f}' for x in v)} | {other} |")
        if "costs" not in parts:
            return

    rows, real_errors = timing(n_real)
    agree = agreement(n_agree)
    tp = repeatability(batch, reps)
    if args.json:
        print(json.dumps({"timing": rows, "real_size_max_rel_err": max(real_errors), "agreement": agree,
                          "throughput": tp}, indent=1))
        return
    print(f"## Cost models ({tp['device']}, torch {torch.__version__}, {torch.get_num_threads()} threads)\n")
    print("| model | ops | analytic GFLOPs | fvcore GFLOPs | count µs (CPU) | describe (ms) | fvcore s (CPU) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['ops']} | {r['gflops']:.4f} | {r['fvcore_gflops']:.4f} | {r['count_us']:.0f} "
              f"({r['count_cpu_us']:.0f}) | {r['describe_ms']:.1f} | {r['fvcore_s']:.2f} ({r['fvcore_cpu_s']:.2f}) |")
    print(f"\nreal-size candidates: max |analytic/fvcore − 1| = {max(real_errors):.2e}\n")
    print("| random tiny candidates | exact (< 1e-9) | within 0.5 % | max rel. error | describe+count (µs) | "
          "fvcore ms (CPU) |")
    print("|---|---|---|---|---|---|")
    print(f"| {agree['candidates']} | {agree['exact']} | {agree['within_0.5%']} | {agree['max_rel_err']:.1e} | "
          f"{agree['describe_count_us']:.0f} | {agree['fvcore_ms']:.0f} ({agree['fvcore_cpu_ms']:.0f}) |")
    print(f"\nthroughput, {tp['model']} at batch {tp['batch']} ({tp['dtype']}), 5 measurements of median-of-{reps}:")
    print(f"img/s {', '.join(f'{v:.0f}' for v in tp['img_s'])}; spread {tp['spread_pct']:.1f} % "
          f"(within each measurement: {tp['within_spread_pct']} %)")


if __name__ == "__main__":
    sys.exit(run_main(main))
