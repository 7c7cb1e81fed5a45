"""The local stack: the sandbox cloud as one object, the whole system on one machine, and their commands.

``cloud`` assembles the emulated APIs (compute, Cloud Run) and engines on a claimed loopback block
(``addresses``), each served by ``http_server``; ``stack`` adds Pub/Sub, the metadata server, Scheduler,
Cloud Tasks, both functions and the gateway (what ``spotgate dev`` and the end-to-end tests run); ``cli``
is ``spotgate sandbox``, ``dev_cli`` is ``spotgate dev``, and ``state`` is the file through which commands
find a running sandbox.
"""

from __future__ import annotations
