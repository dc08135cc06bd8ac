"""Fixtures of the node tests: a real single-node Kubernetes running the project's image.

- ``node`` (package): the started Node (tests/node/node.py); stopped once the node tests are done
  (not at the end of the whole session: it must not hold the machine while other suites run), with
  every host change undone (a teardown error names anything left behind).

Missing pieces (node binaries, containerd, the image) are built once collection shows a node test
will run, before any test's timeout starts. When a node test fails, the last lines of every
component's log are added to its report. Run them alone with `make test-node`, or leave them out
with `-m "not node"`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator

import pytest

from node.artifacts import Artifacts, Unavailable, ensure
from node.node import Node
from support.terminal import announce

_ARTIFACTS = pytest.StashKey[Artifacts | str]()  # or why they are missing
_NODE = pytest.StashKey[Node]()


def pytest_configure(config: pytest.Config) -> None:
    """The `node` marker (setup.cfg runs with --strict-markers)."""
    config.addinivalue_line("markers", "node: runs on the real single-node cluster (tests/node); "
                                       "needs root, podman, debootstrap")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build what the node needs now, with progress on the terminal, if a collected test uses it."""
    if session.config.option.collectonly or os.geteuid() != 0:
        return
    if not any("node" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    started = time.monotonic()
    try:
        session.config.stash[_ARTIFACTS] = ensure(progress=lambda line: announce(session.config, line))
    except Unavailable as error:
        session.config.stash[_ARTIFACTS] = str(error)
        return
    took = time.monotonic() - started
    if took > 5:
        announce(session.config, f"node: images and binaries ready in {took:.0f} s")


def _artifacts(config: pytest.Config) -> Artifacts:
    if os.geteuid() != 0:
        # As the pod sandbox's tests: a bridge, iptables, cgroups and mount namespaces need root.
        pytest.skip("the node tests need root")
    found = config.stash.get(_ARTIFACTS, None)
    if found is None:
        try:
            found = ensure()
        except Unavailable as error:
            found = str(error)
        config.stash[_ARTIFACTS] = found
    if isinstance(found, str):
        pytest.fail(f"the node cannot run: {found}", pytrace=False)
    return found


@pytest.fixture(scope="package")
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The node tests' single-node cluster (started on first use, in about 20 s)."""
    started = time.monotonic()
    cluster = Node(tmp_path_factory.mktemp("node"), _artifacts(request.config))
    request.config.stash[_NODE] = cluster
    try:
        cluster.start()
    except BaseException as error:
        left = cluster.stop()
        tails = "\n".join(f"--- {name} ---\n{tail}" for name, tail in cluster.log_tails().items() if tail)
        pytest.fail(f"the node did not start: {error}\n{tails}\nleft on the host: {left or 'nothing'}",
                    pytrace=False)
    if cluster.recovered:
        announce(request.config, f"node: removed what a previous run left: {', '.join(cluster.recovered)}")
    took = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in cluster.timings.items())
    announce(request.config, f"node: {cluster.versions()}; ready in {time.monotonic() - started:.1f} s "
                             f"({took})")
    yield cluster
    left = cluster.stop()
    if left:
        pytest.fail(f"the node left this on the host: {', '.join(left)}", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the tails of every node component's log to the report of a failed node test."""
    report = yield
    if report.failed and "node" in getattr(item, "fixturenames", ()):
        cluster = item.config.stash.get(_NODE, None)
        if cluster is not None:
            for name, tail in cluster.log_tails().items():
                report.sections.append((f"{name} log (last lines)", tail))
    return report
