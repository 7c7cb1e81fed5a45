"""The Cloud Run admin v2 REST subset spotgate's overflow adapter uses, over the sandbox's overflow engines.

``run_v2.ServicesClient(transport="rest", client_options=ClientOptions(api_endpoint="http://127.0.0.1:PORT"),
credentials=AnonymousCredentials())`` works against this app: ``services.get`` answers a v2 ``Service``
whose ``uri`` is the overflow engine's loopback URL; ``services.patch`` (``update_service``; the client sends
integer enums) applies the service-level ``scaling.minInstanceCount`` (an absent ``scaling`` leaves it as
is; ``scaling: {}`` means 0, as proto3 JSON omits zeros), tells the engine, and returns a long-running
operation that is already done; ``operations.get`` returns it again. Only ``scaling`` is writable, which is
all spotgate changes; a patch that names other fields in ``updateMask`` is refused with 400, and
``validateOnly`` changes nothing.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from flask import Flask, Response, jsonify, request

from spotgate.clock import SystemClock
from spotgate.errors import NotFoundError, PermanentError, UnavailableError
from spotgate.ports import Clock

SERVICE_TYPE = "type.googleapis.com/google.cloud.run.v2.Service"
LOCATION = "/v2/projects/<project>/locations/<location>"


@dataclass(slots=True)
class OverflowService:
    """One Cloud Run GPU service and the engine that plays it."""

    project: str
    location: str
    service: str
    engine_url: str
    service_account: str
    created: datetime
    updated: datetime
    min_instances: int = 0
    generation: int = 1
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/services/{self.service}"


class OverflowServices:
    """The services by full name; ``set_min_instances`` also tells the engine (so it stops cold-starting)."""

    def __init__(self, services: list[OverflowService], clock: Clock | None = None) -> None:
        self._services = {s.name: s for s in services}
        self._operations: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._clock = clock or SystemClock()

    def get(self, name: str) -> dict[str, Any]:
        with self._lock:
            return service_json(self._find(name))

    def set_min_instances(self, name: str, count: int) -> dict[str, Any]:
        """Apply the count, bump the generation, return the finished operation. Raises UnavailableError."""
        with self._lock:
            service = self._find(name)
            _tell_engine(service.engine_url, count)
            service.min_instances = count
            service.generation += 1
            service.updated = self._clock.now()
            body = service_json(service)
            op_name = f"projects/{service.project}/locations/{service.location}/operations/{uuid.uuid4()}"
            operation = {"name": op_name, "metadata": {"@type": SERVICE_TYPE, **body}, "done": True}
            operation["response"] = {"@type": SERVICE_TYPE, **body}
            self._operations[op_name] = operation
            return operation

    def operation(self, name: str) -> dict[str, Any]:
        with self._lock:
            if name not in self._operations:
                raise NotFoundError(f"Operation {name} not found.")
            return self._operations[name]

    def urls(self) -> dict[str, str]:
        with self._lock:
            return {s.service: s.engine_url for s in self._services.values()}

    def _find(self, name: str) -> OverflowService:
        if name not in self._services:
            raise NotFoundError(
                f"Resource '{name.rsplit('/', 1)[-1]}' of kind 'SERVICE' in region "
                f"'{name.split('/')[3]}' in project '{name.split('/')[1]}' does not exist."
            )
        return self._services[name]


def _tell_engine(engine_url: str, count: int) -> None:
    try:
        response = requests.post(f"{engine_url}/_sandbox/scaling", json={"min_instances": count}, timeout=5)
        response.raise_for_status()
    except requests.RequestException as e:
        raise UnavailableError(f"overflow engine at {engine_url} did not take the scaling change: {e}") from e


def service_json(s: OverflowService) -> dict[str, Any]:
    """A v2 Service as Cloud Run returns it for a GPU service (L4, scale to zero, one instance max)."""
    revision = f"{s.name}/revisions/{s.service}-{s.generation:05d}"
    ready = {"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": _ts(s.updated)}
    return {
        "name": s.name,
        "uid": s.uid,
        "generation": str(s.generation),
        "createTime": _ts(s.created),
        "updateTime": _ts(s.updated),
        "creator": s.service_account,
        "lastModifier": s.service_account,
        "ingress": "INGRESS_TRAFFIC_ALL",
        "launchStage": "GA",
        "scaling": {"minInstanceCount": s.min_instances} if s.min_instances else {},
        "template": _template(s),
        "traffic": [{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
        "observedGeneration": str(s.generation),
        "terminalCondition": ready,
        "conditions": [{**ready, "type": "RoutesReady"}, {**ready, "type": "ConfigurationsReady"}],
        "latestReadyRevision": revision,
        "latestCreatedRevision": revision,
        "uri": s.engine_url,
        "urls": [s.engine_url],
        "etag": f'"{s.uid[:8]}-{s.generation}"',
        "reconciling": False,
    }


def _template(s: OverflowService) -> dict[str, Any]:
    container = {
        "image": f"{s.location}-docker.pkg.dev/{s.project}/spotgate/engine:latest",
        "ports": [{"containerPort": 8080, "name": "http1"}],
        "resources": {"limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}, "startupCpuBoost": True},
    }
    return {
        "containers": [container],
        "nodeSelector": {"accelerator": "nvidia-l4"},
        "gpuZonalRedundancyDisabled": True,
        "scaling": {"maxInstanceCount": 1},
        "maxInstanceRequestConcurrency": 8,
        "serviceAccount": s.service_account,
        "timeout": "600s",
    }


def _ts(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


class _BadPatchError(PermanentError):
    """A patch the sandbox cannot apply."""


def create_cloudrun_app(services: OverflowServices) -> Flask:
    """The Flask app for ``services``; errors use Google's ``{"error": {code, message, status}}`` JSON."""
    app = Flask("spotgate.sandbox.cloudrun")
    _register_errors(app)

    @app.get(f"{LOCATION}/services/<service>")
    def get_service(project: str, location: str, service: str) -> Any:
        return services.get(f"projects/{project}/locations/{location}/services/{service}")

    @app.patch(f"{LOCATION}/services/<service>")
    def patch_service(project: str, location: str, service: str) -> Any:
        name = f"projects/{project}/locations/{location}/services/{service}"
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise _BadPatchError("The request body must be a Service JSON object.")
        count = _patched_min_instances(body, request.args.get("updateMask", ""))
        current = int(services.get(name)["scaling"].get("minInstanceCount", 0))
        if count is None or request.args.get("validateOnly") == "true":
            count = current  # nothing to apply; Cloud Run still answers with an operation
        return services.set_min_instances(name, count)

    @app.get(f"{LOCATION}/operations/<operation>")
    def get_operation(project: str, location: str, operation: str) -> Any:
        return services.operation(f"projects/{project}/locations/{location}/operations/{operation}")

    return app


def _patched_min_instances(body: dict[str, Any], update_mask: str) -> int | None:
    fields = [f.strip() for f in update_mask.split(",") if f.strip()]
    unsupported = [f for f in fields if not f.startswith("scaling")]
    if unsupported:
        raise _BadPatchError(f"The sandbox can only update 'scaling', not {', '.join(unsupported)}.")
    scaling = body.get("scaling")
    if scaling is None:
        return None
    count = scaling.get("minInstanceCount", 0) if isinstance(scaling, dict) else None
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise _BadPatchError("scaling.minInstanceCount must be a non-negative integer.")
    return count


def _register_errors(app: Flask) -> None:
    def respond(code: int, status: str) -> Any:
        def handler(error: Exception) -> Response:
            response = jsonify({"error": {"code": code, "message": str(error), "status": status}})
            response.status_code = code
            return response

        return handler

    app.register_error_handler(NotFoundError, respond(404, "NOT_FOUND"))
    app.register_error_handler(_BadPatchError, respond(400, "INVALID_ARGUMENT"))
    app.register_error_handler(UnavailableError, respond(503, "UNAVAILABLE"))
