"""Raw TCP servers for the upstream client's tests: each connection is served by a script of socket calls.

A script can do what an HTTP server library will not: close or reset after reading a request, answer
garbage, stop mid-body, send two responses to one request, or hold a body until the test says so.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator

Serve = Callable[[socket.socket, int], None]  # (connection, index of the connection from 0)


class RawServer:
    """Accepts connections on ``host`` and runs ``serve`` for each on its own thread; ``heads`` records the
    request heads (bytes up to the blank line) read by ``read_request``."""

    def __init__(self, host: str, serve: Serve) -> None:
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.05)
        self.url = "http://{}:{}".format(*self._listener.getsockname()[:2])
        self._serve = serve
        self._stop = threading.Event()
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.finished = threading.Event()  # set when a script returns (its connection is closed then)
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    @property
    def accepted(self) -> int:
        return len(self._connections)

    def __enter__(self) -> RawServer:
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._accepting.join(timeout=10)
        self._listener.close()
        for conn in self._connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(20)
            self._connections.append(conn)
            thread = threading.Thread(target=self._run, args=(conn, len(self._connections) - 1), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket, index: int) -> None:
        try:
            self._serve(conn, index)
        except OSError:
            pass
        finally:
            conn.close()
            self.finished.set()

    def read_request(self, conn: socket.socket) -> bytes:
        """Read one request (head and a Content-Length body) and record it; b"" if the peer closed first."""
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return b""
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
        while len(body) < length:
            body += conn.recv(65536)
        self.heads.append(head)
        self.bodies.append(body)
        return head


def reset(conn: socket.socket) -> None:
    """Close ``conn`` with a TCP reset (SO_LINGER 0), as a crashing process's kernel would."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def answer(body: bytes = b"{}", *extra: str) -> bytes:
    """A keep-alive 200 response with a Content-Length body."""
    head = ["HTTP/1.1 200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@contextlib.contextmanager
def unanswering_listener(host: str) -> Iterator[str]:
    """A listener whose accept queue is full: a new connection to it stays in SYN_SENT (the SYN is dropped)
    until the client gives up. Yields its URL."""
    listener = socket.socket()
    queued: list[socket.socket] = []
    try:
        listener.bind((host, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(4):  # more than the queue holds: the ones beyond it stay unanswered
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect((host, port))
            queued.append(filler)
        yield f"http://{host}:{port}"
    finally:
        for filler in queued:
            filler.close()
        listener.close()
