"""``spotgate report``: the simulator's figures for a deployed fleet, from the store's history (DESIGN §2.5).

The control plane writes what each pool *was* (``domain.HistoryRecord``: VM state changes with their cause,
preemptions, stockouts, route and overflow scale changes, VMs with requests in flight), the gateway counts
where each request was served per minute (``domain.ServedCount``, ``gateway.served``), and ``spotgate report``
replays both through the simulator's own ledger and report (``spotgate.simulation.ledger`` and
``report``), so a simulated and a real week read the same way.

Where things live:
    recording  what one control-plane round adds to the history (pure: a diff against what was last written)
    replay     history records to the simulator's ``Report``, and the series the page draws (pure)
    page       the single self-contained HTML page with inline SVG charts (pure)
    cli        the ``spotgate report`` command (reads the store)
"""

from __future__ import annotations
