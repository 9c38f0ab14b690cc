"""TLS client contexts from the PEM files named in settings (Kafka, Redis), built once, checked at start.

A file that is missing or not PEM stops the process at start with a message naming the
setting; it never leads to a plaintext fallback or to a failure on the first record.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsConfigError(ValueError):
    """The TLS settings of a link are incomplete or name files that cannot be used."""


def client_context(
    what: str,
    *,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client context verifying the server against ``ca`` (system CAs when None), presenting
    ``cert``/``key`` when given (mutual TLS); TLS 1.2 at least. ``what`` names the link in errors."""
    if (cert is None) != (key is None):
        raise TlsConfigError(f"{what}: the client certificate and its key must be set together")
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"{what}: cannot load the CA bundle {ca}: {_reason(exc)}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cert is not None and key is not None:
        try:
            ctx.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise TlsConfigError(f"{what}: cannot load the client certificate {cert} / key {key}: "
                                 f"{_reason(exc)}") from None
    return ctx


def _reason(exc: OSError | ssl.SSLError) -> str:
    return getattr(exc, "reason", None) or exc.strerror or str(exc)
