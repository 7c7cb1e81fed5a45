"""The fleet Terraform renders into SPOTGATE_FLEET is a valid FleetConfig and is examples/fleet.yaml's fleet.

``infra/fleet.tf`` and ``infra/variables.tf`` need no provider, so the real Terraform CLI evaluates them
offline with ``terraform console``: the variable validations run for real and the JSON is exactly what the
functions and the gateway receive. Only the overflow URLs (known after the services exist) are stubbed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from spotgate.fleet import FleetConfig, PoolSpec, load_fleet
from tests.infra.terraform_tree import INFRA, REPO

EXAMPLE_TFVARS = INFRA / "examples" / "terraform.tfvars"
OVERFLOW_URL = "https://chat-overflow-4k2j7x.a.run.app"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Console:
    """``terraform console`` over a copy of the provider-free part of infra/."""

    def __init__(self, directory: Path, terraform: str) -> None:
        self._directory = directory
        self._terraform = terraform

    def evaluate(self, expression: str, variables: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        var_file = self._directory / "input.auto.tfvars.json"
        var_file.write_text(json.dumps(variables), encoding="utf-8")
        env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
        return subprocess.run(
            [self._terraform, "console"],
            input=expression + "\n",
            cwd=self._directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def value(self, expression: str, variables: dict[str, Any]) -> Any:
        result = self.evaluate(f"jsonencode({expression})", variables)
        assert result.returncode == 0, ANSI.sub("", result.stderr)
        return json.loads(json.loads(result.stdout))


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Console:
    terraform = shutil.which("terraform")
    assert terraform, "the Terraform CLI must be on PATH (cloudbuild.yaml copies it from hashicorp/terraform)"
    directory = tmp_path_factory.mktemp("fleet")
    for name in ("variables.tf", "fleet.tf"):
        shutil.copy(INFRA / name, directory / name)
    (directory / "overflow_urls.tf").write_text(
        f'locals {{\n  overflow_urls = {{ chat = "{OVERFLOW_URL}" }}\n}}\n', encoding="utf-8"
    )
    return Console(directory, terraform)


def example_variables() -> dict[str, Any]:
    options = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    parsed: dict[str, Any] = hcl2.loads(EXAMPLE_TFVARS.read_text(encoding="utf-8"), serialization_options=options)
    return parsed


@pytest.fixture(scope="module")
def rendered(console: Console) -> FleetConfig:
    return FleetConfig.model_validate(console.value("local.fleet", example_variables()))


def _comparable(pool: PoolSpec) -> dict[str, Any]:
    # Everything the control plane and gateway act on; the overflow URL differs by nature (a real service URL
    # in Terraform, a local one in the sandbox fleet).
    data = pool.model_dump(exclude={"overflow"})
    data["overflow"] = None if pool.overflow is None else (pool.overflow.service, pool.overflow.cooldown)
    return data


def test_example_renders_a_valid_fleet(rendered: FleetConfig) -> None:
    assert rendered.project == "my-spotgate-project"
    assert rendered.pool("chat") is not None
    assert rendered.pool("chat").overflow.url == OVERFLOW_URL  # type: ignore[union-attr]


def test_example_describes_the_same_pools_as_fleet_yaml(rendered: FleetConfig) -> None:
    sandbox = load_fleet(REPO / "examples" / "fleet.yaml")

    assert [p.name for p in rendered.pools] == [p.name for p in sandbox.pools]
    assert rendered.region == sandbox.region
    assert rendered.prices == sandbox.prices
    for ours, theirs in zip(rendered.pools, sandbox.pools, strict=True):
        assert _comparable(ours) == _comparable(theirs)


def test_vm_names_match_the_control_planes_expansion(rendered: FleetConfig) -> None:
    chat = rendered.pool("chat")
    assert chat is not None
    assert [(vm.name, vm.zone, vm.provisioning_model.value) for vm in chat.vms] == [
        ("chat-a-1", "us-central1-a", "SPOT"),
        ("chat-b-1", "us-central1-b", "SPOT"),
        ("chat-c-1", "us-central1-c", "SPOT"),
        ("chat-standard", "us-central1-a", "STANDARD"),
    ]


def test_vllm_flags_serve_every_model_name_from_the_mounted_weights(console: Console) -> None:
    args = console.value("local.engine_args", example_variables())

    assert args["chat"]["vm"][:8] == [
        "--model", "/models/llama-3.1-8b-instruct/2024-07-23",
        "--served-model-name", "llama-3.1-8b-instruct", "llama3", "gpt-4o-mini",
        "--host", "0.0.0.0",
    ]  # fmt: skip
    assert args["chat"]["vm"][8:10] == ["--port", "8000"]
    assert args["chat"]["overflow"][8:10] == ["--port", "8080"]


def test_schedules_become_one_scheduler_job_each(console: Console) -> None:
    jobs = console.value("local.scheduled_jobs", example_variables())

    assert jobs == {
        "sleep-chat-0": {"kind": "sleep", "pool": "chat", "schedule": "0 22 * * *", "time_zone": "America/Chicago"},
        "wake-chat-0": {"kind": "wake", "pool": "chat", "schedule": "30 7 * * 1-5", "time_zone": "America/Chicago"},
        "wake-embed-0": {"kind": "wake", "pool": "embed", "schedule": "0 7 * * 1-5", "time_zone": "Europe/Berlin"},
    }


def _chat(variables: dict[str, Any]) -> dict[str, Any]:
    pool: dict[str, Any] = variables["pools"][0]
    return pool


def _zone_outside_region(v: dict[str, Any]) -> None:
    _chat(v)["vms"][0]["zone"] = "europe-west4-a"


def _min_above_max(v: dict[str, Any]) -> None:
    _chat(v)["min_ready"] = 3


def _more_ready_than_vms(v: dict[str, Any]) -> None:
    _chat(v)["max_ready"] = 9


def _fallback_without_standard(v: dict[str, Any]) -> None:
    _chat(v)["vms"] = []


def _bad_duration(v: dict[str, Any]) -> None:
    _chat(v)["idle_timeout"] = "fifteen minutes"


def _unknown_provisioning(v: dict[str, Any]) -> None:
    _chat(v)["vms"][0]["provisioning_model"] = "PREEMPTIBLE"


def _duplicate_pool(v: dict[str, Any]) -> None:
    v["pools"][1]["name"] = "chat"


def _escaping_model_path(v: dict[str, Any]) -> None:
    _chat(v)["serving"]["model_path"] = "../etc"


def _gpu_count_for_another_machine(v: dict[str, Any]) -> None:
    _chat(v)["host"]["gpu_count"] = 2  # g2-standard-8 carries one L4


def _vm_name_taken_by_another_pool(v: dict[str, Any]) -> None:
    v["pools"][1]["vms"] = [{"name": "chat-b-1", "zone": "us-central1-b"}]  # the chat spot group's VM


def _overflow_service_shared(v: dict[str, Any]) -> None:
    v["pools"][1]["overflow"] = {"service": "chat-overflow"}


def _overflow_too_small_for_its_gpu(v: dict[str, Any]) -> None:
    _chat(v)["overflow"]["gpu_type"] = "nvidia-rtx-pro-6000"  # needs 20 vCPU / 80 GiB; defaults are 8 / 32Gi


def _unknown_overflow_gpu(v: dict[str, Any]) -> None:
    _chat(v)["overflow"]["gpu_type"] = "nvidia-a100"


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        pytest.param(_gpu_count_for_another_machine, "must match the G2 machine type", id="gpu-count-vs-machine"),
        pytest.param(_vm_name_taken_by_another_pool, "unique across all pools", id="vm-name-in-two-pools"),
        pytest.param(_overflow_service_shared, "overflow.service names must be unique", id="overflow-in-two-pools"),
        pytest.param(_overflow_too_small_for_its_gpu, "at least cpu", id="overflow-below-gpu-minimum"),
        pytest.param(_unknown_overflow_gpu, "overflow.gpu_type must be", id="overflow-unknown-gpu"),
        pytest.param(_zone_outside_region, "every VM zone must be in var.region", id="zone-outside-region"),
        pytest.param(_min_above_max, "0 <= min_ready <= max_ready", id="min-above-max"),
        pytest.param(_more_ready_than_vms, "max_ready must not exceed", id="max-ready-above-vms"),
        pytest.param(_fallback_without_standard, "fallback.enabled needs", id="fallback-without-standard"),
        pytest.param(_bad_duration, "durations must be", id="bad-duration"),
        pytest.param(_unknown_provisioning, "SPOT or STANDARD", id="unknown-provisioning-model"),
        pytest.param(_duplicate_pool, "unique names", id="duplicate-pool"),
        pytest.param(_escaping_model_path, "relative path inside the models bucket", id="model-path-escapes"),
    ],
)
def test_invalid_pools_are_rejected_at_plan_time(console: Console, breakage: Any, message: str) -> None:
    variables = example_variables()
    breakage(variables)

    result = console.evaluate("local.fleet", variables)

    errors = " ".join(ANSI.sub("", result.stderr).split())
    assert result.returncode != 0
    assert "Invalid value for variable" in errors
    assert message in errors


def test_surviving_streams_settings_reach_the_fleet(console: Console) -> None:
    variables = example_variables()
    _chat(variables)["preemption_notice"] = "120s"
    variables["pools"][1]["serving"]["kind"] = "custom"  # an engine spotgate cannot assume continues answers

    pools = FleetConfig.model_validate(console.value("local.fleet", variables)).pools

    assert pools[0].preemption_notice == timedelta(seconds=120)
    assert (pools[0].continuation, pools[1].continuation) == (True, False)  # vLLM by default; custom off


def test_a_malformed_preemption_notice_is_rejected_at_plan_time(console: Console) -> None:
    variables = example_variables()
    _chat(variables)["preemption_notice"] = "two minutes"
    result = console.evaluate("local.fleet", variables)
    assert result.returncode != 0
    assert "durations must be" in " ".join(ANSI.sub("", result.stderr).split())


def test_every_pool_setting_can_be_set_through_terraform(console: Console) -> None:
    """Each PoolSpec field is rendered into the fleet (``spot`` is expanded into ``vms`` by Terraform), so no
    pool setting is silently stuck at its default for fleets deployed with infra/."""
    variables = example_variables()
    chat = _chat(variables)
    chat.update(spare=1, replay_unanswered=True, passthrough={"methods": ["GET"], "path_prefixes": ["/v1/models"]})

    rendered = console.value("local.fleet", variables)["pools"][0]
    pool = FleetConfig.model_validate(console.value("local.fleet", variables)).pools[0]

    assert set(PoolSpec.model_fields) - {"spot"} <= set(rendered)
    assert (pool.spare, pool.replay_unanswered) == (1, True)
    assert pool.passthrough.allows("GET", "/v1/models/x")
    assert not pool.passthrough.allows("POST", "/v1/models")
