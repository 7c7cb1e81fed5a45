"""The sandbox as one object: the emulated Compute Engine and Cloud Run APIs, the VMs' and overflow engines.

``SandboxCloud(fleet, state_dir)`` claims a free loopback block (so two sandboxes can run at once), builds
the compute model over it, serves the Compute API (with the identity's certs) and the Cloud Run API on
ephemeral ports, and starts one overflow engine per pool that has ``overflow``. Everything it starts is
stopped by ``stop()`` (idempotent; also on ``with`` exit), children included; engines also die with this
process. Extra components (Pub/Sub emulation, metadata server, ...) join with ``add_component`` and are
started after, and stopped before, the core.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from spotgate.clock import SystemClock
from spotgate.errors import UnavailableError
from spotgate.fleet import FleetConfig, OverflowSpec, PoolSpec
from spotgate.ports import Clock
from spotgate.sandbox.cloudrun.api import OverflowService, OverflowServices, create_cloudrun_app
from spotgate.sandbox.compute.api import create_compute_app
from spotgate.sandbox.compute.model import ComputeModel
from spotgate.sandbox.compute.project_api import ProjectModel, register_project_api
from spotgate.sandbox.compute.vms import VmEngines
from spotgate.sandbox.devstack.addresses import AddressBlock, claim_block
from spotgate.sandbox.devstack.http_server import LocalServer
from spotgate.sandbox.engine.options import EngineOptions
from spotgate.sandbox.engine.process import EngineArgs, EngineLauncher
from spotgate.sandbox.metadata.identity import Identity

log = logging.getLogger(__name__)
FIRST_VM_HOST = 10
FIRST_OVERFLOW_HOST = 200
CLOUD_RUN_IDLE = 900.0  # seconds of simulated idleness before Cloud Run scales an instance away


class Component(Protocol):
    """Anything the sandbox starts after its core and stops before it."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class SandboxCloud:
    """The local cloud for ``fleet``. ``start()`` then use ``compute``, ``identity``, ``endpoints()``."""

    def __init__(
        self, fleet: FleetConfig, state_dir: Path, clock: Clock | None = None, identity: Identity | None = None
    ) -> None:
        self.fleet = fleet
        self.state_dir = state_dir
        self.identity = identity or Identity.generate()
        self.gateway_email = f"gateway@{fleet.project}.iam.gserviceaccount.com"
        self._clock = clock or SystemClock()
        self._components: list[Component] = []
        self._started: list[Component] = []
        self._block: AddressBlock | None = None
        self._launcher: EngineLauncher | None = None
        self._compute: ComputeModel | None = None
        self._vm_engines: VmEngines | None = None
        self._overflow: OverflowServices | None = None
        self._compute_server: LocalServer | None = None
        self._run_server: LocalServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> SandboxCloud:
        """Bring everything up (once); on any failure, tear down what started and re-raise."""
        if self._compute is not None:
            return self
        try:
            self._start_core()
            for component in self._components:
                component.start()
                self._started.append(component)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop components, VMs, engines and servers, and release the address block. Idempotent."""
        while self._started:
            _quietly(self._started.pop().stop)
        if self._compute is not None:
            _quietly(self._compute.close)
        if self._launcher is not None:
            _quietly(self._launcher.close)
        for server in (self._run_server, self._compute_server):
            if server is not None:
                _quietly(server.close)
        if self._block is not None:
            self._block.release()
        self._compute = self._launcher = self._vm_engines = self._overflow = None
        self._compute_server = self._run_server = None
        self._block = None

    def __enter__(self) -> SandboxCloud:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def add_component(self, component: Component) -> None:
        """Attach a component; started now if the cloud is running, else with ``start()``."""
        self._components.append(component)
        if self._compute is not None:
            component.start()
            self._started.append(component)

    # -- what the rest of the system needs ----------------------------------------------------------------

    @property
    def compute(self) -> ComputeModel:
        if self._compute is None:
            raise UnavailableError("the sandbox is not running")
        return self._compute

    @property
    def compute_url(self) -> str:
        return self._server(self._compute_server).url

    @property
    def run_url(self) -> str:
        return self._server(self._run_server).url

    @property
    def certs_url(self) -> str:
        return self.compute_url + "/oauth2/v1/certs"

    def endpoints(self) -> dict[str, Any]:
        """URLs for tools: the two APIs, the certs, each VM's engine (when running), each overflow engine."""
        services = self._overflow.urls() if self._overflow else {}
        return {
            "project": self.fleet.project,
            "compute": self.compute_url,
            "cloud_run": self.run_url,
            "certs": self.certs_url,
            "gateway_service_account": self.gateway_email,
            "vms": self._vm_engines.urls() if self._vm_engines else {},
            "overflow": services,
        }

    def effective_fleet(self) -> FleetConfig:
        """The fleet with overflow URLs pointing at the local engines; audiences keep the configured URLs."""
        services = self._overflow.urls() if self._overflow else {}
        pools = tuple(_local_overflow(pool, services) for pool in self.fleet.pools)
        return self.fleet.model_copy(update={"pools": pools})

    # -- internals -------------------------------------------------------------------------------------------

    def _start_core(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._block = claim_block(pool.engine.port for pool in self.fleet.pools)
        self._launcher = EngineLauncher(log_dir=self.state_dir / "logs")
        self._vm_engines = VmEngines(self.fleet, self._launcher)
        names = [vm.name for pool in self.fleet.pools for vm in pool.vms]
        ips = {name: self._block.address(FIRST_VM_HOST + i) for i, name in enumerate(names)}
        self._compute = ComputeModel(self.fleet, ips, self._vm_engines, self._clock)
        compute_app = create_compute_app(self._compute, self.identity)
        register_project_api(compute_app, ProjectModel.for_fleet(self.fleet))  # what spotgate preflight reads
        self._compute_server = LocalServer(compute_app, name="sandbox-compute")
        self._overflow = OverflowServices(self._start_overflow_engines(), self._clock)
        self._run_server = LocalServer(create_cloudrun_app(self._overflow), name="sandbox-cloudrun")
        log.info("sandbox started", extra={"compute": self._compute_server.url, "cloud_run": self._run_server.url})

    def _start_overflow_engines(self) -> list[OverflowService]:
        if self._block is None or self._launcher is None:
            raise UnavailableError("the sandbox core is not started")
        services = []
        pools = [pool for pool in self.fleet.pools if pool.overflow is not None]
        for i, pool in enumerate(pools):
            overflow = _overflow_of(pool)
            engine = self._launcher.launch(
                self._overflow_args(pool, overflow, self._block.address(FIRST_OVERFLOW_HOST + i))
            )
            now = self._clock.now()
            services.append(
                OverflowService(
                    project=self.fleet.project,
                    location=overflow.region or self.fleet.region,
                    service=overflow.service,
                    engine_url=engine.url,
                    service_account=f"overflow-{pool.name}@{self.fleet.project}.iam.gserviceaccount.com",
                    created=now,
                    updated=now,
                )
            )
        return services

    def _overflow_args(self, pool: PoolSpec, overflow: OverflowSpec, host: str) -> EngineArgs:
        spec = self.fleet.sandbox
        options = EngineOptions(
            model=pool.model,
            name=overflow.service,
            aliases=pool.aliases,
            ttft=spec.time_to_first_token.total_seconds() / spec.speedup,
            tokens_per_second=spec.tokens_per_second * spec.speedup,
            cold_start=spec.overflow_cold_start.total_seconds() / spec.speedup,
            scale_down_after=CLOUD_RUN_IDLE / spec.speedup,
            audience=overflow.audience or overflow.url,
            certs_url=self.certs_url,
            invokers=(self.gateway_email,),
        )
        return EngineArgs(host, 0, options)

    @staticmethod
    def _server(server: LocalServer | None) -> LocalServer:
        if server is None:
            raise UnavailableError("the sandbox is not running")
        return server


def _overflow_of(pool: PoolSpec) -> OverflowSpec:
    if pool.overflow is None:
        raise UnavailableError(f"pool {pool.name} has no overflow service")
    return pool.overflow


def _local_overflow(pool: PoolSpec, urls: dict[str, str]) -> PoolSpec:
    if pool.overflow is None or pool.overflow.service not in urls:
        return pool
    overflow = pool.overflow.model_copy(
        update={"url": urls[pool.overflow.service], "audience": pool.overflow.audience or pool.overflow.url}
    )
    return pool.model_copy(update={"overflow": overflow})


def _quietly(action: Any) -> None:
    """Run a teardown step; one failing step must not leave the others' processes and ports behind."""
    try:
        action()
    except Exception:
        log.exception("sandbox teardown step failed")
