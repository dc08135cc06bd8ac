"""The npm ``standardwebhooks`` package as an oracle: signatures and verdicts from an implementation
that is not ours (tests/interop, installed by ``make test``)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from support.paths import TESTS

INTEROP = TESTS / "interop"


@dataclass(frozen=True)
class Signed:
    """What a Standard Webhooks sender signs."""

    secret: str   # whsec_…
    id: str
    timestamp: int
    body: bytes


def _node(script: str, lines: Sequence[Mapping[str, object]]) -> list[str]:
    node = shutil.which("node")
    assert node is not None, "node is needed (the machine has Node.js)"
    assert (INTEROP / "node_modules" / "standardwebhooks").is_dir(), \
        "run `make test` (it installs tests/interop with npm ci) first"
    text = "".join(json.dumps(line) + "\n" for line in lines)
    run = subprocess.run([node, str(INTEROP / script)], input=text, capture_output=True, text=True,
                         timeout=60, check=True)
    return run.stdout.splitlines()


def npm_signatures(messages: Sequence[Signed]) -> list[str]:
    """The ``webhook-signature`` value the npm package makes for each message."""
    return _node("sign.js", [{"secret": m.secret, "id": m.id, "timestamp": m.timestamp,
                              "body_base64": base64.b64encode(m.body).decode()} for m in messages])


def npm_verdict(secret: str, headers: Mapping[str, str], body: bytes) -> str:
    """``ok``, or the npm package's reason for refusing the delivery."""
    return _node("verify.js", [{"secret": secret, "headers": dict(headers),
                                "body_base64": base64.b64encode(body).decode()}])[0]
