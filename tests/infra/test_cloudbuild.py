"""cloudbuild.yaml deploys what Terraform created, with the names, runtime and entry points the code has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from spotgate.settings import Settings
from tests.infra.terraform_tree import INFRA, REPO, TerraformTree, first, load_tree

CLOUDBUILD = REPO / "cloudbuild.yaml"
DEPLOY_DOC = REPO / "docs" / "deploy.md"
REPO_PATH = re.compile(r"(?<![\w./-])((?:functions|run_service|infra|tests|examples|docs)(?:/[\w.-]+)*)")
USED_SUBSTITUTION = re.compile(r"\$\{(_[A-Z0-9_]+)")


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(CLOUDBUILD.read_text(encoding="utf-8"))
    return parsed


@pytest.fixture(scope="module")
def tree() -> TerraformTree:
    return load_tree()


def _scripts(build: dict[str, Any]) -> str:
    return "\n".join(str(step.get("script", "")) + " ".join(step.get("args", [])) for step in build["steps"])


def test_steps_run_in_order(build: dict[str, Any]) -> None:
    ids = [step["id"] for step in build["steps"]]
    assert len(ids) == len(set(ids))
    for step in build["steps"]:
        assert set(step.get("waitFor", [])) <= set(ids), step["id"]
    by_id = {step["id"]: step for step in build["steps"]}
    assert by_id["build-gateway"]["waitFor"] == ["test"]
    assert by_id["deploy-functions"]["waitFor"] == ["test"]
    assert "make test" in by_id["test"]["script"]


def test_every_path_it_names_exists(build: dict[str, Any]) -> None:
    named = set(REPO_PATH.findall(_scripts(build)))
    assert {"run_service/Dockerfile", "functions"} <= named
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert missing == []


def test_substitutions_are_declared_used_and_documented(build: dict[str, Any]) -> None:
    declared = set(build["substitutions"])
    used = set(USED_SUBSTITUTION.findall(_scripts(build)))
    header = CLOUDBUILD.read_text(encoding="utf-8").split("substitutions:", 1)[0]
    doc = DEPLOY_DOC.read_text(encoding="utf-8")

    assert used <= declared
    assert declared <= used
    assert [s for s in declared if s not in header] == []
    assert [s for s in declared if f"`{s}`" not in doc] == []
    assert build["options"]["automapSubstitutions"] is True


def test_terraform_output_feeds_the_substitutions(build: dict[str, Any], tree: TerraformTree) -> None:
    output = next(o for o in tree.blocks("output") if o.labels == ("cloudbuild_substitutions",))
    assert set(output.body["value"]) <= set(build["substitutions"])


def test_default_names_match_terraform_and_settings(build: dict[str, Any], tree: TerraformTree) -> None:
    subs = build["substitutions"]
    name = subs["_NAME"]
    root_name = next(v for v in tree.blocks("variable") if v.labels == ("name",) and v.module_dir == INFRA)
    assert root_name.body["default"] == name
    functions = tree.locals_of(INFRA / "modules" / "control_plane")["functions"]
    assert functions["compute"]["name"].replace("${var.name}", name) == subs["_COMPUTE_FUNCTION"]
    assert functions["control"]["name"].replace("${var.name}", name) == subs["_CONTROL_FUNCTION"]
    gateway = next(m for m in tree.blocks("module") if m.labels == ("gateway",))
    assert gateway.body["name"].replace("${var.name}", name) == subs["_GATEWAY_SERVICE"]
    assert subs["_CONTROL_TOPIC"] == Settings.model_fields["control_topic"].default
    assert subs["_COMPUTE_TOPIC"] == Settings.model_fields["compute_topic"].default


def test_functions_deploy_like_terraform_created_them(build: dict[str, Any], tree: TerraformTree) -> None:
    script = _scripts(build)
    main = (REPO / "functions" / "main.py").read_text(encoding="utf-8")
    functions = tree.locals_of(INFRA / "modules" / "control_plane")["functions"]
    (resource,) = tree.resources("google_cloudfunctions2_function")

    assert "--runtime=python312" in script
    assert first(resource.body["build_config"])["runtime"] == "python312"
    assert "--retry" in script
    for spec in functions.values():
        entry_point = spec["entry_point"]
        assert re.search(rf"@functions_framework\.cloud_event\s+def {entry_point}\(", main), entry_point
        assert entry_point in script


def _patterns(lines: list[str]) -> set[str]:
    return {line.removeprefix("**/").removesuffix("/**").removesuffix("/") for line in lines}


def test_function_uploads_leave_the_sandbox_out(tree: TerraformTree) -> None:
    ignore = (REPO / "functions" / ".gcloudignore").read_text(encoding="utf-8").splitlines()
    gcloud = _patterns([line for line in ignore if line.strip() and not line.startswith("#")])
    archive = next(b for b in tree.blocks("data") if b.labels == ("archive_file", "functions"))

    assert "spotgate/sandbox" in gcloud
    assert gcloud == _patterns(archive.body["excludes"])


def test_docs_name_real_outputs(tree: TerraformTree) -> None:
    doc = DEPLOY_DOC.read_text(encoding="utf-8")
    outputs = {o.labels[0] for o in tree.blocks("output") if o.module_dir == INFRA}
    mentioned = set(re.findall(r"terraform -chdir=infra output (?:-raw |-json )?(\w+)", doc))
    assert mentioned
    assert mentioned <= outputs


def test_the_example_tfvars_is_where_the_docs_say(tree: TerraformTree) -> None:
    assert Path(INFRA / "examples" / "terraform.tfvars").is_file()
    assert "infra/examples/terraform.tfvars" in DEPLOY_DOC.read_text(encoding="utf-8")


def test_the_suite_runs_on_the_functions_python(build: dict[str, Any], tree: TerraformTree) -> None:
    """Issue 13 finding 9: the tests ran on 3.11 while the functions run python312 and the gateway 3.12."""
    (test,) = [step for step in build["steps"] if step["id"] == "test"]
    runtimes = {first(f.body["build_config"])["runtime"] for f in tree.resources("google_cloudfunctions2_function")}
    gateway_base = re.findall(r"^FROM python:(\d+\.\d+)", (REPO / "run_service" / "Dockerfile").read_text(), re.M)

    assert runtimes == {"python312"}
    assert set(gateway_base) == {"3.12"}
    assert test["name"].startswith("python:3.12-")
