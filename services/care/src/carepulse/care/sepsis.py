"""qSOFA and a sepsis screen: plain functions over one observation set and the context.

qSOFA (Sepsis-3, Seymour et al. JAMA 2016): one point each for respiratory rate
>= 22/min, systolic BP <= 100 mmHg and altered mentation (any ACVPU other than A);
2 or more is positive. The screen follows NICE NG51's logic in simplified form:
sepsis is only suspected where there is a sign of infection, and the risk then
rises with physiology (NEWS2, qSOFA) and lactate. It is decision support, not a
diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from carepulse.care.news2 import Consciousness, News2Score, VitalSigns


class SepsisRisk(StrEnum):
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"


@dataclass(frozen=True)
class QSofa:
    score: int
    criteria: dict[str, bool]
    missing: tuple[str, ...]

    @property
    def positive(self) -> bool:
        return self.score >= 2


@dataclass(frozen=True)
class Labs:
    lactate: float | None = None  # mmol/L
    wbc: float | None = None  # 10^9/L
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class SepsisScreen:
    risk: SepsisRisk
    reasons: list[str] = field(default_factory=list)
    infection: list[str] = field(default_factory=list)


def qsofa(v: VitalSigns) -> QSofa:
    criteria: dict[str, bool] = {}
    if v.respiratory_rate is not None:
        criteria["respiratory_rate>=22"] = v.respiratory_rate >= 22
    if v.systolic_bp is not None:
        criteria["systolic_bp<=100"] = v.systolic_bp <= 100
    if v.consciousness is not None:
        criteria["altered_mentation"] = v.consciousness is not Consciousness.ALERT
    names = ("respiratory_rate>=22", "systolic_bp<=100", "altered_mentation")
    return QSofa(sum(criteria.values()), criteria, tuple(n for n in names if n not in criteria))


def screen(news2: News2Score, q: QSofa, v: VitalSigns, labs: Labs, infection: list[str]) -> SepsisScreen:
    """Sepsis risk from physiology, lactate and the infection signals in the context."""
    if not infection:
        return SepsisScreen(SepsisRisk.LOW, ["no sign of infection in the record"], [])
    reasons = [f"infection: {', '.join(sorted(set(infection)))}"]
    high = []
    if news2.total >= 7:
        high.append(f"NEWS2 {news2.total}")
    if q.positive:
        high.append(f"qSOFA {q.score}")
    if labs.lactate is not None and labs.lactate >= 2.0:
        high.append(f"lactate {labs.lactate:.1f} mmol/L")
    if high:
        return SepsisScreen(SepsisRisk.HIGH, reasons + high, infection)
    moderate = []
    if news2.total >= 5:
        moderate.append(f"NEWS2 {news2.total}")
    if q.score == 1:
        moderate.append("qSOFA 1")
    if v.temperature is not None and (v.temperature > 38.0 or v.temperature < 36.0):
        moderate.append(f"temperature {v.temperature:.1f} °C")
    if labs.wbc is not None and (labs.wbc > 12.0 or labs.wbc < 4.0):
        moderate.append(f"WBC {labs.wbc:g} x10^9/L")
    if len(moderate) >= 2 or (news2.total >= 5 and moderate):
        return SepsisScreen(SepsisRisk.MODERATE, reasons + moderate, infection)
    return SepsisScreen(SepsisRisk.LOW, reasons + (moderate or ["physiology within limits"]), infection)
