"""Pure decisions: event parsing, the planner, placement, schedules, backend selection.

The rule of this package: no I/O, no clock reads, no environment, no logging, no randomness except an
injected ``random.Random``. Every function is deterministic in its arguments and tested with tables.
import-linter enforces that nothing here imports an adapter, a cloud or web library, or the sandbox.
"""

from __future__ import annotations
