"""Deploy: an exported config → the accelerated model (:func:`load_config`), and → an ONNX file (:func:`to_onnx`).

A config (written by :mod:`searcher.export`, or by :func:`config_for`) names the model source, the AutoFormer
subnet, the schedule, and a *check*: logits on a seeded random input. :func:`load_config` validates the file
(:func:`read_config`), opens the weights after checking their sha256 against the config, rebuilds the patched
model exactly as export did (:func:`open_source` and :func:`build_model`, which export uses too), and verifies
the check logits, so a config loaded onto other weights or another model is an error, never a silently wrong
network.

ONNX: the schedule is baked in by tracing (the TorchScript exporter), so every block's token count is a
constant of the graph and only *which* tokens are kept or merged depends on the data. Merges are
``ScatterElements`` with ``add`` followed by a division by the summed sizes; MLERP's group max is a dense
masked ``ReduceMax`` (:mod:`searcher.reduce.merge`); attention is explicit ``MatMul``/``Softmax`` with the
log-size bias added (timm's fused ``scaled_dot_product_attention`` is switched off while exporting only, so
PyTorch keeps its fused kernels). The file is checked with ``onnx.checker`` and run in onnxruntime (CPU) on
real images of the data split against PyTorch before it is written (atomically).

Why TorchScript and not the dynamo exporter: ``torch.onnx.export(dynamo=True)`` needs onnxscript (not a
dependency here) and would have to trace the reducers' data-dependent index tensors symbolically; the
TorchScript tracer records exactly the ops run for one input, with the schedule's static token counts, and
keeps the batch dimension dynamic through ``dynamic_axes``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import re
import statistics
import time
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError, ConfigError

__all__ = [
    "CONFIG_VERSION",
    "CHECK_INPUT",
    "MIN_OPSET",
    "MAX_OPSET",
    "build_model",
    "check_input",
    "config_data",
    "config_for",
    "export_mode",
    "load_config",
    "onnx_bytes",
    "onnx_command",
    "onnx_text",
    "open_source",
    "ort_session",
    "ort_throughput",
    "compare_onnx",
    "parse_batch",
    "read_config",
    "record_check",
    "to_onnx",
    "validate_config",
    "verify_check",
]

log = logging.getLogger(__name__)

CONFIG_VERSION = 1
# The input a config's check logits are recorded on: N(0, 1) from a seeded CPU generator, two images.
CHECK_INPUT: dict[str, Any] = {"kind": "randn", "seed": 0, "batch": 2}
CHECK_ATOL = 1e-4

_FIELDS = ("version", "model", "reducer", "arch", "schedule", "metrics", "check", "provenance")
_MODEL_FIELDS = ("name", "family", "weights", "checkpoint", "sha256", "arch", "kwargs")
_CHECK_FIELDS = ("input", "logits", "device", "dtype", "atol")

MIN_OPSET = 17  # LayerNormalization is one op from 17 on
MAX_OPSET = 20  # the TorchScript exporter's newest
INPUT_NAME, OUTPUT_NAME = "images", "logits"


# ---------------------------------------------------------------------------------------------- reading
def read_config(path: str | Path) -> dict[str, Any]:
    """The config at ``path``, validated (:func:`validate_config`); every problem is a :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"config {path} does not exist; pass a configs/*.json file written by 'searcher export'"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {path}: {getattr(e, 'strerror', None) or e}") from e
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"config {path} is not valid JSON ({e}); is it a file written by 'searcher export'?") from e
    return validate_config(config, str(path))


def _fields(where: str, d: Any, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: {what} must be a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown} in {what}; allowed: {list(allowed)}")
    return dict(d)


def _family(name: str) -> str:
    """``autoformer`` or ``timm-vit``: what a model of this name is (as its ModelSource records it)."""
    from .models import AUTOFORMER_NAMES, EMBEDDED

    if name in EMBEDDED:
        return EMBEDDED[name].family
    return "autoformer" if name.removesuffix("-supernet") in AUTOFORMER_NAMES else "timm-vit"


def _expected_depth(config: Mapping[str, Any]) -> int | None:
    """The number of blocks of the config's model, when the config alone says it (subnet, embedded ViT, the
    ``depth`` of timm keyword arguments); None otherwise (the model tells, at load time)."""
    from .models import EMBEDDED

    model = config["model"]
    arch = config.get("arch") or model.get("arch")
    if arch:
        return int(arch.get("depth", arch.get("layer_num", 0))) or None
    spec = EMBEDDED.get(model["name"])
    if spec is not None and spec.family == "timm-vit":
        return int(spec.kwargs["depth"])
    depth = (model.get("kwargs") or {}).get("depth")
    return int(depth) if isinstance(depth, int) else None


