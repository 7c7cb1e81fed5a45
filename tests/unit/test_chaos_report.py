"""The chaos run's judgement: span algebra, the three criteria, recovery times and cost, on hand-made runs.

Every run here is a 60 s chaos window starting at t=0, a 2 s tick, speedup 30, and two pools: ``chat``
(min_ready 1, overflow) and ``batch`` (min_ready 0, no overflow, idle_timeout 6 s); boot is 3 s for both.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from rich.console import Console

from spotgate.sandbox.chaos.cli import render
from spotgate.sandbox.chaos.record import (
    Injection,
    Observations,
    Outcome,
    PoolRules,
    Rates,
    RequestRecord,
    RouteSpan,
    VmRun,
)
from spotgate.sandbox.chaos.report import percentile, summarize
from spotgate.sandbox.chaos.spans import Span, intersect, subtract, union
from spotgate.sandbox.chaos.verdict import backend_gaps, no_backend_gaps, no_early_failures, no_idle_vms

ZONES = ("us-central1-a", "us-central1-b")
CHAT = PoolRules("chat", min_ready=1, idle_timeout=10.0, boot=3.0, has_overflow=True, zones=ZONES)
BATCH = PoolRules("batch", min_ready=0, idle_timeout=6.0, boot=3.0, has_overflow=False, zones=ZONES)


def a_run(**overrides: Any) -> Observations:
    """A quiet 60 s run of both pools with nothing in it; override the parts a case is about."""
    base = Observations(
        window=Span(0.0, 60.0),
        tick=2.0,
        speedup=30.0,
        rates=Rates(spot=0.28, standard=0.71, overflow=0.80),
        pools=(CHAT, BATCH),
    )
    return replace(base, **overrides)


def a_request(start: float, end: float, **overrides: Any) -> RequestRecord:
    fields: dict[str, Any] = {"pool": "batch", "stream": False, "outcome": Outcome.OK, "backend": "batch-a-1"}
    return RequestRecord(start=start, end=end, **(fields | overrides))


def a_vm(instance: str, start: float, stop: float, model: str = "SPOT") -> VmRun:
    """A VM RUNNING from ``start`` until STOPPING at ``stop``, TERMINATED one second later."""
    pool = instance.split("-", maxsplit=1)[0]
    return VmRun(pool, instance, model, Span(start, stop), Span(start, stop + 1.0))


def a_route(backend: str, state: str, start: float, end: float) -> RouteSpan:
    kind = "overflow" if backend.endswith("overflow") else "vm"
    return RouteSpan(backend.split("-", maxsplit=1)[0], backend, kind, state, Span(start, end))


def a_stockout(zone: str, start: float, end: float) -> Injection:
    return Injection("stockout", start, zone, None, end - start)


# -- spans ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "both", "only_a"),
    [
        pytest.param([(0, 10)], [(5, 15)], [(5, 10)], [(0, 5)], id="overlap"),
        pytest.param([(0, 10)], [(2, 3), (5, 6)], [(2, 3), (5, 6)], [(0, 2), (3, 5), (6, 10)], id="holes"),
        pytest.param([(0, 5)], [(5, 9)], [], [(0, 5)], id="touching-is-not-overlap"),
        pytest.param([(0, 4), (2, 6)], [], [], [(0, 6)], id="a-merged"),
    ],
)
def test_span_algebra(a: list[tuple[int, int]], b: list[tuple[int, int]], both: list[Any], only_a: list[Any]) -> None:
    left, right = [Span(*s) for s in a], [Span(*s) for s in b]
    assert intersect(left, right) == tuple(Span(*s) for s in both)
    assert subtract(left, right) == tuple(Span(*s) for s in only_a)


def test_union_joins_touching_and_drops_empty_spans() -> None:
    assert union([Span(3, 5), Span(0, 3), Span(7, 7)]) == (Span(0, 5),)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        pytest.param([], 50, None, id="empty"),
        pytest.param([4.0], 50, 4.0, id="one"),
        pytest.param([3.0, 1.0, 2.0], 50, 2.0, id="odd-median"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 50, 2.5, id="even-interpolated"),
        pytest.param([1.0, 2.0, 3.0, 4.0], 100, 4.0, id="max"),
    ],
)
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


# -- criterion 1: no failure before the first byte ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "passed"),
    [
        pytest.param([Outcome.OK, Outcome.OK], True, id="all-ok"),
        pytest.param([Outcome.OK, Outcome.CUT], True, id="a-cut-stream-is-allowed"),
        pytest.param([Outcome.OK, Outcome.FAILED_BEFORE_FIRST_BYTE], False, id="one-refusal-fails"),
    ],
)
def test_early_failures(outcomes: list[Outcome], passed: bool) -> None:
    run = a_run(requests=tuple(a_request(i, i + 1, outcome=o, error="503") for i, o in enumerate(outcomes)))
    assert no_early_failures(run).passed is passed


# -- criterion 2: no idle VM beyond idle_timeout + tick (8 s for batch, 12 s for chat) ----------------------------


@pytest.mark.parametrize(
    ("vms", "requests", "passed"),
    [
        pytest.param([a_vm("batch-a-1", 0, 9)], [a_request(0, 2)], True, id="stopped-7s-after-last-request"),
        pytest.param([a_vm("batch-a-1", 0, 30)], [a_request(0, 2)], False, id="idle-28s-after-last-request"),
        pytest.param([a_vm("batch-a-1", 0, 10.4)], [a_request(0, 2)], True, id="stopped-within-the-tick-handling"),
        pytest.param([a_vm("batch-a-1", 0, 10.6)], [a_request(0, 2)], False, id="stopped-after-the-tick-handling"),
        pytest.param(
            [a_vm("batch-a-1", 0, 30)],
            [a_request(t, t + 1) for t in range(0, 29, 5)],
            True,
            id="busy-every-5s",
        ),
        pytest.param(
            [a_vm("batch-a-1", 0, 30)],
            [a_request(0, 29, backend=None, stream=True)],
            True,
            id="held-stream-without-backend-header-counts-as-traffic",
        ),
        pytest.param(
            [a_vm("batch-a-1", 0, 30)],
            [a_request(0, 29, backend=None, outcome=Outcome.FAILED_BEFORE_FIRST_BYTE)],
            False,
            id="refused-request-is-no-traffic",
        ),
        pytest.param([a_vm("chat-a-1", 0, 60)], [], True, id="min-ready-keeps-one-idle-vm"),
        pytest.param([a_vm("chat-a-1", 0, 60), a_vm("chat-b-1", 0, 60)], [], False, id="min-ready-1-not-2"),
        pytest.param(
            [a_vm("chat-a-1", 0, 60), a_vm("chat-b-1", 20, 60)],
            [a_request(20, 59, pool="chat", backend="chat-b-1")],
            False,
            id="idle-vm-beside-a-busy-one-is-beyond-min-ready",
        ),
    ],
)
def test_idle_vms(vms: list[VmRun], requests: list[RequestRecord], passed: bool) -> None:
    assert no_idle_vms(a_run(vm_runs=tuple(vms), requests=tuple(requests))).passed is passed


# -- criterion 3: no backend gap beyond boot + tick (5 s) ---------------------------------------------------------


def chat_ready_except(start: float, end: float) -> tuple[RouteSpan, ...]:
    return (a_route("chat-a-1", "ready", 0, start), a_route("chat-b-1", "ready", end, 60))


@pytest.mark.parametrize(
    ("overrides", "passed"),
    [
        pytest.param({"routes": chat_ready_except(10, 14)}, True, id="4s-gap-within-boot-plus-tick"),
        pytest.param({"routes": chat_ready_except(10, 16)}, False, id="6s-gap-too-long"),
        pytest.param(
            {"routes": (*chat_ready_except(10, 16), a_route("chat-overflow", "ready", 0, 60))},
            True,
            id="overflow-covers-the-gap",
        ),
        pytest.param(
            {"routes": (*chat_ready_except(10, 20), a_route("chat-overflow", "down", 0, 60))},
            False,
            id="overflow-down-covers-nothing",
        ),
        pytest.param(
            {
                "routes": chat_ready_except(10, 20),
                "injections": (a_stockout(ZONES[0], 9, 30), a_stockout(ZONES[1], 8, 18)),
            },
            True,
            id="no-capacity-while-every-zone-stocked-out",
        ),
        pytest.param(
            {"routes": chat_ready_except(10, 18), "injections": (Injection("preempt", 14, "chat-b-1", "chat"),)},
            True,
            id="reclaim-of-the-booting-vm-restarts-the-clock",
        ),
    ],
)
def test_backend_gaps_with_min_ready(overrides: dict[str, Any], passed: bool) -> None:
    assert no_backend_gaps(a_run(pools=(CHAT,), **overrides)).passed is passed


def test_sleeping_pool_has_demand_only_within_idle_timeout_of_a_request() -> None:
    run = a_run(
        requests=(a_request(20, 25),),
        routes=(a_route("batch-a-1", "down", 0, 24), a_route("batch-a-1", "ready", 24, 30)),
    )
    assert backend_gaps(run, BATCH) == (Span(20, 24),)


# -- the report ---------------------------------------------------------------------------------------------------


def test_costs_are_in_simulated_time_against_an_always_on_baseline() -> None:
    run = a_run(
        pools=(CHAT,),
        vm_runs=(a_vm("chat-a-1", 0, 29), a_vm("chat-std-1", 30, 59, model="STANDARD")),
        routes=(a_route("chat-a-1", "ready", 0, 30), a_route("chat-std-1", "ready", 30, 60)),
        overflow_warm=(("chat", Span(30, 42)),),
    )
    (cost,) = summarize(run).costs
    assert (cost.spot_seconds, cost.standard_seconds, cost.overflow_warm_seconds) == (900.0, 900.0, 360.0)
    assert cost.cost == pytest.approx(0.25 * 0.28 + 0.25 * 0.71 + 0.1 * 0.80)
    assert cost.peak_ready == 1
    assert cost.baseline_cost == pytest.approx(0.5 * 0.71)


def test_reclaim_times_to_draining_and_to_a_ready_vm() -> None:
    run = a_run(
        pools=(CHAT,),
        injections=(Injection("preempt", 10.0, "chat-a-1", "chat"),),
        routes=(
            a_route("chat-a-1", "ready", 0, 10.5),
            a_route("chat-a-1", "draining", 10.5, 12),
            a_route("chat-b-1", "starting", 11, 14),
            a_route("chat-b-1", "ready", 14, 60),
        ),
    )
    (reclaim,) = summarize(run).reclaims
    assert (reclaim.to_draining, reclaim.to_ready) == (0.5, 4.0)


def test_the_verdict_passes_only_when_every_criterion_does() -> None:
    quiet = summarize(a_run(pools=(BATCH,)))
    refused = summarize(a_run(pools=(BATCH,), requests=(a_request(1, 2, outcome=Outcome.FAILED_BEFORE_FIRST_BYTE),)))
    assert (quiet.verdict, refused.verdict) == ("PASS", "FAIL")
    assert refused.as_json()["requests"]["batch"] == {
        "ok": 0,
        "failed_before_first_byte": 1,
        "cut_mid_stream": 0,
        "streaming": 0,
        "continued": 0,
        "total": 1,
    }


def test_boots_compare_the_real_boot_with_the_fleets() -> None:
    vm = replace(a_vm("batch-a-1", 10, 30), booting_since=6.5)
    run = a_run(
        vm_runs=(vm,), routes=(a_route("batch-a-1", "starting", 10, 11.2), a_route("batch-a-1", "ready", 11.2, 30))
    )
    (boot,) = summarize(run).boots
    assert (boot.to_running, boot.to_ready, boot.expected) == (3.5, 4.7, 3.0)


def test_the_printed_report_shows_counts_costs_and_the_verdict() -> None:
    report = summarize(a_run(pools=(BATCH,), requests=(a_request(1, 2, outcome=Outcome.FAILED_BEFORE_FIRST_BYTE),)))
    console = Console(record=True, width=160)
    console.print(render(report))
    text = console.export_text()
    assert "failed before 1st byte" in text
    assert "always-on $" in text
    assert "FAIL" in text


def test_streams_continued_after_a_reclaim_are_counted_apart_from_those_cut() -> None:
    requests = (
        a_request(1.0, 2.0, stream=True),
        a_request(2.0, 3.0, stream=True, continued=True),
        a_request(3.0, 4.0, stream=True, outcome=Outcome.CUT),
    )
    counts = summarize(a_run(requests=requests)).requests["batch"]
    assert (counts.ok, counts.continued, counts.cut_mid_stream, counts.streaming) == (2, 1, 1, 3)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(
            ['data: {"choices":[{"delta":{"content":"a"}}]}', 'data: {"choices":[{"finish_reason":"stop"}]}'],
            (1, True, False, None), id="plain",
        ),
        pytest.param(
            ['data: {"choices":[{"delta":{"content":"a"}}]}', ": spotgate-continued 1", "data: [DONE]"],
            (1, False, True, None), id="continued",
        ),
        pytest.param(
            ['data: {"error":{"code":"stream_interrupted","message":"x"}}', ": keepalive"],
            (0, False, False, "stream_interrupted"), id="error-event",
        ),
    ],
)  # fmt: skip
def test_a_chaos_caller_reads_tokens_finish_continuation_and_errors_from_sse_lines(
    lines: list[str], expected: tuple[Any, ...]
) -> None:
    from spotgate.sandbox.chaos.traffic import _Stream

    seen = _Stream()
    for line in lines:
        seen.take(line)
    assert (seen.pieces, seen.finished, seen.continued, (seen.error or {}).get("code")) == expected


def test_the_baseline_fleet_has_no_notice_and_no_continuation() -> None:
    from spotgate.fleet import load_fleet
    from spotgate.sandbox.chaos.cli import without_surviving_streams

    fleet = load_fleet("examples/chaos-fleet.yaml")
    baseline = without_surviving_streams(fleet)
    assert all(p.preemption_notice is not None and p.continuation for p in fleet.pools)
    assert all(p.preemption_notice is None and not p.continuation for p in baseline.pools)
