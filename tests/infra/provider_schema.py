"""The google provider's schema, read offline from the cdktf bindings, and a checker of ``infra/`` against it.

``terraform validate`` needs the provider binary, which cannot be downloaded here. The npm package
``@cdktf/provider-google`` 16.12.1 is generated from the schema of google provider 6.50.0 (the version
``infra/`` pins) and ships it as TypeScript: one ``lib/<resource>/index.d.ts`` per resource or data source,
one interface per block, one ``readonly camelName?: Type`` per argument or nested block, with the Terraform
name in the doc link's anchor (``…/compute_instance#boot_disk``) and ``?`` on every optional one. That is
enough to check what ``terraform validate`` would check first: every argument and block name exists where it
is used, blocks nest where the schema says, and no required argument is missing. Enum values, conflicts and
computed-only fields are not in the bindings and stay unchecked.

The package is installed by ``make install`` into ``tests/infra/provider-schema/node_modules``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

PACKAGE = Path(__file__).resolve().parent / "provider-schema" / "node_modules" / "@cdktf" / "provider-google"
PROVIDER_VERSION = "6.50.0"

# Terraform's own meta-arguments and meta-blocks, valid in every resource and data block.
META_ARGUMENTS = frozenset({"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"})

_INTERFACE = re.compile(r"^export interface (\w+)(?: extends ([\w.]+))? \{\n(.*?)^\}", re.S | re.M)
_FIELD = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/hashicorp/google/([\d.]+)/docs/\S+#(\w+) [^}]*\}"
    r".*?\*/\s*readonly \w+(\?)?: ([^;]+);",  # the comment may go on after the link (``id`` fields do)
    re.S,
)
_IDENTIFIER = re.compile(r"\b[A-Z]\w*\b")
_EXPLICIT = SerializationOptions(
    with_comments=False, explicit_blocks=True, strip_string_quotes=True, preserve_heredocs=False
)
_BLOCK_MARK = "__is_block__"


@dataclass(frozen=True, slots=True)
class BlockSchema:
    """One block type: its arguments and nested blocks by Terraform name, each with whether it is required."""

    arguments: dict[str, bool] = field(default_factory=dict)
    blocks: dict[str, tuple[BlockSchema, bool]] = field(default_factory=dict)


class SchemaMissingError(RuntimeError):
    """The bindings are not installed, or know no such resource type."""


def _package_dir(kind: str, type_name: str) -> Path:
    name = type_name.removeprefix("google_").replace("_", "-")
    return PACKAGE / "lib" / (f"data-google-{name}" if kind == "data" else name)


@lru_cache(maxsize=128)
def schema_of(kind: str, type_name: str) -> BlockSchema:
    """The schema of ``resource``/``data`` ``type_name``; raises SchemaMissingError when it is not known."""
    path = _package_dir(kind, type_name) / "index.d.ts"
    if not PACKAGE.is_dir():
        raise SchemaMissingError(f"{PACKAGE} is not installed: run `make install`")
    if not path.is_file():
        raise SchemaMissingError(f"no {kind} {type_name} in google provider {PROVIDER_VERSION}")
    matches = list(_INTERFACE.finditer(path.read_text(encoding="utf-8")))
    interfaces = {m.group(1): m.group(3) for m in matches}
    # The top-level block is the one interface that extends Terraform's meta-arguments (``XConfig``).
    root = next(m.group(1) for m in matches if m.group(2) == "cdktf.TerraformMetaArguments")
    return _build(root, interfaces, depth=0)


def _build(name: str, interfaces: dict[str, str], depth: int) -> BlockSchema:
    schema = BlockSchema()
    for match in _FIELD.finditer(interfaces[name]):
        version, tf_name, optional, type_text = match.groups()
        if version != PROVIDER_VERSION:
            raise SchemaMissingError(f"bindings describe provider {version}, expected {PROVIDER_VERSION}")
        nested = [i for i in _IDENTIFIER.findall(type_text) if i in interfaces]
        if nested and depth < 12:
            schema.blocks[tf_name] = (_build(nested[0], interfaces, depth + 1), optional is None)
        else:
            schema.arguments[tf_name] = optional is None
    return schema


@lru_cache(maxsize=256)
def _parse(text: str) -> dict[str, Any]:
    parsed: dict[str, Any] = hcl2.loads(text, serialization_options=_EXPLICIT)
    return parsed


def check_tree(root: Path) -> list[str]:
    """Every finding for the ``google_*`` resource and data blocks of every ``.tf`` file under ``root``."""
    findings: list[str] = []
    for path in sorted(root.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        parsed = _parse(path.read_text(encoding="utf-8"))
        for kind, type_name, name, body in _google_blocks(parsed):
            where = f"{path.relative_to(root).as_posix()}: {kind} {type_name}.{name}"
            try:
                schema = schema_of(kind, type_name)
            except SchemaMissingError as error:
                findings.append(f"{where}: {error}")
                continue
            findings += check_block(body, schema, where, top_level=True)
    return findings


def _google_blocks(parsed: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for kind in ("resource", "data"):
        for entry in parsed.get(kind, []):
            for type_name, named in entry.items():
                if not type_name.startswith("google_"):
                    continue
                for name, body in named.items():
                    if name != _BLOCK_MARK:
                        yield kind, type_name, name, body


def check_block(body: dict[str, Any], schema: BlockSchema, where: str, *, top_level: bool = False) -> list[str]:
    """Findings for one block body (parsed with explicit block markers) against its schema."""
    findings: list[str] = []
    present: set[str] = set()
    for key, value in body.items():
        if key == _BLOCK_MARK or (top_level and key in META_ARGUMENTS):
            continue
        if key == "dynamic":
            for label, content in _dynamic_blocks(value):
                present.add(label)
                findings += _check_nested(label, content, schema, f"{where}.dynamic.{label}", is_block=True)
            continue
        present.add(key)
        findings += _check_nested(key, value, schema, f"{where}.{key}", is_block=_is_block(value))
    findings += [
        f"{where}: missing required argument {n}" for n, req in schema.arguments.items() if req and n not in present
    ]
    findings += [
        f"{where}: missing required block {n}" for n, (_, req) in schema.blocks.items() if req and n not in present
    ]
    return findings


def _check_nested(key: str, value: Any, schema: BlockSchema, where: str, *, is_block: bool) -> list[str]:
    if key in schema.arguments:
        return [f"{where}: {key} is an argument, written as a block"] if is_block else []
    if key not in schema.blocks:
        return [f"{where}: unknown argument or block {key}"]
    nested, _ = schema.blocks[key]
    if not is_block:
        return [f"{where}: {key} is a block, written as an argument (use `{key} {{ … }}`)"]
    return [finding for instance in value for finding in check_block(instance, nested, where)]


def _is_block(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get(_BLOCK_MARK) for v in value)


def _dynamic_blocks(value: Any) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    for entry in value:
        for label, spec in entry.items():
            if label != _BLOCK_MARK:
                yield label, spec.get("content", [])
