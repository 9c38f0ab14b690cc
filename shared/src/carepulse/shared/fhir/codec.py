"""Parse and validate FHIR R4 JSON with ``fhir.resources`` (its R4B release).

Validation is the expensive step (~6k resources/s/core), so it happens once at the
edge; downstream code works on the original bytes or a plain ``dict``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

FHIR_JSON = "application/fhir+json"
FHIR_CONTENT_TYPE = "application/fhir+json; fhirVersion=4.0"


@dataclass(frozen=True)
class Issue:
    """One problem found in a resource; ``expression`` is a FHIRPath to the element."""

    code: str  # FHIR issue-type: structure, required, value, invalid, not-supported, too-long
    diagnostics: str
    expression: str | None = None
    severity: str = "error"


class FhirValidationError(ValueError):
    """Input is not a valid FHIR R4 resource; ``issues`` say where and why."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{i.expression or '-'}: {i.diagnostics}" for i in issues))

    def __reduce__(self) -> tuple[type[FhirValidationError], tuple[list[Issue]]]:
        # Rebuilt from its issues (not its message) when it crosses a process boundary.
        return type(self), (self.issues,)


@dataclass(frozen=True)
class ParsedResource:
    """A validated resource: the plain JSON document and the bytes it came from."""

    resource: dict[str, Any]
    raw: bytes

    @property
    def resource_type(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def id(self) -> str | None:
        rid = self.resource.get("id")
        return str(rid) if rid is not None else None


@cache
def _model_class(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def _fhirpath(root: str, loc: tuple[int | str, ...]) -> str:
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith("function-") or part.startswith("__"):
            # pydantic's internal validator names are not FHIR elements.
            continue
        else:
            path += f".{part}"
    return path


def _issues_from_pydantic(resource_type: str, err: ValidationError) -> list[Issue]:
    issues = []
    for e in err.errors(include_url=False, include_input=False):
        kind = e.get("type", "")
        code = "required" if kind == "missing" else "structure" if kind == "extra_forbidden" else "value"
        issues.append(Issue(code=code, diagnostics=str(e.get("msg")), expression=_fhirpath(resource_type, e["loc"])))
    return issues


def decode_json(raw: bytes) -> Any:
    """Decode JSON bytes, accepting the UTF-8 byte-order mark real senders put first."""
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise FhirValidationError([Issue("invalid", f"body is not UTF-8: {e.reason}")]) from None
    except RecursionError:
        raise FhirValidationError([Issue("too-costly", "JSON nesting is deeper than accepted")]) from None
    except json.JSONDecodeError as e:
        raise FhirValidationError(
            [Issue("structure", f"body is not JSON: {e.msg} at line {e.lineno} column {e.colno}")]
        ) from None


def validate_document(doc: Any, raw: bytes, expected_type: str | None = None) -> ParsedResource:
    """Validate an already decoded JSON document as a FHIR R4 resource."""
    if not isinstance(doc, dict):
        raise FhirValidationError([Issue("structure", "a FHIR resource must be a JSON object")])
    rtype = doc.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise FhirValidationError([Issue("required", "resourceType is missing", "resourceType")])
    if expected_type is not None and rtype != expected_type:
        raise FhirValidationError(
            [Issue("invalid", f"resourceType {rtype[:64]} does not match the URL type {expected_type[:64]}",
                   "resourceType")]
        )
    try:
        model = _model_class(rtype)
    except Exception:  # noqa: BLE001 - any lookup failure means: not an R4 type
        raise FhirValidationError(
            [Issue("not-supported", f"unknown FHIR R4 resource type {rtype[:64]!r}", "resourceType")]
        ) from None
    try:
        model.model_validate(doc)
    except ValidationError as e:
        raise FhirValidationError(_issues_from_pydantic(rtype, e)) from None
    except RecursionError:
        raise FhirValidationError([Issue("too-costly", "resource nesting is deeper than accepted", rtype)]) from None
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        # A validator tripping over input far from FHIR's shape is still the sender's error.
        raise FhirValidationError([Issue("invalid", f"not a valid {rtype}: {type(e).__name__}", rtype)]) from None
    return ParsedResource(resource=doc, raw=raw)


def parse_resource(raw: bytes, expected_type: str | None = None) -> ParsedResource:
    """Decode and validate one FHIR R4 resource from JSON bytes.

    Raises :class:`FhirValidationError` with FHIRPath-located issues.
    """
    return validate_document(decode_json(raw), raw, expected_type)
