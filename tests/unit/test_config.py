"""Fleet configuration: the example loads, and every invalid config fails naming its field."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from spotgate.domain import ProvisioningModel
from spotgate.errors import ConfigError
from spotgate.fleet import FleetConfig, load_fleet, parse_duration, parse_fleet
from spotgate.settings import read_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.yaml"


def a_fleet(**pool_overrides: Any) -> dict[str, Any]:
    pool: dict[str, Any] = {
        "name": "chat",
        "model": "m",
        "vms": [
            {"name": "chat-a", "zone": "us-central1-a"},
            {"name": "chat-b", "zone": "us-central1-b"},
        ],
        "min_ready": 1,
        "max_ready": 2,
    }
    pool.update(pool_overrides)
    return {"project": "proj-test-1", "region": "us-central1", "pools": [pool]}


def test_example_fleet_has_the_documented_shape() -> None:
    fleet = load_fleet(EXAMPLE)
    chat, embed = fleet.pools
    assert [vm.zone for vm in chat.spot_vms] == ["us-central1-a", "us-central1-b", "us-central1-c"]
    assert [vm.name for vm in chat.standard_vms] == ["chat-standard"]
    assert chat.fallback.enabled
    assert chat.overflow is not None
    assert len(embed.vms) < len(chat.vms)
    assert fleet.pool_for_model("llama3") is chat
    assert fleet.pool_of_instance("embed-b-1") is embed


def test_spot_group_generates_names_per_zone_and_count() -> None:
    data = a_fleet(vms=[], spot={"zones": ["us-central1-a", "us-central1-f"], "per_zone": 2})
    pool = parse_fleet(data).pools[0]
    assert [vm.name for vm in pool.vms] == ["chat-a-1", "chat-a-2", "chat-f-1", "chat-f-2"]
    assert {vm.provisioning_model for vm in pool.vms} == {ProvisioningModel.SPOT}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(90, timedelta(seconds=90), id="int-seconds"),
        pytest.param("90", timedelta(seconds=90), id="numeric-string"),
        pytest.param("15m", timedelta(minutes=15), id="minutes"),
        pytest.param("1h30m", timedelta(minutes=90), id="compound"),
        pytest.param("250ms", timedelta(milliseconds=250), id="millis"),
        pytest.param("PT15M", timedelta(minutes=15), id="iso-8601"),
    ],
)
def test_durations(value: object, expected: timedelta) -> None:
    assert parse_duration(value) == expected


@pytest.mark.parametrize("value", ["soon", "-5", -1, "5 parsecs", True, "", "P-nonsense"])
def test_bad_durations_are_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def _with(mutate: Any) -> dict[str, Any]:
    data = a_fleet()
    mutate(data)
    return data


def _second_pool_reusing_vm(data: dict[str, Any]) -> None:
    other = copy.deepcopy(data["pools"][0])
    other.update(name="other", model="m2", min_ready=0, max_ready=1)
    other["vms"] = [{"name": "chat-a", "zone": "us-central1-a"}]
    data["pools"].append(other)


INVALID = [
    pytest.param(lambda d: d["pools"][0].update(gpu="l4"), "pools.0.gpu", id="unknown-field"),
    pytest.param(lambda d: d.update(colour="blue"), "colour", id="unknown-top-level-field"),
    pytest.param(lambda d: d["pools"][0]["vms"][0].update(zone="uscentral1a"), "pools.0.vms.0.zone", id="bad-zone"),
    pytest.param(lambda d: d["pools"][0].update(min_ready=3, max_ready=2), "min_ready", id="min-above-max"),
    pytest.param(
        lambda d: d["pools"][0].update(
            active_hours={"timezone": "Mars/Olympus", "windows": [{"start": "08:00", "end": "18:00"}]}
        ),
        "pools.0.active_hours.timezone",
        id="unknown-timezone",
    ),
    pytest.param(
        lambda d: d["pools"][0]["vms"].append({"name": "chat-a", "zone": "us-central1-c"}),
        "duplicate VM names",
        id="duplicate-vm",
    ),
    pytest.param(_second_pool_reusing_vm, "already belongs to pool 'chat'", id="vm-in-two-pools"),
    pytest.param(lambda d: d["pools"][0].update(vms=[]), "at least one VM", id="no-vms"),
    pytest.param(
        lambda d: d["pools"][0].update(fallback={"enabled": True}), "fallback.enabled", id="fallback-no-standard"
    ),
    pytest.param(lambda d: d["pools"][0].update(idle_timeout="later"), "pools.0.idle_timeout", id="bad-duration"),
    pytest.param(
        lambda d: d["pools"][0]["vms"][0].update(zone="europe-west4-a"), "not in region", id="zone-outside-region"
    ),
    pytest.param(lambda d: d["pools"][0].update(max_ready=5), "exceeds the pool's 2 VMs", id="max-above-vm-count"),
    pytest.param(lambda d: d["pools"][0]["vms"][0].update(name="Chat_A"), "pools.0.vms.0.name", id="bad-vm-name"),
    pytest.param(
        lambda d: d["pools"][0].update(overflow={"service": "x", "url": "not a url"}), "overflow.url", id="bad-url"
    ),
    pytest.param(lambda d: d["pools"][0].update(preemption_notice="0s"), "pools.0.preemption_notice", id="notice-zero"),
    pytest.param(
        lambda d: d["pools"][0].update(preemption_half_life="0s"),
        "preemption_half_life must be positive",
        id="half-life-0",
    ),
    pytest.param(
        lambda d: d["pools"][0].update(preemption_notice="1.5s"), "whole number of seconds", id="notice-fraction"
    ),
    pytest.param(lambda d: d["pools"][0].update(stockout_weight=-1), "pools.0.stockout_weight", id="weight-negative"),
]


@pytest.mark.parametrize(("mutate", "named"), INVALID)
def test_invalid_configs_name_the_field(mutate: Any, named: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_fleet(_with(mutate), "test.yaml")
    assert named in str(excinfo.value)
    assert "test.yaml" in str(excinfo.value)


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        pytest.param("https://chat-overflow.a.run.app", True, id="https"),
        pytest.param("http://127.0.0.1:8100", True, id="http-to-loopback-sandbox"),
        pytest.param("http://127.3.4.5:8100/v", True, id="http-anywhere-in-127-8"),
        pytest.param("http://chat-overflow.a.run.app", False, id="http-carries-the-id-token-in-clear"),
        pytest.param("http://10.0.0.7:8000", False, id="http-to-a-private-address"),
        pytest.param("http://localhost.evil.example", False, id="loopback-lookalike-name"),
    ],
)
def test_an_overflow_url_is_https_except_to_loopback(url: str, accepted: bool) -> None:
    document = a_fleet(overflow={"service": "chat-overflow", "url": url})
    if accepted:
        assert parse_fleet(document).pools[0].overflow is not None
    else:
        with pytest.raises(ConfigError, match=r"overflow\.url"):
            parse_fleet(document)


def test_fleet_survives_a_json_round_trip() -> None:
    """The dev stack and Terraform hand the fleet to functions and gateway as JSON."""
    fleet = load_fleet(EXAMPLE)
    assert parse_fleet(json.loads(fleet.model_dump_json())) == fleet


def test_windows_crossing_midnight_and_day_names_normalise() -> None:
    data = a_fleet(
        active_hours={"timezone": "Asia/Tokyo", "windows": [{"days": ["Friday"], "start": "22:00", "end": "02:00"}]}
    )
    hours = parse_fleet(data).pools[0].active_hours
    assert hours is not None
    assert hours.windows[0].days == ("fri",)


def test_malformed_yaml_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("pools: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid"):
        load_fleet(path)


def test_json_fleet_file_and_inline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(a_fleet()))
    assert isinstance(load_fleet(path), FleetConfig)
    monkeypatch.setenv("SPOTGATE_FLEET", json.dumps(a_fleet()))
    assert read_settings().load_fleet().pools[0].name == "chat"
    monkeypatch.setenv("SPOTGATE_FLEET", "{not json")
    with pytest.raises(ConfigError, match="SPOTGATE_FLEET is not valid JSON"):
        read_settings().load_fleet()


def test_invalid_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTGATE_STORE", "postgres")
    with pytest.raises(ConfigError, match="SPOTGATE_STORE"):
        read_settings()
