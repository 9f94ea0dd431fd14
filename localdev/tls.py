"""Self-signed TLS certificate for the local HTTPS endpoints (ARM, ACS Email).

Boundary: makes (once) and reuses an EC key + certificate valid for 127.0.0.1 and
localhost. SDK clients trust it with ``connection_verify=<cert path>``; nothing here
ever turns verification off.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_NAME = "localdev-cert.pem"
KEY_NAME = "localdev-key.pem"


def _still_valid(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    # Regenerate a day before expiry rather than serving an expired certificate.
    return cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=1)


def ensure_cert(state_dir: str | os.PathLike[str]) -> tuple[str, str]:
    """Return (cert_path, key_path), generating them on first use only."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = state / CERT_NAME, state / KEY_NAME
    if cert_path.is_file() and key_path.is_file() and _still_valid(cert_path):
        return str(cert_path), str(key_path)

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alertcap localdev")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        # A self-signed leaf that is its own CA: lets it be the trust anchor in a
        # verify file while still serving as the server certificate.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    # Write the key private first (0600), then publish the certificate.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), str(key_path)


def server_context(state_dir: str | os.PathLike[str]) -> tuple[ssl.SSLContext, str]:
    """An SSL server context with the local certificate, and the cert path clients trust."""
    cert_path, key_path = ensure_cert(state_dir)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx, cert_path
