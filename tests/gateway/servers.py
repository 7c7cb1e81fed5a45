"""Tiny HTTP servers for tests: a trap that must never be reached, and an SSE source that notices hang-ups."""

from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Recorder:
    requests: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    headers: list[list[tuple[str, str]]] = field(default_factory=list)  # per request (ScriptedServer), as received
    disconnected: threading.Event = field(default_factory=threading.Event)


class RecordingServer:
    """A threaded HTTP server on ``host``; ``sse=True`` streams an event every 50 ms until the peer hangs up
    (the first one ``first_event_after`` seconds after the headers)."""

    def __init__(self, host: str, *, sse: bool = False, first_event_after: float = 0.0) -> None:
        self.recorder = Recorder()
        self._server = ThreadingHTTPServer((host, 0), _handler(self.recorder, sse, first_event_after))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def hostport(self) -> str:
        return self.url.removeprefix("http://")

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _handler(recorder: Recorder, sse: bool, first_event_after: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the body ends when the connection closes

        def _any(self) -> None:
            recorder.requests.append(f"{self.command} {self.path}")
            if not sse:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.flush()
            time.sleep(first_event_after)  # headers out, no event yet: a long prefill
            try:
                for n in range(400):  # at most 20 s
                    self.wfile.write(f"data: {n}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                recorder.disconnected.set()

        def do_GET(self) -> None:
            self._any()

        def do_POST(self) -> None:
            self._any()

        def do_PUT(self) -> None:
            self._any()

        def do_DELETE(self) -> None:
            self._any()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def send_raw(host: str, port: int, head: str, body: bytes = b"") -> int:
    """Send bytes exactly as given (no client-side normalisation) and return the status code."""
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(head.encode("latin-1") + body)
        reply = b""
        while b"\r\n" not in reply:
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


def raw_request(method: str, path: str, secret: str, *, body: str = "", extra: str = "", host: str = "gw") -> str:
    auth = f"Authorization: Bearer {secret}\r\n"
    length = f"Content-Length: {len(body.encode())}\r\n" if body or method == "POST" else ""
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{auth}{length}{extra}Connection: close\r\n\r\n{body}"


@dataclass(frozen=True)
class Script:
    """What a ScriptedServer answers: ``status``, ``content_type`` and ``body`` after ``delay`` seconds, or,
    with ``hang_up``, nothing at all (it reads the whole request and closes the connection)."""

    status: int = 200
    content_type: str = "application/json"
    body: bytes = b"{}"
    delay: float = 0.0
    hang_up: bool = False
    headers: tuple[tuple[str, str], ...] = ()


class ScriptedServer(RecordingServer):
    """A threaded HTTP server answering every request as ``script`` says; ``requests`` records them."""

    def __init__(self, host: str, script: Script) -> None:
        self.recorder = Recorder()
        self._server = ThreadingHTTPServer((host, 0), _scripted(self.recorder, script))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)


def _scripted(recorder: Recorder, script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            recorder.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            recorder.headers.append(list(self.headers.items()))
            recorder.requests.append(f"{self.command} {self.path}")
            if script.hang_up:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if _hung_up_within(self.connection, script.delay):
                recorder.disconnected.set()  # an engine aborts a request whose connection closed
                return
            self.send_response(script.status)
            self.send_header("Content-Type", script.content_type)
            host, port = self.server.server_address[:2]
            for name, value in script.headers:  # "{self}" stands for this server's own URL
                self.send_header(name, value.replace("{self}", f"http://{host}:{port}"))
            self.send_header("Content-Length", str(len(script.body)))
            self.end_headers()
            self.wfile.write(script.body)

        def do_GET(self) -> None:
            self._any()

        def do_POST(self) -> None:
            self._any()

        def do_PUT(self) -> None:
            self._any()

        def do_DELETE(self) -> None:
            self._any()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _hung_up_within(conn: socket.socket, seconds: float) -> bool:
    """Wait ``seconds``; True as soon as the peer closes the connection (it sends nothing else meanwhile)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([conn], [], [], left)
        if readable and conn.recv(1, socket.MSG_PEEK) == b"":
            return True
        if readable:
            time.sleep(min(left, 0.05))
    return False
