"""pytest plugin: a real kube-apiserver and etcd for the tests. Load as ``cluster.fixtures``.

- ``control_plane`` (session): the started ControlPlane, with the GitRepo CRD established and the
  namespaces cattle-fleet-system, fleet-default and fleet-local.
- ``cluster`` (function): a Cluster on it; what the test creates is deleted at teardown.
- ``fault_proxy`` (function): a FaultProxy in front of the session control plane.
- ``private_control_plane`` (function): a control plane of the test's own, for stopping,
  restarting or compacting it (about 6 s to start, 1 to 2 s to stop); extra kube-apiserver flags
  by indirect parametrisation.

When a test using one of them fails, the last lines of the etcd and kube-apiserver logs are added
to its report. Missing binaries are built (hack/k8s-binaries.py) once collection shows a test
needs them, before any test's timeout runs.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Generator, Iterator, Sequence

import pytest
import yaml

from cluster import binaries
from cluster.controlplane import ControlPlane
from cluster.faults import FaultProxy
from cluster.isolation import Cluster
from support.paths import TESTS
from support.terminal import announce
from support.waiting import wait_for

GITREPO_CRD = TESTS / "fixtures" / "crds" / "gitrepo.yaml"
FLEET_NAMESPACES = ("cattle-fleet-system", "fleet-default", "fleet-local")
_FIXTURES = {"control_plane", "cluster", "fault_proxy", "private_control_plane"}
_SESSION_PLANE = pytest.StashKey[ControlPlane]()
_BINARIES = pytest.StashKey[binaries.Binaries | str]()  # or why they are missing


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build missing binaries now, with progress on the terminal, if a collected test needs them."""
    if not any(_FIXTURES & set(getattr(item, "fixturenames", ())) for item in session.items):
        return
    try:
        session.config.stash[_BINARIES] = binaries.ensure(
            progress=lambda line: announce(session.config, line))
    except binaries.BinariesUnavailable as error:
        session.config.stash[_BINARIES] = str(error)


def _binaries(config: pytest.Config) -> binaries.Binaries:
    found = config.stash.get(_BINARIES, None)
    if found is None:
        try:
            found = binaries.ensure()
        except binaries.BinariesUnavailable as error:
            found = str(error)
        config.stash[_BINARIES] = found
    if isinstance(found, str):
        pytest.fail(found, pytrace=False)
    return found


def prepare(plane: ControlPlane) -> None:
    """Install the GitRepo CRD, wait until GitRepos are served, and create Fleet's namespaces."""
    crd = yaml.safe_load(GITREPO_CRD.read_text())
    created = plane.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    if created.status_code != 201:
        raise AssertionError(f"installing the GitRepo CRD: {created.status_code} {created.text}")

    def established() -> bool:
        got = plane.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                                   f"{crd['metadata']['name']}").json()
        conditions = got.get("status", {}).get("conditions", [])
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
    wait_for(established, timeout=30, interval=0.05, message="the GitRepo CRD to be Established")
    wait_for(lambda: plane.request("GET", "/apis/fleet.cattle.io/v1alpha1/gitrepos").status_code == 200,
             timeout=30, interval=0.05, message="GitRepos to be served")
    for name in FLEET_NAMESPACES:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        created = plane.request("POST", "/api/v1/namespaces", namespace)
        if created.status_code not in (201, 409):
            raise AssertionError(f"creating namespace {name}: {created.status_code} {created.text}")
    # For 2 s after a CRD is Established the server holds every create of its objects for 2 s
    # (apiextensions-apiserver customresource_handler.go, for HA peers to catch up): wait that out
    # here, so that no test's first GitRepo pays for it.
    path = "/apis/fleet.cattle.io/v1alpha1/namespaces/fleet-local/gitrepos"
    warm_up = {"apiVersion": "fleet.cattle.io/v1alpha1", "kind": "GitRepo", "metadata": {"name": "warm-up"},
               "spec": {"repo": "https://example.com/warm-up"}}
    assert plane.request("POST", path, warm_up).status_code == 201
    assert plane.request("DELETE", f"{path}/warm-up").status_code == 200


def _started(workdir: pathlib.Path, config: pytest.Config,
             apiserver_args: Sequence[str] = ()) -> ControlPlane:
    plane = ControlPlane(workdir, _binaries(config), apiserver_args)
    try:
        plane.start()
        started = time.monotonic()
        prepare(plane)
        plane.timings["CRD"] = time.monotonic() - started
    except BaseException:
        plane.stop()
        raise
    return plane


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The session's etcd and kube-apiserver, prepared for Fleet (started once, on first use)."""
    plane = _started(tmp_path_factory.mktemp("control-plane"), request.config)
    request.config.stash[_SESSION_PLANE] = plane
    took = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in plane.timings.items())
    total = sum(plane.timings.values())
    announce(request.config, f"control plane: kube-apiserver {plane.apiserver_version()}, "
                             f"etcd {plane.etcd_version()} (real); ready in {total:.1f} s ({took})")
    yield plane
    plane.stop()


@pytest.fixture
def cluster(control_plane: ControlPlane, tmp_path: pathlib.Path,
            request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The session control plane for one test: its namespaces, clients and kubectl; cleaned up after."""
    directory = tmp_path / "cluster"
    directory.mkdir()
    view = Cluster(control_plane, directory, request.node.name)
    try:
        yield view
    finally:
        view.cleanup()


@pytest.fixture
def fault_proxy(control_plane: ControlPlane, tmp_path: pathlib.Path) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the session control plane; ``.kubeconfig`` goes through it."""
    proxy = FaultProxy(control_plane, tmp_path).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def private_control_plane(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[ControlPlane]:
    """A prepared control plane of the test's own, to stop, restart or compact. Extra kube-apiserver
    flags come from indirect parametrisation: ``parametrize("private_control_plane", [[flags]],
    indirect=True)``."""
    plane = _started(tmp_path / "control-plane", request.config, getattr(request, "param", ()))
    try:
        yield plane
    finally:
        plane.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the tails of the etcd and kube-apiserver logs to the report of a failed test that used them."""
    report = yield
    if not report.failed:
        return report
    plane = getattr(item, "funcargs", {}).get("private_control_plane")
    if plane is None and "control_plane" in getattr(item, "fixturenames", ()):
        plane = item.config.stash.get(_SESSION_PLANE, None)
    if isinstance(plane, ControlPlane):
        for component in ("etcd", "kube-apiserver"):
            report.sections.append((f"{component} log (last lines)", plane.log_tail(component)))
    return report
