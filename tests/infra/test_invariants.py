"""The real ``infra/`` keeps every invariant (each check is proven to bite in test_broken_copies)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.infra.invariants import CHECKS, Check
from tests.infra.terraform_tree import INFRA, TerraformTree, load_tree


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


def test_terraform_files_are_canonically_formatted() -> None:
    terraform = shutil.which("terraform")
    assert terraform, "the Terraform CLI must be on PATH (cloudbuild.yaml copies it from hashicorp/terraform)"
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-list=true", str(INFRA)],
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive infra`: {result.stdout}"
