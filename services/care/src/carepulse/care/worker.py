"""Faust wiring of the care worker: observation topic in, CareProcessor, topics out."""

from __future__ import annotations

import faust

from carepulse.care.processor import CareProcessor
from carepulse.care.settings import CareSettings
from carepulse.shared.context_store import PatientContextStore, make_redis
from carepulse.shared.health import HealthChecks
from carepulse.shared.kafka.streams import add_handler, make_publisher, make_stream_app
from carepulse.shared.topics import Topics

SERVICE = "care"


def build_app(settings: CareSettings) -> faust.App:
    topics = Topics.with_prefix(settings.topic_prefix)
    store = PatientContextStore(make_redis(settings), ttl_seconds=settings.care_context_ttl_s)
    health = HealthChecks()
    app = make_stream_app(
        settings, settings.care_group, web_port=settings.care_port, data_dir=settings.care_data_dir, health=health
    )
    health.add("redis", store.ping)
    publish = make_publisher(app)
    processor = CareProcessor(
        topics, store, publish, source_name=settings.source_name, set_tolerance_s=settings.care_set_tolerance_s
    )
    add_handler(app, topics.observation, processor.on_observation, service=SERVICE,
                deadletter_topic=topics.deadletter, source_name=settings.source_name, publish=publish)
    return app
