"""``searcher report``: the plain data behind the figures, the self-contained page, and the page in a real browser.

The study here is synthetic (no model runs): its trials carry the user attributes ``searcher optimize`` stores
(candidate, GFLOPs, tokens, top-1, throughput, baseline, infeasible reason), built with the real schedule
recipes. ``tests/test_export.py`` draws the report of a real tiny study too.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from searcher.errors import ConfigError, StorageError
from searcher.report import (
    figures,
    hypervolume,
    render_html,
    report_command,
    report_data,
    schedule_text,
    write_report,
)
from searcher.schedule import Schedule, tokens_per_block
from searcher.study import PUBLISHED_OVER_BUDGET, pareto_trials

DEPTH, N_TOKENS, FULL, BUDGET = 4, 65, 4.0, 3.1
DISTS = {
    "reducer": CategoricalDistribution(("tome", "rapid", "pitome")),
    "w0": FloatDistribution(0.0, 1.0),
    "w1": FloatDistribution(0.0, 1.0),
    "target": FloatDistribution(0.6, 1.0),
}


def _trial(
    reducer: str,
    rs: list[int],
    top1: float | None,
    *,
    state: TrialState = TrialState.COMPLETE,
    baseline: str = "",
    img_s: float | None = None,
    partial: float | None = None,
    seed: float = 0.5,
) -> optuna.trial.FrozenTrial:
    """A trial as ``searcher optimize`` records it; GFLOPs grow with the tokens kept."""
    schedule = Schedule.recipe(reducer, DEPTH, rs)
    tokens = tokens_per_block(schedule, N_TOKENS, 1)
    gflops = FULL * sum(tokens[:-1]) / (DEPTH * N_TOKENS)
    ua: dict = {
        "candidate": {"reducer": reducer, "schedule": schedule.to_dict(), "arch": None},
        "gflops": gflops,
        "tokens": tokens,
    }
    if baseline:
        ua["baseline"] = baseline
    if gflops > BUDGET:
        ua.update(feasible=False, infeasible="over the FLOPs budget")
        values = [0.0, gflops]
    elif state == TrialState.PRUNED:
        ua.update(top1_partial=partial, images_evaluated=250)
        values = None
    elif top1 is not None:
        ua.update(top1=top1, top5=top1 + 10, feasible=True, images_evaluated=500)
        if img_s:
            ua["throughput"] = {"img_s": img_s, "img_s_min": img_s - 50, "img_s_max": img_s + 40, "device": "cpu: test",
                                "batch_size": 16, "dtype": "float32"}
        values = [top1, gflops]
    else:
        values = None
    params = {"reducer": reducer, "w0": seed, "w1": 1 - seed, "target": 0.6 + 0.4 * seed}
    return create_trial(
        state=state,
        params=params,
        distributions=DISTS,
        values=values if state == TrialState.COMPLETE else None,
        user_attrs=ua,
    )


def make_study(storage: str, name: str = "synthetic") -> optuna.Study:
    """Baselines, searched trials (some on the front), two stopped early, two over the budget."""
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])
    study.set_metric_names(["top1", "gflops"])
    study.set_user_attr("spec", {"name": name, "model": "fashion-vit", "objectives": ["top1", "gflops"]})
    study.set_user_attr("model_source", {"name": "fashion-vit", "family": "timm-vit"})
    study.set_user_attr("budget_gflops", BUDGET)
    study.set_user_attr("full_gflops", FULL)
    trials = [
        _trial("tome", [14] * 4, 80.0, baseline="tome constant r", img_s=900.0),
        _trial("rapid", [14] * 4, 80.6, baseline="rapid constant r", img_s=880.0),
        _trial("pitome", [14] * 4, 79.5, baseline="pitome constant r", img_s=850.0),
    ]
    for i, (red, rs, acc) in enumerate(
        [
            ("tome", [20, 16, 10, 4], 81.2),
            ("rapid", [24, 12, 8, 8], 81.0),
            ("rapid", [28, 14, 6, 2], 80.1),
            ("pitome", [18, 18, 8, 8], 79.9),
            ("tome", [30, 10, 6, 6], 78.8),
            ("rapid", [16, 16, 16, 16], 82.0),
            ("tome", [10, 10, 10, 10], 83.0),
            ("pitome", [26, 20, 8, 0], 78.0),
        ]
    ):
        trials.append(_trial(red, rs, acc, seed=0.1 * i + 0.05))
    trials.append(_trial("tome", [20, 20, 10, 4], None, state=TrialState.PRUNED, partial=60.0, seed=0.9))
    trials.append(_trial("rapid", [22, 20, 10, 4], None, state=TrialState.PRUNED, partial=61.5, seed=0.8))
    trials.append(_trial("tome", [2, 2, 2, 2], None, seed=0.7))  # over budget
    trials.append(_trial("pitome", [0, 0, 0, 4], None, seed=0.6))  # over budget
    study.add_trials(trials)
    for t in pareto_trials(study):  # what optimize stores after re-evaluating the Pareto set on the test split,
        study.set_user_attr(f"test:{t.number}", {"top1": t.user_attrs["top1"] - 0.4, "top5": 95.0, "images": 300})
        if "throughput" not in t.user_attrs:  # and timing those the search did not time
            tp = {"img_s": 1000.0 + t.number, "img_s_min": 950.0 + t.number, "img_s_max": 1040.0 + t.number,
                  "device": "cpu: test", "batch_size": 16, "dtype": "float32"}
            study.set_user_attr(f"throughput:{t.number}", tp)
    return study


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    return make_study(f"sqlite:///{tmp_path / 'study.db'}")


# ---------------------------------------------------------------------------------------------------- data
def test_hypervolume_matches_hand_computed_areas() -> None:
    assert hypervolume([], 10.0) == 0.0
    assert hypervolume([(4.0, 50.0)], 10.0) == pytest.approx(6 * 50)
    # a dominated point adds nothing; two front points make a staircase
    assert hypervolume([(4.0, 50.0), (6.0, 40.0)], 10.0) == pytest.approx(6 * 50)
    assert hypervolume([(4.0, 50.0), (6.0, 70.0)], 10.0) == pytest.approx(2 * 50 + 4 * 70)
    assert hypervolume([(12.0, 90.0)], 10.0) == 0.0  # beyond the reference point


def test_schedule_text_has_one_line_per_block() -> None:
    text = schedule_text(Schedule.recipe("rapid", 4, [8, 8, 4, 0], switch=1).to_dict())
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0] == "1: rapid-prune r=8 tau=0.7"
    assert lines[1].startswith("2: rapid-merge r=8") and "rho=0.2" in lines[1] and "merge=mlerp" in lines[1]


def test_report_data_has_one_point_per_finished_trial(study: optuna.Study) -> None:
    data = report_data(study)
    assert len(data.points) == len(study.trials) == 15
    kinds = {k: sum(p.kind == k for p in data.points) for k in ("searched", "baseline", "stopped early", "over budget")}
    assert kinds == {"searched": 8, "baseline": 3, "stopped early": 2, "over budget": 2}
    assert data.front == [t.number for t in pareto_trials(study)]
    assert all(data.point(n).pareto for n in data.front)
    # over-budget candidates are drawn at the floor of the measured top-1, and say why
    floor = min(p.top1 for p in data.points if p.measured)
    for p in data.points:
        if p.kind == "over budget":
            assert not p.measured and p.top1 == floor and "over the FLOPs budget" in p.hover
    # the hover shows the schedule, one line per block
    p = data.point(data.front[0])
    assert p.hover.count("<br>") >= DEPTH and f"{DEPTH}: " in p.hover
    # history: the best so far never decreases; the hypervolume is a share of the box and never decreases
    best = [h["best"] for h in data.history if h["best"] is not None]
    assert best == sorted(best) and best[-1] == 83.0
    hv = [v for _, v in data.hypervolume]
    assert hv == sorted(hv) and 0 < hv[-1] <= 1
    front_pts = [(data.point(n).gflops, data.point(n).top1) for n in data.front]
    assert hv[-1] == pytest.approx(hypervolume(front_pts, BUDGET) / (100 * BUDGET))  # the box up to the budget
    assert set(data.importances) == {"top1", "gflops"} and "reducer" in data.importances["top1"]
    assert data.throughput_setup == "cpu: test, batch 16, float32"
    # img/s: the baselines timed in their trials (as under a throughput constraint) and the front timed at the end
    timed = {p.trial for p in data.points if p.img_s}
    assert timed == {0, 1, 2} | set(data.front) and data.point(data.front[-1]).img_s == 1000.0 + data.front[-1]
    # early stopping: two trials stopped after 250 images of a full evaluation's 500 (the study does not say how
    # many the search split has: the largest evaluation stands for it)
    full = kinds["searched"] + kinds["baseline"]
    assert data.early_stop == {
        "stopped_early": 2,
        "images_evaluated": 500 * full + 2 * 250,
        "images_saved_by_early_stop": 500,
        "saved_share": 500 / (500 * full + 2 * 250 + 500),
    }
    assert "2 stopped early, saving 8% of the search images" in render_html(data)  # 500 of 6,500
    study.set_user_attr("search_images", 1000)
    assert report_data(study).early_stop["images_saved_by_early_stop"] == 2 * 750
    json.dumps(data.to_dict())  # plain data
    assert " · throughput floor" not in render_html(data)
    study.set_user_attr("spec", {**study.user_attrs.get("spec", {}), "min_throughput": "1500img/s"})
    assert " · throughput floor 1500img/s" in render_html(report_data(study))  # the header names the constraint


def test_running_and_failed_trials_are_counted_not_plotted(study: optuna.Study) -> None:
    study.add_trial(_trial("tome", [20, 20, 10, 4], None, state=TrialState.FAIL))
    running = study.ask()  # a trial in flight: its candidate and GFLOPs are already recorded
    running.set_user_attr("gflops", 2.0)
    data = report_data(study)
    assert len(data.points) == len(study.trials) - 2
    assert data.states == {"COMPLETE": 13, "PRUNED": 2, "RUNNING": 1, "FAIL": 1}
    assert any("1 running" in n and "1 fail" in n for n in data.notes)


def test_infeasible_evaluated_trials_are_drawn_as_such_and_an_empty_front_is_explained(tmp_path: Path) -> None:
    """Candidates evaluated but below the throughput floor were drawn as ordinary points, an empty Pareto table
    came without a word, and repeats were counted as "pruned", until 2026-12-07."""
    study = optuna.create_study(study_name="floor", storage=f"sqlite:///{tmp_path / 'study.db'}",
                                directions=["maximize", "minimize"])
    study.set_user_attr("spec", {"name": "floor", "model": "fashion-vit", "objectives": ["top1", "gflops"],
                                 "min_throughput": "5000img/s"})
    study.set_user_attr("budget_gflops", BUDGET)
    study.set_user_attr("full_gflops", FULL)
    slow = []
    for i, (red, rs, acc, img_s) in enumerate([("tome", [14] * 4, 80.0, 900.0), ("rapid", [20, 16, 10, 4], 81.0,
                                                                                  1200.0)]):
        t = _trial(red, rs, acc, img_s=img_s, baseline="tome constant r" if i == 0 else "", seed=0.3 + 0.2 * i)
        t.user_attrs.update(feasible=False, infeasible=f"below the throughput floor ({img_s:.4g} img/s)")
        slow.append(t)
    repeat = _trial("rapid", [20, 16, 10, 4], None, state=TrialState.PRUNED, seed=0.7)
    repeat.user_attrs["duplicate_of"] = 1
    study.add_trials([*slow, repeat])
    data = report_data(study)
    assert [p.kind for p in data.points] == ["infeasible", "infeasible"] and data.front == []
    assert all("below the throughput floor" in p.hover for p in data.points)
    assert "not plotted: 1 repeated trial(s)" in data.notes
    assert ("no feasible trial: each of the 2 evaluated candidates is below the throughput floor — the Pareto table "
            "is empty (lower the throughput floor)") in data.notes
    figs = figures(data)
    assert any(tr.marker.symbol == "circle-x-open" for tr in figs["pareto"].data)
    assert any(sh.x0 == 5000.0 for sh in figs["throughput"].layout.shapes)  # the floor, on the throughput plot
    assert "crossed circles were evaluated but are not feasible" in render_html(data)
    # a published recipe over the budget, evaluated as a reference, without a floor: no floor to lower
    ref = optuna.create_study(study_name="ref", storage=f"sqlite:///{tmp_path / 'study.db'}",
                              directions=["maximize", "minimize"])
    ref.set_user_attr("spec", {"name": "ref", "model": "fashion-vit", "objectives": ["top1", "gflops"]})
    ref.set_user_attr("budget_gflops", BUDGET)
    ref.set_user_attr("full_gflops", FULL)
    t = _trial("tome", [14] * 4, 80.0, baseline="diffrate published")
    t.user_attrs.update(feasible=False, infeasible=PUBLISHED_OVER_BUDGET)
    ref.add_trial(t)
    assert (f"no feasible trial: each of the 1 evaluated candidates is {PUBLISHED_OVER_BUDGET} — the Pareto table "
            "is empty (raise the budget)") in report_data(ref).notes


def test_empty_study_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(study_name="empty", storage=url, directions=["maximize", "minimize"])
    with pytest.raises(StorageError, match="has no trial"):
        report_command("empty", None, url, tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


def test_unwritable_report_path_is_a_clear_error(study: optuna.Study, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write the report"):
        write_report(study, blocker / "report.html")
    for empty in ("", "."):  # --html "": a traceback ("PosixPath('.') has an empty name") until 2026-12-07
        with pytest.raises(ConfigError, match="names no file"):
            report_command("synthetic", None, f"sqlite:///{tmp_path / 'study.db'}", empty)


def test_the_report_replaces_only_an_earlier_report(study: optuna.Study, tmp_path: Path) -> None:
    """``--html study.db`` wrote the page over the study's storage (until 2026-12-07)."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    before = (tmp_path / "study.db").read_bytes()
    for target in (tmp_path / "study.db", tmp_path / "trials.csv"):
        target.write_bytes(target.read_bytes() if target.exists() else b"trial,top1\n")
        with pytest.raises(ConfigError, match=f"{target.name} exists and is not an HTML page"):
            report_command("synthetic", None, url, target)
    assert (tmp_path / "study.db").read_bytes() == before
    for _ in range(2):  # an earlier report is replaced
        report_command("synthetic", None, url, tmp_path / "report.html")


