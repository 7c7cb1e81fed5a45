"""Builders for the store and codec tests: realistic defaults, overridable per test."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from spotgate.domain import ApiKey, BackendKind, DecisionRecord, Route, RouteState

T = TypeVar("T")
T0 = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def a_route(backend: str = "chat-a", pool: str = "chat", **changes: Any) -> Route:
    route = Route(
        pool=pool,
        backend=backend,
        kind=BackendKind.VM,
        address="http://127.0.0.7:8000",
        state=RouteState.READY,
        reason="engine healthy",
        updated_at=T0,
        zone="us-central1-a",
    )
    return replace(route, **changes)


def a_key(key_id: str = "k-one", **changes: Any) -> ApiKey:
    key = ApiKey(key_id=key_id, name="team one", secret_hash="ab" * 32, created_at=T0, pools=("chat",), rpm=60)
    return replace(key, **changes)


def a_record(target: str, at: datetime, pool: str = "chat") -> DecisionRecord:
    return DecisionRecord(pool=pool, at=at, action="start", target=target, reason="below desired", generation=1)


def a_sample(cls: type[T], **changes: Any) -> T:
    """An instance of dataclass ``cls`` with every field set to a non-default value, from its type hints.

    Fields added to a domain type later are covered without editing the tests that use this.
    """
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    values = {f.name: _sample(hints[f.name], f.name) for f in fields if f.init}
    return cls(**{**values, **changes})


def _sample(hint: Any, name: str) -> Any:  # noqa: PLR0911 -- one branch per kind of hint
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _sample(next(a for a in args if a is not type(None)), name)
    if origin is tuple:
        members = args[:1] if len(args) == 2 and args[1] is Ellipsis else args
        return tuple(_sample(a, name) for a in members)
    if origin is list:
        return [_sample(args[0], name)]
    if origin is dict:
        return {_sample(args[0], f"{name}-key"): _sample(args[1], name)}
    if dataclasses.is_dataclass(hint):
        return a_sample(hint)  # type: ignore[arg-type]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return list(hint)[-1]
    return _LEAVES[hint](name)


_LEAVES: dict[Any, Any] = {
    str: lambda name: f"{name}-sample",
    int: lambda _: 7,
    float: lambda _: 2.5,
    bool: lambda _: True,
    datetime: lambda _: T0,
    timedelta: lambda _: timedelta(seconds=90),
    Any: lambda name: {"opaque": name},
}
