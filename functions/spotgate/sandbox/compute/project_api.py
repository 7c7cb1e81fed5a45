"""The project-level reads ``spotgate preflight`` makes, answered like Google answers them, plus a control to
break each condition on purpose.

Served on the sandbox's compute app (one loopback URL, as ``SPOTGATE_COMPUTE_ENDPOINT``), each on GCE's or the
API's own path so the real clients reach them unchanged:

* Compute Engine (google-cloud-compute): ``regions.get`` and ``projects.get`` with their ``quotas`` list
  (``metric``/``limit``/``usage``), ``images.getFromFamily`` and ``machineTypes.get``; unknown ones are GCE's
  404 ``notFound`` envelope.
* Service Usage ``services.list`` (``/v1/projects/P/services?filter=state:ENABLED``, paged by ``pageSize`` and
  ``nextPageToken``; the sandbox understands only the ``state:ENABLED`` filter preflight sends).
* Org Policy v2 ``getEffectivePolicy`` (``/v2/projects/P/policies/C:getEffectivePolicy``): a constraint with no
  policy answers an empty ``spec`` (nothing enforced), as on GCP.

``POST /sandbox/project`` changes the model: ``{"disable_api": NAME}``, ``{"enable_api": NAME}``,
``{"quota": {"metric": M, "limit": L, "usage": U, "region": R}}`` (no region: a project quota),
``{"remove_image_family": {"project": P, "family": F}}``,
``{"remove_machine_type": {"zone": Z, "machine_type": M}}``, ``{"org_policy": {"constraint": C, "spec": S}}``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request

from spotgate.errors import NotFoundError, SpotgateError
from spotgate.fleet import FleetConfig

PROJECT_NUMBER = "412345678901"
COMPUTE = "/compute/v1/projects/<project>"
# Every API spotgate's Terraform enables, plus the ones that must be on before it runs.
DEFAULT_APIS = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "compute.googleapis.com",
    "eventarc.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "iap.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "serviceusage.googleapis.com",
    "storage.googleapis.com",
    "vpcaccess.googleapis.com",
)
G2_GPUS = {"g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1, "g2-standard-16": 1, "g2-standard-24": 2,
           "g2-standard-32": 1, "g2-standard-48": 4, "g2-standard-96": 8}  # fmt: skip
DEFAULT_FAMILIES = {
    ("deeplearning-platform-release", "common-cu124-debian-11-py310"): "common-cu124-v20250325-debian-11-py310"
}
GPU_QUOTA = 16.0  # generous: the example fleet needs 5 at creation


@dataclass
class ProjectModel:
    """What the project has. Mutated only through ``apply_control``; reads copy under the lock."""

    project: str
    region: str
    enabled_apis: set[str]
    region_quotas: dict[str, dict[str, tuple[float, float]]]  # region -> metric -> (limit, usage)
    project_quotas: dict[str, tuple[float, float]]
    image_families: dict[tuple[str, str], str]
    machine_types: dict[str, set[str]]  # zone -> names
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)  # constraint -> spec
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_fleet(cls, fleet: FleetConfig) -> ProjectModel:
        """A project where the fleet's deployment passes preflight: every API on, room for every GPU."""
        zones = {vm.zone for pool in fleet.pools for vm in pool.vms}
        region = fleet.region
        gpus = {"PREEMPTIBLE_NVIDIA_L4_GPUS": (GPU_QUOTA, 0.0), "NVIDIA_L4_GPUS": (GPU_QUOTA, 0.0)}
        return cls(
            project=fleet.project,
            region=region,
            enabled_apis=set(DEFAULT_APIS),
            region_quotas={region: {**gpus, "CPUS": (512.0, 0.0)}},
            project_quotas={"GPUS_ALL_REGIONS": (GPU_QUOTA, 0.0)},
            image_families=dict(DEFAULT_FAMILIES),
            machine_types={zone: set(G2_GPUS) for zone in zones},
        )

    def apply_control(self, body: dict[str, Any]) -> None:
        """One change from ``POST /sandbox/project``; raises ControlError on a malformed body."""
        with self.lock:
            for key, value in body.items():
                _CONTROLS.get(key, _unknown_control)(self, value)


