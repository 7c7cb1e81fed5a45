"""Pytest fixtures for the Node Firestore emulator, so store tests run the real google-cloud-firestore client.

Use from any test folder by importing the fixtures into its ``conftest.py``::

    from tests.firestore_emulator import firestore_client, firestore_emulator, firestore_prefix  # noqa: F401

(or list ``"tests.firestore_emulator"`` in ``pytest_plugins`` of the root ``tests/conftest.py``).

- ``firestore_emulator`` (session): one emulator process on a loopback port chosen by the OS. Yields a
  ``FirestoreEmulator`` with ``host`` (for ``FIRESTORE_EMULATOR_HOST`` in child processes) and
  ``client()``. The process group is killed at teardown, also when a test failed.
- ``firestore_client`` (function): a client for this test, closed afterwards.
- ``firestore_prefix`` (function): a collection prefix unique to this test. The emulator is shared by the
  session, so tests isolate themselves by prefix instead of restarting it.

The emulator is installed by ``make install`` into ``tests/emulators/node_modules``; without it the
fixture fails with that instruction rather than skipping, so a missing emulator is never silently green.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

EMULATOR_DIR = Path(__file__).resolve().parent / "emulators"
EMULATOR_PACKAGE = EMULATOR_DIR / "node_modules" / "@firestore-emulator" / "server"
PROJECT = "spotgate-test"
START_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 5.0

# FirestoreServer.start(port) binds 0.0.0.0; tests may bind loopback only, so the script binds the
# emulator's gRPC server itself, on a port the OS picks (no free-port race), and prints that port.
_SERVER_SCRIPT = """
const { FirestoreServer } = require("@firestore-emulator/server");
const { ServerCredentials } = require("@grpc/grpc-js");
const emulator = new FirestoreServer();
emulator.server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) => {
  if (err) { console.error(err.message); process.exit(1); }
  console.log(`LISTENING ${port}`);
});
"""

_client_env_lock = threading.Lock()


@dataclass(frozen=True)
class FirestoreEmulator:
    """A running emulator: ``host`` is ``127.0.0.1:PORT``."""

    host: str

    def client(self) -> firestore.Client:
        """A new client bound to this emulator; the caller closes it (``client.close()``)."""
        # The client reads FIRESTORE_EMULATOR_HOST once, in its constructor; set it only for that moment
        # so the rest of the test session (and its child processes) see an unchanged environment.
        with _client_env_lock, pytest.MonkeyPatch.context() as env:
            env.setenv("FIRESTORE_EMULATOR_HOST", self.host)
            return firestore.Client(project=PROJECT, credentials=AnonymousCredentials())


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirestoreEmulator]:
    """Start the Node Firestore emulator for the session and stop its whole process group at the end."""
    node = shutil.which("node")
    if not EMULATOR_PACKAGE.is_dir() or node is None:
        pytest.fail(
            f"the Firestore emulator is not installed ({EMULATOR_PACKAGE} or `node` is missing): run `make install`"
        )
    log = tmp_path_factory.mktemp("firestore-emulator") / "emulator.log"
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [node, "-e", _SERVER_SCRIPT],
            cwd=EMULATOR_DIR,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown kills everything it spawned
        )
        try:
            port = _wait_for_port(proc, log)
            yield FirestoreEmulator(host=f"127.0.0.1:{port}")
        finally:
            _stop(proc)


@pytest.fixture
def firestore_client(firestore_emulator: FirestoreEmulator) -> Iterator[firestore.Client]:
    client = firestore_emulator.client()
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def firestore_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def _wait_for_port(proc: subprocess.Popen[bytes], log: Path) -> int:
    """The port the emulator printed, once it accepts connections; fails with its output otherwise."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        port = _printed_port(log)
        if port is not None and _accepts(port):
            return port
        time.sleep(0.05)
    pytest.fail(f"the Firestore emulator did not start within {START_TIMEOUT_SECONDS} s; output:\n{log.read_text()}")


def _printed_port(log: Path) -> int | None:
    for line in log.read_text().splitlines():
        if line.startswith("LISTENING "):
            return int(line.split()[1])
    return None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=STOP_TIMEOUT_SECONDS)
