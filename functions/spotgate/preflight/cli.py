"""``spotgate preflight``: check the project against what ``terraform apply`` will need, one row per check.

Reads the tfvars the apply will use (through Terraform itself), asks the project with the caller's credentials
(Application Default Credentials; with ``SPOTGATE_COMPUTE_ENDPOINT`` set, e.g. ``--env-file
.spotgate/dev.env``, the sandbox answers instead), prints PASS/WARN/FAIL with the fix for each failure, and
exits 1 when anything fails.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from spotgate.preflight.checks import CheckResult, Status, evaluate
from spotgate.preflight.deployment import parse_deployment
from spotgate.preflight.needs import needs_of

_STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "bold red"}


@click.command()
@click.option(
    "--var-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=Path("infra/terraform.tfvars"),
    show_default=True,
    help="The Terraform variables the apply will use.",
)
@click.option(
    "--infra",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("infra"),
    show_default=True,
    help="The repository's infra/ directory (its variables.tf and fleet.tf are evaluated).",
)
@click.option("--terraform", default="terraform", show_default=True, help="The Terraform CLI to evaluate them with.")
@click.option("--project", help="Check this project instead of the tfvars' project (like `-var project=…`).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as a JSON list (for scripts and CI).")
@click.pass_context
def preflight(
    ctx: click.Context, var_file: Path, infra: Path, terraform: str, project: str | None, *, as_json: bool
) -> None:
    """Check APIs, GPU quota (at creation and at max_ready), images, machine types, Cloud Run GPUs and org
    policies before `terraform apply`."""
    from spotgate.cli import cli_errors
    from spotgate.preflight.probe import ProjectProbe
    from spotgate.preflight.tfvars import read_deployment_variables
    from spotgate.settings import read_settings

    env_file = ctx.obj.get("env_file") if ctx.obj else None
    with cli_errors(env_file):
        settings = read_settings(env_file)
        deployment = parse_deployment(read_deployment_variables(infra, var_file, terraform, project=project))
        needs = needs_of(deployment)
        observed = ProjectProbe(endpoint=settings.compute_endpoint).observe(deployment, needs)
    results = evaluate(deployment, needs, observed)
    if as_json:
        click.echo(json.dumps([{**asdict(r), "status": r.status.value} for r in results], indent=2))
    else:
        Console().print(results_table(deployment.project, deployment.region, results))
    failed = [r for r in results if r.status is Status.FAIL]
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed: fix them before `terraform apply`")
    if not as_json:
        click.echo("preflight passed: run `terraform -chdir=infra apply`")


def results_table(project: str, region: str, results: list[CheckResult]) -> Table:
    table = Table(title=f"spotgate preflight: project {project}, region {region}", show_lines=False)
    for column in ("check", "result", "detail", "fix"):
        table.add_column(column, overflow="fold", ratio=None if column == "result" else 1)
    for result in results:
        style = _STYLE[result.status]
        table.add_row(result.check, f"[{style}]{result.status.value}[/]", result.detail, result.fix)
    return table
