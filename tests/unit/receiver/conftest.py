"""A receiver core over an in-memory store built from the objects each test lists."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from controller.receiver.pipeline import Receiver
from controller.settings import Settings
from controller.store.offline import OfflineStore
from unit.receiver.objects import CONTROLLER_NAMESPACE

MakeReceiver = Callable[..., tuple[Receiver, OfflineStore]]


@pytest.fixture
def make_receiver() -> MakeReceiver:
    """``make_receiver(objects, store_class=OfflineStore, **settings)`` → (receiver, store)."""
    def make(objects: Iterable[Mapping[str, Any]] = (), store_class: type[OfflineStore] = OfflineStore,
             **settings: Any) -> tuple[Receiver, OfflineStore]:
        store = store_class(list(objects), "test")
        settings.setdefault("namespace", CONTROLLER_NAMESPACE)
        return Receiver(Settings(**settings), store), store
    return make
