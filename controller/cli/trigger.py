"""``trigger``: send a signed generic delivery, from a CI job, a mirror or a Gerrit hook.

Signed the Standard Webhooks way with a fresh id and the current time, so the receiver can refuse a
replay; the secret (a ``whsec_`` value, the ``generic`` key of a webhook Secret) comes from
``--secret-file`` or ``GITJOB_WEBHOOK_TRIGGER_SECRET``, never from the command line, where ``ps``
would show it. Prints the receiver's answer (its first 64 KiB, control characters escaped); exits 0
only for a 2xx. ``--timeout`` bounds the whole exchange, not each read.
"""

from __future__ import annotations

import http.client
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
from controller.deadlines import Expired, within
from controller.logs import TERMINAL_CONTROLS
from controller.providers.standard_webhooks import decode_key, sign
from controller.settings import Settings

_COMMIT = re.compile(r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$")
_MAX_ANSWER = 64 * 1024
# Line breaks too: the answer is printed on one line.
_CONTROL = re.compile(f"[{TERMINAL_CONTROLS}]")


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
    timeout = arguments["timeout"]
    try:
        with within(timeout):
            try:
                with opener.open(request, timeout=timeout) as answer:
                    status, text = answer.status, _text(answer.read(_MAX_ANSWER + 1))
            except urllib.error.HTTPError as error:
                status, text = error.code, _text(error.read(_MAX_ANSWER + 1))
    except Expired:
        raise Failure(f"{arguments['url']}: no whole answer within {timeout:g} s (--timeout)") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        hint = ""
        if isinstance(reason, ssl.SSLCertVerificationError) and not arguments.get("cacert"):
            hint = " (a private CA: pass it with --cacert)"
        elif isinstance(reason, ssl.SSLError) and reason.reason == "WRONG_VERSION_NUMBER":
            # What OpenSSL says when the other end answers TLS with plain HTTP.
            reason, hint = "the server does not speak TLS on this port", " (plain HTTP: use an http:// URL)"
        raise Failure(f"{arguments['url']}: cannot deliver: {reason}{hint}") from None
    except http.client.HTTPException as error:   # an answer that is not HTTP: a status line, headers
        problem = _text(repr(error).encode())[:200]
        raise Failure(f"{arguments['url']}: not an HTTP answer: {problem}") from None
    except ValueError as error:   # http.client.InvalidURL, raised only once the request is made
        raise UsageError(f"--url {arguments['url']!r}: {error}") from None
    print(f"{status} {text}")
    return 0 if 200 <= status < 300 else 1


def _text(answer: bytes) -> str:
    """The answer for a terminal: at most 64 KiB, control characters (escape sequences) shown escaped."""
    text = answer[:_MAX_ANSWER].decode("utf-8", "replace").strip()
    text = _CONTROL.sub(lambda match: f"\\u{ord(match[0]):04x}" if ord(match[0]) > 0xFF
                        else f"\\x{ord(match[0]):02x}", text)
    return text + (" … (answer cut at 64 KiB)" if len(answer) > _MAX_ANSWER else "")


def _url(text: str) -> str:
    if _CONTROL.search(text) or any(character.isspace() for character in text):
        raise UsageError(f"--url {text!r}: spaces and control characters must be percent-encoded")
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 (raises for a port that is not a number)
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
