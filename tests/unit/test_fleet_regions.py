"""A pool may span regions of the fleet's VPC: the home region plus ``regions`` (DESIGN §2.1)."""

from __future__ import annotations

import re

import pytest

from spotgate.errors import ConfigError
from spotgate.fleet import parse_fleet


@pytest.mark.parametrize(
    ("regions", "error"),
    [
        pytest.param([], "zone 'us-east1-b' is not in region 'us-central1' (list more in 'regions')", id="home_only"),
        pytest.param(["us-east1"], None, id="second_region_listed"),
    ],
)
def test_a_pool_may_span_the_fleets_regions(regions: list[str], error: str | None) -> None:
    data = {
        "region": "us-central1",
        "regions": regions,
        "pools": [{"name": "chat", "model": "m", "spot": {"zones": ["us-central1-a", "us-east1-b"]}}],
    }
    if error is None:
        assert parse_fleet(data).pools[0].zones == ("us-central1-a", "us-east1-b")
    else:
        with pytest.raises(ConfigError, match=re.escape(error)):
            parse_fleet(data)
