"""The Flask app: OpenAI-compatible endpoints, pool pass-through, health, and OpenAI-shaped errors.

``create_app`` does no I/O until ``start=True`` asks it to subscribe to the store; the WSGI entry point
(``gateway.wsgi``) calls it once per gunicorn worker. Each view authenticates from the headers first and
reads the body only after that, bounded by ``max_body_bytes``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from gateway import continuation, errors
from gateway.access import Exchange
from gateway.auth import Principal
from gateway.continuation import Kind
from gateway.errors import ApiError
from gateway.exchanges import EXCHANGE, Exchanges
from gateway.headers import upstream_headers
from gateway.intake import client_socket
from gateway.limits import Admission
from gateway.paths import backend_path, split_target
from gateway.payload import encode_object
from gateway.proxy import Call
from gateway.runtime import Dependencies, Gateway
from spotgate.fleet import PoolSpec

log = logging.getLogger(__name__)

EXTENSION = "spotgate.gateway"
_OPENAI = ("chat/completions", "completions", "embeddings")
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def create_app(deps: Dependencies, *, start: bool = True) -> Flask:
    """The gateway app; ``app.extensions["spotgate.gateway"]`` is its ``Gateway`` (call ``close`` on exit)."""
    app = Flask("gateway")
    app.url_map.merge_slashes = False  # '//' must reach the path checks, not be silently rewritten
    app.url_map.strict_slashes = False
    gateway = Gateway(deps)
    app.extensions[EXTENSION] = gateway
    app.wsgi_app = Exchanges(app.wsgi_app, gateway.finish, gateway.monotonic)  # type: ignore[method-assign]
    _register_errors(app)
    _register_routes(app, gateway)
    if start:
        gateway.start()
    return app


def _register_errors(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return Response(error.body(), status=error.status, headers=error.headers())

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        """Flask's own refusals (unknown path, wrong method) in the OpenAI shape, with a machine ``code``."""
        status = error.code or 500
        code = re.sub(r"[^a-z0-9]+", "_", error.name.lower()).strip("_")
        allow = getattr(error, "valid_methods", None)
        kind = "invalid_request_error" if status < 500 else "api_error"
        message = f"{error.name}: {request.method} {request.path}."
        return _api_error(ApiError(status, message, kind, code, allow=", ".join(sorted(allow)) if allow else None))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        exchange: Exchange | None = request.environ.get(EXCHANGE)
        log.exception("unhandled error", extra={"request_id": None if exchange is None else exchange.request_id})
        return _api_error(ApiError(500, "Internal gateway error.", "api_error", "internal_error"))


def _register_routes(app: Flask, gw: Gateway) -> None:
    @app.get("/healthz")
    def healthz() -> tuple[dict[str, object], int]:
        return gw.table.health(), 200 if gw.table.loaded else 503

    @app.get("/v1/models")
    def models() -> dict[str, object]:
        principal = _authenticate(gw, request.environ)
        gw.meter(principal)
        pools = [p for p in gw.fleet.pools if principal.allows_pool(p.name)]
        data = [_model_entry(name, p) for p in pools for name in p.model_names]
        return {"object": "list", "data": data}

    @app.get("/v1/models/<path:model>")
    def model(model: str) -> dict[str, object]:
        """One model, as the SDK's ``models.retrieve`` asks; 404 ``model_not_found`` outside the caller's pools."""
        principal = _authenticate(gw, request.environ)
        gw.meter(principal)
        pool = gw.fleet.pool_for_model(model)
        if pool is None or not principal.allows_pool(pool.name):
            raise errors.model_not_found(model)
        return _model_entry(model, pool)

    @app.post("/v1/<path:endpoint>")
    def openai(endpoint: str) -> Response:
        if endpoint not in _OPENAI:
            raise errors.not_found(f"Unknown endpoint /v1/{endpoint}.")
        environ = request.environ
        principal = _authenticate(gw, environ)
        with _admitted(gw, principal) as admission:
            body = gw.read_body(environ, principal, admission)
            payload, give_back_parsed = gw.parse_body(body, admission)
            call = _inference_call(environ, _pool_for(gw, principal, payload), endpoint, payload, body)
            # The call carries the bytes sent upstream: drop the parsed body (and the caller's bytes, if the
            # call's were re-encoded) before a plain request waits for its answer, and the parsed reservation.
            del payload, body
            give_back_parsed()
            return gw.forward(call, admission)

    @app.route("/pools/<pool>/", defaults={"sub": ""}, methods=_METHODS)
    @app.route("/pools/<pool>/<path:sub>", methods=_METHODS)
    def passthrough(pool: str, sub: str) -> Response:
        environ = request.environ
        principal = _authenticate(gw, environ)
        spec = gw.fleet.pool(pool)
        if spec is None or not principal.allows_pool(spec.name):  # 404 either way: pool names stay private
            raise errors.not_found(f"No pool named {pool!r}.")
        if not principal.allows_passthrough:
            raise errors.permission_denied("This key may call only the OpenAI endpoints (/v1/...).")
        path, query = split_target(_raw_target())
        upstream_path = backend_path(path, f"/pools/{pool}/")
        _check_passthrough(spec, request.method, upstream_path)
        target = upstream_path + (f"?{query}" if query else "")
        with _admitted(gw, principal) as admission:
            body = gw.read_body(environ, principal, admission) or None
            stream = "text/event-stream" in request.headers.get("Accept", "")
            call = _call(
                environ, spec, request.method, target, body, stream=stream, public_prefix=f"/pools/{spec.name}"
            )
            return gw.forward(call, admission)