def validate_config(config: Any, where: str = "config") -> dict[str, Any]:
    """Check a config's version, fields, model source, subnet, schedule (ops, parameters, depth) and check
    block; returns it. The version is checked first: another version may have other fields."""
    from .models.autoformer_space import SubnetConfig
    from .schedule import OPS, Schedule

    if not isinstance(config, Mapping):
        raise ConfigError(f"{where}: a config must be a JSON object, got {type(config).__name__}")
    if "layers" in config and "model" not in config:  # a config's "schedule" alone
        raise ConfigError(f"{where} is a schedule, not a config (no model): evaluate it with 'searcher evaluate "
                          "--model NAME --schedule FILE', or pass a configs/*.json file written by 'searcher export'")
    if "version" not in config:
        raise ConfigError(f"{where} has no 'version'; is it a config written by 'searcher export'?")
    version = config["version"]
    if isinstance(version, str) and version.strip() == str(CONFIG_VERSION):
        raise ConfigError(f"{where}: 'version' must be the number {CONFIG_VERSION}, not the string {version!r}")
    if version != CONFIG_VERSION or isinstance(version, bool):
        raise ConfigError(
            f"{where} is config version {version!r}, but this searcher reads version {CONFIG_VERSION}; export "
            "the study again with this searcher, or use the searcher version that wrote it (provenance.searcher)"
        )
    config = _fields(where, config, _FIELDS, "the config")
    for name in ("model", "schedule"):
        if name not in config:
            raise ConfigError(f"{where} is missing {name!r}; is it a config written by 'searcher export'?")
    model = _fields(where, config["model"], _MODEL_FIELDS, "'model'")
    if not isinstance(model.get("name"), str) or not model["name"]:
        raise ConfigError(f"{where}: 'model' needs a 'name' (a timm name, fashion-vit, autoformer-s, …)")
    sha = model.get("sha256")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise ConfigError(f"{where}: model.sha256 must be 64 hex digits, got {sha!r}")
    for key in ("kwargs", "arch"):
        if model.get(key) is not None and not isinstance(model[key], Mapping):
            raise ConfigError(f"{where}: model.{key} must be a JSON object")
    for key in ("checkpoint", "weights"):
        if model.get(key) is not None and not isinstance(model[key], str):
            raise ConfigError(f"{where}: model.{key} must be a path or URL, got {model[key]!r}")
    for key in ("metrics", "provenance", "check", "arch"):
        if config.get(key) is not None and not isinstance(config[key], Mapping):
            raise ConfigError(f"{where}: {key!r} must be a JSON object or null")
    data = (config.get("metrics") or {}).get("data")
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{where}: metrics.data must be a JSON object (the data spec), got {data!r}")
    if config.get("reducer") is not None and not isinstance(config["reducer"], str):
        raise ConfigError(f"{where}: 'reducer' must be a string")
    family = _family(model["name"])
    if model.get("family") is not None and model["family"] != family:
        raise ConfigError(f"{where}: model.family is {model['family']!r}, but {model['name']} is {family!r}; the "
                          "config was edited — export it again")
    if family != "autoformer" and (config.get("arch") or model.get("arch")):
        raise ConfigError(f"{where}: an 'arch' (an AutoFormer subnet) on {model['name']}, which is not an "
                          "AutoFormer; the config was edited — export it again")
    try:
        for arch in (config.get("arch"), model.get("arch")):
            if arch is not None:
                SubnetConfig.from_dict(dict(arch))
        schedule = Schedule.from_dict(config["schedule"])
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    label = str(config.get("reducer") or "")
    named = {part.split("-")[0] for part in label.split("+")}  # a study's reducer ("tofu": tofu-prune, tofu-merge)
    if named <= {op.split("-")[0] for op in OPS}:  # or config_for's ops; a label of the user's own is not checked
        used = sorted({layer.op for layer in schedule.layers if not layer.is_identity and
                       layer.op.split("-")[0] not in named})
        if used:
            raise ConfigError(f"{where}: 'reducer' is {label!r} but the schedule uses {used}; the config was edited "
                              "— export it again")
    depth = _expected_depth(config)
    if depth is not None and schedule.depth != depth:
        raise ConfigError(
            f"{where}: the schedule has {schedule.depth} layers but {model['name']}"
            f"{' (this subnet)' if config.get('arch') or model.get('arch') else ''} has {depth} blocks; the "
            "config is damaged or was edited — export it again"
        )
    check = config.get("check")
    if check is not None:
        _check_block(where, _fields(where, check, _CHECK_FIELDS, "'check'"))
    return config


