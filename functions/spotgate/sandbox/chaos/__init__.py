"""Chaos runs: the whole local system under traffic while SPOT reality happens to it, then a verdict.

``run`` drives a ``DevStack`` with ``traffic`` (OpenAI SDK callers) while injecting preemptions, stockouts,
maintenance and Pub/Sub faults; ``watch`` records VM lifecycles and routes as plain ``record`` values;
``report`` and ``verdict`` judge them with the span algebra of ``spans``; ``cli`` is ``spotgate sandbox chaos``.
"""

from __future__ import annotations
