"""CarePulse NLP: clinical notes -> coded, negation-aware FHIR findings."""
