"""FHIR resources the imaging service publishes on ``fhir.derived``.

Per input (one DICOM attachment, or one ImagingStudy): an Observation per classified image with
P(pneumonia) and an interpretation, one DiagnosticReport (status ``preliminary``) whose
conclusion is the highest probability, and a Provenance whose agent is the model (a contained
Device naming model and version). Ids come from the input and the model version, so a replay
publishes the same ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from carepulse.imaging import codes


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    threshold: float


@dataclass(frozen=True)
class Finding:
    """One classified image."""

    observation_id: str
    probability: float
    sop_instance_uid: str
    series_instance_uid: str
    steps: tuple[str, ...]

    def positive(self, threshold: float) -> bool:
        return self.probability >= threshold


@dataclass(frozen=True)
class Source:
    """The input record: what the finding links back to."""

    reference: str  # e.g. ImagingStudy/abc, DocumentReference/x, Media/y, Binary/z
    patient_ref: str
    study_instance_uid: str
    effective: str | None  # study date/time when known
    based_on: tuple[dict[str, Any], ...] = ()  # the order (ServiceRequest) if the input names one

    @property
    def resource_type(self) -> str:
        return self.reference.split("/", 1)[0]


def _links(src: Source) -> dict[str, Any]:
    """Where each element may point (R4): derivedFrom takes ImagingStudy/Media/DocumentReference."""
    out: dict[str, Any] = {}
    if src.resource_type in ("ImagingStudy", "Media", "DocumentReference"):
        out["derivedFrom"] = [{"reference": src.reference}]
    if src.resource_type == "ImagingStudy":
        out["partOf"] = [{"reference": src.reference}]
    if src.based_on:
        out["basedOn"] = list(src.based_on)
    return out


def _instance_identifier(uid: str) -> list[dict[str, Any]]:
    return [{"system": codes.DICOM_UID, "value": f"urn:oid:{uid}"}] if uid else []


def observation(f: Finding, src: Source, model: ModelRef, issued: float) -> dict[str, Any]:
    positive = f.positive(model.threshold)
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f.observation_id,
        "status": "preliminary",
        "category": codes.OBS_IMAGING_CATEGORY,
        "code": codes.PNEUMONIA_PROBABILITY,
        "subject": {"reference": src.patient_ref},
        "effectiveDateTime": src.effective or iso(issued),
        "issued": iso(issued),
        "valueQuantity": {"value": round(f.probability, 6), "unit": "probability", "system": codes.UCUM,
                          "code": "1"},
        "interpretation": [{"coding": [codes.POSITIVE if positive else codes.NEGATIVE],
                            "text": f"{'positive' if positive else 'negative'} at threshold {model.threshold:g}"}],
        "bodySite": codes.CHEST,
        "method": {"text": f"{model.name} v{model.version} (CNN on 28x28 pre-processed image): "
                           + " -> ".join(f.steps)},
        "device": {"display": f"{model.name} version {model.version}"},
        **_links(src),
    }
    ident = _instance_identifier(f.sop_instance_uid)
    if ident:
        obs["identifier"] = [{**ident[0], "use": "secondary"}]  # the image this value is about
    return obs


def conclusion_text(top: Finding, n_images: int, model: ModelRef) -> str:
    p = top.probability
    of = f" (highest of {n_images} images)" if n_images > 1 else ""
    if top.positive(model.threshold):
        return (f"Findings suggestive of pneumonia: model probability {p:.2f}{of}, at or above the "
                f"{model.threshold:.2f} threshold. Preliminary machine result: needs review by a clinician.")
    return (f"No radiographic sign of pneumonia detected: model probability {p:.2f}{of}, below the "
            f"{model.threshold:.2f} threshold. Preliminary machine result: does not rule out pneumonia.")


def diagnostic_report(report_id: str, findings: Sequence[Finding], src: Source, model: ModelRef, issued: float,
                      notes: Sequence[str] = ()) -> dict[str, Any]:
    top = max(findings, key=lambda f: f.probability)
    report: dict[str, Any] = {
        "resourceType": "DiagnosticReport",
        "id": report_id,
        "status": "preliminary",
        "category": codes.REPORT_CATEGORY,
        "code": codes.REPORT_CODE,
        "subject": {"reference": src.patient_ref},
        "effectiveDateTime": src.effective or iso(issued),
        "issued": iso(issued),
        "result": [{"reference": f"Observation/{f.observation_id}"} for f in findings],
        "conclusion": conclusion_text(top, len(findings), model)
        + ("" if not notes else " Not assessed: " + "; ".join(notes) + "."),
        "conclusionCode": [{"coding": [codes.PNEUMONIA if top.positive(model.threshold) else codes.NOT_DETECTED]}],
    }
    if src.based_on:
        report["basedOn"] = list(src.based_on)
    if src.resource_type == "ImagingStudy":
        report["imagingStudy"] = [{"reference": src.reference}]
    elif src.resource_type == "Media":
        report["media"] = [{"link": {"reference": src.reference}}]
    if src.study_instance_uid:
        report["identifier"] = [{"system": codes.DICOM_UID, "value": f"urn:oid:{src.study_instance_uid}",
                                 "use": "secondary"}]
    return report


def provenance(targets: Sequence[dict[str, Any]], src: Source, model: ModelRef, source_name: str,
               recorded: float) -> dict[str, Any]:
    """Which model made these resources from which input; the model is a contained Device."""
    first = targets[0]
    return {
        "resourceType": "Provenance",
        "id": str(uuid.uuid5(uuid.UUID(first["id"]), "provenance")),
        "contained": [{
            "resourceType": "Device",
            "id": "model",
            "deviceName": [{"name": model.name, "type": "model-name"}],
            "version": [{"value": model.version}],
            "type": {"text": "AI model (ONNX), served by carepulse-inference"},
            "note": [{"text": f"Decision threshold {model.threshold:g}; see models/{model.name}/MODEL_CARD.md"}],
        }],
        "target": [{"reference": f"{t['resourceType']}/{t['id']}"} for t in targets],
        "recorded": iso(recorded),
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                 "code": "DERIVE", "display": "derive"}]},
        "agent": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                  "code": "performer", "display": "Performer"}]},
             "who": {"reference": "#model", "display": f"{model.name} version {model.version}"}},
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                  "code": "assembler", "display": "Assembler"}]},
             "who": {"display": f"{source_name} imaging service"}},
        ],
        "entity": [{"role": "source", "what": {"reference": src.reference}}],
    }
