"""``python -m carepulse.nlp``: run the NLP worker until SIGTERM/SIGINT."""

from __future__ import annotations

import faust

from carepulse.nlp.settings import NlpSettings
from carepulse.nlp.worker import build_app
from carepulse.shared.logs import setup_logging
from carepulse.shared.tracing import setup_tracing


def main() -> None:
    settings = NlpSettings()
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing("nlp")  # exports spans only when CAREPULSE_OTLP_ENDPOINT is set
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, override_logging=False, quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
