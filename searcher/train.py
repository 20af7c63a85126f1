"""Training the embedded default models (a timm ViT and an AutoFormer supernet) on Fashion-MNIST.

Recipe: AdamW, linear warm-up then cosine decay, label smoothing, light augmentation (random translation by
zero-padding and cropping, horizontal flip), an EMA of the weights (the EMA is what is saved). For a supernet
every step trains one uniformly sampled subnet (AutoFormer's one-shot recipe), optionally plus the largest
subnet ("sandwich", gradients accumulated), or, at no extra cost, a share of steps on the largest or smallest
subnet instead of a uniform draw (``extremes``).

Token reduction in the loop (``reduce``): a share of the steps runs with a random reduction schedule patched in
(one of ``reducers``, per-block r drawn around a random mean of at most ``reduce_r``), as ToMe trains with merging
on; the model learns to work on merged and pruned tokens, so a search loses less accuracy per FLOP removed.
``init`` starts from existing weights (an embedded model's shipped weights, or a .safetensors file): how the
shipped supernet is fine-tuned with reduction in the loop.

Runs are deterministic on CPU: the data order of epoch ``e`` and the augmentation and subnet of step ``s`` come
from generators seeded with ``(seed, e)`` and ``(seed, s)`` (drop path from torch's global generator, whose state
the checkpoint keeps), so a run resumed from a checkpoint continues exactly as if it had not stopped. Checkpoints
are written atomically every ``checkpoint_every`` seconds, at the end of every epoch, and after the step a first
Ctrl-C lands in (a second stops at once).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.utils import ModelEmaV3
from torch import nn
from tqdm.auto import tqdm

from ._sigint import on_sigint
from .data import Split, atomic_write, held_alone, load_splits
from .errors import CheckpointError, ConfigError
from .evaluate import evaluate
from .patch import apply, remove

__all__ = ["TrainConfig", "train", "augment"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """One training run; every field is recorded in the output metadata."""

    model: str = "fashion-vit"  # a name from searcher.models.EMBEDDED
    out: str = "runs/train"  # run directory: checkpoint, final weights and metadata
    epochs: int = 12
    batch_size: int = 128
    lr: float = 1e-3  # peak learning rate (AdamW)
    min_lr: float = 1e-5  # end of the cosine decay
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    translate: int = 2  # random translation in pixels (zero padding + crop)
    flip: bool = True  # random horizontal flip
    drop_path: float = 0.0
    ema_decay: float = 0.999
    sandwich: bool = False  # supernet: also train the largest subnet every step (doubles the cost)
    extremes: float = 0.0  # supernet: share of steps that train the largest or the smallest subnet (half each)
    reduce: float = 0.0  # share of steps trained with a random token-reduction schedule patched in
    reduce_r: int = 8  # largest mean tokens removed per block in those steps
    reducers: tuple[str, ...] = ("tome", "tofu", "pitome", "rapid")  # reducer types drawn in those steps
    init: str | None = None  # start from these weights: an embedded model's name (its shipped weights) or a file
    seed: int = 0
    threads: int = 0  # torch threads; 0 = all cores
    checkpoint_every: float = 120.0  # seconds between checkpoints
    data_dir: str | None = None
    limit: int | None = None  # train on the first N training images only (smoke tests)
    eval_images: int | None = None  # final test evaluation on the first N test images (None: all 10,000)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown training options {sorted(unknown)}; known: {sorted(names)}")
        if isinstance(d.get("reducers"), list | str):
            d = d | {"reducers": tuple(d["reducers"].split(",") if isinstance(d["reducers"], str) else d["reducers"])}
        cfg = cls(**d)
        for name, ok, what in (
            ("epochs", cfg.epochs >= 1, "at least 1"),
            ("batch_size", cfg.batch_size >= 1, "at least 1"),
            ("lr", cfg.lr > 0, "positive"),
            ("min_lr", 0 <= cfg.min_lr <= cfg.lr, "in [0, lr]"),
            ("weight_decay", cfg.weight_decay >= 0, "at least 0"),
            ("warmup_epochs", 0 <= cfg.warmup_epochs <= cfg.epochs, "in [0, epochs]"),
            ("label_smoothing", 0 <= cfg.label_smoothing < 1, "in [0, 1)"),
            ("translate", 0 <= cfg.translate <= 16, "in [0, 16] pixels (half the 32-pixel image)"),
            ("drop_path", 0 <= cfg.drop_path < 1, "in [0, 1)"),
            ("ema_decay", 0 <= cfg.ema_decay < 1, "in [0, 1)"),
            ("extremes", 0 <= cfg.extremes <= 1, "a share of the steps in [0, 1]"),
            ("threads", cfg.threads >= 0, "at least 0 (0: all cores)"),
            ("checkpoint_every", cfg.checkpoint_every > 0, "a positive number of seconds"),
            ("limit", cfg.limit is None or cfg.limit >= 1, "at least 1"),
            ("eval_images", cfg.eval_images is None or cfg.eval_images >= 1, "at least 1"),
            ("seed", 0 <= cfg.seed < 2**32, "in [0, 2**32)"),  # a larger one overflowed torch's generator
        ):
            value = getattr(cfg, name)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):  # inf passed every bound above
                raise ConfigError(f"{name} must be {what}, got {value}")
        if not 0.0 <= cfg.reduce <= 1.0:
            raise ConfigError(f"reduce is a share of the steps in [0, 1], got {cfg.reduce}")
        if cfg.reduce_r < 1:
            raise ConfigError(f"reduce_r must be >= 1 token per block, got {cfg.reduce_r}")
        from .models import EMBEDDED
        from .schedule import RECIPES

        if cfg.model in EMBEDDED and EMBEDDED[cfg.model].family != "autoformer" and (cfg.sandwich or cfg.extremes):
            raise ConfigError(f"--sandwich and --extremes choose the subnets a supernet trains; {cfg.model} is not "
                              "a supernet: leave them out")

        trainable = [r for r in RECIPES if r != "diffrate"]  # DiffRate takes kept-token lists, not r
        bad = [r for r in cfg.reducers if r not in trainable]
        if bad or not cfg.reducers:
            raise ConfigError(f"reducers {bad or '[]'} cannot be trained with; choose from {trainable}")
        return cfg


# options that may change when a run is resumed (the data by its checksums, wherever it lies now)
_RESUMABLE = {"threads", "checkpoint_every", "out", "data_dir"}


def augment(images_u8: torch.Tensor, translate: int, flip: bool, g: torch.Generator) -> torch.Tensor:
    """Random translation (zero padding + crop) and horizontal flip of a uint8 batch (B, C, H, W)."""
    b, c, h, w = images_u8.shape
    x = images_u8
    if translate:
        p = translate
        padded = F.pad(x, (p, p, p, p))  # (B, C, H+2p, W+2p)
        oy = torch.randint(0, 2 * p + 1, (b,), generator=g)
        ox = torch.randint(0, 2 * p + 1, (b,), generator=g)
        rows = (oy[:, None] + torch.arange(h))[:, None, :, None].expand(b, c, h, w + 2 * p)
        x = padded.gather(2, rows)  # (B, C, H, W+2p)
        cols = (ox[:, None] + torch.arange(w))[:, None, None, :].expand(b, c, h, w)
        x = x.gather(3, cols)  # (B, C, H, W)
    if flip:
        mask = torch.rand(b, generator=g) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


def _draw_subnet(space: Any, extremes: float, g: torch.Generator) -> Any:
    """A uniformly drawn subnet; with probability ``extremes`` the largest or the smallest one instead."""
    u = float(torch.rand((), generator=g))
    if u < extremes / 2:
        return space.largest()
    if u < extremes:
        return space.smallest()
    return space.sample(g)


def _draw_schedule(cfg: TrainConfig, depth: int, g: torch.Generator) -> Any:
    """A random reduction schedule: a reducer type of ``cfg.reducers``, a mean r uniform in [1, reduce_r] and
    each block's r uniform in [0, 2 r]."""
    from .schedule import Schedule

    kind = cfg.reducers[int(torch.randint(len(cfg.reducers), (), generator=g))]
    mean = int(torch.randint(1, cfg.reduce_r + 1, (), generator=g))
    rs = torch.randint(0, 2 * mean + 1, (depth,), generator=g).tolist()
    return Schedule.recipe(kind, depth, rs)


