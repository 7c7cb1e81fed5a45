"""``spotgate preflight`` against the sandbox: the real CLI, Terraform evaluating the example tfvars, the real
google-cloud-compute clients and REST calls, answered by the sandbox's project API.

The example deployment passes; each deliberately broken condition fails with its own message and fix.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from spotgate.cli import main
from spotgate.fleet import load_fleet
from spotgate.sandbox.compute.project_api import ProjectModel, create_project_app
from spotgate.sandbox.devstack.cloud import SandboxCloud
from spotgate.sandbox.devstack.http_server import LocalServer
from spotgate.sandbox.devstack.state import SandboxState, write_state
from tests.infra.terraform_tree import INFRA, REPO

EXAMPLE_TFVARS = INFRA / "examples" / "terraform.tfvars"
FAMILY = {"project": "deeplearning-platform-release", "family": "common-cu124-debian-11-py310"}


@pytest.fixture
def project_api() -> Iterator[str]:
    """The sandbox's project API for the example fleet (project spotgate-local), alone: no VMs needed."""
    model = ProjectModel.for_fleet(load_fleet(REPO / "examples" / "fleet.yaml"))
    server = LocalServer(create_project_app(model), name="sandbox-project")
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def tfvars(tmp_path: Path) -> Path:
    """The example tfvars, for the sandbox's project."""
    text = EXAMPLE_TFVARS.read_text(encoding="utf-8").replace('"my-spotgate-project"', '"spotgate-local"', 1)
    path = tmp_path / "terraform.tfvars"
    path.write_text(text, encoding="utf-8")
    return path


def preflight(url: str, tfvars: Path, *args: str) -> Result:
    assert shutil.which("terraform"), "the Terraform CLI must be on PATH"
    env = {"SPOTGATE_MODE": "sandbox", "SPOTGATE_COMPUTE_ENDPOINT": url, "COLUMNS": "200"}  # rows on one line
    return CliRunner(env=env).invoke(main, ["preflight", "--var-file", str(tfvars), "--infra", str(INFRA), *args])


def rows(result: Result) -> dict[str, tuple[str, str]]:
    """check -> (PASS/WARN/FAIL, detail and fix), from ``--json`` (the last line is click's error, if any)."""
    text = result.stdout
    return {r["check"]: (r["status"], f"{r['detail']} {r['fix']}") for r in json.loads(text[: text.rindex("]") + 1])}


def control(url: str, body: dict[str, Any]) -> None:
    requests.post(f"{url}/sandbox/project", json=body, timeout=10).raise_for_status()


def test_the_example_deployment_passes(project_api: str, tfvars: Path) -> None:
    result = preflight(project_api, tfvars, "--json")

    assert result.exit_code == 0, result.output
    table = rows(result)
    assert {status for status, _ in table.values()} == {"PASS"}, result.output
    assert "need 4, 16 available in us-central1" in table["quota PREEMPTIBLE_NVIDIA_L4_GPUS at creation"][1]
    assert "need 3," in table["quota PREEMPTIBLE_NVIDIA_L4_GPUS at max_ready"][1]
    assert "need 5," in table["quota GPUS_ALL_REGIONS at creation"][1]
    assert table["image family deeplearning-platform-release/common-cu124-debian-11-py310"][0] == "PASS"
    assert table["machine type g2-standard-8 in us-central1-c"][0] == "PASS"
    assert table["Cloud Run nvidia-l4 in us-central1"][0] == "PASS"


def test_the_table_shows_every_check_and_the_verdict(project_api: str, tfvars: Path) -> None:
    control(project_api, {"disable_api": "iam.googleapis.com"})

    result = preflight(project_api, tfvars)

    assert result.exit_code == 1
    flat = " ".join(result.output.replace("│", " ").split())
    assert "spotgate preflight: project spotgate-local, region us-central1" in flat
    assert "API iam.googleapis.com FAIL" in flat
    assert "gcloud services enable iam.googleapis.com" in flat
    assert "1 check(s) failed" in result.output


