"""Reading note text out of fhir.document records, and what is dead-lettered."""

from __future__ import annotations

import base64
import json

import pytest

from carepulse.nlp.documents import UnreadableDocument, read_note


def docref(data: bytes | None, content_type: str = "text/plain", **extra: object) -> bytes:
    att: dict[str, object] = {"contentType": content_type}
    if data is not None:
        att["data"] = base64.b64encode(data).decode()
    res = {"resourceType": "DocumentReference", "id": "d1", "status": "current",
           "subject": {"reference": "Patient/p1"}, "content": [{"attachment": att}],
           "context": {"encounter": [{"reference": "Encounter/e1"}]}, **extra}
    return json.dumps(res).encode()


def test_plain_text_document_reference() -> None:
    note = read_note(docref(b"No fever.\n"), None, 10_000)
    assert note is not None
    assert (note.reference, note.patient_ref, note.encounter_ref, note.text) == (
        "DocumentReference/d1", "Patient/p1", "Encounter/e1", "No fever.\n")


def test_html_is_stripped_and_bom_dropped() -> None:
    note = read_note(docref("\ufeff<p>Possible <b>UTI</b>.</p>".encode(), "text/html; charset=utf-8"), None, 10_000)
    assert note is not None and note.text == "Possible UTI."


def test_diagnostic_report_form_and_conclusion() -> None:
    res = {"resourceType": "DiagnosticReport", "id": "r1", "status": "final", "code": {"text": "CXR"},
           "subject": {"reference": "Patient/p2"},
           "presentedForm": [{"contentType": "text/plain", "data": base64.b64encode(b"Lungs clear.").decode()}],
           "conclusion": "No pneumonia."}
    note = read_note(json.dumps(res).encode(), None, 10_000)
    assert note is not None and note.text == "Lungs clear.\n\nNo pneumonia." and note.encounter_ref is None


@pytest.mark.parametrize(("value", "reason"), [
    (docref(b"   \n"), "no note text"),
    (docref(b"\x89PNG\r\n\x1a\n\x00\x00"), "binary"),
    (docref(b"\xff\xfe\xfa"), "not UTF-8"),
    (docref(b"x" * 2000), "more than|too large"),
    (docref(b"x" * 1100), "more than"),
    (docref(None), "no inline data"),
    (docref(b"%PDF-1.4", "application/pdf"), "not a text note"),
    (b"{not json", "not JSON"),
    (docref(b"No fever.", subject={"reference": "Group/g1"}), "no Patient"),
])
def test_unreadable_notes_are_rejected(value: bytes, reason: str) -> None:
    with pytest.raises(UnreadableDocument, match=reason):
        read_note(value, None, 1000)


def test_other_resources_are_ignored() -> None:
    assert read_note(b'{"resourceType": "Binary", "id": "b"}', None, 1000) is None
