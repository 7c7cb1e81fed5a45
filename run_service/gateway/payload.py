"""Parsing a JSON request body within bounds: nesting depth and element count are checked.

Why: ``json.loads`` turns three bytes (``{},``) into a ~100-byte Python object and holds the event loop for
the whole parse, so a 10 MiB body of empty objects costs half a GiB and a quarter second. The element count
is bounded *before* parsing: every element of an array or object but the last is followed by a comma, so
``{``, ``[`` and ``,`` counted outside strings bound it from above. Counting them in the raw bytes (C speed)
over-counts only what strings contain, so the exact count (strings stripped first, slower) runs only when
the raw one is over the limit. Depth is checked after parsing, on the (now bounded) tree; a body nested
deeper than the interpreter's recursion limit fails in the parser and is refused the same way.
"""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.errors import bad_request

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def _elements(body: bytes) -> int:
    return body.count(b"{") + body.count(b"[") + body.count(b",")


def parse_object(body: bytes, *, max_depth: int, max_elements: int) -> dict[str, Any]:
    """The JSON object in ``body``. Raises ApiError 400 for invalid JSON, a non-object or a bound exceeded."""
    if _elements(body) > max_elements and _elements(_STRING.sub(b'""', body)) > max_elements:
        raise bad_request(f"The body has more than {max_elements} JSON elements.", code="json_too_large")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("The body is not valid JSON.", code="invalid_json") from None
    except RecursionError:
        raise _too_deep(max_depth) from None
    if not isinstance(payload, dict):
        raise bad_request("The body must be a JSON object.", code="invalid_json")
    if _depth_exceeds(payload, max_depth):
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
