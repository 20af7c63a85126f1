"""The ``searcher`` command: a thin layer that parses arguments and calls the library.

User mistakes raise :class:`~searcher.errors.SearcherError`; they are printed as one ``error: …`` line on stderr
and the process exits with code 2, without a traceback. ``--json`` prints machine-readable results on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .errors import CheckpointError, ConfigError, DataError, SearcherError

__all__ = ["main", "build_parser"]

log = logging.getLogger("searcher")
COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {}


def command(name: str):
    def deco(fn):
        COMMANDS[name] = fn
        return fn

    return deco


def emit(args: argparse.Namespace, result: dict, text: str) -> None:
    """Print ``result`` as JSON with ``--json``, else the human-readable ``text``."""
    try:
        print(json.dumps(result, indent=2, default=str) if getattr(args, "json", False) else text, flush=True)
    except BrokenPipeError:
        raise
    except OSError as e:  # stdout on a full disk (> /dev/full): one line, not a traceback
        raise SearcherError(f"cannot write the result to stdout: {e.strerror or e}") from e


# -------------------------------------------------------------------------------------------------- commands
def _outputs(study: Any) -> int | None:
    """How many classes a study's model predicts, as far as known without building it: ``model_kwargs``'
    ``num_classes``, else an AutoFormer checkpoint's own head when the file is here (a URL is not downloaded)."""
    from .models import AUTOFORMER_NAMES, download_path, local_checkpoint

    outputs = (study.model_kwargs or {}).get("num_classes")
    checkpoint = study.checkpoint_path()
    if outputs is not None or not checkpoint or study.model.removesuffix("-supernet") not in AUTOFORMER_NAMES:
        return outputs
    from .models.autoformer_checkpoint import read_checkpoint

    path = download_path(checkpoint) if checkpoint.startswith(("http://", "https://")) else local_checkpoint(checkpoint)
    if not path.is_file():
        log.warning("%s is not downloaded yet, and its head not known: the folders are labelled as for an ImageNet "
                    "head (optimize, once it has the file, labels them in sorted order if the head has one output "
                    "per folder)", checkpoint)
        return None
    try:
        head = read_checkpoint(path)[0].get("head.weight")
    except CheckpointError as e:
        log.warning("the checkpoint's head could not be read (%s); the classes are labelled as for an ImageNet "
                    "head", e)
        return None
    return None if head is None else int(head.shape[0])


@command("data")
def cmd_data(args: argparse.Namespace) -> None:
    from .data import load_splits, resolve_data_spec

    if args.study:
        from .study import StudySpec

        if args.data_dir:  # it was ignored: the spec's data section says where the data is
            raise ConfigError("give --study or --data-dir, not both: a study spec's 'data' section says where its "
                              "data is")
        study = StudySpec.from_yaml(args.study)
        spec = resolve_data_spec(study.data, study.base_dir)  # relative roots as optimize reads them
    else:
        spec = {"kind": "fashion-mnist", "dir": args.data_dir}
    try:  # a model fine-tuned on the folders' classes: their sorted order, as optimize labels them
        splits = load_splits(spec, outputs=_outputs(study) if args.study else None)
    except DataError as e:
        if args.study:
            from .study import shipped_data_hint

            raise shipped_data_hint(study, e) from None
        d = Path(args.data_dir or "").expanduser()
        if (not args.data_dir or not d.is_dir() or not any(p.is_dir() for p in d.iterdir())
                or any(d.glob("*-ubyte*")) or any(d.glob("*/*-ubyte*"))):  # not an image folder given instead
            raise
        raise DataError(f"{d} holds no Fashion-MNIST IDX files; an ImageNet-layout folder is described by a study "
                        "spec, which says how to preprocess it: searcher data --study SPEC") from e
    first = next(iter(splits.values()))
    result = {
        "dataset": spec.get("kind", "fashion-mnist"),
        "source": first.source,
        "classes": first.classes,
        "num_classes": first.num_classes,
        "image_shape": list(first.images.shape[1:]),
        "splits": {n: {"images": len(s), "class_counts": s.class_counts()} for n, s in splits.items()},
    }
    shape = "x".join(map(str, first.images.shape[1:]))
    lines = [
        f"{result['dataset']} from {first.source}",
        f"  {first.num_classes} classes, images {shape} (uint8)",
    ]
    for n, s in splits.items():
        counts = [c for c in s.class_counts() if c]  # an ImageNet subset folder holds some of the model's classes
        present = f" of {len(counts)} classes" if len(counts) < s.num_classes else ""
        lines.append(f"  {n:<7} {len(s):>7} images   per class {min(counts, default=0)}-{max(counts, default=0)}"
                     f"{present}")
    emit(args, result, "\n".join(lines))


