"""The VM agent scripts do what the control plane relies on, run against a fake VM (tests/infra/fake_vm.py)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
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
        try:
            yield started
        finally:
            stop_watcher(Path(started[1]["SPOTGATE_RUN_DIR"]))


def stop_watcher(run_dir: Path) -> None:
    """End the preemption watcher startup.sh left running (a real VM's ends with the VM)."""
    pidfile = run_dir / "preemption-watch.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pidfile.read_text(encoding="utf-8")), signal.SIGTERM)


def announced(fake: FakeVm) -> list[str]:
    """The kinds the agent published, boot-progress reports left out."""
    return [m["kind"] for m in fake.published if m["kind"] != "progress"]


def phases(fake: FakeVm) -> list[str]:
    return [m["phase"] for m in fake.published if m["kind"] == "progress"]


def run_agent(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Its own session, so a simulated power cut (kill -9 0 in a fake command) ends the agent and nothing else.
    return subprocess.run(
        ["bash", str(INFRA / "agent" / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        start_new_session=True,
    )


def first_boot(env: dict[str, str]) -> None:
    """Forget the earlier boot the fixture pretends happened: the next start runs the install."""
    (Path(env["SPOTGATE_STATE_DIR"]) / "installed-v1").unlink()


def test_startup_runs_the_engine_then_publishes_ready(vm: tuple[FakeVm, dict[str, str]], tmp_path: Path) -> None:
    fake, env = vm

    result = run_agent("startup.sh", env)

    assert result.returncode == 0, result.stdout + result.stderr
    (message,) = [m for m in fake.published if m["kind"] == "ready"]
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
    assert set(fake.authorizations) == {f"Bearer {TOKEN}"}
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
    assert announced(fake) == ["ready", "ready"]
    assert phases(fake) == ["copying_weights", "loading", "loading"]  # the second boot copies nothing


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
    assert announced(fake) == ["ready", "draining"]
    assert {k: fake.published[-1][k] for k in ("pool", "instance", "zone")} == {
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
    assert announced(fake) == []


# Finding 2 of issue 13: Terraform creates each VM RUNNING and stops it at once; that boot must not serve, and
# any boot may be cut anywhere.


def test_creation_boot_exits_before_installing_or_serving(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    first_boot(env)
    fake.stopped_before = False  # instances.get: no lastStopTimestamp yet

    result = run_agent("startup.sh", env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "creation boot" in result.stdout
    assert fake.published == []
    assert fake.compute_reads == [f"Bearer {TOKEN}"]
    assert [e for e in fake.events() if not e.startswith("compute")] == []  # no apt-get, gcsfuse, docker


def test_shutdown_of_the_creation_boot_publishes_nothing(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    fake.stopped_before = False
    run_agent("startup.sh", env)

    result = run_agent("shutdown.sh", env)

    assert result.returncode == 0
    assert fake.published == []
    assert not any(e.startswith("docker") for e in fake.events())


def test_a_boot_whose_instance_cannot_be_read_still_serves(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm

    result = run_agent("startup.sh", {**env, "SPOTGATE_COMPUTE_URL": "http://127.0.0.1:9/compute/v1"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert announced(fake) == ["ready"]


def test_an_interrupted_dpkg_is_finished_before_apt_runs(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    first_boot(env)
    (Path(env["FAKE_STATE"]) / "dpkg-interrupted").touch()  # an earlier boot was cut inside dpkg

    result = run_agent("startup.sh", env)

    assert result.returncode == 0, result.stdout + result.stderr
    events = fake.events()
    assert events.index("dpkg --configure -a") < events.index("apt-get -o DPkg::Lock::Timeout=300 update -q")
    assert announced(fake) == ["ready"]
    assert (Path(env["SPOTGATE_STATE_DIR"]) / "installed-v1").is_file()


@pytest.mark.parametrize(
    "cut_at",
    [
        pytest.param("dpkg --configure", id="dpkg-configure"),
        pytest.param("apt-get -o DPkg::Lock::Timeout=300 update", id="apt-get-update"),
        pytest.param("nvidia-ctk runtime configure", id="toolkit-configure"),
        pytest.param("systemctl restart docker", id="docker-restart"),
        pytest.param("docker run --rm", id="gpu-check"),
        pytest.param("docker run -d", id="engine-start"),
    ],
)
def test_a_first_boot_cut_anywhere_serves_on_the_next_boot(vm: tuple[FakeVm, dict[str, str]], cut_at: str) -> None:
    fake, env = vm
    first_boot(env)
    env = {**env, "FAKE_POWER_OFF_AT": cut_at}

    cut = run_agent("startup.sh", env)
    assert cut.returncode != 0
    assert f"power cut during {cut_at}" in " ".join(fake.events())
    assert announced(fake) == []

    result = run_agent("startup.sh", env)  # the next boot (the fake cuts power once)

    assert result.returncode == 0, result.stdout + result.stderr
    assert announced(fake) == ["ready"]
    assert (Path(env["SPOTGATE_STATE_DIR"]) / "installed-v1").is_file()


def test_a_half_copied_model_is_copied_again(vm: tuple[FakeVm, dict[str, str]], tmp_path: Path) -> None:
    _, env = vm
    partial = tmp_path / "var-lib-spotgate" / "models" / f"{MODEL_PATH}.partial"
    partial.mkdir(parents=True)
    (partial / "model-00001-of-00004.safetensors").write_text("cut", encoding="utf-8")

    result = run_agent("startup.sh", env)

    assert result.returncode == 0, result.stdout + result.stderr
    copied = tmp_path / "var-lib-spotgate" / "models" / MODEL_PATH
    assert sorted(p.name for p in copied.iterdir()) == [".spotgate-complete", "config.json"]


# Finding 5: the whole shutdown fits in the notice.


def _drain_budget(stdout: str) -> int:
    match = re.search(r"draining for at most (\d+)s of the (\d+)s notice", stdout)
    assert match, stdout
    return int(match.group(1))


def test_shutdown_drains_only_what_the_notice_leaves(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    run_agent("startup.sh", env)
    fake.attributes["spotgate-notice-seconds"] = "11"
    fake.attributes["spotgate-drain-seconds"] = "25"  # more than the notice could ever hold
    fake.running_requests = [3]  # never finishes

    result = run_agent("shutdown.sh", env)

    # 11 s notice - 2 s power-off margin - 3 s docker stop: at most 6 s of draining.
    assert _drain_budget(result.stdout) <= 6
    assert "docker stop -t 3 spotgate-engine" in fake.events()


def test_shutdown_with_a_longer_notice_drains_the_configured_budget(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    run_agent("startup.sh", env)
    fake.attributes["spotgate-notice-seconds"] = "120"
    fake.attributes["spotgate-drain-seconds"] = "2"
    fake.running_requests = [0]

    result = run_agent("shutdown.sh", env)

    assert _drain_budget(result.stdout) == 2


# Finding 6: an engine image in the spotgate Artifact Registry repository can be pulled.


def test_an_artifact_registry_image_is_pulled_with_the_vm_token(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    fake.attributes["spotgate-engine-image"] = "us-central1-docker.pkg.dev/my-spotgate-project/spotgate/vllm:v1"

    result = run_agent("startup.sh", {**env, "FAKE_IMAGE_MISSING": "1"})

    assert result.returncode == 0, result.stdout + result.stderr
    events = fake.events()
    login = "docker login -u oauth2accesstoken --password-stdin https://us-central1-docker.pkg.dev"
    assert events.index(login) < events.index(
        "docker pull -q us-central1-docker.pkg.dev/my-spotgate-project/spotgate/vllm:v1"
    )
    assert (Path(env["FAKE_STATE"]) / "docker-login-password").read_text(encoding="utf-8").strip() == TOKEN
    assert TOKEN not in result.stdout + result.stderr + "\n".join(events)


def test_a_public_image_is_pulled_without_logging_in(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm

    run_agent("startup.sh", {**env, "FAKE_IMAGE_MISSING": "1"})

    assert not any(e.startswith("docker login") for e in fake.events())
    assert "docker pull -q vllm/vllm-openai:v0.8.5" in fake.events()


def published_kinds(fake: FakeVm) -> list[str]:
    with fake.lock:
        return [m["kind"] for m in fake.published if m["kind"] != "progress"]


def wait_for(predicate: object, timeout: float = 20.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(predicate())  # type: ignore[operator]


def test_startup_leaves_a_watcher_that_publishes_draining_when_the_preemption_notice_comes(
    vm: tuple[FakeVm, dict[str, str]],
) -> None:
    fake, env = vm
    result = run_agent("startup.sh", env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert wait_for(lambda: "metadata preempted=FALSE (waited)" in fake.events())  # it is waiting on GCE

    fake.set_preempted(True)

    assert wait_for(lambda: published_kinds(fake) == ["ready", "draining"])
    assert fake.published[1]["instance"] == "chat-a-1"


def test_startup_run_again_keeps_one_watcher(vm: tuple[FakeVm, dict[str, str]]) -> None:
    fake, env = vm
    run_agent("startup.sh", env)
    pid = (Path(env["SPOTGATE_RUN_DIR"]) / "preemption-watch.pid").read_text(encoding="utf-8")

    run_agent("startup.sh", env)
    fake.set_preempted(True)

    assert (Path(env["SPOTGATE_RUN_DIR"]) / "preemption-watch.pid").read_text(encoding="utf-8") == pid
    assert wait_for(lambda: published_kinds(fake).count("draining") == 1)
    assert published_kinds(fake) == ["ready", "ready", "draining"]


# Issue 9, defect 12: the agent reports its boot phases, and an interrupted weights copy resumes.


@pytest.mark.parametrize(
    ("image_missing", "expected"),
    [(False, ["copying_weights", "loading"]), (True, ["copying_weights", "pulling", "loading"])],
    ids=["image_on_disk", "image_to_pull"],
)
def test_startup_reports_each_boot_phase_as_it_begins(
    vm: tuple[FakeVm, dict[str, str]], image_missing: bool, expected: list[str]
) -> None:
    """The control plane measures boot_timeout from the last phase report, not from the boot's start."""
    fake, env = vm

    result = run_agent("startup.sh", {**env, "FAKE_IMAGE_MISSING": "1"} if image_missing else env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert phases(fake) == expected
    assert [m["kind"] for m in fake.published] == ["progress"] * len(expected) + ["ready"]
    assert {k: v for k, v in fake.published[0].items() if k not in ("path", "at")} == {
        "v": 1,
        "kind": "progress",
        "phase": "copying_weights",
        "pool": "chat",
        "instance": "chat-a-1",
        "zone": "us-central1-a",
    }
    events = fake.events()
    assert events.index("publish progress") < next(i for i, e in enumerate(events) if e.startswith("docker run -d"))


def test_startup_resumes_an_interrupted_weights_copy(vm: tuple[FakeVm, dict[str, str]], tmp_path: Path) -> None:
    """A preemption mid-copy used to restart the copy from zero on every boot; whole files are now kept."""
    _, env = vm
    source = tmp_path / "bucket" / MODEL_PATH
    (source / "model.safetensors").write_bytes(b"w" * 4096)
    partial = tmp_path / "var-lib-spotgate" / "models" / f"{MODEL_PATH}.partial"
    partial.mkdir(parents=True)
    (partial / "config.json").write_text("[]", encoding="utf-8")  # copied whole before the preemption
    (partial / "model.safetensors.spotgate-copying").write_bytes(b"w" * 100)  # cut mid-file

    result = run_agent("startup.sh", env)

    assert result.returncode == 0, result.stdout + result.stderr
    done = tmp_path / "var-lib-spotgate" / "models" / MODEL_PATH
    assert (done / "config.json").read_text(encoding="utf-8") == "[]"  # kept, not copied again
    assert (done / "model.safetensors").read_bytes() == b"w" * 4096
    assert sorted(p.name for p in done.iterdir()) == [".spotgate-complete", "config.json", "model.safetensors"]
    assert not partial.exists()
