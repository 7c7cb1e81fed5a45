"""The deployed dependency lists are exactly the lock's runtime set (``make requirements`` regenerates them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"


def _pins(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize(
    ("target", "flags"),
    [
        pytest.param("functions/requirements.txt", ["--no-hashes"], id="cloud-functions"),
        pytest.param("run_service/requirements.txt", ["--format", "requirements.txt"], id="gateway-image"),
    ],
)
def test_requirements_match_the_lock(target: str, flags: list[str]) -> None:
    assert UV.exists(), "uv is installed by `make install`"
    exported = subprocess.run(
        [str(UV), "export", "--frozen", "--no-dev", "--no-emit-project", "--quiet", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert _pins((ROOT / target).read_text()) == _pins(exported), f"{target} is stale: run `make requirements`"


def test_function_requirements_carry_what_the_functions_import() -> None:
    pins = (ROOT / "functions" / "requirements.txt").read_text()
    for package in (
        "functions-framework==",
        "google-cloud-compute==",
        "google-cloud-run==",
        "google-cloud-firestore==",
    ):
        assert package in pins
