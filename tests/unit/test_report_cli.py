"""``spotgate report``: reads the configured store's history and prints the simulator's report per pool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from spotgate.adapters.sqlite_store import SqliteStore
from spotgate.cli import main
from spotgate.domain import HistoryKind, HistoryRecord
from tests.unit.shell_fakes import NOW, FixedClock, a_fleet


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.db")
    yield store
    store.close()


def _run(store: SqliteStore, *args: str) -> tuple[int, str]:
    obj = {"store": store, "fleet": a_fleet(), "clock": FixedClock(NOW)}
    result = CliRunner().invoke(main, ["report", *args], obj=obj, catch_exceptions=False)
    return result.exit_code, result.output


def test_report_prints_the_pools_figures_from_its_history(store: SqliteStore) -> None:
    start = NOW - timedelta(hours=2)
    store.append_history(
        [
            HistoryRecord(
                "chat", start - timedelta(minutes=30), HistoryKind.VM, "chat-a-1", "RUNNING", "us-central1-a", "SPOT"
            ),
            HistoryRecord(
                "chat", start - timedelta(minutes=30), HistoryKind.ROUTE, "chat-a-1", "ready", backend_kind="vm"
            ),
            HistoryRecord("chat", start + timedelta(hours=1), HistoryKind.PREEMPTED, "chat-a-1", zone="us-central1-a"),
            HistoryRecord(
                "chat", start + timedelta(hours=1), HistoryKind.VM, "chat-a-1", "TERMINATED", "us-central1-a", "SPOT"
            ),
            HistoryRecord(
                "chat", start + timedelta(hours=1), HistoryKind.ROUTE, "chat-a-1", "draining", backend_kind="vm"
            ),
        ]
    )
    code, out = _run(store, "--since", "2h", "--as-json")
    assert code == 0, out
    [report] = json.loads(out)
    assert (report["pool"], report["hours"], report["availability"]) == ("chat", 2.0, 0.5)
    assert report["gpu_hours"]["spot"] == pytest.approx(1.0)
    assert report["preemptions"] == {"us-central1-a": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--since", "soon"], "invalid duration", id="bad-duration"),
        pytest.param(["--since", "0s"], "must be positive", id="empty-period"),
        pytest.param(["--pool", "nope"], "no pool named 'nope'", id="unknown-pool"),
    ],
)
def test_bad_input_gets_a_clear_error(store: SqliteStore, args: list[str], message: str) -> None:
    code, out = _run(store, *args)
    assert code == 2
    assert message in out


def test_html_writes_a_self_contained_page_with_the_three_charts(store: SqliteStore, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    code, out = _run(store, "--since", "1d", "--html", str(page))
    assert code == 0, out
    text = page.read_text()
    assert all(f'id="{chart}-chat"' in text for chart in ("ready", "cost", "served"))
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in text
    assert "<link" not in text


def test_report_reads_the_store_and_fleet_an_env_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path a user takes next to the local stack: ``spotgate --env-file .spotgate/dev.env report``."""
    for name in ("SPOTGATE_FLEET", "SPOTGATE_STORE", "SPOTGATE_SQLITE_PATH", "SPOTGATE_FLEET_FILE"):
        monkeypatch.delenv(name, raising=False)
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(
        "project: spotgate-unit\npools:\n  - name: chat\n    model: m\n    spot: {zones: [us-central1-a]}\n"
    )
    db = tmp_path / "store.db"
    store = SqliteStore(db)
    now = datetime.now(UTC)
    store.append_history(
        [
            HistoryRecord(
                "chat", now - timedelta(minutes=90), HistoryKind.VM, "chat-a-1", "RUNNING", "us-central1-a", "SPOT"
            )
        ]
    )
    store.close()
    env = tmp_path / "dev.env"
    env.write_text(
        f"SPOTGATE_MODE=sandbox\nSPOTGATE_STORE=sqlite\nSPOTGATE_SQLITE_PATH={db}\nSPOTGATE_FLEET_FILE={fleet_file}\n"
    )
    result = CliRunner().invoke(main, ["--env-file", str(env), "report", "--since", "1h", "--as-json"])
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.output)
    assert report["gpu_hours"]["spot"] == pytest.approx(1.0, rel=0.01)
