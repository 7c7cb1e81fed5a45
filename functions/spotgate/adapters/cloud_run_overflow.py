"""``ports.Overflow`` over google-cloud-run v2: read and set a service's service-level min instances.

Service-level scaling (``Service.scaling.min_instance_count``) takes effect without deploying a revision,
which is what warming an overflow service for a gap needs (reference §5.2). The REST transport is used so
that a local endpoint (the sandbox) works with the same code; it sends enums as integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import run_v2
from google.protobuf import field_mask_pb2

from spotgate.adapters.api_errors import translated
from spotgate.errors import NotFoundError


class CloudRunOverflow:
    """Cloud Run services of one project, addressed by short service name; ``regions`` maps service -> region."""

    def __init__(
        self,
        project: str,
        regions: Mapping[str, str],
        *,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        operation_timeout: timedelta = timedelta(seconds=120),
    ) -> None:
        options = ClientOptions(api_endpoint=endpoint) if endpoint else None
        creds = credentials or (AnonymousCredentials() if endpoint else None)
        self._client = run_v2.ServicesClient(transport="rest", client_options=options, credentials=creds)
        self._project = project
        self._regions = dict(regions)
        self._timeout = operation_timeout.total_seconds()

    def get_min_instances(self, service: str) -> int:
        with translated(f"read overflow service {service}"):
            found = self._client.get_service(name=self._name(service))
        return int(found.scaling.min_instance_count)

    def set_min_instances(self, service: str, count: int) -> None:
        update = run_v2.UpdateServiceRequest(
            service=run_v2.Service(
                name=self._name(service),
                scaling=run_v2.ServiceScaling(min_instance_count=count),
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["scaling.min_instance_count"]),
        )
        with translated(f"set min instances of {service} to {count}"):
            self._client.update_service(request=update).result(timeout=self._timeout)

    def _name(self, service: str) -> str:
        if service not in self._regions:
            raise NotFoundError(f"overflow service {service!r} is not in the fleet configuration")
        return f"projects/{self._project}/locations/{self._regions[service]}/services/{service}"
