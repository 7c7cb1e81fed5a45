"""The sandbox metadata server gives google-auth what GCE's does: ID tokens, access tokens, the project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import google.auth.transport.requests
import pytest
import requests
from google.oauth2 import id_token

from spotgate.sandbox.metadata.identity import Identity
from spotgate.sandbox.metadata.server import MetadataServer

SERVICE_ACCOUNT = "functions@sandbox-proj.iam.gserviceaccount.com"
AUDIENCE = "https://overflow-l4.sandbox.run.app"
FLAVOR = {"Metadata-Flavor": "Google"}

# google-auth reads GCE_METADATA_HOST once, at import: a fresh interpreter sees it the way a deployed function does.
_CLIENT = """
import json, sys
import google.auth, google.auth.transport.requests
from google.oauth2 import id_token
request = google.auth.transport.requests.Request()
token = id_token.fetch_id_token(request, sys.argv[1])
credentials, project = google.auth.default()
credentials.refresh(request)
print(json.dumps({"id_token": token, "project": project, "access_token": credentials.token,
                  "email": credentials.service_account_email}))
"""


@pytest.fixture(scope="module")
def identity() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def server(identity: Identity) -> Iterator[MetadataServer]:
    metadata = MetadataServer(identity, project="sandbox-proj", service_account=SERVICE_ACCOUNT)
    metadata.start()
    try:
        yield metadata
    finally:
        metadata.stop()


@pytest.fixture(scope="module")
def client_result(server: MetadataServer) -> dict[str, str]:
    """One fresh interpreter using google-auth against the server (imports are the slow part)."""
    return run_google_auth_client(server, AUDIENCE)


def run_google_auth_client(server: MetadataServer, audience: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCE_", "GOOGLE_", "NO_GCE"))}
    env |= {"GCE_METADATA_HOST": server.address, "GCE_METADATA_IP": server.address}
    done = subprocess.run(
        [sys.executable, "-c", _CLIENT, audience], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout)
    return result


def test_google_auth_fetches_an_id_token_that_verifies_for_its_audience(
    server: MetadataServer, client_result: dict[str, str]
) -> None:
    result = client_result

    claims = id_token.verify_token(
        result["id_token"], google.auth.transport.requests.Request(), audience=AUDIENCE, certs_url=server.certs_url
    )
    assert claims["email"] == SERVICE_ACCOUNT
    assert claims["aud"] == AUDIENCE
    with pytest.raises(ValueError, match="audience"):
        id_token.verify_token(
            result["id_token"],
            google.auth.transport.requests.Request(),
            audience="https://elsewhere.example",
            certs_url=server.certs_url,
        )


def test_application_default_credentials_resolve_to_the_sandbox_project_and_account(
    client_result: dict[str, str],
) -> None:
    result = client_result

    assert result["project"] == "sandbox-proj"
    assert result["email"] == SERVICE_ACCOUNT
    assert result["access_token"].startswith("ya29.")


def test_ping_answers_with_the_google_flavor_header(server: MetadataServer) -> None:
    response = requests.get(f"{server.url}/", timeout=5)
    assert response.status_code == 200
    assert response.headers["Metadata-Flavor"] == "Google"


def test_metadata_reads_without_the_flavor_header_are_refused(server: MetadataServer) -> None:
    response = requests.get(f"{server.url}/computeMetadata/v1/project/project-id", timeout=5)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("instance/service-accounts/default/email", SERVICE_ACCOUNT, id="email"),
        pytest.param("project/project-id", "sandbox-proj", id="project"),
        pytest.param("instance/preempted", "FALSE", id="not-preempted"),
    ],
)
def test_plain_text_values(server: MetadataServer, path: str, expected: str) -> None:
    response = requests.get(f"{server.url}/computeMetadata/v1/{path}", headers=FLAVOR, timeout=5)
    assert response.status_code == 200
    assert response.text == expected


def test_recursive_service_account_is_json(server: MetadataServer) -> None:
    response = requests.get(
        f"{server.url}/computeMetadata/v1/instance/service-accounts/default/",
        params={"recursive": "true"},
        headers=FLAVOR,
        timeout=5,
    )
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "aliases": ["default"],
        "email": SERVICE_ACCOUNT,
        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
    }


def test_preempted_flag_follows_the_control(server: MetadataServer) -> None:
    url = f"{server.url}/computeMetadata/v1/instance/preempted"
    server.set_preempted(True)
    assert requests.get(url, headers=FLAVOR, timeout=5).text == "TRUE"
    server.set_preempted(False)
    assert requests.get(url, headers=FLAVOR, timeout=5).text == "FALSE"


def test_identity_without_audience_is_a_client_error(server: MetadataServer) -> None:
    url = f"{server.url}/computeMetadata/v1/instance/service-accounts/default/identity"
    assert requests.get(url, headers=FLAVOR, timeout=5).status_code == 400


def test_stop_releases_the_port_and_is_idempotent(identity: Identity) -> None:
    metadata = MetadataServer(identity, project="p", service_account=SERVICE_ACCOUNT)
    metadata.start()
    metadata.start()
    url = metadata.url
    metadata.stop()
    metadata.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)
