"""Compute Engine's ``advice.capacity`` (``POST .../regions/{region}/advice/capacity``) for the sandbox's zones.

GCE behaviour modelled: the answer is ``{"recommendations": [{"scores": {"obtainability", "estimatedUptime"},
"shards": [{"zone", "instanceCount", "provisioningModel", "machineType"}]}]}``, best recommendation first,
``obtainability`` in 0..1 and ``estimatedUptime`` a duration string (``"21600s"``). GCE may recommend
shards spread over several zones; the sandbox answers one single-zone recommendation per requested zone
(every zone of the region when the request names none), which is the case spotgate reads. A zone the sandbox
has stocked out scores 0; otherwise the score is ``DEFAULT_OBTAINABILITY`` unless ``POST /sandbox/advice``
(``{"zone", "obtainability", "estimated_uptime_seconds"}``) set one. ``GET /sandbox/advice`` returns how many
advice calls were answered, so tests can see caching and rate limits from outside.

``advice.capacityHistory`` (``POST .../regions/{region}/advice/capacityHistory``), GCE behaviour modelled:
the request names one location (``locationPolicy.location``, ``zones/{zone}`` or a full URL) and the answer
is ``{"location", "machineType", "preemptionHistory": [{"interval": {"startTime", "endTime"},
"preemptionRate"}]}`` with RFC 3339 interval bounds and the rate a fraction per interval; the sandbox answers
``HISTORY_DAYS`` daily records, all at the zone's rate (``DEFAULT_PREEMPTION_RATE`` unless
``POST /sandbox/advice/history`` ``{"zone", "preemption_rate"}`` set one). ``{"failing": true}`` makes it
answer GCE's 503 ``backendError`` until ``{"failing": false}``; ``GET /sandbox/advice`` also counts these
calls (``history_calls``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, jsonify, request

from spotgate.errors import NotFoundError
from spotgate.sandbox.compute.model import ComputeModel

DEFAULT_OBTAINABILITY = 0.9
DEFAULT_UPTIME_SECONDS = 6 * 3600
DEFAULT_PREEMPTION_RATE = 0.05
HISTORY_DAYS = 7


@dataclass(slots=True)
class _Board:
    scores: dict[str, tuple[float, int]] = field(default_factory=dict)  # zone -> (obtainability, uptime s)
    calls: int = 0
    rates: dict[str, float] = field(default_factory=dict)  # zone -> preemption rate per interval
    history_calls: int = 0
    history_failing: bool = False


def register_advice(app: Flask, model: ComputeModel) -> None:
    """Serve ``advice.capacity`` and its sandbox control on ``app``."""
    board = _Board()

    @app.post("/compute/v1/projects/<project>/regions/<region>/advice/capacity")
    def capacity(project: str, region: str) -> Any:
        board.calls += 1
        if project != model.project:
            raise NotFoundError(f"The resource 'projects/{project}' was not found")
        body = request.get_json(silent=True) or {}
        zones = _requested_zones(body) or [z for z in model.zones if z.rsplit("-", 1)[0] == region]
        stocked = model.stockouts()
        recommendations = [_recommendation(body, zone, board, zone in stocked) for zone in zones]
        recommendations.sort(key=lambda r: -float(r["scores"]["obtainability"]))
        return jsonify({"recommendations": recommendations})

    @app.post("/compute/v1/projects/<project>/regions/<region>/advice/capacityHistory")
    def capacity_history(project: str, region: str) -> Any:
        board.history_calls += 1
        if project != model.project:
            raise NotFoundError(f"The resource 'projects/{project}' was not found")
        if board.history_failing:
            return jsonify(_backend_error()), 503
        body = request.get_json(silent=True) or {}
        location = str((body.get("locationPolicy") or {}).get("location", ""))
        zone = location.rsplit("/", 1)[-1]
        if zone not in model.zones or zone.rsplit("-", 1)[0] != region:
            raise NotFoundError(f"The resource 'projects/{project}/zones/{zone}' was not found")
        machine_type = str((body.get("instanceProperties") or {}).get("machineType", ""))
        rate = board.rates.get(zone, DEFAULT_PREEMPTION_RATE)
        return jsonify({"location": location, "machineType": machine_type, "preemptionHistory": _records(rate)})

    @app.post("/sandbox/advice/history")
    def set_history() -> Any:
        body = request.get_json(silent=True) or {}
        if isinstance(body.get("failing"), bool):
            board.history_failing = body["failing"]
            return jsonify(_status(board))
        zone, rate = body.get("zone"), body.get("preemption_rate")
        if zone not in model.zones or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            return jsonify({"error": "need a sandbox 'zone' and 'preemption_rate' in 0..1, or 'failing'"}), 400
        board.rates[zone] = float(rate)
        return jsonify(_status(board))

    @app.post("/sandbox/advice")
    def set_advice() -> Any:
        body = request.get_json(silent=True) or {}
        zone, score = body.get("zone"), body.get("obtainability")
        uptime = body.get("estimated_uptime_seconds", DEFAULT_UPTIME_SECONDS)
        if zone not in model.zones or not isinstance(score, int | float) or not 0 <= score <= 1:
            return jsonify({"error": "need a sandbox 'zone' and 'obtainability' in 0..1"}), 400
        board.scores[zone] = (float(score), int(uptime))
        return jsonify(_status(board))

    @app.get("/sandbox/advice")
    def advice_status() -> Any:
        return jsonify(_status(board))


def _status(board: _Board) -> dict[str, Any]:
    return {
        "zones": board.scores,
        "calls": board.calls,
        "rates": board.rates,
        "history_calls": board.history_calls,
        "history_failing": board.history_failing,
    }


def _records(rate: float) -> list[dict[str, Any]]:
    """``HISTORY_DAYS`` daily records ending at today's midnight (UTC), oldest first."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    days = [(end - timedelta(days=n + 1), end - timedelta(days=n)) for n in reversed(range(HISTORY_DAYS))]
    return [
        {"interval": {"startTime": _rfc3339(start), "endTime": _rfc3339(stop)}, "preemptionRate": rate}
        for start, stop in days
    ]


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _backend_error() -> dict[str, Any]:
    """GCE's body for a 503 (``backendError``), as ``google.api_core`` parses it."""
    message = "Internal error. Please try again or contact Google Support."
    return {
        "error": {
            "code": 503,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "backendError"}],
        }
    }


def _requested_zones(body: dict[str, Any]) -> list[str]:
    configured = (body.get("distributionPolicy") or {}).get("zones") or []
    return [str(z.get("zone", "")).rsplit("/", 1)[-1] for z in configured if isinstance(z, dict) and z.get("zone")]


def _recommendation(body: dict[str, Any], zone: str, board: _Board, stocked_out: bool) -> dict[str, Any]:
    obtainability, uptime = board.scores.get(zone, (DEFAULT_OBTAINABILITY, DEFAULT_UPTIME_SECONDS))
    selections = ((body.get("instanceFlexibilityPolicy") or {}).get("instanceSelections") or {}).values()
    machine_types = [m for s in selections if isinstance(s, dict) for m in s.get("machineTypes", [])]
    scheduling = (body.get("instanceProperties") or {}).get("scheduling") or {}
    return {
        "scores": {"obtainability": 0.0 if stocked_out else obtainability, "estimatedUptime": f"{uptime}s"},
        "shards": [
            {
                "zone": zone,
                "instanceCount": int(body.get("size", 1)),
                "provisioningModel": scheduling.get("provisioningModel", "SPOT"),
                "machineType": machine_types[0] if machine_types else "",
            }
        ],
    }
