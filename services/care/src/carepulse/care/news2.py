"""NEWS2, the National Early Warning Score 2 (Royal College of Physicians, 2017).

Plain functions, no I/O: the worker feeds in one observation set and publishes what
comes out. Thresholds are the RCP chart's; SpO2 uses scale 1 (scale 2, for
hypercapnic respiratory failure, comes with the complete care service).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Consciousness(StrEnum):
    """ACVPU: Alert, new Confusion, responds to Voice, to Pain, Unresponsive."""

    ALERT = "A"
    CONFUSION = "C"
    VOICE = "V"
    PAIN = "P"
    UNRESPONSIVE = "U"


class Band(StrEnum):
    """Clinical risk bands of the aggregate score (RCP NEWS2 chart 2)."""

    LOW = "low"
    LOW_MEDIUM = "low-medium"  # aggregate 0-4 but one parameter scores 3
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _BAND_RANK[self]


_BAND_RANK = {Band.LOW: 0, Band.LOW_MEDIUM: 1, Band.MEDIUM: 2, Band.HIGH: 3}

PARAMETERS = ("respiratory_rate", "spo2", "air_or_oxygen", "systolic_bp", "pulse", "consciousness", "temperature")


@dataclass(frozen=True)
class VitalSigns:
    """One observation set, in the chart's units (breaths/min, %, mmHg, beats/min, °C)."""

    respiratory_rate: float
    spo2: float
    on_oxygen: bool
    systolic_bp: float
    pulse: float
    consciousness: Consciousness
    temperature: float


@dataclass(frozen=True)
class News2Score:
    total: int
    subscores: dict[str, int]
    band: Band

    @property
    def any_parameter_3(self) -> bool:
        return any(v == 3 for v in self.subscores.values())


def score_respiratory_rate(rr: float) -> int:
    if rr <= 8:
        return 3
    if rr <= 11:
        return 1
    if rr <= 20:
        return 0
    if rr <= 24:
        return 2
    return 3


def score_spo2_scale1(spo2: float) -> int:
    if spo2 <= 91:
        return 3
    if spo2 <= 93:
        return 2
    if spo2 <= 95:
        return 1
    return 0


def score_air_or_oxygen(on_oxygen: bool) -> int:
    return 2 if on_oxygen else 0


def score_systolic_bp(sbp: float) -> int:
    if sbp <= 90:
        return 3
    if sbp <= 100:
        return 2
    if sbp <= 110:
        return 1
    if sbp <= 219:
        return 0
    return 3


def score_pulse(pulse: float) -> int:
    if pulse <= 40:
        return 3
    if pulse <= 50:
        return 1
    if pulse <= 90:
        return 0
    if pulse <= 110:
        return 1
    if pulse <= 130:
        return 2
    return 3


def score_consciousness(level: Consciousness) -> int:
    return 0 if level is Consciousness.ALERT else 3


def score_temperature(temp_c: float) -> int:
    # The chart's bands are written to one decimal (35.0, 35.1–36.0, …); compare on
    # that resolution so 36.04 °C reads as 36.0 like a thermometer would show it.
    t = round(temp_c, 1)
    if t <= 35.0:
        return 3
    if t <= 36.0:
        return 1
    if t <= 38.0:
        return 0
    if t <= 39.0:
        return 1
    return 2


def band_for(total: int, any_parameter_3: bool) -> Band:
    if total >= 7:
        return Band.HIGH
    if total >= 5:
        return Band.MEDIUM
    if any_parameter_3:
        return Band.LOW_MEDIUM
    return Band.LOW


def score_news2(v: VitalSigns) -> News2Score:
    """Aggregate NEWS2 of one complete observation set."""
    subs = {
        "respiratory_rate": score_respiratory_rate(v.respiratory_rate),
        "spo2": score_spo2_scale1(v.spo2),
        "air_or_oxygen": score_air_or_oxygen(v.on_oxygen),
        "systolic_bp": score_systolic_bp(v.systolic_bp),
        "pulse": score_pulse(v.pulse),
        "consciousness": score_consciousness(v.consciousness),
        "temperature": score_temperature(v.temperature),
    }
    total = sum(subs.values())
    return News2Score(total=total, subscores=subs, band=band_for(total, any(s == 3 for s in subs.values())))
