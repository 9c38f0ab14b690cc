"""Assemble one NEWS2 observation set from the latest reading of each parameter.

RCP: NEWS2 is scored on a set of observations taken together. A set here is the
latest reading of each parameter taken within ``window`` seconds of the reading that
triggered the assessment; older readings are too old to count, and readings of
another round are never mixed in. Parameters with no reading in the window are
reported missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carepulse.care.news2 import Consciousness, VitalSigns

MEASURED = ("respiratory_rate", "spo2", "systolic_bp", "pulse", "consciousness", "temperature")


@dataclass(frozen=True)
class ObservationSet:
    vitals: VitalSigns
    effective: float  # time of the newest reading in the set
    sources: tuple[str, ...]  # Observation references used, sorted
    oxygen_recorded: bool  # False: no air/oxygen reading, scored as air

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(p for p in MEASURED if getattr(self.vitals, p) is None)


def assemble(
    latest: dict[str, dict[str, Any]], at: float, window: float, spo2_scale2: bool = False
) -> ObservationSet | None:
    """The set around time ``at`` (None when no parameter has a reading in the window).

    ``latest`` maps parameter -> {"value", "t", "source"} as kept in the patient context.
    """

    def fresh(param: str) -> dict[str, Any] | None:
        r = latest.get(param)
        return r if r is not None and abs(float(r["t"]) - at) <= window else None

    picked = {p: fresh(p) for p in MEASURED}
    oxygen = fresh("air_or_oxygen")
    chosen = [r for r in picked.values() if r is not None] + ([oxygen] if oxygen else [])
    if not chosen:
        return None

    def num(p: str) -> float | None:
        r = picked[p]
        return float(r["value"]) if r is not None else None

    level = picked["consciousness"]
    vitals = VitalSigns(
        respiratory_rate=num("respiratory_rate"),
        spo2=num("spo2"),
        on_oxygen=bool(oxygen["value"]) if oxygen else False,
        systolic_bp=num("systolic_bp"),
        pulse=num("pulse"),
        consciousness=Consciousness(level["value"]) if level is not None else None,
        temperature=num("temperature"),
        spo2_scale2=spo2_scale2,
    )
    return ObservationSet(
        vitals=vitals,
        effective=max(float(r["t"]) for r in chosen),
        sources=tuple(sorted({str(r["source"]) for r in chosen})),
        oxygen_recorded=oxygen is not None,
    )
