"""Google ID tokens as credentials: the right audience and an allowed principal, nothing else."""

from __future__ import annotations

import openai
import pytest

from tests.gateway.stack import a_route
from tests.sdk import sdk_client

MESSAGES: list[dict[str, str]] = [{"role": "user", "content": "hello"}]
ALLOWED = ("alice@example.com", "@corp.example")


@pytest.fixture
def gateway(make_gateway):
    return make_gateway(allowed_principals=ALLOWED, audiences=("https://alias.gateway.test",))


def ask(gateway, token: str) -> str:
    client = sdk_client(base_url=f"{gateway.url}/v1", api_key=token, max_retries=0, timeout=20)
    return client.chat.completions.create(model="chat-model", messages=MESSAGES).choices[0].message.content or ""


@pytest.mark.parametrize(
    ("email", "audience", "hd"),
    [
        pytest.param("alice@example.com", "https://gateway.test", None, id="exact-principal"),
        pytest.param("bob@corp.example", "https://gateway.test", "corp.example", id="domain-principal"),
        pytest.param("alice@example.com", "https://alias.gateway.test", None, id="extra-audience"),
    ],
)
def test_an_allowed_principal_with_the_gateway_audience_is_served(
    *, gateway, store, engines, identity, email, audience, hd
) -> None:
    engine = engines("chat-model", "chat-a")
    store.put_routes([a_route("chat", engine.name, engine.url)])
    assert ask(gateway, identity.sign_id_token(audience, email, hosted_domain=hd))


@pytest.mark.parametrize(
    "hd",
    [pytest.param(None, id="consumer-account-at-the-domain"), pytest.param("other.example", id="other-workspace")],
)
def test_a_domain_principal_needs_the_domains_hosted_domain_claim(gateway, identity, hd) -> None:
    token = identity.sign_id_token("https://gateway.test", "eve@corp.example", hosted_domain=hd)
    with pytest.raises(openai.PermissionDeniedError):
        ask(gateway, token)


def test_a_deeply_nested_token_is_a_401_not_a_500(gateway) -> None:
    import base64

    nested = base64.urlsafe_b64encode(b"[" * 2500 + b"]" * 2500).rstrip(b"=").decode()  # fits a header line
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"x"}').rstrip(b"=").decode()
    for token in (f"eyJ{nested}.e30.sig", f"{header}.{nested}.sig"):
        with pytest.raises(openai.AuthenticationError):
            ask(gateway, token)


def test_another_principal_is_forbidden(gateway, identity) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        ask(gateway, identity.sign_id_token("https://gateway.test", "mallory@example.com"))


@pytest.mark.parametrize(
    "audience",
    [pytest.param("https://other-service.run.app", id="other-audience"), pytest.param("", id="empty-audience")],
)
def test_a_token_for_another_audience_is_refused(gateway, identity, audience) -> None:
    with pytest.raises(openai.AuthenticationError):
        ask(gateway, identity.sign_id_token(audience, "alice@example.com"))


def test_a_token_signed_by_an_unknown_key_is_refused(gateway) -> None:
    from spotgate.sandbox.metadata.identity import Identity

    forged = Identity.generate().sign_id_token("https://gateway.test", "alice@example.com")
    with pytest.raises(openai.AuthenticationError):
        ask(gateway, forged)


def test_unreachable_certificates_are_a_503_not_a_401(make_gateway, identity) -> None:
    gateway = make_gateway(allowed_principals=ALLOWED, certs_url="http://127.0.0.1:9/certs")
    with pytest.raises(openai.InternalServerError) as raised:
        ask(gateway, identity.sign_id_token("https://gateway.test", "alice@example.com"))
    assert raised.value.status_code == 503
