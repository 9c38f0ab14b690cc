"""FHIR R4 codec helpers: parse and validate once, build OperationOutcomes."""

from carepulse.shared.fhir.codec import (
    FhirValidationError,
    Issue,
    ParsedResource,
    parse_resource,
)
from carepulse.shared.fhir.outcome import operation_outcome

__all__ = ["FhirValidationError", "Issue", "ParsedResource", "operation_outcome", "parse_resource"]
