"""Record headers every CarePulse record carries (ARCHITECTURE.md, "Wire format")."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable

from carepulse.shared.fhir.codec import FHIR_CONTENT_TYPE

Headers = list[tuple[str, bytes]]

# Namespace for deterministic ids: the same input always yields the same event id,
# so a retried POST or a replayed record is recognisable downstream.
EVENT_NAMESPACE = uuid.UUID("5f0c3a52-3b7e-4a51-9d0e-6c1f8f6f2a10")
_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


def stable_id(*parts: str) -> str:
    """A UUID derived from ``parts``: equal inputs give equal ids, across processes.

    Exactly ``str(uuid.uuid5(EVENT_NAMESPACE, "\\x1f".join(parts)))``, computed without building
    a ``UUID`` object: it runs several times per record on every hot path (3.5x faster)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_traceparent() -> str:
    """A fresh W3C ``traceparent`` (version 00, sampled)."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def fhir_headers(
    resource_type: str, event_id: str, source: str, traceparent: str | None = None
) -> Headers:
    return [
        ("content-type", FHIR_CONTENT_TYPE.encode()),
        ("resource-type", resource_type.encode()),
        ("event-id", event_id.encode()),
        ("source", source.encode()),
        ("traceparent", (traceparent or new_traceparent()).encode()),
    ]


def header(headers: Iterable[tuple[str, bytes]] | None, name: str) -> str | None:
    """Value of one header as text, or None."""
    for k, v in headers or ():
        if k == name:
            return v.decode() if isinstance(v, bytes | bytearray) else str(v)
    return None