# ---------------------------------------------------------------------------------------------------- page
def test_report_page_is_self_contained(study: optuna.Study, tmp_path: Path) -> None:
    result = report_command("synthetic", None, f"sqlite:///{tmp_path / 'study.db'}", tmp_path / "r" / "report.html")
    page = Path(result["report"]).read_text()
    assert result["points"] == len(study.trials) and result["pareto"] == [t.number for t in pareto_trials(study)]
    assert result["early_stop"]["stopped_early"] == 2
    # plotly.js is inline and nothing is loaded from elsewhere
    assert len(page) > 1_000_000 and "Plotly" in page
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=", page)
    for div in ("pareto", "tokens", "throughput", "history", "importance"):
        assert f'id="{div}"' in page
    data = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)[1])
    assert len(data["points"]) == len(study.trials)
    assert not list(tmp_path.glob("r/.*"))  # no temporary file left


# -------------------------------------------------------------------------------------------------- browser
ERROR_CATCHER = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(
  (e.message || ('failed to load ' + (e.target && (e.target.src || e.target.href)))) + ' @' + (e.filename || '') + ':'
  + (e.lineno || '')), true);
window.addEventListener('unhandledrejection', e => window.__errors.push('unhandled rejection: ' + e.reason));
const __consoleError = console.error;
console.error = (...args) => { window.__errors.push('console.error: ' + args.join(' ')); __consoleError(...args); };
</script>"""
PROBE = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const d = document.body.dataset;
  d.jsErrors = JSON.stringify(window.__errors);
  d.plots = document.querySelectorAll('.js-plotly-plot').length;
  d.paretoPoints = document.querySelectorAll('#pareto path.point').length;
  const traces = document.getElementById('pareto').data;
  d.paretoData = traces.reduce((n, t) => n + (t.mode === 'markers' ? t.x.length : 0), 0);
  d.done = 'yes';
}, 1000));
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CI"):  # .ci/run (make test) installs it: missing there is a failure, not a skip
        pytest.fail("headless Chromium is not installed although CI is set; `make chromium` installs it")
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium); make test installs it")


def test_report_opens_in_headless_chromium_without_errors(study: optuna.Study, tmp_path: Path) -> None:
    browser = _chromium()
    report, _ = write_report(study, tmp_path / "report.html")
    page = report.read_text()
    probed = tmp_path / "probed.html"  # the report, with an error catcher first and a probe last
    probed.write_text(page.replace("<head>", "<head>" + ERROR_CATCHER, 1).replace("</body>", PROBE + "</body>"))
    shot = tmp_path / "report.png"
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",  # root in containers
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: any network request would fail
        "--virtual-time-budget=10000",
        "--window-size=1280,2400",
        f"--screenshot={shot}",
        "--dump-dom",
        probed.as_uri(),
    ]
    env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", run.stdout)
    assert body, run.stdout[:500]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body[1]))
    assert attrs.get("done") == "yes", f"the page never finished loading: {attrs}"
    errors = json.loads(attrs["js-errors"].replace("&quot;", '"').replace("&amp;", "&"))
    assert errors == [], errors
    uncaught = [line for line in run.stderr.splitlines() if "Uncaught" in line]
    assert not uncaught, uncaught
    assert int(attrs["plots"]) == 5
    assert int(attrs["pareto-data"]) == len(study.trials)
    assert int(attrs["pareto-points"]) == len(study.trials)  # drawn, not just in the data
    assert shot.is_file() and shot.stat().st_size > 20_000


def test_a_shallower_subnet_s_output_count_sits_at_out(study: optuna.Study) -> None:
    """Subnets of different depth on one plot: a depth-5 subnet's output count was drawn at "block 6" (until
    2026-12-07)."""
    import dataclasses

    from searcher.report import figures

    data = report_data(study)
    first = next(i for i, p in enumerate(data.points) if p.trial in data.front and p.tokens)
    shallow = dataclasses.replace(data.points[first], tokens=data.points[first].tokens[:-2] + [7])
    data.points[first] = shallow
    traces = {t.name: t for t in figures(data)["tokens"].data}
    trace = next(t for name, t in traces.items() if name.startswith(f"#{shallow.trial} "))
    assert list(trace.x)[-1] == "out" and len(trace.x) == len(shallow.tokens) and list(trace.y)[-1] == 7


def test_pareto_configs_with_equal_token_counts_share_one_line(study: optuna.Study) -> None:
    """Two subnets of a joint study, both unreduced, have equal counts: the second line hid the first, whose legend
    entry pointed at nothing (until 2026-12-08)."""
    import dataclasses

    from searcher.report import figures

    data = report_data(study)
    a, b = [i for i, p in enumerate(data.points) if p.trial in data.front and p.tokens][:2]
    data.points[b] = dataclasses.replace(data.points[b], tokens=list(data.points[a].tokens))
    lines = [t for t in figures(data)["tokens"].data if t.name != "no reduction"]
    shared = [t for t in lines if f"#{data.points[a].trial} " in t.name]
    assert len(shared) == 1 and f"#{data.points[b].trial} " in shared[0].name
    assert data.points[a].hover in shared[0].hovertext[0] and data.points[b].hover in shared[0].hovertext[0]
    assert len(lines) == len({tuple(p.tokens) for p in data.points if p.trial in data.front and p.tokens})


def test_importances_are_of_the_searched_trials_alone(study: optuna.Study) -> None:
    """The published recipes (fixed points: every profile weight 1) made w5 and target look important and the reducer,
    which alone sets them apart, not; 6 complete trials of 15 sufficed (until 2026-12-08)."""
    data = report_data(study)
    assert data.importance_trials == 10  # 8 searched, 2 stopped early at their partial top-1; not the 3 recipes
    assert "10 searched trials." in render_html(data)
    few = optuna.create_study(directions=["maximize", "minimize"])
    for k, v in study.user_attrs.items():
        few.set_user_attr(k, v)
    few.add_trials(study.trials[:12])  # the recipes, 8 searched and one stopped early
    data = report_data(few)
    assert data.importances == {} and "too few searched trials for importances (9; at least 10)" in render_html(data)


def test_the_img_s_of_the_pareto_table_show_the_range_of_their_repeats(study: optuna.Study) -> None:
    """Two configs 30 % apart in img/s swapped places when timed again: the range says how far apart they are."""
    data = report_data(study)
    page = render_html(data)
    assert "img/s (slowest–fastest repeat)" in page and "<td>1009 (959–1049)</td>" in page  # trial 9, timed at the end
    assert "880 (830–920) img/s" in data.point(1).hover  # the rapid recipe, timed in its trial


def test_importances_of_equal_weight_come_in_name_order() -> None:
    """Parameters of equal importance (the profile weights of a budget-aware space often are) are listed by name:
    the page was the same study drawn in another order on each run (until 2026-12-08)."""
    from searcher.report import _importance

    dist = {name: FloatDistribution(0.0, 1.0) for name in ("w2", "w0", "target", "w1")}
    trials = []
    for i in range(30):
        x = (i * 7 % 30) / 30
        params = {"w2": x, "w0": x, "target": (i * 11 % 30) / 30, "w1": x}  # w0, w1, w2 always alike
        trials.append(optuna.trial.create_trial(params=params, distributions=dist, value=0.0,
                                                user_attrs={"top1": 50 + 40 * x}))
    imp = _importance("top1", trials)
    assert imp is not None
    assert list(imp) == sorted(imp, key=lambda k: (-imp[k], k))
    assert imp["w0"] == imp["w1"] == imp["w2"] and list(imp).index("w0") < list(imp).index("w1") < list(imp).index("w2")


def test_the_pareto_table_names_each_subnet(study: optuna.Study) -> None:
    """A joint AutoFormer study's Pareto rows differ by their subnet: the table shows it (rows of one reducer and
    one token count looked alike until 2026-12-07); a plain ViT's table, or one subnet's, has no subnet column."""
    import dataclasses

    from searcher.report import _table

    data = report_data(study)
    assert "subnet" not in _table(data)
    front = [i for i, p in enumerate(data.points) if p.trial in data.front]
    subnet = {"embed_dim": 96, "depth": 2, "num_heads": [2, 4], "mlp_ratio": [4.0, 3.5]}
    for i in front:  # one fixed subnet (autoformer-s): the same on every row, no column
        data.points[i] = dataclasses.replace(data.points[i], arch=subnet)
    assert "subnet" not in _table(data)
    data.points[front[0]] = dataclasses.replace(data.points[front[0]], arch={**subnet, "embed_dim": 120})
    table = _table(data)
    assert "<th>subnet</th>" in table and "<td>embed 96, depth 2, heads 2-4, mlp 4-3.5</td>" in table
    assert "<td>embed 120, depth 2, heads 2-4, mlp 4-3.5</td>" in table
