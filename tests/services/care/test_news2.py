"""NEWS2 against the RCP 2017 chart: every band edge of every parameter, and the bands."""

from __future__ import annotations

import pytest

from carepulse.care.news2 import (
    Band,
    Consciousness,
    VitalSigns,
    band_for,
    score_news2,
    score_pulse,
    score_respiratory_rate,
    score_spo2_scale1,
    score_systolic_bp,
    score_temperature,
)

# (value, expected sub-score) at both sides of every boundary on the RCP chart.
RR = [(5, 3), (8, 3), (9, 1), (11, 1), (12, 0), (20, 0), (21, 2), (24, 2), (25, 3), (40, 3)]
SPO2 = [(85, 3), (91, 3), (92, 2), (93, 2), (94, 1), (95, 1), (96, 0), (100, 0)]
SBP = [(70, 3), (90, 3), (91, 2), (100, 2), (101, 1), (110, 1), (111, 0), (219, 0), (220, 3)]
PULSE = [(30, 3), (40, 3), (41, 1), (50, 1), (51, 0), (90, 0), (91, 1), (110, 1), (111, 2), (130, 2), (131, 3)]
TEMP = [(34.0, 3), (35.0, 3), (35.1, 1), (36.0, 1), (36.1, 0), (38.0, 0), (38.1, 1), (39.0, 1), (39.1, 2), (41.0, 2)]


@pytest.mark.parametrize(("value", "expected"), RR)
def test_respiratory_rate(value: float, expected: int) -> None:
    assert score_respiratory_rate(value) == expected


@pytest.mark.parametrize(("value", "expected"), SPO2)
def test_spo2_scale1(value: float, expected: int) -> None:
    assert score_spo2_scale1(value) == expected


@pytest.mark.parametrize(("value", "expected"), SBP)
def test_systolic_bp(value: float, expected: int) -> None:
    assert score_systolic_bp(value) == expected


@pytest.mark.parametrize(("value", "expected"), PULSE)
def test_pulse(value: float, expected: int) -> None:
    assert score_pulse(value) == expected


@pytest.mark.parametrize(("value", "expected"), TEMP)
def test_temperature(value: float, expected: int) -> None:
    assert score_temperature(value) == expected


def test_temperature_reads_at_one_decimal() -> None:
    # A converted °F value such as 96.8 °F = 36.0 °C must not fall between bands.
    assert score_temperature((96.8 - 32) * 5 / 9) == 1


def vitals(**kw: object) -> VitalSigns:
    base = dict(respiratory_rate=16, spo2=97, on_oxygen=False, systolic_bp=120, pulse=70,
                consciousness=Consciousness.ALERT, temperature=37.0)
    base.update(kw)
    return VitalSigns(**base)  # type: ignore[arg-type]


def test_healthy_adult_scores_zero() -> None:
    s = score_news2(vitals())
    assert (s.total, s.band) == (0, Band.LOW)


def test_supplemental_oxygen_adds_two() -> None:
    assert score_news2(vitals(on_oxygen=True)).subscores["air_or_oxygen"] == 2


@pytest.mark.parametrize("level", ["C", "V", "P", "U"])
def test_any_acvpu_below_alert_scores_three(level: str) -> None:
    s = score_news2(vitals(consciousness=Consciousness(level)))
    assert s.subscores["consciousness"] == 3
    assert s.band is Band.LOW_MEDIUM


def test_single_parameter_three_is_low_medium_not_low() -> None:
    s = score_news2(vitals(respiratory_rate=26))
    assert (s.total, s.band) == (3, Band.LOW_MEDIUM)


def test_bands_of_the_aggregate() -> None:
    assert band_for(4, False) is Band.LOW
    assert band_for(5, False) is Band.MEDIUM
    assert band_for(6, True) is Band.MEDIUM
    assert band_for(7, False) is Band.HIGH


def test_all_parameters_add_up() -> None:
    s = score_news2(vitals(respiratory_rate=25, spo2=91, on_oxygen=True, systolic_bp=90, pulse=131,
                           consciousness=Consciousness.VOICE, temperature=35.0))
    assert s.total == 3 + 3 + 2 + 3 + 3 + 3 + 3
    assert s.band is Band.HIGH


# SpO2 scale 2 (hypercapnic respiratory failure): RCP chart, air and oxygen columns.
SPO2_SCALE2 = [(83, False, 3), (84, False, 2), (85, False, 2), (86, False, 1), (87, False, 1), (88, False, 0),
               (92, False, 0), (93, False, 0), (99, False, 0), (93, True, 1), (94, True, 1), (95, True, 2),
               (96, True, 2), (97, True, 3), (88, True, 0)]


@pytest.mark.parametrize(("spo2", "on_oxygen", "expected"), SPO2_SCALE2)
def test_spo2_scale2(spo2: float, on_oxygen: bool, expected: int) -> None:
    from carepulse.care.news2 import score_spo2_scale2

    assert score_spo2_scale2(spo2, on_oxygen) == expected


def test_scale2_patient_at_target_scores_zero_for_spo2() -> None:
    s = score_news2(vitals(spo2=89, spo2_scale2=True))
    assert s.subscores["spo2"] == 0 and s.spo2_scale == 2
    assert score_news2(vitals(spo2=89)).subscores["spo2"] == 3  # the same reading on scale 1


def test_incomplete_set_is_a_lower_bound_naming_what_is_missing() -> None:
    s = score_news2(vitals(temperature=None, consciousness=None, respiratory_rate=26))
    assert s.missing == ("consciousness", "temperature") and not s.complete
    assert s.total == 3 and "temperature" not in s.subscores
