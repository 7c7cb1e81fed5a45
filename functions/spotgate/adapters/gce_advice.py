"""``ports.CapacityAdvisor`` over google-cloud-compute's ``AdviceClient.capacity`` (``advice.capacity``).

Advice is a hint, asked on every reconcile of a pool that wants it, so the adapter keeps it cheap: an answer
is cached per region and shape for ``ttl``, and after a failure the region is not asked again for
``retry_after`` (the call raises ``UnavailableError`` meanwhile, which the control plane treats as "no
advice"). GCE answers with ranked recommendations, each a set of shards over zones; a zone's advice is the
best score among the recommendations that place the whole request in that zone alone.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta

from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import compute_v1

from spotgate.adapters.api_errors import translated
from spotgate.domain import ZoneAdvice
from spotgate.errors import SpotgateError, UnavailableError

_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)s$")


class GceAdvisor:
    """Capacity advice for one project; ``endpoint`` (e.g. the sandbox's URL) implies anonymous credentials."""

    def __init__(
        self,
        project: str,
        *,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        ttl: timedelta = timedelta(minutes=10),
        retry_after: timedelta = timedelta(minutes=2),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        options = {"api_endpoint": endpoint} if endpoint else None
        creds = credentials or (AnonymousCredentials() if endpoint else None)
        self._client = compute_v1.AdviceClient(credentials=creds, client_options=options, transport="rest")
        self._project = project
        self._ttl, self._retry_after = ttl.total_seconds(), retry_after.total_seconds()
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str, tuple[str, ...]], tuple[float, dict[str, ZoneAdvice]]] = {}
        self._failed: dict[tuple[str, str, tuple[str, ...]], float] = {}

    def zone_advice(self, zones: Sequence[str], machine_type: str) -> dict[str, ZoneAdvice]:
        """Advice per zone for one SPOT VM of ``machine_type``; zones GCE said nothing about are absent.

        Raises UnavailableError (GCE did not answer now or recently) or another SpotgateError.
        """
        by_region: dict[str, list[str]] = defaultdict(list)
        for zone in sorted(set(zones)):
            by_region[zone.rsplit("-", 1)[0]].append(zone)
        advice: dict[str, ZoneAdvice] = {}
        for region, region_zones in by_region.items():
            advice |= self._cached(region, machine_type, tuple(region_zones))
        return advice

    def _cached(self, region: str, machine_type: str, zones: tuple[str, ...]) -> dict[str, ZoneAdvice]:
        key, now = (region, machine_type, zones), self._monotonic()
        with self._lock:
            answered = self._answers.get(key)
            if answered is not None and now - answered[0] < self._ttl:
                return answered[1]
            failed = self._failed.get(key)
            if failed is not None and now - failed < self._retry_after:
                raise UnavailableError(f"capacity advice for {region} failed recently; not asking again yet")
        try:
            advice = self._ask(region, machine_type, zones)
        except SpotgateError:
            with self._lock:
                self._failed[key] = now
            raise
        with self._lock:
            self._answers[key] = (now, advice)
            self._failed.pop(key, None)
        return advice

    def _ask(self, region: str, machine_type: str, zones: tuple[str, ...]) -> dict[str, ZoneAdvice]:
        request = compute_v1.CapacityAdviceRpcRequest(
            project=self._project,
            region=region,
            capacity_advice_request_resource=compute_v1.CapacityAdviceRequest(
                size=1,
                instance_properties=compute_v1.CapacityAdviceRequestInstanceProperties(
                    scheduling=compute_v1.CapacityAdviceRequestInstancePropertiesScheduling(provisioning_model="SPOT")
                ),
                instance_flexibility_policy=compute_v1.CapacityAdviceRequestInstanceFlexibilityPolicy(
                    instance_selections={
                        "pool": compute_v1.CapacityAdviceRequestInstanceFlexibilityPolicyInstanceSelection(
                            machine_types=[machine_type]
                        )
                    }
                ),
                distribution_policy=compute_v1.CapacityAdviceRequestDistributionPolicy(
                    target_shape="ANY_SINGLE_ZONE",
                    zones=[
                        compute_v1.CapacityAdviceRequestDistributionPolicyZoneConfiguration(zone=f"zones/{zone}")
                        for zone in zones
                    ],
                ),
            ),
        )
        with translated(f"ask capacity advice for {machine_type} in {region}"):
            response = self._client.capacity(request=request)
        return to_zone_advice(response, zones)


def to_zone_advice(response: compute_v1.CapacityAdviceResponse, zones: Sequence[str]) -> dict[str, ZoneAdvice]:
    """The best single-zone score per asked zone (a zone may appear in several recommendations)."""
    advice: dict[str, ZoneAdvice] = {}
    for recommendation in response.recommendations:
        placed = {shard.zone.rsplit("/", 1)[-1] for shard in recommendation.shards}
        if len(placed) != 1:
            continue  # a spread over zones says nothing about one zone alone
        zone = placed.pop()
        scores = recommendation.scores
        candidate = ZoneAdvice(zone, float(scores.obtainability), _duration(scores.estimated_uptime))
        if zone in zones and (zone not in advice or candidate.obtainability > advice[zone].obtainability):
            advice[zone] = candidate
    return advice


def _duration(text: str) -> timedelta | None:
    match = _SECONDS.match(text or "")
    return timedelta(seconds=float(match.group(1))) if match else None
