"""Compute Engine's ``advice.capacity`` (``POST .../regions/{region}/advice/capacity``) for the sandbox's zones.

GCE behaviour modelled: the answer is ``{"recommendations": [{"scores": {"obtainability", "estimatedUptime"},
"shards": [{"zone", "instanceCount", "provisioningModel", "machineType"}]}]}``, best recommendation first,
``obtainability`` in 0..1 and ``estimatedUptime`` a duration string (``"21600s"``). GCE may recommend
shards spread over several zones; the sandbox answers one single-zone recommendation per requested zone
(every zone of the region when the request names none), which is the case spotgate reads. A zone the sandbox
has stocked out scores 0; otherwise the score is ``DEFAULT_OBTAINABILITY`` unless ``POST /sandbox/advice``
(``{"zone", "obtainability", "estimated_uptime_seconds"}``) set one. ``GET /sandbox/advice`` returns how many
advice calls were answered, so tests can see caching and rate limits from outside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask, jsonify, request

from spotgate.errors import NotFoundError
from spotgate.sandbox.compute.model import ComputeModel

DEFAULT_OBTAINABILITY = 0.9
DEFAULT_UPTIME_SECONDS = 6 * 3600


@dataclass(slots=True)
class _Board:
    scores: dict[str, tuple[float, int]] = field(default_factory=dict)  # zone -> (obtainability, uptime s)
    calls: int = 0


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

    @app.post("/sandbox/advice")
    def set_advice() -> Any:
        body = request.get_json(silent=True) or {}
        zone, score = body.get("zone"), body.get("obtainability")
        uptime = body.get("estimated_uptime_seconds", DEFAULT_UPTIME_SECONDS)
        if zone not in model.zones or not isinstance(score, int | float) or not 0 <= score <= 1:
            return jsonify({"error": "need a sandbox 'zone' and 'obtainability' in 0..1"}), 400
        board.scores[zone] = (float(score), int(uptime))
        return jsonify({"zones": board.scores, "calls": board.calls})

    @app.get("/sandbox/advice")
    def advice_status() -> Any:
        return jsonify({"zones": board.scores, "calls": board.calls})


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
