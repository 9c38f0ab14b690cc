"""``python -m carepulse.nlp``: run the nlp worker until SIGTERM/SIGINT."""

from __future__ import annotations

from carepulse.nlp.settings import NlpSettings
from carepulse.nlp.worker import build_app
from carepulse.shared.kafka.streams import run_worker


def main() -> None:
    run_worker("nlp", NlpSettings(), build_app)


if __name__ == "__main__":
    main()
