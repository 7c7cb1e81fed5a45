"""The VM agent scripts do what the control plane relies on, run against a fake VM (tests/infra/fake_vm.py)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.fake_vm import TOKEN, FakeVm, running_fake_vm
from tests.infra.terraform_tree import INFRA

MODEL_PATH = "llama-3.1-8b-instruct/2024-07-23"
ENGINE_ARGS = ["--model", f"/models/{MODEL_PATH}", "--served-model-name", "llama-3.1-8b-instruct", "llama3"]
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture
def vm(tmp_path: Path) -> Iterator[tuple[FakeVm, dict[str, str]]]:
    attributes = {
        "spotgate-project": "my-spotgate-project",
        "spotgate-control-topic": "spotgate-control",
        "spotgate-pool": "chat",
        "spotgate-health-path": "/health",
        "spotgate-engine-image": "vllm/vllm-openai:v0.8.5",
        "spotgate-engine-args": "\n".join(ENGINE_ARGS),
        "spotgate-models-bucket": "my-spotgate-project-spotgate-models",
        "spotgate-model-path": MODEL_PATH,
        "spotgate-drain-seconds": "10",
    }
    weights = tmp_path / "bucket" / MODEL_PATH
    weights.mkdir(parents=True)
    (weights / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "var-lib-spotgate").mkdir()
    (tmp_path / "var-lib-spotgate" / "installed-v1").touch()  # install_once already ran on an earlier boot
    with running_fake_vm(tmp_path, attributes) as started:
        yield started


def run_agent(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(INFRA / "agent" / script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_startup_runs_the_engine_then_publishes_ready(vm: tuple[FakeVm, dict[str, str]], tmp_path: Path) -> None:
    fake, env = vm

    result = run_agent("startup.sh", env)

    assert result.returncode == 0, result.stdout + result.stderr
    (message,) = fake.published
    port = fake.attributes["spotgate-port"]
    assert message["path"] == "/v1/projects/my-spotgate-project/topics/spotgate-control:publish"
    assert {k: v for k, v in message.items() if k not in ("path", "at")} == {
        "v": 1,
        "kind": "ready",
        "pool": "chat",
        "instance": "chat-a-1",
        "zone": "us-central1-a",
    }
    assert RFC3339.match(message["at"])
    assert fake.authorizations == [f"Bearer {TOKEN}"]
    (run,) = [e for e in fake.events() if e.startswith("docker run -d")]
    for flag in ("--gpus all", "--ipc=host", f"-p {port}:{port}", ":/models:ro", "--restart unless-stopped"):
        assert flag in run
    assert run.endswith("vllm/vllm-openai:v0.8.5 " + " ".join(ENGINE_ARGS))
    assert (tmp_path / "var-lib-spotgate" / "models" / MODEL_PATH / "config.json").is_file()


def test_startup_checks_the_gpu_inside_docker_before_starting_the_engine(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm

    run_agent("startup.sh", env)

    events = fake.events()
    gpu_check = next(
        i for i, e in enumerate(events) if e.startswith("docker run --rm --gpus all --entrypoint nvidia-smi")
    )
    engine = next(i for i, e in enumerate(events) if e.startswith("docker run -d"))
    assert gpu_check < engine < events.index("publish ready")


def test_startup_again_keeps_the_running_engine_and_the_copied_weights(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    run_agent("startup.sh", env)
    (Path(env["SPOTGATE_MOUNT_DIR"]) / MODEL_PATH / "config.json").unlink()  # a second copy would fail now

    result = run_agent("startup.sh", env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert len([e for e in fake.events() if e.startswith("docker run -d")]) == 1
    assert [m["kind"] for m in fake.published] == ["ready", "ready"]


def test_startup_restarts_the_engine_when_its_flags_change(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    run_agent("startup.sh", env)
    fake.attributes["spotgate-engine-args"] += "\n--max-model-len\n8192"

    run_agent("startup.sh", env)

    runs = [e for e in fake.events() if e.startswith("docker run -d")]
    assert len(runs) == 2
    assert runs[1].endswith("--max-model-len 8192")


def test_shutdown_publishes_draining_before_stopping_the_engine(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    run_agent("startup.sh", env)
    fake.running_requests = [0]

    result = run_agent("shutdown.sh", env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert [m["kind"] for m in fake.published] == ["ready", "draining"]
    assert {k: fake.published[1][k] for k in ("pool", "instance", "zone")} == {
        "pool": "chat",
        "instance": "chat-a-1",
        "zone": "us-central1-a",
    }
    events = fake.events()
    assert events.index("publish draining") < events.index("docker stop -t 3 spotgate-engine")


def test_shutdown_waits_for_in_flight_requests_to_finish(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    run_agent("startup.sh", env)
    fake.running_requests = [2, 1, 0]

    run_agent("shutdown.sh", env)

    events = fake.events()
    polls = [e for e in events if e.startswith("metrics")]
    assert polls == ["metrics running=2", "metrics running=1", "metrics running=0"]
    assert events.index("metrics running=0") < events.index("docker stop -t 3 spotgate-engine")


def test_shutdown_still_stops_the_engine_when_publishing_fails(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    run_agent("startup.sh", env)
    fake.running_requests = [0]
    env = {**env, "SPOTGATE_PUBSUB_URL": "http://127.0.0.1:9/v1"}  # nothing listens on the discard port

    result = run_agent("shutdown.sh", env)

    assert result.returncode == 0
    assert "could not publish draining" in result.stdout
    assert "docker stop -t 3 spotgate-engine" in fake.events()


def test_startup_never_reports_ready_when_the_engine_dies(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    fake.healthy = False

    result = run_agent("startup.sh", {**env, "FAKE_ENGINE_STATUS": "exited"})

    assert result.returncode != 0
    assert "engine container exited" in result.stdout
    assert fake.published == []
