"""Benchmark of deployment (issue 9): onnxruntime CPU throughput of the exported embedded ViT with RAPID at the
demo's budget against the unreduced model's, and the time to export the largest embedded model.

1. ``fashion-vit`` with RAPID at the demo's budget (``searcher optimize --study fashion-vit
   --budget 50%``: 50 % of the unreduced GFLOPs), the published way to run a recipe at a budget: the least
   constant r whose schedule fits (``ModelSource.constant_r_for_budget``). Both models are exported as
   ``searcher onnx`` does (dynamic batch, opset 17) and timed in the same run, interleaved in shuffled order
   each round, at one batch size; the table gives img/s (median run), and the ratio reduced / unreduced as
   the median of the per-round ratios. PyTorch eager (fused attention) is timed alongside, for reference.
2. The export time of the largest embedded model (the largest ``fashion-autoformer`` subnet, with RAPID at
   the same budget): trace + conversion + ``onnx.checker`` (what the target is about), and the whole
   ``searcher onnx`` command (loading, export, the check on 512 test images, the throughput measurement).

On a machine shared with other jobs use ``--clock cpu``: one onnxruntime thread, one torch thread, timed by
this process's CPU time (contention then inflates neither model more than the other).

    python bench/deploy.py                   # batch 64, 15 rounds, wall clock, default threads
    python bench/deploy.py --clock cpu       # shared machine
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from searcher.cli import at_least, run_main
from searcher.data import fashion_mnist
from searcher.deploy import build_model, config_for, onnx_bytes, open_source, ort_session, to_onnx
from searcher.errors import ConfigError
from searcher.schedule import Schedule, tokens_per_block
from searcher.units import parse_budget


def rapid_at_budget(source: Any, arch: dict | None, budget: str) -> tuple[Schedule, float, float]:
    """(RAPID with the least constant r within ``budget`` of the unreduced model, its GFLOPs, full GFLOPs)."""
    depth = source.depth_of(arch)
    full = source.flops(arch, Schedule.none(depth))
    goal = parse_budget(budget).resolve(full)
    r = source.constant_r_for_budget(arch, lambda rs: Schedule.recipe("rapid", depth, rs), goal)
    schedule = Schedule.recipe("rapid", depth, r)
    gflops = source.flops(arch, schedule)
    if gflops > goal * (1 + 1e-9):  # r ran out of tokens: the schedule printed as "at the budget" was over it
        raise ConfigError(f"no constant r of RAPID fits --budget {budget} ({goal:.4g} GFLOPs; the most it removes "
                          f"leaves {gflops:.4g} of {full:.4g}); give a larger budget")
    return schedule, gflops, full


def _clock(kind: str) -> float:
    return time.process_time() if kind == "cpu" else time.perf_counter()


def throughput(batch: int, rounds: int, clock: str, threads: int | None, budget: str) -> dict[str, Any]:
    source = open_source({"name": "fashion-vit"})
    reduced, gflops, full = rapid_at_budget(source, None, budget)
    schedules = {"unreduced": Schedule.none(source.depth_of(None)), "rapid": reduced}
    split = fashion_mnist()["test"].subset(batch)
    x = split.normalize(split.images)
    models, sessions = {}, {}
    for name, schedule in schedules.items():
        models[name] = build_model(source, None, schedule)
        # no spinning: onnxruntime's idle threads would slow the PyTorch run timed next (seen: 4.7 img/s)
        sessions[name] = ort_session(onnx_bytes(models[name], source.input_shape, "dynamic"), threads=threads,
                                     spin=False)
    feed = {"images": x.numpy()}
    runs: dict[tuple[str, str], list[float]] = {(e, n): [] for e in ("ort", "torch") for n in schedules}

    def once(engine: str, name: str) -> float:
        t = _clock(clock)
        if engine == "ort":
            sessions[name].run(["logits"], feed)
        else:
            with torch.inference_mode():
                models[name](x)
        return _clock(clock) - t

    keys = list(runs)
    for key in keys:  # warm-up
        once(*key)
        once(*key)
    rng = random.Random(0)
    for _ in range(rounds):
        rng.shuffle(keys)
        for key in keys:
            runs[key].append(once(*key))

    def ratio(engine: str) -> float:
        return statistics.median(a / b for a, b in zip(runs[engine, "unreduced"], runs[engine, "rapid"], strict=True))

    return {
        "model": "fashion-vit",
        "budget": budget,
        "schedule": reduced.to_dict(),
        "r": reduced.layers[0].r,
        "tokens": list(tokens_per_block(reduced, source.n_tokens, source.num_prefix)),
        "gflops": gflops,
        "full_gflops": full,
        "batch": batch,
        "rounds": rounds,
        "clock": clock,
        "threads": threads,
        "img_s": {f"{e}/{n}": batch / statistics.median(t) for (e, n), t in runs.items()},
        "ort_ratio": ratio("ort"),
        "torch_ratio": ratio("torch"),
    }


def export_time(budget: str) -> dict[str, Any]:
    source = open_source({"name": "fashion-autoformer"})
    arch = source.preset.largest().to_dict()
    schedule, gflops, full = rapid_at_budget(source, arch, budget)
    model = build_model(source, arch, schedule)
    wall, cpu = time.perf_counter(), time.process_time()
    data = onnx_bytes(model, source.input_shape, "dynamic")
    export = {"export_s": time.perf_counter() - wall, "export_cpu_s": time.process_time() - cpu}
    with tempfile.TemporaryDirectory() as tmp:
        config = config_for("fashion-autoformer", schedule, arch)
        wall, cpu = time.perf_counter(), time.process_time()
        result = to_onnx(config, Path(tmp) / "model.onnx")
        command = {"command_s": time.perf_counter() - wall, "command_cpu_s": time.process_time() - cpu}
    return {
        "model": "fashion-autoformer (largest subnet)",
        "arch": arch,
        "gflops": gflops,
        "full_gflops": full,
        "bytes": len(data),
        **export,
        **command,
        "check": result["check"],
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=at_least(1), default=64)
    ap.add_argument("--rounds", type=at_least(1), default=15)
    ap.add_argument("--budget", default="50%", help="FLOPs budget of the reduced model (the demo's: 50%%)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: one thread, CPU time")
    ap.add_argument("--threads", type=at_least(1), default=None, help="onnxruntime and torch threads (default: theirs)")
    ap.add_argument("--skip-export", action="store_true", help="throughput only")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    threads = 1 if args.clock == "cpu" else args.threads
    if threads:
        torch.set_num_threads(threads)
    tp = throughput(args.batch, args.rounds, args.clock, threads, args.budget)
    ex = None if args.skip_export else export_time(args.budget)
    if args.json:
        print(json.dumps({"throughput": tp, "export": ex}, indent=2))
        return
    print(
        f"fashion-vit, RAPID r={tp['r']} at {tp['budget']} of {tp['full_gflops']:.4f} GFLOPs: {tp['gflops']:.4f} "
        f"GFLOPs ({100 * tp['gflops'] / tp['full_gflops']:.1f}%), tokens {'-'.join(map(str, tp['tokens']))}"
    )
    print(
        f"batch {tp['batch']}, {tp['rounds']} interleaved rounds, {tp['clock']} clock, threads "
        f"{tp['threads'] or 'default'}"
    )
    print(f"{'engine':<22}{'unreduced img/s':>17}{'RAPID img/s':>14}{'ratio':>8}")
    for engine, label in (("ort", "onnxruntime CPU"), ("torch", "PyTorch eager")):
        un, red = tp["img_s"][f"{engine}/unreduced"], tp["img_s"][f"{engine}/rapid"]
        print(f"{label:<22}{un:>17.1f}{red:>14.1f}{tp[f'{engine}_ratio']:>7.2f}x")
    if ex is not None:
        c = ex["check"]
        print(
            f"\nexport of {ex['model']} ({ex['gflops']:.4f} of {ex['full_gflops']:.4f} GFLOPs, "
            f"{ex['bytes'] / 1e6:.1f} MB): {ex['export_s']:.1f} s (CPU {ex['export_cpu_s']:.1f} s); whole "
            f"'searcher onnx' {ex['command_s']:.1f} s (CPU {ex['command_cpu_s']:.1f} s): max |logit diff| "
            f"{c['max_abs_diff']:.2e}, top-1 agreement {100 * c['top1_agreement']:.2f}% on {c['images']} images"
        )


if __name__ == "__main__":
    sys.exit(run_main(main))
