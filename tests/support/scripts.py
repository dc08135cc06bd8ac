"""The build scripts of hack/, as the tests use them: loaded as modules, or run with their progress."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from support.paths import HACK


def load(name: str) -> ModuleType:
    """``hack/<name>.py`` as a module (its helpers, e.g. where it caches what it builds)."""
    if str(HACK) not in sys.path:
        sys.path.append(str(HACK))   # the scripts import their shared module, as when run from hack/
    module_name = name.replace("-", "_")
    spec = importlib.util.spec_from_file_location(module_name, HACK / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module   # a dataclass in it looks its module up while it is defined
    spec.loader.exec_module(module)
    return module


def run(name: str, arguments: Sequence[str] = (),
        progress: Callable[[str], None] | None = None) -> tuple[int, list[str]]:
    """Run ``hack/<name>.py``; its exit status and output lines, each also given to ``progress``."""
    lines: list[str] = []
    with subprocess.Popen([sys.executable, str(HACK / f"{name}.py"), *arguments], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as build:
        assert build.stdout is not None
        for line in build.stdout:
            lines.append(line.rstrip("\n"))
            if progress is not None:
                progress(lines[-1])
    return build.returncode, lines
