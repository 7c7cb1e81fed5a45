"""The RouteStore on Firestore: the production store shared by the functions, the gateway and the CLI.

Why Firestore: it is serverless (nothing to run or pay for while idle), its transactions serialise the
control plane's read-compare-write steps, and its listeners push routing changes to every gateway instance
in about a second. Collections (``prefix`` keeps deployments and tests apart):

- ``{prefix}_routes``   one document per route, id ``Route.key``
- ``{prefix}_pools``    one per pool: ``state`` (the PoolState document), ``generation``, and the lease
  (``lease_holder``, ``lease_expires_at``); commits and leases run in transactions and update only their
  own fields, so they never overwrite each other
- ``{prefix}_gateway_activity`` one per gateway instance and pool (id ``pool.gateway``), written whole by
  that instance; ``get_activity`` sums a pool's records. ``prune_expired`` (the control plane's fleet
  tick) deletes records expired more than a day; ``delete_at`` (a Firestore timestamp a day past the
  record's expiry) is the field of the collection's TTL policy, a backstop that may lag by a day or more
- ``{prefix}_events``   the audit trail, queried newest first by ``at``; trimmed to ``events_limit`` per pool
  after each append (which reads the ids of the pool's retained events: appends happen per decision, not
  per tick). Querying one pool needs the composite index (``pool`` ASC, ``at`` DESC).
- ``{prefix}_history``  what each pool was (``HistoryRecord``), for ``spotgate report``; ``delete_at`` (the
  record's time plus ``HISTORY_RETENTION``) is its TTL field. Listing a pool since a time needs the composite
  index (``pool`` ASC, ``at`` ASC)
- ``{prefix}_served``   one per pool, UTC minute and kind of serving (id ``pool.YYYYMMDDHHMM.kind``), counts
  added with ``Increment`` like key usage; ``delete_at`` is its TTL field; listing needs (``pool``, ``minute``)
- ``{prefix}_keys``     one per API key, id ``key_id``
- ``{prefix}_key_usage`` one per key, pool and UTC hour (id ``key.pool.YYYYMMDDHH``), counts added with
  ``Increment`` transforms, so every gateway instance writes its deltas without a transaction
- ``{prefix}_key_inflight`` one per gateway instance: its requests in flight per key (``counts``) and
  ``expires_at``; summed over the other live instances to share ``max_concurrent``; pruned like activity
- ``{prefix}_key_buckets`` one per rate-limited key: its shared token bucket (``tokens``, ``updated``),
  taken from in transactions

Routes and keys are listed (and snapshotted) sorted by ``Route.key`` and ``key_id`` in both stores, so equal
tables compare equal.

Change feed guarantees (``watch``):
- ``on_change`` is called once with a full ``Snapshot`` (read with ordinary queries) before ``watch``
  returns; after that, from Firestore's listener threads, with a full snapshot after each change the
  listeners on the routes and keys collections report. Deliveries are serialised and never overlap.
- At least once and coalesced: Firestore may batch several writes into one listener event, and may
  resend the same state after a reconnect; a delivery whose routes and keys equal the previous one is
  dropped. Every delivery is a full snapshot, never a diff, so a missed or merged event loses nothing.
- Eventually consistent: routes and keys come from two listeners, so a snapshot may show a route change
  before a key change written earlier. ``version`` is a counter local to this store object that
  increases with every snapshot it produces; it is not comparable across processes.
- ``close()`` unsubscribes both listeners; no call starts after ``close()`` returns. When a listener
  stream breaks, the client library reconnects on its own; meanwhile the caller keeps its last snapshot.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud import firestore

from spotgate.adapters.activity_merge import RETENTION, prune_cutoff, sum_activity
from spotgate.adapters.codec import format_time, from_document, parse_time, to_document
from spotgate.adapters.firestore_feed import FirestoreFeed
from spotgate.adapters.key_bucket import refill_and_take
from spotgate.domain import (
    HISTORY_RETENTION,
    Activity,
    ApiKey,
    DecisionRecord,
    GatewayActivity,
    HistoryRecord,
    KeyUsage,
    PoolState,
    Route,
    ServedCount,
)
from spotgate.errors import (
    ConflictError,
    NotFoundError,
    PermanentError,
    PermissionDeniedError,
    UnavailableError,
)
from spotgate.ports import Snapshot, Subscription

BATCH_LIMIT = 500  # Firestore's maximum number of writes in one batch
_RETRYABLE = if_exception_type(
    gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.ResourceExhausted
)


class FirestoreStore:
    """``RouteStore`` over Firestore collections named ``{prefix}_…``.

    ``timeout`` (seconds) bounds each read and write including the client's own retries of transient
    errors, so an unreachable Firestore surfaces as ``UnavailableError`` in bounded time. Transactions
    (pool state, lease, activity) begin and commit with the library's defaults, up to about a minute.
    """

    def __init__(
        self,
        client: firestore.Client,
        *,
        prefix: str = "spotgate",
        events_limit: int = 500,
        timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._events_limit = events_limit
        retry = Retry(predicate=_RETRYABLE, initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout)
        self._call: dict[str, Any] = {"retry": retry, "timeout": timeout}
        self._versions = itertools.count(1)
        self._versions_lock = threading.Lock()

    # routes
    def list_routes(self, pool: str | None = None) -> list[Route]:
        query: Any = self._collection("routes")
        if pool is not None:
            query = query.where(filter=firestore.FieldFilter("pool", "==", pool))
        with _translated("list routes"):
            return _sorted_routes(from_document(Route, d.to_dict()) for d in query.stream(**self._call))

    def put_routes(self, routes: Sequence[Route]) -> None:
        routes_ref = self._collection("routes")
        self._write_batches([(routes_ref.document(r.key), to_document(r)) for r in routes], "put routes")

    def delete_routes(self, keys: Sequence[str]) -> None:
        routes_ref = self._collection("routes")
        self._write_batches([(routes_ref.document(k), None) for k in keys], "delete routes")

    # pool state
    def get_pool_state(self, pool: str) -> PoolState:
        with _translated("get pool state"):
            snap = self._collection("pools").document(pool).get(**self._call)
        return _pool_state_of(pool, snap.to_dict() if snap.exists else None)

    def commit_pool_state(self, state: PoolState, expected_generation: int) -> PoolState:
        committed = replace(state, generation=expected_generation + 1)
        ref = self._collection("pools").document(state.pool)

        @firestore.transactional
        def commit(transaction: Any) -> None:
            snap = ref.get(transaction=transaction, **self._call)
            stored = int((snap.to_dict() or {}).get("generation", 0)) if snap.exists else 0
            if stored != expected_generation:
                raise ConflictError(
                    f"pool {state.pool!r} is at generation {stored}, not {expected_generation}; reload and retry"
                )
            _write_fields(transaction, ref, snap, {"state": to_document(committed), "generation": committed.generation})

        with _translated("commit pool state"):
            commit(self._client.transaction())
        return committed

    # lease
    def acquire_lease(self, pool: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        ref = self._collection("pools").document(pool)

        @firestore.transactional
        def acquire(transaction: Any) -> bool:
            snap = ref.get(transaction=transaction, **self._call)
            fields = snap.to_dict() or {}
            current, expires = fields.get("lease_holder"), fields.get("lease_expires_at")
            if current not in (None, holder) and expires is not None and parse_time(expires) > now:
                return False
            lease = {"lease_holder": holder, "lease_expires_at": format_time(now + ttl)}
            _write_fields(transaction, ref, snap, lease)
            return True

        with _translated("acquire lease"):
            taken: bool = acquire(self._client.transaction())
        return taken

    def release_lease(self, pool: str, holder: str) -> None:
        ref = self._collection("pools").document(pool)

        @firestore.transactional
        def release(transaction: Any) -> None:
            snap = ref.get(transaction=transaction, **self._call)
            if snap.exists and (snap.to_dict() or {}).get("lease_holder") == holder:
                transaction.update(ref, {"lease_holder": None, "lease_expires_at": None})

        with _translated("release lease"):
            release(self._client.transaction())

    # activity
    def record_activity(self, record: GatewayActivity) -> None:
        ref = self._collection("gateway_activity").document(f"{record.pool}.{record.gateway}")
        document = {**to_document(record), "delete_at": record.expires_at + RETENTION}
        with _translated("record activity"):
            ref.set(document, **self._call)  # one writer per record: no transaction needed

    def get_activity(self, pool: str, now: datetime) -> Activity:
        query = self._collection("gateway_activity").where(filter=firestore.FieldFilter("pool", "==", pool))
        with _translated("get activity"):
            snaps = list(query.stream(**self._call))
        return sum_activity(pool, (from_document(GatewayActivity, s.to_dict()) for s in snaps), now)

    # audit trail
    def append_events(self, records: Sequence[DecisionRecord]) -> None:
        events = self._collection("events")
        # Ids sort like the records within one batch, so equal ``at`` values list newest-appended first.
        batch_id = secrets.token_hex(4)
        writes = [(events.document(_event_id(r, batch_id, i)), to_document(r)) for i, r in enumerate(records)]
        self._write_batches(writes, "append events")
        for pool in sorted({r.pool for r in records}):
            self._trim_events(pool)

    def recent_events(self, pool: str | None = None, limit: int = 50) -> list[DecisionRecord]:
        with _translated("list events"):
            docs = self._events_query(pool).limit(limit).stream(**self._call)
            return [from_document(DecisionRecord, d.to_dict()) for d in docs]

    # history
    def append_history(self, records: Sequence[HistoryRecord]) -> None:
        history = self._collection("history")
        # Ids sort like the records within one batch (equal ``at`` values keep their order); ``delete_at`` is
        # the TTL policy's field, as for activity records.
        batch_id = secrets.token_hex(4)
        writes = [
            (
                history.document(f"{r.pool}.{format_time(r.at)}.{batch_id}.{i:05d}"),
                {**to_document(r), "delete_at": r.at + HISTORY_RETENTION},
            )
            for i, r in enumerate(records)
        ]
        self._write_batches(writes, "append history")

    def list_history(self, pool: str, since: datetime) -> list[HistoryRecord]:
        query = (
            self._collection("history")
            .where(filter=firestore.FieldFilter("pool", "==", pool))
            .where(filter=firestore.FieldFilter("at", ">=", format_time(since)))
        )
        with _translated("list history"):
            snaps = list(query.stream(**self._call))
        # Sorted here rather than by the query: ordering on ``at`` and the id needs no composite index.
        ordered = sorted(snaps, key=lambda d: (d.to_dict()["at"], d.id))
        return [from_document(HistoryRecord, d.to_dict()) for d in ordered]

    def record_served(self, counts: Sequence[ServedCount]) -> None:
        collection = self._collection("served")
        writes = []
        for c in counts:
            minute = c.minute.replace(second=0, microsecond=0)
            ref = collection.document(f"{c.pool}.{minute.strftime('%Y%m%d%H%M')}.{c.kind}")
            fields = {"pool": c.pool, "minute": format_time(minute), "kind": c.kind,
                      "delete_at": minute + HISTORY_RETENTION}  # fmt: skip
            writes.append((ref, {**fields, "requests": firestore.Increment(c.requests)}))
        for start in range(0, len(writes), BATCH_LIMIT):
            batch = self._client.batch()
            for ref, document in writes[start : start + BATCH_LIMIT]:
                batch.set(ref, document, merge=True)
            with _translated("record served"):
                batch.commit(**self._call)

    def list_served(self, pool: str, since: datetime) -> list[ServedCount]:
        minute = format_time(since.replace(second=0, microsecond=0))
        query = (
            self._collection("served")
            .where(filter=firestore.FieldFilter("pool", "==", pool))
            .where(filter=firestore.FieldFilter("minute", ">=", minute))
        )
        with _translated("list served"):
            docs = [d.to_dict() for d in query.stream(**self._call)]
        counts = [ServedCount(pool, parse_time(d["minute"]), d["kind"], int(d.get("requests", 0))) for d in docs]
        return sorted(counts, key=lambda c: (c.minute, c.kind))

    # per-key usage and shared rate
    def record_usage(self, usage: Sequence[KeyUsage]) -> None:
        collection = self._collection("key_usage")
        writes = []
        for u in usage:
            ref = collection.document(f"{u.key_id}.{u.pool}.{u.hour.strftime('%Y%m%d%H')}")
            counts = {"requests": u.requests, "tokens_in": u.tokens_in, "tokens_out": u.tokens_out,
                      "gpu_seconds": u.gpu_seconds}  # fmt: skip
            fields = {"key_id": u.key_id, "pool": u.pool, "hour": format_time(u.hour)}
            writes.append((ref, {**fields, **{k: firestore.Increment(v) for k, v in counts.items()}}))
        for start in range(0, len(writes), BATCH_LIMIT):
            batch = self._client.batch()
            for ref, document in writes[start : start + BATCH_LIMIT]:
                batch.set(ref, document, merge=True)
            with _translated("record usage"):
                batch.commit(**self._call)

    def list_usage(self, since: datetime) -> list[KeyUsage]:
        query = self._collection("key_usage").where(filter=firestore.FieldFilter("hour", ">=", format_time(since)))
        with _translated("list usage"):
            docs = [d.to_dict() for d in query.stream(**self._call)]
        usage = [
            KeyUsage(d["key_id"], d["pool"], parse_time(d["hour"]), int(d.get("requests", 0)),
                     int(d.get("tokens_in", 0)), int(d.get("tokens_out", 0)), float(d.get("gpu_seconds", 0.0)))
            for d in docs
        ]  # fmt: skip
        return sorted(usage, key=lambda u: (u.hour, u.key_id, u.pool))

    def take_key_tokens(self, key_id: str, rate: float, burst: float, want: int, now: datetime) -> int:
        ref = self._collection("key_buckets").document(key_id)

        @firestore.transactional
        def take(transaction: Any) -> int:
            snap = ref.get(transaction=transaction, **self._call)
            fields = snap.to_dict() if snap.exists else None
            stored = None if not fields else (fields["tokens"], fields["updated"])
            tokens, taken = refill_and_take(stored, rate, burst, want, now.timestamp())
            transaction.set(ref, {"tokens": tokens, "updated": now.timestamp()})
            return taken

        with _translated("take key tokens"):
            taken: int = take(self._client.transaction())
        return taken

    def put_key_inflight(self, instance: str, counts: Mapping[str, int], expires_at: datetime) -> None:
        document = {"counts": {k: n for k, n in counts.items() if n > 0}, "expires_at": format_time(expires_at),
                    "delete_at": expires_at + RETENTION}  # fmt: skip
        with _translated("put key inflight"):
            self._collection("key_inflight").document(instance).set(document, **self._call)

    def key_inflight(self, now: datetime, exclude: str) -> dict[str, int]:
        query = self._collection("key_inflight").where(
            filter=firestore.FieldFilter("expires_at", ">", format_time(now))
        )
        totals: dict[str, int] = {}
        with _translated("key inflight"):
            for snap in query.stream(**self._call):
                if snap.id == exclude:
                    continue
                for key, n in (snap.to_dict() or {}).get("counts", {}).items():
                    totals[key] = totals.get(key, 0) + int(n)
        return totals

    # per-instance records
    def prune_expired(self, now: datetime, limit: int) -> int:
        cutoff = format_time(prune_cutoff(now))
        deleted = 0
        for kind in ("gateway_activity", "key_inflight"):
            if deleted < limit:
                deleted += self._prune(kind, cutoff, min(limit - deleted, BATCH_LIMIT))
        return deleted

    def _prune(self, kind: str, cutoff: str, limit: int) -> int:
        """Delete up to ``limit`` of ``kind``'s records with ``expires_at`` before ``cutoff``, in one transaction.

        The query runs inside the transaction: Firestore's server client libraries lock the documents it
        returns until the commit (pessimistic concurrency), so a gateway rewriting one of them meanwhile, or
        another pruner deleting it, aborts this attempt and the retry queries afresh: a refreshed record no
        longer matches, a deleted one is gone. The TTL policy on ``delete_at`` stays as a backstop.
        """
        query = self._collection(kind).where(filter=firestore.FieldFilter("expires_at", "<", cutoff)).limit(limit)

        @firestore.transactional
        def prune(transaction: Any) -> int:
            snaps = list(transaction.get(query.select([]), **self._call))
            for snap in snaps:
                transaction.delete(snap.reference)
            return len(snaps)

        with _translated(f"prune {kind}"):
            pruned: int = prune(self._client.transaction())
        return pruned

    # keys
    def put_key(self, key: ApiKey) -> None:
        with _translated("put key"):
            self._collection("keys").document(key.key_id).set(to_document(key), **self._call)

    def list_keys(self) -> list[ApiKey]:
        with _translated("list keys"):
            keys = [from_document(ApiKey, d.to_dict()) for d in self._collection("keys").stream(**self._call)]
        return sorted(keys, key=lambda k: k.key_id)

    # change feed
    def snapshot(self) -> Snapshot:
        return Snapshot(routes=tuple(self.list_routes()), keys=tuple(self.list_keys()), version=self._next_version())

    def watch(self, on_change: Callable[[Snapshot], None]) -> Subscription:
        first = self.snapshot()
        on_change(first)
        feed = FirestoreFeed(first, on_change, self._next_version)
        try:
            with _translated("watch"):
                feed.listen(self._collection("routes"), self._collection("keys"))
        except BaseException:
            feed.close()  # do not leak the first listener if the second could not start
            raise
        return feed

    def _next_version(self) -> int:
        """The next value of this store's local snapshot counter (strictly increasing, thread-safe)."""
        with self._versions_lock:
            return next(self._versions)

    def _collection(self, kind: str) -> Any:
        return self._client.collection(f"{self._prefix}_{kind}")

    def _events_query(self, pool: str | None) -> Any:
        query: Any = self._collection("events")
        if pool is not None:
            query = query.where(filter=firestore.FieldFilter("pool", "==", pool))
        return query.order_by("at", direction=firestore.Query.DESCENDING)

    def _trim_events(self, pool: str) -> None:
        # Skips in the client rather than with ``offset``: Firestore bills skipped documents as reads
        # either way, and the emulator the tests use ignores ``offset``.
        with _translated("trim events"):
            docs = self._events_query(pool).select([]).stream(**self._call)
            stale = [d.reference for i, d in enumerate(docs) if i >= self._events_limit]
        self._write_batches([(ref, None) for ref in stale], "trim events")

    def _write_batches(self, writes: Sequence[tuple[Any, dict[str, Any] | None]], what: str) -> None:
        """Set (or delete, for ``None``) documents, in as few batches as Firestore allows."""
        for start in range(0, len(writes), BATCH_LIMIT):
            batch = self._client.batch()
            for ref, document in writes[start : start + BATCH_LIMIT]:
                if document is None:
                    batch.delete(ref)
                else:
                    batch.set(ref, document)
            with _translated(what):
                batch.commit(**self._call)