@command("flops")
def cmd_flops(args: argparse.Namespace) -> None:
    from .cost.flops import flops_report

    r = flops_report(args.model, args.schedule, args.checkpoint)
    parts = "\n".join(f"  {k:<12} {v:10.4f}" for k, v in r["breakdown"].items())
    emit(
        args,
        r,
        f"{r['model']}: {r['gflops']:.4f} GFLOPs analytic, {r['fvcore_gflops']:.4f} fvcore, "
        f"{r['params'] / 1e6:.3f} M params\n{parts}",
    )


@command("evaluate")
def cmd_evaluate(args: argparse.Namespace) -> None:
    from .data import load_split
    from .evaluate import evaluate

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}; leave it out to evaluate the whole split")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.config and (args.model or args.schedule):  # they were ignored: the config's own model and schedule ran
        given = " and ".join(f"--{k}" for k in ("model", "schedule") if getattr(args, k))
        raise ConfigError(f"{given} and a CONFIG: the config fixes its model and schedule; evaluate another schedule "
                          "with 'searcher evaluate --model NAME --schedule FILE'")
    if args.schedule:  # an exported config as --schedule: evaluated as the config it is
        from .cost.flops import _config_model

        named = _config_model(args.schedule).get("name")
        if named and args.model and named != args.model:
            raise ConfigError(f"{args.schedule} is a config of {named}, not {args.model}; evaluate the config "
                              f"itself: searcher evaluate {args.schedule}")
        if named:
            args.config, args.schedule = args.schedule, None
    if args.num_classes is not None and (args.config or args.num_classes < 1):
        raise ConfigError("--num-classes goes with --model (a config records its model's head), and is at least 1")
    source = None
    if args.config:
        from .deploy import _load, config_data, read_config

        config = read_config(args.config)
        model, source = _load(config, args.config, args.checkpoint, True)
        data = config_data(config, args.data_dir, args.split)
    else:
        if not args.model:
            raise ConfigError("give a CONFIG file or --model NAME")
        from .models import EMBEDDED, create_model
        from .patch import apply
        from .schedule import read_schedule

        if args.model not in EMBEDDED and not args.data_dir:  # before loading (or downloading) the weights
            raise ConfigError(f"give --data-dir DIR to evaluate {args.model}: an ImageNet-layout folder (one "
                              "sub-folder of images per class, e.g. ImageNet's val); only the embedded "
                              f"{' and '.join(EMBEDDED)} evaluate on Fashion-MNIST")
        if args.model not in EMBEDDED:
            from .data import check_data

            check_data({"kind": "imagefolder", args.split: args.data_dir}, need=(args.split,))
        kwargs = {} if args.num_classes is None else {"num_classes": args.num_classes}
        model = create_model(args.model, checkpoint=args.checkpoint, **kwargs)
        if args.schedule:
            schedule = read_schedule(args.schedule)
            try:
                model = apply(model, schedule)
            except ConfigError as e:  # a schedule of another depth
                raise ConfigError(f"schedule {args.schedule}: {e}") from e
        if args.model in EMBEDDED:
            data = {"kind": "fashion-mnist", "dir": args.data_dir}
        else:  # the model's timm data config (resize, crop, mean/std) and, for ImageNet folders, its class order
            data = {"kind": "imagefolder", args.split: args.data_dir}
    split = load_split(data, args.split, model=model)
    if source is not None:  # as onnx checks it: a traceback from the model's first layer before
        source.check_data(split, "give the data the model was searched on")
    acc = evaluate(model, split, args.batch_size, limit=args.limit, progress=sys.stderr.isatty() and not args.json)
    result = {**acc.to_dict(), "split": args.split, "images": acc.n}
    emit(args, result, f"top-1 {acc.top1:.2f}%  top-5 {acc.top5:.2f}%  on {acc.n} images of {args.split}")


