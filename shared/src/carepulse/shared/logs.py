"""One logging setup for every process: JSON for machines, console for people.

Policy: log resource ids, codes and counts only, never names, identifiers, dates of
birth or note text. Pass structured context with ``extra={"fields": {...}}``.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_NOISY = ("kafka", "aiokafka", "faust", "mode", "uvicorn.access", "urllib3", "httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            doc.update(extra)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class ConsoleFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict) and extra:
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        return line


def setup_logging(level: str = "INFO", fmt: str = "console") -> None:
    """Configure the root logger once per process (idempotent)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Client libraries log connection chatter (and sometimes payload sizes) at INFO.
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
