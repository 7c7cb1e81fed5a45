"""Google API failures become spotgate errors that tell the service whether a retry can help."""

from __future__ import annotations

import json

import pytest
import requests
from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from spotgate.adapters.api_errors import translate_api_error, translated
from spotgate.adapters.gce_compute import raise_for_operation
from spotgate.errors import (
    CapacityError,
    ConflictError,
    NotFoundError,
    NotReadyError,
    PermanentError,
    PermissionDeniedError,
    QuotaError,
    RateLimitError,
    SpotgateError,
    TransientError,
    UnavailableError,
)


def gce_error(status: int, reason: str, message: str, domain: str = "global") -> gexc.GoogleAPICallError:
    """What the compute_v1 REST client raises for GCE's JSON error body (it calls ``from_http_response``)."""
    response = requests.Response()
    response.status_code = status
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }
    response._content = json.dumps(body).encode()
    response.headers["content-type"] = "application/json; charset=UTF-8"
    url = "https://compute.googleapis.com/compute/v1/projects/p/zones/us-central1-a/instances/vm-1/start"
    response.request = requests.Request("POST", url).prepare()
    return gexc.from_http_response(response)


@pytest.mark.parametrize(
    ("status", "reason", "message", "expected"),
    [
        pytest.param(403, "rateLimitExceeded", "Rate Limit Exceeded", RateLimitError, id="403-rateLimitExceeded"),
        pytest.param(403, "userRateLimitExceeded", "User Rate Limit Exceeded", RateLimitError, id="403-userRate"),
        pytest.param(
            403,
            "quotaExceeded",
            "Quota 'NVIDIA_L4_GPUS' exceeded.  Limit: 1.0 in region us-central1.",
            QuotaError,
            id="403-quotaExceeded",
        ),
        pytest.param(
            403, "forbidden", "Required 'compute.instances.start' permission", PermissionDeniedError, id="403"
        ),
        pytest.param(
            403, "forbidden", "rateLimitExceeded quotaExceeded (text only)", PermissionDeniedError, id="text-ignored"
        ),
        pytest.param(
            400,
            "resourceNotReady",
            "The resource 'projects/p/zones/us-central1-a/instances/vm-1' is not ready",
            NotReadyError,
            id="400-resourceNotReady",
        ),
        pytest.param(400, "invalid", "Invalid value for field 'filter'", PermanentError, id="400-invalid"),
        pytest.param(404, "notFound", "The resource was not found", NotFoundError, id="404-notFound"),
        pytest.param(409, "resourceInUseByAnotherResource", "in use", ConflictError, id="409-in-use"),
        pytest.param(412, "conditionNotMet", "Labels fingerprint either invalid", ConflictError, id="412"),
        pytest.param(429, "rateLimitExceeded", "Too Many Requests", RateLimitError, id="429"),
        pytest.param(503, "backendError", "Backend Error", UnavailableError, id="503-backendError"),
    ],
)
def test_gce_error_bodies_are_classified_by_reason_code(
    status: int, reason: str, message: str, expected: type[SpotgateError]
) -> None:
    translated_error = translate_api_error("start vm-1", gce_error(status, reason, message))
    assert type(translated_error) is expected


@pytest.mark.parametrize(
    ("expected", "transient"),
    [
        pytest.param(RateLimitError, True, id="rate-limit"),
        pytest.param(NotReadyError, True, id="not-ready"),
        pytest.param(QuotaError, True, id="quota"),
        pytest.param(PermissionDeniedError, False, id="permission"),
    ],
)
def test_retry_classes_sit_on_the_right_side_of_the_tree(expected: type[SpotgateError], transient: bool) -> None:
    assert issubclass(expected, TransientError) is transient


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        pytest.param(gexc.NotFound("gone"), NotFoundError, id="404"),
        pytest.param(gexc.Forbidden("no"), PermissionDeniedError, id="403"),
        pytest.param(gexc.Unauthorized("who"), PermissionDeniedError, id="401"),
        pytest.param(gexc.TooManyRequests("slow down"), RateLimitError, id="429"),
        pytest.param(gexc.Conflict("busy"), ConflictError, id="409"),
        pytest.param(gexc.BadRequest("bad field"), PermanentError, id="400"),
        pytest.param(gexc.ServiceUnavailable("later"), UnavailableError, id="503"),
        pytest.param(ConnectionError("refused"), UnavailableError, id="network"),
    ],
)
def test_api_errors_map_to_the_spotgate_tree(error: Exception, expected: type[SpotgateError]) -> None:
    translated_error = translate_api_error("start vm-1", error)
    assert type(translated_error) is expected
    assert "start vm-1" in str(translated_error)


def test_translated_keeps_spotgate_errors_and_chains_vendor_ones() -> None:
    with pytest.raises(CapacityError), translated("x"):
        raise CapacityError("full", zone="z", code="ZONE_RESOURCE_POOL_EXHAUSTED")
    with pytest.raises(UnavailableError) as caught, translated("read service"):
        raise gexc.InternalServerError("oops")
    assert isinstance(caught.value.__cause__, gexc.InternalServerError)


def _failed(code: str, status: int = 400, details: list[compute_v1.ErrorDetails] | None = None) -> compute_v1.Operation:
    error = compute_v1.Errors(code=code, message="the zone does not have enough resources", error_details=details or [])
    return compute_v1.Operation(
        status="DONE", error=compute_v1.Error(errors=[error]), http_error_status_code=status, http_error_message="X"
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        pytest.param("ZONE_RESOURCE_POOL_EXHAUSTED", 503, CapacityError, id="stockout"),
        pytest.param("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", 503, CapacityError, id="stockout-details"),
        pytest.param("QUOTA_EXCEEDED", 403, QuotaError, id="quota"),
        pytest.param("RESOURCE_NOT_READY", 400, NotReadyError, id="still-stopping"),
        pytest.param("UNSUPPORTED_OPERATION", 400, CapacityError, id="preempted-while-starting"),
        pytest.param("RESOURCE_OPERATION_RATE_EXCEEDED", 403, RateLimitError, id="operation-rate"),
        pytest.param("RESOURCE_NOT_FOUND", 404, NotFoundError, id="not-found"),
        pytest.param("INTERNAL_ERROR", 500, UnavailableError, id="server-side"),
        pytest.param("INVALID_FIELD_VALUE", 400, PermanentError, id="our-mistake"),
    ],
)
def test_failed_operations_raise_by_code(code: str, status: int, expected: type[SpotgateError]) -> None:
    with pytest.raises(expected):
        raise_for_operation(_failed(code, status), "us-central1-a", "vm-1")


def test_stockout_carries_the_zones_gce_says_have_capacity() -> None:
    hint = compute_v1.ErrorDetails(
        error_info=compute_v1.ErrorInfo(reason="stockout", metadatas={"zonesAvailable": "us-central1-b,us-central1-c"})
    )
    with pytest.raises(CapacityError) as caught:
        raise_for_operation(_failed("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", 503, [hint]), "us-central1-a", "vm-1")
    assert caught.value.zone == "us-central1-a"
    assert caught.value.zones_available == ("us-central1-b", "us-central1-c")
    assert isinstance(caught.value, TransientError)


def test_a_successful_operation_raises_nothing() -> None:
    raise_for_operation(compute_v1.Operation(status="DONE"), "us-central1-a", "vm-1")
