"""How well ``searcher optimize`` searches, on the embedded models (the targets of the search issue).

Every study is an ordinary ``optimize`` run stored under ``--out`` (one directory per study), so an interrupted
bench resumes where it stopped and a finished study is only re-read. Parts:

- ``margins``: at each budget, the best *searched* config (highest search top-1 under the budget, baselines
  excluded) against the best constant-r baseline of any reducer at the same or lower FLOPs (or, when every
  baseline costs more, against all of them), both on the test split. The margin is reported per seed with its
  mean and standard error, and also against the best baseline of any FLOPs under the budget.
- ``joint``: the embedded AutoFormer at the first budget: joint architecture + schedule search against
  architecture-only search (no token reduction, as AutoFormer does) and schedule-only search on the largest
  subnet, with the same number of trials.
- ``sampler``: hypervolume of the (GFLOPs, search top-1) front of the default sampler (TPE) against Optuna's
  RandomSampler on the same budget-aware space after 30 and 60 trials, with two reference points: the budget and
  10 % (chance level), and the budget and the best baseline's search top-1 (the area the search adds to the
  published recipes; a point below every baseline, however cheap, adds nothing there, where at chance level a
  cheap 60 % point outweighs an accurate one). The baselines are the same trials in both studies. Then, per
  study, the candidates within 2 points of its best search top-1: how many, and how well the search split ranks
  them against the test split.
- ``overhead``: the share of trial wall time not spent evaluating or timing models (nor waiting for the device
  lock while another process of this user times a model: a column of its own), and the share of feasible trials,
  over the margin studies.
- ``scale``: trials per minute of 2 local workers (one torch thread each) on one journal storage against 1 worker
  on one thread, and against 1 worker on every core, one after another for each of ``--scale-seeds`` seeds, with
  the ratios' mean and standard error; and a check that no trial is lost or duplicated.

Trials count candidates evaluated, as ``optimize`` does: a draw of a candidate already evaluated reuses its result,
and is neither counted nor included in the figures.

    python bench/search.py [--parts margins,joint,sampler,overhead,scale] [--models fashion-vit,fashion-autoformer]
                           [--budgets 40,50,60] [--seeds 3] [--other-seeds 1] [--trials 60] [--scale-seeds 1]
                           [--out runs/bench-search]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from searcher.cli import at_least, run_main
from searcher.export import atomic_write_text
from searcher.report import hypervolume
from searcher.space import find_spec, load_yaml
from searcher.study import FINISHED, OptimizeResult, StudySpec, is_evaluated, optimize

ROOT = Path(__file__).resolve().parents[1]
SPECS = {name: ROOT / "studies" / f"{name}.yaml" for name in ("fashion-vit", "fashion-autoformer")}
CHANCE = 10.0  # top-1 of a guess on 10 classes: the hypervolume's reference


def run(args: argparse.Namespace, model: str, budget: int, seed: int, *, tag: str = "tpe", **override: Any):
    """One study (resumed when its directory exists, and run once per bench); ``override`` replaces spec fields
    (space, sampler, …)."""
    key = (model, budget, tag, seed)
    if key in args.results:
        return args.results[key]
    spec = StudySpec.from_yaml(SPECS[model]).override(budget=f"{budget}%", seed=seed, trials=args.trials)
    spec = replace(spec, **override)
    out = args.out / f"{model}-{budget}-{tag}-s{seed}"
    stamp, code = out / "bench-code.txt", code_version()
    if out.exists() and not stamp.exists():  # begun before the stamps (2026-12-07)
        atomic_write_text(stamp, "code before bench stamps")
    elif not out.exists():  # before the study: a run cut short leaves it stamped
        out.mkdir(parents=True)
        atomic_write_text(stamp, code)
    if stamp.exists() and stamp.read_text() != code:  # its recipes and trials are of the code it was begun with
        print(f"  warning: {out.name} was begun at {stamp.read_text()}, not {code}: its figures are of that code "
              "(a fresh --out measures this one)", flush=True)
    t0 = time.perf_counter()
    res = optimize(spec, out, progress=False)
    if res.interrupted:  # its figures would be those of a study cut short; the same command resumes it
        raise KeyboardInterrupt(f"stopped in {out.name}; run the same command to resume the bench")
    n, repeats = len(finished(res.study)), res.stats["repeats"]
    print(f"  [{out.name}: {n} trials ({repeats} repeats), {time.perf_counter() - t0:.0f} s]", flush=True)
    args.results[key] = res
    return res


def code_version() -> str:
    """The checkout's commit (``+changes`` when its code differs from it), or searcher's version."""
    import subprocess

    from searcher import __version__

    try:
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--", "searcher", "bench"],
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return f"searcher {__version__}"
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=FINISHED)


def feasible(res: OptimizeResult, n: int | None = None) -> list[optuna.trial.FrozenTrial]:
    """Complete trials under the budget, among the first ``n`` candidates evaluated (a draw of a candidate already
    evaluated reuses its result, one over the budget is not evaluated: neither counts toward a study's trials, and
    both are left out here)."""
    evaluated = [t for t in finished(res.study) if is_evaluated(t)]
    return [
        t
        for t in evaluated[:n]
        if t.state == TrialState.COMPLETE
        and t.user_attrs.get("feasible")
        and t.user_attrs["gflops"] <= res.budget * (1 + 1e-9)
    ]


def best_searched(res: OptimizeResult) -> dict[str, Any]:
    """The searched config a user would take (highest search top-1 under the budget, baselines excluded), with its
    test top-1."""
    searched = [t for t in feasible(res) if "baseline" not in t.user_attrs]
    if not searched:
        raise SystemExit(f"study {res.study.study_name} has no searched trial, only the published recipes: raise "
                         "--trials above their number")
    best = max(searched, key=lambda t: (t.user_attrs["top1"], -t.user_attrs["gflops"]))
    cand = best.user_attrs["candidate"]
    return {
        "trial": best.number,
        "reducer": cand["reducer"],
        "tokens": best.user_attrs["tokens"],
        "arch": cand.get("arch"),
        "gflops": best.user_attrs["gflops"],
        "search_top1": best.user_attrs["top1"],
        "test_top1": res.test(best)["top1"],
    }


NAMES = {"tome": "ToMe", "tofu": "ToFu", "pitome": "PiToMe", "rapid": "RAPID", "topk": "top-k", "diffrate": "DiffRate"}


def recipe_label(trial: optuna.trial.FrozenTrial) -> str:
    """A published recipe as the README's tables name it: ``PiToMe r=14``, or ``DiffRate published``."""
    kind = trial.user_attrs["baseline"].split()[0]
    if trial.user_attrs["baseline"].endswith("published"):  # DiffRate's published schedule: kept counts, no r
        return f"{NAMES.get(kind, kind)} published"
    r = max(layer.get("r", 0) for layer in trial.user_attrs["candidate"]["schedule"]["layers"])
    return f"{NAMES.get(kind, kind)} r={r}"


