"""CarePulse care: patient context, NEWS2 early-warning scores and alerts."""
