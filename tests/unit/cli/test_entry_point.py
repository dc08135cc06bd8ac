"""The console scripts' entry point."""

from __future__ import annotations

import sys
import types

import pytest

from controller import cli


def test_a_ctrl_c_while_the_command_loads_exits_130_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    loading = types.ModuleType("controller.cli.main")

    def interrupted(name: str) -> object:
        raise KeyboardInterrupt

    loading.__getattr__ = interrupted  # type: ignore[method-assign]
    monkeypatch.setitem(sys.modules, "controller.cli.main", loading)
    assert cli.run() == 130
