"""Dead-letter records: the original bytes, untouched, plus why they were rejected.

The value stays exactly what the sender gave (so it can be replayed after a fix);
the OperationOutcome and the origin travel in headers.
"""

from __future__ import annotations

import json
from typing import Any

from carepulse.shared.kafka.headers import Headers


def deadletter_headers(
    outcome: dict[str, Any], source: str, event_id: str, origin_topic: str | None = None,
    origin_offset: int | None = None, stage: str = "ingestion",
) -> Headers:
    headers: Headers = [
        ("content-type", b"application/octet-stream"),
        ("event-id", event_id.encode()),
        ("source", source.encode()),
        ("deadletter-stage", stage.encode()),
        ("deadletter-outcome", json.dumps(outcome, separators=(",", ":")).encode()),
    ]
    if origin_topic is not None:
        headers.append(("origin-topic", origin_topic.encode()))
    if origin_offset is not None:
        headers.append(("origin-offset", str(origin_offset).encode()))
    return headers
