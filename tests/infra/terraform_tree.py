"""The Terraform of ``infra/`` as data, so invariants can be checked offline (no provider download here).

Every ``.tf`` file is parsed with python-hcl2 into plain Python values: literals stay literals and
expressions stay text (``"${local.iap_range}"``). ``resolve`` follows ``local.X`` references inside one
module, which is enough for the invariants: they look for literal values and for names in expressions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"

_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=False
)
_WHOLE_LOCAL = re.compile(r"\$\{local\.(\w+)\}")
_LOCAL_REF = re.compile(r"\blocal\.(\w+)")


@dataclass(frozen=True, slots=True)
class Block:
    """One labelled top-level block (resource, data, variable, output, module) of one file."""

    kind: str
    labels: tuple[str, ...]
    body: dict[str, Any]
    file: Path

    @property
    def module_dir(self) -> Path:
        return self.file.parent

    @property
    def address(self) -> str:
        return f"{self.file.parent.name}/{self.file.name}: {self.kind} {'.'.join(self.labels)}"


@dataclass(frozen=True, slots=True)
class TerraformTree:
    """Every parsed ``.tf`` file under ``root`` (``infra/`` or a copy of it)."""

    root: Path
    files: dict[Path, dict[str, Any]]

    def blocks(self, kind: str) -> Iterator[Block]:
        for path, parsed in sorted(self.files.items()):
            for entry in parsed.get(kind, []):
                yield from _labelled(kind, entry, path, depth=_LABEL_DEPTH.get(kind, 1))

    def resources(self, resource_type: str) -> list[Block]:
        return [b for b in self.blocks("resource") if b.labels[0] == resource_type]

    def module_dirs(self) -> list[Path]:
        return [self.root, *sorted(p for p in (self.root / "modules").iterdir() if p.is_dir())]

    def locals_of(self, directory: Path) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for path, parsed in self.files.items():
            if path.parent == directory:
                for entry in parsed.get("locals", []):
                    merged.update(entry)
        return merged

    def resolve(self, value: Any, directory: Path) -> Any:
        """``value`` with every whole-value ``${local.X}`` replaced by the local's value, recursively."""
        return _resolve(value, self.locals_of(directory), depth=0)

    def expression_text(self, value: Any, directory: Path) -> str:
        """The text of ``value`` plus the text of every local it mentions, transitively (for name searches)."""
        local_values = self.locals_of(directory)
        seen: set[str] = set()
        parts = [json.dumps(value)]
        pending = _LOCAL_REF.findall(parts[0])
        while pending:
            name = pending.pop()
            if name in seen or name not in local_values:
                continue
            seen.add(name)
            text = json.dumps(local_values[name])
            parts.append(text)
            pending.extend(_LOCAL_REF.findall(text))
        return "\n".join(parts)


_LABEL_DEPTH = {"resource": 2, "data": 2}


def _labelled(kind: str, entry: dict[str, Any], path: Path, depth: int) -> Iterator[Block]:
    for first, inner in entry.items():
        if depth == 2:
            for second, body in inner.items():
                yield Block(kind, (first, second), body, path)
        else:
            yield Block(kind, (first,), inner, path)


def _resolve(value: Any, local_values: dict[str, Any], depth: int) -> Any:
    if depth > 10:
        return value
    if isinstance(value, str):
        match = _WHOLE_LOCAL.fullmatch(value)
        if match and match.group(1) in local_values:
            return _resolve(local_values[match.group(1)], local_values, depth + 1)
        return value
    if isinstance(value, list):
        return [_resolve(item, local_values, depth + 1) for item in value]
    if isinstance(value, dict):
        return {key: _resolve(item, local_values, depth + 1) for key, item in value.items()}
    return value


def load_tree(root: Path = INFRA) -> TerraformTree:
    """Parse every ``.tf`` file under ``root`` (skipping ``.terraform``); raises on a syntax error."""
    files = {
        path: _parse(path.read_text(encoding="utf-8"))
        for path in sorted(root.rglob("*.tf"))
        if ".terraform" not in path.parts
    }
    return TerraformTree(root=root, files=files)


@lru_cache(maxsize=256)
def _parse(text: str) -> dict[str, Any]:
    # Parsing is the slow part (about 0.1 s per file); a broken copy differs from infra/ in one file only,
    # so every other file comes from this cache. Callers never mutate the result.
    parsed: dict[str, Any] = hcl2.loads(text, serialization_options=_OPTIONS)
    return parsed


def first(block_list: Any) -> dict[str, Any]:
    """The first (usually only) instance of a nested block, or ``{}`` when the block is absent."""
    if isinstance(block_list, list) and block_list and isinstance(block_list[0], dict):
        return block_list[0]
    return {}
