"""Settings: one frozen value built from command-line flags and ``GITJOB_WEBHOOK_*`` variables.

This module is the only reader of the environment. Every option has a flag ``--name`` and a
variable ``GITJOB_WEBHOOK_NAME``; a flag wins over the variable, the variable over the default.
A bad value raises :class:`SettingsError`, which the CLI turns into exit status 2 and one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from controller.fleet.durations import parse_go_duration_ns
from controller.fleet.secrets import CONTROLLER_NAMESPACE

ENV_PREFIX = "GITJOB_WEBHOOK_"

_SIZE = re.compile(r"^(\d+)\s*([KMG]i?B?|B)?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024,
               "m": 1000**2, "mb": 1000**2, "mi": 1024**2, "mib": 1024**2,
               "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3}


class SettingsError(Exception):
    """An option has a value it does not accept; the message names the option and what it accepts."""


@dataclass(frozen=True)
class Listen:
    """A host and port to bind."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


DEFAULT_LISTEN: Final = {"receiver": Listen("0.0.0.0", 8080), "admission": Listen("0.0.0.0", 8443)}
"""Where each listener binds unless told otherwise."""


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its command line and environment."""

    kubeconfig: str | None = None
    namespace: str = CONTROLLER_NAMESPACE
    gitrepos: str | None = None
    store: str = "auto"
    webhook_mode: str = "auto"
    webhook_polling_interval: str = "1h"
    missed_push_grace: str = "2m"
    log_format: str = "json"
    log_level: str = "info"
    listen: Listen | None = None
    receiver_listen: Listen = DEFAULT_LISTEN["receiver"]
    admission_listen: Listen = DEFAULT_LISTEN["admission"]
    tls_cert: str | None = None
    tls_key: str | None = None
    workers: int = 1
    threads: int = 8
    graceful_timeout: float = 20.0
    require_signature: bool = False
    max_body_size: int = 25 * 1024 * 1024
    rate_limit: float = 50.0
    rate_burst: int = 200
    trust_forwarded_for: bool = False
    trusted_proxies: int = 1
    max_in_flight: int = 64
    patch_deadline: float = 8.0
    request_timeout: float = 10.0
    resync_period: float = 600.0
    reconcile_period: float = 5.0
    receiver_service_account: str = "gitjob-webhook-receiver"
    # `trigger`'s secret: read from the environment only (a flag would show in `ps`), never printed.
    trigger_secret: str | None = field(default=None, repr=False)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (used to derive per-listener settings)."""
        return dataclasses.replace(self, **changes)


# Parsers: each takes the text and returns the value, or raises ValueError("what it accepts").

def _listen(text: str) -> Listen:
    host, sep, port = text.rpartition(":")
    # Port 0 lets the kernel choose; the "listening" log line then says which port it chose.
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError("HOST:PORT with a port from 0 to 65535")
    host = host.strip("[]") or "0.0.0.0"
    return Listen(host, int(port))


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return text
    return parse


def _go_duration(text: str) -> str:
    try:
        nanoseconds = parse_go_duration_ns(text)
    except ValueError as error:
        raise ValueError(f"a Go duration such as 1h, 30m or 1h30m ({error})") from None
    if nanoseconds < 0:
        raise ValueError("a Go duration that is not negative, such as 1h")
    return text


def _polling_interval(text: str) -> str:
    _go_duration(text)
    if parse_go_duration_ns(text) == 0:
        raise ValueError("a Go duration above zero, such as 1h (Fleet reads 0 as its 15 s default)")
    return text


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError("a whole number of at least 1")
    return int(text)


def _positive(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"a number of {what} greater than 0")
    return value


def _seconds(text: str) -> float:
    return _positive(text, "seconds")


def _per_second(text: str) -> float:
    return _positive(text, "deliveries per second")


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


def _size(text: str) -> int:
    match = _SIZE.match(text.strip())
    if not match or int(match.group(1)) < 1:
        raise ValueError("a size in bytes, optionally with a unit such as 512KiB or 25MiB")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()]


def _path(text: str) -> str:
    if not text.strip():
        raise ValueError("a file path")
    return text


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("a value that is not empty")
    return text


