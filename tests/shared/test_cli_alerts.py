"""`carepulse alerts` summaries and filters, on alert Bundles the care service really builds."""

from __future__ import annotations

from carepulse.care.news2 import Band
from carepulse.care.resources import alert_bundle, resolution_bundle
from carepulse.shared.cli.alerts import matches, summarise

OBS = {"resourceType": "Observation", "id": "0f3c1c6e-7d4b-4a43-9f4e-1a2b3c4d5e6f", "valueInteger": 9,
       "interpretation": [{"coding": [{"code": "high"}]}]}
BID = "6e1a7d8c-2f4b-4c3d-8e9f-0a1b2c3d4e5f"


def alert(band: Band) -> dict:
    return alert_bundle(BID, "Patient/p1", [OBS], band=band, title="NEWS2", detail="NEWS2 9 (high risk)",
                        episode_id="a5e0c2b4-1111-4222-8333-944455556666", at=0, source_name="t", now=0,
                        event=("news2-alert", "NEWS2 early-warning alert"))


def test_summary_of_an_alert() -> None:
    s = summarise(alert(Band.HIGH))
    assert (s["event"], s["patient"], s["severity"], s["band"]) == ("news2-alert", "Patient/p1", "high", "high")


def test_filters_by_patient_and_level() -> None:
    high, medium = summarise(alert(Band.HIGH)), summarise(alert(Band.MEDIUM))
    assert matches(high, "p1", "high") and matches(high, "Patient/p1", None)
    assert not matches(high, "p2", None)
    assert not matches(medium, None, "high") and matches(medium, None, "moderate")


def test_resolutions_pass_the_level_filter() -> None:
    res = resolution_bundle(BID, "Patient/p1", [OBS], title="NEWS2", episode_id="a5e0c2b4-1111-4222-8333-944455556666",
                            previous=Band.HIGH, current=Band.LOW, at=0, source_name="t", now=0,
                            event=("news2-resolved", "NEWS2 alert level fallen"))
    s = summarise(res)
    assert s["event"] == "news2-resolved" and s["patient"] == "Patient/p1"
    assert matches(s, None, "high")
