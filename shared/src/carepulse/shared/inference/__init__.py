"""Talking to the inference service (KServe v2 / Triton gRPC protocol).

``client.InferenceClient`` is what services use; ``tensors`` converts numpy arrays to and
from the protocol's tensor encodings; ``protocol`` holds the generated gRPC code.
"""