def _lr_at(cfg: TrainConfig, step: int, total: int, steps_per_epoch: int) -> float:
    warm = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


def _build(cfg: TrainConfig, load_init: bool = True) -> tuple[nn.Module, Any, dict | None]:
    """The model to train (random init, seeded, or ``cfg.init``'s weights unless ``load_init`` is off: a resumed
    run takes every weight from its checkpoint), for a supernet its search space, and the record of the weights it
    starts from (None from a random init)."""
    from .models import EMBEDDED, create_model

    if cfg.model not in EMBEDDED:
        raise ConfigError(f"'searcher train' trains the embedded models {list(EMBEDDED)}, not {cfg.model!r}")
    torch.manual_seed(cfg.seed)
    model: nn.Module
    if not cfg.drop_path:
        model = create_model(cfg.model, weights=False)
    elif EMBEDDED[cfg.model].family == "timm-vit":
        from timm.models.vision_transformer import VisionTransformer

        model = VisionTransformer(**EMBEDDED[cfg.model].kwargs, drop_path_rate=cfg.drop_path)
    else:  # the supernet (it ignored --drop-path until 2026-12-07)
        from .models.autoformer import create_supernet

        model = create_supernet(EMBEDDED[cfg.model].kwargs["preset"], drop_path_rate=cfg.drop_path)
    init = _load_init(cfg, model) if cfg.init is not None and load_init else None
    space = None
    if EMBEDDED[cfg.model].family == "autoformer":
        from .models.autoformer_space import get_space

        space = get_space(EMBEDDED[cfg.model].kwargs["preset"])
    return model, space, init


