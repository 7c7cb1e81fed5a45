"""The Compute Engine REST subset that ``compute_v1.InstancesClient``/``ZoneOperationsClient`` use, plus controls.

Served on loopback for ``client_options={"api_endpoint": "http://127.0.0.1:PORT"}``. Besides the GCE paths
(``/compute/v1/...``: instances get/list/aggregatedList/start/stop/resume/setScheduling, zone operations get/wait,
regional ``advice/capacity`` in ``sandbox.compute.advice``) the same app
serves the sandbox's controls under ``/sandbox/`` (preempt, stockout, maintenance, suspend, start, stop, status;
JSON bodies) for the CLI and tests, and ``/oauth2/v1/certs``, the sandbox identity's certificates, so
ID tokens it issued verify like Google's.

Drive it as GCE: ``InstancesClient(credentials=AnonymousCredentials(), client_options={"api_endpoint": URL})``,
then ``start_unary``/``stop_unary`` and wait with a ``ZoneOperationsClient`` built with the same options
(``.wait`` holds up to ``WAIT_LIMIT`` seconds); the ``ExtendedOperation`` from ``start()`` would poll the
real Google host. Operations start PENDING; a start is DONE when the VM is RUNNING and its engine listens.

Errors follow GCE's synchronous envelope (``compute.gce_json.error_json``): unknown instance or operation 404
``notFound``; starting a STOPPING VM 400 ``resourceNotReady``; an unparsable filter 400 ``invalid``.
``POST /sandbox/fault`` (``{"verb", "reason", "times"}``) makes the next calls of a verb answer with one of
GCE's refusals (``403 rateLimitExceeded``, ``403 quotaExceeded``, ``400 resourceNotReady``, ...) or, for
``start``, a failed operation (``QUOTA_EXCEEDED``, ``UNSUPPORTED_OPERATION``); see ``compute.faults``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request

from spotgate.errors import NotFoundError, NotReadyError, SpotgateError
from spotgate.sandbox.compute.advice import register_advice
from spotgate.sandbox.compute.faults import SYNC_REASONS, Fault, FaultError
from spotgate.sandbox.compute.gce_json import (
    aggregated_json,
    error_json,
    instance_json,
    instance_list_json,
    operation_json,
)
from spotgate.sandbox.compute.instance_filter import FilterError, parse_filter
from spotgate.sandbox.compute.model import ComputeModel
from spotgate.sandbox.metadata.identity import Identity

log = logging.getLogger(__name__)
ZONE = "/compute/v1/projects/<project>/zones/<zone>"
WAIT_LIMIT = 10.0  # seconds a zoneOperations.wait holds the request (GCE's limit is about two minutes)
USER = "spotgate-controller@{project}.iam.gserviceaccount.com"


def create_compute_app(model: ComputeModel, identity: Identity) -> Flask:
    """The Flask app over ``model``; ``identity`` supplies ``/oauth2/v1/certs``."""
    app = Flask("spotgate.sandbox.compute.api")
    _register_errors(app)
    _register_instances(app, model)
    _register_operations(app, model)
    _register_controls(app, model)
    register_advice(app, model)
    app.add_url_rule("/oauth2/v1/certs", "certs", lambda: jsonify(identity.certs_json()))
    return app


def _check_project(model: ComputeModel, project: str) -> None:
    if project != model.project:
        raise NotFoundError(f"The resource 'projects/{project}' was not found")


def _user(model: ComputeModel) -> str:
    return USER.format(project=model.project)


def _register_instances(app: Flask, model: ComputeModel) -> None:
    @app.get(f"{ZONE}/instances/<name>")
    def get_instance(project: str, zone: str, name: str) -> Any:
        _check_project(model, project)
        _refuse_if_injected(model, "get")
        return instance_json(project, model.instance(zone, name))

    @app.get(f"{ZONE}/instances")
    def list_instances(project: str, zone: str) -> Any:
        _check_project(model, project)
        _refuse_if_injected(model, "list")
        matches = parse_filter(request.args.get("filter"))
        return instance_list_json(project, zone, [vm for vm in model.instances(zone) if matches(vm)])

    @app.get("/compute/v1/projects/<project>/aggregated/instances")
    def aggregated_instances(project: str) -> Any:
        _check_project(model, project)
        _refuse_if_injected(model, "list")
        matches = parse_filter(request.args.get("filter"))
        unreachable = model.unreachable_zones()
        if unreachable and request.args.get("returnPartialSuccess") != "true":
            raise _InjectedRefusalError("backendError")  # GCE: one zone down fails the whole listing
        vms = [vm for vm in model.instances() if matches(vm) and vm.zone not in unreachable]
        return aggregated_json(project, model.zones, vms, unreachable)

    @app.post(f"{ZONE}/instances/<name>/start")
    def start_instance(project: str, zone: str, name: str) -> Any:
        _check_project(model, project)
        fault = _refuse_if_injected(model, "start")
        if fault is not None:  # GCE accepted the call; the operation carries the failure
            return operation_json(project, model.fail_start(zone, name, _user(model), fault.reason))
        return operation_json(project, model.start(zone, name, _user(model)))

    @app.post(f"{ZONE}/instances/<name>/setScheduling")
    def set_scheduling(project: str, zone: str, name: str) -> Any:
        _check_project(model, project)
        _refuse_if_injected(model, "setScheduling")
        scheduling = request.get_json(silent=True)
        if not isinstance(scheduling, dict):
            raise _BadRequestError("the request body must be a Scheduling object")
        return operation_json(project, model.set_scheduling(zone, name, scheduling, _user(model)))

    @app.post(f"{ZONE}/instances/<name>/resume")
    def resume_instance(project: str, zone: str, name: str) -> Any:
        _check_project(model, project)
        _refuse_if_injected(model, "start")
        return operation_json(project, model.resume(zone, name, _user(model)))

    @app.post(f"{ZONE}/instances/<name>/stop")
    def stop_instance(project: str, zone: str, name: str) -> Any:
        _check_project(model, project)
        _refuse_if_injected(model, "stop")
        return operation_json(project, model.stop(zone, name, _user(model)))


def _register_operations(app: Flask, model: ComputeModel) -> None:
    @app.get(f"{ZONE}/operations/<name>")
    def get_operation(project: str, zone: str, name: str) -> Any:
        _check_project(model, project)
        return operation_json(project, model.operation(zone, name))

    @app.post(f"{ZONE}/operations/<name>/wait")
    def wait_operation(project: str, zone: str, name: str) -> Any:
        _check_project(model, project)
        model.operation(zone, name)  # 404 before blocking
        return operation_json(project, model.wait(zone, name, WAIT_LIMIT))


class _InjectedRefusalError(SpotgateError):
    """An injected synchronous refusal, answered with GCE's status, reason and domain."""

    def __init__(self, reason: str) -> None:
        self.status, message, self.domain = SYNC_REASONS[reason]
        super().__init__(message)
        self.reason = reason