def margin(res: OptimizeResult) -> dict[str, Any]:
    """Best searched config against the best constant-r baseline at the same or lower FLOPs (test top-1)."""
    best = best_searched(res)
    baselines = [t for t in feasible(res) if "baseline" in t.user_attrs]
    rivals = [t for t in baselines if t.user_attrs["gflops"] <= best["gflops"] * (1 + 1e-9)] or baselines
    rival = max(rivals, key=lambda t: res.test(t)["top1"])
    return {
        **best,
        "share": best["gflops"] / res.full_gflops,
        "baseline": recipe_label(rival),
        "baseline_test_top1": res.test(rival)["top1"],
        "baseline_share": rival.user_attrs["gflops"] / res.full_gflops,
        "margin": best["test_top1"] - res.test(rival)["top1"],
        "margin_any": best["test_top1"] - max(res.test(t)["top1"] for t in baselines),  # any FLOPs under the budget
    }


def mean_se(xs: list[float]) -> str:
    if len(xs) < 2:
        return f"{xs[0]:+.2f}" if xs else "-"
    return f"{statistics.mean(xs):+.2f} ± {statistics.stdev(xs) / math.sqrt(len(xs)):.2f}"


def hv(res: OptimizeResult, n: int, floor: str = "chance") -> float:
    """Hypervolume of the first ``n`` finished trials' front; reference: the budget and ``floor``, chance level or
    the best baseline's search top-1 ("baseline")."""
    trials = feasible(res, n)
    pts = [(t.user_attrs["gflops"], t.user_attrs["top1"]) for t in trials]
    ref = CHANCE if floor == "chance" else max(t.user_attrs["top1"] for t in trials if "baseline" in t.user_attrs)
    return hypervolume(pts, res.budget, ref)


