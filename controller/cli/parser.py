"""The command line: subcommands and their options (the options themselves live in ``settings``)."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from controller import __version__, providers, settings
from controller.certs.issue import DEFAULT_SERVICE
from controller.cli.errors import UsageError

COMMON = ("kubeconfig", "namespace", "gitrepos", "store", "webhook_mode", "webhook_polling_interval",
          "log_format", "log_level")
SERVING = ("workers", "threads", "graceful_timeout", "resync_period", "reconcile_period", "request_timeout",
           "max_in_flight")
RECEIVING = ("require_signature", "max_body_size", "rate_limit", "rate_burst", "trust_forwarded_for",
             "trusted_proxies", "patch_deadline")
TLS = ("tls_cert", "tls_key")


_UNRECOGNIZED = "unrecognized arguments: "


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2), not usage plus error; options are
    never abbreviated (``trigger --secret VALUE`` would be read as ``--secret-file`` and the error
    would repeat the secret), and an unknown option's value is not repeated either."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        if message.startswith(_UNRECOGNIZED):
            tokens = message[len(_UNRECOGNIZED):].split()
            names = [token.split("=", 1)[0] for token in tokens if token.startswith("-")]
            message = _UNRECOGNIZED + " ".join(names or tokens)
            if "--secret" in names:
                message += " (a secret never goes on the command line: GITJOB_WEBHOOK_TRIGGER_SECRET or " \
                           "--secret-file)"
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line."""
    parser = _Parser(prog="gitjob-webhook", description="Git push webhooks and admission control "
                                                        "for Rancher Fleet GitRepos.")
    parser.add_argument("--version", action="version", version=f"gitjob-webhook {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                     metavar="{serve,certs,explain,status,trigger,secret}")
    _serve(commands.add_parser("serve", help="run the receiver, the admission server, or both"))
    _certs(commands.add_parser("certs", help="create or renew the CA and serving certificate"))
    _explain(commands.add_parser("explain", help="which GitRepos a delivery would patch, and why not"))
    _status(commands.add_parser("status", help="webhook health of every GitRepo, one line each"))
    _trigger(commands.add_parser("trigger", help="send a signed generic delivery (CI, a mirror, a hook)"))
    _secret(commands.add_parser("secret", help="rotate a webhook secret with an overlap; show rotations"))
    return parser


def _serve(serve: argparse.ArgumentParser) -> None:
    listeners = serve.add_subparsers(dest="listener", required=True, parser_class=_Parser,
                                     metavar="{receiver,admission,all}")
    receiver = listeners.add_parser("receiver", help="plain-HTTP receiver of provider deliveries")
    settings.add_options(receiver, ("listen",) + COMMON + SERVING + RECEIVING)
    admission = listeners.add_parser("admission", help="HTTPS admission webhooks")
    settings.add_options(admission, ("listen",) + TLS + COMMON + SERVING
                         + ("require_signature", "missed_push_grace"))
    both = listeners.add_parser("all", help="both listeners, for local use")
    settings.add_options(both, ("receiver_listen", "admission_listen") + TLS + COMMON + SERVING + RECEIVING
                         + ("missed_push_grace",))


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


def _status(status: argparse.ArgumentParser) -> None:
    # -n means the GitRepos' namespace, as in kubectl; the controller namespace (--namespace of the
    # other commands, GITJOB_WEBHOOK_NAMESPACE) is --controller-namespace here.
    scope = status.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", dest="gitrepo_namespace", metavar="NAMESPACE",
                       help="only the GitRepos of this namespace")
    scope.add_argument("-A", "--all-namespaces", action="store_true",
                       help="the GitRepos of every namespace (the default)")
    status.add_argument("-o", "--output", choices=("wide", "json", "yaml"),
                        help="wide: also the commits and the last poll; json or yaml: everything, as data")
    status.add_argument("-l", "--selector", metavar="SELECTOR",
                        help="only GitRepos whose labels match, e.g. app=web,tier!=db")
    settings.add_options(status, COMMON + ("missed_push_grace",),
                         renamed={"namespace": "--controller-namespace"})


def _trigger(trigger: argparse.ArgumentParser) -> None:
    trigger.add_argument("--url", required=True, help="the receiver, e.g. https://fleet.example.com/")
    trigger.add_argument("--repository", help="the repository's clone or web URL")
    trigger.add_argument("--ref", help="refs/heads/BRANCH or refs/tags/TAG")
    trigger.add_argument("--commit", help="the commit SHA the ref now points at")
    trigger.add_argument("--event", choices=("push", "ping"), default="push",
                         help="push (default) or ping, to check the secret and the route")
    trigger.add_argument("--secret-file", help="file holding the whsec_ secret (else "
                                               "GITJOB_WEBHOOK_TRIGGER_SECRET)")
    trigger.add_argument("--cacert", help="CA certificate file to verify an https URL with")
    trigger.add_argument("--timeout", type=_seconds, default=15.0,
                         help="seconds the whole exchange may take (default 15)")
    settings.add_options(trigger, ("log_format", "log_level"))


def _secret(secret: argparse.ArgumentParser) -> None:
    secret.add_argument("action", choices=("rotate", "status"),
                        help="rotate: new value, old one kept until the overlap ends; status: show it")
    secret.add_argument("--provider", help=f"rotate: whose keys ({', '.join(providers.NAMES)})")
    secret.add_argument("--key", help="rotate only this key of the provider (e.g. gitlab-signing)")
    secret.add_argument("--overlap", default="24h",
                        help="how long the previous value stays accepted (Go duration, at most 720h)")
    secret.add_argument("--from-file", help="the new value, when the provider makes it (GitLab's signing "
                                            "token)")
    secret.add_argument("--name", help="the Secret's name (default gitjob-webhook)")
    settings.add_options(secret, ("kubeconfig", "namespace", "log_format", "log_level"))


def _seconds(text: str) -> float:
    """A positive, finite number of seconds (argparse type: a bad value is a usage error)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r}: more than 0 and at most 3600 seconds")
    return value
