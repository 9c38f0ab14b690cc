"""Test fixtures for CarePulse: real broker and Redis servers, collectors of topic output.

Used as a pytest plugin (``pytest_plugins = ["carepulse.shared.testing.fixtures"]``).
A missing server binary fails the test run; nothing here skips.
"""
