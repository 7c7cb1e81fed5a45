"""Capacity advice through the real ``compute_v1.AdviceClient`` against the sandbox's ``advice.capacity``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from spotgate.adapters.gce_advice import GceAdvisor
from spotgate.adapters.gce_compute import GceCompute
from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.clock import SystemClock
from spotgate.domain import ControlKind, ControlMessage, StartInstance, ZoneAdvice
from spotgate.errors import NotFoundError, UnavailableError
from spotgate.fleet import parse_fleet
from spotgate.sandbox.devstack.cloud import SandboxCloud
from spotgate.services.control_plane import ControlPlane

PROJECT = "spotgate-local"
A, B, C = "us-central1-a", "us-central1-b", "us-central1-c"


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def control(cloud: SandboxCloud, path: str, body: dict[str, object]) -> dict[str, object]:
    answer = requests.post(f"{cloud.compute_url}/sandbox/{path}", json=body, timeout=5)
    assert answer.status_code == 200, answer.text
    result: dict[str, object] = answer.json()
    return result


def calls(cloud: SandboxCloud, kind: str = "calls") -> int:
    return int(requests.get(f"{cloud.compute_url}/sandbox/advice", timeout=5).json()[kind])


def test_advice_per_zone_follows_the_sandbox_scores_and_stockouts(compute_cloud: SandboxCloud) -> None:
    control(compute_cloud, "advice", {"zone": B, "obtainability": 0.35, "estimated_uptime_seconds": 1800})
    control(compute_cloud, "stockout", {"zone": C, "seconds": 60})
    advice = GceAdvisor(PROJECT, endpoint=compute_cloud.compute_url).zone_advice([A, B, C], "g2-standard-8")
    assert advice == {
        A: ZoneAdvice(A, 0.9, timedelta(hours=6), 0.05),
        B: ZoneAdvice(B, 0.35, timedelta(minutes=30), 0.05),
        C: ZoneAdvice(C, 0.0, timedelta(hours=6), 0.05),
    }


def test_answers_are_cached_for_the_ttl(compute_cloud: SandboxCloud) -> None:
    ticks = Ticks()
    advisor = GceAdvisor(PROJECT, endpoint=compute_cloud.compute_url, ttl=timedelta(minutes=10), monotonic=ticks)
    advisor.zone_advice([A, B], "g2-standard-8")
    ticks.now += 9 * 60
    advisor.zone_advice([B, A], "g2-standard-8")
    assert calls(compute_cloud) == 1
    ticks.now += 2 * 60
    advisor.zone_advice([A, B], "g2-standard-8")
    assert calls(compute_cloud) == 2


def test_a_failure_is_not_retried_before_retry_after(compute_cloud: SandboxCloud) -> None:
    ticks = Ticks()
    advisor = GceAdvisor("other-project", endpoint=compute_cloud.compute_url, monotonic=ticks)
    with pytest.raises(NotFoundError):
        advisor.zone_advice([A], "g2-standard-8")
    with pytest.raises(UnavailableError, match="failed recently"):
        advisor.zone_advice([A], "g2-standard-8")
    assert calls(compute_cloud) == 1  # the second never left
    ticks.now += 3 * 60
    with pytest.raises(NotFoundError):
        advisor.zone_advice([A], "g2-standard-8")
    assert calls(compute_cloud) == 2


def test_the_control_plane_places_by_advice_through_the_real_clients(
    compute_cloud: SandboxCloud, tmp_path: Path
) -> None:
    """The production shell, GceCompute and GceAdvisor against the sandbox: the advised zone gets the start."""
    data = compute_cloud.fleet.model_dump(mode="json")
    chat = next(p for p in data["pools"] if p["name"] == "chat")
    chat.update(min_ready=1, capacity_advice={"machine_type": "g2-standard-8"}, overflow=None)
    fleet = parse_fleet(data)
    for zone, score in ((A, 0.2), (B, 0.3), (C, 0.95)):
        control(compute_cloud, "advice", {"zone": zone, "obtainability": score})
    store = SqliteStore(tmp_path / "store.db")
    try:
        compute = GceCompute(PROJECT, endpoint=compute_cloud.compute_url)
        advisor = GceAdvisor(PROJECT, endpoint=compute_cloud.compute_url)
        plane = ControlPlane(fleet, store, compute, None, SystemClock(), advisor=advisor)
        outcome = plane.handle(ControlMessage(ControlKind.WAKE, datetime.now(UTC), pool="chat"))
    finally:
        store.close()
    starts = [a for a in outcome.actions if isinstance(a, StartInstance)]
    assert [s.instance for s in starts] == ["chat-c-1"]
    assert "advice: obtainability 0.95" in starts[0].reason


def test_capacity_history_fills_the_mean_preemption_rate_per_zone(compute_cloud: SandboxCloud) -> None:
    control(compute_cloud, "advice/history", {"zone": B, "preemption_rate": 0.3})
    advice = GceAdvisor(PROJECT, endpoint=compute_cloud.compute_url).zone_advice([A, B], "g2-standard-8")
    assert {zone: one.preemption_rate for zone, one in advice.items()} == {A: 0.05, B: 0.3}
    assert calls(compute_cloud, "history_calls") == 2  # one location per call


def test_history_is_cached_with_the_capacity_answer(compute_cloud: SandboxCloud) -> None:
    ticks = Ticks()
    advisor = GceAdvisor(PROJECT, endpoint=compute_cloud.compute_url, ttl=timedelta(minutes=10), monotonic=ticks)
    advisor.zone_advice([A, B], "g2-standard-8")
    ticks.now += 9 * 60
    advisor.zone_advice([A, B], "g2-standard-8")
    assert (calls(compute_cloud), calls(compute_cloud, "history_calls")) == (1, 2)
    ticks.now += 2 * 60
    advisor.zone_advice([A, B], "g2-standard-8")
    assert (calls(compute_cloud), calls(compute_cloud, "history_calls")) == (2, 4)


def test_a_history_failure_leaves_capacity_advice_usable_and_backs_off(compute_cloud: SandboxCloud) -> None:
    ticks = Ticks()
    advisor = GceAdvisor(PROJECT, endpoint=compute_cloud.compute_url, ttl=timedelta(seconds=1), monotonic=ticks)
    control(compute_cloud, "advice", {"zone": A, "obtainability": 0.6, "estimated_uptime_seconds": 3600})
    control(compute_cloud, "advice/history", {"failing": True})
    assert advisor.zone_advice([A], "g2-standard-8") == {A: ZoneAdvice(A, 0.6, timedelta(hours=1), None)}
    failed = calls(compute_cloud, "history_calls")
    ticks.now += 60  # capacity asked again (ttl 1 s), history not before retry_after (2 min)
    advisor.zone_advice([A], "g2-standard-8")
    assert (calls(compute_cloud), calls(compute_cloud, "history_calls")) == (2, failed)
    control(compute_cloud, "advice/history", {"failing": False})
    ticks.now += 2 * 60
    assert advisor.zone_advice([A], "g2-standard-8")[A].preemption_rate == 0.05


def test_the_control_plane_prefers_the_lower_rate_zone_when_capacity_ties(
    compute_cloud: SandboxCloud, tmp_path: Path
) -> None:
    """Equal obtainability and uptime everywhere (the sandbox default): capacityHistory's rate decides."""
    data = compute_cloud.fleet.model_dump(mode="json")
    chat = next(p for p in data["pools"] if p["name"] == "chat")
    chat.update(min_ready=1, capacity_advice={"machine_type": "g2-standard-8"}, overflow=None)
    fleet = parse_fleet(data)
    for zone, rate in ((A, 0.4), (B, 0.02), (C, 0.1)):
        control(compute_cloud, "advice/history", {"zone": zone, "preemption_rate": rate})
    store = SqliteStore(tmp_path / "store.db")
    try:
        compute = GceCompute(PROJECT, endpoint=compute_cloud.compute_url)
        advisor = GceAdvisor(PROJECT, endpoint=compute_cloud.compute_url)
        plane = ControlPlane(fleet, store, compute, None, SystemClock(), advisor=advisor)
        outcome = plane.handle(ControlMessage(ControlKind.WAKE, datetime.now(UTC), pool="chat"))
    finally:
        store.close()
    starts = [a for a in outcome.actions if isinstance(a, StartInstance)]
    assert [s.instance for s in starts] == ["chat-b-1"]
    assert "preemption rate 0.020" in starts[0].reason
