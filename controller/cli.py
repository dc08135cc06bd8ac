"""The ``gitjob-webhook`` command: serve the listeners, make certificates, explain a delivery.

Every failure the user can fix ends with one line on stderr and exit status 2 (bad option, file
or certificate) or 1 (a runtime failure such as a port in use); never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from controller import __version__, settings as settings_module
from controller.settings import Settings, SettingsError

log = logging.getLogger("gitjob_webhook")

COMMON = ("kubeconfig", "namespace", "gitrepos", "store", "webhook_mode", "webhook_polling_interval",
          "log_format", "log_level")
SERVING = ("workers", "threads", "graceful_timeout", "resync_period", "reconcile_period")
RECEIVING = ("require_signature", "max_body_size", "rate_limit", "rate_burst", "trust_forwarded_for",
             "patch_deadline", "body_timeout")
TLS = ("tls_cert", "tls_key")


class UsageError(Exception):
    """Bad command line; exit status 2."""


class Failure(Exception):
    """A runtime failure; exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), not usage plus error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = _Parser(prog="gitjob-webhook", description="Git push webhooks and admission control "
                                                        "for Rancher Fleet GitRepos.")
    parser.add_argument("--version", action="version", version=f"gitjob-webhook {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                     metavar="{serve,certs,explain}")

    serve = commands.add_parser("serve", help="run the receiver, the admission server, or both")
    listeners = serve.add_subparsers(dest="listener", required=True, parser_class=_Parser,
                                     metavar="{receiver,admission,all}")
    receiver = listeners.add_parser("receiver", help="plain-HTTP receiver of provider deliveries")
    settings_module.add_options(receiver, ("listen",) + COMMON + SERVING + RECEIVING)
    admission = listeners.add_parser("admission", help="HTTPS admission webhooks")
    settings_module.add_options(admission, ("listen",) + TLS + COMMON + SERVING + ("require_signature",))
    both = listeners.add_parser("all", help="both listeners, for local use")
    settings_module.add_options(both, ("receiver_listen", "admission_listen") + TLS + COMMON + SERVING
                                + RECEIVING)

    certs = commands.add_parser("certs", help="create or renew the CA and serving certificate")
    certs.add_argument("action", nargs="?", choices=["inject"],
                       help="inject: write the CA into the webhook configurations' caBundle")
    certs.add_argument("--out", default="certs",
                       help="directory for ca.crt, tls.crt, tls.key (default certs)")
    certs.add_argument("--service", default="gitjob-webhook-admission", help="admission Service name")
    certs.add_argument("--host", action="append", default=[], help="another name or IP to cover")
    certs.add_argument("--ca", help="inject: CA certificate file (default OUT/ca.crt)")
    settings_module.add_options(certs, ("kubeconfig", "namespace", "log_format", "log_level"))

    explain = commands.add_parser("explain", help="which GitRepos a delivery would patch, and why not")
    explain.add_argument("--provider", required=True, help="github, gitlab, bitbucket, bitbucket-server, "
                                                           "gogs, gitea, forgejo or azure-devops")
    explain.add_argument("--payload", required=True, help="the delivery body (a file)")
    explain.add_argument("--header", action="append", default=[], metavar="K=V",
                         help="a delivery header, e.g. X-GitHub-Event=push (repeatable)")
    settings_module.add_options(explain, COMMON)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m controller``."""
    try:
        arguments = vars(build_parser().parse_args(argv))
        settings = settings_module.build(arguments)
        from controller import logs
        logs.configure(settings.log_format, settings.log_level)
        return _dispatch(arguments, settings)
    except (UsageError, SettingsError) as error:
        return _fail(2, str(error))
    except Failure as error:
        return _fail(1, str(error))
    except KeyboardInterrupt:
        return 130


def _fail(status: int, message: str) -> int:
    print(f"gitjob-webhook: error: {message}", file=sys.stderr)
    return status


def _dispatch(arguments: dict[str, Any], settings: Settings) -> int:
    command = arguments["command"]
    if command == "certs":
        from controller.commands import certs_command
        return certs_command(arguments, settings)
    if command == "explain":
        from controller.commands import explain_command
        return explain_command(arguments, settings)
    if arguments["listener"] == "all":
        return serve_all(settings)
    from controller.commands import serve_command
    return serve_command(arguments["listener"], settings)


def serve_all(settings: Settings) -> int:
    """Start ``serve receiver`` and ``serve admission`` as two children; stop both when one stops."""
    from controller.commands import check_serving
    for name, listen in (("receiver", settings.receiver_listen), ("admission", settings.admission_listen)):
        store, _ = check_serving(name, settings.replace(listen=listen))
        store.stop()
    environment = dict(os.environ)
    environment.update(child_environment(settings))
    children = {
        name: subprocess.Popen([sys.executable, "-m", "controller", "serve", name,
                                "--listen", str(listen)], env=environment)
        for name, listen in (("receiver", settings.receiver_listen),
                             ("admission", settings.admission_listen))
    }

    def forward(signum: int, _frame: Any) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    try:
        finished = _wait_any(list(children.values()))
        status = finished.returncode or 0
    finally:
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=settings.graceful_timeout + 5)
            except subprocess.TimeoutExpired:
                child.kill()
    return status if status >= 0 else 0


def _wait_any(children: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Block until one child exits (children are few; os.wait reaps whichever ends first)."""
    while True:
        for child in children:
            if child.poll() is not None:
                return child
        try:
            pid, status = os.wait()
        except ChildProcessError:
            continue
        except InterruptedError:
            continue
        for child in children:
            if child.pid == pid:
                child.returncode = os.waitstatus_to_exitcode(status)
                return child


def child_environment(settings: Settings) -> dict[str, str]:
    """The settings that differ from the defaults, as ``GITJOB_WEBHOOK_*`` variables for a child."""
    defaults = Settings()
    variables = {}
    for name in Settings.__dataclass_fields__:
        value = getattr(settings, name)
        if name in ("listen", "receiver_listen", "admission_listen") or value == getattr(defaults, name):
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        variables[settings_module.env_name(name)] = text
    return variables
