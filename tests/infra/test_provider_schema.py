"""The offline provider schema reads the bindings right and the checker reports what ``terraform validate`` would.

test_invariants runs the checker on ``infra/`` (0 findings) and test_broken_copies proves it bites on copies;
these tests pin the reader against facts of provider 6.50.0 and the checker against small snippets.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.provider_schema import PACKAGE, SchemaMissingError, check_tree, schema_of


def test_the_pinned_bindings_are_provider_6_50_0() -> None:
    package = (PACKAGE / "package.json").read_text(encoding="utf-8")
    assert '"version": "16.12.1"' in package


def test_compute_instance_schema_has_its_documented_shape() -> None:
    instance = schema_of("resource", "google_compute_instance")

    assert {name for name, required in instance.arguments.items() if required} == {"machine_type", "name"}
    assert instance.blocks["boot_disk"][1] is True
    assert instance.blocks["network_interface"][1] is True
    scheduling, required = instance.blocks["scheduling"]
    assert required is False
    assert {"provisioning_model", "instance_termination_action", "automatic_restart"} <= scheduling.arguments.keys()
    assert "initialize_params" in instance.blocks["boot_disk"][0].blocks


def test_data_sources_are_read_from_their_own_bindings() -> None:
    assert "project_id" in schema_of("data", "google_project").arguments


def test_an_unknown_resource_type_is_reported() -> None:
    with pytest.raises(SchemaMissingError, match="no resource google_compute_instanse"):
        schema_of("resource", "google_compute_instanse")


SNIPPETS = [
    pytest.param(
        'resource "google_pubsub_topic" "t" {\n  name = "x"\n}\n',
        [],
        id="valid",
    ),
    pytest.param(
        'resource "google_pubsub_topic" "t" {\n  name = "x"\n  count = 1\n'
        "  lifecycle {\n    prevent_destroy = true\n  }\n}\n",
        [],
        id="meta-arguments-are-allowed",
    ),
    pytest.param(
        'resource "google_pubsub_topic" "t" {\n  nmae = "x"\n}\n',
        [
            "main.tf: resource google_pubsub_topic.t.nmae: unknown argument or block nmae",
            "main.tf: resource google_pubsub_topic.t: missing required argument name",
        ],
        id="misspelled-required-argument",
    ),
    pytest.param(
        'resource "google_cloud_run_v2_service" "s" {\n  name = "x"\n  location = "r"\n'
        '  template {\n    dynamic "containers" {\n      for_each = [1]\n      content {\n'
        "        imag = 1\n      }\n    }\n  }\n}\n",
        [
            "main.tf: resource google_cloud_run_v2_service.s.template.dynamic.containers.imag: "
            "unknown argument or block imag",
            "main.tf: resource google_cloud_run_v2_service.s.template.dynamic.containers: "
            "missing required argument image",
        ],
        id="inside-a-dynamic-block",
    ),
    pytest.param(
        'data "google_project" "p" {\n  project_id = "x"\n  zone = "y"\n}\n',
        ["main.tf: data google_project.p.zone: unknown argument or block zone"],
        id="data-source",
    ),
    pytest.param(
        'resource "random_id" "r" {\n  anything = 1\n}\n',
        [],
        id="other-providers-are-not-checked",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SNIPPETS)
def test_checker_on_snippets(tmp_path: Path, text: str, expected: list[str]) -> None:
    (tmp_path / "main.tf").write_text(text, encoding="utf-8")

    assert check_tree(tmp_path) == expected
