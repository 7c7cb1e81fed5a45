"""Pure decisions: event parsing, the planner, placement, schedules, backend selection.

The rule of this package: no I/O, no clock reads, no environment, no logging, no randomness except an
injected ``random.Random``. Every function is deterministic in its arguments and tested with tables.
import-linter enforces that nothing here imports an adapter, a cloud or web library, or the sandbox.

Where things live:
    events         one Pub/Sub delivery -> ComputeEvent | ControlMessage | Ignored; which pool it concerns
    state_updates  fold an event, or the outcome of a start call, into the pool's remembered state
    fast_path      the one decision before a reconcile: drain the route of a VM that is going away
    planner        plan(spec, observed, state, now) -> Plan, composed from:
      demand         how many ready VMs the pool wants now (D), and why
      schedule       active hours (IANA zones, midnight-crossing windows, DST)
      lifecycle      each VM's phase: stopped, pending, booting, ready, draining, stuck, stopping
      placement      which stopped VM to start: SPOT first, zone spread, stockouts, preemption history
      backoff        when a VM whose start failed may be tried again, by the failure's class
      retirement     which VMs leave service and when: drain first, min up time, going-away VMs
      routing        the routing-table entries to write (only those that change)
      overflow       when the Cloud Run overflow service is warm or cold
      pruning        what the pool's memory may forget
    instants       how instants are written into reasons
"""

from __future__ import annotations