class ControlError(SpotgateError):
    """A ``/sandbox/project`` body the sandbox does not understand."""


class ServiceDisabledError(SpotgateError):
    """A call to an API the project has not enabled (GCE: 403 ``accessNotConfigured``, ``SERVICE_DISABLED``)."""

    def __init__(self, project: str, service: str) -> None:
        super().__init__(
            f"Compute Engine API has not been used in project {PROJECT_NUMBER} before or it is disabled. Enable it "
            f"by visiting https://console.developers.google.com/apis/api/{service}/overview?project={project} "
            "then retry."
        )
        self.service = service


def _service_disabled(error: ServiceDisabledError) -> Response:
    from spotgate.sandbox.compute.gce_json import error_json

    body = error_json(403, str(error), "accessNotConfigured", domain="usageLimits")
    body["error"]["status"] = "PERMISSION_DENIED"
    body["error"]["details"] = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "SERVICE_DISABLED",
         "domain": "googleapis.com", "metadata": {"service": error.service, "consumer": f"projects/{PROJECT_NUMBER}"}}
    ]  # fmt: skip
    response = jsonify(body)
    response.status_code = 403
    return response


def _unknown_control(_model: ProjectModel, _value: Any) -> None:
    raise ControlError(f"unknown control; use one of {', '.join(sorted(_CONTROLS))}")


def _set_quota(model: ProjectModel, value: Any) -> None:
    try:
        entry = (float(value["limit"]), float(value.get("usage", 0.0)))
        metric, region = str(value["metric"]), value.get("region")
    except (KeyError, TypeError, ValueError):
        raise ControlError("quota needs {metric, limit[, usage, region]}") from None
    if region:
        model.region_quotas.setdefault(str(region), {})[metric] = entry
    else:
        model.project_quotas[metric] = entry


def _remove_family(model: ProjectModel, value: Any) -> None:
    model.image_families.pop((str(value["project"]), str(value["family"])), None)


def _remove_machine_type(model: ProjectModel, value: Any) -> None:
    model.machine_types.get(str(value["zone"]), set()).discard(str(value["machine_type"]))


def _set_policy(model: ProjectModel, value: Any) -> None:
    model.policies[str(value["constraint"])] = dict(value["spec"])


_CONTROLS: dict[str, Any] = {
    "disable_api": lambda m, v: m.enabled_apis.discard(str(v)),
    "enable_api": lambda m, v: m.enabled_apis.add(str(v)),
    "quota": _set_quota,
    "remove_image_family": _remove_family,
    "remove_machine_type": _remove_machine_type,
    "org_policy": _set_policy,
}


def register_project_api(app: Flask, model: ProjectModel) -> None:
    """Add the project reads and the ``/sandbox/project`` control to ``app`` (the sandbox's compute app)."""
    _register_compute(app, model)
    _register_service_usage(app, model)
    _register_org_policy(app, model)

    @app.post("/sandbox/project")
    def control() -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ControlError("the body must be a JSON object")
        model.apply_control(body)
        return jsonify({"ok": True})

    app.register_error_handler(ControlError, _error(400, "invalid"))
    app.register_error_handler(ServiceDisabledError, _service_disabled)


def create_project_app(model: ProjectModel) -> Flask:
    """The project API alone (tests of preflight that need no VMs)."""
    app = Flask("spotgate.sandbox.project")
    app.register_error_handler(NotFoundError, _error(404, "notFound"))
    register_project_api(app, model)
    return app


def _error(code: int, reason: str) -> Any:
    def handler(error: Exception) -> Response:
        from spotgate.sandbox.compute.gce_json import error_json

        response = jsonify(error_json(code, str(error), reason))
        response.status_code = code
        return response

    return handler


