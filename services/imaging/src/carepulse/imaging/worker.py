"""Stream wiring of the imaging worker: fhir.imaging in, ImagingProcessor, fhir.derived out."""

from __future__ import annotations

from carepulse.imaging.classifier import Classifier
from carepulse.imaging.dicomweb import DicomWebClient
from carepulse.imaging.processor import ImagingProcessor
from carepulse.imaging.settings import ImagingSettings
from carepulse.shared.health import HealthChecks
from carepulse.shared.inference.client import InferenceClient
from carepulse.shared.kafka.streams import StreamApp, add_handler, make_publisher, make_stream_app
from carepulse.shared.topics import Topics

SERVICE = "imaging"


def build_app(settings: ImagingSettings) -> StreamApp:
    topics = Topics.with_prefix(settings.topic_prefix)
    health = HealthChecks()
    app = make_stream_app(settings, settings.imaging_group, web_port=settings.imaging_port, health=health)
    client = InferenceClient.from_settings(settings)
    classifier = Classifier(client, settings.imaging_model, version=settings.imaging_model_version,
                            max_batch=settings.imaging_max_batch)
    token = settings.imaging_dicomweb_token.get_secret_value() if settings.imaging_dicomweb_token else None
    dicomweb = DicomWebClient(timeout_s=settings.imaging_dicomweb_timeout_s, allowed_prefixes=settings.dicomweb_allowed,
                              bearer_token=token, max_instances=settings.imaging_max_images,
                              max_bytes=settings.imaging_max_fetch_bytes)
    health.add("inference", classifier.ready)
    publish = make_publisher(app)
    processor = ImagingProcessor(topics, publish, classifier, dicomweb, source_name=settings.source_name,
                                 threshold=settings.imaging_threshold, input_size=settings.imaging_input_size,
                                 max_images=settings.imaging_max_images, limits=settings.input_limits)
    add_handler(app, topics.imaging, processor.on_record, service=SERVICE,
                deadletter_topic=topics.deadletter, source_name=settings.source_name, publish=publish)
    # The gRPC channel and the HTTP pool live as long as the process; the OS closes them at exit.
    return app
