"""CarePulse ingestion: the FHIR R4 front door, validating once and routing to Kafka."""