def _pool_state_of(pool: str, fields: dict[str, Any] | None) -> PoolState:
    if not fields or fields.get("state") is None:
        return PoolState(pool=pool)  # never committed (the document may hold only a lease)
    return replace(from_document(PoolState, fields["state"]), generation=int(fields.get("generation", 0)))


def _write_fields(transaction: Any, ref: Any, snap: Any, fields: dict[str, Any]) -> None:
    # ``update`` replaces whole top-level fields (a merge would keep stale keys inside nested maps) but
    # needs the document to exist; a first write creates it.
    if snap.exists:
        transaction.update(ref, fields)
    else:
        transaction.set(ref, fields)


def _event_id(record: DecisionRecord, batch_id: str, index: int) -> str:
    return f"{record.pool}.{format_time(record.at)}.{batch_id}.{index:05d}"


def _sorted_routes(routes: Iterable[Route]) -> list[Route]:
    return sorted(routes, key=lambda r: r.key)


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Map google.api_core errors onto spotgate's tree (transient vs permanent)."""
    try:
        yield
    except (gexc.Aborted, gexc.AlreadyExists, gexc.FailedPrecondition) as e:
        raise ConflictError(f"Firestore {what}: a concurrent writer won: {e}") from e
    except gexc.NotFound as e:
        raise NotFoundError(f"Firestore {what}: {e}") from e
    except (gexc.PermissionDenied, gexc.Unauthenticated) as e:
        raise PermissionDeniedError(f"Firestore {what}: {e}") from e
    except (gexc.InvalidArgument, gexc.OutOfRange) as e:
        raise PermanentError(f"Firestore {what}: {e}") from e
    except gexc.GoogleAPIError as e:  # unavailable, deadline, internal, exhausted …
        raise UnavailableError(f"Firestore {what} did not answer: {e}") from e
    except ValueError as e:
        # ``@firestore.transactional`` raises ValueError once its retries on contention are used up.
        if "attempts" not in str(e):
            raise
        raise ConflictError(f"Firestore {what}: {e}") from e