def _refuse_if_injected(model: ComputeModel, verb: str) -> Fault | None:
    """Raise the next injected synchronous refusal for ``verb``; return an operation fault for the caller."""
    fault = model.faults.take(verb)
    if fault is not None and fault.synchronous:
        raise _InjectedRefusalError(fault.reason)
    return fault


def _register_controls(app: Flask, model: ComputeModel) -> None:
    def by_name(action: Callable[[str], object]) -> Any:
        action(_body_str("instance"))
        return status_json(model)

    app.add_url_rule("/sandbox/status", "status", lambda: status_json(model))
    app.add_url_rule("/sandbox/preempt", "preempt", lambda: by_name(model.preempt), methods=["POST"])
    app.add_url_rule("/sandbox/maintenance", "maintenance", lambda: by_name(model.maintenance), methods=["POST"])
    app.add_url_rule("/sandbox/suspend", "suspend", lambda: by_name(model.suspend), methods=["POST"])
    app.add_url_rule(
        "/sandbox/start",
        "start",
        lambda: by_name(lambda n: model.start(model.find(n).zone, n, "sandbox")),
        methods=["POST"],
    )
    app.add_url_rule(
        "/sandbox/stop",
        "stop",
        lambda: by_name(lambda n: model.stop(model.find(n).zone, n, "sandbox")),
        methods=["POST"],
    )

    @app.post("/sandbox/fault")
    def fault() -> Any:
        times = (request.get_json(silent=True) or {}).get("times", 1)
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise _BadRequestError("'times' must be a positive integer")
        model.faults.inject(Fault.of(_body_str("verb"), _body_str("reason")), times)
        return {**status_json(model), "faults": model.faults.pending()}

    @app.post("/sandbox/unreachable")
    def unreachable() -> Any:
        flag = (request.get_json(silent=True) or {}).get("unreachable", True)
        if not isinstance(flag, bool):
            raise _BadRequestError("'unreachable' must be true or false")
        model.set_unreachable(_body_str("zone"), flag)
        return {**status_json(model), "unreachable": sorted(model.unreachable_zones())}

    @app.post("/sandbox/stockout")
    def stockout() -> Any:
        seconds = (request.get_json(silent=True) or {}).get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise _BadRequestError("'seconds' must be a non-negative number")
        model.stock_out(_body_str("zone"), float(seconds))
        return status_json(model)


def status_json(model: ComputeModel) -> dict[str, Any]:
    """The sandbox's view for ``spotgate sandbox status``: every VM, and the stocked-out zones."""
    vms = [
        {
            "name": vm.name,
            "zone": vm.zone,
            "pool": vm.pool,
            "status": str(vm.status),
            "provisioning_model": str(vm.provisioning_model),
            "network_ip": vm.network_ip,
            "engine_url": vm.engine_url,
        }
        for vm in model.instances()
    ]
    return {
        "project": model.project,
        "instances": vms,
        "stockouts": {z: round(s, 1) for z, s in model.stockouts().items()},
    }


class _BadRequestError(SpotgateError):
    """A control request with a missing or invalid field."""


def _body_str(key: str) -> str:
    value = (request.get_json(silent=True) or {}).get(key)
    if not isinstance(value, str) or not value:
        raise _BadRequestError(f"'{key}' is required (a JSON string)")
    return value


def _register_errors(app: Flask) -> None:
    def respond(code: int, reason: str) -> Callable[[Exception], Response]:
        def handler(error: Exception) -> Response:
            response = jsonify(error_json(code, str(error), reason))
            response.status_code = code
            return response

        return handler

    def refuse(error: _InjectedRefusalError) -> Response:
        response = jsonify(error_json(error.status, str(error), error.reason, error.domain))
        response.status_code = error.status
        return response

    app.register_error_handler(_InjectedRefusalError, refuse)
    app.register_error_handler(FaultError, respond(400, "invalid"))
    app.register_error_handler(NotFoundError, respond(404, "notFound"))
    app.register_error_handler(NotReadyError, respond(400, "resourceNotReady"))
    app.register_error_handler(FilterError, respond(400, "invalid"))
    app.register_error_handler(_BadRequestError, respond(400, "invalid"))
