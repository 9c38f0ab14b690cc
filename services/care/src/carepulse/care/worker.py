"""Stream wiring of the care worker: topics in, CareProcessor, topics out."""

from __future__ import annotations

from carepulse.care.processor import CareProcessor
from carepulse.care.relay import WebhookRelay
from carepulse.care.settings import CareSettings
from carepulse.shared.context_store import PatientContextStore
from carepulse.shared.health import HealthChecks
from carepulse.shared.kafka.streams import StreamApp, add_handler, make_publisher, make_stream_app
from carepulse.shared.topics import Topics

SERVICE = "care"


def build_app(settings: CareSettings) -> StreamApp:
    topics = Topics.with_prefix(settings.topic_prefix)
    store = PatientContextStore.from_settings(settings, ttl_seconds=settings.care_context_ttl_s)
    health = HealthChecks()
    app = make_stream_app(settings, settings.care_group, web_port=settings.care_port, health=health)
    health.add("redis", store.ping)
    publish = make_publisher(app)
    processor = CareProcessor(topics, store, publish, settings)
    handlers = {
        topics.observation: processor.on_observation,
        topics.patient: processor.on_context,
        topics.clinical: processor.on_context,
        topics.derived: processor.on_derived,
    }
    urls = [u.strip() for u in settings.webhook_urls.split(",") if u.strip()]
    if urls:
        relay = WebhookRelay(urls, settings, topics, publish)
        handlers[topics.alerts] = relay.deliver
        handlers[topics.alerts_retry] = relay.redeliver
    for topic, handler in handlers.items():
        add_handler(app, topic, handler, service=SERVICE, deadletter_topic=topics.deadletter,
                    source_name=settings.source_name, publish=publish)
    return app
