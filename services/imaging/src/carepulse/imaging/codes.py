"""Code systems and codes the imaging service writes (care reads the finding by these)."""

from __future__ import annotations

from typing import Any

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
UCUM = "http://unitsofmeasure.org"
DICOM_UID = "urn:dicom:uid"
# CarePulse's own codes where no standard code says "AI-estimated probability of …".
CAREPULSE_IMAGING_CS = "https://carepulse.dev/fhir/CodeSystem/imaging-finding"

# DiagnosticReport.code: an imaging report (LOINC "Diagnostic imaging study").
REPORT_CODE: dict[str, Any] = {"coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}],
                               "text": "Chest X-ray: AI pneumonia screen"}
REPORT_CATEGORY: list[dict[str, Any]] = [
    {"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]},
    {"coding": [{"system": LOINC, "code": "LP29684-5", "display": "Radiology"}]},
]
# Observation.code of the probability; care's sepsis screen selects on this system + code.
PNEUMONIA_PROBABILITY: dict[str, Any] = {
    "coding": [{"system": CAREPULSE_IMAGING_CS, "code": "pneumonia-probability",
                "display": "Probability of pneumonia on chest X-ray (AI estimate)"}],
    "text": "Pneumonia probability (AI, chest X-ray)",
}
OBS_IMAGING_CATEGORY: list[dict[str, Any]] = [{"coding": [{"system": OBS_CATEGORY, "code": "imaging",
                                                           "display": "Imaging"}]}]
CHEST = {"coding": [{"system": SNOMED, "code": "51185008", "display": "Thoracic structure"}]}

PNEUMONIA = {"system": SNOMED, "code": "233604007", "display": "Pneumonia"}
NOT_DETECTED = {"system": CAREPULSE_IMAGING_CS, "code": "pneumonia-not-detected",
                "display": "No radiographic sign of pneumonia detected by the model"}
POSITIVE = {"system": INTERPRETATION, "code": "POS", "display": "Positive"}
NEGATIVE = {"system": INTERPRETATION, "code": "NEG", "display": "Negative"}
