"""Topic creation (the embedded platform and tests create the registry's topics)."""

from __future__ import annotations

import contextlib
import logging
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from carepulse.shared.kafka.security import kafka_client_security
from carepulse.shared.settings import Settings
from carepulse.shared.topics import Topics

log = logging.getLogger(__name__)


def create_topics(settings: Settings, topics: Topics, partitions: int = 3, timeout: float = 30.0) -> list[str]:
    """Create every registry topic that does not exist yet; returns those created."""
    deadline = time.monotonic() + timeout
    security = kafka_client_security(settings)  # a bad setup fails here, not after the retries
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=settings.kafka_servers, client_id="carepulse-admin",
                                     **security)
            break
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics.all() if t not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process raced us to it
                admin.create_topics([NewTopic(t, partitions, 1) for t in wanted])
        log.info("topics ready", extra={"fields": {"created": len(wanted)}})
        return wanted
    finally:
        admin.close()
