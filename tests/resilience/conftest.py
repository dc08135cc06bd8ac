"""Fixtures of the resilience and security tests: a receiver on an offline store of the test's objects."""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from support import service


@pytest.fixture
def offline_receiver(start_receiver: Callable[..., service.Service],
                     tmp_path: pathlib.Path) -> Callable[..., service.Service]:
    """Start a receiver on an offline YAML store of the given objects, with extra flags; ready."""
    numbers = itertools.count()

    def start(objects: list[dict[str, Any]], *extra: str) -> service.Service:
        path = tmp_path / f"store-{next(numbers)}.yaml"
        path.write_text(yaml.safe_dump_all(objects), encoding="utf-8")
        return start_receiver("--store", "offline", "--gitrepos", str(path), *extra)

    return start
