"""``secret rotate`` and ``secret status``: change a webhook secret without losing a delivery.

``rotate`` keeps each current value of the provider's keys as ``<key>.previous``, writes a new random
value (or the one ``--from-file`` gives, as GitLab's signing tokens must be: GitLab makes them), and
sets the expiry annotation ``--overlap`` ahead. Until then the receiver accepts both values, so the
provider's settings can be updated at leisure; the new value is printed once, with what to do next.
``status`` says which keys exist, which are previous and until when; never a value.

The Secret is written with its resourceVersion (a concurrent change makes this fail, not lose it)
and through the admission webhook, which checks the result like any other write.
"""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from typing import Any

from controller.cli.errors import Failure, UsageError
from controller.fleet.durations import parse_go_duration
from controller.fleet.secrets import (GLOBAL_SECRET, MAX_OVERLAP, PREVIOUS_EXPIRY_ANNOTATION, PREVIOUS_SUFFIX,
                                      decode_data, parse_expiry, utc_now)
from controller.providers import NAMES, by_name
from controller.providers.base import Provider
from controller.settings import Settings
from controller.store import StoreError
from controller.store.kubeapi import ApiError, KubeApi, secrets_path

_NEW_BYTES = 32


def run(arguments: dict[str, Any], settings: Settings) -> int:
    """``secret rotate`` or ``secret status``."""
    # The arguments first: a mistake is reported without reaching for the cluster.
    rotation = _rotation(arguments) if arguments["action"] == "rotate" else None
    api = _api(settings)
    namespace = settings.namespace
    name = arguments.get("name") or GLOBAL_SECRET
    path = f"{secrets_path(namespace)}/{name}"
    try:
        secret = api.request("GET", path, timeout=10)
    except ApiError as error:
        raise Failure(f"Secret {namespace}/{name}: {error}") from None
    if rotation is None:
        print(_status(secret))
        return 0
    provider, overlap = rotation
    rotated, new_values = _rotated(secret, provider, overlap, arguments.get("from_file"),
                                   arguments.get("key"))
    try:
        api.request("PUT", path, body=rotated, timeout=10)
    except ApiError as error:
        raise Failure(f"Secret {namespace}/{name}: not rotated: {error}") from None
    expiry = rotated["metadata"]["annotations"][PREVIOUS_EXPIRY_ANNOTATION]
    print(f"Secret {namespace}/{name}: rotated {', '.join(new_values)}; the previous values are accepted "
          f"until {expiry}.")
    for key, value in new_values.items():
        if not arguments.get("from_file"):
            print(f"New value of {key} (shown once): {value}")
    print(f"Next: set the new value in {provider.where_to_set}, then send a test delivery; "
          f"`gitjob-webhook secret status` shows the rotation. The old value stops working at {expiry}.")
    return 0


def _rotation(arguments: dict[str, Any]) -> tuple[Provider, timedelta]:
    """The provider and overlap ``secret rotate`` was given; UsageError when either is wrong."""
    if not arguments["provider"]:
        raise UsageError(f"secret rotate needs --provider ({', '.join(NAMES)})")
    provider = by_name(arguments["provider"])
    if provider is None:
        raise UsageError(f"--provider {arguments['provider']!r} is not a provider ({', '.join(NAMES)})")
    only, from_file = arguments.get("key"), arguments.get("from_file")
    if only is not None and only not in provider.secret_keys:
        raise UsageError(f"--key {only!r} is not a {provider.name} key ({', '.join(provider.secret_keys)})")
    if only == "gitlab-signing" and not from_file:
        _new_value(only, provider, None)   # says where GitLab's signing token comes from
    if from_file:
        _new_value("", provider, from_file)   # readable, before the cluster is asked
    return provider, _overlap(arguments["overlap"])


def _api(settings: Settings) -> KubeApi:
    from controller.store.select import command_api
    try:
        return command_api(settings)
    except StoreError as error:
        raise UsageError(str(error)) from None


def _overlap(text: str) -> timedelta:
    try:
        seconds = parse_go_duration(text)
    except ValueError as error:
        raise UsageError(f"--overlap: {error}") from None
    if not 0 < seconds <= MAX_OVERLAP.total_seconds():
        raise UsageError(f"--overlap {text}: longer than 0s and at most {MAX_OVERLAP.days * 24}h")
    return timedelta(seconds=seconds)


