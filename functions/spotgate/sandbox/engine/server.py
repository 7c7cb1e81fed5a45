"""A fake OpenAI-compatible inference engine: what runs on a simulated GPU VM or Cloud Run overflow service.

It is a process of its own (``python -m spotgate.sandbox.engine.server``) so that killing it behaves like losing a
VM: open streams are cut by the kernel, not politely closed. It serves with gevent's ``pywsgi`` (the
monkey-patching happens only in ``main``, inside this process), because one engine must hold thousands of
concurrent SSE streams cheaply for the gateway benchmarks; a greenlet per stream costs a few kilobytes.

Playing a VM engine: the health path (``--health-path``, default ``/health``) answers 503 until the
model-load delay has passed, then 200. Playing a Cloud Run service (``--audience``/``--certs-url``/
``--invoker``): every request except the health path needs a Google ID token for the audience, signed by
a key from the certs URL and naming an allowed invoker, like Cloud Run IAM (401 when missing or invalid,
403 for another principal). ``--cold-start`` plays scale-to-zero: while min instances
is 0 and the service has been idle for ``--scale-down-after``, the next request first waits the cold start
(concurrent requests share one cold start). ``POST /_sandbox/scaling {"min_instances": n}`` sets min
instances; with 1 or more the service is warm at once (the sandbox models the warm-up as instantaneous).
Every response carries ``x-spotgate-backend`` so tests can tell which backend answered.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from spotgate.errors import PermissionDeniedError
from spotgate.sandbox.cloudrun.iam import InvokerCheck, UnauthenticatedError
from spotgate.sandbox.engine import completion
from spotgate.sandbox.engine.completion import Completion
from spotgate.sandbox.engine.options import EngineOptions, parse_args

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
_STATUS = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 403: "403 Forbidden"}
_STATUS |= {404: "404 Not Found", 405: "405 Method Not Allowed", 503: "503 Service Unavailable"}


class HttpError(Exception):
    """An OpenAI-shaped error response, raised anywhere in request handling."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", **extra: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.body = completion.error_body(message, kind, extra.get("param"), extra.get("code"))