BROKEN = [
    pytest.param(
        {"quota": {"region": "us-central1", "metric": "PREEMPTIBLE_NVIDIA_L4_GPUS", "limit": 3}},
        "quota PREEMPTIBLE_NVIDIA_L4_GPUS at creation",
        ["need 4, 3 available in us-central1", "-parallelism=1"],
        id="quota-below-creation-need",
    ),
    pytest.param(
        {"quota": {"region": "us-central1", "metric": "NVIDIA_L4_GPUS", "limit": 1, "usage": 1}},
        "quota NVIDIA_L4_GPUS at max_ready",
        ["need 1, 0 available in us-central1", "request more NVIDIA_L4_GPUS"],
        id="on-demand-quota-used-up",
    ),
    pytest.param(
        {"remove_image_family": FAMILY},
        "image family deeplearning-platform-release/common-cu124-debian-11-py310",
        ["no such image family", "set host.image_family"],
        id="missing-image-family",
    ),
    pytest.param(
        {"disable_api": "iam.googleapis.com"},
        "API iam.googleapis.com",
        ["disabled", "gcloud services enable iam.googleapis.com --project spotgate-local"],
        id="api-disabled",
    ),
    pytest.param(
        {"remove_machine_type": {"zone": "us-central1-b", "machine_type": "g2-standard-4"}},
        "machine type g2-standard-4 in us-central1-b",
        ["not offered in this zone", "pick another host.machine_type"],
        id="machine-type-not-in-zone",
    ),
    pytest.param(
        {"org_policy": {"constraint": "run.managed.requireInvokerIam", "spec": {"rules": [{"enforce": True}]}}},
        "org policy run.managed.requireInvokerIam",
        ["API-key clients would get 403", "ask the org admin for an exception"],
        id="invoker-iam-required",
    ),
    pytest.param(
        {
            "org_policy": {
                "constraint": "gcp.resourceLocations",
                "spec": {"rules": [{"values": {"allowedValues": ["in:eu-locations"]}}]},
            }
        },
        "org policy gcp.resourceLocations",
        ["us-central1 is not among the allowed locations", "deploy to an allowed region"],
        id="region-not-allowed",
    ),
]


@pytest.mark.parametrize(("breakage", "check", "expected"), BROKEN)
def test_each_broken_condition_fails_with_its_message_and_fix(
    project_api: str, tfvars: Path, breakage: dict[str, Any], check: str, expected: list[str]
) -> None:
    control(project_api, breakage)

    result = preflight(project_api, tfvars, "--json")

    assert result.exit_code == 1, result.output
    table = rows(result)
    assert table[check][0] == "FAIL", result.output
    for fragment in expected:
        assert fragment in table[check][1], table[check]
    failed = [c for c, (status, _) in table.items() if status == "FAIL"]
    assert failed == [c for c in table if c.startswith(check.rsplit(" at ", 1)[0]) and c in failed]
    assert check in failed


def test_with_compute_disabled_the_reads_through_it_say_so(project_api: str, tfvars: Path) -> None:
    """GCE answers 403 SERVICE_DISABLED to every call while its API is off; preflight says to enable it first."""
    control(project_api, {"disable_api": "compute.googleapis.com"})

    table = rows(preflight(project_api, tfvars, "--json"))

    assert table["API compute.googleapis.com"][0] == "FAIL"
    assert "gcloud services enable compute.googleapis.com" in table["API compute.googleapis.com"][1]
    for check in ("GPU quota", "boot image families", "machine types"):
        status, text = table[check]
        assert status == "FAIL"
        assert "SERVICE_DISABLED" in text or "has not been used" in text, text
        assert "enable the API it needs first" in text


def test_project_overrides_the_tfvars_project(project_api: str) -> None:
    """The unmodified example tfvars (project my-spotgate-project) checked against the sandbox's project."""
    result = preflight(project_api, EXAMPLE_TFVARS, "--project", "spotgate-local", "--json")

    assert result.exit_code == 0, result.output
    assert {status for status, _ in rows(result).values()} == {"PASS"}


def test_a_tfvars_terraform_rejects_is_reported_not_probed(project_api: str, tfvars: Path) -> None:
    tfvars.write_text(
        tfvars.read_text(encoding="utf-8").replace('machine_type = "g2-standard-8"', 'machine_type = "g2-standard-24"'),
        encoding="utf-8",
    )

    result = preflight(project_api, tfvars)

    assert result.exit_code == 1
    assert "Terraform rejected" in result.output
    assert "Traceback" not in result.output
    assert "must match the G2 machine type" in " ".join(result.output.split())


def test_the_running_sandbox_answers_preflight(compute_cloud: SandboxCloud, tfvars: Path) -> None:
    """What `make dev` runs serves the same calls on its compute URL (SPOTGATE_COMPUTE_ENDPOINT in dev.env)."""
    result = preflight(compute_cloud.compute_url, tfvars, "--json")

    assert result.exit_code == 0, result.output
    assert {status for status, _ in rows(result).values()} == {"PASS"}


def test_the_sandbox_cli_breaks_the_project_for_preflight(
    compute_cloud: SandboxCloud, tfvars: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    write_state(state_dir, SandboxState(endpoints=compute_cloud.endpoints()))

    changed = CliRunner().invoke(
        main, ["sandbox", "project", '{"disable_api": "iam.googleapis.com"}', "--state-dir", str(state_dir)]
    )
    refused = CliRunner().invoke(main, ["sandbox", "project", "[1]", "--state-dir", str(state_dir)])

    assert changed.exit_code == 0, changed.output
    assert "project changed: disable_api" in changed.output
    assert refused.exit_code != 0
    assert "must be a JSON object" in refused.output
    assert rows(preflight(compute_cloud.compute_url, tfvars, "--json"))["API iam.googleapis.com"][0] == "FAIL"
