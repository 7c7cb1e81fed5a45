"""The subset of GCE's list ``filter`` syntax spotgate's adapters send, applied to sandbox VMs.

Accepted: one or more comparisons joined by ``AND`` (or by whitespace between parenthesised terms), each
``FIELD OP VALUE`` with ``OP`` one of ``=``, ``!=``, ``eq``, ``ne``, the value bare or double-quoted, or
``FIELD:*`` (GCE's "has" operator: the field is present, e.g. ``labels.spotgate-pool:*``), and
``FIELD`` one of ``labels.<key>``, ``name``, ``status``, ``zone`` (short name). Examples:
``labels.spotgate-pool=chat``, ``labels.spotgate-pool = "chat"``,
``(labels.spotgate-pool = "chat") AND (status != TERMINATED)``. Anything else is a ``FilterError``, which
the API answers with 400 ``invalid`` like GCE does for a filter it cannot parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from spotgate.errors import PermanentError
from spotgate.sandbox.compute.records import Vm

_TERM = re.compile(r'\(?\s*([A-Za-z][\w.-]*)\s*(!=|=|:|\beq\b|\bne\b)\s*("([^"]*)"|[^\s()"]+)\s*\)?')
_JOIN = re.compile(r"^\s*(?:AND\b)?\s*")


class FilterError(PermanentError):
    """The filter expression is outside the supported subset."""


def parse_filter(text: str | None) -> Callable[[Vm], bool]:
    """A predicate for ``text``; an empty filter matches every VM. Raises FilterError."""
    terms: list[Callable[[Vm], bool]] = []
    rest = (text or "").strip()
    while rest:
        match = _TERM.match(rest)
        if match is None:
            raise FilterError(f"Invalid value for field 'filter': '{text}'. Invalid list filter expression.")
        field, op, raw, quoted = match.groups()
        if op == ":":
            terms.append(_presence(field, raw, text or ""))
        else:
            terms.append(_term(field, op in ("=", "eq"), quoted if quoted is not None else raw, text or ""))
        rest = _JOIN.sub("", rest[match.end() :], count=1)
    return lambda vm: all(term(vm) for term in terms)


def _presence(field: str, value: str, text: str) -> Callable[[Vm], bool]:
    if value != "*":
        raise FilterError(f"Invalid value for field 'filter': '{text}'. Only 'FIELD:*' is supported with ':'.")
    getter = _field(field, text)
    return lambda vm: getter(vm) is not None


def _term(field: str, equal: bool, value: str, text: str) -> Callable[[Vm], bool]:
    getter = _field(field, text)
    return lambda vm: (getter(vm) == value) is equal


def _field(field: str, text: str) -> Callable[[Vm], str | None]:
    if field.startswith("labels."):
        key = field.removeprefix("labels.")
        return lambda vm: vm.labels.get(key)
    getters: dict[str, Callable[[Vm], str | None]] = {
        "name": lambda vm: vm.name,
        "status": lambda vm: str(vm.status),
        "zone": lambda vm: vm.zone,
    }
    if field not in getters:
        raise FilterError(f"Invalid value for field 'filter': '{text}'. Unsupported field '{field}'.")
    return getters[field]
