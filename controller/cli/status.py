"""``status``: one line per GitRepo with its webhook health, like ``kubectl get``; writes nothing.

Also ``kubectl gitjob-webhook status`` (the console script ``kubectl-gitjob_webhook``). The STATE
rules are :mod:`controller.fleet.health`'s; everything here but :func:`run` is pure: rows from the
GitRepos, then text (table, summary) or data (JSON, YAML) from the rows.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Final

import yaml

from controller.cli.errors import Failure, UsageError
from controller.fleet import health
from controller.fleet.durations import parse_go_duration
from controller.fleet.gitrepos import GitRepo
from controller.fleet.secrets import GLOBAL_SECRET
from controller.fleet.selectors import Requirement, matches, parse_selector
from controller.fleet.urls import repo_key
from controller.fleet.webhook_mode import WebhookMode, resolve_webhook_mode
from controller.settings import Settings
from controller.store import SecretUnknown, Store, StoreError, timestamp
from controller.store.select import StoreNotReady, synced_once

NONE: Final = "<none>"  # kubectl's word for an empty cell

COLUMNS: Final = ("NAMESPACE", "NAME", "REPO", "TRACKS", "MODE", "POLLING", "SECRET", "LAST DELIVERY",
                  "STATE")
WIDE_COLUMNS: Final = ("COMMIT", "WEBHOOK COMMIT", "POLLED COMMIT", "LAST POLL")

_WHY: Final = {"on/flag": "--webhook-mode on", "off/flag": "--webhook-mode off",
               "auto/global-secret": "global Secret", "auto/gitrepo-secret": "own Secret",
               "auto/no-secret": "no Secret"}
_COLOURS: Final = {health.IN_SYNC: "32", health.WEBHOOK_PENDING: "36", health.MISSED_PUSH: "1;31",
                   health.NEVER_RECEIVED: "33", health.NO_WEBHOOK: "2"}
FLEET_DEFAULT_INTERVAL = "15s"  # what Fleet polls at when spec.pollingInterval is unset

SecretLookup = Callable[[str, str], bool | None]
"""(namespace, name) → whether the Secret exists; None when it cannot be read."""


@dataclass(frozen=True)
class Row:
    """One GitRepo as the view shows it."""

    gitrepo: GitRepo
    mode: WebhookMode
    secret: str
    state: str


def rows(gitrepos: Iterable[GitRepo], *, webhook_mode: str, global_secret_exists: bool,
         secret_exists: SecretLookup, now: float, grace: float) -> list[Row]:
    """Every GitRepo's row, sorted by namespace and name."""
    result = []
    for gitrepo in sorted(gitrepos, key=lambda g: (g.namespace, g.name)):
        mode = resolve_webhook_mode(gitrepo.webhook_secret, webhook_mode=webhook_mode,
                                    global_secret_exists=global_secret_exists)
        result.append(Row(gitrepo, mode, _secret(gitrepo, global_secret_exists, secret_exists),
                          health.state(gitrepo, webhook_mode_active=mode.active, now=now, grace=grace)))
    return result


def select(gitrepos: Iterable[GitRepo], namespace: str | None,
           requirements: tuple[Requirement, ...]) -> list[GitRepo]:
    """The GitRepos of ``namespace`` (all when None) whose labels meet the selector."""
    return [g for g in gitrepos
            if (namespace is None or g.namespace == namespace) and matches(requirements, g.labels)]


def _secret(gitrepo: GitRepo, global_secret_exists: bool, secret_exists: SecretLookup) -> str:
    if gitrepo.webhook_secret:
        exists = secret_exists(gitrepo.namespace, gitrepo.webhook_secret)
        return "unknown" if exists is None else ("own" if exists else "missing")
    return "global" if global_secret_exists else "none"


def age(seconds: float) -> str:
    """A duration the way ``kubectl get`` shows ages: ``45s``, ``3m10s``, ``5h``, ``12d``."""
    total = max(0, int(seconds))
    minutes, hours, days = total // 60, total // 3600, total // 86400
    if total < 120:
        return f"{total}s"
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if days < 2:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def polling(gitrepo: GitRepo) -> str:
    """The interval Fleet polls at, and whether this service chose it."""
    if gitrepo.disable_polling:
        return "disabled"
    if gitrepo.polling_interval is None:
        return f"{FLEET_DEFAULT_INTERVAL} (Fleet default)"
    interval = gitrepo.polling_interval
    return f"{interval} (defaulted)" if gitrepo.polling_defaulted else interval


def cells(row: Row, now: float, wide: bool) -> list[str]:
    """The table cells of one row."""
    gitrepo = row.gitrepo
    delivered = gitrepo.last_webhook_time
    line = [gitrepo.namespace, gitrepo.name, repo_key(gitrepo.repo) or gitrepo.repo, gitrepo.tracks,
            f"{'webhook' if row.mode.active else 'polling'} ({_WHY.get(row.mode.source, row.mode.source)})",
            polling(gitrepo), row.secret, NONE if delivered is None else age(now - delivered), row.state]
    if wide:
        polled = gitrepo.last_polling_time
        line += [gitrepo.commit[:7] or NONE, gitrepo.webhook_commit[:7] or NONE,
                 gitrepo.polling_commit[:7] or NONE, NONE if polled is None else age(now - polled)]
    return line


