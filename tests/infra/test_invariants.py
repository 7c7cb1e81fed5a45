"""The real ``infra/`` keeps every invariant (each check is proven to bite in test_broken_copies)."""

from __future__ import annotations

import pytest

from tests.infra.invariants import CHECKS, Check
from tests.infra.terraform_tree import TerraformTree, load_tree


@pytest.fixture(scope="module")
def tree() -> TerraformTree:
    return load_tree()


def test_every_terraform_file_parses(tree: TerraformTree) -> None:
    names = {path.relative_to(tree.root).as_posix() for path in tree.files}
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "fleet.tf", "iam.tf"} <= names
    assert len(tree.resources("google_compute_instance")) == 2  # one SPOT, one STANDARD resource


@pytest.mark.parametrize("check", [pytest.param(c, id=name) for name, c in CHECKS.items()])
def test_invariant_holds(tree: TerraformTree, check: Check) -> None:
    assert check(tree) == []