def cheapest_searched(res: OptimizeResult, n: int) -> float:
    """FLOPs of the cheapest searched (not baseline) candidate among the first ``n``, as a share of the unreduced
    model's."""
    return min(t.user_attrs["gflops"] for t in feasible(res, n) if "baseline" not in t.user_attrs) / res.full_gflops


def part_margins(args) -> None:
    print("\n## Margins: best searched config vs best constant-r baseline at <= its FLOPs (test top-1)\n")
    cols = ["model", "budget", "seed", "searched (reducer, tokens)", "FLOPs", "test", "best baseline", "FLOPs", "test"]
    print("| " + " | ".join([*cols, "margin", "vs any baseline"]) + " |\n" + "|---" * (len(cols) + 2) + "|")
    summary = []
    for model in args.models:
        for i, budget in enumerate(args.budgets):
            margins, margins_any = [], []
            for seed in range(args.seeds if i == 0 else args.other_seeds):
                res = run(args, model, budget, seed)
                m = margin(res)
                margins.append(m["margin"])
                margins_any.append(m["margin_any"])
                print(
                    f"| {model} | {budget}% | {seed} | {m['reducer']} {m['tokens']} | {m['share']:.1%} | "
                    f"{m['test_top1']:.2f} | {m['baseline']} | {m['baseline_share']:.1%} | "
                    f"{m['baseline_test_top1']:.2f} | {m['margin']:+.2f} | {m['margin_any']:+.2f} |",
                    flush=True,
                )
            summary.append((model, budget, len(margins), mean_se(margins), mean_se(margins_any)))
    print(
        "\n| model | budget | seeds | margin (mean ± s.e.) | vs any baseline under the budget |\n|---|---|---|---|---|"
    )
    for model, budget, n, ms, ma in summary:
        print(f"| {model} | {budget}% | {n} | {ms} | {ma} |")


def part_joint(args) -> None:
    model, budget = "fashion-autoformer", args.budgets[0]
    spec = StudySpec.from_yaml(SPECS[model])
    space = load_yaml(find_spec(str(spec.space), "spaces", spec.base_dir), "search space")
    arch_only = {"reducers": ["none"], "schedule": space["schedule"], "architecture": space["architecture"]}
    schedule_only = {k: v for k, v in space.items() if k != "architecture"}
    print(f"\n## Joint search on {model} at {budget}% ({args.trials} trials each, test top-1 of the best searched)\n")
    print("| seed | joint | architecture only | schedule only (largest subnet) |\n|---|---|---|---|")
    for seed in range(args.joint_seeds):
        cells = []
        variants = {"tpe": {}, "arch-only": {"space": arch_only}, "sched-only": {"space": schedule_only}}
        for tag, override in variants.items():
            res = run(args, model, budget, seed, tag=tag, **override)
            b = best_searched(res)
            cells.append(f"{b['test_top1']:.2f} ({b['search_top1']:.2f}; HV {hv(res, args.trials):.3f}; "
                         f"{b['gflops'] / res.full_gflops:.1%})")
        print(f"| {seed} | " + " | ".join(cells) + " |", flush=True)


