"""End to end: under a minute of seeded SPOT chaos, the whole local system keeps every promise of the verdict.

One run of ``examples/chaos-fleet.yaml`` (speedup 30: a boot and model load take 3 s) with four OpenAI-SDK
clients, preemptions, stockouts, host maintenance, and Pub/Sub push failures and duplicates. The run judges
itself (``chaos_report``); this test asserts the verdict and that the chaos really happened, so a run that
passes because nothing was injected cannot pass here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spotgate.fleet import load_fleet
from spotgate.sandbox.chaos import ChaosOptions, ChaosResult, run_chaos

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
FLEET = Path(__file__).resolve().parents[2] / "examples" / "chaos-fleet.yaml"


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> ChaosResult:
    state = tmp_path_factory.mktemp("chaos")
    return run_chaos(load_fleet(FLEET), state, ChaosOptions(seconds=50, seed=7, clients=4))


def test_the_system_passes_the_chaos_verdict(result: ChaosResult) -> None:
    report = result.report
    failures = [f"{c.name}: {c.summary}; {list(c.violations)}" for c in report.criteria if not c.passed]
    boots = [f"{b.instance}: RUNNING {b.to_running}s, ready {b.to_ready}s (fleet {b.expected}s)" for b in report.boots]
    if report.verdict != "PASS":  # the whole story, untruncated: which criterion, and how the VMs really booted
        pytest.fail("\n".join(["chaos verdict FAIL", *failures, "boots:", *boots]))


def test_chaos_really_happened(result: ChaosResult) -> None:
    report = result.report
    injected = {kind: report.injected.get(kind, 0) for kind in ("preempt", "stockout", "maintenance")}
    push = report.push
    assert injected["preempt"] >= 1, injected
    assert injected["stockout"] >= 1, injected
    assert push["failed_attempts"] >= 1, push
    assert push["redelivered"] >= 1, push
    assert push["duplicates"] >= 1, push


def test_both_kinds_of_callers_were_served(result: ChaosResult) -> None:
    requests = result.report.requests
    assert sum(c.streaming for c in requests.values()) > 0
    assert all(c.ok > 0 for c in requests.values()), requests


def test_every_reclaimed_route_stopped_taking_traffic(result: ChaosResult) -> None:
    reclaims = result.report.reclaims
    assert reclaims
    assert all(r.to_draining is not None for r in reclaims), reclaims


def test_no_answer_was_cut_mid_stream(result: ChaosResult) -> None:
    """The chaos fleet gives SPOT VMs an early preemption notice and continues streams whose VM died anyway."""
    requests = result.report.requests
    assert {pool: c.cut_mid_stream for pool, c in requests.items()} == dict.fromkeys(requests, 0)
