"""``trigger``: send a signed generic delivery, from a CI job, a mirror or a Gerrit hook.

Signed the Standard Webhooks way with a fresh id and the current time, so the receiver can refuse a
replay; the secret (a ``whsec_`` value, the ``generic`` key of a webhook Secret) comes from
``--secret-file`` or ``GITJOB_WEBHOOK_TRIGGER_SECRET``, never from the command line, where ``ps``
would show it. Prints the receiver's answer; exits 0 only for a 2xx.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from controller.cli.errors import Failure, UsageError
from controller.providers.standard_webhooks import decode_key, sign
from controller.settings import Settings

_COMMIT = re.compile(r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")


def run(arguments: dict[str, Any], settings: Settings) -> int:
    """Sign and send one delivery; print the answer."""
    url = _url(arguments["url"])
    key = _key(arguments, settings)
    body = _body(arguments)
    message_id = "msg_" + secrets.token_hex(12)
    stamp = int(time.time())
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "User-Agent": "gitjob-webhook-trigger",
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(key, message_id, stamp, body),
    })
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=_tls(arguments.get("cacert"))),
                                         _NoRedirects())
    try:
        with opener.open(request, timeout=arguments["timeout"]) as answer:
            status, text = answer.status, answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise Failure(f"{arguments['url']}: cannot deliver: {reason}") from None
    print(f"{status} {text.strip()}")
    return 0 if 200 <= status < 300 else 1


def _url(text: str) -> str:
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as error:
        raise UsageError(f"--url {text!r}: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url {text!r}: an http:// or https:// URL of the receiver")
    return text


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (a failure), never followed: following it would send the signed
    delivery to wherever the first server says, and exit 0 for that server's 2xx."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _tls(cacert: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=cacert)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or error
        raise UsageError(f"--cacert {cacert}: cannot read: {reason}") from None


def _key(arguments: dict[str, Any], settings: Settings) -> bytes:
    path = arguments.get("secret_file")
    if path:
        try:
            with open(path, "rb") as handle:
                value = handle.read().strip()
        except OSError as error:
            raise UsageError(f"--secret-file {path}: cannot read: {error.strerror}") from None
        source = f"--secret-file {path}"
    elif settings.trigger_secret:
        value, source = settings.trigger_secret.encode(), "GITJOB_WEBHOOK_TRIGGER_SECRET"
    else:
        raise UsageError("no secret: pass --secret-file FILE or set GITJOB_WEBHOOK_TRIGGER_SECRET "
                         "(the `generic` key of the webhook Secret)")
    key = decode_key(value)
    if key is None:
        raise UsageError(f"{source}: not a Standard Webhooks secret (whsec_ followed by base64)")
    return key


def _body(arguments: dict[str, Any]) -> bytes:
    if arguments["event"] == "ping":
        return json.dumps({"event": "ping"}).encode()
    missing = [f"--{name}" for name in ("repository", "ref", "commit") if not arguments.get(name)]
    if missing:
        raise UsageError(f"a push names {', '.join(missing)}")
    if not arguments["ref"].startswith("refs/"):
        raise UsageError(f"--ref {arguments['ref']!r}: a full ref such as refs/heads/main or refs/tags/v1.2")
    if not _COMMIT.match(arguments["commit"]):
        raise UsageError(f"--commit {arguments['commit']!r}: a commit SHA of 40 or 64 hexadecimal characters")
    return json.dumps({"repository": arguments["repository"], "ref": arguments["ref"],
                       "commit": arguments["commit"].lower()}).encode()