@command("onnx")
def cmd_onnx(args: argparse.Namespace) -> None:
    from .deploy import onnx_text, to_onnx

    r = to_onnx(
        args.config,
        args.out,
        weights=args.checkpoint,
        batch=args.batch,
        opset=args.opset,
        split=args.split,
        images=args.images,
        data_dir=args.data_dir,
    )
    emit(args, r, onnx_text(r))


@command("export")
def cmd_export(args: argparse.Namespace) -> None:
    from .export import export_command, export_text

    r = export_command(args.study, args.out, args.storage, command="searcher " + " ".join(sys.argv[1:]))
    emit(args, r, export_text(r))


@command("report")
def cmd_report(args: argparse.Namespace) -> None:
    from .report import report_command

    r = report_command(args.study, args.out, args.storage, args.html)
    emit(args, r, f"wrote {r['report']} ({r['trials']} trials)")


@command("dashboard")
def cmd_dashboard(args: argparse.Namespace) -> None:
    from .dashboard import dashboard_command

    kwargs = {"announce": lambda info: print(json.dumps(info), flush=True)} if args.json else {}
    dashboard_command(args.study, args.out, args.storage, args.host, args.port, **kwargs)


@command("train")
def cmd_train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    cfg = TrainConfig.from_dict(overrides)
    meta = train(cfg, command="searcher " + " ".join(sys.argv[1:]))
    assert meta is not None
    acc = ", ".join(f"{k} {v:.2f}%" for k, v in meta["accuracy"].items())
    emit(
        args,
        meta,
        f"trained {cfg.model} in {meta['training']['minutes']:.1f} min: {acc}\n"
        f"weights: {cfg.out}/{cfg.model}.safetensors (+ .json); copy both into searcher/assets/",
    )


@command("optimize")
def cmd_optimize(args: argparse.Namespace) -> int | None:
    from .study import StudySpec, describe_early_stop, optimize

    spec = StudySpec.from_yaml(args.study).override(
        budget=args.budget,
        min_throughput=args.min_throughput,
        trials=args.trials,
        timeout=args.timeout,
        storage=args.storage,
        workers=args.workers,
        sampler=args.sampler,
        seed=args.seed,
        objectives=args.objectives,
    )
    from .export import check_replaceable, export_study, pareto_table, run_dir

    check_replaceable(run_dir(spec.name, args.out))  # now, not after the study: where it exports (whose: optimize)
    result = optimize(spec, args.out, progress=not args.json and sys.stderr.isatty())

    exported = export_study(result.study, result.out)
    files, config_of_trial = exported.files, {row["trial"]: row["config"] for row in exported.pareto}
    table = pareto_table(result.pareto)
    summary = {
        "study": spec.name,
        "out": str(result.out),
        "budget_gflops": result.budget,
        "full_gflops": result.full_gflops,
        "pareto": [{**row, "config": config_of_trial.get(row["trial"])} for row in result.pareto],
        "stats": result.stats,
        "files": [str(f) for f in files],
        "interrupted": result.interrupted,
        "timed_out": result.timed_out,
    }
    st = result.stats
    repeats = f"{st['repeats']} repeats of an earlier candidate, " if st["repeats"] else ""
    repeats += f"{st['over_budget']} draw{'s' * (st['over_budget'] > 1)} over the budget, " if st["over_budget"] else ""
    feasible = f"{100 * st['feasible_share']:.0f}% feasible" + (
        f" ({st['untimed']} left out: not timed under the throughput floor, stopped early or dominated)"
        if st["untimed"] else "")
    text = (
        f"study {spec.name}: {st['trials']} trial{'s' * (st['trials'] != 1)} ({describe_early_stop(st)}, {repeats}"
        f"{st['failed']} failed), "
        f"{feasible}; budget {result.budget:.4g} of {result.full_gflops:.4g} "
        f"GFLOPs\n\nPareto set (re-evaluated on the test split):\n{table}\n\nwritten to {result.out}/"
    )
    emit(args, summary, text)
    if result.interrupted:  # stopped early by the user, its results exported: a script must be able to tell
        print("interrupted: stopped after the current trial (exported as above); run the same command to go on",
              file=sys.stderr)
        return 130
    return None