def _check_block(where: str, check: Mapping[str, Any]) -> None:
    """The ``check`` block's input spec, logits and tolerance are of the shapes and types :func:`record_check`
    writes (a hand edit was a TypeError or ValueError from torch)."""

    def number(x: Any) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    def whole(x: Any, least: int) -> bool:
        return isinstance(x, int) and not isinstance(x, bool) and x >= least

    spec, logits = check.get("input"), check.get("logits")
    if not isinstance(spec, Mapping) or not isinstance(logits, list) or not logits:
        raise ConfigError(f"{where}: 'check' needs 'input' and 'logits' (one row per check image)")
    shape = spec.get("shape")
    if (spec.get("kind") != "randn" or not whole(spec.get("seed", 0), 0) or not isinstance(shape, list)
            or len(shape) != 4 or not all(whole(v, 1) for v in shape)):
        raise ConfigError(f"{where}: check.input must be {{'kind': 'randn', 'seed': S, 'shape': [B, C, H, W]}}, got "
                          f"{dict(spec)!r}; the config was edited — export it again")
    if (len(logits) != shape[0] or not all(isinstance(row, list) and row and len(row) == len(logits[0])
                                           and all(number(v) for v in row) for row in logits)):
        raise ConfigError(f"{where}: check.logits must be {shape[0]} rows of as many numbers (one row per check "
                          "image); the config was edited — export it again")
    atol = check.get("atol", CHECK_ATOL)
    if not number(atol) or atol < 0:
        raise ConfigError(f"{where}: check.atol must be a tolerance of at least 0, got {atol!r}")


# ------------------------------------------------------------------------------------------- rebuilding
def open_source(model: Mapping[str, Any], weights: str | None = None, *, require_weights: bool = False) -> Any:
    """The :class:`~searcher.models.ModelSource` of a config's ``model`` section (what export records).

    ``weights`` replaces the recorded checkpoint (a moved file, or a URL). Weights whose sha256 differ from the
    recorded one raise :class:`CheckpointError`. ``require_weights``: an AutoFormer without a checkpoint is an
    error instead of random weights (deploying needs the trained network; costs do not).
    """
    from .models import (
        AUTOFORMER_NAMES,
        EMBEDDED,
        ModelSource,
        download_hint,
        embedded_metadata,
        local_checkpoint,
        sha256_file,
    )

    name = str(model["name"])
    recorded = model.get("sha256")
    ckpt = weights or model.get("checkpoint")
    if name in EMBEDDED:
        if weights:
            raise ConfigError(f"{name} ships its own weights (searcher/assets); give no weights file for it")
        current = embedded_metadata(name).get("sha256")
        if recorded and current != recorded:
            raise CheckpointError(
                f"the shipped weights of {name} (sha256 {str(current)[:12]}…) are not the ones the config was "
                f"made with ({recorded[:12]}…); export the study again with this searcher, or use the searcher "
                "version that wrote the config (provenance.searcher)"
            )
        ckpt = None
    elif ckpt and recorded:
        local = local_checkpoint(ckpt)  # a URL downloaded once
        if not local.is_file():
            raise CheckpointError(
                f"weights {ckpt} do not exist; pass the file the study used (weights=… / --checkpoint PATH)"
            )
        current = sha256_file(local)
        if current != recorded:
            raise CheckpointError(
                f"weights {ckpt}{download_hint(ckpt)} have sha256 {current[:12]}…, but the study used weights with "
                f"sha256 {recorded[:12]}…: other weights, or the file changed since the study ran (the hash is of "
                "the file: the same tensors saved in another format differ too); pass the file the study used"
            )
    if require_weights and not ckpt and name.removesuffix("-supernet") in AUTOFORMER_NAMES:
        raise CheckpointError(
            f"{name} needs its checkpoint (the official supernet file); pass weights=PATH (--checkpoint PATH)"
        )
    arch_space = True if name.endswith("-supernet") else None  # each config names its subnet
    return ModelSource.open(name, ckpt, arch_space=arch_space, model_kwargs=model.get("kwargs"))


