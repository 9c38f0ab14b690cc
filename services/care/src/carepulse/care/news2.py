"""NEWS2, the National Early Warning Score 2 (Royal College of Physicians, 2017).

Plain functions, no I/O: the worker feeds in one observation set and publishes what
comes out. Thresholds are the RCP chart's. SpO2 scale 2 is for patients with
hypercapnic respiratory failure and a prescribed target of 88–92 %; everyone else is
scored on scale 1.
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
    """One observation set, in the chart's units (breaths/min, %, mmHg, beats/min, °C).

    A parameter not measured in the set is None; the score then covers the others and
    says which are missing (a lower bound of the full score).
    """

    respiratory_rate: float | None
    spo2: float | None
    on_oxygen: bool
    systolic_bp: float | None
    pulse: float | None
    consciousness: Consciousness | None
    temperature: float | None
    spo2_scale2: bool = False


@dataclass(frozen=True)
class News2Score:
    total: int
    subscores: dict[str, int]
    band: Band
    missing: tuple[str, ...] = ()
    spo2_scale: int = 1

    @property
    def any_parameter_3(self) -> bool:
        return any(v == 3 for v in self.subscores.values())

    @property
    def complete(self) -> bool:
        return not self.missing


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


def score_spo2_scale2(spo2: float, on_oxygen: bool) -> int:
    """Scale 2: 88–92 % scores 0; above 92 % scores only on supplemental oxygen."""
    if spo2 <= 83:
        return 3
    if spo2 <= 85:
        return 2
    if spo2 <= 87:
        return 1
    if spo2 <= 92 or not on_oxygen:
        return 0
    if spo2 <= 94:
        return 1
    if spo2 <= 96:
        return 2
    return 3


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
    """Aggregate NEWS2 of one observation set (partial if parameters are missing)."""
    scorers = {
        "respiratory_rate": (v.respiratory_rate, score_respiratory_rate),
        "spo2": (v.spo2, (lambda x: score_spo2_scale2(x, v.on_oxygen)) if v.spo2_scale2 else score_spo2_scale1),
        "air_or_oxygen": (v.on_oxygen, score_air_or_oxygen),
        "systolic_bp": (v.systolic_bp, score_systolic_bp),
        "pulse": (v.pulse, score_pulse),
        "consciousness": (v.consciousness, score_consciousness),
        "temperature": (v.temperature, score_temperature),
    }
    subs = {p: fn(value) for p, (value, fn) in scorers.items() if value is not None}  # type: ignore[operator]
    missing = tuple(p for p, (value, _) in scorers.items() if value is None)
    total = sum(subs.values())
    return News2Score(total=total, subscores=subs, band=band_for(total, any(s == 3 for s in subs.values())),
                      missing=missing, spo2_scale=2 if v.spo2_scale2 else 1)