def _name(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", text):
        raise ValueError("a Kubernetes object name (lower-case letters, digits, '-' and '.')")
    return text


def _namespace(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", text):
        raise ValueError("a Kubernetes namespace name (lower-case letters, digits and '-')")
    return text


_PARSERS: dict[str, Callable[[str], Any]] = {
    "kubeconfig": _path,
    "namespace": _namespace,
    "gitrepos": _path,
    "store": _choice("auto", "kubernetes", "offline"),
    "webhook_mode": _choice("auto", "on", "off"),
    "webhook_polling_interval": _polling_interval,
    "missed_push_grace": _go_duration,
    "log_format": _choice("json", "text"),
    "log_level": _choice("debug", "info", "warning", "error"),
    "listen": _listen,
    "receiver_listen": _listen,
    "admission_listen": _listen,
    "tls_cert": _path,
    "tls_key": _path,
    "workers": _positive_int,
    "threads": _positive_int,
    "graceful_timeout": _seconds,
    "require_signature": _boolean,
    "max_body_size": _size,
    "rate_limit": _per_second,
    "rate_burst": _positive_int,
    "trust_forwarded_for": _boolean,
    "trusted_proxies": _positive_int,
    "max_in_flight": _positive_int,
    "patch_deadline": _seconds,
    "request_timeout": _seconds,
    "resync_period": _seconds,
    "reconcile_period": _seconds,
    "receiver_service_account": _name,
    "trigger_secret": _text,
}

_HELP: dict[str, str] = {
    "kubeconfig": "kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)",
    "namespace": "controller namespace holding the gitjob-webhook Secret (default cattle-fleet-system)",
    "gitrepos": "offline store: a YAML file of GitRepos and Secrets (with --store auto it wins over a "
                "configured cluster, with a warning)",
    "store": "auto (a cluster when one is configured, else offline), kubernetes or offline",
    "webhook_mode": "auto (on while the global Secret exists), on or off",
    "webhook_polling_interval": "polling interval given to GitRepos in webhook mode (default 1h)",
    "missed_push_grace": "how long a commit Fleet found by polling may wait for its webhook delivery "
                         "before it counts as a missed push (default 2m)",
    "log_format": "json or text (default json for serve, text for the other commands)",
    "log_level": "debug, info, warning or error",
    "listen": "HOST:PORT to listen on",
    "receiver_listen": "HOST:PORT of the receiver (serve all)",
    "admission_listen": "HOST:PORT of the admission server (serve all)",
    "tls_cert": "serving certificate (PEM) of the admission server; re-read when it changes",
    "tls_key": "private key (PEM) of the admission server; re-read when it changes",
    "workers": "gunicorn worker processes (default 1: one cache per process)",
    "threads": "threads per worker (default 8)",
    "graceful_timeout": "seconds in-flight requests get to finish on SIGTERM",
    "require_signature": "refuse deliveries that no secret authenticates (401)",
    "max_body_size": "largest delivery body accepted (default 25MiB)",
    "rate_limit": "failed or unauthenticated deliveries per second per source before 429 "
                  "(a delivery that verifies is never refused)",
    "rate_burst": "burst of failed or unauthenticated deliveries per source before 429",
    "trust_forwarded_for": "take the client address from X-Forwarded-For (only behind your Ingress)",
    "trusted_proxies": "proxies in front that append to X-Forwarded-For (default 1): the client is "
                       "that many entries from the right",
    "max_in_flight": "requests a worker holds at once, queued for a thread or being served, before it "
                     "answers 503 (default 64; probes and /metrics are served apart)",
    "patch_deadline": "seconds a status patch is retried before the delivery answers 503",
    "request_timeout": "seconds a client has to send a whole request (TLS handshake, headers, body) "
                       "before it is answered 408",
    "resync_period": "seconds between full relists of the watch-fed caches",
    "reconcile_period": "seconds between passes keeping GitRepos' polling in line with webhook mode",
    "receiver_service_account": "the receiver's ServiceAccount (controller namespace), granted read access "
                                "to exactly the Secrets GitRepos name",
}

_BOOLEAN_FLAGS = {"require_signature", "trust_forwarded_for"}


def env_name(option: str) -> str:
    """The environment variable of an option: ``webhook_mode`` → ``GITJOB_WEBHOOK_WEBHOOK_MODE``."""
    return ENV_PREFIX + option.upper()


def add_options(parser: argparse.ArgumentParser, options: tuple[str, ...],
                renamed: Mapping[str, str] | None = None) -> None:
    """Declare the given options on an argparse parser, with no defaults (resolved later).

    ``renamed`` gives some options another flag in this parser (``namespace`` →
    ``--controller-namespace`` where ``--namespace`` means something else); such a flag's value is
    checked as it is parsed, so that a bad one is reported under the flag the user typed.
    """
    renamed = renamed or {}
    for option in options:
        flag = renamed.get(option) or "--" + option.replace("_", "-")
        if option in _BOOLEAN_FLAGS:
            parser.add_argument(flag, dest=option, default=None, action="store_const", const="true",
                                help=_HELP[option])
        else:
            # A renamed flag's variable keeps the option's name: say so where the two differ.
            help_text = _HELP[option] + (f" (environment: {env_name(option)})" if option in renamed else "")
            parser.add_argument(flag, dest=option, default=None, metavar=option.split("_")[-1].upper(),
                                help=help_text, type=_checked(option) if option in renamed else str)


def _checked(option: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        try:
            _PARSERS[option](text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r} is not valid; expected {error}") from None
        return text
    return check


def build(arguments: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every option from flags, then the environment, then defaults, validating each."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option, parse in _PARSERS.items():
        raw = arguments.get(option)
        source = "--" + option.replace("_", "-")
        if raw is None:
            raw = environ.get(env_name(option))
            source = env_name(option)
        if raw is None:
            continue
        try:
            values[option] = parse(str(raw))
        except ValueError as error:
            raise SettingsError(f"{source}: {str(raw)!r} is not valid; expected {error}") from None
    return Settings(**values)
