"""One logging setup for every process: JSON for machines, console for people.

Policy: log resource ids, codes and counts only, never names, identifiers, dates of
birth or note text. Pass structured context with ``extra={"fields": {...}}``.

:class:`PhiFilter` enforces the policy on every record that reaches the handler (ours
and every library's): structured fields pass only when their name is on an allow-list
(ids, references, codes, counts, topics, offsets, durations); a string interpolated into a
message passes only when it has the shape of a machine token (``_SAFE_ARG``), so a name
passed as an argument is replaced although no pattern could recognise it; message text,
exception text and the allowed fields' values lose what looks like PHI (dates, phone and
social security numbers, e-mail and street addresses, MRNs, and the values of FHIR
elements that carry names, addresses, identifiers or narrative). A name written into the
format string itself cannot be recognised: that is what the policy above forbids.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_NOISY = ("kafka", "aiokafka", "uvicorn.access", "urllib3", "httpx", "httpcore")


REDACTED = "[redacted]"

# Structured field names that may carry a value: what a log needs to find a record again.
ALLOWED_FIELDS = frozenset({
    "id", "ids", "ref", "refs", "reference", "patient", "subject", "document", "bundle", "resource_type", "type",
    "event_id", "key", "topic", "on_topic", "partition", "offset", "offsets", "lag", "group",
    "code", "codes", "kind", "action", "status", "outcome", "level", "band", "score", "interaction", "method", "path",
    "service", "model", "version", "versions", "rpc", "grpc", "port", "round", "attempt", "client_id",
    "records", "count", "created", "found", "wanted", "findings", "duplicate", "lines", "bytes", "size", "batch",
    "error", "reason", "duration_ms", "elapsed_s", "retry_in_s", "seconds",
})
_ALLOWED_SUFFIXES = ("_id", "_ids", "_ref", "_refs", "_code", "_codes", "_count", "_n", "_total", "_topic",
                     "_offset", "_partition", "_s", "_ms", "_seconds", "_bytes", "_status")

# FHIR (and pydantic error) elements whose values are PHI, redacted wherever a resource or a
# validation error is printed: "family": "Smith", 'birthDate': '1970-01-01', input_value='...'.
_PHI_KEYS = ("family", "given", "name", "prefix", "suffix", "birthDate", "deceasedDateTime", "line", "city",
             "district", "state", "postalCode", "country", "address", "telecom", "text", "div", "note", "data",
             "value", "valueString", "input_value", "display", "comment", "description", "conclusion")
_KEY_VALUE = re.compile(
    r"""(?P<k>["']?\b(?:""" + "|".join(_PHI_KEYS) + r""")\b["']?\s*[:=]\s*)"""
    r"""(?P<v>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|\[[^\]]*\]|[^,;)}\s]+)""")
_STREET_TYPES = ("Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Square|Sq|"
                 "Terrace|Way|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Trail|Trl|Crossing|Xing|Row|Rue|Alley|"
                 "Divide|Viaduct|Mission|Ramp|Gateway|Gardens|Heights|Hill|Hills|Harbor|Junction|Landing|"
                 "Light|Loop|Manor|Meadow|Mews|Mill|Orchard|Park|Pass|Path|Pike|Plaza|Point|Port|Ridge|Run|"
                 "Shore|Spur|Station|Summit|Throughway|Track|Turnpike|Union|Valley|View|Village|Vista|Walk|"
                 "Wall|Wells|Bypass|Camp|Cape|Causeway|Center|Common|Corner|Cove|Creek|Crescent|Dale|Dam|"
                 "Estate|Expressway|Extension|Falls|Ferry|Field|Ford|Forest|Fork|Fort|Freeway|Glen|Green|"
                 "Grove|Haven|Isle|Key|Knoll|Lake|Lock|Lodge|Mall|Motorway|Mount|Neck|Oval|Overpass|Pine|"
                 "Prairie|Radial|Ranch|Rapids|Rest|Route|Shoal|Skyway|Spring|Stravenue|Stream|Underpass")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Street address: a house number, one to four capitalised words, a street type (optional unit).
    (re.compile(r"\b\d{1,6}\s+(?:[A-Z][A-Za-z'.-]*\s+){1,4}(?:" + _STREET_TYPES +
                r")\b\.?(?:\s+(?:Unit|Suite|Apt|#)\s*\w+)?"), REDACTED),
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), REDACTED),  # SSN
    (re.compile(r"(?<![\w-])(?:\+?1[-. ]?)?\(?\d{3}\)?[-. ]\d{3}[-. ]\d{4}(?![\w-])"), REDACTED),  # phone
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"), REDACTED),  # e-mail
    (re.compile(r"\b(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])\b"), REDACTED),  # ISO date
    (re.compile(r"\b(?:0?[1-9]|1[0-2])/(?:0?[1-9]|[12]\d|3[01])/(?:19|20)?\d{2}\b"), REDACTED),  # US date
    (re.compile(r"\b(?:MRN|SSN|DL|passport)\b[\s:#=]*\S+", re.IGNORECASE), REDACTED),
)