def _quota_list(quotas: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    return [{"metric": m, "limit": limit, "usage": usage} for m, (limit, usage) in sorted(quotas.items())]


def _require_compute(model: ProjectModel, project: str) -> None:
    """GCE refuses every call while the Compute Engine API is disabled in the caller's project."""
    if "compute.googleapis.com" not in model.enabled_apis:
        raise ServiceDisabledError(project, "compute.googleapis.com")


def _register_compute(app: Flask, model: ProjectModel) -> None:
    base = "https://www.googleapis.com/compute/v1/projects"

    @app.get(f"{COMPUTE}/regions/<region>")
    def get_region(project: str, region: str) -> Any:
        with model.lock:
            _require_compute(model, project)
            if project != model.project or region not in model.region_quotas:
                raise NotFoundError(f"The resource 'projects/{project}/regions/{region}' was not found")
            quotas = _quota_list(model.region_quotas[region])
        return {"kind": "compute#region", "name": region, "status": "UP", "quotas": quotas,
                "selfLink": f"{base}/{project}/regions/{region}"}  # fmt: skip

    @app.get(COMPUTE)
    def get_project(project: str) -> Any:
        with model.lock:
            _require_compute(model, project)
            if project != model.project:
                raise NotFoundError(f"The resource 'projects/{project}' was not found")
            quotas = _quota_list(model.project_quotas)
        return {"kind": "compute#project", "name": project, "id": PROJECT_NUMBER, "quotas": quotas}

    @app.get(f"{COMPUTE}/global/images/family/<family>")
    def get_from_family(project: str, family: str) -> Any:
        with model.lock:
            _require_compute(model, model.project)
            image = model.image_families.get((project, family))
        if image is None:
            raise NotFoundError(f"The resource 'projects/{project}/global/images/family/{family}' was not found")
        return {"kind": "compute#image", "name": image, "family": family, "status": "READY",
                "selfLink": f"{base}/{project}/global/images/{image}"}  # fmt: skip

    @app.get(f"{COMPUTE}/zones/<zone>/machineTypes/<machine_type>")
    def get_machine_type(project: str, zone: str, machine_type: str) -> Any:
        with model.lock:
            _require_compute(model, project)
            offered = project == model.project and machine_type in model.machine_types.get(zone, set())
        if not offered:
            raise NotFoundError(
                f"The resource 'projects/{project}/zones/{zone}/machineTypes/{machine_type}' was not found"
            )
        gpus = G2_GPUS.get(machine_type, 0)
        return {"kind": "compute#machineType", "name": machine_type, "zone": zone,
                "accelerators": [{"guestAcceleratorType": "nvidia-l4", "guestAcceleratorCount": gpus}]}  # fmt: skip


def _register_service_usage(app: Flask, model: ProjectModel) -> None:
    @app.get("/v1/projects/<project>/services")
    def list_services(project: str) -> Any:
        if request.args.get("filter") != "state:ENABLED":
            raise ControlError("the sandbox's services.list understands only filter=state:ENABLED")
        with model.lock:
            if project not in (model.project, PROJECT_NUMBER):
                raise NotFoundError(f"Project '{project}' not found or permission denied.")
            names = sorted(model.enabled_apis)
        size = int(request.args.get("pageSize", "50"))
        start = int(request.args.get("pageToken") or 0)
        page = names[start : start + size]
        body: dict[str, Any] = {
            "services": [
                {
                    "name": f"projects/{PROJECT_NUMBER}/services/{n}",
                    "config": {"name": n},
                    "state": "ENABLED",
                    "parent": f"projects/{PROJECT_NUMBER}",
                }
                for n in page
            ]
        }
        if start + size < len(names):
            body["nextPageToken"] = str(start + size)
        return body


def _register_org_policy(app: Flask, model: ProjectModel) -> None:
    @app.get("/v2/projects/<project>/policies/<path:call>")
    def get_effective_policy(project: str, call: str) -> Any:
        constraint, _, method = call.partition(":")
        if method != "getEffectivePolicy":
            raise NotFoundError(f"no such method {method!r}")
        with model.lock:
            spec = dict(model.policies.get(constraint, {}))
        return {"name": f"projects/{PROJECT_NUMBER}/policies/{constraint}", "spec": spec}