def _load_init(cfg: TrainConfig, model: nn.Module) -> dict:
    """Load ``cfg.init`` into ``model``; returns what the metadata records of it (taken now, as loaded: shipped
    weights may be replaced before the run ends)."""
    from .models import (
        EMBEDDED,
        embedded_metadata,
        load_embedded_weights,
        load_timm_checkpoint,
        local_checkpoint,
        sha256_file,
    )

    assert cfg.init is not None
    if cfg.init in EMBEDDED:
        if cfg.init != cfg.model:
            raise ConfigError(f"--init {cfg.init} holds weights of another model than {cfg.model}")
        load_embedded_weights(cfg.init, model)
        return {k: embedded_metadata(cfg.init).get(k) for k in ("sha256", "training", "accuracy")}
    local = local_checkpoint(cfg.init)  # a URL downloaded once
    if not local.is_file():
        raise CheckpointError(
            f"--init {cfg.init} is neither an embedded model ({', '.join(EMBEDDED)}) nor a weights file; check the path"
        )
    load_timm_checkpoint(model, local)  # strict, NaN-checked; any nn.Module, not only timm's
    return {"weights": cfg.init, "sha256": sha256_file(local)}


def train(cfg: TrainConfig, command: str = "", stop_at: int | None = None) -> dict | None:
    """Train ``cfg.model`` on the Fashion-MNIST ``train`` split; returns the metadata written next to the weights.

    Resumes from ``<out>/checkpoint.pt`` when it exists and was written with the same configuration.
    ``stop_at`` checkpoints and returns None after that many steps (how tests interrupt a run).
    """
    from .export import _writable_dir
    from .models import ASSETS

    out = Path(cfg.out)
    weights = out / f"{cfg.model}.safetensors"
    if out.resolve() == ASSETS:  # a smoke run replaced the shipped model every study and config uses (until 2026-12-07)
        raise ConfigError(f"{out} holds searcher's shipped weights; train into another --out (by default "
                          f"runs/train/{cfg.model}), check the result, then copy its .safetensors and .json there")
    if weights.exists() and not (out / "checkpoint.pt").exists():
        raise ConfigError(f"{weights} has no checkpoint.pt beside it: not this --out's own training run, or one "
                          "whose checkpoint was deleted; a run would replace it: move it away, or use another --out")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    splits = load_splits({"kind": "fashion-mnist", "dir": cfg.data_dir})
    train_split: Split = splits["train"] if cfg.limit is None else splits["train"].subset(cfg.limit)
    sums = splits["train"].meta.get("checksums")  # the data, wherever it lies: what a resume compares
    # resuming, the checkpoint holds every weight and the record of --init: the file may be gone (an error before)
    model, space, init = _build(cfg, load_init=not (out / "checkpoint.pt").exists())
    if len(train_split) // cfg.batch_size == 0:  # before the run directory: a mistake leaves none behind
        raise ConfigError(f"{len(train_split)} training images make no batch of {cfg.batch_size}; raise --limit or "
                          "lower --batch-size")
    _writable_dir(out)  # once the inputs are known to be good: a mistake leaves no empty run directory behind
    with held_alone(out / ".train.lock", lambda who: ConfigError(
            f"{out} is being trained by {who}; wait for it to finish, or use another --out")):
        # (two runs on one --out overwrote each other's checkpoint: steps lost or run twice)
        for name in ("checkpoint.pt", weights.name, weights.with_suffix(".json").name):
            for tmp in out.glob(f".{name}.*.tmp"):  # a killed run's half-written file (atomic_write's): ours alone now
                tmp.unlink(missing_ok=True)
        model.train()
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for pname, p in model.named_parameters():
            no_wd = p.ndim <= 1 or pname.endswith(("pos_embed", "cls_token")) or "rel_pos" in pname
            (no_decay if no_wd else decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
        )
        ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True)
        n = len(train_split)
        steps_per_epoch = n // cfg.batch_size  # the last partial batch is dropped (at least one batch: checked above)
        total = steps_per_epoch * cfg.epochs
        step, elapsed = 0, 0.0
        ckpt = out / "checkpoint.pt"
        if ckpt.exists():
            try:
                state = torch.load(ckpt, weights_only=True)
            except Exception as e:  # truncated, not a checkpoint, or a pickle of anything but tensors (never run)
                raise CheckpointError(
                    f"cannot resume from {ckpt} ({str(e).splitlines()[0][:160]}); delete it to train from scratch, "
                    "or use a new --out"
                ) from e
            if not isinstance(state, dict) or not {"config", "model", "ema", "opt", "step"} <= set(state):
                raise CheckpointError(f"{ckpt} is not a checkpoint of 'searcher train' (a KeyError before); delete it "
                                      "to train from scratch, or use a new --out")
            saved = asdict(TrainConfig()) | state["config"]  # options added since the checkpoint take their default
            differ = sorted(k for k, v in asdict(cfg).items() if k not in _RESUMABLE and saved.get(k) != v)
            if differ:
                weights = out / f"{cfg.model}.safetensors"
                what = "resume with the same options, or use a new --out"
                if weights.exists():  # written when the run finished: more epochs are a new run from its weights
                    what = f"it has finished; to train its weights further, use --init {weights} with a new --out"
                raise ConfigError(
                    f"{ckpt} was written with other training options ({', '.join(differ)}); {what}"
                )
            if state.get("data") is not None and sums is not None and state["data"] != sums:
                raise ConfigError(f"{ckpt} was trained on other data than "
                                  f"{cfg.data_dir or 'the default Fashion-MNIST'} (the files' checksums differ); "
                                  "resume on the same data, or use a new --out")
            model.load_state_dict(state["model"])
            ema.module.load_state_dict(state["ema"])
            opt.load_state_dict(state["opt"])
            step, elapsed = state["step"], state["elapsed"]
            if "rng" in state:  # drop path draws from torch's global generator
                torch.set_rng_state(state["rng"])
            init = state.get("init", init)  # the weights the run started from, not those there now
            log.info("resumed %s at step %d/%d", ckpt, step, total)

        def save() -> None:
            snapshot = {
                "config": asdict(cfg),
                "model": model.state_dict(),
                "ema": ema.module.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "elapsed": elapsed,
                "init": init,
                "data": sums,
                "rng": torch.get_rng_state(),
            }
            atomic_write(ckpt, lambda tmp: torch.save(snapshot, tmp))

        interactive = sys.stderr.isatty()
        bar = tqdm(total=total, initial=step, desc=f"train {cfg.model}", unit="step", disable=not interactive)
        last_save = t_start = time.perf_counter()
        elapsed0 = elapsed
        seen = 0
        pressed: list[int] = []

        def handler(signum: int, frame: Any) -> None:
            """First Ctrl-C: finish this step and save it (the same command resumes from there); second: stop now."""
            pressed.append(signum)
            if len(pressed) > 1:
                raise KeyboardInterrupt
            print("\nstopping after this step, saving a checkpoint (Ctrl-C again to stop now)", file=sys.stderr)

        with on_sigint(handler):
            while step < total:
                epoch, i = divmod(step, steps_per_epoch)
                order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
                idx = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                g = torch.Generator().manual_seed(cfg.seed * 1000003 + step)
                images = train_split.normalize(augment(train_split.images[idx], cfg.translate, cfg.flip, g))
                labels = train_split.labels[idx]
                for group in opt.param_groups:
                    group["lr"] = _lr_at(cfg, step, total, steps_per_epoch)
                opt.zero_grad(set_to_none=True)
                subnets = [_draw_subnet(space, cfg.extremes, g)] if space is not None else [None]
                if space is not None and cfg.sandwich:
                    subnets.append(space.largest())
                reduced = bool(cfg.reduce) and float(torch.rand((), generator=g)) < cfg.reduce
                loss_sum = 0.0
                for sub in subnets:
                    if cfg.reduce:
                        remove(model)
                    if sub is not None:
                        model.set_sample_config(sub)  # type: ignore[operator]
                    if reduced:
                        depth = sub.depth if sub is not None else len(model.blocks)  # type: ignore[arg-type]
                        apply(model, _draw_schedule(cfg, depth, g))
                    loss = F.cross_entropy(model(images), labels, label_smoothing=cfg.label_smoothing)
                    loss.backward()
                    loss_sum += loss.item()
                if not math.isfinite(loss_sum):
                    raise ConfigError(f"training diverged at step {step} (loss {loss_sum}); lower --lr")
                torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                ema.update(model, step=step)
                step += 1
                seen += len(idx)
                now = time.perf_counter()
                elapsed = elapsed0 + (now - t_start)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / len(subnets):.3f}", img_s=f"{seen / max(now - t_start, 1e-9):.0f}")
                end_of_epoch = step % steps_per_epoch == 0
                if not interactive and (step % 100 == 0 or end_of_epoch):
                    print(
                        f"step {step}/{total} epoch {step / steps_per_epoch:.2f} loss {loss_sum / len(subnets):.4f} "
                        f"{seen / max(now - t_start, 1e-9):.0f} img/s elapsed {elapsed / 60:.1f} min",
                        file=sys.stderr,  # stdout: the result only (--json)
                        flush=True,
                    )
                stopping = bool(pressed)  # once: a press from here on waits for the next step
                if end_of_epoch or now - last_save > cfg.checkpoint_every or step in (total, stop_at) or stopping:
                    save()
                    last_save = now
                if stopping:
                    bar.close()
                    raise KeyboardInterrupt(f"stopped after step {step} of {total}, saved; the same command resumes")
                if step == stop_at:
                    bar.close()
                    return None
        bar.close()
        return _finish(cfg, ema.module, space, splits, elapsed, command, out, init)


