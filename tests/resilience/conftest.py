"""Fixtures of the resilience and security tests: service processes and an offline store file."""

from __future__ import annotations


import pytest
import yaml

from support import service
from support.waiting import free_port


@pytest.fixture
def offline_receiver(run_service, tmp_path):
    """Start a receiver on an offline YAML store of the given objects, with extra flags; ready."""

    def start(objects: list[dict], *extra: str) -> service.Service:
        path = tmp_path / f"store-{free_port()}.yaml"
        path.write_text(yaml.safe_dump_all(objects), encoding="utf-8")
        port = free_port()
        started = run_service(
            "serve",
            "receiver",
            "--listen",
            f"127.0.0.1:{port}",
            "--store",
            "offline",
            "--gitrepos",
            str(path),
            *extra,
        )
        started.receiver = f"http://127.0.0.1:{port}"
        service.wait_ready(started.receiver, started)
        return started

    return start
