"""Parsing a JSON request body within bounds: nesting depth and element count are checked.

Why: ``json.loads`` turns three bytes (``{},``) into a ~100-byte Python object and holds the event loop for
the whole parse, so a 10 MiB body of empty objects costs half a GiB and a quarter second. The element count
is bounded *before* parsing: every element of an array or object but the last is followed by a comma, so
``{``, ``[`` and ``,`` counted outside strings bound it from above. Counting them in the raw bytes (C speed)
over-counts only what strings contain, so the exact count (strings stripped first, slower) runs only when
the raw one is over the limit. Depth is checked after parsing, on the (now bounded) tree; a body nested
deeper than the interpreter's recursion limit fails in the parser and is refused the same way.

Within the element bound a parsed body is still much larger than its bytes (``{"a":1},`` is 8 bytes and a
~190-byte dict), so ``parsed_size`` bounds it from the same raw counts, and the caller reserves that much of
the worker's body budget before parsing (``reserve``): admitted bodies cannot parse into gigabytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from gateway.errors import bad_request

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# Bytes of parsed tree per raw ``{``, ``[`` and ``,`` (each includes its slot in the parent), upper bounds
# measured with tracemalloc on CPython 3.11 over adversarial shapes (tests/gateway/test_payload.py): a dict of
# up to five members is 184 bytes, a list 56; a ``,`` adds a scalar (an int 28, a short str ~51) or a member.
_DICT, _LIST, _ITEM = 200, 72, 64


def _counts(body: bytes) -> tuple[int, int, int]:
    """The raw ``{``, ``[`` and ``,`` of ``body``: what bounds both its element count and its parsed size."""
    return body.count(b"{"), body.count(b"["), body.count(b",")


def _size(counts: tuple[int, int, int]) -> int:
    dicts, lists, items = counts
    return _DICT * dicts + _LIST * lists + _ITEM * items


def parsed_size(body: bytes) -> int:
    """An upper bound of the memory ``json.loads(body)`` takes beyond the strings' own bytes."""
    return _size(_counts(body))


def encode_object(document: dict[str, Any]) -> bytes:
    """A body the gateway re-encodes (alias rewrite, added ``stream_options``, a continuation): compact and
    UTF-8 as callers send it; ``\\u``-escaping would make non-ASCII text 2-4x the bytes charged for it."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def parse_object(
    body: bytes, *, max_depth: int, max_elements: int, reserve: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """The JSON object in ``body``. Raises ApiError 400 for invalid JSON, a non-object or a bound exceeded.

    ``reserve`` is called with ``parsed_size(body)`` just before parsing (it raises to refuse).
    """
    counts = _counts(body)
    if sum(counts) > max_elements and sum(_counts(_STRING.sub(b'""', body))) > max_elements:
        raise bad_request(f"The body has more than {max_elements} JSON elements.", code="json_too_large")
    if reserve is not None:
        reserve(_size(counts))
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("The body is not valid JSON.", code="invalid_json") from None
    except RecursionError:
        raise _too_deep(max_depth) from None
    if not isinstance(payload, dict):
        raise bad_request("The body must be a JSON object.", code="invalid_json")
    if counts[0] + counts[1] > max_depth and _depth_exceeds(payload, max_depth):  # fewer containers: too shallow
        raise _too_deep(max_depth)
    return payload


def _too_deep(max_depth: int) -> Exception:
    return bad_request(f"The body nests JSON deeper than {max_depth} levels.", code="json_too_deep")


def _depth_exceeds(value: object, max_depth: int) -> bool:
    """Whether containers nest deeper than ``max_depth`` (iterative: the tree is already bounded in size)."""
    level: list[object] = [value]
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            return True
        nested: list[object] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
            nested.extend(c for c in children if isinstance(c, dict | list))
        level = nested
    return False