def _finish(
    cfg: TrainConfig,
    model: nn.Module,
    space: Any,
    splits: dict[str, Split],
    elapsed: float,
    command: str,
    out: Path,
    init: dict | None = None,
) -> dict:
    """Evaluate the EMA weights on the test split and write ``<name>.safetensors`` + ``<name>.json``."""
    from . import __version__
    from .models import EMBEDDED, sha256_file

    model.eval()
    accuracy: dict[str, Any] = {}
    if space is None:
        accuracy["test_top1"] = evaluate(model, splits["test"], limit=cfg.eval_images).top1
    else:
        for which in ("largest", "smallest"):
            sub = getattr(space, which)()
            model.set_sample_config(sub)  # type: ignore[operator]
            accuracy[f"{which}_test_top1"] = evaluate(model, splits["test"], limit=cfg.eval_images).top1
    weights = out / f"{cfg.model}.safetensors"
    umask = os.umask(0)
    os.umask(umask)

    def write(tmp: Path) -> None:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.chmod(tmp, 0o666 & ~umask)  # safetensors writes 0600; the weights are shared as the metadata is

    atomic_write(weights, write)
    meta: dict[str, Any] = {
        "name": cfg.model,
        "family": EMBEDDED[cfg.model].family,
        "architecture": EMBEDDED[cfg.model].kwargs,
        "space": space.to_dict() if space is not None else None,
        "training": {
            "command": command,
            "config": asdict(cfg),
            "seed": cfg.seed,
            "minutes": elapsed / 60,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "searcher": __version__,
        },
        "data": {
            "dataset": "fashion-mnist",
            "split": "train",
            "checksums": splits["train"].meta.get("checksums"),
        },
        "accuracy": accuracy,
        "sha256": sha256_file(weights),
    }
    if init is not None:  # fine-tuned: how the starting weights were made, so the chain can be reproduced
        meta["training"]["init"] = init
    meta_path = out / f"{cfg.model}.json"
    tmp = meta_path.with_name(f".{meta_path.name}.tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, meta_path)
    return meta
