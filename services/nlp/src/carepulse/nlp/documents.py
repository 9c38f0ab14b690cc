"""Note text out of FHIR: DocumentReference attachments and DiagnosticReport forms/conclusions."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from carepulse.nlp.text import html_to_text

TEXT_TYPES = ("text/plain", "text/html", "application/xhtml+xml")
ENVELOPE_BYTES = 16 * 1024


class UnreadableDocument(ValueError):
    """The record carries no note text that can ever be processed (dead-letter it)."""


@dataclass(frozen=True, slots=True)
class Note:
    resource_type: str
    resource_id: str
    patient_ref: str
    encounter_ref: str | None
    text: str

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


def _attachment_text(att: dict[str, Any], max_bytes: int) -> str:
    ctype = (att.get("contentType") or "").split(";")[0].strip().lower()
    if ctype not in TEXT_TYPES:
        raise UnreadableDocument(f"attachment content type {ctype or '(none)'} is not a text note")
    if "data" not in att:
        raise UnreadableDocument("attachment has no inline data (fetching by url is not supported)")
    try:
        raw = base64.b64decode(att["data"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise UnreadableDocument("attachment data is not valid base64") from None
    if len(raw) > max_bytes:
        raise UnreadableDocument(f"note is {len(raw)} bytes, more than the {max_bytes} allowed "
                                 "(CAREPULSE_NLP_MAX_NOTE_BYTES)")
    if b"\x00" in raw:
        raise UnreadableDocument("attachment data is binary, not text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableDocument("attachment data is not UTF-8 text") from None
    return html_to_text(text) if ctype != "text/plain" else text


def _ref(value: Any) -> str | None:
    return value.get("reference") if isinstance(value, dict) else None


def record_limit(max_note_bytes: int) -> int:
    """Largest record read for a note of at most ``max_note_bytes``, checked before decoding anything: base64
    is 4/3 of the text, HTML markup around it is stripped, and the resource around it needs a little room."""
    return 2 * max_note_bytes + ENVELOPE_BYTES


def read_note(value: bytes, key: bytes | None, max_bytes: int) -> Note | None:
    """The note of one ``fhir.document`` record; None for resources that carry no note."""
    if len(value) > record_limit(max_bytes):
        raise UnreadableDocument(f"record is {len(value)} bytes, more than the {record_limit(max_bytes)} allowed "
                                 f"for a note of at most {max_bytes} (CAREPULSE_NLP_MAX_NOTE_BYTES)")
    try:
        res = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UnreadableDocument("record is not JSON") from None
    except RecursionError:
        # A RecursionError is not a ValueError: uncaught it would stop the worker instead of dead-lettering.
        raise UnreadableDocument("record nests JSON deeper than the decoder allows") from None
    if not isinstance(res, dict):
        raise UnreadableDocument("record is not a JSON object")
    rtype = res.get("resourceType")
    parts: list[str] = []
    if rtype == "DocumentReference":
        texts = [c.get("attachment") or {} for c in res.get("content") or []]
        if not texts:
            raise UnreadableDocument("DocumentReference has no content")
        parts = [_attachment_text(a, max_bytes) for a in texts]
        encounter = next((_ref(e) for e in (res.get("context") or {}).get("encounter") or []), None)
    elif rtype == "DiagnosticReport":
        parts = [_attachment_text(a, max_bytes) for a in res.get("presentedForm") or []]
        if res.get("conclusion"):
            parts.append(str(res["conclusion"]))
        encounter = _ref(res.get("encounter"))
    else:
        return None
    text = "\n\n".join(p for p in parts if p.strip())
    if not text.strip():
        raise UnreadableDocument(f"{rtype} carries no note text")
    if len(text.encode()) > max_bytes:
        raise UnreadableDocument(f"note is {len(text.encode())} bytes, more than the {max_bytes} allowed "
                                 "(CAREPULSE_NLP_MAX_NOTE_BYTES)")
    patient = _ref(res.get("subject")) or (key.decode(errors="replace") if key else "")
    if not patient.startswith("Patient/"):
        raise UnreadableDocument(f"{rtype} names no Patient subject")
    if not res.get("id"):
        raise UnreadableDocument(f"{rtype} has no id")
    return Note(rtype, str(res["id"]), patient, encounter, text)
