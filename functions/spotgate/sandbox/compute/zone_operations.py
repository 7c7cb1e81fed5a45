"""The zone operations of the sandbox's Compute Engine: created by verbs, finished by transitions, awaited by
``zoneOperations.wait``.

It shares the compute model's condition (a re-entrant lock), so the model can create and finish operations
while it holds the lock for a VM change, and a waiter wakes the moment an operation is DONE.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from spotgate.errors import NotFoundError
from spotgate.ports import Clock
from spotgate.sandbox.compute.records import Operation, OperationFailure, Vm, new_operation


class ZoneOperations:
    """Operations by name. Returned operations are copies; mutate only through these methods."""

    def __init__(self, project: str, condition: threading.Condition, clock: Clock) -> None:
        self.project = project
        self._condition = condition
        self._clock = clock
        self._operations: dict[str, Operation] = {}

    def create(self, kind: str, vm: Vm, user: str, *, system: bool = False) -> Operation:
        """A new PENDING operation (system events: DONE at once, as GCE logs them)."""
        with self._condition:
            op = new_operation(self.project, kind, vm, user, self._clock.now(), system=system)
            self._operations[op.name] = op
            return op.copy()

    def get(self, zone: str, name: str) -> Operation:
        """Raises NotFoundError for an unknown name or another zone's operation."""
        with self._condition:
            op = self._operations.get(name)
            if op is None or op.zone != zone:
                raise NotFoundError(
                    f"The resource 'projects/{self.project}/zones/{zone}/operations/{name}' was not found"
                )
            return op.copy()

    def wait(self, zone: str, name: str, timeout: float, give_up: Callable[[], bool]) -> Operation:
        """The operation once DONE, or as it is after ``timeout`` seconds or when ``give_up()`` turns true."""
        self.get(zone, name)
        with self._condition:
            self._condition.wait_for(lambda: self._operations[name].done or give_up(), timeout)
        return self.get(zone, name)

    def begin(self, name: str) -> None:
        with self._condition:
            self._operations[name].begin(self._clock.now())

    def finish(self, name: str, failure: OperationFailure | None = None, message: str | None = None) -> Operation:
        """Mark DONE (with a failure or a status message), wake waiters, return a copy."""
        with self._condition:
            op = self._operations[name]
            op.failure = failure or op.failure
            op.status_message = message or op.status_message
            op.finish(self._clock.now())
            self._condition.notify_all()
            return op.copy()
