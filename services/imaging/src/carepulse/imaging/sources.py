"""What a ``fhir.imaging`` record asks for: inline DICOM, or instances to fetch over DICOMweb.

Accepted inputs (R4):
- DocumentReference (``content[].attachment``), Media (``content``) and Binary (``contentType`` +
  ``data``) carrying ``application/dicom`` as inline base64 data;
- ImagingStudy whose ``endpoint`` (or a series' ``endpoint``) is a contained Endpoint with a
  DICOMweb base address; listed series/instances are fetched with WADO-RS, or the whole study
  when none are listed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carepulse.imaging.resources import Source
from carepulse.shared.fhir.references import patient_key, resolve_reference

DICOM_MEDIA_TYPE = "application/dicom"
DICOM_UID_SYSTEM = "urn:dicom:uid"
# Series of these modalities hold no pixels we could classify; skip them without fetching.
_SKIP_MODALITIES = {"SR", "KO", "PR", "SEG", "RTSTRUCT", "RTPLAN", "DOC"}


class UnsupportedInput(ValueError):
    """A fhir.imaging record this service cannot act on (reason in the message)."""


class InputTooLarge(UnsupportedInput):
    """A record, a DICOM object or a DICOMweb answer over one of the :class:`InputLimits`."""


@dataclass(frozen=True)
class InputLimits:
    """Size limits of one fhir.imaging record and of the DICOM it brings (``CAREPULSE_IMAGING_MAX_*``).

    Bytes are checked before anything is decoded; frames and rows x columns from the DICOM header
    before any pixel is (a few kilobytes of JPEG can claim a 60000 x 60000 image).
    """

    # Inline DICOM travels base64 in the record; 12 MiB leaves room under Kafka's usual 16 MiB
    # message limit for the dead letter's headers. Larger images come as an ImagingStudy (WADO-RS).
    max_record_bytes: int = 12 * 1024 * 1024
    max_instance_bytes: int = 64 * 1024 * 1024  # one DICOM object (a large radiograph is 20-50 MB)
    max_frames: int = 1000
    max_pixels: int = 25_000_000  # rows x columns of one frame (5000 x 5000)
    max_fetch_bytes: int = 256 * 1024 * 1024  # everything fetched over DICOMweb for one record


@dataclass(frozen=True)
class WadoSeries:
    uid: str
    instances: tuple[str, ...] = ()  # empty: every instance of the series


@dataclass(frozen=True)
class WadoRequest:
    base_url: str
    study_uid: str
    series: tuple[WadoSeries, ...] = ()  # empty: the whole study


@dataclass(frozen=True)
class ImagingInput:
    source: Source
    inline: tuple[bytes, ...] = ()
    wado: WadoRequest | None = None
    notes: tuple[str, ...] = field(default=())


def _decode_attachment(att: Mapping[str, Any], where: str) -> bytes:
    data = att.get("data")
    if not isinstance(data, str) or not data:
        raise UnsupportedInput(f"{where}: application/dicom attachment has no inline data (url-only is not supported)")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise UnsupportedInput(f"{where}: attachment data is not valid base64") from None


def _is_dicom(content_type: object) -> bool:
    return isinstance(content_type, str) and content_type.split(";", 1)[0].strip().lower() == DICOM_MEDIA_TYPE


def _uid_from_identifiers(identifiers: object) -> str:
    for ident in identifiers if isinstance(identifiers, list) else []:
        if isinstance(ident, dict) and ident.get("system") == DICOM_UID_SYSTEM:
            value = str(ident.get("value", ""))
            return value.removeprefix("urn:oid:")
    return ""


def _patient(resource: Mapping[str, Any], key: bytes | None) -> str:
    ref = patient_key(resource)
    if ref is None and resource.get("resourceType") == "Binary":
        ctx = resource.get("securityContext")
        if isinstance(ctx, dict) and isinstance(ctx.get("reference"), str):
            candidate = resolve_reference(ctx["reference"])
            ref = candidate if candidate.startswith("Patient/") else None
    if ref is None and key:
        candidate = key.decode(errors="replace")
        ref = candidate if candidate.startswith("Patient/") else None
    if not ref:
        raise UnsupportedInput("the record names no Patient (subject, securityContext or key)")
    return ref


def _endpoint_address(study: Mapping[str, Any], refs: object) -> str | None:
    contained = {f"#{c.get('id')}": c for c in study.get("contained", []) if isinstance(c, dict)}
    for ref in refs if isinstance(refs, list) else []:
        target = ref.get("reference") if isinstance(ref, dict) else None
        ep = contained.get(target or "")
        if ep and ep.get("resourceType") == "Endpoint" and isinstance(ep.get("address"), str):
            if str(ep.get("status", "active")) not in ("active", "test"):
                continue
            return ep["address"].rstrip("/")
    return None


def _imaging_study(study: Mapping[str, Any], src: Source) -> ImagingInput:
    if not src.study_instance_uid:
        raise UnsupportedInput("ImagingStudy has no identifier with system urn:dicom:uid (Study Instance UID)")
    base = _endpoint_address(study, study.get("endpoint"))
    series: list[WadoSeries] = []
    notes: list[str] = []
    for s in study.get("series", []) if isinstance(study.get("series"), list) else []:
        if not isinstance(s, dict) or not s.get("uid"):
            continue
        modality = str((s.get("modality") or {}).get("code", "")).upper()
        if modality in _SKIP_MODALITIES:
            notes.append(f"series {s['uid']} ({modality}) holds no image")
            continue
        base = base or _endpoint_address(study, s.get("endpoint"))
        instances = tuple(str(i["uid"]) for i in s.get("instance", []) if isinstance(i, dict) and i.get("uid"))
        series.append(WadoSeries(str(s["uid"]), instances))
    if base is None:
        raise UnsupportedInput("ImagingStudy has no contained, active DICOMweb Endpoint to fetch its images from")
    if not series and study.get("series"):
        raise UnsupportedInput("ImagingStudy lists no image series")
    return ImagingInput(src, wado=WadoRequest(base, src.study_instance_uid, tuple(series)), notes=tuple(notes))


def parse_input(resource: Mapping[str, Any], key: bytes | None) -> ImagingInput:
    """What to classify for one record; raises :class:`UnsupportedInput` when there is nothing."""
    rtype = resource.get("resourceType")
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid:
        raise UnsupportedInput(f"{rtype} has no id")
    reference = f"{rtype}/{rid}"
    based_on = tuple(b for b in resource.get("basedOn", []) if isinstance(b, dict) and b.get("reference"))
    if rtype == "ImagingStudy":
        src = Source(reference, _patient(resource, key), _uid_from_identifiers(resource.get("identifier")),
                     resource.get("started"), based_on)
        return _imaging_study(resource, src)
    if rtype == "DocumentReference":
        attachments = [c.get("attachment") for c in resource.get("content", []) if isinstance(c, dict)]
        effective = resource.get("date")
    elif rtype == "Media":
        attachments = [resource.get("content")]
        effective = resource.get("createdDateTime")
    elif rtype == "Binary":
        attachments = [resource]
        effective = None
    else:
        raise UnsupportedInput(f"resource type {rtype} carries no image")
    dicom = [a for a in attachments if isinstance(a, dict) and _is_dicom(a.get("contentType"))]
    if not dicom:
        raise UnsupportedInput(f"{reference} carries no application/dicom content")
    inline = tuple(_decode_attachment(a, f"{reference} attachment {i}") for i, a in enumerate(dicom))
    src = Source(reference, _patient(resource, key), "", effective if isinstance(effective, str) else None,
                 based_on)
    return ImagingInput(src, inline=inline)
