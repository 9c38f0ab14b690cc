"""numpy arrays <-> the protocol's tensor encodings (datatype names, raw bytes, typed contents).

Used on both sides of the wire: by the inference service to decode requests and encode
responses, and by the client for the reverse. Raw encoding is little-endian row-major;
a BYTES element is a 4-byte little-endian length followed by its bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from math import prod
from typing import Any

import numpy as np

# Protocol datatype name -> numpy dtype. BYTES elements are Python bytes in an object array.
_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}
_DATATYPE: dict[np.dtype[Any], str] = {v: k for k, v in _NUMPY.items()}

# Which InferTensorContents field carries each datatype (8/16-bit ints ride in 32-bit fields).
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

_LE = "<"  # wire byte order


class TensorFormatError(ValueError):
    """The bytes or values given do not form a tensor of the stated datatype and shape."""


def datatypes() -> tuple[str, ...]:
    return tuple(_NUMPY)


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    try:
        return _NUMPY[datatype]
    except KeyError:
        raise TensorFormatError(f"unknown datatype {datatype!r}") from None


def datatype_of(array: np.ndarray) -> str:
    """The protocol datatype of an array (str/bytes/object arrays are BYTES)."""
    if array.dtype.kind in ("U", "S", "O"):
        return "BYTES"
    try:
        return _DATATYPE[array.dtype.newbyteorder("=")]
    except KeyError:
        raise TensorFormatError(f"numpy dtype {array.dtype} has no protocol datatype") from None


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise TensorFormatError(f"shape {list(dims)} has a negative dimension")
    return dims


def decode_raw(datatype: str, shape: Sequence[int], raw: bytes) -> np.ndarray:
    """Decode one raw_input_contents / raw_output_contents entry."""
    dims = _check_shape(shape)
    count = prod(dims)
    if datatype == "BYTES":
        return _decode_bytes(raw, count).reshape(dims)
    dtype = numpy_dtype(datatype).newbyteorder(_LE)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise TensorFormatError(
            f"raw data has {len(raw)} bytes, shape {list(dims)} of {datatype} needs {expected}"
        )
    # frombuffer makes a read-only view without copying; the batcher copies when it merges.
    return np.frombuffer(raw, dtype=dtype).reshape(dims)


def _decode_bytes(raw: bytes, count: int) -> np.ndarray:
    out = np.empty(count, dtype=np.object_)
    view = memoryview(raw)
    pos = 0
    for i in range(count):
        if pos + 4 > len(view):
            raise TensorFormatError(f"BYTES data ends after {i} of {count} elements")
        (length,) = struct.unpack_from("<I", view, pos)
        pos += 4
        if pos + length > len(view):
            raise TensorFormatError(f"BYTES element {i} claims {length} bytes past the end of the data")
        out[i] = bytes(view[pos : pos + length])
        pos += length
    if pos != len(view):
        raise TensorFormatError(f"BYTES data has {len(view) - pos} bytes after the last of {count} elements")
    return out


def encode_raw(array: np.ndarray) -> bytes:
    """Encode an array as one raw_*_contents entry."""
    if datatype_of(array) == "BYTES":
        parts: list[bytes] = []
        for item in array.reshape(-1):
            data = item.encode("utf-8") if isinstance(item, str) else bytes(item)
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder(_LE)).tobytes()


def decode_contents(datatype: str, shape: Sequence[int], contents: Any) -> np.ndarray:
    """Decode typed ``InferTensorContents`` (the field that matches ``datatype``)."""
    dims = _check_shape(shape)
    dtype = numpy_dtype(datatype)
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise TensorFormatError(f"datatype {datatype} can only be sent as raw_input_contents")
    values = getattr(contents, field)
    if len(values) != prod(dims):
        raise TensorFormatError(f"{field} has {len(values)} values, shape {list(dims)} needs {prod(dims)}")
    if datatype == "BYTES":
        out = np.empty(len(values), dtype=np.object_)
        out[:] = list(values)
        return out.reshape(dims)
    wide = np.array(values)
    if dtype.kind in "iu" and wide.size and (wide.min() < np.iinfo(dtype).min or wide.max() > np.iinfo(dtype).max):
        raise TensorFormatError(f"{field} has values outside the range of {datatype}")
    return wide.astype(dtype, copy=False).reshape(dims)
