"""Fixtures of the reliability suite (helpers live in ``chaos.py``); every test here is marked ``reliability``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml
from chaos import TINY, tiny_spec_dict, write_fashion
from timm.models.vision_transformer import VisionTransformer

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory, searcher_cache: Path) -> SimpleNamespace:
    """``root`` with ``idx/`` (synthetic Fashion-MNIST), ``tiny.pth`` (a random tiny ViT) and ``tiny.yaml`` (the
    tiny study's spec); ``write_spec(path, **changes)`` writes a variant of the spec."""
    root = tmp_path_factory.mktemp("tiny-study")
    write_fashion(root / "idx")
    torch.manual_seed(0)
    torch.save(VisionTransformer(**TINY).state_dict(), root / "tiny.pth")

    def write_spec(path: Path, **changes: Any) -> Path:
        path.write_text(yaml.safe_dump(tiny_spec_dict(root, **changes), sort_keys=False))
        return path

    return SimpleNamespace(root=root, spec=write_spec(root / "tiny.yaml"), write_spec=write_spec)
