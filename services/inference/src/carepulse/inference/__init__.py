"""CarePulse inference service: ONNX Runtime behind the KServe v2 / Triton gRPC protocol.

Layers, outermost first: ``server`` (gRPC + HTTP listeners, lifecycle) -> ``servicer``
(protobuf <-> core types, the one place errors become gRPC status codes) -> core:
``repository`` (Triton-layout model repository) -> ``model`` (one served model version:
request validation) -> ``batcher`` (dynamic batching) -> ``runtime`` (ONNX Runtime session,
execution providers from ``providers``). ``config`` reads ``config.pbtxt``.
"""
