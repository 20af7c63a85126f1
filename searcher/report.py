"""``searcher report``: one self-contained HTML file that shows a study's trade-off at a glance.

Two steps, as in Optuna's visualisation (``optuna/visualization/_pareto_front.py``): :func:`report_data` turns
the study into plain data (:class:`ReportData`, JSON-serialisable, tested on its own), then :func:`figures` draws
it with plotly and :func:`render_html` assembles the page. The page embeds plotly.js and loads nothing from the
network, so it opens offline and can be mailed around.

Figures: the Pareto front (search top-1 against GFLOPs, every finished trial one point, coloured by reducer, the
published-recipe baselines as diamonds, the schedule on hover); tokens per block of each Pareto config; top-1
against measured throughput; the optimisation history with the hypervolume; parameter importances (PED-ANOVA).
"""

from __future__ import annotations

import html
import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .errors import ConfigError, StorageError
from .units import parse_rate

__all__ = [
    "Point",
    "ReportData",
    "figures",
    "hypervolume",
    "render_html",
    "report_command",
    "report_data",
    "schedule_text",
    "write_report",
]

log = logging.getLogger(__name__)

# Fixed colours per reducer, so two reports of different studies read the same way.
REDUCER_COLOURS = {
    "tome": "#1f77b4",
    "tofu": "#ff7f0e",
    "pitome": "#2ca02c",
    "rapid": "#d62728",
    "topk": "#9467bd",
    "diffrate": "#8c564b",
    "none": "#7f7f7f",
}
OTHER_COLOURS = ("#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939")
# How each kind of point is drawn on the Pareto plot: (marker symbol, size).
KINDS = {
    "searched": ("circle", 9),
    "baseline": ("diamond", 13),
    "stopped early": ("circle-open", 8),
    "over budget": ("x-thin-open", 8),
    "infeasible": ("circle-x-open", 10),  # evaluated, but below the throughput floor (or a recipe over the budget)
}
# The figures of the page, in order: (div id, title, caption).
SECTIONS = (
    (
        "pareto",
        "Pareto front: top-1 against GFLOPs",
        "Every finished trial is one point, coloured by reducer. Diamonds are the published recipes (constant r "
        "at the budget); open circles were stopped early (top-1 on the images seen so far); crosses were over "
        "the FLOPs budget and never evaluated (drawn at the bottom); crossed circles were evaluated but are not "
        "feasible (below the throughput floor, or a published recipe over the budget). Outlined points form the "
        "Pareto front. "
        "Hover a point for its schedule.",
    ),
    ("tokens", "Tokens per block of each Pareto config", "Tokens entering each block, and the tokens left at the end."),
    (
        "throughput",
        "Top-1 against measured throughput",
        "Throughput is measured for every evaluated candidate when it is an objective, for those the front did not "
        "already dominate when it is a constraint, else for the Pareto set alone, after the search.",
    ),
    (
        "history",
        "Optimisation history and hypervolume",
        "Search top-1 of each feasible trial, the best so far, and the hypervolume of the front after each trial "
        "(share of the box from 0 % top-1 to 100 % and from 0 GFLOPs to the budget).",
    ),
    (
        "importance",
        "Parameter importances",
        "PED-ANOVA importances (Optuna) of the sampler's parameters for each objective, over the searched trials "
        "(complete and feasible, or stopped early at their partial top-1; the published recipes, fixed points, left "
        "out).",
    ),
)


# ------------------------------------------------------------------------------------------------------ data
@dataclass
class Point:
    """One finished trial on the Pareto plot."""

    trial: int
    reducer: str
    kind: str  # a key of KINDS
    gflops: float
    top1: float  # y on the plot: search top-1; partial for "stopped early"; the plot's floor for "over budget"
    measured: bool  # False when top1 is only the floor the point is drawn at
    pareto: bool
    test_top1: float | None = None
    img_s: float | None = None
    img_s_range: tuple[float, float] | None = None  # the slowest and fastest of the timing's repeats
    baseline: str = ""
    tokens: list[int] | None = None
    schedule: str = ""  # one line per block
    arch: dict[str, Any] | None = None
    hover: str = ""  # what a hover shows (HTML lines)


