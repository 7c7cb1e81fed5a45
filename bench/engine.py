"""The sandbox engine, served from a listening socket with TCP_NODELAY (as uvicorn/vLLM serve).

Why: gevent's pywsgi writes a response's headers and body in two sends. Without TCP_NODELAY, on a reused
keep-alive connection the body waits for the peer's delayed ACK (about 40 ms on Linux), which would swamp
the sub-millisecond differences this benchmark measures. Accepted sockets inherit TCP_NODELAY from the
listener on Linux. The engine itself (``spotgate.sandbox.engine``) is used unchanged.

    python -m bench.engine --host H --port P --model M [engine options]
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    from gevent import monkey

    monkey.patch_all()
    import socket

    from gevent.pywsgi import WSGIServer

    from spotgate.sandbox.engine import Engine, parse_args

    host, port, options = parse_args(argv)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((host, port))
    listener.listen(4096)
    WSGIServer(listener, Engine(options), log=None, spawn=20_000).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