def build_model(source: Any, arch: Mapping[str, Any] | None, schedule: Any) -> nn.Module:
    """The deployable model of a config: a compact (extracted) AutoFormer subnet or a copy of the ViT, with
    ``schedule`` patched in (:func:`searcher.apply`), in eval mode on the CPU."""
    from .schedule import Schedule

    if not isinstance(schedule, Schedule):
        schedule = Schedule.from_dict(schedule)
    return source.build(dict(arch) if arch else None, schedule, compact=True).eval()


def check_input(spec: Mapping[str, Any]) -> torch.Tensor:
    """The input tensor a config's ``check.logits`` were recorded on (``config["check"]["input"]``):
    ``torch.randn(shape)`` from a CPU generator seeded with ``seed``."""
    if spec.get("kind") != "randn" or "shape" not in spec:
        raise ConfigError(f"unknown check input {dict(spec)!r}; expected {{'kind': 'randn', 'seed', 'shape'}}")
    generator = torch.Generator().manual_seed(int(spec.get("seed", 0)))
    return torch.randn(tuple(int(s) for s in spec["shape"]), generator=generator)


def record_check(model: nn.Module, input_shape: tuple[int, ...] | list[int]) -> dict[str, Any]:
    """A config's ``check`` block: ``model``'s float32 CPU logits on :data:`CHECK_INPUT` images of
    ``input_shape`` (C, H, W)."""
    spec = {k: v for k, v in CHECK_INPUT.items() if k != "batch"}
    spec["shape"] = [CHECK_INPUT["batch"], *input_shape]
    with torch.inference_mode():
        logits = model(check_input(spec)).float()
    return {
        "input": spec,
        "logits": [[float(v) for v in row] for row in logits.tolist()],  # (B, num_classes)
        "device": "cpu",
        "dtype": "float32",
        "atol": CHECK_ATOL,
    }


def verify_check(model: nn.Module, check: Mapping[str, Any], where: str = "config") -> float:
    """Run ``model`` on the check input and compare with the recorded logits; returns the largest difference,
    raises :class:`CheckpointError` beyond the tolerance (``atol``, and 1e-4 relative)."""
    expected = torch.tensor(check["logits"], dtype=torch.float32)
    with torch.inference_mode():
        logits = model(check_input(check["input"])).float().cpu()
    if logits.shape != expected.shape:
        raise CheckpointError(
            f"{where}: the rebuilt model gives logits of shape {tuple(logits.shape)}, the config recorded "
            f"{tuple(expected.shape)}; the config belongs to another model"
        )
    diff = float((logits - expected).abs().max())
    atol = float(check.get("atol", CHECK_ATOL))
    if not torch.allclose(logits, expected, atol=atol, rtol=1e-4):
        raise CheckpointError(
            f"{where}: the model rebuilt from this config does not compute the recorded check logits (largest "
            f"difference {diff:.3g}, tolerance {atol:g}): its schedule or subnet was edited, or the weights differ "
            "from the ones it was exported with — export it again, or load it with the weights the study used "
            "(--checkpoint FILE, for a timm or AutoFormer model), or, in Python, pass verify=False to skip the check"
        )
    return diff


def _load(config: Mapping[str, Any], where: str, weights: str | None, verify: bool) -> tuple[nn.Module, Any]:
    """(model, its ModelSource) of a validated config."""
    source = open_source(config["model"], weights, require_weights=True)
    try:
        model = build_model(source, config.get("arch"), config["schedule"])
    except ConfigError as e:
        raise ConfigError(f"{where} does not fit {config['model']['name']}: {e}") from e
    if verify and config.get("check"):
        shape = tuple(config["check"].get("input", {}).get("shape", ()))[1:]
        if shape != tuple(source.input_shape):
            raise ConfigError(f"{where}: the check input is images of {shape}, but {config['model']['name']} takes "
                              f"{tuple(source.input_shape)}; the config was edited or belongs to another model")
        verify_check(model, config["check"], where)
    if verify:
        _check_metrics(config, source, where)
    return model, source


