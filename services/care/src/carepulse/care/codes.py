"""Codes the care service reads and writes, kept as data in one place.

Inputs follow US Core vital signs (LOINC) and the NHS NEWS2 profile (SNOMED CT).
"""

from __future__ import annotations

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"

# Observation.code (system, code) -> NEWS2 parameter measured by it.
VITAL_CODES: dict[tuple[str, str], str] = {
    (LOINC, "9279-1"): "respiratory_rate",
    (LOINC, "8867-4"): "pulse",
    (LOINC, "59408-5"): "spo2",  # oxygen saturation by pulse oximetry
    (LOINC, "2708-6"): "spo2",  # oxygen saturation in arterial blood (US Core pulse-ox also carries it)
    (LOINC, "8480-6"): "systolic_bp",
    (LOINC, "8310-5"): "temperature",
    (LOINC, "8331-1"): "temperature",  # oral
    (LOINC, "8332-9"): "temperature",  # rectal
    (LOINC, "8333-7"): "temperature",  # tympanic
    (LOINC, "67775-7"): "consciousness",  # level of responsiveness
    (SNOMED, "1104441000000107"): "consciousness",  # ACVPU (NHS NEWS2 profile)
    (LOINC, "3151-8"): "air_or_oxygen",  # inhaled oxygen flow rate
    (LOINC, "3150-0"): "air_or_oxygen",  # inhaled oxygen concentration
}

# Panels whose components carry the values (blood pressure, US Core pulse oximetry).
PANEL_COMPONENTS: dict[tuple[str, str], str] = {
    (LOINC, "8480-6"): "systolic_bp",
    (LOINC, "3151-8"): "air_or_oxygen",
    (LOINC, "3150-0"): "air_or_oxygen",
}

# ACVPU answers, by SNOMED CT code and by the letters/words EHRs send as text.
ACVPU_SNOMED = {
    "248234008": "A",  # mentally alert
    "1104441000000107": "C",
    "130987000": "C",  # acute confusion
    "300202002": "V",  # responds to voice
    "450847001": "P",  # responds to pain
    "422768004": "U",  # unresponsive
}
ACVPU_WORDS = {
    "a": "A", "alert": "A", "mentally alert": "A",
    "c": "C", "confusion": "C", "new confusion": "C", "confused": "C",
    "v": "V", "voice": "V", "verbal": "V", "responds to voice": "V",
    "p": "P", "pain": "P", "responds to pain": "P",
    "u": "U", "unresponsive": "U",
}

# What CarePulse writes.
NEWS2_TOTAL = {"system": SNOMED, "code": "1104051000000101",
               "display": "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score"}
CAREPULSE_CS = "https://carepulse.dev/fhir/CodeSystem"
NEWS2_PARAMETER_CS = f"{CAREPULSE_CS}/news2-parameter"
NEWS2_BAND_CS = f"{CAREPULSE_CS}/news2-band"
EVENT_CS = f"{CAREPULSE_CS}/event"
PARAMETER_DISPLAY = {
    "respiratory_rate": "Respiration rate",
    "spo2": "SpO2 (scale 1)",
    "air_or_oxygen": "Air or oxygen",
    "systolic_bp": "Systolic blood pressure",
    "pulse": "Pulse",
    "consciousness": "Consciousness (ACVPU)",
    "temperature": "Temperature",
}

# Key labs for sepsis screening: LOINC code -> (lab, canonical unit).
LAB_CODES: dict[tuple[str, str], str] = {
    (LOINC, "2524-7"): "lactate",  # lactate [moles/volume] in serum or plasma
    (LOINC, "32693-4"): "lactate",  # lactate in blood
    (LOINC, "2519-7"): "lactate",  # lactate [mass/volume] in blood (converted)
    (LOINC, "6690-2"): "wbc",  # leukocytes in blood by automated count
    (LOINC, "26464-8"): "wbc",  # leukocytes in blood
    (LOINC, "2160-0"): "creatinine",  # creatinine in serum or plasma
    (LOINC, "38483-4"): "creatinine",  # creatinine in blood
}

# Hypercapnic respiratory failure: the NEWS2 chart's indication for SpO2 scale 2.
HYPERCAPNIC_ICD10 = ("J96.02", "J96.12", "J96.22", "J96.92", "E66.2")
HYPERCAPNIC_SNOMED = {"65710008"}  # acute respiratory failure with hypercapnia
# An explicit per-patient flag (on Patient or Condition) that a clinician prescribed scale 2.
SPO2_SCALE2_EXTENSION = "https://carepulse.dev/fhir/StructureDefinition/news2-spo2-scale-2"

# Infection: conditions and findings that are an infection signal for the sepsis screen.
# Sepsis itself (A40/A41, SNOMED 91302008) is what the screen looks for, not a source of
# infection: a "rule out sepsis" in a note must not feed its own screen.
INFECTION_ICD10_PREFIXES = ("J12", "J13", "J14", "J15", "J16", "J17", "J18", "J20", "J21", "J22",
                            "N39.0", "N10", "N30.0", "L03", "K65", "K81.0", "A09", "U07.1", "B34", "J69")
INFECTION_SNOMED = {
    "233604007": "pneumonia", "385093006": "community acquired pneumonia", "68566005": "urinary tract infection",
    "128045006": "cellulitis", "840539006": "COVID-19", "45816000": "pyelonephritis",
    "10509002": "acute bronchitis", "444814009": "viral sinusitis", "195662009": "acute viral pharyngitis",
    "43878008": "streptococcal sore throat", "75498004": "acute bacterial sinusitis",
    "36971009": "sinusitis", "38822007": "cystitis",
}
POSITIVE_INTERPRETATIONS = {"POS", "A", "AA", "H", "HH", "DET", "abnormal"}
