"""The console scripts' entry point."""

from __future__ import annotations

import sys
import types

import pytest

from controller import cli


def _interrupted(*_arguments: object) -> object:
    raise KeyboardInterrupt


@pytest.mark.parametrize("when", ["loading", "running"])
def test_a_ctrl_c_exits_130_quietly(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    module = types.ModuleType("controller.cli.main")
    if when == "loading":
        module.__getattr__ = _interrupted  # type: ignore[method-assign]
    else:
        module.main = _interrupted  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "controller.cli.main", module)
    assert cli.run() == 130
