"""The VM agent scripts pass shellcheck and read only metadata attributes Terraform actually writes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.terraform_tree import INFRA, load_tree

AGENT = INFRA / "agent"
SCRIPTS = [pytest.param(AGENT / name, id=name) for name in ("startup.sh", "shutdown.sh")]
SHELLCHECK = Path(sys.executable).parent / "shellcheck"


@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck_is_clean(script: Path) -> None:
    result = subprocess.run(
        [str(SHELLCHECK), "--severity=style", "--shell=bash", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_reads_only_attributes_terraform_writes(script: Path) -> None:
    read = set(re.findall(r"(?:attribute |attributes/)(spotgate-[a-z-]+)", script.read_text(encoding="utf-8")))
    tree = load_tree()
    written = {
        key
        for vm in tree.resources("google_compute_instance")
        for key in vm.body["metadata"]
        if key.startswith("spotgate-")
    }
    assert read
    assert read <= written


def test_terraform_ships_both_scripts() -> None:
    for vm in load_tree().resources("google_compute_instance"):
        assert vm.body["metadata"]["startup-script"] == "${var.startup_script}"
        assert vm.body["metadata"]["shutdown-script"] == "${var.shutdown_script}"
    root = (INFRA / "main.tf").read_text(encoding="utf-8")
    assert 'file("${path.module}/agent/startup.sh")' in root
    assert 'file("${path.module}/agent/shutdown.sh")' in root


def test_agent_messages_use_the_control_message_shape() -> None:
    startup = (AGENT / "startup.sh").read_text(encoding="utf-8")
    shutdown = (AGENT / "shutdown.sh").read_text(encoding="utf-8")
    shape = '{"v":1,"kind":"%s","pool":"%s","instance":"%s","zone":"%s","at":"%s"}'
    assert shape in startup
    assert shape.replace('"kind":"%s"', '"kind":"draining"') in shutdown
    assert "publish ready" in startup
    for text in (startup, shutdown):
        assert 'PUBSUB="${SPOTGATE_PUBSUB_URL:-https://pubsub.googleapis.com/v1}"' in text
        assert '"${PUBSUB}/projects/${project}/topics/${topic}:publish"' in text
