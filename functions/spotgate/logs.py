"""Structured logs: one JSON object per line, the shape Cloud Logging indexes.

``severity`` and ``message`` are the fields Cloud Logging maps; any ``extra={...}`` given to a logging call
(pool, instance, action, reason, …) becomes a top-level field, so a query like
``jsonPayload.pool="chat"`` finds every decision about a pool.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_SEVERITY = {"WARNING": "WARNING", "CRITICAL": "CRITICAL", "ERROR": "ERROR", "INFO": "INFO", "DEBUG": "DEBUG"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with ``severity``, ``message``, ``logger``, ``time`` and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelname, "DEFAULT"),
            "message": record.getMessage(),
            "logger": record.name,
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


# Loggers of this project, logged at the configured level; every other logger (libraries) at WARNING.
OWN_LOGGERS = ("spotgate", "gateway")


def configure_logging(level: str = "INFO") -> None:
    """Send every log record of the process to stderr as JSON lines (idempotent).

    The handler sits on the root logger, so the gateway's modules and the libraries (google-auth, urllib3,
    gunicorn's ``gunicorn.error`` once it propagates) are formatted like spotgate's own records, instead of
    reaching Python's plain-text last-resort handler.
    """
    root = logging.getLogger()
    for kept in [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]:
        # Idempotent, but always to the stderr of now: a handler kept from an earlier call would go on writing
        # to a stream that was since replaced (a closed capture, a redirected stderr), so it is replaced, not
        # flushed or closed (its stream may be closed already, and is not ours to close).
        root.removeHandler(kept)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    _skip_unused_record_fields()
    for name in OWN_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = True


def _skip_unused_record_fields() -> None:
    """Records need not look up their caller's file and line, thread or process: no JSON line carries them.

    These are the switches the logging HOWTO ("Optimization") names for it. The caller lookup walks the
    stack for every record; the gateway writes one access line per request, and these lookups were about a
    quarter of its cost (13 of ~55 µs, measured in process under gevent).
    """
    logging._srcfile = None  # the HOWTO's documented way to skip the caller lookup
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
