"""What Terraform hands the code and the operator matches what the code reads and the docs say."""

from __future__ import annotations

import json
import re

import pytest

from spotgate.settings import GatewaySettings, Settings
from tests.infra.terraform_tree import INFRA, TerraformTree, load_tree

ENV_NAME = re.compile(r"\bSPOTGATE_[A-Z_]+\b")


@pytest.fixture(scope="module")
def tree() -> TerraformTree:
    return load_tree()


def _environment_names(tree: TerraformTree) -> set[str]:
    texts = [json.dumps(tree.locals_of(d).get("environment", {})) for d in tree.module_dirs()]
    gateway = next(m for m in tree.blocks("module") if m.labels == ("gateway",))
    texts.append(json.dumps(gateway.body["environment"]))
    return set(ENV_NAME.findall("\n".join(texts)))


def _setting(name: str) -> str:
    if name.startswith("SPOTGATE_GATEWAY_"):
        field = name.removeprefix("SPOTGATE_GATEWAY_").lower()
        return field if field in GatewaySettings.model_fields else f"unknown gateway setting {name}"
    field = name.removeprefix("SPOTGATE_").lower()
    return field if field in Settings.model_fields else f"unknown setting {name}"


def test_every_environment_variable_is_a_setting(tree: TerraformTree) -> None:
    names = _environment_names(tree)

    assert {"SPOTGATE_FLEET", "SPOTGATE_CONTROL_TOPIC", "SPOTGATE_GATEWAY_URL"} <= names
    assert [s for s in map(_setting, sorted(names)) if s.startswith("unknown")] == []


def test_settings_the_deployment_depends_on_are_set(tree: TerraformTree) -> None:
    names = _environment_names(tree)
    needed = {
        "SPOTGATE_MODE",
        "SPOTGATE_PROJECT",
        "SPOTGATE_FLEET",
        "SPOTGATE_STORE",
        "SPOTGATE_FIRESTORE_DATABASE",
        "SPOTGATE_CONTROL_TOPIC",
        "SPOTGATE_COMPUTE_TOPIC",
        "SPOTGATE_GATEWAY_URL",
        "SPOTGATE_GATEWAY_AUDIENCES",
        "SPOTGATE_GATEWAY_ALLOWED_PRINCIPALS",
    }
    assert needed - names == set()


def _granted_roles(tree: TerraformTree) -> set[str]:
    text = json.dumps(list(tree.files.values()))
    return set(re.findall(r"roles/[a-zA-Z0-9.]+", text))


def test_the_readme_explains_every_granted_role(tree: TerraformTree) -> None:
    readme = (INFRA / "README.md").read_text(encoding="utf-8")
    roles = _granted_roles(tree)
    permissions = {p for r in tree.resources("google_project_iam_custom_role") for p in r.body["permissions"]}

    assert "roles/run.invoker" in roles
    assert sorted(r for r in roles if f"`{r}`" not in readme) == []
    assert sorted(p for p in permissions if f"`{p}`" not in readme) == []
