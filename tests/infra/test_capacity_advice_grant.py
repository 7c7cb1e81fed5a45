"""The controller may read GCE's capacity advice, and nothing more, exactly while a pool sets capacity_advice."""

from __future__ import annotations

import copy
import json

import pytest

from tests.infra.terraform_tree import TerraformTree, load_tree
from tests.infra.test_fleet_rendering import Console, console, example_variables  # noqa: F401 -- fixture by name

ADVICE_PERMISSIONS = ["compute.advice.capacity", "compute.advice.capacityHistory"]
ONLY_WITH_ADVICE = "${local.capacity_advice_wanted ? 1 : 0}"


@pytest.fixture(scope="module")
def tree() -> TerraformTree:
    return load_tree()


def test_the_advisor_role_holds_exactly_the_two_advice_permissions(tree: TerraformTree) -> None:
    [role] = [r for r in tree.resources("google_project_iam_custom_role") if r.labels[1] == "capacity_advisor"]
    assert role.body["permissions"] == ADVICE_PERMISSIONS
    assert role.body["count"] == ONLY_WITH_ADVICE


def test_only_the_controller_gets_it_and_only_with_advice(tree: TerraformTree) -> None:
    grants = [g for g in tree.resources("google_project_iam_member") if "capacity_advisor" in json.dumps(g.body)]
    assert [(g.labels[1], g.body["count"], g.body["role"], g.body["member"]) for g in grants] == [
        (
            "capacity_advisor",
            ONLY_WITH_ADVICE,
            "${google_project_iam_custom_role.capacity_advisor[0].id}",
            "serviceAccount:${google_service_account.controller.email}",
        )
    ]
    assert "condition" not in grants[0].body


def test_no_other_grant_reaches_the_advice_api(tree: TerraformTree) -> None:
    """No other custom role carries an advice permission, and no predefined Compute role (roles/compute.viewer
    holds the advice permissions among hundreds of others) is granted anywhere."""
    others = [r for r in tree.resources("google_project_iam_custom_role") if r.labels[1] != "capacity_advisor"]
    assert [p for r in others for p in r.body["permissions"] if p.startswith("compute.advice.")] == []
    assert "roles/compute." not in json.dumps(list(tree.files.values()))


@pytest.mark.parametrize(
    ("advice", "wanted"), [pytest.param(False, False, id="off"), pytest.param(True, True, id="on")]
)
def test_the_grant_follows_the_pools(console: Console, advice: bool, wanted: bool) -> None:  # noqa: F811
    variables = copy.deepcopy(example_variables())
    variables["pools"][0]["capacity_advice"] = advice
    assert console.value("local.capacity_advice_wanted", variables) is wanted