def _check_metrics(config: Mapping[str, Any], source: Any, where: str) -> None:
    """Warn when the GFLOPs or token counts a config records are not its network's (analytic, no forward pass):
    edited by hand, or counted by another searcher version. They change nothing the model computes."""
    from .schedule import Schedule, tokens_per_block

    metrics = config.get("metrics") or {}
    schedule = Schedule.from_dict(config["schedule"])
    arch = dict(config["arch"]) if config.get("arch") else source.full_arch(None)
    differ = []
    recorded, gflops = metrics.get("gflops"), source.flops(arch, schedule)
    if recorded is not None and not (isinstance(recorded, int | float) and math.isclose(recorded, gflops,
                                                                                         rel_tol=1e-6)):
        differ.append(f"{recorded!r} GFLOPs where its network has {gflops:.6g}")
    recorded, tokens = metrics.get("tokens"), list(tokens_per_block(schedule, source.n_tokens, source.num_prefix))
    if recorded is not None and recorded != tokens:
        differ.append(f"tokens {recorded!r} where its network keeps {tokens}")
    if differ:
        log.warning(f"{where} records {' and '.join(differ)}: its metrics were edited, or counted by another "
                    "searcher version (provenance.searcher); the network is the schedule's")


def load_config(
    path: str | Path | Mapping[str, Any], weights: str | None = None, *, verify: bool = True
) -> nn.Module:
    """The accelerated model of an exported config (its file, or the config itself, as :func:`config_for` returns
    it): the weights (shipped, the recorded checkpoint, or ``weights``), sha256-checked, the subnet extracted, the
    schedule patched in; eval mode, CPU.

    With ``verify`` (default) the config's check logits are recomputed and must match. Errors a user can cause
    (wrong version, unknown fields or ops, wrong depth, other weights, a config of another model) raise
    :class:`~searcher.errors.SearcherError` subclasses.
    """
    if weights is not None and not isinstance(weights, (str, os.PathLike)):  # a state dict: an OSError, 150 KB long
        raise ConfigError(f"weights must be the path (or URL) of a weights file, got {type(weights).__name__}; "
                          "save a state dict first (safetensors.torch.save_file or torch.save)")
    if isinstance(path, Mapping):
        return _load(validate_config(path), "config", weights, verify)[0]
    if not isinstance(path, (str, os.PathLike)):  # a list was a TypeError from pathlib
        raise ConfigError(f"load_config takes a config file or a config mapping, got {type(path).__name__}")
    return _load(read_config(path), str(path), weights, verify)[0]


def config_data(config: Mapping[str, Any], data_dir: str | Path | None = None,
                split: str | None = None) -> dict[str, Any]:
    """The data spec a config was measured on (``metrics.data``; Fashion-MNIST when it records none).

    ``data_dir`` moves the data: the Fashion-MNIST directory, or, for an ImageNet-layout config, the folder of
    ``split`` (its other splits are left out, so folders that exist only on the search machine are not needed;
    the class order stays the config's). A config that records its class order (exported since 2026-12-07)
    needs only the folder of ``split`` in any case."""
    spec = dict((config.get("metrics") or {}).get("data") or {"kind": "fashion-mnist"})
    kind = str(spec.get("kind", "fashion-mnist")).lower()
    if data_dir is None:
        if kind == "imagefolder" and split in spec and spec.get("classes") is not None:
            spec = {k: v for k, v in spec.items() if k not in ("train", "search", "test") or k == split}
        return spec
    if kind == "fashion-mnist":
        spec["dir"] = str(data_dir)
    elif kind == "imagefolder":
        if split is None:
            raise ConfigError("a data directory for an imagefolder config needs the split it holds")
        if spec.get("classes") is None:
            log.warning("the config records no class order (exported before 2026-12-07): labels follow the class "
                        f"folders of {data_dir}, which must hold every class of the model")
        part = spec.get(split)
        part = dict(part) if isinstance(part, Mapping) else {}  # per_class, files and seed stay the config's
        spec = {k: v for k, v in spec.items() if k not in ("train", "search", "test")}
        spec[split] = {**part, "root": str(data_dir)}
    else:
        raise ConfigError(f"the config was measured on {spec.get('kind')!r} data, which --data-dir cannot move; "
                          "drop --data-dir")
    return spec


