"""``searcher train``: seeded, deterministic on CPU, and a resumed run ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from searcher.errors import ConfigError
from searcher.train import TrainConfig, augment, train


def small(tmp_path: Path, data_dir: Path, name: str, **kw) -> TrainConfig:
    options = dict(model="fashion-vit", epochs=2, batch_size=32, limit=96, eval_images=64, warmup_epochs=0.5)
    return TrainConfig(out=str(tmp_path / name), data_dir=str(data_dir), **(options | kw))


def test_resumed_run_equals_uninterrupted_run(tmp_path: Path, make_fashion) -> None:
    data_dir = make_fashion(n_train=4000, n_test=100)
    kw = dict(drop_path=0.1)  # its masks come from torch's global generator, which the checkpoint keeps too
    meta = train(small(tmp_path, data_dir, "straight", **kw))
    assert meta is not None and 0 <= meta["accuracy"]["test_top1"] <= 100
    assert train(small(tmp_path, data_dir, "resumed", **kw), stop_at=4) is None  # 6 steps in all: stop after 4
    assert (tmp_path / "resumed" / "checkpoint.pt").exists()
    train(small(tmp_path, data_dir, "resumed", **kw))
    a = load_file(str(tmp_path / "straight" / "fashion-vit.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "fashion-vit.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    saved = json.loads((tmp_path / "straight" / "fashion-vit.json").read_text())
    assert saved["training"]["seed"] == 0 and saved["data"]["checksums"]


def test_ctrl_c_saves_the_step_it_finishes_and_the_run_resumes_exactly(
    tmp_path: Path, make_fashion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first Ctrl-C finishes the step and saves it (until 2026-12-07 the work since the last checkpoint, up to
    an epoch, was lost); the same command then ends as an uninterrupted run does."""
    import os
    import signal

    import searcher.train as train_module

    data_dir = make_fashion(n_train=4000, n_test=100)
    train(small(tmp_path, data_dir, "straight"))
    lr_at = train_module._lr_at

    sent: list[int] = []

    def pressed_in_step_0(cfg: TrainConfig, step: int, total: int, steps_per_epoch: int) -> float:
        if step == 0 and not sent:  # once (it is called for each parameter group)
            sent.append(step)
            os.kill(os.getpid(), signal.SIGINT)
        return lr_at(cfg, step, total, steps_per_epoch)

    monkeypatch.setattr(train_module, "_lr_at", pressed_in_step_0)
    with pytest.raises(KeyboardInterrupt, match="stopped after step 1 of 6, saved"):
        train(small(tmp_path, data_dir, "stopped"))
    assert torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=True)["step"] == 1
    monkeypatch.setattr(train_module, "_lr_at", lr_at)
    train(small(tmp_path, data_dir, "stopped"))
    a = load_file(str(tmp_path / "straight" / "fashion-vit.safetensors"))
    b = load_file(str(tmp_path / "stopped" / "fashion-vit.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)



def test_a_checkpoint_write_cut_short_leaves_the_last_checkpoint_and_no_temporary_file(
    tmp_path: Path, make_fashion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl-C (or a full disk) while ``checkpoint.pt`` is written: the previous checkpoint stays, and no
    ``.checkpoint.pt.<pid>.tmp`` is left beside it (it was until 2026-12-08)."""
    data_dir = make_fashion(n_train=4000, n_test=100)
    assert train(small(tmp_path, data_dir, "run"), stop_at=4) is None
    save = torch.save

    def cut_short(obj, f, *args, **kwargs) -> None:
        Path(f).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", cut_short)
    with pytest.raises(KeyboardInterrupt):
        train(small(tmp_path, data_dir, "run"))
    monkeypatch.setattr(torch, "save", save)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".train.lock", "checkpoint.pt"]
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 4

def test_resume_with_other_options_is_refused(tmp_path: Path, make_fashion) -> None:
    data_dir = make_fashion(n_train=4000, n_test=100)
    train(small(tmp_path, data_dir, "run"), stop_at=1)
    with pytest.raises(ConfigError, match="lr"):
        train(small(tmp_path, data_dir, "run", lr=5e-4))
    # the data by content (until 2026-12-07 by its folder's name: other images there resumed, a moved copy did not)
    other = make_fashion(subdir="other", n_train=4100, n_test=100)
    with pytest.raises(ConfigError, match="was trained on other data than .*other"):
        train(small(tmp_path, other, "run"))
    import shutil

    moved = shutil.copytree(data_dir, tmp_path / "moved")
    train(small(tmp_path, moved, "run"), stop_at=2)
    # a finished run cannot be extended (its learning rate has decayed to the end of its schedule): the error
    # says how to train its weights further
    train(small(tmp_path, data_dir, "run"))
    weights = tmp_path / "run" / "fashion-vit.safetensors"
    with pytest.raises(ConfigError, match=f"epochs.*it has finished; .* use --init {weights} with a new --out"):
        train(small(tmp_path, data_dir, "run", epochs=3))
    train(small(tmp_path, data_dir, "more", init=str(weights)))  # which works


def test_a_second_run_on_a_busy_out_is_refused(tmp_path: Path, make_fashion) -> None:
    """Two runs on one --out overwrote each other's checkpoint (a user lost 11 steps; in another try the same steps
    ran twice), until 2026-12-07; an optimize has had such a lock on its SQLite study."""
    import fcntl

    data_dir = make_fashion(n_train=4000, n_test=100)
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".train.lock", "a+") as lock:  # as a run in progress holds it
        lock.write("pid 12345")
        lock.flush()
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match=f"{out} is being trained by pid 12345; wait for it to finish"):
            train(small(tmp_path, data_dir, "run"), stop_at=1)
    assert not (out / "checkpoint.pt").exists()
    train(small(tmp_path, data_dir, "run"), stop_at=1)  # once it has stopped
    assert (out / "checkpoint.pt").exists()


def test_where_there_is_no_flock_the_run_goes_on_unlocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A file system without locks (NFS without lockd: ENOLCK) was read as "being trained by pid N" (a finished
    run's pid) and refused every run; without fcntl (Windows) the data module did not import (a review of
    2026-12-07)."""
    import errno
    import fcntl
    import sys

    from searcher.data import held_alone
    from searcher.errors import ConfigError

    def refuse(who: str) -> Exception:
        return ConfigError(f"busy: {who}")

    ran = []
    with held_alone(tmp_path / ".lock", refuse):
        ran.append("first")
    monkeypatch.setattr(fcntl, "flock", lambda *a: (_ for _ in ()).throw(OSError(errno.ENOLCK, "No locks available")))
    with held_alone(tmp_path / ".lock", refuse):
        ran.append("no locks")
    assert "cannot lock" in caplog.text and "No locks available" in caplog.text
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl raises ImportError
    with held_alone(tmp_path / ".lock", refuse):
        ran.append("no fcntl")
    assert ran == ["first", "no locks", "no fcntl"]


def test_no_full_batch_or_a_diverging_run_is_a_clear_error(tmp_path: Path, make_fashion) -> None:
    """Fewer training images than a batch: an error, not untrained weights written as trained (until 2026-12-07);
    a loss that becomes NaN: the user's error (lower the learning rate), not a traceback."""
    data_dir = make_fashion(n_train=4000, n_test=100)
    with pytest.raises(ConfigError, match="96 training images make no batch of 128"):
        train(small(tmp_path, data_dir, "tiny", batch_size=128))
    assert not (tmp_path / "tiny").exists()  # no empty run directory left (until 2026-12-07)
    with pytest.raises(ConfigError, match="diverged .* lower --lr"):
        train(small(tmp_path, data_dir, "hot", lr=1e6, warmup_epochs=0))


def test_unknown_training_option_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown training options"):
        TrainConfig.from_dict({"model": "fashion-vit", "epochz": 3})
    for seed in (-1, 2**47):  # a large one overflowed torch's generator mid-run (a traceback, until 2026-12-07)
        with pytest.raises(ConfigError, match=r"seed must be in \[0, 2\*\*32\)"):
            TrainConfig.from_dict({"model": "fashion-vit", "seed": seed})
    for name in ("lr", "weight_decay", "translate"):  # inf passed (the run diverged, blaming --lr)
        with pytest.raises(ConfigError, match=f"{name} must be"):
            TrainConfig.from_dict({"model": "fashion-vit", name: float("inf")})
    with pytest.raises(ConfigError, match=r"translate must be in \[0, 16\] pixels"):  # 40 px blacked out most images
        TrainConfig.from_dict({"model": "fashion-vit", "translate": 40})
    for option in ({"extremes": 0.4}, {"sandwich": True}):  # ignored without a word until 2026-12-07
        with pytest.raises(ConfigError, match="fashion-vit is not a supernet"):
            TrainConfig.from_dict({"model": "fashion-vit", **option})
    assert TrainConfig.from_dict({"model": "fashion-autoformer", "extremes": 0.4}).extremes == 0.4


def test_a_foreign_checkpoint_and_the_run_s_own_checkpoint_as_weights(tmp_path: Path, make_fashion) -> None:
    """A checkpoint.pt of another program was a KeyError traceback; evaluating a run's checkpoint.pt picked its raw
    weights, not the EMA the run writes as its result (until 2026-12-07)."""
    from searcher.errors import CheckpointError
    from searcher.models import read_state_dict

    data_dir = make_fashion(n_train=4000, n_test=100)
    (tmp_path / "k").mkdir()
    torch.save({"a": torch.zeros(1)}, tmp_path / "k" / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="is not a checkpoint of 'searcher train'"):
        train(small(tmp_path, data_dir, "k"))
    train(small(tmp_path, data_dir, "run"))
    ema = read_state_dict(tmp_path / "run" / "checkpoint.pt")
    written = load_file(str(tmp_path / "run" / "fashion-vit.safetensors"))
    assert all(torch.equal(ema[k], written[k]) for k in written)
    assert (tmp_path / "run" / "fashion-vit.safetensors").stat().st_mode & 0o044  # readable as the .json (0600)



def test_init_of_a_file_that_is_no_weights_file_says_so(tmp_path: Path) -> None:
    """``--init notes.txt`` said "cannot load checkpoint notes.txt: 105" (the pickle opcode torch read) until
    2026-12-08; a torch file cut short still names torch's reason."""
    from searcher.errors import CheckpointError
    from searcher.models import read_state_dict

    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes.txt is not a PyTorch or safetensors weights file \(it begins "
                                              r"b'hell'\); check the path"):
        read_state_dict(tmp_path / "notes.txt")
    from safetensors.torch import save_file

    save_file({"a": torch.ones(3)}, tmp_path / "w.bin")  # safetensors under another name: read as what it is
    assert torch.equal(read_state_dict(tmp_path / "w.bin")["a"], torch.ones(3))
    torch.save({"a": torch.zeros(100)}, tmp_path / "full.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "full.pt").read_bytes()[:300])
    with pytest.raises(CheckpointError, match="cannot load checkpoint .*cut.pt: .*zip archive.*complete PyTorch"):
        read_state_dict(tmp_path / "cut.pt")

def test_augment_translates_and_flips_within_bounds() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).reshape(2, 1, 6, 6)
    y = augment(x, 2, True, g)
    assert y.shape == x.shape and y.dtype == torch.uint8
    for i in range(2):  # every output pixel is zero padding or a pixel of the same image
        assert set(y[i].flatten().tolist()) <= set(x[i].flatten().tolist()) | {0}


def test_reduction_in_the_loop_fine_tunes_the_shipped_supernet_and_resumes_exactly(
    tmp_path: Path, make_fashion
) -> None:
    from searcher.models import create_model, embedded_metadata

    data_dir = make_fashion(n_train=4000, n_test=100)
    kw = dict(model="fashion-autoformer", init="fashion-autoformer", reduce=1.0, reduce_r=4, lr=1e-4, epochs=1)
    meta = train(small(tmp_path, data_dir, "straight", **kw))
    assert meta is not None and meta["training"]["config"]["reduce"] == 1.0
    shipped_meta = embedded_metadata("fashion-autoformer")
    assert meta["training"]["init"]["sha256"] == shipped_meta["sha256"]  # the chain of runs is recorded
    assert train(small(tmp_path, data_dir, "resumed", **kw), stop_at=2) is None
    train(small(tmp_path, data_dir, "resumed", **kw))
    a = load_file(str(tmp_path / "straight" / "fashion-autoformer.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "fashion-autoformer.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    shipped = create_model("fashion-autoformer").state_dict()
    changed = [k for k in a if not torch.equal(a[k], shipped[k])]
    assert changed  # the steps moved the weights
    near = max((a[k] - shipped[k]).abs().max().item() for k in a if a[k].is_floating_point())
    assert near < 0.05  # three small steps from the shipped weights, not a fresh random init


def test_drawn_reduction_schedules_remove_tokens_within_bounds() -> None:
    from searcher.train import _draw_schedule

    cfg = TrainConfig(reduce=1.0, reduce_r=3, reducers=("tome", "rapid"))
    g = torch.Generator().manual_seed(0)
    drawn = [_draw_schedule(cfg, 6, g) for _ in range(40)]
    assert all(s.depth == 6 and all(0 <= r <= 6 for r in s.rs) for s in drawn)
    assert sum(1 for s in drawn if not s.is_identity) >= 38
    ops = {layer.op for s in drawn for layer in s.layers}
    assert {"tome", "rapid-prune", "rapid-merge"} <= ops and not ops & {"pitome", "tofu-merge"}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"reduce": 1.5}, "share of the steps"),
        ({"reduce_r": 0}, "reduce_r"),
        ({"reducers": "tome,diffrate"}, "cannot be trained with"),
        ({"reducers": ["tome", "merge-all"]}, "cannot be trained with"),
        # each wrote untrained weights (epochs), raised a torch traceback (lr) or ran on all images (limit) until
        # 2026-12-07
        ({"epochs": 0}, "epochs must be at least 1, got 0"),
        ({"lr": -1.0}, "lr must be positive"),
        ({"min_lr": 1e-2}, r"min_lr must be in \[0, lr\]"),
        ({"limit": -3}, "limit must be at least 1"),
        ({"warmup_epochs": 20}, r"warmup_epochs must be in \[0, epochs\]"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
        ({"extremes": -0.1}, "extremes must be a share"),
    ],
)
def test_bad_reduction_options_are_clear_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({"model": "fashion-autoformer", **options})


def test_init_from_another_models_weights_is_refused(tmp_path: Path, make_fashion) -> None:
    from searcher.errors import CheckpointError
    from searcher.models import ASSETS

    data_dir = make_fashion(n_train=4000, n_test=100)
    with pytest.raises(ConfigError, match="another model"):
        train(small(tmp_path, data_dir, "a", init="fashion-autoformer"))
    with pytest.raises(CheckpointError, match="does not fit"):
        train(small(tmp_path, data_dir, "b", init=str(ASSETS / "fashion-autoformer.safetensors")))
    with pytest.raises(CheckpointError, match="neither an embedded model"):
        train(small(tmp_path, data_dir, "c", init=str(tmp_path / "missing.safetensors")))


def test_init_from_a_weights_file_loads_it_and_records_it_as_loaded(tmp_path: Path, make_fashion) -> None:
    """A weights file is loaded as is, and the metadata records the file the run started from, even when it is
    replaced before a resumed run ends."""
    import shutil

    from safetensors.torch import save_file

    from searcher.models import ASSETS, create_model, sha256_file
    from searcher.train import _build

    weights = tmp_path / "start.safetensors"
    shutil.copy(ASSETS / "fashion-vit.safetensors", weights)
    model, _, init = _build(TrainConfig(model="fashion-vit", init=str(weights)))
    shipped = create_model("fashion-vit").state_dict()
    assert all(torch.equal(v, shipped[k]) for k, v in model.state_dict().items())
    first = sha256_file(weights)
    assert init == {"weights": str(weights), "sha256": first}

    data_dir = make_fashion(n_train=4000, n_test=100)
    cfg = small(tmp_path, data_dir, "run", init=str(weights))
    assert train(cfg, stop_at=1) is None
    save_file({k: v * 1.01 if v.is_floating_point() else v for k, v in shipped.items()}, str(weights))  # replaced
    meta = train(cfg)
    assert meta is not None and meta["training"]["init"]["sha256"] == first != sha256_file(weights)
    # a resumed run needs no --init file: its checkpoint holds every weight (an error until 2026-12-07)
    gone = small(tmp_path, data_dir, "gone", init=str(weights))
    assert train(gone, stop_at=1) is None
    weights.unlink()
    meta = train(gone)
    assert meta is not None and meta["training"]["init"]["weights"] == str(weights)


@pytest.mark.parametrize("model", ["fashion-vit", "fashion-autoformer"])
def test_drop_path_reaches_either_model(model: str) -> None:
    """``--drop-path`` builds the model with stochastic depth (the supernet was built without it until 2026-12-07)."""
    from timm.layers import DropPath

    from searcher.train import _build

    built, _, _ = _build(TrainConfig(model=model, drop_path=0.1))
    assert any(isinstance(m, DropPath) for m in built.modules())
    plain, _, _ = _build(TrainConfig(model=model))
    assert not any(isinstance(m, DropPath) for m in plain.modules())


def test_a_run_never_replaces_weights_it_did_not_train(tmp_path: Path, make_fashion,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--out searcher/assets`` replaced the shipped model every study uses with a smoke run's (until 2026-12-07),
    as it replaced any weights in --out; a killed run's half-written files are swept by the next."""
    import shutil

    from searcher.models import ASSETS

    data_dir = make_fashion(n_train=4000, n_test=100)
    assets = tmp_path / "package" / "assets"  # a copy: were the guard to break, the shipped files stay
    shutil.copytree(ASSETS, assets)
    monkeypatch.setattr("searcher.models.ASSETS", assets.resolve())
    monkeypatch.chdir(assets.parent)
    shipped = (assets / "fashion-vit.safetensors").read_bytes()
    with pytest.raises(ConfigError, match="holds searcher's shipped weights; train into another --out"):
        train(replace(small(tmp_path, data_dir, "x"), out="assets"))
    assert (assets / "fashion-vit.safetensors").read_bytes() == shipped and not (assets / "checkpoint.pt").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "fashion-vit.safetensors").write_bytes(b"my weights")
    with pytest.raises(ConfigError, match="has no checkpoint.pt beside it: not this --out's own training run"):
        train(small(tmp_path, data_dir, "mine"))
    assert (mine / "fashion-vit.safetensors").read_bytes() == b"my weights"

    run = tmp_path / "run"
    train(small(tmp_path, data_dir, "run"), stop_at=1)
    (run / ".checkpoint.pt.999999.tmp").write_bytes(b"half")  # a run killed while writing its checkpoint
    train(small(tmp_path, data_dir, "run"))
    assert not list(run.glob(".*.tmp")) and (run / "fashion-vit.safetensors").exists()
