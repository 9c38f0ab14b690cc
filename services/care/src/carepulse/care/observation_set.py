"""Assemble one NEWS2 observation set from the latest reading of each parameter.

RCP: NEWS2 is scored on a set of observations taken together. A set here is the
latest reading of each parameter whose time lies within ``tolerance`` of the
newest one; readings further apart belong to different rounds and are not mixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from carepulse.care.news2 import Consciousness, VitalSigns

REQUIRED = ("respiratory_rate", "spo2", "systolic_bp", "pulse", "consciousness", "temperature")


@dataclass(frozen=True)
class ObservationSet:
    vitals: VitalSigns
    effective: float  # time of the newest reading in the set
    sources: tuple[str, ...]  # Observation references used, sorted
    oxygen_recorded: bool  # False: no air/oxygen reading, scored as air


def assemble(latest: dict[str, dict[str, Any]], at: float, tolerance: float) -> ObservationSet | None:
    """The complete set around time ``at``, or None while a required parameter is missing.

    ``latest`` maps parameter -> {"value", "t", "source"} as kept in the patient context.
    """
    def fresh(param: str) -> dict[str, Any] | None:
        r = latest.get(param)
        return r if r is not None and abs(float(r["t"]) - at) <= tolerance else None

    picked = {p: fresh(p) for p in REQUIRED}
    if any(v is None for v in picked.values()):
        return None
    oxygen = fresh("air_or_oxygen")
    chosen = [r for r in picked.values() if r is not None] + ([oxygen] if oxygen else [])
    vitals = VitalSigns(
        respiratory_rate=float(picked["respiratory_rate"]["value"]),  # type: ignore[index]
        spo2=float(picked["spo2"]["value"]),  # type: ignore[index]
        on_oxygen=bool(oxygen["value"]) if oxygen else False,
        systolic_bp=float(picked["systolic_bp"]["value"]),  # type: ignore[index]
        pulse=float(picked["pulse"]["value"]),  # type: ignore[index]
        consciousness=Consciousness(picked["consciousness"]["value"]),  # type: ignore[index]
        temperature=float(picked["temperature"]["value"]),  # type: ignore[index]
    )
    return ObservationSet(
        vitals=vitals,
        effective=max(float(r["t"]) for r in chosen),
        sources=tuple(sorted({str(r["source"]) for r in chosen})),
        oxygen_recorded=oxygen is not None,
    )
