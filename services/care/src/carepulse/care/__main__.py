"""``python -m carepulse.care``: run the care worker until SIGTERM/SIGINT."""

from __future__ import annotations

from carepulse.care.settings import CareSettings
from carepulse.care.worker import build_app
from carepulse.shared.kafka.streams import run_worker


def main() -> None:
    run_worker("care", CareSettings(), build_app)


if __name__ == "__main__":
    main()
