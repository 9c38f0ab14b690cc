"""``python -m carepulse.inference``: serve the model repository until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from carepulse.inference.server import InferenceServer
from carepulse.inference.settings import InferenceSettings
from carepulse.shared.heap import freeze_startup_heap
from carepulse.shared.logs import setup_logging
from carepulse.shared.tracing import setup_tracing

log = logging.getLogger("carepulse.inference")


async def serve(settings: InferenceSettings) -> None:
    server = InferenceServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        freeze_startup_heap()
        await stop.wait()
        log.info("shutting down")
    finally:
        await server.stop()


def main() -> None:
    settings = InferenceSettings()
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing("inference")  # exports spans only when CAREPULSE_OTLP_ENDPOINT is set
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
