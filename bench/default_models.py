"""Accuracy of the embedded default models on the Fashion-MNIST test split (10,000 images), with GFLOPs.

Rows: ``fashion-vit``; the ``fashion-autoformer`` supernet's largest and smallest subnets and 20 random subnets
(inherited weights, no retraining), each with its analytic GFLOPs per image; and the position experiment of the
AutoFormer issue: ToMe on the largest subnet at the constant r whose FLOPs are closest to 67 % of the unreduced
subnet, with relative positions derived from indices (the official behaviour), tracked through the merges at
each group's centroid, and anchored (a merged token stays where the token it merged into was; the default).

    python bench/default_models.py [--random 20] [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from searcher.cli import at_least, run_main
from searcher.cost.flops import count, describe
from searcher.data import load_splits
from searcher.evaluate import evaluate
from searcher.models import create_model, embedded_metadata
from searcher.models.autoformer import extract_subnet
from searcher.models.autoformer_space import get_space
from searcher.patch import apply
from searcher.schedule import POSITION_MODES, Schedule


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--random", type=at_least(0), default=20, help="random subnets of the supernet")
    ap.add_argument("--limit", type=at_least(1), default=None, help="first N test images only (default: all 10,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    test = load_splits({"kind": "fashion-mnist"})["test"]
    images = min(args.limit or len(test), len(test))
    if not args.json:
        print(f"test top-1 on {images:,} of the {len(test):,} test images", flush=True)
    rows = []

    def row(model_name: str, what: str, model: torch.nn.Module, gflops: float, **extra) -> None:
        acc = evaluate(model, test, limit=args.limit)
        rows.append({"model": model_name, "subnet": what, "gflops": gflops, "test_top1": acc.top1, "test_images": acc.n,
                     **extra})
        if not args.json:
            print(f"{model_name:<19} {what:<44} {gflops:8.4f} GFLOPs  {acc.top1:6.2f}%", flush=True)

    vit = create_model("fashion-vit")
    row("fashion-vit", "6 blocks x 128", vit, count(describe(vit)).total)

    supernet = create_model("fashion-autoformer")
    space = get_space(embedded_metadata("fashion-autoformer")["architecture"]["preset"])
    g = torch.Generator().manual_seed(args.seed)
    subnets = [("largest", space.largest()), ("smallest", space.smallest())]
    subnets += [(f"random {i}", space.sample(g)) for i in range(args.random)]
    for name, cfg in subnets:
        sub = extract_subnet(supernet, cfg)
        desc = f"{name}: E{cfg.embed_dim} D{cfg.depth} H{list(cfg.num_heads)} M{[int(m) for m in cfg.mlp_ratio]}"
        row("fashion-autoformer", desc[:44], sub, count(describe(sub)).total)

    # Relative positions under ToMe: index-derived (official), tracked and anchored, at ~67 % of the full FLOPs.
    largest = extract_subnet(supernet, space.largest())
    shape = describe(largest)
    full = count(shape).total
    depth = space.largest().depth
    r = min(range(0, 33), key=lambda r: abs(count(shape, Schedule.constant(depth, r)).total - 0.67 * full))
    for positions in POSITION_MODES:
        sched = Schedule.constant(depth, r, positions=positions)
        model = apply(extract_subnet(supernet, space.largest()), sched)
        row(
            "fashion-autoformer",
            f"largest + ToMe r={r} positions={positions}",
            model,
            count(shape, sched).total,
            r=r,
            positions=positions,
            share=count(shape, sched).total / full,
        )
    base = next(x["test_top1"] for x in rows if x["subnet"].startswith("largest:"))
    loss = {x["positions"]: base - x["test_top1"] for x in rows if "positions" in x}
    summary = {
        "r": r,
        "loss_index": loss["index"],
        "loss_tracked": loss["tracked"],
        "loss_anchored": loss["anchored"],
        "tracked_over_index": loss["tracked"] / loss["index"] if loss["index"] > 0 else None,
    }
    if args.json:
        print(json.dumps({"rows": rows, "positions": summary}, indent=2))
    else:
        print(
            f"\nToMe r={r} on the largest subnet: loss {loss['index']:.2f} points with index positions, "
            f"{loss['tracked']:.2f} with tracked (centroid) positions, {loss['anchored']:.2f} with anchored positions"
        )


if __name__ == "__main__":
    sys.exit(run_main(main))
