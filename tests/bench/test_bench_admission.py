"""(c) Admission: reviews per second over HTTPS keep-alive, against a bare-Flask floor in the same run."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from bench.benchkit import Load, LoadSpec, Report, client_processes, ms, run_load, statuses_text
from support import service
from support.paths import EXAMPLE_GITREPOS
from support.waiting import free_port

CONNECTIONS = 8
SECONDS = 6.0
FLOOR_APP = pathlib.Path(__file__).with_name("floor_app.py")

MUTATE_REVIEW = json.dumps(
    {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench-mutate",
            "kind": {"group": "fleet.cattle.io", "version": "v1alpha1", "kind": "GitRepo"},
            "resource": {"group": "fleet.cattle.io", "version": "v1alpha1", "resource": "gitrepos"},
            "name": "bench",
            "namespace": "fleet-default",
            "operation": "CREATE",
            "userInfo": {"username": "bench", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "fleet.cattle.io/v1alpha1",
                "kind": "GitRepo",
                "metadata": {"name": "bench", "namespace": "fleet-default"},
                "spec": {"repo": "https://github.com/example/app", "branch": "main"},
            },
            "oldObject": None,
            "dryRun": False,
        },
    }
).encode()

VALIDATE_REVIEW = json.dumps(
    {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench-validate",
            "kind": {"group": "", "version": "v1", "kind": "Secret"},
            "resource": {"group": "", "version": "v1", "resource": "secrets"},
            "name": "gitjob-webhook",
            "namespace": "cattle-fleet-system",
            "operation": "CREATE",
            "userInfo": {"username": "bench", "groups": ["system:authenticated"]},
            "object": {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "gitjob-webhook", "namespace": "cattle-fleet-system"},
                "data": {"github": "c2VjcmV0", "gitlab": "dG9rZW4="},
            },
            "oldObject": None,
            "dryRun": False,
        },
    }
).encode()


@pytest.fixture
def floor(dev_certs: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[service.Service]:
    port = free_port()
    log_path = tmp_path / "floor.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                str(FLOOR_APP),
                "--listen",
                f"127.0.0.1:{port}",
                "--tls-cert",
                str(dev_certs / "tls.crt"),
                "--tls-key",
                str(dev_certs / "tls.key"),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = service.Service(process, str(log_path), admission=f"https://127.0.0.1:{port}")
    service.wait_ready(started.admission, started, verify=str(dev_certs / "ca.crt"))
    yield started
    started.stop()


@pytest.fixture
def admission_server(run_service: Callable[..., service.Service], dev_certs: pathlib.Path) -> service.Service:
    port = free_port()
    started = run_service(
        "serve",
        "admission",
        "--listen",
        f"127.0.0.1:{port}",
        "--store",
        "offline",
        "--gitrepos",
        str(EXAMPLE_GITREPOS),
        "--tls-cert",
        str(dev_certs / "tls.crt"),
        "--tls-key",
        str(dev_certs / "tls.key"),
    )
    started.admission = f"https://127.0.0.1:{port}"
    service.wait_ready(started.admission, started, verify=str(dev_certs / "ca.crt"))
    return started


@pytest.mark.timeout(300)
def test_admission_against_the_floor(
    report: Report, floor: service.Service, admission_server: service.Service, dev_certs: pathlib.Path
) -> None:
    section = report.section(
        "c",
        "c. Admission reviews over HTTPS keep-alive, against a bare-Flask floor",
        ["server", "path", "reviews", "reviews/s", "p50 ms", "p99 ms", "HTTP statuses", "errors"],
    )
    section.notes += [
        f"{CONNECTIONS} `http.client.HTTPSConnection` keep-alive connections (TLS 1.3, verified against the "
        f"generated CA) for {SECONDS:g} s per row, in {client_processes(CONNECTIONS)} spawned client "
        "processes "
        "(threads within each; processes so the client's GIL does not cap the server). Clients and server "
        "share the machine's cores.",
        "`serve admission` on the offline example store (global Secret present: the mutation returns a "
        "JSONPatch), default settings (1 gthread worker, 8 threads, info log). **floor** = "
        "`tests/bench/floor_app.py`: bare Flask returning a constant allowed review, served by the same "
        "`controller.serving.gunicorn.gunicorn_options` and TLS context. The floor runs before and after the "
        "service; the better of its two runs is the reference.",
    ]
    ca = str(dev_certs / "ca.crt")

    def measure(started: service.Service, path: str, body: bytes, label: str) -> tuple[Load, int]:
        port = int(started.admission.rsplit(":", 1)[1])
        load = run_load(
            LoadSpec(
                "127.0.0.1",
                port,
                "post-body",
                0,
                SECONDS,
                0,
                0,
                ca_file=ca,
                path=path,
                body=body,
                label=label,
            ),
            CONNECTIONS,
        )
        errors = len(load.errors) + sum(count for status, count in load.statuses.items() if status != 200)
        section.add(
            label,
            path,
            load.count,
            f"{load.rate:.0f}",
            ms(load.p(0.5)),
            ms(load.p(0.99)),
            statuses_text(load.statuses),
            errors,
        )
        print(f"  {label} {path}: {load.rate:.0f}/s p50 {ms(load.p(0.5))} p99 {ms(load.p(0.99))}", flush=True)
        return load, errors

    floors = [measure(floor, "/mutate/gitrepos", MUTATE_REVIEW, "floor (1st)")[0]]
    mutate, mutate_errors = measure(admission_server, "/mutate/gitrepos", MUTATE_REVIEW, "gitjob-webhook")
    validate, validate_errors = measure(
        admission_server, "/validate/secrets", VALIDATE_REVIEW, "gitjob-webhook"
    )
    floors.append(measure(floor, "/mutate/gitrepos", MUTATE_REVIEW, "floor (2nd)")[0])
    best_rate = max(load.rate for load in floors)
    best_p99 = min(load.p(0.99) for load in floors)
    for name, load in (("/mutate/gitrepos", mutate), ("/validate/secrets", validate)):
        share = load.rate / best_rate
        section.target(f"{name}: throughput ≥ 80 % of the floor", f"{share:.0%}", share >= 0.8)
        ratio = load.p(0.99) / best_p99
        section.target(f"{name}: p99 ≤ 2× the floor's", f"{ratio:.2f}×", ratio <= 2)
    section.target("no errors", str(mutate_errors + validate_errors), not (mutate_errors + validate_errors))
    section.print()
    assert not (mutate_errors + validate_errors)
