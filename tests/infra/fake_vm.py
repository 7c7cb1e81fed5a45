"""A Compute Engine VM in miniature for the agent scripts: metadata server, Pub/Sub publish, engine, docker.

One loopback HTTP server plays the metadata server (``/computeMetadata/v1/…``, requires the
``Metadata-Flavor: Google`` header like the real one), the Pub/Sub REST publish endpoint
(``/v1/projects/P/topics/T:publish``), Compute Engine's ``instances.get`` of this VM
(``/compute/v1/projects/P/zones/Z/instances/N``: ``lastStopTimestamp`` is present once the VM has been
stopped, as on GCE) and the engine (``/health``, ``/metrics``). ``docker``, ``gcsfuse``, ``mountpoint``,
``apt-get``, ``dpkg``, ``nvidia-ctk`` and ``systemctl`` are small scripts on ``PATH`` that keep their state
in files. Everything that happens is appended, in order, to one events file, so tests can assert the order
of effects without timing.

Power cuts: with ``FAKE_POWER_OFF_AT`` set to the start of a command line (``"apt-get update"``,
``"docker run -d"``…), the first such call kills the agent's whole process group (``kill -9 0``; run the
script in its own session), as a preemption or Terraform's stop of a just-created VM would. A cut during
``apt-get``/``dpkg`` leaves dpkg interrupted, and then every ``apt-get`` fails like the real one until
``dpkg --configure -a`` runs.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

TOKEN = "ya29.fake-vm-token"

POWER_CUT = r"""
power_cut() {  # $1: this call's command line
  if [[ -n "${FAKE_POWER_OFF_AT:-}" && "$1" == "${FAKE_POWER_OFF_AT}"* && ! -f "${FAKE_STATE}/power-cut" ]]; then
    touch "${FAKE_STATE}/power-cut"
    case "$1" in apt-get*|dpkg*) touch "${FAKE_STATE}/dpkg-interrupted" ;; esac
    echo "power cut during $1" >>"${FAKE_EVENTS}"
    kill -9 0
  fi
}
"""

FAKE_DOCKER = (
    r"""#!/usr/bin/env bash
# Fake docker: records every call; a single container's state lives in $FAKE_STATE/container.
state="${FAKE_STATE}/container"
"""
    + POWER_CUT
    + r"""
echo "docker $*" >>"${FAKE_EVENTS}"
power_cut "docker $*"
case "$1" in
  image) [[ -z "${FAKE_IMAGE_MISSING:-}" ]]; exit $? ;;
  login) cat >"${FAKE_STATE}/docker-login-password"; exit 0 ;;
  pull|logs) exit 0 ;;
  inspect)
    [[ -f "${state}" ]] || exit 1
    case "$3" in
      *spotgate.config*) sed -n 1p "${state}" ;;
      *State.Running*) [[ "$(sed -n 2p "${state}")" == running ]] && echo true || echo false ;;
      *State.Status*) sed -n 2p "${state}" ;;
    esac
    exit 0 ;;
  rm) rm -f "${state}"; exit 0 ;;
  stop) [[ -f "${state}" ]] && sed -i '2s/.*/exited/' "${state}"; exit 0 ;;
  run)
    shift
    if [[ "$1" == "--rm" ]]; then exit 0; fi
    label=""
    while [[ $# -gt 0 ]]; do
      case "$1" in --label) label="${2#spotgate.config=}"; shift 2 ;; *) shift ;; esac
    done
    printf '%s\n%s\n' "${label}" "${FAKE_ENGINE_STATUS:-running}" >"${state}"
    exit 0 ;;
esac
exit 0
"""
)

FAKE_APT_GET = (
    "#!/usr/bin/env bash\n"
    + POWER_CUT
    + r"""
echo "apt-get $*" >>"${FAKE_EVENTS}"
if [[ -f "${FAKE_STATE}/dpkg-interrupted" ]]; then
  echo "E: dpkg was interrupted, you must manually run 'dpkg --configure -a' to correct the problem." >&2
  exit 100
