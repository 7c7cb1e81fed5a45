"""Production entry point: settings in, a running gateway app out (``gateway.wsgi:create_production_app()``).

gunicorn calls the factory in each worker after forking (and after gevent's monkey-patching), so nothing
here runs at import time and every worker has its own store subscription and background threads.
"""

from __future__ import annotations

from flask import Flask


def create_production_app() -> Flask:
    """Build the store, publisher and token source from ``SPOTGATE_*`` settings and start the gateway."""
    import google.auth.transport.requests
    import requests

    from gateway.app import create_app
    from gateway.auth import CachingRequest
    from gateway.runtime import Dependencies
    from gateway.tokens import MetadataTokenSource
    from spotgate.bootstrap import build_publisher, build_store
    from spotgate.clock import SystemClock
    from spotgate.logs import configure_logging
    from spotgate.settings import read_gateway_settings, read_settings

    settings = read_settings()
    configure_logging(settings.log_level)
    fleet = settings.load_fleet()
    clock = SystemClock()
    http = google.auth.transport.requests.Request(requests.Session())
    deps = Dependencies(
        settings=read_gateway_settings(),
        fleet=fleet,
        store=build_store(settings, fleet),
        publisher=build_publisher(settings, fleet),
        clock=clock,
        token_source=MetadataTokenSource(clock, http),
        auth_request=CachingRequest(http),
        control_topic=settings.control_topic,
    )
    return create_app(deps)
