"""Sample patients and a vital-signs scenario for ``carepulse demo`` and the tests."""