def part_sampler(args) -> None:
    model, budget = args.models[0], args.budgets[0]
    print(f"\n## Sampler: hypervolume on {model} at {budget}% (reference: the budget and {CHANCE:.0f} % top-1, or the")
    print("best baseline's search top-1; TPE / Random)\n")
    print("The last column: the FLOPs of each study's cheapest searched candidate (% of the unreduced model), TPE /")
    print("Random: the strip from it to the budget is most of the hypervolume at the 10 % reference.\n")
    print("| seed | trials | TPE | Random | ratio | TPE (ref. baseline) | Random | ratio | cheapest searched |\n"
          + "|---" * 9 + "|")
    studies, hvs, cheaper_wins = {}, [], []
    for seed in args.sampler_seeds:
        tpe = run(args, model, budget, seed)
        rnd = run(args, model, budget, seed, tag="random", sampler="random")
        studies[seed] = {"TPE": tpe, "Random": rnd}
        for n in sorted(n for n in {30, args.trials} if n <= args.trials):
            cells, row = [], {}
            for floor in ("chance", "baseline"):
                a, b = row[floor] = hv(tpe, n, floor), hv(rnd, n, floor)
                hvs.append({"n": n, "floor": floor, "TPE": a, "Random": b})
                cells.append(f"{a:.5f} | {b:.5f} | {a / b:.3f}" if b else f"{a:.5f} | {b:.5f} | -")
            ct, cr = cheapest_searched(tpe, n), cheapest_searched(rnd, n)
            a, b = row["chance"]
            if ct != cr and a != b:
                cheaper_wins.append((ct < cr) == (a > b))
            print(f"| {seed} | {n} | " + " | ".join(cells) + f" | {ct:.1%} / {cr:.1%} |", flush=True)
    for (n, floor), mean in pd.DataFrame(hvs).groupby(["n", "floor"], sort=False).mean().iterrows():
        a, b = mean["TPE"], mean["Random"]
        ratio = f" ({a / b:.2f}×)" if b else ""
        print(f"mean hypervolume, {n} trials, reference {floor}: TPE {a:.5f}, Random {b:.5f}{ratio}")
    print(f"the study with the cheaper cheapest searched candidate has the larger hypervolume (reference 10 %) in "
          f"{sum(cheaper_wins)} of {len(cheaper_wins)} comparisons")
    print(f"\n## Sampler: how well the search split ranks the near-best candidates ({args.trials} trials)\n")
    print("Candidates within 2 points of the study's best search top-1 (baselines included): their count, the")
    print("Spearman correlation of their search and test top-1, and the test top-1 of the one with the best search")
    print("top-1 (the pick) and of the best of them.\n")
    print("| seed | sampler | near-best | Spearman | pick, test | best of them, test |\n" + "|---" * 6 + "|")
    rows = []
    for seed, pair in studies.items():
        for tag, res in pair.items():
            trials = feasible(res)
            best = max(t.user_attrs["top1"] for t in trials)
            near = pd.DataFrame(
                [(t.user_attrs["top1"], res.test(t)["top1"]) for t in trials if t.user_attrs["top1"] >= best - 2.0],
                columns=["search", "test"],
            )
            row = {
                "sampler": tag,
                "near-best": len(near),
                "Spearman": near.rank().corr().iloc[0, 1] if len(near) > 2 else float("nan"),  # no scipy needed
                "pick, test": near["test"][near["search"].idxmax()],
                "best of them, test": near["test"].max(),
            }
            rows.append(row)
            print(f"| {seed} | {tag} | {row['near-best']} | {_num(row['Spearman'])} | {row['pick, test']:.2f} | "
                  f"{row['best of them, test']:.2f} |", flush=True)
    for tag, mean in pd.DataFrame(rows).groupby("sampler").mean().iterrows():
        print(f"| mean | {tag} | {mean['near-best']:.1f} | {_num(mean['Spearman'])} | {mean['pick, test']:.2f} | "
              f"{mean['best of them, test']:.2f} |")


def _num(x: float) -> str:
    """A table cell: "-" where there is no figure (a correlation of fewer than 3 candidates; pandas' mean skips it)."""
    return "-" if math.isnan(x) else f"{x:.2f}"


def part_overhead(args) -> None:
    print("\n## Overhead and feasibility (studies of this run)\n")
    print("| study | trials | repeats | stopped early | feasible | overhead | waiting for the lock | trial wall (sum) |"
          "\n" + "|---" * 8 + "|")
    for (model, budget, tag, seed), res in args.results.items():
        s = res.stats
        print(
            f"| {model} {budget}% {tag} s{seed} | {s['trials']} | {s['repeats']} | {s['stopped_early']} | "
            f"{s['feasible_share']:.0%} | "
            f"{s['overhead_share']:.1%} | {s['wait_share']:.1%} | {s['trial_wall_s']:.0f} s |"
        )


