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


def test_every_logger_of_the_process_writes_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from spotgate.logs import configure_logging

    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        configure_logging("INFO")
        logging.getLogger("gateway.proxy").warning("backend unreachable", extra={"backend": "vm-1"})
        logging.getLogger("gateway.access").info("access", extra={"status": 200})
        logging.getLogger("urllib3.connectionpool").warning("pool full")
        logging.getLogger("urllib3.connectionpool").info("chatty library detail")
    finally:
        root.handlers[:], root.level = before
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["logger"], e["message"]) for e in lines] == [
        ("gateway.proxy", "backend unreachable"),
        ("gateway.access", "access"),
        ("urllib3.connectionpool", "pool full"),
    ]
    assert lines[0]["backend"] == "vm-1"


def test_configuring_again_writes_to_the_stderr_of_now(capsys: pytest.CaptureFixture[str]) -> None:
    """A second configure_logging (another entry point in the same process) must not leave records going to
    the stderr of the first call, which may since have been replaced."""
    import io
    import sys

    from spotgate.logs import configure_logging

    root = logging.getLogger()
    before = list(root.handlers), root.level
    stale = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # like the capture pytest closes after a test
    try:
        real, sys.stderr = sys.stderr, stale
        try:
            configure_logging("INFO")
        finally:
            sys.stderr = real
        stale.close()
        configure_logging("INFO")
        json_handlers = [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]
        logging.getLogger("spotgate.test").warning("after the second call")
    finally:
        root.handlers[:], root.level = before
    assert len(json_handlers) == 1
    assert json.loads(capsys.readouterr().err.splitlines()[-1])["message"] == "after the second call"
