"""Fixtures of the reliability suite (helpers live in ``chaos.py``); every test here is marked ``reliability``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml
from chaos import TINY, PostgresServer, postgres_bin, tiny_spec_dict, write_fashion
from timm.models.vision_transformer import VisionTransformer

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """In-process studies use one torch thread, like the subprocesses (``chaos.cli_env``): tiny models gain
    nothing from more, and on a shared 2-core machine two threads per process make every matmul much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on loopback for the session (Debian's ``postgresql``; ``make test`` installs it).
    Skipped when it is not installed, except under CI (``CI`` set), where that is a failure."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql); CI must run the PostgreSQL tests")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql; make test installs it)")
    server = PostgresServer(bin_dir).start()
    try:
        yield server
    finally:
        server.stop()
