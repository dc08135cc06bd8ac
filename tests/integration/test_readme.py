"""The README's "Try it" and "Try admission" lines, run as written against `serve` on the example
store: each provider's line patches the GitRepo its comment names."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from support import service
from support.paths import TESTS

ROOT = TESTS.parent
README = ROOT / "README.md"
RECEIVER = "http://127.0.0.1:8080/"
ADMISSION = "https://127.0.0.1:8443/"


def _block(heading: str, number: int = 0) -> str:
    """The ``number``-th sh block of the section under ``heading``."""
    section = re.split(r"\n##+ ", README.read_text().split(f"\n{heading}\n", 1)[1], maxsplit=1)[0]
    found = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    assert len(found) > number, f"README: no sh block {number} under {heading!r}"
    return str(found[number])


@dataclass(frozen=True)
class Line:
    """One command of the Try it block and what its comment says it patches."""

    comment: str
    command: str

    @property
    def expected(self) -> str | None:
        """``namespace/name`` the comment names, or None for "nothing"."""
        target = self.comment.split("→", 1)[1].strip()
        return None if target.startswith("nothing") else target.split()[0]


def _lines() -> tuple[str, list[Line]]:
    setup, *rest = _block("### Try it").replace("\\\n", " ").splitlines()
    lines: list[Line] = []
    for comment, command in zip(rest[::2], rest[1::2]):
        assert comment.startswith("# ") and "→" in comment, comment
        lines.append(Line(comment, command))
    return setup, lines


def _run(command: str, cwd: pathlib.Path = ROOT) -> str:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
    return done.stdout


def _answer(output: str) -> dict[str, Any]:
    # curl prints the JSON; `trigger` prints the status first.
    text = output.split(" ", 1)[1] if re.match(r"^\d{3} ", output) else output
    answer: dict[str, Any] = json.loads(text)
    return answer


SETUP, LINES = _lines()
CLI = str(pathlib.Path(sys.executable).parent / "gitjob-webhook")


@pytest.fixture
def receiver(start_receiver: Callable[..., service.Service]) -> str:
    return start_receiver().receiver + "/"


def _as_written(line: Line, url: str) -> str:
    return f"{SETUP}; " + line.command.replace(RECEIVER, url).replace(".venv/bin/gitjob-webhook", CLI)


def test_there_is_a_line_per_provider() -> None:
    assert [line.comment.split("→")[0][2:].strip() for line in LINES] == [
        "GitHub", "GitLab", "Bitbucket Cloud", "Bitbucket Server", "Gogs", "Gitea", "Azure DevOps",
        "A CI job (the signed generic trigger)"]


@pytest.mark.parametrize("line", LINES, ids=[line.comment.split("→")[0][2:].strip() for line in LINES])
def test_each_try_it_line_does_what_its_comment_says(receiver: str, line: Line) -> None:
    answer = _answer(_run(_as_written(line, receiver)))
    assert answer["outcome"] == "processed" and answer["authenticated"] is True, answer
    assert answer["secret"] == "current"
    patched = [f"{r['namespace']}/{r['name']}" for r in answer["gitrepos"] if r["result"] == "patched"]
    assert patched == ([line.expected] if line.expected else []), answer
    if line.expected is None:
        assert "deletes" in answer["message"]


def test_the_same_line_again_is_a_duplicate_and_a_changed_signature_401(receiver: str) -> None:
    github = LINES[0]
    assert _answer(_run(_as_written(github, receiver)))["outcome"] == "processed"
    assert _answer(_run(_as_written(github, receiver)))["outcome"] == "duplicate"
    tampered = _as_written(github, receiver).replace("sha256=abcee8", "sha256=abcee9")
    assert _run(tampered + " -o /dev/null -w '%{http_code}'") == "401"


def test_try_admission_refuses_the_misspelt_key(start_admission: Callable[..., service.Service]) -> None:
    admission = start_admission()
    command = _block("### Try admission").replace(ADMISSION, admission.admission + "/")
    command = command.replace("certs/ca.crt", admission.ca_file)
    review = json.loads(_run(command))
    assert review["response"]["uid"] == "try-1" and review["response"]["allowed"] is False
    message = review["response"]["status"]["message"]
    assert 'key "GitHub" is not a provider key (did you mean "github"?)' in message


def test_try_admission_defaults_the_polling_interval(start_admission: Callable[..., service.Service]) -> None:
    admission = start_admission()
    command = _block("### Try admission", 1).replace(ADMISSION, admission.admission + "/")
    patch = json.loads(_run(command.replace("certs/ca.crt", admission.ca_file)))
    assert patch == [{"op": "add", "path": "/spec/pollingInterval", "value": "1h"},
                     {"op": "add", "path": "/metadata/annotations",
                      "value": {"gitjob.fleet.cattle.io/polling-interval-defaulted": "true"}}]