JSON_HELP = "print the result as JSON (machine-readable) instead of text"
# (command line, what it does): the end of `searcher --help`
EXAMPLES = [
    ("searcher optimize --study fashion-vit --budget 50%", "runs the embedded default (make demo)"),
    (
        "searcher optimize --study deit-s-imagenet --budget 2.9GFLOPs "
        "--storage postgresql://user@host/searcher --workers 4",
        "runs 4 workers on PostgreSQL; the same command on other machines joins the study",
    ),
    ("searcher report --out runs/fashion-vit", "writes runs/fashion-vit/report.html, self-contained"),
    ("searcher dashboard --out runs/fashion-vit", "opens the study in optuna-dashboard"),
    ("searcher onnx runs/fashion-vit/configs/CONFIG.json model.onnx", "writes a Pareto config as ONNX, checked"),
]


class _Parser(argparse.ArgumentParser):
    """argparse's parser, its usage errors one ``error:`` line (exit 2) that names the ``--help`` to read, as the
    commands' own errors are, instead of the usage block and the message."""

    def error(self, message: str) -> NoReturn:
        if message.endswith("expected one argument"):  # `--budget -10%`: argparse reads -10% as an option
            option = message.removeprefix("argument ").split(":")[0].split("/")[-1]
            message += f" (a value that begins with '-' is read as an option: write {option}=VALUE)"
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="searcher",
        description="Find the fastest accurate way to run a Vision Transformer: Optuna studies over token-reduction\n"
        "schedules (ToMe, ToFu, PiToMe, RAPID, top-k, DiffRate) and AutoFormer architectures under a FLOPs\n"
        "budget, with fvcore-convention FLOPs and measured throughput as constraints.",
        epilog="examples:\n"
        + "".join(f"  # {what}\n  {line}\n" for line, what in EXAMPLES)
        + "\nsearcher COMMAND --help describes each command. User mistakes exit with code 2 and one 'error:' line.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"searcher {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help: str, description: str = "") -> argparse.ArgumentParser:
        """A command whose --help starts with the line `searcher --help` lists it with."""
        sub = commands.add_parser(name, help=help, description=f"{help[0].upper()}{help[1:]}. {description}".strip())
        # -v after the command too (`searcher optimize … -v`); SUPPRESS keeps a -v given before it
        sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress details")
        return sub

    d = command("data", help="show where the data was found, split sizes and class balance")
    d.add_argument(
        "--data-dir",
        help="directory with the Fashion-MNIST IDX files (default: $SEARCHER_DATA, "
        "then /usr/share/datasets/fashion-mnist)",
    )
    d.add_argument("--study", help="show the data of this study spec instead (e.g. an ImageFolder)")
    d.add_argument("--json", action="store_true", help=JSON_HELP)

    f = command("flops", help="analytic and fvcore GFLOPs per image, with a breakdown by part")
    f.add_argument("--model", help="timm name, fashion-vit, fashion-autoformer, autoformer-t|s|b[-supernet] "
                   "(default: the config's)")
    f.add_argument("--schedule", help="schedule JSON, or an exported config (its model arguments and subnet too)")
    f.add_argument("--checkpoint", help="weights (FLOPs do not depend on them)")
    f.add_argument("--json", action="store_true", help=JSON_HELP)

    e = command("evaluate", help="top-1/top-5 of a config, or of a model with a schedule, on a split")
    e.add_argument("config", nargs="?", help="an exported config JSON")
    e.add_argument("--model", help="model name (instead of a config)")
    e.add_argument("--schedule", help="schedule JSON to apply to --model")
    e.add_argument("--checkpoint", help="local weights file or URL")
    e.add_argument("--split", default="test", choices=["search", "test", "train"])
    e.add_argument("--data-dir", help="with a config: where its data is on this machine (default: where it was "
                   "searched): the Fashion-MNIST directory, or the ImageNet-layout folder of --split; with --model: "
                   "Fashion-MNIST's for the embedded models (default: the system's), else an ImageNet-layout folder")
    e.add_argument("--num-classes", type=int, help="with a timm --model: its head's classes, when a --checkpoint was "
                   "trained on other classes than the pretrained model (timm's --num-classes)")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--limit", type=int, help="evaluate the first N images only")
    e.add_argument("--json", action="store_true", help=JSON_HELP)

    x = command("onnx", help="export a config's model to ONNX, checked against PyTorch in onnxruntime")
    x.add_argument("config", help="an exported config JSON")
    x.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    x.add_argument("--batch", default="dynamic", help="a fixed batch size, or 'dynamic' (default)")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 (default) to 20")
    x.add_argument("--checkpoint", help="weights file, when not where the config says")
    x.add_argument("--split", default="test", choices=["search", "test", "train"], help="images for the check")
    x.add_argument("--images", type=int, default=512, help="images to compare ONNX and PyTorch on (default 512)")
    x.add_argument("--data-dir", help="where the config's data is on this machine: the Fashion-MNIST directory, or "
                   "the ImageNet-layout folder of --split")
    x.add_argument("--json", action="store_true", help=JSON_HELP)

    o = command(
        "optimize",
        help="run (or resume) an Optuna study of token-reduction schedules",
        description="The flags override the study spec. Everything the run writes goes to --out (default "
        "runs/STUDY): the study (study.db unless --storage is given), configs/*.json of the Pareto set re-evaluated "
        "on the test split, trials.csv and pareto.csv. The same command again resumes the study; Ctrl-C stops after "
        "the current trial, a second Ctrl-C abandons it.",
    )
    o.add_argument(
        "--study", required=True, help="study spec: a YAML file, or the name of a shipped one (e.g. fashion-vit)"
    )
    o.add_argument("--budget", help="FLOPs budget per image: 3.3GFLOPs, 850MFLOPs or 60%% of the unreduced model")
    o.add_argument("--min-throughput", help="throughput floor, e.g. 1500img/s (a constraint)")
    o.add_argument("--objectives", help="comma-separated from top1 (required), gflops, throughput; default: "
                   "the spec's (top1,gflops)")
    o.add_argument(
        "--trials", type=int, help="candidates to evaluate (resumes up to this; repeated draws do not count)"
    )
    o.add_argument("--timeout", type=float, help="seconds of trials for this invocation (loading the model and "
                   "data, and testing the Pareto set, come on top); the same command goes on")
    o.add_argument(
        "--storage",
        help="sqlite:///PATH, postgresql://…, mysql://… or journal:PATH (default: sqlite at OUT/study.db)",
    )
    o.add_argument("--workers", type=int, help="local worker processes on one storage")
    o.add_argument("--sampler", help="tpe (default), nsga2, gp or random")
    o.add_argument(
        "--seed", type=int, help="sampler seed (default: the spec's; workers and resumed runs derive theirs from it)"
    )
    o.add_argument("--out", help="run directory (default runs/STUDY)")
    o.add_argument("--json", action="store_true", help=JSON_HELP)

    for name, text in (
        ("export", "write the Pareto configs, trials.csv and pareto.csv of a study"),
        ("report", "write a self-contained HTML report of a study"),
        ("dashboard", "open a study in optuna-dashboard"),
    ):
        c = command(name, help=text)
        c.add_argument("--out", help="the run directory, which holds study.db or study.journal (default runs/STUDY)"
                       + ("; the files are written there" if name != "dashboard" else ""))
        c.add_argument("--study", help="study name (runs/NAME) or spec YAML")
        c.add_argument("--storage", help="storage URL, when the study is not under --out")
        if name == "report":
            c.add_argument("--html", help="output file (default OUT/report.html)")
        if name == "dashboard":
            c.add_argument("--host", default="127.0.0.1")
            c.add_argument("--port", type=int, default=8080)
        c.add_argument("--json", action="store_true", help=JSON_HELP)

    t = command(
        "train",
        help="train an embedded default model on Fashion-MNIST (resumable)",
        description="Options left out take the defaults of searcher.train.TrainConfig; every option is recorded in "
        "the run's metadata.",
    )
    t.add_argument("--model", default="fashion-vit", help="fashion-vit or fashion-autoformer")
    t.add_argument("--out", help="run directory for checkpoints and results (default runs/train/MODEL)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", dest="batch_size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--weight-decay", dest="weight_decay", type=float)
    t.add_argument("--warmup-epochs", dest="warmup_epochs", type=float)
    t.add_argument("--label-smoothing", dest="label_smoothing", type=float)
    t.add_argument("--translate", type=int, help="random translation in pixels")
    t.add_argument("--no-flip", dest="flip", action="store_const", const=False)
    t.add_argument("--drop-path", dest="drop_path", type=float)
    t.add_argument("--ema-decay", dest="ema_decay", type=float)
    t.add_argument("--sandwich", action="store_const", const=True, help="supernet: also train the largest subnet")
    t.add_argument("--extremes", type=float, help="supernet: share of steps on the largest/smallest subnet")
    t.add_argument("--reduce", type=float, help="share of steps trained with a random token-reduction schedule")
    t.add_argument("--reduce-r", dest="reduce_r", type=int, help="largest mean r of those schedules (default 8)")
    t.add_argument("--reducers", help="reducer types drawn in those steps (default tome,tofu,pitome,rapid)")
    t.add_argument("--init", help="start from these weights: the model's own name (its shipped weights) or a file")
    t.add_argument("--seed", type=int, help="training seed")
    t.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    t.add_argument(
        "--data-dir",
        dest="data_dir",
        help="Fashion-MNIST directory (default: $SEARCHER_DATA, then /usr/share/datasets/fashion-mnist)",
    )
    t.add_argument("--limit", type=int, help="train on the first N training images only (smoke tests)")
    t.add_argument("--json", action="store_true", help=JSON_HELP)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if extra:  # argparse names the top parser's help; the command's lists the options, unless given before it
        before = args.command in argv and extra[0] in argv[: argv.index(args.command)]
        (parser if before else commands.get(args.command, parser)).error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "out", None) == "":  # read as "not given" (runs/<study>) until 2026-12-07
        option = any(a.dest == "out" and a.option_strings for a in commands[args.command]._actions)
        commands[args.command].error("--out is empty; give a directory" if option else "OUT is empty; give a file")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    # each of the Hub's retries offline is two lines (its own handler's and ours) before searcher's one error line;
    # the Hub sets its level from HF_HUB_VERBOSITY when it is first imported (by timm, later), else now
    os.environ.setdefault("HF_HUB_VERBOSITY", "info" if args.verbose else "error")
    logging.getLogger("huggingface_hub").setLevel(logging.INFO if args.verbose else logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", message=".*experimental.*")  # Optuna features we use on purpose
    import optuna

    optuna.logging.set_verbosity(optuna.logging.INFO if args.verbose else optuna.logging.WARNING)
    if not args.command:
        parser.print_help(sys.stderr)  # a usage error, as argparse prints its own
        return 2
    if args.command == "train" and not args.out:
        args.out = f"runs/train/{args.model}"
    return run_main(COMMANDS[args.command], args)


def console() -> NoReturn:
    """The ``searcher`` command (and ``python -m searcher``): :func:`main`, then the exit, with Ctrl-C ignored on
    the way out (a second press as a run ends raised KeyboardInterrupt in the interpreter's exit handlers, torch's:
    a traceback after the last line)."""
    import signal

    rc = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(rc)


def run_main(fn: Callable[..., int | None], *args: object) -> int:
    """``fn(*args)`` as a command runs (the CLI's commands, the scripts in bench/): its exit status, 2 and one
    ``error:`` line for a :class:`SearcherError`, 130 for Ctrl-C, 141 when the reader of stdout left."""
    try:
        return fn(*args) or 0
    except SearcherError as e:
        # one line, also for messages that quote a multi-line parser error (YAML)
        print("error: " + " ".join(line.strip() for line in str(e).splitlines() if line.strip()), file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"interrupted: {e}" if str(e) else "interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `searcher … | head`: the reader left; say nothing more (Python's own advice)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def at_least(least: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number of at least ``least`` (argparse's usage error otherwise)."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return whole


if __name__ == "__main__":
    console()