@dataclass(slots=True)
class ScaleState:
    """Scale-to-zero bookkeeping: when the last request touched the service and when a cold start ends."""

    min_instances: int
    last_active: float = float("-inf")
    ready_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Engine:
    """The WSGI application. Create one per process; ``started`` anchors the model-load delay."""

    def __init__(self, options: EngineOptions, started: float | None = None) -> None:
        self.options = options
        self.started = time.monotonic() if started is None else started
        self.created = int(time.time())  # wall clock, for /v1/models "created"
        self.scale = ScaleState(min_instances=options.min_instances)
        self._verifier: InvokerCheck | None = None
        self._verifier_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, headers, body = self._dispatch(environ)
        except HttpError as e:
            status, headers, body = e.status, [], [_json(e.body)]
        headers = [*headers, ("x-spotgate-backend", self.options.name)]
        if isinstance(body, list):
            headers.append(("content-length", str(sum(len(b) for b in body))))
        start_response(_STATUS.get(status, f"{status} Error"), headers)
        return body

    def _dispatch(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path == self.options.health_path:
            return self._health()
        if path == "/_sandbox/scaling":
            return self._scaling(environ, method)
        if self.options.audience:
            self._authorize(environ.get("HTTP_AUTHORIZATION", ""))
        self._await_instance()
        routes: dict[str, Callable[[dict[str, Any]], tuple[int, list[tuple[str, str]], Iterable[bytes]]]] = {
            "/v1/chat/completions": self._chat,
            "/v1/completions": self._text,
            "/v1/embeddings": self._embeddings,
        }
        if path == "/v1/models":
            return _json_response(200, self._models())
        if path not in routes:
            raise HttpError(404, f"Unknown path {path}", code="not_found")
        if method != "POST":
            raise HttpError(405, f"Use POST for {path}", code="method_not_allowed")
        try:
            return routes[path](_read_json(environ))
        finally:
            self.scale.last_active = time.monotonic()

    def verifier(self) -> InvokerCheck:
        """The ID-token check, built on first use: google-auth's imports take about a second."""
        with self._verifier_lock:
            if self._verifier is None:
                self._verifier = InvokerCheck(
                    self.options.audience or "", self.options.certs_url or "", self.options.invokers
                )
            return self._verifier

    def _authorize(self, authorization: str) -> None:
        try:
            self.verifier().check(authorization)
        except UnauthenticatedError as e:
            raise HttpError(401, str(e), "authentication_error", code="unauthorized") from e
        except PermissionDeniedError as e:
            raise HttpError(403, str(e), "permission_error", code="forbidden") from e

    def loaded(self) -> bool:
        """The model is loaded: at ``ready_at`` (a VM's boot plus load) or ``load_delay`` after start."""
        if self.options.ready_at is not None:
            return time.time() >= self.options.ready_at
        return time.monotonic() - self.started >= self.options.load_delay

    def _health(self) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        if not self.loaded():
            return _json_response(503, {"status": "loading", "model": self.options.model})
        return _json_response(200, {"status": "ok", "model": self.options.model})

    def _scaling(self, environ: dict[str, Any], method: str) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        if not str(environ.get("REMOTE_ADDR", "")).startswith("127."):
            raise HttpError(403, "scaling is set by the sandbox over loopback only", "permission_error")
        if method == "POST":
            value = _read_json(environ).get("min_instances")
            if not isinstance(value, int) or value < 0:
                raise HttpError(400, "min_instances must be a non-negative integer", param="min_instances")
            self.scale.min_instances = value
        return _json_response(200, {"min_instances": self.scale.min_instances, "warm": self._warm()})

    def _warm(self) -> bool:
        now = time.monotonic()
        if self.scale.min_instances > 0 or self.options.cold_start <= 0:
            return True
        return now - self.scale.last_active < self.options.scale_down_after or now < self.scale.ready_at

    def _await_instance(self) -> None:
        """Wait out a cold start when the service is scaled to zero; requests during one share it."""
        with self.scale.lock:
            if not self._warm():
                self.scale.ready_at = time.monotonic() + self.options.cold_start
            self.scale.last_active = time.monotonic()
            wait = self.scale.ready_at - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _models(self) -> dict[str, Any]:
        names = (self.options.model, *self.options.aliases)
        data = [{"id": n, "object": "model", "created": self.created, "owned_by": "spotgate"} for n in names]
        return {"object": "list", "data": data}

    def _check_model(self, body: dict[str, Any]) -> str:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise HttpError(400, "you must provide a model parameter", param="model", code="missing_required_parameter")
        if model not in (self.options.model, *self.options.aliases):
            raise HttpError(404, f"The model `{model}` does not exist.", param="model", code="model_not_found")
        return model

    def _chat(self, body: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        model = self._check_model(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HttpError(
                400, "'messages' is a required property", param="messages", code="missing_required_parameter"
            )
        context = completion.chat_context(messages, continue_final=_continues(body))
        return self._answer(body, completion.complete("chat", model, context, *_limits(body)))

    def _text(self, body: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        model = self._check_model(body)
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            prompt = "\n".join(str(p) for p in prompt)
        if not isinstance(prompt, str):
            raise HttpError(400, "'prompt' is a required property", param="prompt", code="missing_required_parameter")
        return self._answer(body, completion.complete("text", model, completion.text_context(prompt), *_limits(body)))

    def _embeddings(self, body: dict[str, Any]) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        model = self._check_model(body)
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not inputs:
            raise HttpError(400, "'input' is a required property", param="input", code="missing_required_parameter")
        dimensions = body.get("dimensions", completion.EMBEDDING_DIMENSIONS)
        if not isinstance(dimensions, int) or not 1 <= dimensions <= 4096:
            raise HttpError(400, "dimensions must be an integer from 1 to 4096", param="dimensions")
        return _json_response(200, completion.embeddings_body(model, [str(i) for i in inputs], dimensions))

    def _answer(self, body: dict[str, Any], c: Completion) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        if body.get("stream") is True:
            options = body.get("stream_options") or {}
            usage = isinstance(options, dict) and options.get("include_usage") is True
            headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
            return 200, headers, self._stream(c, usage)
        self._pace(c.completion_tokens)
        return _json_response(200, completion.response_body(c))

    def _pace(self, tokens: int) -> None:
        time.sleep(self.options.ttft + max(0, tokens - 1) / self.options.tokens_per_second)

    def _stream(self, c: Completion, usage: bool) -> Iterator[bytes]:
        time.sleep(self.options.ttft)
        yield completion.stream_chunk(c, None, with_usage=usage)
        for index in range(c.completion_tokens):
            if index:
                time.sleep(1 / self.options.tokens_per_second)
            yield completion.stream_chunk(c, index, with_usage=usage)
        yield completion.stream_chunk(c, None, final=True, with_usage=usage)
        if usage:
            yield completion.usage_chunk(c)
        yield completion.DONE
        self.scale.last_active = time.monotonic()


def _continues(body: dict[str, Any]) -> bool:
    """vLLM's chat-template switches: continue the final message instead of opening a new assistant turn.

    vLLM refuses both at once (its 400 message is kept), and ``add_generation_prompt`` defaults to true.
    """
    continue_final = body.get("continue_final_message", False)
    add_prompt = body.get("add_generation_prompt", True)
    for name, value in (("continue_final_message", continue_final), ("add_generation_prompt", add_prompt)):
        if not isinstance(value, bool):
            raise HttpError(400, f"{name} must be a boolean", param=name, code="invalid_value")
    if continue_final and add_prompt:
        raise HttpError(
            400, "Cannot set both `continue_final_message` and `add_generation_prompt` to True.", code="invalid_value"
        )
    return bool(continue_final)


def _limits(body: dict[str, Any]) -> tuple[completion.Limits, int]:
    """The request's length controls and its ``created`` time. Raises HttpError for invalid values."""
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = completion.DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
    min_tokens = body.get("min_tokens", 0)
    for name, value, low in (("max_tokens", max_tokens, 1), ("min_tokens", min_tokens, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise HttpError(400, f"{name} must be an integer >= {low}", param=name, code="invalid_value")
    limits = completion.Limits(max_tokens, min_tokens, body.get("ignore_eos") is True)
    return limits, int(time.time())


def _read_json(environ: dict[str, Any]) -> dict[str, Any]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read()
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as e:
        raise HttpError(400, f"We could not parse the JSON body of your request: {e}", code="invalid_json") from e
    if not isinstance(body, dict):
        raise HttpError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _json_response(status: int, body: dict[str, Any]) -> tuple[int, list[tuple[str, str]], list[bytes]]:
    return status, [("content-type", "application/json")], [_json(body)]


def _watch_parent(parent: int) -> None:
    """Exit when the process that started us is gone (a backstop to PR_SET_PDEATHSIG)."""
    import gevent

    while os.getppid() == parent:
        gevent.sleep(0.5)
    os._exit(0)


def _raise_file_limit() -> None:
    """Lift the soft open-files limit to the hard one: each open stream is a socket."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _listener(host: str, port: int) -> socket.socket:
    """A listening socket with TCP_NODELAY, as vLLM's uvicorn serves.

    pywsgi writes a response's headers and body in two sends; without TCP_NODELAY, on a reused keep-alive
    connection the body waits for the peer's delayed ACK (~40 ms on Linux). Accepted sockets inherit the
    option. Backlog 4096: benchmarks open a thousand streams at once and the default would drop SYNs.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((host, port))
    listener.listen(4096)
    return listener


def main(argv: list[str] | None = None) -> None:
    from gevent import monkey

    monkey.patch_all()
    import gevent
    from gevent.pywsgi import WSGIServer

    host, port, options = parse_args(argv)
    gevent.spawn(_watch_parent, os.getppid())
    engine = Engine(options)
    _raise_file_limit()
    server = WSGIServer(_listener(host, port), engine, log=None, spawn=10_000)
    server.start()  # binds now, so --port 0 reports the real port; the first stdout line is the readiness signal
    url = f"http://{host}:{server.server_port}"
    print(json.dumps({"severity": "INFO", "message": "engine listening", "url": url}), flush=True)
    if options.audience:
        gevent.spawn(engine.verifier)  # warm the ID-token check after announcing, not before
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
