"""The scripts in bench/ answer bad arguments as the CLI does: exit 2 and one clear line, no traceback. Until
2026-12-08 most were tracebacks (a ConfigError, StatisticsError, KeyError, timm's RuntimeError) or were quietly
replaced (``--batch 0`` ran batch 32), and ``bench/deploy.py --budget 1%`` printed a schedule far over the budget
as if it were at it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"
CASES = {
    "costs.py --parts beside --rounds 0": "argument --rounds: must be at least 1, got 0",
    "default_models.py --limit x": "argument --limit: expected a whole number, got 'x'",
    "reducers.py --models resnet18 --quick --no-official": "--models resnet18 is not a ViT (ResNet)",
    "deploy.py --budget 1% --skip-export": "error: no constant r of RAPID fits --budget 1%",
    "autoformer.py --positions --weights missing.safetensors": "checkpoint missing.safetensors does not exist",
    "search.py --models foo": "unknown model(s) ['foo']; choose from ['fashion-autoformer', 'fashion-vit']",
    "search.py --parts sampler --sampler-seeds 5-3": "--sampler-seeds takes a count (10: seeds 0-9) or a range",
}


@pytest.mark.parametrize("argv", list(CASES))
def test_bad_arguments_exit_2_with_one_clear_line(argv: str, tmp_path: Path) -> None:
    script, *args = argv.split()
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert CASES[argv] in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
