"""Stream wiring of the NLP worker: document topic in, NlpProcessor, derived topic out."""

from __future__ import annotations

from carepulse.nlp.processor import NlpProcessor
from carepulse.nlp.service import build_normaliser, build_pipeline
from carepulse.nlp.settings import NlpSettings
from carepulse.nlp.terminology import Lexicon
from carepulse.shared.health import HealthChecks
from carepulse.shared.inference.client import InferenceClient
from carepulse.shared.kafka.streams import StreamApp, add_handler, make_publisher, make_stream_app
from carepulse.shared.topics import Topics

SERVICE = "nlp"


def build_app(settings: NlpSettings) -> StreamApp:
    topics = Topics.with_prefix(settings.topic_prefix)
    health = HealthChecks()
    app = make_stream_app(settings, settings.nlp_group, web_port=settings.nlp_port, health=health)
    lexicon = Lexicon.load()
    client = InferenceClient.from_settings(settings)
    normaliser = build_normaliser(settings, lexicon, client)
    if normaliser.uses_embeddings:
        health.add("inference", client.server_ready)
    publish = make_publisher(app)
    processor = NlpProcessor(topics, publish, build_pipeline(lexicon), normaliser,
                             source_name=settings.source_name, max_note_bytes=settings.nlp_max_note_bytes)
    add_handler(app, topics.document, processor.on_document, service=SERVICE,
                deadletter_topic=topics.deadletter, source_name=settings.source_name, publish=publish)
    return app
