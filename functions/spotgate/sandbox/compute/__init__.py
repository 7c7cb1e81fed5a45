"""Compute Engine: the emulated GCE REST API and the simulated SPOT GPU VMs behind it.

``model`` is the in-memory GCE (VM lifecycles, SPOT preemption, stockouts, maintenance, suspend) over the
``records`` it keeps, with ``zone_operations``, injected refusals (``faults``) and the ``vm_events`` the log
sink and agents listen to; ``api`` serves it as GCE's ``/compute/v1`` REST subset in GCE's JSON
(``gce_json``) with list ``filter``s (``instance_filter``), plus ``advice/capacity`` (``advice``) and the
project-level reads ``spotgate preflight`` makes (``project_api``). ``vms`` runs each RUNNING VM's engine
process and ``agent`` does what the VM's startup and shutdown scripts do.
"""

from __future__ import annotations