def part_scale(args) -> None:
    """1 worker on one thread, 2 workers on one thread each (the target's comparison), and 1 worker on every core (what
    a single ``optimize`` uses by default), one after another in an order shuffled by the seed, once per seed (the
    rate of one study depends on its trajectory: how many candidates it stops early), then the ratios' mean and
    standard error. The rate is of the trials: candidates evaluated over the span from the first trial's start to
    the last one's end, the same for each configuration ("start-up": the rest of the loop's wall time, spawning the
    workers and loading the model and data in each; "whole call" adds loading the model and data in this process,
    and testing and timing the Pareto set at the end). And a check that no trial is lost or duplicated: numbers
    0..N-1, none failed, none left running or waiting."""
    import os

    import torch

    model, budget, n = args.models[0], args.budgets[0], args.scale_trials
    cores, threads = os.cpu_count() or 1, torch.get_num_threads()
    configs = ((1, 1), (2, max(1, cores // 2)), (1, cores))
    print(f"\n## Scale: {n} trials of {model} at {budget}% on one journal storage ({cores} cores)\n")
    print("| seed | workers | torch threads each | trials' span | trials/min | trials | repeats | ms/image | "
          "start-up | whole call | none lost or duplicated | speed-up |\n" + "|---" * 12 + "|")
    rates: dict[tuple[int, int], list[float]] = {c: [] for c in configs}
    for seed in range(args.scale_seeds):
        rows = {}
        for workers, each in random.Random(seed).sample(configs, len(configs)):  # a drift in load favours no one
            out = args.out / f"scale-s{seed}-{workers}w{each}t-{time.strftime('%Y%m%d-%H%M%S')}"
            spec = StudySpec.from_yaml(SPECS[model]).override(  # the end's test evaluation is not in the rate
                budget=f"{budget}%", trials=n, workers=workers, seed=seed, test_images=500,
                storage=f"journal:{out / 'study.journal'}",
            )
            torch.set_num_threads(each)  # a single worker runs in this process; several set cores // workers
            t0 = time.perf_counter()
            try:
                res = optimize(spec, out, progress=False)
            finally:
                torch.set_num_threads(threads)
            if res.interrupted:  # a rate of a study cut short means nothing
                raise KeyboardInterrupt(f"stopped in {out.name}")
            whole = time.perf_counter() - t0  # + loading, and testing and timing the Pareto set: not in the rate
            every = res.study.get_trials(deepcopy=False)
            done = [t for t in every if t.state in FINISHED]
            trials = [t for t in done if is_evaluated(t)]  # candidates evaluated, as --trials counts
            span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
            intact = (sorted(t.number for t in every) == list(range(len(every))) and res.stats["failed"] == 0
                      and all(t.state in FINISHED for t in every))
            rate = len(trials) / (span / 60)
            rates[workers, each].append(rate)
            ms = 1e3 * sum(t.user_attrs.get("eval_s", 0.0) for t in trials) / max(res.stats["images_evaluated"], 1)
            rows[workers, each] = {
                "stats": res.stats, "trials": len(trials), "span_s": span, "trials_per_min": rate,
                "startup_s": res.stats["wall_s"] - span, "whole_s": whole, "intact": intact, "ms_per_image": ms,
            }
        for row in rows.values():
            row["speedup"] = row["trials_per_min"] / rows[configs[0]]["trials_per_min"]
        for workers, each in configs:  # printed in one order, whichever ran first
            row = args.scale[f"scale|{model}|{budget}|s{seed}|{workers}x{each}"] = rows[workers, each]
            print(
                f"| {seed} | {workers} | {each} | {row['span_s']:.0f} s | {row['trials_per_min']:.2f} | "
                f"{row['trials']} | {row['stats']['repeats']} | {row['ms_per_image']:.2f} | {row['startup_s']:.0f} s | "
                f"{row['whole_s']:.0f} s | {row['intact']} | {row['speedup']:.2f}x |",
                flush=True,
            )
    print()
    for c in configs[1:]:
        ratios = [a / b for a, b in zip(rates[c], rates[configs[0]], strict=True)]
        se = f" ± {statistics.stdev(ratios) / math.sqrt(len(ratios)):.2f}" if len(ratios) > 1 else ""
        print(f"{c[0]} worker(s) x {c[1]} thread(s) / 1 worker x 1 thread: {statistics.mean(ratios):.2f}x{se} "
              f"(mean ± s.e. over {len(ratios)} seeds; per seed " + ", ".join(f"{r:.2f}" for r in ratios) + ")")
    two, all_cores = rates[configs[1]], rates[configs[2]]
    print(f"2 workers / 1 worker on every core: {statistics.mean(two) / statistics.mean(all_cores):.2f}x (mean rates)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default="margins,joint,sampler,overhead,scale")
    ap.add_argument("--models", default="fashion-vit,fashion-autoformer")
    ap.add_argument("--budgets", default="40,50,60", help="percent of the unreduced FLOPs; the first gets --seeds")
    ap.add_argument("--seeds", type=at_least(1), default=3, help="seeds at the first budget")
    ap.add_argument("--other-seeds", type=at_least(0), default=1, help="seeds at the other budgets")
    ap.add_argument("--joint-seeds", type=at_least(0), default=1)
    ap.add_argument("--sampler-seeds", default="1", help="a count (10: seeds 0-9) or a range (6-9)")
    ap.add_argument("--trials", type=at_least(1), default=60)
    ap.add_argument("--scale-trials", type=at_least(1), default=16)
    ap.add_argument("--scale-seeds", type=at_least(1), default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-search")
    args = ap.parse_args(argv)
    args.models = args.models.split(",")
    if set(args.models) - set(SPECS):
        ap.error(f"unknown model(s) {sorted(set(args.models) - set(SPECS))}; choose from {sorted(SPECS)}")
    try:
        args.budgets = [int(b) for b in args.budgets.split(",")]
    except ValueError:
        ap.error(f"--budgets takes whole percents such as 40,50,60; got {args.budgets!r}")
    first, _, last = args.sampler_seeds.partition("-")
    try:
        args.sampler_seeds = list(range(int(first), int(last) + 1)) if last else list(range(int(first)))
    except ValueError:
        args.sampler_seeds = []
    if not args.sampler_seeds:  # 0, 5-3 or x: no seed to run (a KeyError from pandas after the studies)
        ap.error("--sampler-seeds takes a count (10: seeds 0-9) or a range (6-9) of at least one seed")
    if not all(0 < b < 100 for b in args.budgets):
        ap.error(f"--budgets are percents of the unreduced FLOPs, between 0 and 100; got {args.budgets}")
    parts = set(args.parts.split(","))
    known = {"margins", "joint", "sampler", "overhead", "scale"}
    if parts - known:
        ap.error(f"unknown part(s) {sorted(parts - known)}; choose from {sorted(known)}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.results = {}  # (model, budget, tag, seed) -> OptimizeResult
    args.scale = {}  # "scale|model|budget|seed|workers x threads" -> its figures
    for part in (part_margins, part_joint, part_sampler, part_overhead):
        if part.__name__.removeprefix("part_") in parts:
            part(args)
    if "scale" in parts:
        part_scale(args)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"  # merged with earlier runs of the bench (other parts, models, budgets)
    summary = json.loads(path.read_text()) if path.exists() else {}
    for key, res in args.results.items():
        name, old = "|".join(map(str, key)), summary.get("|".join(map(str, key)))
        if old and old["stats"].get("trials") == res.stats["trials"]:
            continue  # a finished study only read again: the saved entry keeps the wall time of its run
        summary[name] = {"stats": res.stats, "budget_gflops": res.budget}
    summary.update(args.scale)
    atomic_write_text(path, json.dumps(summary, indent=1, default=str))  # a Ctrl-C leaves the last one whole


if __name__ == "__main__":
    sys.exit(run_main(main))
