"""The recorded provider payloads of tests/fixtures/providers, with the headers SOURCES.md gives them.

Each fixture is delivered with the headers the upstream library test sends (the "headers in
upstream test" column of SOURCES.md), plus what the real provider also sends where that
column is silent: see `SUPPLEMENTED_HEADERS` and `with_real_headers`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from controller.providers.base import lower_headers

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "providers"
SOURCES = FIXTURES / "SOURCES.md"

# Rows whose header column says "(not used by upstream tests)" or "(none besides Content-Type)":
# the header the real provider sends for that event.
SUPPLEMENTED_HEADERS = {
    "gitlab/job-event.json": {"X-Gitlab-Event": "Job Hook"},
    "bitbucket-server/pr-comment-added.json": {"X-Event-Key": "pr:comment:added"},
    "azuredevops/build.complete.json": {"X-Vss-ActivityId": "fixture-activity"},
    "azuredevops/git.pullrequest.created.json": {"X-Vss-ActivityId": "fixture-activity"},
    "azuredevops/git.pullrequest.merged.json": {"X-Vss-ActivityId": "fixture-activity"},
    "azuredevops/git.pullrequest.updated.json": {"X-Vss-ActivityId": "fixture-activity"},
    "azuredevops/git.push.json": {"X-Vss-ActivityId": "fixture-activity"},
}

# Which provider each fixture folder belongs to (PushEvent.provider).
PROVIDER_OF_FOLDER = {
    "github": "github",
    "gitlab": "gitlab",
    "bitbucket": "bitbucket",
    "bitbucket-server": "bitbucket-server",
    "gogs": "gogs",
    "gitea": "gitea",
    "azuredevops": "azure-devops",
}

_ROW = re.compile(r"^\| (?P<file>[a-z-]+/[^|*]+\.json) \|(?P<cells>.*)\|\s*$")


@dataclass(frozen=True)
class Delivery:
    """One fixture file as a delivery: its name, lower-cased headers and exact bytes."""

    name: str
    headers: dict[str, str]
    body: bytes

    @property
    def folder(self) -> str:
        """The fixture folder (upstream provider name)."""
        return self.name.split("/", 1)[0]

    @property
    def provider(self) -> str:
        """The provider this delivery must be detected as."""
        return PROVIDER_OF_FOLDER[self.folder]


def _sources_headers() -> dict[str, dict[str, str]]:
    """File → headers, from the files table of SOURCES.md (five columns, headers in the fourth)."""
    table: dict[str, dict[str, str]] = {}
    for line in SOURCES.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match is None:
            continue
        cells = [cell.strip() for cell in match["cells"].split("|")]
        if len(cells) != 4:
            continue
        headers: dict[str, str] = {}
        for pair in cells[2].split(";"):
            name, colon, value = pair.partition(":")
            if colon and name.strip().lower().startswith("x-"):
                headers[name.strip()] = value.strip()
        table[match["file"]] = headers
    return table


def with_real_headers(name: str, headers: dict[str, str]) -> dict[str, str]:
    """The headers a real provider sends with this fixture (JSON content type; Gitea's Gogs copies)."""
    real = {"Content-Type": "application/json", **headers, **SUPPLEMENTED_HEADERS.get(name, {})}
    if name.startswith("gitea/"):
        # Real Gitea sends its ancestors' headers too; Fleet relies on X-Gogs-Event.
        real["X-Gogs-Event"] = real["X-Gitea-Event"]
        real["X-GitHub-Event"] = real["X-Gitea-Event"]
    return real


def load_deliveries() -> list[Delivery]:
    """Every fixture file, sorted by name."""
    headers = _sources_headers()
    files = sorted(path.relative_to(FIXTURES).as_posix() for path in FIXTURES.rglob("*.json"))
    return [
        Delivery(
            name=name,
            headers=lower_headers(with_real_headers(name, headers.get(name, {})).items()),
            body=(FIXTURES / name).read_bytes(),
        )
        for name in files
    ]


DELIVERIES = load_deliveries()
"""Every fixture as a delivery."""
BY_NAME = {delivery.name: delivery for delivery in DELIVERIES}
"""Deliveries by fixture name (``folder/file.json``)."""


def fixture(name: str) -> Delivery:
    """The delivery of one fixture."""
    return BY_NAME[name]
