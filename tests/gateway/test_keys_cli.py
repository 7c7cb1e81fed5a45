"""``spotgate keys``: a secret is shown once and only its hash is stored; list never shows secrets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from spotgate.apikeys import hash_secret
from spotgate.cli import main

KEY = re.compile(r"sg-[A-Za-z0-9_-]{43}")


def run(store, *args: str):
    return CliRunner().invoke(main, ["keys", *args], obj={"store": store}, catch_exceptions=False)


def test_create_shows_the_key_once_and_stores_only_its_hash(store) -> None:
    result = run(store, "create", "ci-bot", "--pools", "chat,embed", "--rpm", "60", "--concurrency", "4",
                 "--expires", "30d")  # fmt: skip
    assert result.exit_code == 0, result.output
    secret = KEY.search(result.output).group(0)
    [key] = store.list_keys()
    assert key.secret_hash == hash_secret(secret)
    assert secret not in repr(key)
    assert (key.name, key.pools, key.rpm, key.max_concurrent) == ("ci-bot", ("chat", "embed"), 60, 4)
    assert timedelta(days=29) < key.expires_at - datetime.now(UTC) <= timedelta(days=30)


def test_list_shows_scopes_but_never_secrets(store) -> None:
    secret = KEY.search(run(store, "create", "alice").output).group(0)
    listing = run(store, "list").output
    assert "alice" in listing
    assert store.list_keys()[0].key_id in listing
    assert secret not in listing
    assert store.list_keys()[0].secret_hash not in listing
    assert not KEY.search(listing)


def test_pass_through_is_off_unless_asked_for(store) -> None:
    run(store, "create", "plain")
    run(store, "create", "raw", "--passthrough")
    scopes = {k.name: k.passthrough for k in store.list_keys()}
    assert scopes == {"plain": False, "raw": True}


def test_revoke_disables_the_key(store) -> None:
    run(store, "create", "alice")
    key_id = store.list_keys()[0].key_id
    assert run(store, "revoke", key_id).exit_code == 0
    assert store.list_keys()[0].disabled
    assert "revoked" in run(store, "list").output


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["revoke", "k-unknown"], id="revoke-unknown"),
        pytest.param(["create", "x", "--expires", "yesterday"], id="bad-expiry"),
        pytest.param(["create", "x", "--expires", "2001-01-01T00:00:00"], id="expiry-in-the-past"),
        pytest.param(["create", "x", "--pools", "Bad_Pool"], id="bad-pool-name"),
        pytest.param(["create", "x", "--pools", ""], id="empty-pools-fail-closed"),
        pytest.param(["create", "x", "--pools", " , "], id="blank-pools-fail-closed"),
    ],
)
def test_invalid_commands_fail_without_writing(store, args: list[str]) -> None:
    assert run(store, *args).exit_code != 0
    assert store.list_keys() == []


def test_the_cli_finds_the_configured_store_without_injection(tmp_path) -> None:
    env = {"SPOTGATE_STORE": "sqlite", "SPOTGATE_SQLITE_PATH": str(tmp_path / "keys.db")}
    runner = CliRunner(env=env)
    created = runner.invoke(main, ["keys", "create", "ops"], catch_exceptions=False)
    listed = runner.invoke(main, ["keys", "list"], catch_exceptions=False)
    assert created.exit_code == 0, created.output
    assert "ops" in listed.output
    assert KEY.search(created.output).group(0) not in listed.output


def _without_credentials(tmp_path: Path) -> dict[str, str]:
    """An environment where Application Default Credentials find nothing, without touching the network:
    no credentials file, an empty gcloud config, and the GCE metadata check off and pointed at loopback."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "NO_GCE_CHECK": "True",
        "GCE_METADATA_HOST": "127.0.0.1:9",
        "GCE_METADATA_IP": "127.0.0.1:9",
        "SPOTGATE_STORE": "firestore",
        "SPOTGATE_PROJECT": "my-spotgate-project",
    }


@pytest.mark.parametrize("local_stack", [pytest.param(True, id="after-make-dev"), pytest.param(False, id="no-stack")])
def test_keys_create_without_credentials_says_so(tmp_path: Path, *, local_stack: bool) -> None:
    """Issue 13 finding 10: this died with Google's DefaultCredentialsError traceback."""
    if local_stack:
        (tmp_path / ".spotgate").mkdir()
        (tmp_path / ".spotgate" / "dev.env").write_text("SPOTGATE_STORE=sqlite\n", encoding="utf-8")
    spotgate = Path(sys.executable).parent / "spotgate"

    result = subprocess.run(
        [str(spotgate), "keys", "create", "my-app"],
        cwd=tmp_path,
        env=_without_credentials(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "No Google Cloud credentials found" in result.stderr
    hint = "spotgate --env-file .spotgate/dev.env keys create"
    assert (hint in result.stderr) is local_stack


def test_usage_shows_each_key_pool_and_hour_with_totals(store) -> None:
    from datetime import UTC, datetime

    from spotgate.domain import KeyUsage

    run(store, "create", "team-a")
    key = store.list_keys()[0]
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    store.record_usage(
        [KeyUsage(key.key_id, "chat", hour, 3, 120, 45, 2.5), KeyUsage("k-gone", "embed", hour, 1, 7, 0, 0.25)]
    )
    shown = run(store, "usage")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    team = next(line for line in lines if key.key_id in line)
    assert all(part in team for part in ("team-a", "chat", " 3 ", "120", "45", "2.5"))
    total = next(line for line in lines if "total" in line)
    assert all(part in total for part in (" 4 ", "127", "45", "2.8"))
    only = run(store, "usage", "--key", "k-gone").output
    assert "k-gone" in only
    assert key.key_id not in only
    assert run(store, "usage", "--since", "soon").exit_code != 0
