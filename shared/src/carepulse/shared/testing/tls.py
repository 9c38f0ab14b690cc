"""A throw-away certificate authority for TLS tests: everything is minted in a tmp folder.

``Authority(root, "hospital").issue("redis", server=True)`` writes a CA, a server
certificate for 127.0.0.1/localhost and its key as PEM files; ``server=False`` gives a
client certificate. A second ``Authority`` is a stranger whose certificates must be refused.
Certificates live one hour, keys are P-256 (fast to make on a small machine).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """PEM files of one certificate and its unencrypted PKCS#8 key."""

    cert: Path
    key: Path


class Authority:
    """A CA whose certificate is at ``ca_file``; :meth:`issue` signs leaf certificates."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
        self.cert = (
            self._builder(subject, subject, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = root / f"{name}-ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1)))

    def issue(self, common_name: str, *, server: bool, client: bool = False) -> Issued:
        """A leaf certificate: for a server on 127.0.0.1/localhost, or for a client (``server=False``);
        ``server=True, client=True``: both (a server that also authenticates as a client)."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
        if client or not server:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            self._builder(subject, self.cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                             x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        issued = Issued(self.root / f"{self.name}-{common_name}.pem", self.root / f"{self.name}-{common_name}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
        issued.key.chmod(0o600)
        return issued


@dataclass(frozen=True)
class Pki:
    """What a TLS test needs: a CA with a server and a client certificate, and a stranger CA
    with a client certificate that must be refused."""

    ca: Authority
    server: Issued
    client: Issued
    stranger: Authority
    stranger_client: Issued


def make_pki(root: Path, server: str, client: str, *, server_is_client: bool = False) -> Pki:
    """A :class:`Pki` under ``root``: ``server`` on 127.0.0.1/localhost, ``client`` from the same CA
    and from a stranger CA; ``server_is_client``: the server certificate may also authenticate as a client."""
    ca, stranger = Authority(root, "hospital"), Authority(root, "stranger")
    return Pki(ca, ca.issue(server, server=True, client=server_is_client), ca.issue(client, server=False),
               stranger, stranger.issue(client, server=False))
