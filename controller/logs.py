"""Structured logging: one JSON object (or one readable line) per event, fields passed as ``extra``.

Callers log with ``log.info("delivery", extra={"fields": {...}})``; the formatter puts those
fields next to the time, level and message. Secrets never reach a logger: callers pass names and
outcomes, never values or request bodies.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_CONFIGURED_NAME = "gitjob_webhook"


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Render a record as ``time level logger: message key=value ...`` for local use.

    A value that could pass for more than one field (a space, ``=``, a quote, a line break) or for
    none (empty), or that holds a terminal control character, is written as a JSON string, as
    logfmt readers expect.
    """

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        fields = " ".join(f"{key}={_text_value(value)}"
                          for key, value in getattr(record, "fields", {}).items())
        line = f"{stamp} {record.levelname.lower():<7} {record.name}: {record.getMessage()}"
        if fields:
            line += " " + fields
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


TERMINAL_CONTROLS = "\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff"
"""Characters a terminal or a line reader acts on, as the inside of a regex class: C0 and C1
controls, DEL, zero-width and direction marks, the line and paragraph separators, the bidirectional
overrides and isolates, and the byte-order mark."""
_BARE = re.compile(f"[^\\s=\"\\\\{TERMINAL_CONTROLS}]+")
_ESCAPE = re.compile(f"[{TERMINAL_CONTROLS}]")


def _text_value(value: Any) -> str:
    # As the JSON log has them, not as Python writes them: a list as its items joined by commas,
    # true/false, anything else nested as compact JSON.
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (list, tuple, set, frozenset)):
        text = ",".join(str(item) for item in value)
    elif isinstance(value, dict):
        text = json.dumps(value, separators=(",", ":"), default=str)
    else:
        text = str(value)
    if _BARE.fullmatch(text):
        return text
    return _ESCAPE.sub(lambda found: f"\\u{ord(found[0]):04x}", json.dumps(text, ensure_ascii=False))


def configure(log_format: str, level: str = "info") -> None:
    """Send every log record to stderr in the chosen format; idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "name", None) == _CONFIGURED_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.name = _CONFIGURED_NAME
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Neither formatter writes the caller's file and line, the thread or the process: not computing
    # them for each record makes a line about a fifth cheaper (the admission path logs every request).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # The kubernetes client logs every request at debug, and urllib3 each retry as a warning; the
    # service logs what fails itself, once per change of state.
    for noisy in ("urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def safe(value: str | None, limit: int = 64) -> str | None:
    """A value the client chose (a delivery id), fit for one log field: printable ASCII, cut short."""
    if value is None:
        return None
    cleaned = _UNPRINTABLE.sub("?", value[:limit])
    return cleaned + "…" if len(value) > limit else cleaned


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra`` argument carrying structured fields: ``log.info("x", extra=fields(a=1))``."""
    return {"fields": {key: value for key, value in values.items() if value is not None}}
