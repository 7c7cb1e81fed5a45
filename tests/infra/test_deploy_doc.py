"""docs/deploy.md walks from an empty project through preflight to a working URL, then dashboard and alerts.

The walkthrough is checked for what a reader relies on: the steps come in the order they must run, every CLI
option and alert setting it shows exists, and the path at its top links real sections.
"""

from __future__ import annotations

import re

from click.testing import CliRunner

from spotgate.cli import main
from tests.infra.terraform_tree import INFRA, REPO, load_tree

DOC = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")


def _position(fragment: str) -> int:
    index = DOC.find(fragment)
    assert index >= 0, f"docs/deploy.md lacks {fragment!r}"
    return index


def test_the_steps_run_in_the_order_they_must() -> None:
    steps = [
        "gcloud services enable serviceusage.googleapis.com",
        "spotgate preflight --var-file infra/terraform.tfvars",
        "terraform -chdir=infra apply -target=module.artifacts",
        "terraform -chdir=infra apply spotgate.tfplan",
        "gcloud builds submit",
        "spotgate keys create",
        "GATEWAY=$(terraform -chdir=infra output -raw gateway_url)",
        "terraform -chdir=infra output -raw dashboard_url",
        "gcloud beta monitoring channels create",
    ]
    positions = [_position(step) for step in steps]
    assert positions == sorted(positions)


def test_the_path_links_real_sections() -> None:
    headings = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^##+ (.+)$", DOC, re.M)}
    anchors = set(re.findall(r"\]\(#([a-z0-9-]+)\)", DOC))
    assert anchors
    assert anchors <= headings


def test_the_preflight_options_it_shows_exist() -> None:
    help_text = CliRunner().invoke(main, ["preflight", "--help"]).output
    for option in set(re.findall(r"spotgate (?:--env-file \S+ )?preflight((?: --[a-z-]+)+)", DOC)):
        for flag in option.split():
            assert flag in help_text, flag


def test_the_alert_settings_it_shows_are_the_variable_s_fields() -> None:
    (variable,) = [v for v in load_tree().blocks("variable") if v.labels[0] == "alerts" and v.module_dir == INFRA]
    fields = set(re.findall(r"(\w+)\s*=\s*optional", str(variable.body["type"])))
    block = DOC[_position("alerts = {") : DOC.index("}", _position("alerts = {"))]
    shown = set(re.findall(r"^\s+(\w+)\s*=", block, re.M))
    assert shown
    assert shown <= fields
