"""Domain errors of the inference core; ``servicer`` maps each to one gRPC status code."""

from __future__ import annotations


class InferenceServiceError(Exception):
    """Base of the errors a client can cause or observe; the message is safe to return."""


class ModelNotFound(InferenceServiceError):
    """No such model, or no such version of it being served."""


class ModelNotReady(InferenceServiceError):
    """The model exists but cannot serve right now (loading, unloading, shutting down)."""


class InvalidInput(InferenceServiceError):
    """The request does not fit the model: tensor name, datatype, shape, encoding."""


class ModelLoadError(InferenceServiceError):
    """The model's files are unusable: bad config.pbtxt, ONNX graph disagrees with it, …"""


class InferenceFailed(InferenceServiceError):
    """The runtime failed on input that passed validation."""
