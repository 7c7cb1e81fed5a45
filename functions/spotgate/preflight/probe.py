"""Read what the project has, with the caller's credentials and Google's own clients.

Compute Engine through google-cloud-compute (``regions.get`` and ``projects.get`` quotas,
``images.getFromFamily``, ``machineTypes.get``). Service Usage and the Org Policy API have no client in the
lock, so they are called over REST through google-auth's ``AuthorizedSession`` (the same credentials).
With ``endpoint`` (the sandbox) every call goes to that one loopback URL, anonymously.

A call that fails for another reason than "not found" is recorded in ``Observed.errors`` under its check, so
one unreadable API never hides the other checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import requests
from google.api_core import exceptions as api_exceptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import compute_v1

from spotgate.preflight.checks import Observed, Policy, Quota
from spotgate.preflight.deployment import Deployment
from spotgate.preflight.needs import CONSTRAINTS, Needs

SERVICE_USAGE = "https://serviceusage.googleapis.com"
ORG_POLICY = "https://orgpolicy.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
TIMEOUT = 30.0
T = TypeVar("T")


class ProjectProbe:
    """The read-only calls preflight makes; ``endpoint`` points every one of them at a sandbox."""

    def __init__(self, *, endpoint: str | None = None, credentials: Credentials | None = None) -> None:
        options = {"api_endpoint": endpoint} if endpoint else None
        creds = credentials or (AnonymousCredentials() if endpoint else None)
        self._regions = compute_v1.RegionsClient(credentials=creds, client_options=options)
        self._projects = compute_v1.ProjectsClient(credentials=creds, client_options=options)
        self._images = compute_v1.ImagesClient(credentials=creds, client_options=options)
        self._machine_types = compute_v1.MachineTypesClient(credentials=creds, client_options=options)
        self._service_usage = endpoint or SERVICE_USAGE
        self._org_policy = endpoint or ORG_POLICY
        self._session = requests.Session() if endpoint else _authorized_session(credentials)

    def observe(self, deployment: Deployment, needs: Needs) -> Observed:
        """Everything ``needs`` asks about; failures land in ``errors`` by check."""
        errors: dict[str, str] = {}
        project = deployment.project
        return Observed(
            enabled_apis=_guard(errors, "apis", lambda: self.enabled_apis(project), frozenset()),
            region_quotas=_guard(
                errors,
                "quotas",
                lambda: _quotas(self._regions.get(project=project, region=deployment.region).quotas),
                {},
            ),
            project_quotas=_guard(errors, "quotas", lambda: _quotas(self._projects.get(project=project).quotas), {}),
            images=_guard(errors, "images", lambda: {key: self.image(*key) for key in needs.images}, {}),
            machine_types=_guard(
                errors,
                "machine_types",
                lambda: {key: self.machine_type(project, *key) for key in needs.machine_types},
                {},
            ),
            policies=_guard(errors, "policies", lambda: {c: self.policy(project, c) for c in CONSTRAINTS}, {}),
            errors=errors,
        )

    def enabled_apis(self, project: str) -> frozenset[str]:
        """serviceusage.services.list with filter state:ENABLED, every page."""
        names: set[str] = set()
        token = ""
        while True:
            params = {"filter": "state:ENABLED", "pageSize": "200", **({"pageToken": token} if token else {})}
            page = self._get_json(f"{self._service_usage}/v1/projects/{project}/services", params)
            names.update(s["config"]["name"] for s in page.get("services", []))
            token = page.get("nextPageToken", "")
            if not token:
                return frozenset(names)

    def image(self, project: str, family: str) -> str | None:
        """The image a family resolves to, or None when the family does not exist."""
        try:
            return str(self._images.get_from_family(project=project, family=family).name)
        except api_exceptions.NotFound:
            return None

    def machine_type(self, project: str, zone: str, machine_type: str) -> bool:
        try:
            self._machine_types.get(project=project, zone=zone, machine_type=machine_type)
        except api_exceptions.NotFound:
            return False
        return True

    def policy(self, project: str, constraint: str) -> Policy:
        """The effective policy; a constraint the organisation does not know (404) is not enforced."""
        url = f"{self._org_policy}/v2/projects/{project}/policies/{constraint}:getEffectivePolicy"
        response = self._session.get(url, timeout=TIMEOUT)
        if response.status_code == 404:
            return Policy()
        response.raise_for_status()
        return _policy(response.json())

    def _get_json(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        response = self._session.get(url, params=params, timeout=TIMEOUT)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def _authorized_session(credentials: Credentials | None) -> requests.Session:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    creds = credentials or google.auth.default(scopes=list(SCOPES))[0]
    return AuthorizedSession(creds)


def _quotas(quotas: Iterable[compute_v1.Quota]) -> dict[str, Quota]:
    return {q.metric: Quota(limit=q.limit, usage=q.usage) for q in quotas}


def _policy(body: dict[str, Any]) -> Policy:
    rules = body.get("spec", {}).get("rules", [])
    allowed = tuple(v for r in rules for v in r.get("values", {}).get("allowedValues", []))
    restricted = any("values" in r or r.get("denyAll") for r in rules) and not any(r.get("allowAll") for r in rules)
    return Policy(enforced=any(r.get("enforce") for r in rules), allowed_values=allowed if restricted else ())


def _guard(errors: dict[str, str], check: str, read: Callable[[], T], empty: T) -> T:
    """``read()``, or ``empty`` with the failure recorded under ``check`` (first failure wins)."""
    try:
        return read()
    except (api_exceptions.GoogleAPICallError, requests.RequestException, ValueError, KeyError) as e:
        errors.setdefault(check, _describe(e))
        return empty


def _describe(error: Exception) -> str:
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code} from {error.response.url.split('?')[0]}: {error.response.text[:200]}"
    return f"{type(error).__name__}: {error}"
