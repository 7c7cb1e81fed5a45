"""Module input validations reject what the APIs would reject at apply time (issue 13, findings 5 and 9).

A module's ``variables.tf`` needs no provider, so the real Terraform CLI evaluates it offline with
``terraform console`` and runs every validation ``plan`` would run when the root module passes these values in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.terraform_tree import INFRA

ANSI = re.compile(r"\x1b\[[0-9;]*m")

BASE: dict[str, dict[str, Any]] = {
    "gateway": {
        "project": "my-spotgate-project",
        "region": "us-central1",
        "project_number": "412345678901",
        "image": "us-docker.pkg.dev/cloudrun/container/hello",
        "service_account": "spotgate-gateway@my-spotgate-project.iam.gserviceaccount.com",
        "environment": {},
        "vpc_connector": "projects/p/locations/us-central1/connectors/spotgate-conn",
        "network": "projects/p/global/networks/spotgate-vpc",
    },
    "gpu_pool": {
        "project": "my-spotgate-project",
        "pool": "chat",
        "vms": [{"name": "chat-a-1", "zone": "us-central1-a", "provisioning_model": "SPOT"}],
        "machine_type": "g2-standard-8",
        "gpu_type": "nvidia-l4",
        "gpu_count": 1,
        "boot_image": "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11-py310",
        "disk_size_gb": 200,
        "disk_type": "pd-balanced",
        "subnetwork": "projects/p/regions/us-central1/subnetworks/spotgate-vms",
        "service_account": "spotgate-vm@my-spotgate-project.iam.gserviceaccount.com",
        "controller": "serviceAccount:spotgate-controller@my-spotgate-project.iam.gserviceaccount.com",
        "instance_role": "projects/my-spotgate-project/roles/spotgateInstanceOperator",
        "startup_script": "#!/bin/bash",
        "shutdown_script": "#!/bin/bash",
        "agent": {
            "project": "my-spotgate-project",
            "control_topic": "spotgate-control",
            "port": 8000,
            "health_path": "/health",
            "engine_image": "vllm/vllm-openai:v0.8.5",
            "engine_args": [],
            "models_bucket": "b",
            "model_path": "m/1",
            "drain_seconds": 20,
            "notice_seconds": 30,
        },
    },
    "overflow": {
        "project": "my-spotgate-project",
        "region": "us-central1",
        "service": "chat-overflow",
        "pool": "chat",
        "image": "vllm/vllm-openai:v0.8.5",
        "args": [],
        "models_bucket": "b",
        "service_account": "spotgate-overflow@my-spotgate-project.iam.gserviceaccount.com",
        "invoker": "serviceAccount:spotgate-gateway@my-spotgate-project.iam.gserviceaccount.com",
        "controller": "serviceAccount:spotgate-controller@my-spotgate-project.iam.gserviceaccount.com",
        "scaler_role": "projects/my-spotgate-project/roles/spotgateOverflowScaler",
    },
}


def evaluate(tmp_path: Path, module: str, overrides: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    terraform = shutil.which("terraform")
    assert terraform, "the Terraform CLI must be on PATH"
    shutil.copy(INFRA / "modules" / module / "variables.tf", tmp_path / "variables.tf")
    variables = {**BASE[module], **overrides}
    (tmp_path / "input.auto.tfvars.json").write_text(json.dumps(variables), encoding="utf-8")
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    expression = " ".join(f"var.{name}" for name in overrides) or "var.project"
    return subprocess.run(
        [terraform, "console"],
        input=f"jsonencode([{', '.join(expression.split())}])\n",
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _agent(**changes: Any) -> dict[str, Any]:
    return {"agent": {**BASE["gpu_pool"]["agent"], **changes}}


ACCEPTED = [
    pytest.param("gateway", {"cpu": "2", "memory": "1Gi"}, id="gateway-default-shape"),
    pytest.param("gateway", {"cpu": "4", "memory": "2Gi"}, id="gateway-4-cpu-2gi"),
    pytest.param("gateway", {"cpu": "8", "memory": "4096Mi"}, id="gateway-8-cpu-4096mi"),
    pytest.param("gpu_pool", _agent(drain_seconds=20, notice_seconds=30), id="drain-fits-spot-notice"),
    pytest.param("gpu_pool", _agent(drain_seconds=50, notice_seconds=60), id="drain-fits-longer-notice"),
    pytest.param("gpu_pool", {"machine_type": "g2-standard-24", "gpu_count": 2}, id="g2-standard-24-two-gpus"),
    pytest.param("overflow", {"gpu_type": "nvidia-l4", "cpu": "4", "memory": "16Gi"}, id="l4-minimum"),
    pytest.param("overflow", {"gpu_type": "nvidia-rtx-pro-6000", "cpu": "20", "memory": "80Gi"}, id="rtx-minimum"),
]


@pytest.mark.parametrize(("module", "overrides"), ACCEPTED)
def test_valid_inputs_are_accepted(tmp_path: Path, module: str, overrides: dict[str, Any]) -> None:
    result = evaluate(tmp_path, module, overrides)

    output = ANSI.sub("", result.stdout + result.stderr)
    assert result.returncode == 0, output
    assert "Invalid value for variable" not in output


REJECTED = [
    pytest.param("gateway", {"cpu": "4", "memory": "1Gi"}, "below Cloud Run's minimum", id="gateway-4-cpu-1gi"),
    pytest.param("gateway", {"cpu": "8", "memory": "2Gi"}, "below Cloud Run's minimum", id="gateway-8-cpu-2gi"),
    pytest.param(
        "gpu_pool", _agent(drain_seconds=25, notice_seconds=30), "drain_seconds + 10 <= notice", id="drain-25-of-30"
    ),
    pytest.param(
        "gpu_pool", {"machine_type": "g2-standard-24", "gpu_count": 1}, "must match the G2", id="g2-24-with-one-gpu"
    ),
    pytest.param(
        "gpu_pool", {"machine_type": "g2-standard-8", "gpu_count": 4}, "must match the G2", id="g2-8-with-four-gpus"
    ),
    pytest.param("overflow", {"gpu_type": "nvidia-a100"}, "gpu_type must be", id="unknown-cloud-run-gpu"),
    pytest.param(
        "overflow", {"gpu_type": "nvidia-rtx-pro-6000", "cpu": "8", "memory": "80Gi"}, "cpu must be", id="rtx-8-cpu"
    ),
    pytest.param(
        "overflow",
        {"gpu_type": "nvidia-rtx-pro-6000", "cpu": "20", "memory": "32Gi"},
        "memory must be",
        id="rtx-32gi",
    ),
]


@pytest.mark.parametrize(("module", "overrides", "message"), REJECTED)
def test_inputs_the_api_would_refuse_fail_at_plan(
    tmp_path: Path, module: str, overrides: dict[str, Any], message: str
) -> None:
    result = evaluate(tmp_path, module, overrides)

    # A validation that reads another variable is checked while the console evaluates, so the console reports
    # it (where `plan` fails) but still exits 0; the diagnostic is what counts.
    errors = " ".join(ANSI.sub("", result.stdout + result.stderr).split())
    assert "Error: Invalid value for variable" in errors
    assert message in errors
