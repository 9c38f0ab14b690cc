"""When a score becomes an alert, a reminder or a resolution (one alert per episode).

- a rise into a trigger band (low-medium or above) alerts at once;
- the same band alerts again only after ``realert_after`` seconds (a reminder);
- a fall from an alerted band sends a resolution;
- an assessment older than the last one seen changes nothing (late data).
Times are the observation sets' effective times, so replays decide the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from carepulse.care.news2 import Band


class Action(StrEnum):
    ALERT = "alert"
    REMIND = "remind"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class AlertState:
    band: Band  # the last assessed band
    at: float  # effective time of that assessment
    alerted: Band | None = None  # the band of the open episode's last alert
    alerted_at: float | None = None
    episode: str | None = None  # id of the open episode (its Flag)


@dataclass(frozen=True)
class Decision:
    action: Action | None
    state: AlertState


def decide(state: AlertState | None, band: Band, at: float, realert_after: float, episode_id: str) -> Decision:
    """What to send for a new assessment ``band`` at ``at``, and the state to keep."""
    if state is not None and at < state.at:
        return Decision(None, state)
    alerted = state.alerted if state else None
    if band is Band.LOW:
        if alerted is not None:  # the episode closes; the resolution names it from the old state
            return Decision(Action.RESOLVE, AlertState(band, at))
        return Decision(None, AlertState(band, at))
    episode = (state.episode if state and state.episode else None) or episode_id
    if alerted is None or band.rank > alerted.rank:
        return Decision(Action.ALERT, AlertState(band, at, band, at, episode))
    if band.rank < alerted.rank:
        return Decision(Action.RESOLVE, AlertState(band, at, band, at, episode))
    assert state is not None and state.alerted_at is not None
    if at - state.alerted_at >= realert_after:
        return Decision(Action.REMIND, AlertState(band, at, band, at, episode))
    return Decision(None, AlertState(band, at, alerted, state.alerted_at, episode))