def summary(states: Iterable[str]) -> str:
    """``5 GitRepos: 2 in sync, 1 webhook pending, 1 missed push, 1 never received, 0 no webhook``."""
    counts = Counter(states)
    total = sum(counts.values())
    parts = ", ".join(f"{counts[state]} {state}" for state in health.STATES)
    return f"{total} GitRepo{'' if total == 1 else 's'}: {parts}"


def table(view: Sequence[Row], now: float, wide: bool = False, colour: bool = False) -> str:
    """The aligned table (three spaces between columns, as kubectl) and the summary line."""
    header = list(COLUMNS + WIDE_COLUMNS if wide else COLUMNS)
    lines = [header] + [cells(row, now, wide) for row in view]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    state_column = COLUMNS.index("STATE")
    text = []
    for number, line in enumerate(lines):
        padded = [cell.ljust(width) for cell, width in zip(line, widths)]
        if colour and number > 0:
            # Widths are counted without the escape codes, which take no room on a terminal.
            state = line[state_column]
            padding = padded[state_column][len(state):]
            padded[state_column] = f"\033[{_COLOURS[state]}m{state}\033[0m{padding}"
        text.append("   ".join(padded).rstrip())
    text.append(summary(row.state for row in view))
    return "\n".join(text) + "\n"


def data(view: Sequence[Row]) -> dict[str, Any]:
    """The view as plain data for ``-o json`` and ``-o yaml``."""
    def moment(seconds: float | None) -> str | None:
        return None if seconds is None else timestamp(datetime.fromtimestamp(seconds, timezone.utc))

    items = [{
        "namespace": row.gitrepo.namespace, "name": row.gitrepo.name, "repo": row.gitrepo.repo,
        "tracks": row.gitrepo.tracks, "webhookMode": row.mode.active, "webhookModeSource": row.mode.source,
        "pollingInterval": row.gitrepo.polling_interval, "pollingDefaulted": row.gitrepo.polling_defaulted,
        "disablePolling": row.gitrepo.disable_polling, "secret": row.secret,
        "lastWebhookTime": moment(row.gitrepo.last_webhook_time), "webhookCommit": row.gitrepo.webhook_commit,
        "commit": row.gitrepo.commit, "pollingCommit": row.gitrepo.polling_commit,
        "lastPollingTriggered": moment(row.gitrepo.last_polling_time), "state": row.state,
    } for row in view]
    counts = Counter(row.state for row in view)
    return {"gitrepos": items, "summary": {state: counts[state] for state in health.STATES}}


def run(arguments: dict[str, Any], settings: Settings) -> int:
    """Print the status of the GitRepos ``-n``/``-A`` and ``--selector`` choose."""
    try:
        requirements = parse_selector(arguments.get("selector") or "")
    except ValueError as error:
        raise UsageError(f"--selector: {error}") from None
    namespace = None if arguments.get("all_namespaces") else arguments.get("gitrepo_namespace")
    now = time.time()
    try:
        with synced_once(settings) as store:
            view = _view(store, settings, namespace, requirements, now)
    except SecretUnknown as error:
        raise Failure(f"webhook mode cannot be told: {error}") from None
    except StoreError as error:
        raise UsageError(str(error)) from None
    except StoreNotReady as error:
        raise Failure(str(error)) from None
    output = arguments.get("output")
    if output == "json":
        sys.stdout.write(json.dumps(data(view), indent=2) + "\n")
    elif output == "yaml":
        sys.stdout.write(yaml.safe_dump(data(view), sort_keys=False))
    elif not view:
        where = f" in namespace {namespace}" if namespace else ""
        print(f"No GitRepos found{where}{' matching ' + arguments['selector'] if requirements else ''}.",
              file=sys.stderr)
    else:
        # NO_COLOR (no-color.org): any non-empty value turns colour off.
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        sys.stdout.write(table(view, now, wide=output == "wide", colour=colour))
    return 0


def _view(store: Store, settings: Settings, namespace: str | None,
          requirements: tuple[Requirement, ...], now: float) -> list[Row]:
    global_secret_exists = store.secret(settings.namespace, GLOBAL_SECRET) is not None

    def secret_exists(secret_namespace: str, name: str) -> bool | None:
        try:
            return store.secret(secret_namespace, name) is not None
        except SecretUnknown:
            return None

    return rows(select(store.gitrepos(), namespace, requirements), webhook_mode=settings.webhook_mode,
                global_secret_exists=global_secret_exists, secret_exists=secret_exists, now=now,
                grace=parse_go_duration(settings.missed_push_grace))
