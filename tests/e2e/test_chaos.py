"""End to end: under a minute of seeded SPOT chaos, the whole local system keeps every promise of the verdict.

One run of ``examples/chaos-fleet.yaml`` (speedup 30: a boot and model load take 3 s) with four OpenAI-SDK
clients, preemptions, stockouts, host maintenance, and Pub/Sub push failures and duplicates. The run judges
itself (``chaos_report``); this test asserts the verdict and that the chaos really happened, so a run that
passes because nothing was injected cannot pass here. ``spotgate report`` is then run against the stack's
store and must agree with the run's own figures (issue 12: one report for simulated and real history).
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.cli import main
from spotgate.fleet import load_fleet
from spotgate.sandbox.chaos.run import ChaosOptions, ChaosResult, run_chaos

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
FLEET = Path(__file__).resolve().parents[2] / "examples" / "chaos-fleet.yaml"


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chaos")


@pytest.fixture(scope="module")
def result(state: Path) -> ChaosResult:
    return run_chaos(load_fleet(FLEET), state, ChaosOptions(seconds=50, seed=7, clients=4, log_level="INFO"))


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


class _At:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def test_spotgate_report_from_the_stores_history_agrees_with_the_run(result: ChaosResult, state: Path) -> None:
    """Over the chaos window, GPU-seconds by provisioning model, cost and requests (the gateway's counts of
    where each was served, summed) within 5% of the run's own.

    The run's figures are in simulated time (wall seconds times the speedup); the control plane records wall
    time, so the report's are scaled the same way before comparing.
    """
    obs = result.observations
    store = SqliteStore(state / "dev.db")
    try:
        obj = {"store": store, "fleet": load_fleet(FLEET), "clock": _At(datetime.fromtimestamp(obs.window.end, UTC))}
        since = f"{obs.window.length:.3f}"
        out = CliRunner().invoke(main, ["report", "--since", since, "--as-json"], obj=obj, catch_exceptions=False)
    finally:
        store.close()
    assert out.exit_code == 0, out.output
    reports = json.loads(out.output)
    scale = 3600.0 * obs.speedup
    ours = {
        "spot_seconds": sum(r["gpu_hours"]["spot"] for r in reports) * scale,
        "standard_seconds": sum(r["gpu_hours"]["standard"] for r in reports) * scale,
        "cost": sum(r["cost"] for r in reports) * obs.speedup,
        "requests": sum(sum(r["requests"].values()) for r in reports),
    }
    run = result.report
    theirs = {
        "spot_seconds": sum(c.spot_seconds for c in run.costs),
        "standard_seconds": sum(c.standard_seconds for c in run.costs),
        "cost": sum(c.cost for c in run.costs),
        "requests": sum(c.total for c in run.requests.values()),
    }
    assert theirs["spot_seconds"] > 0, theirs  # a run with nothing to compare cannot pass
    assert theirs["requests"] > 0, theirs
    print(f"report {ours}\nrun    {theirs}")  # the numbers compared, shown with -s
    assert ours == pytest.approx(theirs, rel=0.05), (ours, theirs)


def test_every_request_has_one_access_line_and_no_log_holds_the_key(result: ChaosResult, state: Path) -> None:
    """The chaos callers' requests each left one JSON access line in the gateway's log (the run logs at INFO,
    where access lines are, and returns after every process stopped), and the API key appears in no log."""
    logs = state / "logs"
    entries = [json.loads(line) for line in (logs / "gateway.log").read_text().splitlines() if line.startswith("{")]
    access = [entry for entry in entries if entry.get("access")]
    per_pool = Counter(entry.get("pool") for entry in access)
    secret = json.loads((state / "dev.json").read_text())["api_key"]

    assert len({entry["request_id"] for entry in access}) == len(access)  # one line per request
    for pool, counts in result.report.requests.items():  # the warm-up's requests add lines, never remove them
        assert per_pool[pool] >= counts.total, (pool, per_pool[pool], counts)
    assert [path.name for path in logs.glob("*.log") if secret in path.read_text(errors="replace")] == []
