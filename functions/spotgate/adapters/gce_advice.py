"""``ports.CapacityAdvisor`` over google-cloud-compute's ``AdviceClient.capacity`` (``advice.capacity``) and
``AdviceClient.capacity_history`` (``advice.capacityHistory``).

Advice is a hint, asked on every reconcile of a pool that wants it, so the adapter keeps it cheap: an answer
is cached per region and shape for ``ttl``, and after a failure the region is not asked again for
``retry_after`` (the call raises ``UnavailableError`` meanwhile, which the control plane treats as "no
advice"). GCE answers with ranked recommendations, each a set of shards over zones; a zone's advice is the
best score among the recommendations that place the whole request in that zone alone.

capacityHistory takes one location per call, so each advised zone is asked on its own, cached and backed
off the same way but separately: its failure leaves the capacity advice usable with an unknown (None)
preemption rate, never the other way round.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import TypeVar

from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import compute_v1

from spotgate.adapters.api_errors import translated
from spotgate.domain import ZoneAdvice
from spotgate.errors import SpotgateError, UnavailableError

_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)s$")
_T = TypeVar("_T")


class _Remembered:
    """Answers kept for ``ttl`` per key; a key whose question failed is not asked again for ``retry_after``."""

    def __init__(self, ttl: float, retry_after: float, monotonic: Callable[[], float]) -> None:
        self._ttl, self._retry_after, self._monotonic = ttl, retry_after, monotonic
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, ...], tuple[float, object]] = {}
        self._failed: dict[tuple[str, ...], float] = {}

    def get(self, key: tuple[str, ...], ask: Callable[[], _T], what: str) -> _T:
        now = self._monotonic()
        with self._lock:
            answered = self._answers.get(key)
            if answered is not None and now - answered[0] < self._ttl:
                return answered[1]  # type: ignore[return-value]  # stored by this key's ask, of type _T
            failed = self._failed.get(key)
            if failed is not None and now - failed < self._retry_after:
                raise UnavailableError(f"{what} failed recently; not asking again yet")
        try:
            answer = ask()
        except SpotgateError:
            with self._lock:
                self._failed[key] = now
            raise
        with self._lock:
            self._answers[key] = (now, answer)
            self._failed.pop(key, None)
        return answer


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
        self._capacity = _Remembered(ttl.total_seconds(), retry_after.total_seconds(), monotonic)
        self._history = _Remembered(ttl.total_seconds(), retry_after.total_seconds(), monotonic)

    def zone_advice(self, zones: Sequence[str], machine_type: str) -> dict[str, ZoneAdvice]:
        """Advice per zone for one SPOT VM of ``machine_type``; zones GCE said nothing about are absent.

        Raises UnavailableError (GCE did not answer now or recently) or another SpotgateError, for
        ``advice.capacity`` only: a zone whose ``advice.capacityHistory`` failed has preemption_rate None.
        """
        by_region: dict[str, list[str]] = defaultdict(list)
        for zone in sorted(set(zones)):
            by_region[zone.rsplit("-", 1)[0]].append(zone)
        advice: dict[str, ZoneAdvice] = {}
        for region, region_zones in by_region.items():
            ask = partial(self._ask, region, machine_type, tuple(region_zones))
            advice |= self._capacity.get((region, machine_type, *region_zones), ask, f"capacity advice for {region}")
        return {zone: replace(one, preemption_rate=self._rate(zone, machine_type)) for zone, one in advice.items()}

    def _rate(self, zone: str, machine_type: str) -> float | None:
        """The zone's recent mean preemption rate, or None ("unknown") when capacityHistory fails."""
        try:
            ask = partial(self._ask_history, zone, machine_type)
            return self._history.get((zone, machine_type), ask, f"capacity history for {zone}")
        except SpotgateError:
            return None

    def _ask_history(self, zone: str, machine_type: str) -> float | None:
        request = compute_v1.CapacityHistoryAdviceRequest(
            project=self._project,
            region=zone.rsplit("-", 1)[0],
            capacity_history_request_resource=compute_v1.CapacityHistoryRequest(
                instance_properties=compute_v1.CapacityHistoryRequestInstanceProperties(
                    machine_type=machine_type,
                    scheduling=compute_v1.CapacityHistoryRequestInstancePropertiesScheduling(provisioning_model="SPOT"),
                ),
                location_policy=compute_v1.CapacityHistoryRequestLocationPolicy(location=f"zones/{zone}"),
                types=["PREEMPTION"],
            ),
        )
        with translated(f"ask capacity history for {machine_type} in {zone}"):
            response = self._client.capacity_history(request=request)
        return mean_preemption_rate(response)

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


def mean_preemption_rate(response: compute_v1.CapacityHistoryResponse) -> float | None:
    """The mean rate over the preemption records GCE returned (its recent window); None without records."""
    rates = [record.preemption_rate for record in response.preemption_history]
    return statistics.fmean(rates) if rates else None


def _duration(text: str) -> timedelta | None:
    match = _SECONDS.match(text or "")
    return timedelta(seconds=float(match.group(1))) if match else None
