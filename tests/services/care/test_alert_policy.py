from __future__ import annotations

from carepulse.care.alert_policy import should_alert
from carepulse.care.news2 import Band


def test_first_trigger_band_alerts() -> None:
    assert should_alert(None, Band.MEDIUM)
    assert should_alert(Band.LOW, Band.LOW_MEDIUM)


def test_low_never_alerts() -> None:
    assert not should_alert(None, Band.LOW)
    assert not should_alert(Band.HIGH, Band.LOW)


def test_staying_in_a_band_does_not_flood() -> None:
    assert not should_alert(Band.HIGH, Band.HIGH)
    assert not should_alert(Band.HIGH, Band.MEDIUM)


def test_escalation_alerts_again() -> None:
    assert should_alert(Band.MEDIUM, Band.HIGH)
