"""CarePulse imaging: chest X-ray DICOM in, pneumonia finding out as FHIR."""
