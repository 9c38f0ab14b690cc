from __future__ import annotations

from carepulse.shared.topics import Topics


def test_default_names_follow_the_architecture() -> None:
    t = Topics.with_prefix()
    assert (t.inbound, t.observation, t.derived, t.alerts, t.deadletter, t.audit) == (
        "fhir.inbound", "fhir.observation", "fhir.derived", "carepulse.alerts", "fhir.deadletter", "carepulse.audit")


def test_prefix_applies_to_every_topic() -> None:
    assert all(n.startswith("site-a.") for n in Topics.with_prefix("site-a.").all())
    assert len(set(Topics.with_prefix().all())) == 11


def test_routing_by_type() -> None:
    t = Topics.with_prefix()
    assert t.for_resource_type("Observation") == "fhir.observation"
    assert t.for_resource_type("Encounter") == "fhir.patient"
    assert t.for_resource_type("MedicationRequest") == "fhir.clinical"
    assert t.for_resource_type("ImagingStudy") == "fhir.imaging"
    assert t.for_resource_type("Claim") is None