def _rotated(secret: dict[str, Any], provider: Provider, overlap: timedelta, from_file: str | None,
             only: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The Secret with the provider's keys rotated, and the new value of each (as text)."""
    values = decode_data(secret).values
    raw_expiry = (secret.get("metadata", {}).get("annotations") or {}).get(PREVIOUS_EXPIRY_ANNOTATION)
    expiry = parse_expiry(raw_expiry)
    under_way = any(key.endswith(PREVIOUS_SUFFIX) for key in values)
    if under_way and (expiry is None or expiry > utc_now()):
        raise Failure(f"a rotation is already under way (previous keys until {raw_expiry}): wait for it to "
                      f"end, or remove the {PREVIOUS_SUFFIX} keys")
    if only is not None and only not in provider.secret_keys:
        raise UsageError(f"--key {only!r} is not a {provider.name} key ({', '.join(provider.secret_keys)})")
    keys = [key for key in provider.secret_keys
            if key in values and (only is None or key == only or _pair_of(key, only, provider))]
    if not keys:
        raise Failure(f"the Secret has no {provider.name} key to rotate "
                      f"({' or '.join(provider.secret_keys)})")
    changing = [key for key in keys if not _kept(key, provider)]
    if from_file and len(changing) > 1:
        raise UsageError(f"--from-file sets one value; pick the key with --key ({', '.join(changing)})")
    new_values = {key: _new_value(key, provider, from_file) for key in keys if not _kept(key, provider)}
    # Previous keys of an ended rotation go: they no longer count, and one rotation at a time.
    data = {key: value for key, value in (secret.get("data") or {}).items()
            if not key.endswith(PREVIOUS_SUFFIX)}
    for key in keys:
        data[key + PREVIOUS_SUFFIX] = base64.b64encode(values[key]).decode()
        if key in new_values:
            data[key] = base64.b64encode(new_values[key].encode()).decode()
    rotated = dict(secret)
    rotated.pop("stringData", None)
    rotated["data"] = data
    metadata = dict(rotated.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    annotations[PREVIOUS_EXPIRY_ANNOTATION] = (utc_now() + overlap).strftime("%Y-%m-%dT%H:%M:%SZ")
    metadata["annotations"] = annotations
    rotated["metadata"] = metadata
    return rotated, new_values


def _pair_of(key: str, other: str, provider: Provider) -> bool:
    return any(key in pair and other in pair for pair in provider.key_pairs)


def _kept(key: str, provider: Provider) -> bool:
    # A pair rotates together (its previous values stay a pair), but the user name need not change.
    return any(key == pair[0] for pair in provider.key_pairs)


def _new_value(key: str, provider: Provider, from_file: str | None) -> str:
    if from_file:
        try:
            with open(from_file, encoding="utf-8") as handle:
                return handle.read().strip()
        except OSError as error:
            raise UsageError(f"--from-file {from_file}: cannot read: {error.strerror}") from None
    if key == "gitlab-signing":
        raise UsageError("GitLab makes signing tokens: regenerate it in the webhook's settings and pass it "
                         "with --from-file")
    if key in provider.whsec_keys:
        return "whsec_" + base64.b64encode(secrets.token_bytes(_NEW_BYTES)).decode()
    return secrets.token_urlsafe(_NEW_BYTES)


def _status(secret: dict[str, Any]) -> str:
    metadata = secret.get("metadata") or {}
    values = decode_data(secret).values
    raw = (metadata.get("annotations") or {}).get(PREVIOUS_EXPIRY_ANNOTATION)
    expiry = parse_expiry(raw)
    previous = sorted(key for key in values if key.endswith(PREVIOUS_SUFFIX))
    lines = [f"Secret {metadata.get('namespace')}/{metadata.get('name')}",
             f"  keys: {', '.join(sorted(k for k in values if not k.endswith(PREVIOUS_SUFFIX))) or '(none)'}"]
    if not previous:
        lines.append("  no rotation under way")
    elif expiry is None:
        lines.append(f"  previous: {', '.join(previous)} (no valid {PREVIOUS_EXPIRY_ANNOTATION}: ignored)")
    else:
        state = "accepted until" if expiry > utc_now() else "expired at"
        lines.append(f"  previous: {', '.join(previous)}, {state} {raw}")
    return "\n".join(lines)
