"""``spotgate sandbox``: serve in the foreground, then act on the running sandbox from another command."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from spotgate.domain import InstanceStatus
from spotgate.sandbox.devstack.cli import sandbox
from spotgate.sandbox.devstack.cloud import SandboxCloud
from spotgate.sandbox.devstack.state import DEV_FILE, SANDBOX_FILE, SandboxState, read_state, write_state
from tests.sandbox.sandbox_support import EXAMPLE_FLEET, healthy, wait_until


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(sandbox, list(args))
    return result.exit_code, result.output


@pytest.fixture
def state_dir(cloud: SandboxCloud, tmp_path: Path) -> Path:
    """A state directory recording ``cloud``, as ``serve`` would write it."""
    directory = tmp_path / "state"
    write_state(directory, SandboxState(cloud.endpoints()))
    return directory


@pytest.fixture
def shared_state_dir(shared_cloud: SandboxCloud, tmp_path: Path) -> Path:
    """A state directory recording the module's shared (read-only) cloud."""
    directory = tmp_path / "state"
    write_state(directory, SandboxState(shared_cloud.endpoints()))
    return directory


def test_commands_without_a_running_sandbox_say_so(tmp_path: Path) -> None:
    code, output = run("status", "--state-dir", str(tmp_path))
    assert code == 1
    assert "no sandbox is running" in output


def test_status_preempt_and_stockout_act_on_the_running_sandbox(cloud: SandboxCloud, state_dir: Path) -> None:
    directory = str(state_dir)
    assert run("start", "chat-b-1", "--state-dir", directory)[0] == 0
    assert wait_until(lambda: cloud.compute.find("chat-b-1").status is InstanceStatus.RUNNING)
    code, output = run("preempt", "chat-b-1", "--state-dir", directory)
    stockout = run("stockout", "us-central1-a", "--seconds", "30", "--state-dir", directory)
    status = run("status", "--state-dir", directory)
    assert code == 0
    assert "preempted chat-b-1" in output
    assert stockout[0] == 0
    assert "chat-standard" in status[1]
    assert "stockout" in status[1]
    assert wait_until(lambda: cloud.compute.find("chat-b-1").status is InstanceStatus.TERMINATED)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("preempt", "chat-a-1"), "cannot preempt chat-a-1: it is TERMINATED", id="preempt-terminated"),
        pytest.param(("maintenance", "nope"), "no instance named 'nope'", id="unknown-vm"),
        pytest.param(("stockout", "europe-west4-a", "--seconds", "5"), "has no instances", id="unknown-zone"),
    ],
)
def test_refused_actions_explain_why(shared_state_dir: Path, args: tuple[str, ...], message: str) -> None:
    code, output = run(*args, "--state-dir", str(shared_state_dir))
    assert code == 1
    assert message in output


def test_commands_also_find_a_sandbox_started_by_spotgate_dev(shared_cloud: SandboxCloud, tmp_path: Path) -> None:
    (tmp_path / DEV_FILE).write_text(
        json.dumps({"gateway_url": "http://127.0.0.1:1", "sandbox": shared_cloud.endpoints()})
    )
    code, output = run("status", "--state-dir", str(tmp_path))
    assert code == 0
    assert "embed-b-1" in output


def fast_config(directory: Path) -> Path:
    fleet = yaml.safe_load(EXAMPLE_FLEET.read_text())
    fleet["sandbox"] = {"speedup": 1000, "overflow_cold_start": 1}
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    return path


@contextlib.contextmanager
def serving(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], SandboxState]]:
    """``spotgate sandbox serve`` in a child process, up and recorded; killed afterwards whatever happens."""
    state_dir = tmp_path / ".spotgate"
    command = [sys.executable, "-c", "from spotgate.cli import main; main()", "sandbox", "serve"]
    command += ["--config", str(fast_config(tmp_path)), "--state-dir", str(state_dir)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: (state_dir / SANDBOX_FILE).exists() or server.poll() is not None, timeout=60)
        yield server, read_state(state_dir)
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)


def test_serve_records_its_endpoints_and_cleans_up_on_sigterm(tmp_path: Path) -> None:
    with serving(tmp_path) as (server, state):
        overflow = state.endpoints["overflow"]["chat-overflow"]
        status = run("status", "--state-dir", str(tmp_path / ".spotgate"))
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    assert state.pid == server.pid
    assert status[0] == 0
    assert not (tmp_path / ".spotgate" / SANDBOX_FILE).exists()
    assert not healthy(overflow)


def test_engines_die_with_a_killed_sandbox_and_its_stale_state_is_reported(tmp_path: Path) -> None:
    with serving(tmp_path) as (server, state):
        overflow = state.endpoints["overflow"]["chat-overflow"]
        server.kill()  # no chance to clean up: the kernel's parent-death signal must take the engines down
        server.wait(timeout=10)
    gone = wait_until(lambda: not healthy(overflow), timeout=10)
    code, output = run("status", "--state-dir", str(tmp_path / ".spotgate"))
    assert gone
    assert code == 1
    assert "does not answer" in output
