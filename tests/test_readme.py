"""The README's Python examples run as written: patching a timm model here (with random weights: no hub), the
study in test_study.py (on the tiny study)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def _run(code: str, **replacements: str) -> dict:
    for old, new in replacements.items():
        assert old in code, old
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


def test_readme_has_the_python_examples() -> None:
    assert len(BLOCKS) == 2 and "searcher.apply" in BLOCKS[0] and "optimize(" in BLOCKS[1]


def test_patch_a_timm_model(capsys: pytest.CaptureFixture[str]) -> None:
    ns = _run(BLOCKS[0], **{"pretrained=True": "pretrained=False"})  # no hub here: the same model, random weights
    assert not hasattr(ns["model"], "_searcher_state") or ns["model"]._searcher_state is None
    assert 0 < float(capsys.readouterr().out) < 4.6  # RAPID r=8 on DeiT-S: under the unreduced 4.6 GFLOPs