# A string interpolated into a message passes as it is only when it has the shape of a machine
# token: lowercase names (topics, hosts, codes), numbers, resource references, UUIDs, exception
# class names, HTTP methods, URLs without a query. Anything else (a word with capitals, a phrase,
# a serialised resource) may be a name or free text and is replaced.
_SAFE_ARG = re.compile(
    r"[a-z0-9_.:/\-\[\]=,#@+*]{0,200}"  # lowercase machine tokens: topics, hosts, groups, codes, paths
    r"|[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}(?:/_history/[A-Za-z0-9\-.]{1,64})?"  # Type/id
    r"|[A-Za-z_][A-Za-z0-9_]*(?:Error|Exception|Warning|Timeout|Exit|Interrupt)"  # exception class names
    r"|GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS|DEBUG|INFO|WARNING|ERROR|CRITICAL"
    r"|https?://[^\s?#]{1,300}"  # URLs without a query string (queries can carry search parameters)
)


def _safe_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return arg if _SAFE_ARG.fullmatch(arg) else REDACTED
    if isinstance(arg, dict):
        return REDACTED  # a mapping's values were not chosen for the log one by one
    return arg  # numbers, exceptions, library objects: their text is scrubbed with the message


def redact_text(text: str) -> str:
    """``text`` without what looks like PHI (see the module docstring); everything else is kept."""
    text = _KEY_VALUE.sub(lambda m: m.group("k") + REDACTED, text)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def field_allowed(name: str) -> bool:
    return name in ALLOWED_FIELDS or name.endswith(_ALLOWED_SUFFIXES)


def _clean_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean_value(v) for v in list(value)[:100]]
    return REDACTED  # a mapping or an object: its parts were not chosen for the log one by one


def redact_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Allowed field names keep their (scrubbed) values; any other field's value is dropped."""
    return {k: (_clean_value(v) if field_allowed(str(k)) else REDACTED) for k, v in fields.items()}


class PhiFilter(logging.Filter):
    """Rewrites each record so that no likely PHI reaches a log line (message, fields, traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_safe_arg(a) for a in record.args)
        elif isinstance(record.args, dict) and record.args:
            record.args = {k: _safe_arg(v) for k, v in record.args.items()}
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not drop the record
            message = str(record.msg)
        record.msg, record.args = redact_text(message), None
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = redact_fields(fields)
        elif fields is not None:
            record.fields = {"fields": REDACTED}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
            record.exc_info = None  # the formatter prints exc_text; the raw exception would bypass the filter
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


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
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
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
    # On the handler, not a logger: records propagated from every library's loggers pass through it.
    handler.addFilter(PhiFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Client libraries log connection chatter (and sometimes payload sizes) at INFO.
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
