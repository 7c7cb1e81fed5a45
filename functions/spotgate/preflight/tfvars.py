"""The deployment as Terraform will see it: ``infra/variables.tf`` + ``infra/fleet.tf`` evaluated by the real
Terraform CLI (``terraform console``) with the user's tfvars.

Those two files need no provider, so this works before ``terraform init`` and offline: defaults are applied
and every variable validation runs, so a bad tfvars is reported exactly as ``plan`` would report it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from spotgate.errors import ConfigError
from spotgate.settings import environment

EXPRESSION = (
    "jsonencode({project = var.project, region = var.region, pools = var.pools, pool_vms = local.pool_vms,"
    " pubsub_token_creator_grant = var.pubsub_token_creator_grant})"
)
# fleet.tf renders overflow URLs that exist only after the apply; preflight never reads them.
_OVERFLOW_URLS_STUB = 'locals {\n  overflow_urls = { for p in var.pools : p.name => "" }\n}\n'
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
TIMEOUT = 120.0


def read_deployment_variables(
    infra: Path, var_file: Path, terraform: str = "terraform", *, project: str | None = None
) -> dict[str, Any]:
    """``{project, region, pools, pool_vms, pubsub_token_creator_grant}`` as Terraform evaluates them;
    ``project`` overrides the tfvars' ``project`` (``-var``, as on the command line of ``plan``).

    Raises ConfigError when Terraform is missing or rejects the variables (its message included).
    """
    binary = shutil.which(terraform)
    if binary is None:
        raise ConfigError(f"the Terraform CLI ({terraform}) is not on PATH; preflight evaluates your tfvars with it")
    for name in ("variables.tf", "fleet.tf"):
        if not (infra / name).is_file():
            raise ConfigError(f"{infra / name} not found: pass --infra with the repository's infra/ directory")
    with tempfile.TemporaryDirectory(prefix="spotgate-preflight-") as scratch:
        directory = Path(scratch)
        for name in ("variables.tf", "fleet.tf"):
            shutil.copy(infra / name, directory / name)
        (directory / "overflow_urls.tf").write_text(_OVERFLOW_URLS_STUB, encoding="utf-8")
        overrides = [f"-var=project={project}"] if project else []
        output = _console(binary, directory, [f"-var-file={var_file.resolve()}", *overrides])
    return _parse(output)


def _console(binary: str, directory: Path, arguments: list[str]) -> str:
    result = subprocess.run(
        [binary, "console", *arguments],
        input=EXPRESSION + "\n",
        cwd=directory,
        env={**environment(), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = _ANSI.sub("", result.stdout + "\n" + result.stderr)
    # A validation that reads another variable is reported as a diagnostic while console still answers.
    if result.returncode != 0 or "Error:" in output:
        errors = output[output.find("Error:") :] if "Error:" in output else output
        raise ConfigError(f"Terraform rejected the variables ({' '.join(arguments)}):\n{errors.strip()}")
    return _ANSI.sub("", result.stdout)


def _parse(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        value: dict[str, Any] = json.loads(json.loads(lines[-1]))
    except (IndexError, json.JSONDecodeError) as e:
        raise ConfigError(f"unexpected terraform console output: {stdout[-500:]!r}") from e
    return value
