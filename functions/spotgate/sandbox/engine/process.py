"""Engine child processes: start one, know when it listens, and make sure it dies with the sandbox.

A simulated VM or overflow service is a real process so that a preemption is a real SIGKILL. Children
must never outlive the sandbox, even when the sandbox itself is killed: on Linux each child asks the kernel
for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``, set by ``setpriv``), and the engine also watches its parent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from spotgate.errors import UnavailableError
from spotgate.sandbox.engine.options import EngineOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineArgs:
    """Where an engine listens (port 0: the kernel picks) and how it behaves."""

    host: str
    port: int
    options: EngineOptions

    @property
    def name(self) -> str:
        return self.options.name

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "spotgate.sandbox.engine.server", "--host", self.host, "--port", str(self.port)]
        return args + self.options.argv()


def die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run under ``setpriv --pdeathsig KILL``: the child gets SIGKILL when its parent thread exits.

    Not a ``preexec_fn`` calling prctl: a preexec_fn forces a plain ``fork()``, which runs gRPC's fork
    handlers in the child whenever the sandbox process also serves gRPC (the Pub/Sub emulation), and the child
    can die before it execs. Without one, Python spawns with vfork and nothing runs between fork and exec;
    setpriv (util-linux) sets the death signal and execs the real command.
    """
    return ["setpriv", "--pdeathsig", "KILL", "--", *argv]


class EngineProcess:
    """One running engine. ``url`` is known once the engine has printed its listening line."""

    def __init__(self, args: EngineArgs, popen: subprocess.Popen[bytes], url: str) -> None:
        self.args = args
        self.url = url
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    def alive(self) -> bool:
        return self._popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, like a VM losing power: open connections are cut, not closed politely."""
        with contextlib.suppress(ProcessLookupError):
            self._popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout=5)
        if self._popen.stdout is not None:
            self._popen.stdout.close()


class EngineLauncher:
    """Starts engines from one long-lived thread and kills every engine it started on ``close``.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, not the process; forking from
    short-lived timer threads would kill engines at random. So every fork happens on this launcher's single
    worker thread, which lives as long as the sandbox. Waiting for the listening line happens in the caller.
    """

    def __init__(self, log_dir: Path | None = None) -> None:
        self._log_dir = log_dir
        self._forker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-launcher")
        self._children: list[EngineProcess] = []
        self._lock = threading.Lock()
        self._closed = False

    def launch(self, args: EngineArgs, timeout: float = 15.0) -> EngineProcess:
        """Start an engine and return once it listens. Raises UnavailableError if it exits or stays silent."""
        with self._lock:
            if self._closed:
                raise UnavailableError("the sandbox is stopping; no new engines")
            popen = self._forker.submit(_fork, args, self._log_dir).result()
        line = _first_line(popen, timeout)
        try:
            url = str(json.loads(line)["url"])
        except (ValueError, KeyError, TypeError) as e:
            EngineProcess(args, popen, "").kill()
            raise UnavailableError(f"engine {args.name} on {args.host}:{args.port} did not start: {line!r}") from e
        child = EngineProcess(args, popen, url)
        if not self._adopt(child):  # close() ran while we waited for the line: do not leak this one
            child.kill()
            raise UnavailableError("the sandbox is stopping; no new engines")
        log.debug("engine started", extra={"engine": args.name, "url": url, "pid": popen.pid})
        return child

    def _adopt(self, child: EngineProcess) -> bool:
        with self._lock:
            self._children = [c for c in self._children if c.alive()] + [child]
            return not self._closed

    def close(self) -> None:
        """Kill every engine still running and stop the launcher thread. Idempotent."""
        with self._lock:
            self._closed = True
            children, self._children = self._children, []
        for child in children:
            child.kill()
        self._forker.shutdown(wait=True)

    def children(self) -> list[EngineProcess]:
        with self._lock:
            return [c for c in self._children if c.alive()]


def _fork(args: EngineArgs, log_dir: Path | None) -> subprocess.Popen[bytes]:
    """Start the child; its stderr goes to ``log_dir/<name>.log`` (appended across restarts) or is inherited."""
    stderr = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        stderr = (log_dir / f"{args.name}.log").open("ab")
    try:
        return subprocess.Popen(
            die_with_parent(args.argv()), stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=stderr
        )
    finally:
        if stderr is not None:
            stderr.close()  # the child holds its own descriptor


def _first_line(popen: subprocess.Popen[bytes], timeout: float) -> str:
    """The child's first stdout line, or "" if it exits or says nothing within ``timeout``."""
    result: list[bytes] = []
    stdout = popen.stdout
    if stdout is None:
        return ""
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0].decode(errors="replace").strip() if result else ""
