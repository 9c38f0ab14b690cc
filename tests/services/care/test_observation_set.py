from __future__ import annotations

from carepulse.care.news2 import Consciousness
from carepulse.care.observation_set import assemble

T = 1_700_000_000.0


def latest(t: float = T, **over: object) -> dict:
    values = {"respiratory_rate": 18, "spo2": 96, "systolic_bp": 120, "pulse": 80, "consciousness": "A",
              "temperature": 37.0}
    values.update(over)
    return {p: {"value": v, "t": t, "source": f"Observation/{p}"} for p, v in values.items()}


def test_complete_set_is_assembled_with_sorted_sources() -> None:
    s = assemble(latest(), T, 900)
    assert s is not None
    assert s.vitals.consciousness is Consciousness.ALERT
    assert s.sources == tuple(sorted(s.sources)) and len(s.sources) == 6
    assert not s.oxygen_recorded and not s.vitals.on_oxygen


def test_missing_parameter_is_reported() -> None:
    lt = latest()
    del lt["temperature"]
    s = assemble(lt, T, 900)
    assert s is not None and s.missing == ("temperature",) and s.vitals.temperature is None


def test_readings_from_another_round_are_not_mixed() -> None:
    lt = latest()
    lt["pulse"] = {"value": 120, "t": T + 3600, "source": "Observation/new-pulse"}
    s = assemble(lt, T + 3600, 900)
    assert s is not None and s.sources == ("Observation/new-pulse",)
    assert set(s.missing) == {"respiratory_rate", "spo2", "systolic_bp", "consciousness", "temperature"}


def test_nothing_in_the_window_gives_no_set() -> None:
    assert assemble(latest(), T + 7200, 900) is None


def test_oxygen_reading_in_the_set_counts() -> None:
    lt = latest()
    lt["air_or_oxygen"] = {"value": True, "t": T, "source": "Observation/o2"}
    s = assemble(lt, T, 900)
    assert s is not None and s.vitals.on_oxygen and s.oxygen_recorded
