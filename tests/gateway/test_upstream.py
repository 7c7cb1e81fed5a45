"""The upstream client on the wire, against raw local servers: what it sends, how it classifies failures by
whether the request may have reached the engine, how it relays bodies, and what it does with connections.

These run in native threads (each test's client and the servers' threads); ``test_upstream_gevent.py`` runs
the same client in a gevent-patched process, as the gunicorn worker does.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway import hangup
from gateway.upstream import (
    StreamCutError,
    UnansweredError,
    UnreachableError,
    Upstreams,
    UpstreamTimeoutError,
    body_chunks,
    discard,
)
from tests.gateway.raw_servers import RawServer, answer, reset, unanswering_listener
from tests.gateway.stack import wait_until


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    client = Upstreams(connect_timeout=timedelta(seconds=5), read_timeout=timedelta(seconds=5), pool_size=4)
    try:
        yield client
    finally:
        client.close()


def _scripted(script: Callable[[RawServer, socket.socket], None]) -> Callable[[str], RawServer]:
    """A RawServer factory running ``script(server, connection)`` for each connection."""

    def make(host: str) -> RawServer:
        holder: list[RawServer] = []
        server = RawServer(host, lambda conn, index: script(holder[0], conn))
        holder.append(server)
        return server

    return make


def _served(host: str, *replies: bytes) -> RawServer:
    """A keep-alive server answering the requests on each connection with ``replies`` in turn."""

    def serve(server: RawServer, conn: socket.socket) -> None:
        for reply in replies:
            if not server.read_request(conn):
                return
            conn.sendall(reply)
        conn.recv(1)  # keep the connection until the client closes it

    return _scripted(serve)(host)


def _lines(head: bytes) -> list[str]:
    return head.decode("latin-1").split("\r\n")


# what is sent ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "target", "headers", "body", "expected"),
    [
        pytest.param("POST", "/v1/chat/completions", {"Content-Type": "application/json", "X-Custom": "v"}, b"{}",
                     ["POST /base/v1/chat/completions HTTP/1.1", "Host: {host}", "Content-Type: application/json",
                      "X-Custom: v", "Accept-Encoding: identity", "Content-Length: 2"], id="post-with-body"),
        pytest.param("GET", "/a%2Fb/./c?x=%2F&y=a%20b", {"User-Agent": "openai/1.0", "Accept-Encoding": "gzip"}, None,
                     ["GET /base/a%2Fb/./c?x=%2F&y=a%20b HTTP/1.1", "Host: {host}", "User-Agent: openai/1.0",
                      "Accept-Encoding: gzip"], id="target-and-headers-exactly-as-given"),
        pytest.param("POST", "/x", {}, None,
                     ["POST /base/x HTTP/1.1", "Host: {host}", "Accept-Encoding: identity", "Content-Length: 0"],
                     id="post-without-body-says-length-0"),
    ],
)  # fmt: skip
def test_the_request_goes_as_given_with_only_host_length_and_identity_encoding_added(
    upstreams: Upstreams, hosts: Iterator[str], *, method: str, target: str, headers: dict[str, str],
    body: bytes | None, expected: list[str],
) -> None:  # fmt: skip
    with _served(next(hosts), answer()) as server:
        response = upstreams.open(server.url + "/base/", method, target, headers, body)
        assert b"".join(body_chunks(response)) == b"{}"
    host = server.url.removeprefix("http://")
    assert _lines(server.heads[0]) == [line.replace("{host}", host) for line in expected]  # no User-Agent of ours
    assert server.bodies[0] == (body or b"")


@pytest.mark.parametrize(
    ("headers", "target"),
    [
        pytest.param({"X-Bad": "a\r\nInjected: 1"}, "/x", id="line-break-in-a-value"),
        pytest.param({"Bad Name": "v"}, "/x", id="space-in-a-name"),
        pytest.param({}, "/x y", id="space-in-the-target"),
        pytest.param({}, "/x\r\nInjected: 1", id="line-break-in-the-target"),
    ],
)
def test_what_cannot_be_written_on_the_wire_is_refused_before_connecting(
    upstreams: Upstreams, headers: dict[str, str], target: str
) -> None:
    with pytest.raises(ValueError, match="cannot send"):
        upstreams.open("http://127.0.0.1:9", "GET", target, headers, None)


def test_repeated_response_header_lines_all_come_back_in_order(upstreams: Upstreams, hosts: Iterator[str]) -> None:
    reply = answer(b"{}", "Set-Cookie: a=1", "X-Other: o", "set-cookie: b=2")
    with _served(next(hosts), reply) as server:
        response = upstreams.open(server.url, "GET", "/", {}, None)
        assert [(k, v) for k, v in response.lines if k.lower() == "set-cookie"] == [
            ("Set-Cookie", "a=1"),
            ("set-cookie", "b=2"),
        ]
        assert response.header("content-type") == "application/json"
        discard(response)


# failures, by whether the request may have reached the engine ------------------------------------------------
def _closes_after_reading(server: RawServer, conn: socket.socket) -> None:
    server.read_request(conn)
    conn.shutdown(socket.SHUT_RDWR)


def _resets_after_reading(server: RawServer, conn: socket.socket) -> None:
    server.read_request(conn)
    reset(conn)


def _answers_garbage(server: RawServer, conn: socket.socket) -> None:
    server.read_request(conn)
    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
    conn.recv(1)


def _closes_mid_head(server: RawServer, conn: socket.socket) -> None:
    server.read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Le")
    conn.shutdown(socket.SHUT_RDWR)


def _never_answers(server: RawServer, conn: socket.socket) -> None:
    server.read_request(conn)
    conn.recv(1)  # until the client gives up


@pytest.mark.parametrize(
    ("script", "error"),
    [
        pytest.param(_closes_after_reading, UnansweredError, id="closed-after-reading"),
        pytest.param(_resets_after_reading, UnansweredError, id="reset-after-reading"),
        pytest.param(_answers_garbage, UnansweredError, id="not-http"),
        pytest.param(_closes_mid_head, UnansweredError, id="closed-mid-head"),
        pytest.param(_never_answers, UpstreamTimeoutError, id="no-answer-within-read-timeout"),
    ],
)
def test_a_backend_that_got_the_request_but_gave_no_answer(
    hosts: Iterator[str], script: Callable[[RawServer, socket.socket], None], error: type[Exception]
) -> None:
    client = Upstreams(connect_timeout=timedelta(seconds=5), read_timeout=timedelta(seconds=0.5))
    with _scripted(script)(next(hosts)) as server, pytest.raises(error):
        client.open(server.url, "POST", "/v1/chat/completions", {}, b"{}")
    assert len(server.heads) == 1  # it did get the request
    client.close()


def test_a_refused_connection_is_unreachable(upstreams: Upstreams, hosts: Iterator[str]) -> None:
    closed = socket.create_server((next(hosts), 0))
    host, port = closed.getsockname()[:2]
    url = f"http://{host}:{port}"
    closed.close()
    with pytest.raises(UnreachableError):
        upstreams.open(url, "POST", "/v1/chat/completions", {}, b"{}")


def test_a_connect_timeout_is_unreachable(hosts: Iterator[str]) -> None:
    client = Upstreams(connect_timeout=timedelta(seconds=0.3), read_timeout=timedelta(seconds=5))
    with unanswering_listener(next(hosts)) as url, pytest.raises(UnreachableError):
        client.open(url, "POST", "/v1/chat/completions", {}, b"{}")
    client.close()


# bodies ------------------------------------------------------------------------------------------------------
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
LENGTH_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 20\r\n\r\n"
CLOSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
FIRST, SECOND = b"data: first-event\n\n", b"data: second-one\n\n"  # 19 and 18 bytes


@pytest.mark.parametrize(
    ("head", "first", "rest", "end"),
    [
        pytest.param(CHUNKED_HEAD, b"13\r\n" + FIRST + b"\r\n", b"12\r\n" + SECOND + b"\r\n0\r\n\r\n", False,
                     id="chunked"),
        pytest.param(LENGTH_HEAD.replace(b"20", b"37"), FIRST, SECOND, False, id="content-length"),
        pytest.param(CLOSE_HEAD, FIRST, SECOND, True, id="delimited-by-close"),
    ],
)  # fmt: skip
def test_each_piece_of_a_body_is_handed_on_as_soon_as_it_arrives(
    upstreams: Upstreams, hosts: Iterator[str], *, head: bytes, first: bytes, rest: bytes, end: bool
) -> None:
    go = threading.Event()

    def serve(server: RawServer, conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(head + first)
        go.wait(20)  # the rest only once the client has relayed the first piece
        conn.sendall(rest)
        if end:
            conn.shutdown(socket.SHUT_RDWR)
        conn.recv(1)

    with _scripted(serve)(next(hosts)) as server:
        chunks = body_chunks(upstreams.open(server.url, "POST", "/v1/chat/completions", {}, b"{}"))
        assert next(chunks) == FIRST  # would wait for ever (the test's timeout) if the client buffered
        go.set()
        assert b"".join(chunks) == SECOND


@pytest.mark.parametrize(
    ("sent"),
    [
        pytest.param(LENGTH_HEAD + b"data: only", id="content-length-short"),
        pytest.param(CHUNKED_HEAD + b"13\r\n" + FIRST + b"\r\n", id="chunked-without-last-chunk"),
    ],
)
def test_a_body_that_ends_early_is_a_stream_cut(upstreams: Upstreams, hosts: Iterator[str], sent: bytes) -> None:
    def serve(server: RawServer, conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(sent)
        conn.shutdown(socket.SHUT_RDWR)

    with _scripted(serve)(next(hosts)) as server:
        response = upstreams.open(server.url, "POST", "/v1/chat/completions", {}, b"{}")
        received: list[bytes] = []
        with pytest.raises(StreamCutError):
            received.extend(body_chunks(response))
    assert b"".join(received) in (b"data: only", FIRST)


def test_discard_wakes_a_reader_blocked_on_the_body(upstreams: Upstreams, hosts: Iterator[str]) -> None:
    def serve(server: RawServer, conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(CHUNKED_HEAD)
        conn.recv(1)  # sends no body: returns when the client shuts the connection

    outcome: list[BaseException] = []
    with _scripted(serve)(next(hosts)) as server:
        response = upstreams.open(server.url, "POST", "/v1/chat/completions", {}, b"{}")

        def read() -> None:
            try:
                list(body_chunks(response))
            except BaseException as e:
                outcome.append(e)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert not wait_until(lambda: not reader.is_alive(), timeout=0.3)  # blocked on the body
        discard(response)  # from another thread, as the relay's close does
        reader.join(10)
        assert not reader.is_alive()
        assert server.finished.wait(10)  # the backend saw the connection close
    assert [type(e) for e in outcome] == [StreamCutError]


# connections -------------------------------------------------------------------------------------------------
def test_a_connection_is_reused_once_its_response_was_read(upstreams: Upstreams, hosts: Iterator[str]) -> None:
    with _served(next(hosts), answer(), answer()) as server:
        for _ in range(2):
            assert b"".join(body_chunks(upstreams.open(server.url, "GET", "/", {}, None))) == b"{}"
        assert server.accepted == 1


def test_an_idle_connection_the_backend_closed_is_replaced_not_reported_unanswered(
    upstreams: Upstreams, hosts: Iterator[str]
) -> None:
    """An engine's keep-alive timeout closes the pooled connection; the next request must not fail with 502."""

    def serve(server: RawServer, conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(answer())
        conn.shutdown(socket.SHUT_RDWR)  # idle: closed right after the answer

    with _scripted(serve)(next(hosts)) as server:
        assert b"".join(body_chunks(upstreams.open(server.url, "GET", "/", {}, None))) == b"{}"
        assert server.finished.wait(10)
        assert b"".join(body_chunks(upstreams.open(server.url, "GET", "/", {}, None))) == b"{}"
        assert server.accepted == 2


def test_a_second_response_to_one_request_is_neither_relayed_nor_left_for_the_next_request(
    upstreams: Upstreams, hosts: Iterator[str]
) -> None:
    """llhttp parses bytes after a complete response as the next response; their body must not be appended."""
    with _served(next(hosts), answer(b"x") + answer(b"y")) as server:
        assert b"".join(body_chunks(upstreams.open(server.url, "GET", "/", {}, None))) == b"x"
        assert b"".join(body_chunks(upstreams.open(server.url, "GET", "/", {}, None))) == b"x"  # a new connection
        assert server.accepted == 2


def test_a_burst_beyond_the_pool_size_opens_more_connections_instead_of_waiting(hosts: Iterator[str]) -> None:
    client = Upstreams(connect_timeout=timedelta(seconds=5), read_timeout=timedelta(seconds=5), pool_size=1)

    def serve(server: RawServer, conn: socket.socket) -> None:
        server.read_request(conn)
        conn.sendall(CHUNKED_HEAD)  # a long stream: headers, then nothing
        conn.recv(1)

    with _scripted(serve)(next(hosts)) as server:
        streams = [client.open(server.url, "POST", "/v1/chat/completions", {}, b"{}") for _ in range(3)]
        assert server.accepted == 3
        for response in streams:
            discard(response)
    client.close()


# hang-ups ----------------------------------------------------------------------------------------------------
def test_a_hang_up_ends_a_request_still_connecting_without_blaming_the_backend(hosts: Iterator[str]) -> None:
    """The socket is registered before it connects, so the hang-up shuts it down in SYN_SENT: the attempt ends
    at once (not after connect_timeout) as a request that was not answered, not as an unreachable backend
    (which would count toward ejecting it)."""
    client = Upstreams(connect_timeout=timedelta(seconds=60), read_timeout=timedelta(seconds=60))
    outcome: list[BaseException] = []
    with unanswering_listener(next(hosts)) as url, hangup.watch(None) as cancel:

        def attempt() -> None:
            try:
                client.open(url, "POST", "/v1/chat/completions", {}, b"{}")
            except BaseException as e:
                outcome.append(e)

        trying = threading.Thread(target=contextvars.copy_context().run, args=(attempt,), daemon=True)
        trying.start()
        assert wait_until(lambda: bool(cancel._connections))  # registered, connecting
        cancel.cancel()
        trying.join(10)
        assert not trying.is_alive()
    assert [type(e) for e in outcome] == [UnansweredError]
    client.close()


def test_a_hang_up_shuts_the_connection_waiting_for_the_answer(upstreams: Upstreams, hosts: Iterator[str]) -> None:
    outcome: list[BaseException] = []
    with _scripted(_never_answers)(next(hosts)) as server, hangup.watch(None) as cancel:

        def attempt() -> None:
            try:
                upstreams.open(server.url, "POST", "/v1/chat/completions", {}, b"{}")
            except BaseException as e:
                outcome.append(e)

        trying = threading.Thread(target=contextvars.copy_context().run, args=(attempt,), daemon=True)
        trying.start()
        assert wait_until(lambda: bool(server.heads))
        cancel.cancel()
        trying.join(10)
        assert server.finished.wait(10)  # the backend saw the close (an engine aborts the request)
    assert [type(e) for e in outcome] == [UnansweredError]


# HTTPS (overflow services) -----------------------------------------------------------------------------------
def _self_signed(tmp_path: Path, ip: str) -> tuple[Path, Path]:
    """A certificate (and its key) for ``ip``, signed by itself: trusted only where it is named as a CA file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_file, key_file


def _tls_server(host: str, cert: Path, key: Path) -> RawServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def serve(server: RawServer, conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True) as tls:
            server.read_request(tls)
            tls.sendall(answer(b'{"tls":true}'))
            tls.recv(1)

    return _scripted(serve)(host)


@pytest.mark.parametrize("trusted", [pytest.param(True, id="trusted"), pytest.param(False, id="untrusted")])
def test_https_verifies_the_backend_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hosts: Iterator[str], *, trusted: bool
) -> None:
    host = next(hosts)
    cert, key = _self_signed(tmp_path, host)
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # OpenSSL's default CA file: read by create_default_context
    client = Upstreams(connect_timeout=timedelta(seconds=5), read_timeout=timedelta(seconds=5))
    with _tls_server(host, cert, key) as server:
        address = server.url.replace("http://", "https://")
        if trusted:
            assert b"".join(body_chunks(client.open(address, "GET", "/v1/models", {}, None))) == b'{"tls":true}'
            assert _lines(server.heads[0])[:2] == ["GET /v1/models HTTP/1.1", f"Host: {server.url[7:]}"]
        else:
            with pytest.raises(UnreachableError, match="CERTIFICATE_VERIFY_FAILED"):
                client.open(address, "GET", "/v1/models", {}, None)
            assert not server.heads  # no request byte left
        client.close()  # before the server stops: its TLS socket waits for the client's close


# found by the review of the client (session 4) ---------------------------------------------------------------
def test_an_answer_given_before_the_body_was_read_is_relayed_not_reported_unanswered(
    upstreams: Upstreams, hosts: Iterator[str]
) -> None:
    """A backend refusing a large upload on its headers alone answers and closes with the body unread (the
    kernel then resets the connection): the caller gets that answer, not a 502 for a backend that gave none."""

    def refuse(server: RawServer, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno")
        reset(conn)  # what closing with the rest of the upload unread does

    with _scripted(refuse)(next(hosts)) as server:
        response = upstreams.open(server.url, "POST", "/v1/chat/completions", {}, b"x" * (20 << 20))
        assert (response.status, b"".join(body_chunks(response))) == (413, b"no")


def test_trailer_fields_of_a_chunked_answer_are_not_taken_for_its_headers(
    upstreams: Upstreams, hosts: Iterator[str]
) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
               b"3\r\nabc\r\n0\r\nX-Trailer: a\r\nContent-Type: text/evil\r\nX-Last: b\r\n\r\n")  # fmt: skip
    with _served(next(hosts), chunked) as server:
        response = upstreams.open(server.url, "GET", "/", {}, None)
        assert response.lines == [("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")]
        assert b"".join(body_chunks(response)) == b"abc"


def test_the_status_is_the_answers_own_not_that_of_bytes_after_it(upstreams: Upstreams, hosts: Iterator[str]) -> None:
    """Bytes after a complete answer that parse as another response must not lend it their status."""
    with _served(next(hosts), answer(b"ok") + b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n") as server:
        response = upstreams.open(server.url, "GET", "/", {}, None)
        assert (response.status, b"".join(body_chunks(response))) == (200, b"ok")


def test_a_connection_idle_past_max_idle_is_not_reused(hosts: Iterator[str]) -> None:
    """An engine's keep-alive timeout may close a connection at the instant it is reused, before the close
    is visible: one idle that long is replaced instead (the engine keeps it open here, so only age decides)."""
    client = Upstreams(connect_timeout=timedelta(seconds=5), read_timeout=timedelta(seconds=5), max_idle=0.2)
    try:
        with _served(next(hosts), answer(), answer(), answer()) as server:
            for pause in (0.0, 0.4):
                time.sleep(pause)
                assert b"".join(body_chunks(client.open(server.url, "GET", "/", {}, None))) == b"{}"
            assert server.accepted == 2
    finally:
        client.close()
