"""Benchmark: throughput and GFLOPs of the extracted AutoFormer-T and AutoFormer-S under ToMe at constant r.

The searched subnets of the paper are extracted from randomly initialised supernets (token counts, and so speed
and FLOPs, do not depend on the weights) and patched with ``tome`` at r ∈ {0, 3, …, 18} in every block
(proportional attention, anchored positions). Every r is timed once per round, all r interleaved in the same
round, and the median over rounds is reported, so the speed-ups over r = 0 are measured under the same machine
load. Inference mode; AMP fp16 on CUDA.

GFLOPs per image, fvcore convention, from :func:`searcher.cost.flops.flops` (analytic, no forward pass):
``gflops`` counts the relative-position tables as searcher runs them (gathers from 2R table rows);
``gflops_no_rel`` leaves the relative-position terms out (AutoFormer's own ``get_complexity``, whose figures the
survey's Table III quotes, AutoFormer-S 4.92 → 1.87 G from r = 0 to r = 18, charges them 14·N² per term).

    python bench/autoformer.py --quick      # AutoFormer-T and -S, batch 8, r ∈ {0, 9, 18}, 3 rounds
    python bench/autoformer.py              # batch 32, r ∈ {0, 3, …, 18}, 5 rounds
    python bench/autoformer.py --threads 1 --clock cpu   # on a machine shared with other jobs

``--positions`` instead measures what tracked positions buy (issue 4's accuracy target): the embedded
``fashion-autoformer`` (shipped weights), its largest (or ``--arch smallest``) subnet extracted, ToMe at the
constant r whose GFLOPs are closest to 67 % of the unreduced subnet, top-1 on a Fashion-MNIST split with
index-derived, tracked (merged token at its group's centroid) and anchored (merged token where the token it
merged into was; the default) relative positions.

    python bench/autoformer.py --positions [--split test] [--arch largest]
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time

import torch

from searcher.cli import at_least, run_main
from searcher.cost.flops import flops
from searcher.cost.throughput import device_name
from searcher.models.autoformer import AutoFormerSubnet, create_autoformer
from searcher.patch import apply, token_state
from searcher.schedule import POSITION_MODES, Schedule

MODELS = ("autoformer-t", "autoformer-s")
RS = (0, 3, 6, 9, 12, 15, 18)


def time_once(model: AutoFormerSubnet, x: torch.Tensor, clock: str = "wall") -> float:
    """Seconds of one synchronised forward pass: wall time, or this process's CPU time (``clock="cpu"``,
    meaningful with one thread: it ignores the time other jobs hold the cores)."""
    now = time.process_time if clock == "cpu" else time.perf_counter
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    t = now()
    with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.float16, enabled=x.is_cuda):
        model(x)
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    return now() - t


def bench_model(name: str, rs: tuple[int, ...], batch: int, rounds: int, device: torch.device,
                clock: str = "wall", seed: int = 0) -> list[dict]:
    """One row per r: tokens left, GFLOPs and measured throughput of the extracted subnet ``name``."""
    model = create_autoformer(name).to(device)
    depth = len(model.blocks)
    schedules = {r: Schedule.constant(depth, r) for r in rs}
    x = torch.randn(batch, model.supernet_config.in_chans, model.supernet_config.img_size,
                    model.supernet_config.img_size, device=device)
    times: dict[int, list[float]] = {r: [] for r in rs}
    tokens: dict[int, int] = {}
    for r in rs:  # warm-up, and the token count each schedule ends with
        apply(model, schedules[r])
        time_once(model, x)
        tokens[r] = token_state(model).history[-1]
    order, rng = list(rs), random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)  # no r always runs first or last in a round
        for r in order:
            apply(model, schedules[r])
            times[r].append(time_once(model, x, clock))
    rows = []
    for r in rs:
        speedup = statistics.median(t0 / t for t0, t in zip(times[rs[0]], times[r], strict=True))
        rows.append({"model": name, "r": r, "tokens_out": tokens[r],
                     "gflops": flops(model, schedules[r]),
                     "gflops_no_rel": flops(model, schedules[r], rel_pos="none"),
                     "img_s": batch / statistics.median(times[r]), "speedup": speedup})
    return rows


def positions_study(split_name: str, arch: str, weights: str | None = None, target: float = 0.67) -> dict:
    """Top-1 of the embedded supernet's subnet unreduced and under ToMe (the r nearest ``target`` of its
    GFLOPs) with each of the relative-position modes. ``weights``: a safetensors file to use instead
    of the shipped one (e.g. a fresh ``searcher train`` result)."""
    from searcher.data import fashion_mnist
    from searcher.evaluate import evaluate
    from searcher.models import create_model, load_timm_checkpoint
    from searcher.models.autoformer import create_supernet, extract_subnet, get_space
    from searcher.patch import remove

    if weights is None:
        supernet = create_model("fashion-autoformer")
    else:  # strict, with a clear error for a missing file or another model's weights
        supernet = load_timm_checkpoint(create_supernet("fashion-autoformer"), weights)
    space = get_space("fashion-autoformer")
    cfg = space.largest() if arch == "largest" else space.smallest()
    model = extract_subnet(supernet, cfg)
    split = fashion_mnist()[split_name]
    full = flops(model)
    r = min(range(1, 33), key=lambda v: abs(flops(model, Schedule.constant(cfg.depth, v)) - target * full))
    out = {"arch": cfg.to_dict(), "split": split_name, "r": r, "gflops_full": full,
           "gflops_reduced": flops(model, Schedule.constant(cfg.depth, r))}
    out["top1_unreduced"] = evaluate(remove(model), split).top1
    for positions in POSITION_MODES:
        apply(model, Schedule.constant(cfg.depth, r, positions=positions))
        out[f"top1_{positions}"] = evaluate(model, split).top1
        out[f"loss_{positions}"] = out["top1_unreduced"] - out[f"top1_{positions}"]
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="batch 8, r ∈ {0, 9, 18}, 3 rounds")
    ap.add_argument("--batch", type=at_least(1), default=None, help="batch size (default 32, quick 8)")
    ap.add_argument("--rounds", type=at_least(1), default=None, help="timed rounds (default 5, quick 3)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=at_least(1), default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="time by wall clock (default) or by this process's CPU time (use with --threads 1 "
                         "on a machine shared with other jobs)")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--positions", action="store_true",
                    help="accuracy of fashion-autoformer under ToMe with each relative-position mode")
    ap.add_argument("--split", default="test", choices=("search", "test"), help="split for --positions")
    ap.add_argument("--arch", default="largest", choices=("largest", "smallest"), help="subnet for --positions")
    ap.add_argument("--weights", default=None, help="safetensors for --positions instead of the shipped ones")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # silence the random-weights warning
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.positions:
        res = positions_study(args.split, args.arch, args.weights)
        if args.json:
            print(json.dumps(res, indent=1))
            return
        print(f"# fashion-autoformer {args.arch} subnet, ToMe r={res['r']} "
              f"({res['gflops_reduced']:.3f} of {res['gflops_full']:.3f} GFLOPs, "
              f"{100 * res['gflops_reduced'] / res['gflops_full']:.0f} %), top-1 on {args.split}")
        print("| positions | top-1 | loss |\n|---|---:|---:|")
        print(f"| unreduced | {res['top1_unreduced']:.2f} | — |")
        for p in POSITION_MODES:
            print(f"| {p} | {res[f'top1_{p}']:.2f} | {res[f'loss_{p}']:.2f} |")
        return
    rs = (0, 9, 18) if args.quick else RS
    batch = args.batch or (8 if args.quick else 32)
    rounds = args.rounds or (3 if args.quick else 5)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: this machine has no CUDA GPU (torch.cuda.is_available() is False)")
    if args.clock == "cpu" and (device.type != "cpu" or torch.get_num_threads() != 1):
        ap.error("--clock cpu measures one CPU thread: use it with --device cpu --threads 1")
    rows = [row for name in args.models for row in bench_model(name, rs, batch, rounds, device, args.clock)]
    meta = {"device": device_name(device), "batch": batch, "rounds": rounds, "torch": torch.__version__,
            "dtype": "float16 (autocast)" if device.type == "cuda" else "float32", "clock": args.clock}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return
    print(f"# extracted AutoFormer subnets, ToMe at constant r — {meta['device']}, batch {batch}, "
          f"{meta['dtype']}, median of {rounds} interleaved rounds ({args.clock} clock), torch {meta['torch']}")
    print("| model | r | tokens out | GFLOPs | GFLOPs w/o rel-pos | img/s | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['r']} | {row['tokens_out']} | {row['gflops']:.2f} | "
              f"{row['gflops_no_rel']:.2f} | {row['img_s']:.1f} | {row['speedup']:.2f}× |")


if __name__ == "__main__":
    sys.exit(run_main(main))
