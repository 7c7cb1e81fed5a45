"""checkov finds nothing in infra/, and every accepted finding is skipped in place with a written reason."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.infra.terraform_tree import INFRA, REPO

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    # One run per session (several seconds); offline: --skip-download keeps it from fetching guidelines.
    assert CHECKOV.is_file(), "checkov is installed by `make install` into .venv-checkov"
    result = subprocess.run(
        [str(CHECKOV), "-d", str(INFRA), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.stdout, result.stderr
    parsed = json.loads(result.stdout)
    reports = parsed if isinstance(parsed, list) else [parsed]
    return next(r for r in reports if r.get("check_type") == "terraform")


def test_no_failed_checks(report: dict[str, Any]) -> None:
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 50  # it really scanned the resources


def test_every_skip_has_a_reason(report: dict[str, Any]) -> None:
    skipped = report["results"]["skipped_checks"]
    assert skipped, "the accepted findings are expected to show up as skips"
    unexplained = [
        c["check_id"] for c in skipped if len(str(c.get("check_result", {}).get("suppress_comment", ""))) < 20
    ]
    assert unexplained == []