@dataclass
class ReportData:
    """Everything the report draws, as plain data."""

    study: str
    model: str
    objectives: list[str]
    budget_gflops: float | None
    full_gflops: float | None
    states: dict[str, int]  # trials per state
    points: list[Point]  # every finished trial with its GFLOPs, by trial number
    front: list[int]  # Pareto-optimal trials (search top-1 ↑, GFLOPs ↓, and img/s ↑ when an objective), by GFLOPs
    throughput_setup: str  # "device, batch N, dtype" of the measurements (or several, ";"-separated)
    history: list[dict[str, Any]]  # {"trial", "top1" (None unless feasible and complete), "best"}
    hypervolume: list[tuple[int, float]]  # (trial number, normalised hypervolume of the front after it)
    importances: dict[str, dict[str, float]]  # objective → parameter → importance
    importance_trials: int = 0  # the searched trials they are computed over
    early_stop: dict[str, Any] = field(default_factory=dict)  # searcher.study.early_stop_savings
    notes: list[str] = field(default_factory=list)
    min_throughput: str | None = None  # the spec's throughput floor (a constraint), e.g. "1500img/s"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def point(self, trial: int) -> Point:
        return next(p for p in self.points if p.trial == trial)


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def schedule_text(schedule: Mapping[str, Any]) -> str:
    """One line per block, e.g. ``3: rapid-merge r=17 rho=0.241 lambda=19.6 merge=wavg``."""
    lines = []
    for i, layer in enumerate(schedule.get("layers", []), 1):
        extra = " ".join(f"{k}={_fmt(v)}" for k, v in layer.items() if k not in ("op", "r"))
        r = f" r={layer['r']}" if "r" in layer else ""
        lines.append(f"{i}: {layer.get('op', '?')}{r}{' ' + extra if extra else ''}")
    return "\n".join(lines)


def hypervolume(points: Sequence[tuple[float, float]], gflops_ref: float, top1_ref: float = 0.0) -> float:
    """Area dominated by ``(gflops, top1)`` points (GFLOPs ↓, top-1 ↑) up to the reference point: a sweep over the
    points sorted by GFLOPs, each strip as high as the best top-1 at or below its GFLOPs."""
    pts = sorted((g, a) for g, a in points if g < gflops_ref and a > top1_ref)
    area, best = 0.0, top1_ref
    for (g, a), g_next in zip(pts, [p[0] for p in pts[1:]] + [gflops_ref], strict=False):
        best = max(best, a)
        area += (g_next - g) * (best - top1_ref)
    return area


def _kind(t: FrozenTrial) -> str | None:
    """How a trial is drawn on the Pareto plot (a key of KINDS), or None when it is not drawn (running, failed,
    waiting, or without GFLOPs)."""
    ua = t.user_attrs
    if "gflops" not in ua or "duplicate_of" in ua:  # a repeat is drawn as the trial whose result it reuses
        return None
    if t.state == TrialState.PRUNED:
        return "stopped early" if "top1_partial" in ua else None
    if t.state != TrialState.COMPLETE:
        return None
    if not ua.get("feasible"):
        return "infeasible" if "top1" in ua else "over budget"
    return "baseline" if ua.get("baseline") else "searched"


def _hover(p: Point, full: float | None, t: FrozenTrial) -> str:
    ua = t.user_attrs
    head = f"<b>trial {p.trial}</b> · {p.reducer}" + (f" · {html.escape(p.baseline)}" if p.baseline else "")
    lines = [head]
    if p.kind == "over budget":
        lines.append("over the FLOPs budget: not evaluated")
    elif p.kind == "stopped early":
        lines.append(f"stopped early: top-1 {p.top1:.2f} % after {ua.get('images_evaluated', '?')} images")
    else:
        test = f" · test {p.test_top1:.2f} %" if p.test_top1 is not None else ""
        why = html.escape(str(ua.get("infeasible") or "infeasible"))
        lines.append(f"search top-1 {p.top1:.2f} %{test}" + ("" if ua.get("feasible") else f" · {why}"))
    share = f" ({100 * p.gflops / full:.1f} % of full)" if full else ""
    speed = f" · {_speed(p)} img/s" if p.img_s else (" · not timed (dominated)" if ua.get("not_timed") else "")
    lines.append(f"{p.gflops:.4g} GFLOPs{share}{speed}")
    if p.tokens:
        lines.append("tokens " + " → ".join(map(str, p.tokens)))
    if p.arch:
        lines.append("arch " + html.escape(json.dumps(p.arch, separators=(",", ":"))))
    lines.extend(html.escape(line) for line in p.schedule.splitlines())
    return "<br>".join(lines)


