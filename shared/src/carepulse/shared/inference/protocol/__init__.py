# ruff: noqa
"""Generated KServe v2 / Triton gRPC protocol code (see protos/generate.py; do not edit).

``POOL`` is the descriptor pool these messages live in, kept apart from protobuf's default
pool so that Triton's own generated code (tritonclient) can be imported alongside.
"""

from google.protobuf import descriptor_pool

POOL = descriptor_pool.DescriptorPool()