def config_for(
    name: str,
    schedule: Any,
    arch: Mapping[str, Any] | None = None,
    *,
    checkpoint: str | Path | None = None,
    kwargs: Mapping[str, Any] | None = None,
    reducer: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A config for a model and a schedule without a study (hand-made schedules, tests, benchmarks): the same
    fields as an exported one, with GFLOPs, tokens and the check logits; no accuracy. A local ``checkpoint`` is
    recorded absolute, as a study records it (a relative one broke the config in another directory)."""
    from . import __version__
    from .models import EMBEDDED
    from .schedule import Schedule, tokens_per_block

    if checkpoint is not None and "://" not in str(checkpoint):
        checkpoint = str(Path(checkpoint).expanduser().resolve())
    schedule = schedule if isinstance(schedule, Schedule) else Schedule.from_dict(schedule)
    source = open_source({"name": name, "checkpoint": checkpoint, "kwargs": dict(kwargs or {})})
    model = build_model(source, arch, schedule)
    full_arch = dict(arch) if arch else source.full_arch(None)
    if data is None and name in EMBEDDED:
        data = {"kind": "fashion-mnist"}
    ops = sorted({layer.op for layer in schedule.layers if not layer.is_identity})
    return validate_config(
        {
            "version": CONFIG_VERSION,
            "model": source.describe(),
            "reducer": reducer or ("+".join(ops) if ops else "none"),
            "arch": dict(arch) if arch else None,
            "schedule": schedule.to_dict(),
            "metrics": {
                "gflops": source.flops(full_arch, schedule),
                "full_gflops": source.flops(full_arch, Schedule.none(schedule.depth)),
                "tokens": list(tokens_per_block(schedule, source.n_tokens, source.num_prefix)),
                "data": dict(data) if data else None,
            },
            "check": record_check(model, source.input_shape),
            "provenance": {
                "searcher": __version__,
                "torch": torch.__version__,
                "made": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        },
        f"config of {name}",
    )


# ------------------------------------------------------------------------------------------------ ONNX
def parse_batch(value: str | int) -> int | str:
    """``--batch``: a positive integer (a static batch) or ``dynamic``."""
    if isinstance(value, str) and value.strip().lower() == "dynamic":
        return "dynamic"
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or isinstance(value, bool) or (isinstance(value, float) and n != value):  # 2.5 was batch 2
        raise ConfigError(f"--batch must be a positive integer or 'dynamic', got {value!r}")
    return n


def _check_opset(opset: int) -> int:
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"--opset must be an integer from {MIN_OPSET} to {MAX_OPSET}, got {opset!r}")
    return opset


@contextlib.contextmanager
def export_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Explicit attention while exporting: timm attention layers leave ``F.scaled_dot_product_attention``
    (``fused_attn = False``: ``q kᵀ`` + the log-size bias, ``Softmax``, ``@ v``) and get it back afterwards.
    AutoFormer's relative attention is explicit anyway."""
    saved = [(m, m.fused_attn) for m in model.modules() if isinstance(getattr(m, "fused_attn", None), bool)]
    for m, _ in saved:
        setattr(m, "fused_attn", False)  # noqa: B010 (an instance attribute of timm's Attention)
    try:
        yield model
    finally:
        for m, fused in saved:
            setattr(m, "fused_attn", fused)  # noqa: B010


def _onnx_modules() -> tuple[Any, Any]:
    """``onnx`` and ``onnxruntime``, or a clear error: they are the ``onnx`` extra, not needed to search."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ConfigError(f"ONNX export needs the onnx and onnxruntime packages ({e.name} is missing): "
                          "pip install 'searcher[onnx]'") from None
    return onnx, onnxruntime


def onnx_bytes(
    model: nn.Module, input_shape: tuple[int, ...] | list[int], batch: int | str = "dynamic", opset: int = MIN_OPSET
) -> bytes:
    """``model`` (patched, eval) exported to ONNX and checked with ``onnx.checker``: input ``images``
    (batch, C, H, W) float32, output ``logits``; ``batch`` an integer or ``"dynamic"``."""
    onnx, _ = _onnx_modules()

    batch = parse_batch(batch)
    opset = _check_opset(opset)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    if dtype != torch.float32:  # the example input is float32: a half model failed in its first layer
        raise ConfigError(f"the model is {dtype}; export it in float32 (model.float()): the ONNX input is float32, "
                          "and a float32 file can be converted to float16 afterwards (onnxconverter-common)")
    dynamic = batch == "dynamic"
    # Trace with two images when the batch is dynamic: a batch of one could be specialised away.
    example = torch.randn(2 if dynamic else int(batch), *input_shape, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    was_training = model.training
    model.eval()
    try:
        with export_mode(model), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shapes are static by design
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            torch.onnx.export(
                model,
                (example,),
                buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic else None,
                do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    data = buf.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def ort_session(data: bytes | str | Path, threads: int | None = None, spin: bool = True) -> Any:
    """An onnxruntime CPU session of an ONNX model (bytes or a path); ``threads`` intra-op threads (default:
    PyTorch's, ``torch.get_num_threads()``, which follows ``OMP_NUM_THREADS``: onnxruntime reads no environment
    variable and would take one per physical core). ``spin=False``: its threads sleep between runs instead of
    spinning, for timings that interleave it with PyTorch (spinning threads take the cores PyTorch's next run needs)."""
    _, ort = _onnx_modules()

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.intra_op_num_threads = threads or torch.get_num_threads()
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = data if isinstance(data, bytes) else str(data)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _chunks(images: torch.Tensor, batch: int, static: bool) -> Iterator[tuple[torch.Tensor, int]]:
    """``(batch, real images in it)`` over ``images``; for a static batch the last one is padded with copies
    of its first image."""
    for i in range(0, len(images), batch):
        x = images[i : i + batch]
        n = len(x)
        if static and n < batch:
            x = torch.cat([x, x[:1].expand(batch - n, *x.shape[1:])])
        yield x, n


def compare_onnx(
    model: nn.Module,
    session: Any,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch: int | str = "dynamic",
    chunk: int = 64,
) -> dict[str, Any]:
    """ONNX (``session``) against PyTorch (``model``) on ``images`` (N, C, H, W) float32: the largest
    |logit difference|, top-1 agreement (share of images with the same argmax) and, with ``labels``, both
    top-1 accuracies."""
    static = batch != "dynamic"
    size = int(batch) if static else chunk
    diff, agree, n_total, right_pt, right_ox = 0.0, 0, 0, 0, 0
    for i, (x, n) in enumerate(_chunks(images, size, static)):
        with torch.inference_mode():
            ref = model(x).float()[:n]
        out = torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])[:n]
        diff = max(diff, float((out - ref).abs().max()))
        p_ref, p_out = ref.argmax(-1), out.argmax(-1)
        agree += int((p_ref == p_out).sum())
        n_total += n
        if labels is not None:
            y = labels[i * size : i * size + n]
            right_pt += int((p_ref == y).sum())
            right_ox += int((p_out == y).sum())
    result: dict[str, Any] = {"images": n_total, "max_abs_diff": diff, "top1_agreement": agree / max(n_total, 1)}
    if labels is not None:
        result["torch_top1"] = 100.0 * right_pt / max(n_total, 1)
        result["onnx_top1"] = 100.0 * right_ox / max(n_total, 1)
    return result