def _importances(trials: Sequence[FrozenTrial], objectives: Sequence[str]) -> dict[str, dict[str, float]]:
    """PED-ANOVA importances of each objective over ``trials``, each objective in a single-objective in-memory
    copy (the multi-objective study cannot be asked directly, and infeasible trials would bias it)."""
    out: dict[str, dict[str, float]] = {}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory…"
    try:
        for name in objectives:
            imp = _importance(name, trials)
            if imp:
                out[name] = imp
    finally:
        optuna.logging.set_verbosity(verbosity)
    return out


IMPORTANCE_TRIALS = 10  # fewer: PED-ANOVA's top 10 % is one trial, and the bars are noise


def _importance(name: str, trials: Sequence[FrozenTrial]) -> dict[str, float] | None:
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    def value(t: FrozenTrial) -> Any:
        if name == "throughput":
            return (t.user_attrs.get("throughput") or {}).get("img_s")
        if name == "top1" and t.state == TrialState.PRUNED:  # stopped early: its top-1 so far
            return t.user_attrs.get("top1_partial")
        return t.user_attrs.get(name)

    usable = [(t, v) for t in trials if isinstance(v := value(t), int | float)]
    if len(usable) < IMPORTANCE_TRIALS:
        return None
    copy = optuna.create_study(direction="minimize" if name == "gflops" else "maximize")
    for t, v in usable:
        copy.add_trial(optuna.trial.create_trial(params=t.params, distributions=t.distributions, value=float(v)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = get_param_importances(copy, evaluator=PedAnovaImportanceEvaluator())
            return dict(sorted(imp.items(), key=lambda kv: (-kv[1], kv[0])))  # ties by name: the same page each run
    except (ValueError, RuntimeError) as e:  # e.g. a search space with a single value
        log.info("no importances for %s: %s", name, e)
        return None


def report_data(study: optuna.Study) -> ReportData:
    """The plain data behind the report of ``study``."""
    from .study import early_stop_savings, pareto_trials, test_result, throughput_of

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    states = {s.name: n for s in TrialState if (n := sum(t.state == s for t in trials))}
    if not states.get("COMPLETE"):
        what = "no trial" if not trials else f"no completed trial ({', '.join(f'{n} {s}' for s, n in states.items())})"
        raise StorageError(f"study {study.study_name!r} has {what}; run 'searcher optimize' first")
    spec = study.user_attrs.get("spec") or {}
    source = study.user_attrs.get("model_source") or {}
    full = study.user_attrs.get("full_gflops")
    budget = study.user_attrs.get("budget_gflops")
    objectives = list(study.metric_names or spec.get("objectives") or ["top1", "gflops"])
    front = [t.number for t in pareto_trials(study, trials)]
    on_front = set(front)

    points: list[Point] = []
    raw: list[tuple[Point, FrozenTrial]] = []
    for t in trials:
        kind = _kind(t)
        if kind is None:
            continue
        ua = t.user_attrs
        cand = ua.get("candidate") or {}
        top1 = ua.get("top1_partial") if kind == "stopped early" else ua.get("top1")
        tp = throughput_of(study, t) or {}
        p = Point(
            trial=t.number,
            reducer=str(cand.get("reducer", t.params.get("reducer", "?"))),
            kind=kind,
            gflops=float(ua["gflops"]),
            top1=float(top1) if top1 is not None else 0.0,
            measured=top1 is not None,
            pareto=t.number in on_front,
            test_top1=(test_result(study, t) or {}).get("top1"),
            img_s=tp.get("img_s"),
            img_s_range=(tp["img_s_min"], tp["img_s_max"]) if "img_s_min" in tp and "img_s_max" in tp else None,
            baseline=str(ua.get("baseline") or ""),
            tokens=ua.get("tokens"),
            schedule=schedule_text(cand.get("schedule") or {}),
            arch=cand.get("arch"),
        )
        raw.append((p, t))
    floor = min((p.top1 for p, _ in raw if p.measured), default=0.0)
    for p, t in raw:
        if not p.measured:
            p.top1 = floor
        p.hover = _hover(p, full, t)
        points.append(p)

    setups = sorted(
        {
            f"{m.get('device', '?')}, batch {m.get('batch_size', '?')}, {m.get('dtype', '?')}"
            for _, t in raw
            if (m := throughput_of(study, t))
        }
    )

    # history and hypervolume, in trial order
    feasible = [
        t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("feasible") and "top1" in t.user_attrs
    ]
    feasible_numbers = {t.number for t in feasible}
    gflops_ref = budget or full or max((p.gflops for p in points), default=1.0) * 1.1  # the budget: the box a
    # search can fill (from the unreduced model's FLOPs, the empty strip above the budget was most of it)
    history, hv, seen, best = [], [], [], None
    for t in trials:
        if not t.state.is_finished() or t.state == TrialState.FAIL:
            continue
        top1 = t.user_attrs["top1"] if t.number in feasible_numbers else None
        if top1 is not None:
            seen.append((float(t.user_attrs["gflops"]), float(top1)))
            best = top1 if best is None else max(best, top1)
        history.append({"trial": t.number, "top1": top1, "best": best})
        hv.append((t.number, hypervolume(seen, gflops_ref) / (100.0 * gflops_ref)))

    searched = [t for t in trials if not t.user_attrs.get("baseline") and (
        t.number in feasible_numbers or t.state == TrialState.PRUNED and "top1_partial" in t.user_attrs)]
    notes = []
    plotted = {p.trial for p in points}
    unplotted: dict[str, int] = {}
    for t in trials:
        if t.number not in plotted:
            why = "repeated" if "duplicate_of" in t.user_attrs else t.state.name.lower()
            unplotted[why] = unplotted.get(why, 0) + 1
    if unplotted:
        notes.append("not plotted: " + ", ".join(f"{n} {s}" for s, n in unplotted.items()) + " trial(s)")
    evaluated = [t for t in trials if t.state == TrialState.COMPLETE and "top1" in t.user_attrs]
    if evaluated and not feasible:
        reasons = sorted({str(t.user_attrs.get("infeasible") or "infeasible").split(" (")[0] for t in evaluated})
        fixes = (["lower the throughput floor"] if any("throughput" in r for r in reasons) else []) + (
            ["raise the budget"] if any("budget" in r for r in reasons) else [])
        notes.append(f"no feasible trial: each of the {len(evaluated)} evaluated candidates is "
                     + "; or ".join(reasons) + " — the Pareto table is empty"
                     + (f" ({', or '.join(fixes)})" if fixes else ""))
    if "throughput" in objectives:
        notes.append("throughput is an objective: outlined points are not dominated in top-1, GFLOPs and img/s "
                     "together, so some of them look dominated on the Pareto plot; the throughput plot shows the rest")
    missing = len([p for p in points if p.pareto and p.test_top1 is None])
    if missing:
        notes.append(f"{missing} Pareto config(s) have no test-split result yet (the optimize running the study tests "
                     "them when it ends; after one that stopped, rerun 'searcher optimize' with the same arguments)")
    return ReportData(
        study=study.study_name,
        model=str(source.get("name") or spec.get("model") or "?"),
        objectives=objectives,
        budget_gflops=budget,
        full_gflops=full,
        states=states,
        points=points,
        front=front,
        throughput_setup="; ".join(setups),
        history=history,
        hypervolume=hv,
        importances=_importances(searched, objectives),
        importance_trials=len(searched),
        early_stop=early_stop_savings(trials, study.user_attrs.get("search_images")),
        notes=notes,
        min_throughput=spec.get("min_throughput"),
    )


# ---------------------------------------------------------------------------------------------------- drawing
def _colours(reducers: Sequence[str]) -> dict[str, str]:
    extra = iter(OTHER_COLOURS * (1 + len(reducers) // len(OTHER_COLOURS)))
    return {r: REDUCER_COLOURS.get(r) or next(extra) for r in reducers}


def _layout(fig: Any, x: str, y: str, height: int = 520) -> Any:
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin=dict(l=60, r=20, t=30, b=50),
        legend=dict(groupclick="toggleitem"),
        hoverlabel=dict(align="left", font=dict(family="monospace", size=11)),
    )
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def _empty(fig: Any, text: str) -> Any:
    fig.add_annotation(text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font=dict(size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _markers(
    x: Sequence[float | None], pts: Sequence[Point], reducer: str, kind: str, colour: str, widths: list[float]
) -> Any:
    """One scatter trace of a reducer's trials of one kind (top-1 on y), outlined by ``widths``; hover: schedule."""
    import plotly.graph_objects as go

    symbol, size = KINDS[kind]
    return go.Scatter(
        x=list(x),
        y=[p.top1 for p in pts],
        mode="markers",
        name=reducer if kind == "searched" else f"{reducer} · {kind}",
        legendgroup=reducer,
        marker=dict(symbol=symbol, size=size, color=colour, line=dict(color="black", width=widths)),
        hovertext=[p.hover for p in pts],
        hoverinfo="text",
        customdata=[p.trial for p in pts],
    )


def figures(data: ReportData) -> dict[str, Any]:
    """The report's plotly figures, by div id (see SECTIONS)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    reducers = sorted({p.reducer for p in data.points})
    colour = _colours(reducers)
    figs: dict[str, Any] = {}

    # Pareto front: one trace per (reducer, kind), so the legend reads "rapid · baseline".
    fig = go.Figure()
    for r in reducers:
        for kind in KINDS:
            pts = [p for p in data.points if p.reducer == r and p.kind == kind]
            if not pts:
                continue
            widths = [2.0 if p.pareto else (0.5 if kind == "baseline" else 0.0) for p in pts]
            fig.add_trace(_markers([p.gflops for p in pts], pts, r, kind, colour[r], widths))
    front = [data.point(n) for n in data.front]
    if front and "throughput" not in data.objectives:  # a front in three objectives is no staircase in this plane
        fig.add_trace(
            go.Scatter(
                x=[p.gflops for p in front],
                y=[p.top1 for p in front],
                mode="lines",
                line=dict(shape="hv", color="black", width=1, dash="dot"),
                name="Pareto front",
                hoverinfo="skip",
            )
        )
    if data.budget_gflops:
        fig.add_vline(x=data.budget_gflops, line=dict(color="grey", dash="dash"), annotation_text="budget")
    figs["pareto"] = _layout(fig, "GFLOPs per image", "search top-1 (%)")

    # Tokens per block of each Pareto config.
    fig = go.Figure()
    depth = max((len(p.tokens) - 1 for p in front if p.tokens), default=0)
    if depth:
        labels = [f"block {i + 1}" for i in range(depth)] + ["out"]
        full_tokens = next(p.tokens[0] for p in front if p.tokens)
        fig.add_trace(
            go.Scatter(
                x=labels,
                y=[full_tokens] * (depth + 1),
                mode="lines",
                name="no reduction",
                line=dict(color="grey", dash="dash"),
            )
        )
        same: dict[tuple[int, ...], list[Point]] = {}  # configs with equal counts share a line (one hides another)
        for p in front:
            if p.tokens:
                same.setdefault(tuple(p.tokens), []).append(p)
        for tokens, ps in same.items():
            fig.add_trace(
                go.Scatter(
                    x=[*labels[: len(tokens) - 1], "out"],  # a shallower subnet's last count is its output
                    y=list(tokens),
                    mode="lines+markers",
                    name=", ".join(f"#{p.trial} {p.reducer} {p.gflops:.3g} GFLOPs" for p in ps),
                    line=dict(color=colour[ps[0].reducer]),
                    hovertext=["<br><br>".join(p.hover for p in ps)] * len(tokens),
                    hoverinfo="text+y",
                )
            )
        figs["tokens"] = _layout(fig, "", "tokens")
    else:
        figs["tokens"] = _layout(_empty(fig, "no Pareto config"), "", "", height=200)

    # Top-1 against measured throughput.
    fig = go.Figure()
    timed = [p for p in data.points if p.img_s and p.measured and p.kind != "stopped early"]
    for r in reducers:
        for kind in ("searched", "baseline", "infeasible"):
            pts = [p for p in timed if p.reducer == r and p.kind == kind]
            if not pts:
                continue
            widths = [2.0 if p.pareto else 0.0 for p in pts]
            fig.add_trace(_markers([p.img_s for p in pts], pts, r, kind, colour[r], widths))
    if data.min_throughput and timed:
        fig.add_vline(x=parse_rate(data.min_throughput), line=dict(color="grey", dash="dash"),
                      annotation_text="throughput floor")
    if timed:
        figs["throughput"] = _layout(fig, f"throughput (img/s) — {data.throughput_setup}", "search top-1 (%)")
    else:
        figs["throughput"] = _layout(_empty(fig, "no throughput measured"), "", "", height=200)

    # History and hypervolume.
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06)
    done = [h for h in data.history if h["top1"] is not None]
    fig.add_trace(
        go.Scatter(
            x=[h["trial"] for h in done],
            y=[h["top1"] for h in done],
            mode="markers",
            name="feasible trial",
            marker=dict(color="#1f77b4", size=7),
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[h["trial"] for h in data.history],
            y=[h["best"] for h in data.history],
            mode="lines",
            line=dict(shape="hv", color="#d62728"),
            name="best so far",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[n for n, _ in data.hypervolume],
            y=[v for _, v in data.hypervolume],
            mode="lines",
            line=dict(shape="hv", color="#2ca02c"),
            name="hypervolume",
        ),
        row=2,
        col=1,
    )
    _layout(fig, "", "", height=560)
    fig.update_xaxes(title_text="trial", row=2, col=1)
    fig.update_yaxes(title_text="search top-1 (%)", row=1, col=1)
    fig.update_yaxes(title_text="hypervolume", row=2, col=1)
    figs["history"] = fig

    # Importances: one bar group per objective, parameters by top-1 importance.
    fig = go.Figure()
    if data.importances:
        first = next(iter(data.importances.values()))
        params = list(reversed(list(first)))
        for name, imp in data.importances.items():
            fig.add_trace(go.Bar(y=params, x=[imp.get(k, 0.0) for k in params], orientation="h", name=name))
        figs["importance"] = _layout(fig, "importance", "", height=max(300, 24 * len(params) * len(data.importances)))
        fig.update_layout(barmode="group")
    else:
        figs["importance"] = _layout(_empty(fig, f"too few searched trials for importances ({data.importance_trials}; "
                                               f"at least {IMPORTANCE_TRIALS})"), "", "", height=200)
    return figs


# ------------------------------------------------------------------------------------------------------- page
CSS = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; padding: 0 16px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta, .caption, footer { color: #555; } .caption { margin: 4px 0 8px; font-size: 0.92em; }
table { border-collapse: collapse; font-size: 0.9em; } td, th { padding: 3px 10px; text-align: right; }
th { border-bottom: 1px solid #999; } tr:nth-child(even) { background: #f6f6f6; }
.note { color: #a35; }
"""


def _speed(p: Point) -> str:
    """img/s with the range of its repeats: two configs whose ranges overlap may swap places when timed again."""
    lo, hi = p.img_s_range or (None, None)
    return f"{p.img_s:.4g}" + (f" ({lo:.4g}–{hi:.4g})" if lo is not None and hi is not None else "")


def _table(data: ReportData) -> str:
    from .export import arch_text, subnets_differ

    points = [data.point(n) for n in data.front]
    subnets = subnets_differ(p.arch for p in points)
    rows = []
    for p in points:
        test = f"{p.test_top1:.2f}" if p.test_top1 is not None else "–"
        speed = _speed(p) if p.img_s else "–"
        tokens = "-".join(map(str, p.tokens)) if p.tokens else "–"
        arch = [arch_text(p.arch) or "–"] if subnets else []
        cells = [str(p.trial), p.reducer, p.baseline, *arch, tokens, f"{p.top1:.2f}", test, f"{p.gflops:.4g}", speed]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = ["trial", "reducer", "baseline", *(["subnet"] if subnets else []), "tokens per block", "search top-1",
            "test top-1", "GFLOPs", "img/s (slowest–fastest repeat)"]
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def render_html(data: ReportData, figs: Mapping[str, Any] | None = None) -> str:
    """The self-contained page: plotly.js inline, one section per figure, the data as JSON (``#report-data``)."""
    from plotly.offline import get_plotlyjs

    from . import __version__
    from .study import describe_early_stop

    figs = figs if figs is not None else figures(data)
    states = ", ".join(f"{n} {s.lower()}" for s, n in data.states.items())
    budget = ""
    if data.budget_gflops:
        share = (
            f" ({100 * data.budget_gflops / data.full_gflops:.0f} % of {data.full_gflops:.4g})"
            if data.full_gflops
            else ""
        )
        budget = f" · budget {data.budget_gflops:.4g} GFLOPs{share}"
    if data.min_throughput:
        budget += f" · throughput floor {html.escape(str(data.min_throughput))}"
    if data.early_stop.get("stopped_early"):
        states += f"; {describe_early_stop(data.early_stop)}"
    sections = []
    for div_id, title, caption in SECTIONS:
        div = figs[div_id].to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
        if div_id == "importance" and data.importances:
            caption += f" {data.importance_trials} searched trials."
        sections.append(f'<section><h2>{title}</h2><p class="caption">{caption}</p>{div}</section>')
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in data.notes)
    payload = json.dumps(data.to_dict(), default=str).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>searcher report: {html.escape(data.study)}</title>
<style>{CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>Study {html.escape(data.study)}</h1>
<p class="meta">model {html.escape(data.model)}{budget} · objectives {html.escape(", ".join(data.objectives))}
 · {sum(data.states.values())} trials ({html.escape(states)})</p>
{notes}
<h2>Pareto set</h2>
{_table(data)}
{"".join(sections)}
<footer><p>searcher {__version__} · {datetime.now(UTC).isoformat(timespec="seconds")}</p></footer>
<script type="application/json" id="report-data">{payload}</script>
</body></html>
"""


def _check_overwritable(path: Path) -> None:
    """A file at ``path`` is replaced only when it is an HTML page (an earlier report): ``--html study.db`` wrote
    the report over the study's storage (until 2026-12-07)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512).lstrip().lower()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return  # nothing there (a directory is write_report's error)
    except OSError as e:
        raise ConfigError(f"cannot read {path} to check what it is: {e.strerror or e}; choose another --html") from e
    if head and not head.startswith((b"<!doctype html", b"<html")):  # an empty file (mktemp) may go
        raise ConfigError(f"{path} exists and is not an HTML page (the study's storage, a CSV or a config?); the "
                          "report replaces only an earlier report: choose another --html")


def write_report(study: optuna.Study, path: str | Path) -> tuple[Path, ReportData]:
    """Compute, draw and write the report of ``study`` to ``path`` (atomically)."""
    from .export import atomic_write_text

    path = Path(path)
    _check_overwritable(path)
    data = report_data(study)
    text = render_html(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
    except OSError as e:
        raise ConfigError(f"cannot write the report to {path}: {e.strerror or e}; choose a writable path") from e
    return path, data


def report_command(
    study_name: str | None, out: str | Path | None, storage: str | None, path: str | Path | None = None
) -> dict[str, Any]:
    """``searcher report``: find the study (``--out DIR``, or ``--study NAME --storage URL``) and write its report
    to ``path`` (default ``<out>/report.html``, or ``runs/<study>/report.html``). Returns a summary for ``--json``:
    ``{"study", "report", "trials", "points", "pareto", "early_stop", "notes"}``."""
    from .export import open_study, run_dir, study_target

    study_name, out, storage = study_target(study_name, out, storage)
    study = open_study(study_name, out, storage)
    if path is None:
        path = run_dir(study.study_name, out) / "report.html"
    elif not str(path).strip() or Path(path).name in ("", ".", ".."):
        raise ConfigError(f"--html {str(path)!r} names no file; give a path such as report.html")
    written, data = write_report(study, path)
    return {
        "study": data.study,
        "report": str(written),
        "trials": sum(data.states.values()),
        "points": len(data.points),
        "pareto": data.front,
        "early_stop": data.early_stop,
        "notes": data.notes,
    }
