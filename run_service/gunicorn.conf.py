"""gunicorn settings for the gateway on Cloud Run (``gunicorn -c run_service/gunicorn.conf.py ...``).

Worker class: gevent, chosen by measurement (docs/gateway.md): one gevent worker holds 1,000+ concurrent
SSE streams in a few hundred MiB and adds about a millisecond per proxied request, where gthread needs a
thread per open stream. Cloud Run sends SIGTERM and kills the container 10 s later, so the graceful timeout
is shorter than that; ``timeout`` is the worker heartbeat (gevent workers heartbeat from their own
greenlet), not a request limit, so hour-long streams are fine. Request limits are Cloud Run's (60 min).

This file is gunicorn's own configuration, read by gunicorn; like ``spotgate.settings`` it is a place where
the environment is read (``PORT`` and ``WEB_CONCURRENCY`` are the platform's variables, not spotgate's).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

bind = [f"0.0.0.0:{os.environ.get('PORT', '8080')}"]


def vcpus(cgroup: str = "/sys/fs/cgroup") -> int:
    """The container's vCPUs: its cgroup CPU quota (what Cloud Run's ``cpu`` limit sets), else the CPU count.

    ``os.cpu_count()`` alone reports the host's CPUs inside a container, not the instance's allotment.
    """
    try:
        with open(f"{cgroup}/cpu.max") as limits:  # cgroup v2: "200000 100000", or "max 100000" for none
            quota, period = limits.read().split()[:2]
        if quota != "max":
            return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def worker_count(env: Mapping[str, str], cgroup: str = "/sys/fs/cgroup") -> int:
    """One worker per vCPU (each worker is one gevent loop on one core); ``WEB_CONCURRENCY`` overrides."""
    return int(env.get("WEB_CONCURRENCY") or vcpus(cgroup))


workers = worker_count(os.environ)
worker_class = "gateway.worker.HeaderTimeoutWorker"  # gevent, plus a header-read timeout
worker_connections = 2000  # concurrent requests per worker: Cloud Run allows up to 1,000 per instance
timeout = 30
graceful_timeout = 8
keepalive = 620  # above the Google front end's 600 s idle timeout, so it never reuses a closed connection
accesslog = None  # the gateway writes its own access line per request (gateway/access.py), with the key
logger_class = "gateway.worker.Logger"  # gunicorn's, minus the access record it would build and discard
errorlog = "-"
loglevel = "warning"
# gunicorn's own records as JSON lines too (spotgate.logs.JsonFormatter), like every other logger's: the root
# handler set here is the one spotgate.logs.configure_logging then finds and keeps.
_JSON_STDERR = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "spotgate.logs.JsonFormatter"}},
    "handlers": {"json": _JSON_STDERR},
    "root": {"level": "WARNING", "handlers": ["json"]},
    "loggers": {
        "gunicorn.error": {"level": "WARNING", "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
    },
}
forwarded_allow_ips = ""  # X-Forwarded-* are never trusted (and never used for routing)
proxy_allow_ips = ""
limit_request_line = 8190
limit_request_fields = 100


def post_fork(server: Any, worker: Any) -> None:
    """Make gRPC (Firestore listeners, Pub/Sub) cooperate with gevent before the app is loaded."""
    if hasattr(worker, "header_timeout"):
        from spotgate.settings import read_gateway_settings

        worker.header_timeout = read_gateway_settings().header_timeout.total_seconds()
    if server.cfg.worker_class_str in ("gevent", "gateway.worker.HeaderTimeoutWorker"):
        from gevent import monkey

        monkey.patch_all()  # gunicorn patches again just after this; patching twice is a no-op
        import grpc.experimental.gevent as grpc_gevent

        grpc_gevent.init_gevent()


def post_worker_init(worker: Any) -> None:
    """Move everything loaded at start-up out of the garbage collector's reach.

    The Google client libraries leave ~90k long-lived objects; a full collection walking them pauses the
    worker for 50 ms or more (measured), and under gevent that pause stalls every open request at once.
    Frozen objects are never scanned again, so collections only see per-request garbage.
    """
    import gc

    gc.collect()
    gc.freeze()


def worker_exit(server: Any, worker: Any) -> None:
    """Flush activity and close the store subscription before the worker goes away."""
    app = getattr(worker, "wsgi", None)
    gateway = getattr(app, "extensions", {}).get("spotgate.gateway")
    if gateway is not None:
        gateway.close()
