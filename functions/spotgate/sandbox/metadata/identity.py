"""A local Google-style token issuer: one RSA key, ID tokens signed with it, and the certs to verify them.

The metadata-server emulation hands out these tokens (as GCE's does), and anything that verifies Google ID
tokens with ``google.oauth2.id_token.verify_token(..., certs_url=...)`` accepts them when pointed at
``certs_json()``. Keys live in memory only and are new every run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

ISSUER = "https://accounts.google.com"


@dataclass(frozen=True, slots=True)
class Identity:
    """An RSA signing identity with a self-signed certificate, keyed by ``kid``."""

    kid: str
    private_pem: bytes
    cert_pem: bytes
    signer: crypt.RSASigner = field(repr=False)

    @classmethod
    def generate(cls, now: datetime | None = None) -> Identity:
        """A fresh 2048-bit key and a certificate valid for a day around ``now``."""
        now = now or datetime.now(UTC)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spotgate-sandbox-metadata")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        kid = uuid.uuid4().hex
        return cls(kid, pem, cert.public_bytes(serialization.Encoding.PEM), crypt.RSASigner.from_string(pem, kid))

    def sign_id_token(
        self,
        audience: str,
        email: str,
        now: datetime | None = None,
        lifetime: timedelta = timedelta(hours=1),
        hosted_domain: str | None = None,
    ) -> str:
        """An RS256 ID token like the metadata server's ``identity?format=full`` answer; ``hosted_domain`` is the
        ``hd`` claim Google adds for accounts managed by a Google Workspace domain."""
        now = now or datetime.now(UTC)
        issued = int(now.timestamp())
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "aud": audience,
            "azp": email,
            "sub": str(uuid.uuid5(uuid.NAMESPACE_DNS, email).int)[:21],
            "email": email,
            "email_verified": True,
            "iat": issued,
            "exp": issued + int(lifetime.total_seconds()),
        }
        if hosted_domain is not None:
            payload["hd"] = hosted_domain
        token: bytes = jwt.encode(self.signer, payload)
        return token.decode("ascii")

    def certs_json(self) -> dict[str, str]:
        """``{kid: PEM certificate}``, the format of Google's oauth2/v1/certs."""
        return {self.kid: self.cert_pem.decode("ascii")}
