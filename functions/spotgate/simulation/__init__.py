"""``spotgate simulate``: know before you deploy (DESIGN §2.5).

A discrete-event model of GCE SPOT capacity, of the gateway's routing and of the overflow service, driving the
*production* control-plane decisions: every reconcile calls ``spotgate.core.planner.plan`` and every event is
folded by ``spotgate.core.state_updates``, looked up at call time, so a planner change changes the result and
no copy of the policy lives here. Time jumps from event to event, so weeks of trace replay in seconds.

Where things live:
    capacity   how many SPOT VMs each fleet zone lets run over time: shared trace files or a synthetic model
    capacity_history  advice.capacityHistory's preemption rate per zone, from the capacity's past only
    arrivals   the request process: constant, Poisson with a daily profile, or a CSV of timestamps
    scenario   the scenario file (fleet file, pool, capacity, zone mapping, demand, timing) and its loading
    cloud      the modelled Compute Engine: VM statuses, capacity checks on start, preemptions with notice
    gateway    the modelled gateway and overflow service: ready VMs, overflow (warm or cold), hold, 503
    ledger     what the run measured: time integrals, request outcomes, recoveries
    engine     the event loop and the control plane's shell around the production planner
    report     the figures (availability, cost, GPU-hours, preemptions) and their text and JSON forms
    cli        the ``spotgate simulate`` command
"""

from __future__ import annotations