def ort_throughput(
    session: Any, images: torch.Tensor, batch: int, repeats: int = 5, min_seconds: float = 0.5
) -> dict[str, Any]:
    """Images/s of an onnxruntime session at ``batch`` (images tiled from ``images``): two warm-up runs, then
    the median of at least ``repeats`` timed runs (more until ``min_seconds`` have passed)."""
    import onnxruntime as ort

    x = images[:batch]
    if len(x) < batch:
        x = x.repeat(math.ceil(batch / len(x)), 1, 1, 1)[:batch]
    feed = {INPUT_NAME: x.contiguous().numpy()}
    for _ in range(2):
        session.run([OUTPUT_NAME], feed)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_seconds and len(times) < 100):
        t = time.perf_counter()
        session.run([OUTPUT_NAME], feed)
        times.append(time.perf_counter() - t)
    options = session.get_session_options()
    return {
        "img_s": batch / statistics.median(times),
        "batch_size": batch,
        "runs": len(times),
        "device": "cpu",
        "threads": options.intra_op_num_threads or os.cpu_count(),
        "onnxruntime": ort.__version__,
    }


def _check_writable(out: Path) -> None:
    """Fail fast, before the export, when ``out`` cannot be written."""
    if out.is_dir():
        raise ConfigError(f"{out} is a directory; give the path of the .onnx file to write")
    parent = out.parent
    if not parent.is_dir():
        why = "is a file, not a directory" if parent.exists() else "does not exist"
        raise ConfigError(f"cannot write {out}: {parent} {why}; create the folder, or choose another OUT")
    probe = parent / f".{out.name}.{os.getpid()}.probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"cannot write {out}: {e.strerror or e}; choose a writable OUT") from e


