"""When a NEWS2 score becomes an alert: on escalation into an RCP trigger band.

Alerting on every score while a patient stays high would flood the ward; alerting
only when the band rises (and again after it has fallen and risen anew) matches
the RCP escalation steps.
"""

from __future__ import annotations

from carepulse.care.news2 import Band


def should_alert(previous: Band | None, current: Band) -> bool:
    """True when ``current`` is a trigger band (low-medium or above) higher than ``previous``."""
    if current is Band.LOW:
        return False
    return previous is None or current.rank > previous.rank
