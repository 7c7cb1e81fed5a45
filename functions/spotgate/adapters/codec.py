"""Domain dataclasses <-> JSON-compatible documents, for every store adapter.

Why generic: the codec is driven by each dataclass's fields and resolved type hints, so a field added to
``PoolState`` (or any other domain type) is stored and loaded without touching this module. Documents are
compatible in both directions: decoding ignores keys it does not know (a newer writer) and uses the field
default for keys that are missing (an older writer).

Encoding rules: datetimes become fixed-width RFC3339 UTC strings (``2026-01-02T03:04:05.000006Z``, so they
also sort correctly as text), timedeltas seconds as a float, enums their value, tuples and lists JSON
arrays, dicts objects (enum keys by value), nested dataclasses objects, ``None`` stays ``None``.

A stored document that does not fit its type raises ``PermanentError`` (retrying cannot fix it). A type
hint the codec cannot represent (e.g. a union of two dataclasses, which would need a tag) is a programming
error and raises ``TypeError`` when first used.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, TypeVar

from spotgate.errors import PermanentError

T = TypeVar("T")

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def to_document(value: object) -> dict[str, Any]:
    """The JSON-compatible dict of a dataclass instance."""
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"to_document expects a dataclass instance, got {type(value).__name__}")
    hints = _field_hints(type(value))
    return {name: _encode(getattr(value, name), hint) for name, hint in hints.items()}


def from_document(cls: type[T], document: Mapping[str, Any]) -> T:
    """Build ``cls`` from a stored document. Raises PermanentError if it does not fit."""
    result: T = _decode_dataclass(cls, document, cls.__name__)
    return result


def format_time(value: datetime) -> str:
    """The RFC3339 UTC text of an aware datetime (fixed width, so text order is time order)."""
    if value.tzinfo is None:
        raise PermanentError(f"naive datetime {value.isoformat()} cannot be stored; use an aware UTC time")
    return value.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(raw: object, where: str = "time") -> datetime:
    """An aware UTC datetime from RFC3339 text (or an already-decoded datetime, as Firestore returns)."""
    if isinstance(raw, datetime):
        parsed = raw
    elif isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError as e:
            raise PermanentError(f"{where}: {raw!r} is not an RFC3339 time") from e
    else:
        raise PermanentError(f"{where}: expected an RFC3339 string, got {type(raw).__name__}")
    if parsed.tzinfo is None:
        raise PermanentError(f"{where}: {raw!r} has no UTC offset")
    return parsed.astimezone(UTC)


@cache
def _field_hints(cls: type) -> dict[str, Any]:
    # Cached per class: resolving string annotations (PEP 563) is the slow part of the codec.
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _encode(value: Any, hint: Any) -> Any:  # noqa: PLR0911 -- one branch per kind of value
    if value is None:
        return None
    hint = _narrow(hint, value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_document(value)
    if isinstance(value, Mapping):
        _, value_hint = _args_or_any(hint, 2)
        return {_encode_key(k): _encode(v, value_hint) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_encode(item, _item_hint(hint, index)) for index, item in enumerate(value)]
    return value


def _narrow(hint: Any, value: Any) -> Any:
    """The member of a union hint that ``value`` is an instance of (Any if none is a plain class)."""
    origin = typing.get_origin(hint)
    if origin is not typing.Union and origin is not types.UnionType:
        return hint
    for member in typing.get_args(hint):
        runtime = typing.get_origin(member) or member
        if isinstance(runtime, type) and isinstance(value, runtime):
            return member
    return Any


def _encode_key(key: Any) -> str:
    if isinstance(key, enum.Enum):
        return str(key.value)
    if isinstance(key, str):
        return key
    raise TypeError(f"dict keys must be str or enum to be stored, got {type(key).__name__}")


def _args_or_any(hint: Any, count: int) -> tuple[Any, ...]:
    args = typing.get_args(hint)
    return args if len(args) == count else (Any,) * count


def _item_hint(hint: Any, index: int) -> Any:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
        return args[index] if index < len(args) else Any
    return args[0] if args else Any


def _decode(hint: Any, raw: Any, where: str) -> Any:
    if hint is Any:
        return raw
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _decode_union(hint, raw, where)
    if raw is None:
        raise PermanentError(f"{where}: null is not a {_name(hint)}")
    if origin in (tuple, list):
        return _decode_sequence(hint, raw, where)
    if origin is dict or hint is dict:
        return _decode_mapping(hint, raw, where)
    if isinstance(hint, type):
        return _decode_leaf(hint, raw, where)
    raise TypeError(f"{where}: the codec cannot represent the type {hint!r}")


def _decode_union(hint: Any, raw: Any, where: str) -> Any:
    members = [m for m in typing.get_args(hint) if m is not type(None)]
    if raw is None:
        if len(members) == len(typing.get_args(hint)):
            raise PermanentError(f"{where}: null is not a {_name(hint)}")
        return None
    if sum(1 for m in members if dataclasses.is_dataclass(m)) > 1:
        raise TypeError(f"{where}: a union of several dataclasses needs a tag; the codec cannot decode {hint!r}")
    if len(members) == 1:
        return _decode(members[0], raw, where)
    for member in members:
        try:
            return _decode(member, raw, where)
        except PermanentError:
            continue
    raise PermanentError(f"{where}: {raw!r} is none of {_name(hint)}")


def _decode_sequence(hint: Any, raw: Any, where: str) -> Any:
    if not isinstance(raw, list | tuple):
        raise PermanentError(f"{where}: expected an array, got {type(raw).__name__}")
    items = [_decode(_item_hint(hint, i), item, f"{where}[{i}]") for i, item in enumerate(raw)]
    return tuple(items) if typing.get_origin(hint) is tuple else items


def _decode_mapping(hint: Any, raw: Any, where: str) -> Any:
    if not isinstance(raw, Mapping):
        raise PermanentError(f"{where}: expected an object, got {type(raw).__name__}")
    key_hint, value_hint = _args_or_any(hint, 2)
    return {_decode(key_hint, k, f"{where} key"): _decode(value_hint, v, f"{where}.{k}") for k, v in raw.items()}


def _decode_leaf(cls: type, raw: Any, where: str) -> Any:
    if dataclasses.is_dataclass(cls):
        if not isinstance(raw, Mapping):
            raise PermanentError(f"{where}: expected an object, got {type(raw).__name__}")
        return _decode_dataclass(cls, raw, where)
    if issubclass(cls, enum.Enum):
        try:
            return cls(raw)
        except ValueError as e:
            raise PermanentError(f"{where}: {raw!r} is not a {cls.__name__}") from e
    if cls is datetime:
        return parse_time(raw, where)
    if cls is timedelta:
        return timedelta(seconds=_decode_leaf(float, raw, where))
    if cls is float and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, cls) and not (cls is int and isinstance(raw, bool)):
        return raw
    raise PermanentError(f"{where}: expected {cls.__name__}, got {type(raw).__name__}")


def _decode_dataclass(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    hints = _field_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for name, hint in hints.items():
        if name in raw:
            values[name] = _decode(hint, raw[name], f"{where}.{name}")
        elif _has_default(fields[name]):
            continue
        else:
            raise PermanentError(f"{where}: missing required field {name!r}")
    return cls(**values)


def _has_default(field: dataclasses.Field[Any]) -> bool:
    return field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)
