"""Lines for the terminal from fixtures and collection hooks, also under pytest-xdist."""

from __future__ import annotations

from typing import Any

import pytest

ANNOUNCEMENTS = "announcements"
"""The key of an xdist worker's output under which its lines travel to the controller."""


def announce(config: pytest.Config, line: str) -> None:
    """Write ``line`` to the terminal even while output is captured. An xdist worker has no terminal:
    its lines go to the controller with the worker's output, and are printed when the worker ends."""
    workeroutput: dict[str, Any] | None = getattr(config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput.setdefault(ANNOUNCEMENTS, []).append(line)
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capture is None:
        reporter.write_line(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
