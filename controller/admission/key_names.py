"""Near-miss key names of the webhook Secret, and the fix to suggest for each.

Derived from the provider registry: the keys, each provider's aliases and other names, and which
providers share or split keys. A wrong key name makes every delivery fail verification, so the
denial says which key was meant.
"""

from __future__ import annotations

import difflib
import re
from typing import Final

from controller.providers import KEY_ALIASES, PROVIDERS, SECRET_KEYS
from controller.providers.base import Provider

__all__ = ["suggest_key"]

_SEPARATORS = re.compile(r"[-_.\s]+")
# Words people append to a provider name: "github-token", "gitlab_webhook_secret".
_COUNTS: Final = {2: "two", 3: "three"}
_LONGEST_MISTAKE: Final = 64
"""Keys longer than this get no suggestion."""
_SUFFIX_WORDS: Final = ("token", "secret", "key", "webhook", "hmac", "hook", "password", "pass", "signature")


def _keys_sentence(providers: list[Provider]) -> str:
    titles = [provider.title for provider in providers]
    who = titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]
    verb = "uses" if len(titles) == 1 else "use"
    keys = providers[0].secret_keys
    if len(keys) == 1:
        return f'{who} {verb} the "{keys[0]}" key'
    count = _COUNTS.get(len(keys), str(len(keys)))
    quoted = ", ".join(f'"{key}"' for key in keys[:-1]) + f' and "{keys[-1]}"'
    return f"{who} {verb} {count} keys, {quoted}"


def _named_provider_hint(squashed: str) -> str | None:
    """For a provider whose keys are not simply its name (Gitea, Azure DevOps), which keys it uses."""
    for provider in PROVIDERS:
        if provider.name in provider.secret_keys:
            continue
        names = (provider.name.replace("-", ""), *provider.nicknames)
        if any(name in squashed for name in names):
            sharing = [other for other in PROVIDERS[::-1] if other.secret_keys == provider.secret_keys
                       and other.name not in other.secret_keys]
            return _keys_sentence(sharing)
    return None


def suggest_key(key: str) -> str | None:
    """A hint for a key that is not allowed: ``did you mean "github"?`` or a sentence; None if no idea."""
    if len(key) > _LONGEST_MISTAKE:
        return None   # no misspelt provider key is this long, and guessing at megabytes costs seconds
    lowered = key.strip().lower()
    dashed = _SEPARATORS.sub("-", lowered).strip("-")
    squashed = dashed.replace("-", "")
    if dashed in SECRET_KEYS:
        return f'did you mean "{dashed}"?'
    if dashed.endswith("-previous") and dashed[:-len("-previous")] in SECRET_KEYS:
        return f'did you mean "{dashed[:-len("-previous")]}.previous"?'
    for allowed in SECRET_KEYS:
        if squashed == allowed.replace("-", ""):
            return f'did you mean "{allowed}"?'
    if squashed in KEY_ALIASES:
        return f'did you mean "{KEY_ALIASES[squashed]}"?'
    hint = _named_provider_hint(squashed)
    if hint is not None:
        return hint
    words = dashed.split("-")
    # Longest key first, so "bitbucket-server-token" is not taken for "bitbucket".
    for allowed in sorted(SECRET_KEYS, key=len, reverse=True):
        head = allowed.split("-")
        rest = words[len(head):]
        if words[: len(head)] == head and all(word in _SUFFIX_WORDS for word in rest):
            return f'did you mean "{allowed}"? (the key is the provider name alone)'
    close = difflib.get_close_matches(dashed, SECRET_KEYS, n=1, cutoff=0.6)
    return f'did you mean "{close[0]}"?' if close else None
