"""Running ``gitjob-webhook`` as a real process (gunicorn and all) for the integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import requests

from support.waiting import wait_for


@dataclass
class Service:
    """A started ``gitjob-webhook`` process and where its listeners are."""

    process: subprocess.Popen[bytes]
    log_path: str
    receiver: str = ""
    admission: str = ""
    ca_file: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def command(*arguments: str) -> list[str]:
    """The command line running the installed package's CLI with this interpreter."""
    return [sys.executable, "-m", "controller", *arguments]


def start(arguments: Sequence[str], log_path: str, env: Mapping[str, str] | None = None) -> Service:
    """Start ``gitjob-webhook ARGUMENTS`` with output to ``log_path``."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GITJOB_WEBHOOK_")}
    environment.setdefault("HOME", "/nonexistent-home")
    environment.update(env or {})
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command(*arguments), stdout=log_file, stderr=subprocess.STDOUT,
                                   env=environment, start_new_session=True)
    return Service(process, log_path)


def listening(service: Service, listener: str, timeout: float = 30.0) -> str:
    """The ``HOST:PORT`` the listener bound, read from its log (the tests pass port 0: no race)."""
    def bound() -> str | None:
        if service.process.poll() is not None:
            raise AssertionError(f"service exited with {service.process.returncode}:\n{service.log()}")
        for line in service.log().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == f"{listener} listening":
                return str(entry["address"])
        return None
    try:
        return wait_for(bound, timeout=timeout, message=f"{listener} listening")
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- service log ---\n{service.log()}") from None


def wait_ready(url: str, service: Service, verify: str | bool = True, timeout: float = 30.0) -> None:
    """Wait until ``url/readyz`` answers 200, failing early (with the log) if the process died."""
    def ready() -> bool:
        if service.process.poll() is not None:
            raise AssertionError(f"service exited with {service.process.returncode}:\n{service.log()}")
        try:
            return requests.get(f"{url}/readyz", timeout=2, verify=verify).status_code == 200
        except requests.ConnectionError:
            return False
    try:
        wait_for(ready, timeout=timeout, message=f"{url}/readyz")
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- service log ---\n{service.log()}") from None


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (gunicorn workers of an arbiter)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: fields start after the last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def descendant_pids(pid: int) -> set[int]:
    """Every process under ``pid``: its children, theirs (an arbiter's workers), and so on."""
    found: set[int] = set()
    waiting = [pid]
    while waiting:
        children = set(child_pids(waiting.pop())) - found
        found |= children
        waiting += children
    return found
