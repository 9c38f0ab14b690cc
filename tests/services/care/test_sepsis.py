"""qSOFA (Sepsis-3) and the sepsis screen's rules."""

from __future__ import annotations

import pytest

from carepulse.care.news2 import Consciousness, VitalSigns, score_news2
from carepulse.care.sepsis import Labs, SepsisRisk, qsofa, screen


def vitals(**kw: object) -> VitalSigns:
    base = dict(respiratory_rate=16, spo2=97, on_oxygen=False, systolic_bp=120, pulse=70,
                consciousness=Consciousness.ALERT, temperature=37.0)
    base.update(kw)
    return VitalSigns(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "expected"), [
    ({}, 0),
    ({"respiratory_rate": 22}, 1),
    ({"respiratory_rate": 21, "systolic_bp": 101}, 0),
    ({"systolic_bp": 100, "consciousness": Consciousness.CONFUSION}, 2),
    ({"respiratory_rate": 30, "systolic_bp": 80, "consciousness": Consciousness.PAIN}, 3),
])
def test_qsofa_criteria(kw: dict, expected: int) -> None:
    assert qsofa(vitals(**kw)).score == expected


def test_qsofa_reports_what_was_not_measured() -> None:
    assert qsofa(vitals(consciousness=None)).missing == ("altered_mentation",)


def run(v: VitalSigns, labs: Labs | None = None, infection: list[str] | None = None) -> SepsisRisk:
    return screen(score_news2(v), qsofa(v), v, labs or Labs(), infection or []).risk


def test_no_infection_no_sepsis_whatever_the_physiology() -> None:
    assert run(vitals(respiratory_rate=30, systolic_bp=85)) is SepsisRisk.LOW


def test_infection_with_positive_qsofa_is_high() -> None:
    assert run(vitals(respiratory_rate=24, systolic_bp=95), infection=["pneumonia"]) is SepsisRisk.HIGH


def test_infection_with_raised_lactate_is_high() -> None:
    assert run(vitals(), Labs(lactate=2.4), ["urinary tract infection"]) is SepsisRisk.HIGH


def test_infection_with_fever_and_leucocytosis_is_moderate() -> None:
    assert run(vitals(temperature=38.6), Labs(wbc=15.2), ["cellulitis"]) is SepsisRisk.MODERATE


def test_infection_with_normal_physiology_is_low() -> None:
    assert run(vitals(), Labs(lactate=1.1, wbc=8), ["pneumonia"]) is SepsisRisk.LOW
