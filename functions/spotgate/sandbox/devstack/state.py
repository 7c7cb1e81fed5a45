"""The state file through which ``spotgate sandbox`` commands find the running sandbox.

``spotgate sandbox serve`` writes ``<state-dir>/sandbox.json`` (endpoints and its pid) when it is up and
removes it when it stops; ``spotgate dev`` writes ``dev.json`` with the same endpoints under ``"sandbox"``.
Commands read either, then check the sandbox answers, so a stale file after a crash gives a clear error
instead of a connection traceback.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from spotgate.errors import UnavailableError

SANDBOX_FILE = "sandbox.json"
DEV_FILE = "dev.json"


class NotRunningError(UnavailableError):
    """No sandbox is running for this state directory."""


@dataclass(frozen=True, slots=True)
class SandboxState:
    """What a running sandbox tells its tools: endpoints (``SandboxCloud.endpoints()``) and who serves them."""

    endpoints: dict[str, Any]
    pid: int | None = None
    config: str | None = None

    @property
    def compute_url(self) -> str:
        return str(self.endpoints["compute"])


def write_state(state_dir: Path, state: SandboxState) -> Path:
    """Write ``sandbox.json`` atomically (a reader never sees half a file); returns its path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SANDBOX_FILE
    scratch = path.with_suffix(".json.tmp")
    body = {"pid": state.pid, "config": state.config, "endpoints": state.endpoints}
    scratch.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(scratch, path)
    return path


def remove_state(state_dir: Path) -> None:
    (state_dir / SANDBOX_FILE).unlink(missing_ok=True)


def read_state(state_dir: Path) -> SandboxState:
    """The running sandbox's state. Raises NotRunningError when there is none or it does not answer.

    ``sandbox.json`` is tried before ``dev.json``; a stale one (its sandbox crashed) does not hide the other.
    """
    states = _load(state_dir)
    if not states:
        raise NotRunningError(f"no sandbox is running for {state_dir}: start one with `spotgate sandbox serve`")
    for state in states:
        if _answers(state):
            return state
    raise NotRunningError(
        f"the sandbox recorded in {state_dir} does not answer at {states[0].compute_url} (stale state file?); "
        "start one with `spotgate sandbox serve`"
    )


def _answers(state: SandboxState) -> bool:
    try:
        return requests.get(state.compute_url + "/sandbox/status", timeout=3).status_code == 200
    except requests.RequestException:
        return False


def _load(state_dir: Path) -> list[SandboxState]:
    states = []
    for name, key in ((SANDBOX_FILE, None), (DEV_FILE, "sandbox")):
        path = state_dir / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as e:
            raise NotRunningError(f"cannot read {path}: {e}") from e
        endpoints = data.get(key) if key else data.get("endpoints")
        if isinstance(endpoints, dict) and "compute" in endpoints:
            states.append(SandboxState(endpoints, data.get("pid"), data.get("config")))
    return states
