"""Tensor encodings: raw bytes and typed contents, both directions."""

from __future__ import annotations

import numpy as np
import pytest

from carepulse.shared.inference import tensors
from carepulse.shared.inference.protocol import grpc_service_pb2 as pb


@pytest.mark.parametrize("array", [
    np.arange(6, dtype=np.float32).reshape(2, 3) / 3,
    np.array([[-(2**62), 5]], dtype=np.int64),
    np.array([0, 127, 255], dtype=np.uint8),
    np.array([True, False]),
    np.array([1.5, -2.25], dtype=np.float16),
    np.array([b"a", b"", "ü".encode(), b"\x00\x01"], dtype=object).reshape(2, 2),
    np.zeros((0, 3), dtype=np.float32),
])
def test_raw_roundtrip(array: np.ndarray) -> None:
    datatype = tensors.datatype_of(array)
    out = tensors.decode_raw(datatype, array.shape, tensors.encode_raw(array))
    assert out.shape == array.shape and tensors.datatype_of(out) == datatype
    assert out.tolist() == array.tolist()


def test_raw_is_little_endian() -> None:
    assert tensors.encode_raw(np.array([1], dtype=">i4")) == b"\x01\x00\x00\x00"
    assert tensors.encode_raw(np.array(["ab"], dtype=object)) == b"\x02\x00\x00\x00ab"


@pytest.mark.parametrize(("datatype", "shape", "raw", "message"), [
    ("FP32", [2], b"\x00" * 7, "7 bytes"),
    ("FP32", [-1], b"", "negative"),
    ("FP31", [1], b"\x00" * 4, "FP31"),
    ("BYTES", [2], b"\x01\x00\x00\x00a", "ends after 1"),
    ("BYTES", [1], b"\x09\x00\x00\x00a", "past the end"),
    ("BYTES", [1], b"\x01\x00\x00\x00ab", "after the last"),
])
def test_bad_raw_data(datatype: str, shape: list[int], raw: bytes, message: str) -> None:
    with pytest.raises(tensors.TensorFormatError, match=message):
        tensors.decode_raw(datatype, shape, raw)


def test_typed_contents() -> None:
    c = pb.InferTensorContents(fp32_contents=[1, 2, 3, 4])
    np.testing.assert_array_equal(tensors.decode_contents("FP32", [2, 2], c), [[1, 2], [3, 4]])
    c = pb.InferTensorContents(uint_contents=[0, 255])
    assert tensors.decode_contents("UINT8", [2], c).dtype == np.uint8
    c = pb.InferTensorContents(bytes_contents=[b"x", b"yz"])
    assert tensors.decode_contents("BYTES", [2], c).tolist() == [b"x", b"yz"]
    with pytest.raises(tensors.TensorFormatError, match="range"):
        tensors.decode_contents("UINT8", [1], pb.InferTensorContents(uint_contents=[256]))
    with pytest.raises(tensors.TensorFormatError, match="3 values"):
        tensors.decode_contents("INT64", [2], pb.InferTensorContents(int64_contents=[1, 2, 3]))
    with pytest.raises(tensors.TensorFormatError, match="raw"):
        tensors.decode_contents("FP16", [1], pb.InferTensorContents())
