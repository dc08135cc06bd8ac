"""Fixtures that run the real service on the example offline store."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from support import service


@pytest.fixture
def receiver(start_receiver: Callable[..., service.Service]) -> service.Service:
    """A receiver on the example offline store, ready."""
    return start_receiver()


@pytest.fixture
def admission(start_admission: Callable[..., service.Service]) -> service.Service:
    """An admission server on the example offline store with the session's dev certificates, ready."""
    return start_admission()
