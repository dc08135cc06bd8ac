"""The command line: subcommands and their options (the options themselves live in ``settings``)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from controller import __version__, providers, settings
from controller.certs.issue import DEFAULT_SERVICE
from controller.cli.errors import UsageError

COMMON = ("kubeconfig", "namespace", "gitrepos", "store", "webhook_mode", "webhook_polling_interval",
          "log_format", "log_level")
SERVING = ("workers", "threads", "graceful_timeout", "resync_period", "reconcile_period", "request_timeout")
RECEIVING = ("require_signature", "max_body_size", "rate_limit", "rate_burst", "trust_forwarded_for",
             "trusted_proxies", "max_in_flight", "patch_deadline")
TLS = ("tls_cert", "tls_key")


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
    _serve(commands.add_parser("serve", help="run the receiver, the admission server, or both"))
    _certs(commands.add_parser("certs", help="create or renew the CA and serving certificate"))
    _explain(commands.add_parser("explain", help="which GitRepos a delivery would patch, and why not"))
    return parser


def _serve(serve: argparse.ArgumentParser) -> None:
    listeners = serve.add_subparsers(dest="listener", required=True, parser_class=_Parser,
                                     metavar="{receiver,admission,all}")
    receiver = listeners.add_parser("receiver", help="plain-HTTP receiver of provider deliveries")
    settings.add_options(receiver, ("listen",) + COMMON + SERVING + RECEIVING)
    admission = listeners.add_parser("admission", help="HTTPS admission webhooks")
    settings.add_options(admission, ("listen",) + TLS + COMMON + SERVING + ("require_signature",))
    both = listeners.add_parser("all", help="both listeners, for local use")
    settings.add_options(both, ("receiver_listen", "admission_listen") + TLS + COMMON + SERVING + RECEIVING)


def _certs(certs: argparse.ArgumentParser) -> None:
    certs.add_argument("action", nargs="?", choices=["inject"],
                       help="inject: write the CA into the webhook configurations' caBundle")
    certs.add_argument("--out", default="certs",
                       help="directory for ca.crt, tls.crt, tls.key (default certs)")
    certs.add_argument("--service", default=DEFAULT_SERVICE, help="admission Service name")
    certs.add_argument("--host", action="append", default=[], help="another name or IP to cover")
    certs.add_argument("--ca", help="inject: CA certificate file (default OUT/ca.crt)")
    settings.add_options(certs, ("kubeconfig", "namespace", "log_format", "log_level"))


def _explain(explain: argparse.ArgumentParser) -> None:
    explain.add_argument("--provider", required=True, help=", ".join(providers.NAMES))
    explain.add_argument("--payload", required=True, help="the delivery body (a file)")
    explain.add_argument("--header", action="append", default=[], metavar="K=V",
                         help="a delivery header, e.g. X-GitHub-Event=push (repeatable)")
    settings.add_options(explain, COMMON)