fi
power_cut "apt-get $*"
"""
)

FAKE_DPKG = (
    "#!/usr/bin/env bash\n"
    + POWER_CUT
    + r"""
echo "dpkg $*" >>"${FAKE_EVENTS}"
power_cut "dpkg $*"
[[ "$*" == "--configure -a" ]] && rm -f "${FAKE_STATE}/dpkg-interrupted"
exit 0
"""
)

FAKE_RECORDER = (
    "#!/usr/bin/env bash\n"
    + POWER_CUT
    + r"""
echo "$(basename "$0") $*" >>"${FAKE_EVENTS}"
power_cut "$(basename "$0") $*"
exit 0
"""
)

FAKE_GCSFUSE = """#!/usr/bin/env bash
echo "gcsfuse $*" >>"${FAKE_EVENTS}"
touch "${FAKE_STATE}/mounted"
"""

FAKE_MOUNTPOINT = """#!/usr/bin/env bash
[[ -f "${FAKE_STATE}/mounted" ]]
"""


@dataclass
class FakeVm:
    """State shared with the HTTP handler; tests read ``published`` and ``events``."""

    root: Path
    attributes: dict[str, str]
    running_requests: list[int] = field(default_factory=list)  # successive /metrics answers; last one repeats
    healthy: bool = True  # what /health answers
    stopped_before: bool = True  # False: instances.get has no lastStopTimestamp (Terraform's creation boot)
    compute_reads: list[str] = field(default_factory=list)  # Authorization headers of instances.get calls
    preempted: bool = False  # what instance/preempted answers; set_preempted wakes wait_for_change readers
    published: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(default_factory=threading.Condition)
    closing: bool = False

    @property
    def events_file(self) -> Path:
        return self.root / "events.log"

    def events(self) -> list[str]:
        return self.events_file.read_text(encoding="utf-8").splitlines() if self.events_file.exists() else []

    def record(self, line: str) -> None:
        with self.lock, self.events_file.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    def set_preempted(self, value: bool = True) -> None:
        with self.changed:
            self.preempted = value
            self.changed.notify_all()

    def preempted_after(self, last_etag: str | None, wait: bool) -> tuple[str, str]:
        """``(value, etag)``; with ``wait``, blocks (bounded) while ``last_etag`` is still current, like GCE."""
        with self.changed:
            if wait:
                self.changed.wait_for(lambda: _etag(self.preempted) != last_etag or self.closing, timeout=30)
            return ("TRUE" if self.preempted else "FALSE"), _etag(self.preempted)

    def next_running(self) -> int | None:
        with self.lock:
            if not self.running_requests:
                return None
            return self.running_requests.pop(0) if len(self.running_requests) > 1 else self.running_requests[0]


def _handler(vm: FakeVm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: str, content_type: str = "text/plain") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/computeMetadata/v1/instance/preempted" and self.headers.get("Metadata-Flavor") == "Google":
                self._preempted(parse_qs(query))
            elif path.startswith("/computeMetadata/v1/"):
                self._metadata(path.removeprefix("/computeMetadata/v1/"))
            elif self.path == "/compute/v1/projects/my-spotgate-project/zones/us-central1-a/instances/chat-a-1":
                self._instance()
            elif self.path == "/health":
                self._send(200 if vm.healthy else 503, "ok" if vm.healthy else "loading")
            elif self.path == "/metrics":
                self._metrics()
            else:
                self._send(404, "not found")

        def _preempted(self, query: dict[str, list[str]]) -> None:
            wait = query.get("wait_for_change", ["false"])[0] == "true"
            value, etag = vm.preempted_after(query.get("last_etag", [None])[0], wait)
            vm.record(f"metadata preempted={value}" + (" (waited)" if wait else ""))
            data = value.encode()
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Type", "application/text")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _metadata(self, key: str) -> None:
            if self.headers.get("Metadata-Flavor") != "Google":
                self._send(403, "missing Metadata-Flavor header")
                return
            fixed = {
                "instance/name": "chat-a-1",
                "instance/zone": "projects/412345678901/zones/us-central1-a",
            }
            if key == "instance/service-accounts/default/token":
                token = {"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"}
                self._send(200, json.dumps(token), "application/json")
            elif key in fixed:
                self._send(200, fixed[key])
            elif key.startswith("instance/attributes/") and key.removeprefix("instance/attributes/") in vm.attributes:
                self._send(200, vm.attributes[key.removeprefix("instance/attributes/")])
            else:
                self._send(404, "no such metadata")

        def _instance(self) -> None:
            # GCE's Instance resource: lastStopTimestamp appears with the first stop and stays afterwards.
            with vm.lock:
                vm.compute_reads.append(self.headers.get("Authorization", ""))
            body: dict[str, Any] = {
                "kind": "compute#instance",
                "name": "chat-a-1",
                "status": "RUNNING",
                "creationTimestamp": "2026-11-28T09:00:00.000-08:00",
                "lastStartTimestamp": "2026-11-28T09:00:21.000-08:00",
            }
            if vm.stopped_before:
                body["lastStopTimestamp"] = "2026-11-28T09:01:02.000-08:00"
                body["lastStartTimestamp"] = "2026-11-28T10:15:40.000-08:00"
            vm.record("compute instances.get")
            self._send(200, json.dumps(body), "application/json")

        def _metrics(self) -> None:
            running = vm.next_running()
            if running is None:
                self._send(404, "no metrics")
                return
            vm.record(f"metrics running={running}")
            self._send(200, f'vllm:num_requests_running{{model_name="m"}} {running}.0\n')

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.endswith(":publish"):
                self._send(404, "not found")
                return
            for message in body.get("messages", []):
                decoded = json.loads(base64.b64decode(message["data"]))
                with vm.lock:
                    vm.published.append({"path": self.path, **decoded})
                    vm.authorizations.append(self.headers.get("Authorization", ""))
                vm.record(f"publish {decoded.get('kind')}")
            self._send(200, json.dumps({"messageIds": ["1"]}), "application/json")

    return Handler


@contextmanager
def running_fake_vm(root: Path, attributes: dict[str, str]) -> Iterator[tuple[FakeVm, dict[str, str]]]:
    """Start the fake VM; yields it and the environment to run an agent script with. Always stops the server."""
    vm = FakeVm(root=root, attributes=dict(attributes))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(vm))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        vm.attributes["spotgate-port"] = str(port)
        bin_dir, state_dir = root / "bin", root / "state"
        bin_dir.mkdir()
        state_dir.mkdir()
        fakes = (
            ("docker", FAKE_DOCKER),
            ("gcsfuse", FAKE_GCSFUSE),
            ("mountpoint", FAKE_MOUNTPOINT),
            ("apt-get", FAKE_APT_GET),
            ("dpkg", FAKE_DPKG),
            ("nvidia-ctk", FAKE_RECORDER),
            ("systemctl", FAKE_RECORDER),
        )
        for name, text in fakes:
            (bin_dir / name).write_text(text, encoding="utf-8")
            (bin_dir / name).chmod(0o755)
        env = {
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "FAKE_EVENTS": str(vm.events_file),
            "FAKE_STATE": str(state_dir),
            "SPOTGATE_METADATA_URL": f"http://127.0.0.1:{port}/computeMetadata/v1",
            "SPOTGATE_PUBSUB_URL": f"http://127.0.0.1:{port}/v1",
            "SPOTGATE_COMPUTE_URL": f"http://127.0.0.1:{port}/compute/v1",
            "SPOTGATE_RUN_DIR": str(root / "run-spotgate"),
            "SPOTGATE_STATE_DIR": str(root / "var-lib-spotgate"),
            "SPOTGATE_MOUNT_DIR": str(root / "bucket"),
        }
        yield vm, env
    finally:
        with vm.changed:
            vm.closing = True
            vm.changed.notify_all()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _etag(preempted: bool) -> str:
    return "a1b2c3d4e5f60718" if preempted else "0f1e2d3c4b5a6978"
