"""The ``carepulse`` command line: one entry point for operators and developers."""
