"""Simulated VMs: the engine process each RUNNING VM of the sandbox runs on its private address.

The compute model decides when a VM boots or dies; this host turns that into processes. Each VM's engine
binds the VM's ``networkIP`` (its own 127.x.y.z) and the pool's ``engine.port``, serves the pool's model
and aliases, and takes the fleet's model-load delay and token pacing divided by the speedup.
"""

from __future__ import annotations

import logging
import threading

from spotgate.fleet import FleetConfig, PoolSpec
from spotgate.sandbox.compute.records import Vm
from spotgate.sandbox.engine.options import EngineOptions
from spotgate.sandbox.engine.process import EngineArgs, EngineLauncher, EngineProcess

log = logging.getLogger(__name__)


class VmEngines:
    """``compute.model.EngineHost`` backed by engine processes, one per RUNNING VM."""

    def __init__(self, fleet: FleetConfig, launcher: EngineLauncher) -> None:
        self._fleet = fleet
        self._launcher = launcher
        self._running: dict[str, EngineProcess] = {}
        self._lock = threading.Lock()

    def boot(self, vm: Vm, since: float | None = None) -> str:
        """Start ``vm``'s engine; returns its URL once it listens (its /health is 503 while it loads).

        ``since`` (epoch seconds) is when the VM's boot began: the model is then loaded at boot + load delay
        after it, however long this process start took, as on a real VM whose disk is already warm.
        """
        pool = self._pool(vm.pool)
        spec = self._fleet.sandbox
        ready_at = None if since is None else since + (spec.boot_delay + spec.load_delay).total_seconds() / spec.speedup
        options = EngineOptions(
            model=pool.model,
            name=vm.name,
            aliases=pool.aliases,
            health_path=vm.health_path,
            load_delay=spec.load_delay.total_seconds() / spec.speedup,
            ready_at=ready_at,
            ttft=spec.time_to_first_token.total_seconds() / spec.speedup,
            tokens_per_second=spec.tokens_per_second * spec.speedup,
        )
        self.halt(vm.name)
        engine = self._launcher.launch(EngineArgs(vm.network_ip, vm.engine_port, options))
        with self._lock:
            self._running[vm.name] = engine
        return engine.url

    def halt(self, instance: str) -> None:
        """SIGKILL the VM's engine, if it has one (idempotent)."""
        with self._lock:
            engine = self._running.pop(instance, None)
        if engine is not None:
            engine.kill()

    def urls(self) -> dict[str, str]:
        with self._lock:
            return {name: engine.url for name, engine in self._running.items()}

    def _pool(self, name: str) -> PoolSpec:
        pool = self._fleet.pool(name)
        if pool is None:  # the model only holds VMs of the fleet's pools
            raise LookupError(f"pool {name!r} is not in the fleet")
        return pool
