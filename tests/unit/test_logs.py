"""Logs are JSON lines Cloud Logging can index, with the caller's fields at top level."""

from __future__ import annotations

import json
import logging

import pytest

from spotgate.logs import JsonFormatter


def _format(record: logging.LogRecord) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def test_record_becomes_one_json_object_with_severity_and_fields() -> None:
    logger = logging.getLogger("spotgate.test")
    record = logger.makeRecord("spotgate.test", logging.WARNING, "f.py", 1, "start %s", ("vm-1",), None)
    record.pool = "chat"
    entry = _format(record)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "start vm-1"
    assert entry["pool"] == "chat"


def test_exceptions_are_included() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("spotgate", logging.ERROR, "f.py", 1, "failed", None, sys.exc_info())
    entry = _format(record)
    assert "RuntimeError: boom" in str(entry["exception"])


@pytest.mark.parametrize("level", ["DEBUG", "INFO", "ERROR", "CRITICAL"])
def test_levels_map_to_cloud_logging_severities(level: str) -> None:
    record = logging.LogRecord("spotgate", getattr(logging, level), "f.py", 1, "x", None, None)
    assert _format(record)["severity"] == level
