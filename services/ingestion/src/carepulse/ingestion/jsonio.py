"""Fast JSON in and out (orjson), with the error semantics FHIR senders need.

Decoding is on the hot path of every request, so it uses orjson; what orjson refuses
(a byte-order mark, nesting deeper than it allows) becomes a 400-class
:class:`FhirValidationError`, never a crash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

from carepulse.shared.fhir.codec import FhirValidationError, Issue

_BOM = b"\xef\xbb\xbf"


def loads(raw: bytes) -> Any:
    """Decode one JSON document; a leading UTF-8 byte-order mark is accepted (real senders add it)."""
    if raw.startswith(_BOM):
        raw = raw[3:]
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        msg = str(e)
    if "depth" in msg or "recursion" in msg.lower():
        raise FhirValidationError([Issue("too-costly", "JSON nesting is deeper than accepted")])
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FhirValidationError([Issue("invalid", f"body is not UTF-8: {e.reason}")]) from None
    raise FhirValidationError([Issue("structure", f"body is not JSON: {msg}")])


def dumps(doc: Any) -> bytes:
    try:
        return orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):
        # orjson stops at 255 levels; the stdlib goes deeper (validated FHIR rarely needs it).
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def content_digest(doc: Any) -> str:
    """Hash of the content independent of formatting and key order: the same resource sent
    pretty-printed, compact or inside a Bundle has one digest."""
    try:
        canonical = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        canonical = json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()
