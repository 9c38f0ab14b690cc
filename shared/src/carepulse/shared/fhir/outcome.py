"""OperationOutcome: FHIR's way of saying what went wrong (or right)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from carepulse.shared.fhir.codec import Issue


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    """Build an R4 OperationOutcome from issues (each with its FHIRPath expression)."""
    out = []
    for i in issues:
        entry: dict[str, Any] = {"severity": i.severity, "code": i.code, "diagnostics": i.diagnostics}
        if i.expression:
            entry["expression"] = [i.expression]
        out.append(entry)
    if not out:
        out = [{"severity": "information", "code": "informational", "diagnostics": "ok"}]
    return {"resourceType": "OperationOutcome", "issue": out}