def _inference_call(
    environ: dict[str, Any], pool: PoolSpec, endpoint: str, payload: dict[str, Any], body: bytes
) -> Call:
    """The upstream request of an OpenAI endpoint (ApiError 400/404), built from the parsed ``payload``."""
    upstream, strip_usage = _upstream_payload(endpoint, payload, pool)
    if upstream is not payload:
        body = encode_object(upstream)
    target, stream = f"/v1/{endpoint}", payload.get("stream") is True
    kind = continuation.continuable(target, upstream) if stream and pool.continuation else None
    return _call(environ, pool, "POST", target, body, stream=stream, inference=True, strip_usage=strip_usage,
                 continues=kind)  # fmt: skip


def _check_passthrough(pool: PoolSpec, method: str, path: str) -> None:
    """404 for a path the pool does not expose, 405 (with ``Allow``) for a method it does not allow there."""
    rules = pool.passthrough
    if not rules.allows_path(path):
        raise errors.not_found(f"Pool {pool.name!r} does not expose {path}.")
    if method not in rules.methods:
        raise errors.method_not_allowed(rules.methods)


def _authenticate(gw: Gateway, environ: dict[str, Any]) -> Principal:
    """The caller (ApiError 401/403 otherwise), named in the request's access line."""
    principal = gw.auth.authenticate(environ.get("HTTP_AUTHORIZATION"))
    environ[EXCHANGE].caller = principal.name
    return principal


@contextmanager
def _admitted(gw: Gateway, principal: Principal) -> Iterator[Admission]:
    """The caller's admission (429 from the headers alone); released here if the request fails before forwarding."""
    admission = gw.admit(principal)
    try:
        yield admission
    except BaseException:
        admission.release()
        raise


def _upstream_payload(endpoint: str, payload: dict[str, Any], pool: PoolSpec) -> tuple[dict[str, Any], bool]:
    """What the engine gets, and whether the caller's stream must lose the usage event the gateway asked for.

    An alias becomes the pool's model (engines know only their served name). A stream is asked for its
    ``usage`` (``stream_options.include_usage``), which the gateway needs for per-key accounting; if the
    caller did not ask for it, the final usage-only event is taken out of their stream again.
    """
    upstream = payload if payload["model"] == pool.model else {**payload, "model": pool.model}
    options = payload.get("stream_options")
    streamed = payload.get("stream") is True and endpoint in ("chat/completions", "completions")
    if not streamed or (options is not None and not isinstance(options, dict)):  # a bad value: the engine's 400
        return upstream, False
    if isinstance(options, dict) and options.get("include_usage") is True:
        return upstream, False
    return {**upstream, "stream_options": {**(options or {}), "include_usage": True}}, True


def _model_entry(name: str, pool: PoolSpec) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "spotgate", "pool": pool.name}


def _call(
    environ: dict[str, Any],
    pool: PoolSpec,
    method: str,
    target: str,
    body: bytes | None,
    *,
    stream: bool,
    inference: bool = False,
    strip_usage: bool = False,
    continues: Kind | None = None,
    public_prefix: str = "",
) -> Call:
    exchange: Exchange = environ[EXCHANGE]
    exchange.pool = pool.name
    rid = exchange.request_id
    headers = upstream_headers(environ, rid)
    return Call(pool, method, target, headers, body, stream, rid, inference, public_prefix, strip_usage, continues,
                client_socket(environ), exchange)  # fmt: skip


def _pool_for(gw: Gateway, principal: Principal, payload: dict[str, Any]) -> PoolSpec:
    model = payload.get("model")
    if model is None:
        raise errors.bad_request("You must provide a model parameter.", "model", "missing_model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise errors.bad_request("'model' must be a non-empty string.", "model", "invalid_type")
    pool = gw.fleet.pool_for_model(model)
    if pool is None:
        raise errors.model_not_found(model)
    _check_scope(principal, pool, model)
    return pool


def _check_scope(principal: Principal, pool: PoolSpec, model: str) -> None:
    if not principal.allows_pool(pool.name):  # as OpenAI does: a model you may not use does not exist for you
        raise errors.model_not_found(model)


def _raw_target() -> str:
    """The request target exactly as sent (before any percent-decoding), from the server's environ."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    query = environ.get("QUERY_STRING", "")
    return quote(request.path) + (f"?{query}" if query else "")
