"""A WSGI app served on a loopback address and an ephemeral port, in a background thread.

Every sandbox API binds port 0 and reports the port the kernel chose, so several sandboxes (parallel
tests) never collide. Threaded, because ``zoneOperations.wait`` holds its request open.
"""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request: the control plane polls these APIs, and errors still go to logging."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class LocalServer:
    """``url`` is ``http://HOST:PORT`` once constructed; ``close`` stops serving and frees the port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", name: str = "sandbox-api") -> None:
        self._server = make_server(host, 0, app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://{host}:{self._server.server_port}"
        # A short poll interval makes close() prompt; the cost is a few idle wake-ups per second.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