def to_onnx(
    config: str | Path | Mapping[str, Any],
    out: str | Path,
    *,
    weights: str | None = None,
    batch: int | str = "dynamic",
    opset: int = MIN_OPSET,
    split: str = "test",
    images: int = 512,
    data_dir: str | Path | None = None,
    throughput_batch: int | None = None,
) -> dict[str, Any]:
    """``searcher onnx``: export a config's model to ``out`` and check it.

    The model is :func:`load_config`'s; the export is checked with ``onnx.checker``, then run in onnxruntime
    (CPU) against PyTorch on the first ``images`` images of the config's data ``split`` (:func:`config_data`);
    the file is written (atomically) only when all this succeeded (a top-1 disagreement on some images, as near-ties
    can give, is a warning of :func:`onnx_text`). Returns a summary: file, size, export
    seconds, the comparison and onnxruntime's throughput (at the static batch, or ``throughput_batch``,
    default 64, for a dynamic one).
    """
    from .data import atomic_write_bytes, load_split

    _onnx_modules()  # before the model and the data load
    from .schedule import Schedule

    batch = parse_batch(batch)
    opset = _check_opset(opset)
    out = Path(out)
    if images < 1:
        raise ConfigError(f"images (--images) must be at least 1, got {images}")
    if isinstance(config, Mapping):
        where, cfg = "config", validate_config(config)
    else:
        where, cfg = str(config), read_config(config)
    _check_writable(out)
    inputs = {"the config": None if isinstance(config, Mapping) else config,
              "the weights": weights or cfg["model"].get("checkpoint")}
    for what, path in inputs.items():
        same = False
        with contextlib.suppress(OSError):  # no such file (a URL, a name): not this one
            same = path is not None and out.exists() and os.path.samefile(out, path)
        if same:
            raise ConfigError(f"{out} is {what} it exports; write the ONNX file to another path")
    data = load_split(config_data(cfg, data_dir, split), split)
    model, source = _load(cfg, where, weights, verify=True)
    source.check_data(data, "give the data the model was searched on")
    source_shape = tuple(source.input_shape)

    t0 = time.perf_counter()
    data_bytes = onnx_bytes(model, source_shape, batch, opset)
    export_s = time.perf_counter() - t0

    part = data.subset(images)
    x = part.normalize(part.images)
    session = ort_session(data_bytes)
    check = compare_onnx(model, session, x, part.labels, batch)
    check["split"] = split
    check["reduced"] = not all(layer.is_identity for layer in Schedule.from_dict(cfg["schedule"]).layers)
    tp_batch = int(batch) if batch != "dynamic" else (throughput_batch or 64)
    throughput = ort_throughput(session, x, tp_batch)
    try:
        atomic_write_bytes(out, data_bytes)
    except OSError as e:
        raise ConfigError(f"cannot write {out}: {e.strerror or e}; nothing was written") from e
    return {
        "config": where,
        "onnx": str(out),
        "bytes": len(data_bytes),
        "opset": opset,
        "batch": batch,
        "input_shape": [batch if batch != "dynamic" else "batch", *source_shape],
        "export_s": export_s,
        "check": check,
        "throughput": throughput,
    }


onnx_command = to_onnx


def onnx_text(result: Mapping[str, Any]) -> str:
    """The human-readable form of :func:`to_onnx`'s summary."""
    c, t = result["check"], result["throughput"]
    lines = [
        f"wrote {result['onnx']} ({result['bytes'] / 1e6:.1f} MB, opset {result['opset']}, batch {result['batch']}) "
        f"in {result['export_s']:.1f} s",
        f"checked on {c['images']} {c['split']} images against PyTorch: max |logit diff| {c['max_abs_diff']:.2e}, "
        f"top-1 agreement {100 * c['top1_agreement']:.2f}%"
        + (f" (top-1 {c['onnx_top1']:.2f}% ONNX, {c['torch_top1']:.2f}% PyTorch)" if "onnx_top1" in c else ""),
        f"onnxruntime CPU: {t['img_s']:.1f} img/s at batch {t['batch_size']} ({t['threads']} threads, "
        f"onnxruntime {t['onnxruntime']})",
    ]
    if c["top1_agreement"] < 1.0:
        lines.append("warning: ONNX and PyTorch disagree on some images; compare the two before deploying")
    elif c["max_abs_diff"] > 1e-3 and c.get("reduced"):  # an unreduced model has no matching to blame
        lines.append("note: token matching is discrete: on an image whose similarities nearly tie, rounding picks "
                     "another pair (PyTorch alone does under 1e-6 of input noise), which moves its logits more; the "
                     "top-1 agrees on every image checked")
    return "\n".join(lines)
