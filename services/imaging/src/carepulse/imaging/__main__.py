"""``python -m carepulse.imaging``: run the imaging worker until SIGTERM/SIGINT."""

from __future__ import annotations

from carepulse.imaging.settings import ImagingSettings
from carepulse.imaging.worker import build_app
from carepulse.shared.kafka.streams import run_worker


def main() -> None:
    run_worker("imaging", ImagingSettings(), build_app)


if __name__ == "__main__":
    main()
