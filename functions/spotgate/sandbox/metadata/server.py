"""The GCE metadata server, as far as google-auth and the VM agent ask it anything.

Production code gets its credentials from Application Default Credentials; on GCE, Cloud Run and Cloud
Functions those come from the metadata server. Emulating that server (instead of faking credentials in the
code) lets the sandbox run the exact production path: ``google.oauth2.id_token.fetch_id_token`` and
``google.auth.default()`` work unchanged once ``GCE_METADATA_HOST`` / ``GCE_METADATA_IP`` point here.

ID tokens are signed by a sandbox ``Identity``; this server also serves that identity's certificates at
``/oauth2/v1/certs`` (Google serves them at www.googleapis.com) so a verifier needs one URL, ``certs_url``.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from spotgate.clock import SystemClock
from spotgate.ports import Clock
from spotgate.sandbox.metadata.identity import Identity

log = logging.getLogger(__name__)

_ROOT = "/computeMetadata/v1"
_ACCOUNT = f"{_ROOT}/instance/service-accounts/default"
CERTS_PATH = "/oauth2/v1/certs"
DEFAULT_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: str
    content_type: str = "application/text"


class MetadataServer:
    """An HTTP metadata server on ``host``:``port`` (port 0 picks a free one; see ``port`` after ``start``).

    ``address`` (``host:port``) is the value for both ``GCE_METADATA_HOST`` and ``GCE_METADATA_IP``.
    """

    def __init__(
        self,
        identity: Identity,
        *,
        project: str,
        service_account: str,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        token_lifetime: timedelta = timedelta(hours=1),
    ) -> None:
        self._identity = identity
        self._project = project
        self._email = service_account
        self._bind = (host, port)
        self._clock = clock or SystemClock()
        self._scopes = scopes
        self._lifetime = token_lifetime
        self._preempted = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Bind and serve in a daemon thread; a no-op if already started."""
        with self._lock:
            if self._server is not None:
                return
            self._server = ThreadingHTTPServer(self._bind, _handler_for(self._route))
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-metadata", daemon=True)
            self._thread.start()
        log.info("metadata server listening", extra={"address": self.address})

    def stop(self) -> None:
        """Stop serving and release the port; a no-op if not running."""
        with self._lock:
            server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def port(self) -> int:
        """The bound port. Raises RuntimeError before ``start``."""
        if self._server is None:
            raise RuntimeError("metadata server is not started")
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        """``host:port``, the form ``GCE_METADATA_HOST`` and ``GCE_METADATA_IP`` take."""
        return f"{self._bind[0]}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def certs_url(self) -> str:
        """Where the signing certificates are served, for ``id_token.verify_token(certs_url=...)``."""
        return f"{self.url}{CERTS_PATH}"

    # controls --------------------------------------------------------------------------------------------
    @property
    def preempted(self) -> bool:
        return self._preempted.is_set()

    def set_preempted(self, value: bool) -> None:
        """What ``instance/preempted`` answers (``TRUE`` after an ACPI soft-off from a preemption)."""
        if value:
            self._preempted.set()
        else:
            self._preempted.clear()

    # routing ---------------------------------------------------------------------------------------------
    def _route(self, path: str, query: dict[str, list[str]], flavor: str | None) -> _Reply:
        path = path.rstrip("/") or "/"
        if path == "/":
            return _Reply(HTTPStatus.OK, "computeMetadata/\n")
        if path == CERTS_PATH:
            return _json(self._identity.certs_json())
        if not path.startswith(_ROOT):
            return _Reply(HTTPStatus.NOT_FOUND, "Not Found\n")
        if flavor is None or flavor.lower() != "google":
            # GCE refuses metadata reads without the header, so SSRF through a naive proxy cannot reach it.
            return _Reply(HTTPStatus.FORBIDDEN, "Missing required header: Metadata-Flavor\n")
        answer = self._answers().get(path)
        return answer(query) if answer else _Reply(HTTPStatus.NOT_FOUND, "Not Found\n")

    def _answers(self) -> dict[str, Callable[[dict[str, list[str]]], _Reply]]:
        return {
            _ACCOUNT: self._account,
            f"{_ACCOUNT}/email": lambda _q: _Reply(HTTPStatus.OK, self._email),
            f"{_ACCOUNT}/scopes": lambda _q: _Reply(HTTPStatus.OK, "\n".join(self._scopes) + "\n"),
            f"{_ACCOUNT}/token": self._token,
            f"{_ACCOUNT}/identity": self._id_token,
            f"{_ROOT}/project/project-id": lambda _q: _Reply(HTTPStatus.OK, self._project),
            f"{_ROOT}/instance/preempted": lambda _q: _Reply(HTTPStatus.OK, "TRUE" if self.preempted else "FALSE"),
        }

    def _account(self, query: dict[str, list[str]]) -> _Reply:
        if query.get("recursive", [""])[0].lower() != "true":
            return _Reply(HTTPStatus.OK, "aliases\nemail\nidentity\nscopes\ntoken\n")
        return _json({"aliases": ["default"], "email": self._email, "scopes": list(self._scopes)})

    def _token(self, _query: dict[str, list[str]]) -> _Reply:
        token = f"ya29.sandbox-{secrets.token_urlsafe(32)}"
        return _json({"access_token": token, "expires_in": int(self._lifetime.total_seconds()), "token_type": "Bearer"})

    def _id_token(self, query: dict[str, list[str]]) -> _Reply:
        audience = query.get("audience", [""])[0]
        if not audience:
            return _Reply(HTTPStatus.BAD_REQUEST, "non-empty audience parameter required\n")
        token = self._identity.sign_id_token(audience, self._email, now=self._clock.now(), lifetime=self._lifetime)
        return _Reply(HTTPStatus.OK, token)


def _json(value: object) -> _Reply:
    return _Reply(HTTPStatus.OK, json.dumps(value), "application/json")


def _handler_for(route: Callable[[str, dict[str, list[str]], str | None], _Reply]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            reply = route(parts.path, parse_qs(parts.query), self.headers.get("Metadata-Flavor"))
            body = reply.body.encode()
            self.send_response(reply.status)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("metadata request", extra={"request": format % args})

    return Handler
