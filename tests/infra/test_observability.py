"""The metrics, dashboard and alerts of infra/modules/observability read what the code logs, and Terraform
evaluates them (issue 13).

* Every ``jsonPayload.FIELD`` a metric filters or extracts is a field the code writes: the gateway's access
  line (``gateway.access.Exchange.fields``), the control plane's plan line (``core.health.pool_health``) and
  its action / start-failure lines (their extras, exercised in tests/unit/test_health.py).
* The module's locals need no provider, so the real Terraform CLI evaluates them (``terraform console``):
  the metric and alert tables unify into maps (what ``for_each`` needs), and every metric a chart or an
  alert names is one the module defines.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.access import Exchange
from spotgate.core.health import pool_health
from spotgate.domain import Activity, Observed, PoolState
from spotgate.fleet import PoolSpec
from tests.infra.invariants import ALERTS, METRICS
from tests.infra.terraform_tree import INFRA

MODULE = INFRA / "modules" / "observability"
JSON_FIELD = re.compile(r"jsonPayload\.(\w+)")
# The control plane's "action issued", "start failed" and "action failed" extras (tests/unit/test_health.py).
CONTROL_LINE_FIELDS = {"pool", "action", "target", "reason", "instance", "zone"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
EXPRESSION = "jsonencode({metrics = tomap(local.metrics), alerts = tomap(local.alerts), dashboard = local.dashboard})\n"


def logged_fields() -> set[str]:
    spec = PoolSpec.model_validate({"name": "chat", "model": "m", "spot": {"zones": ["us-central1-a"]}})
    seen = Observed(instances=(), routes=(), activity=Activity("chat"))
    health = pool_health(spec, seen, PoolState("chat"), datetime(2026, 11, 23, tzinfo=UTC))
    access = Exchange("rid", "POST", "/v1/chat/completions", 0.0).fields(200, 1.0)
    return {"message", *access, *health, *CONTROL_LINE_FIELDS}


def test_every_logged_field_a_metric_reads_is_written_by_the_code() -> None:
    text = (MODULE / "main.tf").read_text(encoding="utf-8")
    used = set(JSON_FIELD.findall(text))

    assert used, "the module reads no jsonPayload field"
    assert used - logged_fields() == set()


def _locals_only(text: str) -> str:
    """``main.tf`` without its resource blocks (they need the provider; the locals do not)."""
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        if line.startswith("resource "):
            skipping = True
        if not skipping:
            kept.append(line)
        if skipping and line == "}":
            skipping = False
    return "\n".join(kept) + "\n"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    terraform = shutil.which("terraform")
    assert terraform, "the Terraform CLI must be on PATH"
    directory = tmp_path_factory.mktemp("observability")
    shutil.copy(MODULE / "variables.tf", directory / "variables.tf")
    (directory / "locals.tf").write_text(_locals_only((MODULE / "main.tf").read_text(encoding="utf-8")))
    variables = {
        "project": "my-spotgate-project",
        "name": "spotgate",
        "gateway_service": "spotgate-gateway",
        "function_services": ["spotgate-on-control", "spotgate-on-compute-event"],
    }
    (directory / "input.auto.tfvars.json").write_text(json.dumps(variables), encoding="utf-8")
    result = subprocess.run(
        [terraform, "console"],
        input=EXPRESSION,
        cwd=directory,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = ANSI.sub("", result.stdout + result.stderr)
    assert result.returncode == 0, output
    assert "Error" not in output, output
    value: dict[str, Any] = json.loads(json.loads(result.stdout.strip().splitlines()[-1]))
    return value


def test_metric_and_alert_tables_are_maps_terraform_can_iterate(evaluated: dict[str, Any]) -> None:
    assert sorted(evaluated["metrics"]) == sorted(METRICS)
    assert sorted(evaluated["alerts"]) == sorted(ALERTS)
    for name, metric in evaluated["metrics"].items():
        assert metric["labels"], name
        assert (metric["value"] is None) == (metric["buckets"] is None), name  # distributions need buckets


def _user_metrics(text: str) -> set[str]:
    return set(re.findall(r"logging\.googleapis\.com/user/spotgate-([a-z-]+)", text))


def test_charts_and_alerts_name_only_defined_metrics(evaluated: dict[str, Any]) -> None:
    charted = _user_metrics(json.dumps(evaluated["dashboard"]))
    alerted = _user_metrics(json.dumps(evaluated["alerts"]))

    assert charted == set(METRICS)  # every metric has a chart
    assert alerted <= set(METRICS)
    assert {"pool-ready-backends", "pool-overflow-warm", "pool-idle-vms", "gateway-requests"} <= alerted


def test_the_dashboard_is_a_valid_mosaic(evaluated: dict[str, Any]) -> None:
    layout = evaluated["dashboard"]["mosaicLayout"]
    tiles = layout["tiles"]

    assert layout["columns"] == 12
    assert len(tiles) == len(METRICS)
    assert all(t["xPos"] + t["width"] <= 12 for t in tiles)
    assert len({(t["xPos"], t["yPos"]) for t in tiles}) == len(tiles)  # no overlap
    for tile in tiles:
        query = tile["widget"]["xyChart"]["dataSets"][0]["timeSeriesQuery"]["timeSeriesFilter"]
        assert query["aggregation"]["perSeriesAligner"].startswith("ALIGN_")


def test_the_no_ready_alert_watches_only_pools_that_should_serve(evaluated: dict[str, Any]) -> None:
    alert = evaluated["alerts"]["no-ready-backend"]

    assert 'metric.label.expects_ready="true"' in alert["filter"]
    assert alert["comparison"] == "COMPARISON_LT"
    assert alert["duration"] == 600


def test_module_readme_lists_every_metric_and_alert() -> None:
    readme = (MODULE / "README.md").read_text(encoding="utf-8")
    missing = [name for name in (*METRICS, *ALERTS) if f"`{name}`" not in readme]
    assert missing == []
