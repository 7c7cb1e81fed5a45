"""The gateway image and its gunicorn settings (docker cannot run here, so the files are checked)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "run_service" / "Dockerfile"


def final_stage() -> list[str]:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    start = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[start:]


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [line.split()[1] for line in final_stage() if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")


def test_the_image_ships_no_tests_no_sandbox_and_no_repository_root() -> None:
    text = DOCKERFILE.read_text()
    copies = [line.split() for line in text.splitlines() if line.startswith("COPY ")]
    sources = [part for words in copies for part in words[1:-1] if not part.startswith("--")]
    assert all(not s.startswith("tests") and "sandbox" not in s and s not in (".", "./") for s in sources)
    assert "rm -rf /src/spotgate/sandbox" in text
    assert all(line.startswith("COPY --from=source") or "requirements" in line
               for line in final_stage() if line.startswith("COPY"))  # fmt: skip


def test_the_image_installs_the_locked_requirements_and_serves_the_gateway() -> None:
    text = DOCKERFILE.read_text()
    assert final_stage()[0].startswith("FROM python:3.12-slim")
    assert "--require-hashes" in text
    assert '"gunicorn", "-c", "run_service/gunicorn.conf.py", "gateway.wsgi:create_production_app()"' in text
    requirements = (ROOT / "run_service" / "requirements.txt").read_text()
    for package in ("flask==", "gunicorn==", "gevent==", "geventhttpclient==", "google-auth=="):
        assert package in requirements


@pytest.mark.parametrize(("port", "bind"), [pytest.param("9123", "0.0.0.0:9123", id="from-PORT")])
def test_gunicorn_binds_the_port_cloud_run_gives(monkeypatch, port: str, bind: str) -> None:
    monkeypatch.setenv("PORT", port)
    config = runpy.run_path(str(ROOT / "run_service" / "gunicorn.conf.py"))
    assert config["bind"] == [bind]
    assert config["worker_class"] == "gateway.worker.HeaderTimeoutWorker"  # gevent plus a header timeout
    assert config["worker_connections"] >= 1000
    assert config["graceful_timeout"] < 10  # Cloud Run kills 10 s after SIGTERM


@pytest.mark.parametrize(
    ("cpu_max", "env", "workers"),
    [
        pytest.param("200000 100000\n", {}, 2, id="two-vcpus-from-the-cgroup-quota"),
        pytest.param("100000 100000\n", {}, 1, id="one-vcpu"),
        pytest.param("150000 100000\n", {}, 2, id="fractional-rounds-up"),
        pytest.param("200000 100000\n", {"WEB_CONCURRENCY": "3"}, 3, id="web-concurrency-overrides"),
    ],
)
def test_gunicorn_runs_one_worker_per_vcpu(tmp_path, cpu_max: str, env: dict[str, str], workers: int) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max)
    config = runpy.run_path(str(ROOT / "run_service" / "gunicorn.conf.py"))
    assert config["worker_count"](env, str(tmp_path)) == workers


def test_gunicorn_builds_no_access_record_of_its_own() -> None:
    """The gateway writes one access line per request itself; gunicorn's logger, given the conf's logging
    dictionary, would build (and then drop) a record of every header of every request."""
    from gunicorn.config import Config

    from gateway.worker import Logger

    settings = runpy.run_path(str(ROOT / "run_service" / "gunicorn.conf.py"))
    assert settings["logger_class"] == "gateway.worker.Logger"
    cfg = Config()
    cfg.set("logconfig_dict", settings["logconfig_dict"])
    logger = Logger(cfg)
    assert not logger.access_log_enabled
    logger.access(None, None, {}, None)  # gunicorn's own would read the response and request here
