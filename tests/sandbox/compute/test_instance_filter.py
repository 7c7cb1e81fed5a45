"""The list-filter subset: what spotgate's adapters send matches; anything else is refused, not ignored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spotgate.domain import InstanceStatus
from spotgate.fleet import EngineSpec, VmSpec
from spotgate.sandbox.compute.instance_filter import FilterError, parse_filter
from spotgate.sandbox.compute.records import Vm, new_vm


def a_vm(pool: str = "chat", status: InstanceStatus = InstanceStatus.RUNNING) -> Vm:
    spec = VmSpec(name=f"{pool}-a-1", zone="us-central1-a")
    vm = new_vm("spotgate-local", pool, spec, EngineSpec(), network_ip="127.9.9.10", now=datetime.now(UTC))
    vm.status = status
    return vm


@pytest.mark.parametrize(
    ("expression", "matches"),
    [
        pytest.param("", True, id="empty"),
        pytest.param("labels.spotgate-pool=chat", True, id="bare"),
        pytest.param('labels.spotgate-pool = "chat"', True, id="quoted"),
        pytest.param("labels.spotgate-pool eq embed", False, id="eq-other-pool"),
        pytest.param('labels.spotgate-pool != "chat"', False, id="not-equal"),
        pytest.param('(labels.spotgate-pool = "chat") AND (status = RUNNING)', True, id="and"),
        pytest.param('(labels.spotgate-pool = "chat") (status = TERMINATED)', False, id="implicit-and"),
        pytest.param("labels.missing = x", False, id="absent-label"),
        pytest.param("name = chat-a-1 AND zone = us-central1-a", True, id="name-and-zone"),
    ],
)
def test_supported_expressions(expression: str, matches: bool) -> None:
    assert parse_filter(expression)(a_vm()) is matches


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("labels.spotgate-pool ~ chat", id="unknown-operator"),
        pytest.param("cpuPlatform = x", id="unsupported-field"),
        pytest.param("labels.spotgate-pool = chat OR status = RUNNING", id="or"),
    ],
)
def test_unsupported_expressions_are_refused(expression: str) -> None:
    with pytest.raises(FilterError):
        parse_filter(expression)
