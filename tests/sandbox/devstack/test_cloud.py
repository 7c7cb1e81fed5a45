"""A whole sandbox: Cloud Run admin through the real run_v2 client, engines through the real OpenAI SDK."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2

from spotgate.domain import InstanceStatus
from spotgate.sandbox.devstack.cloud import SandboxCloud
from spotgate.sandbox.metadata.identity import Identity
from tests.sandbox.sandbox_support import a_fleet, alive, engine_pids, healthy, wait_until
from tests.sdk import sdk_client

CONFIGURED_URL = "https://chat-overflow-local.a.run.app"  # examples/fleet.yaml
SERVICE = "projects/spotgate-local/locations/us-central1/services/chat-overflow"
ASK = [{"role": "user", "content": "what happens when a spot vm goes away?"}]


def services_client(cloud: SandboxCloud) -> run_v2.ServicesClient:
    return run_v2.ServicesClient(
        transport="rest",
        client_options=ClientOptions(api_endpoint=cloud.run_url),
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
    )


def running_vm_url(cloud: SandboxCloud, name: str) -> str:
    vm = cloud.compute.find(name)
    cloud.compute.start(vm.zone, name, "test")
    assert wait_until(lambda: cloud.compute.find(name).status is InstanceStatus.RUNNING)
    url = cloud.endpoints()["vms"][name]
    assert wait_until(lambda: healthy(url))
    return str(url)


def test_cloud_run_get_and_patch_service_level_min_instances(shared_cloud: SandboxCloud) -> None:
    client = services_client(shared_cloud)
    before = client.get_service(name=SERVICE)
    warmed = client.update_service(
        service=run_v2.Service(name=SERVICE, scaling=run_v2.ServiceScaling(min_instance_count=1))
    ).result(timeout=10)
    after = client.get_service(name=SERVICE)
    cooled = client.update_service(
        service=run_v2.Service(name=SERVICE, scaling=run_v2.ServiceScaling(min_instance_count=0))
    ).result(timeout=10)
    assert before.uri == shared_cloud.endpoints()["overflow"]["chat-overflow"]
    assert before.scaling.min_instance_count == 0
    assert before.template.node_selector.accelerator == "nvidia-l4"
    assert before.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED
    assert warmed.scaling.min_instance_count == after.scaling.min_instance_count == 1
    assert after.generation > before.generation
    assert cooled.scaling.min_instance_count == 0


def test_cloud_run_patch_of_a_whole_fetched_service_changes_only_scaling(shared_cloud: SandboxCloud) -> None:
    client = services_client(shared_cloud)
    service = client.get_service(name=SERVICE)
    service.scaling.min_instance_count = 1  # read-modify-write: the body carries every field, enums as ints
    updated = client.update_service(service=service).result(timeout=10)
    client.update_service(service=run_v2.Service(name=SERVICE, scaling=run_v2.ServiceScaling())).result(timeout=10)
    assert updated.scaling.min_instance_count == 1
    assert updated.uri == service.uri
    assert updated.ingress == run_v2.IngressTraffic.INGRESS_TRAFFIC_ALL


def test_cloud_run_unknown_service_is_not_found(shared_cloud: SandboxCloud) -> None:
    with pytest.raises(exceptions.NotFound):
        services_client(shared_cloud).get_service(name=SERVICE.replace("chat-overflow", "nope"))


def test_effective_fleet_points_overflow_at_the_local_engine_with_the_configured_audience(
    shared_cloud: SandboxCloud,
) -> None:
    chat = shared_cloud.effective_fleet().pool("chat")
    assert chat is not None
    assert chat.overflow is not None
    assert chat.overflow.url == shared_cloud.endpoints()["overflow"]["chat-overflow"]
    assert chat.overflow.audience == CONFIGURED_URL


def test_overflow_streams_to_the_gateway_identity_and_refuses_others(shared_cloud: SandboxCloud) -> None:
    url = shared_cloud.endpoints()["overflow"]["chat-overflow"] + "/v1"
    token = shared_cloud.identity.sign_id_token(CONFIGURED_URL, shared_cloud.gateway_email)
    stream = sdk_client(base_url=url, api_key=token, timeout=10, max_retries=0).chat.completions.create(
        model="gpt-4o-mini",
        messages=ASK,
        stream=True,  # type: ignore[arg-type]
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    stranger = shared_cloud.identity.sign_id_token(CONFIGURED_URL, "someone@example.com")
    forged = Identity.generate().sign_id_token(CONFIGURED_URL, shared_cloud.gateway_email)
    assert text
    with pytest.raises(openai.AuthenticationError):
        sdk_client(base_url=url, api_key=forged, max_retries=0).models.list()
    with pytest.raises(openai.PermissionDeniedError):
        sdk_client(base_url=url, api_key=stranger, max_retries=0).models.list()


def test_vm_engine_streams_through_the_openai_sdk(cloud: SandboxCloud) -> None:
    url = running_vm_url(cloud, "chat-c-1")
    client = sdk_client(base_url=url + "/v1", api_key="x", timeout=10, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="llama3", messages=ASK, stream=True)  # type: ignore[arg-type]
    chunks = list(raw.parse())
    assert raw.headers["x-spotgate-backend"] == "chat-c-1"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason in {"stop", "length"}


def test_preemption_cuts_a_long_stream_after_the_notice(cloud: SandboxCloud) -> None:
    url = running_vm_url(cloud, "chat-c-1")
    client = sdk_client(base_url=url + "/v1", api_key="x", timeout=10, max_retries=0)
    stream = iter(
        client.chat.completions.create(
            model="llama3",
            messages=ASK,  # type: ignore[arg-type]
            stream=True,
            max_tokens=5000,
            extra_body={"ignore_eos": True},  # vLLM's switch for a full-length answer: ~25 s at 200 tokens/s
        )
    )
    next(stream)
    cloud.compute.preempt("chat-c-1")
    during_notice = next(stream)  # the engine keeps answering while the VM is STOPPING
    with pytest.raises(openai.APIConnectionError):
        for _ in stream:
            pass
    assert during_notice.choices[0].delta.content
    assert cloud.compute.find("chat-c-1").status is InstanceStatus.TERMINATED


def test_two_sandboxes_run_side_by_side(tmp_path: Path, identity: Identity) -> None:
    first = SandboxCloud(a_fleet(), tmp_path / "one", identity=identity)
    second = SandboxCloud(a_fleet(), tmp_path / "two", identity=identity)
    pids: list[int] = []
    try:
        with first, second:
            urls = [running_vm_url(first, "embed-b-1"), running_vm_url(second, "embed-b-1")]
            pids = engine_pids(first) + engine_pids(second)
            assert urls[0] != urls[1]
            assert all(healthy(url) for url in urls)
    finally:
        first.stop()
        second.stop()
    assert [pid for pid in pids if alive(pid)] == []
