"""Tokens from the sandbox issuer verify with google-auth, and only for their audience."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.auth import jwt

from spotgate.sandbox.metadata.identity import Identity


def test_token_verifies_against_its_certs_and_audience() -> None:
    issuer = Identity.generate()
    token = issuer.sign_id_token("https://svc.example", "gw@proj.iam.gserviceaccount.com")
    claims = jwt.decode(token, certs=issuer.certs_json(), audience="https://svc.example")
    assert claims["email"] == "gw@proj.iam.gserviceaccount.com"


def test_wrong_audience_expired_and_foreign_key_are_rejected() -> None:
    issuer = Identity.generate()
    token = issuer.sign_id_token("https://svc.example", "a@b.c")
    with pytest.raises(ValueError, match="audience"):
        jwt.decode(token, certs=issuer.certs_json(), audience="https://other.example")
    old = issuer.sign_id_token("https://svc.example", "a@b.c", now=datetime.now(UTC) - timedelta(hours=3))
    with pytest.raises(ValueError, match="expired"):
        jwt.decode(old, certs=issuer.certs_json(), audience="https://svc.example")
    with pytest.raises(ValueError, match=r"kid|signature|Certificate"):
        jwt.decode(token, certs=Identity.generate().certs_json(), audience="https://svc.example")
