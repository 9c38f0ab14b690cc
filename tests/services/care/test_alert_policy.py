"""One alert per episode: rises alert at once, repeats wait, falls resolve."""

from __future__ import annotations

from carepulse.care.alert_policy import Action, AlertState, decide
from carepulse.care.news2 import Band

H = 3600.0


def run(bands: list[tuple[Band, float]], realert: float = 4 * H) -> list[Action | None]:
    state, out = None, []
    for band, at in bands:
        d = decide(state, band, at, realert, episode_id=f"ep-{at}")
        out.append(d.action)
        state = d.state
    return out


def test_low_never_alerts() -> None:
    assert run([(Band.LOW, 0), (Band.LOW, H)]) == [None, None]


def test_rise_alerts_at_once_and_staying_does_not_flood() -> None:
    assert run([(Band.MEDIUM, 0), (Band.MEDIUM, H), (Band.HIGH, 2 * H), (Band.HIGH, 3 * H)]) == [
        Action.ALERT, None, Action.ALERT, None]


def test_same_level_reminds_after_the_window() -> None:
    assert run([(Band.HIGH, 0), (Band.HIGH, 3 * H), (Band.HIGH, 4 * H)]) == [Action.ALERT, None, Action.REMIND]


def test_fall_sends_a_resolution_and_a_new_rise_a_new_alert() -> None:
    assert run([(Band.HIGH, 0), (Band.MEDIUM, H), (Band.LOW, 2 * H), (Band.LOW_MEDIUM, 3 * H)]) == [
        Action.ALERT, Action.RESOLVE, Action.RESOLVE, Action.ALERT]


def test_episode_id_is_kept_until_the_episode_closes() -> None:
    s = decide(None, Band.MEDIUM, 0, 4 * H, "first").state
    s = decide(s, Band.HIGH, H, 4 * H, "second").state
    assert s.episode == "first"
    s = decide(s, Band.LOW, 2 * H, 4 * H, "third").state
    assert s.episode is None


def test_late_data_changes_nothing() -> None:
    state = AlertState(Band.HIGH, 10 * H, Band.HIGH, 10 * H, "e")
    d = decide(state, Band.LOW, 9 * H, 4 * H, "x")
    assert d.action is None and d.state == state
