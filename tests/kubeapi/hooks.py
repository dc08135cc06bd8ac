"""Test hooks: injected failures and delays, and the request log."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from .errors import ApiError

_MESSAGES = {429: "Too many requests, please try again later.", 500: "Internal error occurred: injected",
             503: "the server is currently unable to handle the request", 504: "Timeout: request did not "
             "complete within requested timeout - context deadline exceeded"}


@dataclass(frozen=True)
class RequestRecord:
    """One served request, as the tests see it."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    status: int
    body: Any  # parsed JSON (or YAML for apply patches), None when empty or unparsable
    user: str | None = None


@dataclass
class _Rule:
    method: str
    pattern: re.Pattern[str]
    remaining: int | None  # None = forever
    status: int = 0
    retry_after: int | None = None
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and bool(self.pattern.search(path)) \
            and (self.remaining is None or self.remaining > 0)


class Hooks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._log: list[RequestRecord] = []

    def fail_next(self, method: str, path_regex: str, status: int, count: int = 1,
                  retry_after: int | None = None) -> None:
        with self._lock:
            self._failures.append(_Rule(method.upper(), re.compile(path_regex), count, status, retry_after))

    def delay(self, method: str, path_regex: str, seconds: float, count: int | None = None) -> None:
        with self._lock:
            self._delays.append(_Rule(method.upper(), re.compile(path_regex), count, seconds=seconds))

    def _take(self, rules: list[_Rule], method: str, path: str) -> _Rule | None:
        with self._lock:
            for rule in rules:
                if rule.matches(method, path):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
        return None

    def delay_for(self, method: str, path: str) -> float:
        rule = self._take(self._delays, method, path)
        return rule.seconds if rule else 0.0

    def failure_for(self, method: str, path: str) -> ApiError | None:
        rule = self._take(self._failures, method, path)
        if rule is None:
            return None
        headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
        details: dict[str, Any] = {}
        if rule.retry_after is not None:
            details["retryAfterSeconds"] = rule.retry_after
        return ApiError(rule.status, _MESSAGES.get(rule.status, f"injected failure {rule.status}"),
                        details=details, headers=headers)

    def record(self, rec: RequestRecord) -> None:
        with self._lock:
            self._log.append(rec)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def clear(self) -> None:
        with self._lock:
            self._failures.clear()
            self._delays.clear()
            self._log.clear()
