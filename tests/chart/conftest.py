"""Fixtures of the chart tests: helm (built once, before any test's timeout runs) in a home of its own."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from chart import helm as helm_module
from chart.helm import Helm
from deploy.conftest import kustomize
from support.paths import MANIFESTS
from support.terminal import announce

_HELM = pytest.StashKey[pathlib.Path | str]()  # the binary, or why it is missing
_USERS = {"helm", "session_helm", "chart_default", "kustomized"}


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build helm now, with its progress on the terminal, if a collected test needs it."""
    if not any(_USERS & set(getattr(item, "fixturenames", ())) for item in session.items):
        return
    try:
        session.config.stash[_HELM] = helm_module.ensure(lambda line: announce(session.config, line))
    except helm_module.HelmUnavailable as error:
        session.config.stash[_HELM] = str(error)


@pytest.fixture(scope="session")
def helm_binary(request: pytest.FixtureRequest) -> pathlib.Path:
    """The cached helm binary (the test fails with the builder's last line when there is none)."""
    found = request.config.stash.get(_HELM, None)
    if found is None:
        try:
            found = helm_module.ensure()
        except helm_module.HelmUnavailable as error:
            found = str(error)
        request.config.stash[_HELM] = found
    if isinstance(found, str):
        pytest.fail(found, pytrace=False)
    return found


@pytest.fixture
def helm(helm_binary: pathlib.Path, tmp_path: pathlib.Path) -> Helm:
    """helm with a home in this test's temporary directory."""
    home = tmp_path / "helm-home"
    home.mkdir()
    return Helm(helm_binary, home)


@pytest.fixture(scope="session")
def session_helm(helm_binary: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """helm with a home of the session's, for rendering only."""
    return Helm(helm_binary, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def chart_default(session_helm: Helm) -> list[dict[str, Any]]:
    """``helm template`` of the chart with its default values, into cattle-fleet-system."""
    return session_helm.render()


@pytest.fixture(scope="session")
def kustomized() -> list[dict[str, Any]]:
    """``kubectl kustomize manifests/``."""
    return kustomize(MANIFESTS)
