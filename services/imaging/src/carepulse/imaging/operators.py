"""DICOM -> model input as a chain of small operators (in the manner of MONAI Deploy).

Each operator takes an :class:`ImageItem` and returns a new one, so a chain can be tested link by
link and rearranged per model. The default chain for the pneumonia model:

    decode -> first frame -> rescale -> VOI LUT / window -> MONOCHROME1 invert
           -> centre crop -> resize -> [1, H, W] FP32 in 0..1

Input the chain can never turn into an image raises :class:`UnsupportedDicom` (a ``ValueError``),
which the worker dead-letters with the reason.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi, pixel_array

from carepulse.imaging.sources import InputLimits

# Storage classes that are never images, whatever else they carry.
_NON_IMAGE_MODALITIES = {"SR", "SEG", "RTPLAN", "RTSTRUCT", "RTDOSE", "ECG", "KO", "PR", "DOC", "REG", "RTRECORD"}


class UnsupportedDicom(ValueError):
    """DICOM that is not a greyscale image this service can read (reason in the message)."""


class DicomTooLarge(UnsupportedDicom):
    """DICOM over one of the :class:`~carepulse.imaging.sources.InputLimits` (bytes, frames, pixels)."""


@dataclass(frozen=True)
class ImageItem:
    """What flows through the chain: the dataset, the pixels so far and what has been done."""

    dataset: Dataset
    pixels: np.ndarray | None = None  # 2-D float64 until the end; None before decoding
    steps: tuple[str, ...] = ()

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.get("SOPInstanceUID", ""))

    def with_pixels(self, pixels: np.ndarray, step: str) -> ImageItem:
        return replace(self, pixels=pixels, steps=(*self.steps, step))


Operator = Callable[[ImageItem], ImageItem]


def read_dataset(raw: bytes) -> Dataset:
    """Parse DICOM Part 10 bytes (with or without the preamble)."""
    try:
        return pydicom.dcmread(io.BytesIO(raw), force=False)
    except InvalidDicomError as e:
        raise UnsupportedDicom(f"not DICOM Part 10 data: {e}") from None
    except Exception as e:  # pydicom raises many types for damaged files
        raise UnsupportedDicom(f"unreadable DICOM: {type(e).__name__}: {e}") from None


def _require(ds: Dataset, keyword: str) -> object:
    value = ds.get(keyword)
    if value is None:
        raise UnsupportedDicom(f"missing {keyword}")
    return value


class DecodeFirstFrame:
    """Check the dataset is a greyscale image and decode its first frame only."""

    def __call__(self, item: ImageItem) -> ImageItem:
        ds = item.dataset
        modality = str(ds.get("Modality", "")).upper()
        if modality in _NON_IMAGE_MODALITIES:
            raise UnsupportedDicom(f"modality {modality} is not an image")
        if "PixelData" not in ds:
            raise UnsupportedDicom("no pixel data (not an image object)")
        if int(_require(ds, "BitsAllocated")) == 1:  # type: ignore[call-overload]
            raise UnsupportedDicom("1-bit pixel data (segmentation/overlay), not a radiograph")
        photometric = str(_require(ds, "PhotometricInterpretation")).upper()
        if photometric not in ("MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422"):
            raise UnsupportedDicom(f"photometric interpretation {photometric} not supported")
        frames = _frames(ds)
        try:
            # index=0 decodes only the first frame of a multi-frame object; YBR comes back as RGB.
            arr = pixel_array(ds, index=0 if frames > 1 else None)
        except Exception as e:  # missing codec plugin, truncated data, bad header values
            ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            name = getattr(ts, "name", str(ts)) if ts else "unknown transfer syntax"
            raise UnsupportedDicom(f"cannot decode pixel data ({name}): {type(e).__name__}: {e}") from None
        if arr.ndim == 3 and arr.shape[-1] == 3:
            # Colour secondary captures of radiographs: back to luminance (ITU-R BT.601).
            arr = arr.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
            step = "decode(rgb->grey)"
        elif arr.ndim == 2:
            step = "decode"
        else:
            raise UnsupportedDicom(f"unexpected pixel array shape {arr.shape}")
        if min(arr.shape) < 2:
            raise UnsupportedDicom(f"image too small: {arr.shape}")
        return item.with_pixels(np.asarray(arr), f"{step}(frame 1 of {frames})")


class Rescale:
    """Modality LUT: Rescale Slope/Intercept (or a Modality LUT Sequence) to modality units."""

    def __call__(self, item: ImageItem) -> ImageItem:
        assert item.pixels is not None
        ds = item.dataset
        if int(ds.get("SamplesPerPixel", 1)) != 1:
            return item.with_pixels(item.pixels.astype(np.float64), "rescale(skipped: colour)")
        out = apply_modality_lut(item.pixels, ds).astype(np.float64)
        has = "ModalityLUTSequence" in ds or "RescaleSlope" in ds or "RescaleIntercept" in ds
        return item.with_pixels(out, "rescale" if has else "rescale(identity)")


def _first(value: object) -> float:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return float(value[0])
    return float(value)  # type: ignore[arg-type]


def _stored_range(ds: Dataset) -> tuple[float, float]:
    """The modality-unit range the stored values can span: the default window when none is given."""
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    a, b = lo * slope + intercept, hi * slope + intercept
    return min(a, b), max(a, b)


class VoiWindow:
    """VOI LUT or window (PS3.3 C.11.2.1.2) to display values in 0..1.

    Order of preference, as a viewer would: a VOI LUT Sequence, then Window Center/Width (first
    pair; LINEAR, LINEAR_EXACT or SIGMOID); without either, 8-bit images map their stored range
    (0..255 -> 0..1, as the training images were scaled) and deeper ones their own min..max.
    """

    def __call__(self, item: ImageItem) -> ImageItem:
        assert item.pixels is not None
        ds, x = item.dataset, item.pixels
        if int(ds.get("SamplesPerPixel", 1)) != 1:
            return item.with_pixels(np.clip(x / 255.0, 0, 1), "voi(colour /255)")
        if "VOILUTSequence" in ds:
            lut = ds.VOILUTSequence[0]
            bits = int(lut.LUTDescriptor[2])
            out = apply_voi(x, ds, index=0).astype(np.float64) / float(2**bits - 1)
            return item.with_pixels(np.clip(out, 0, 1), "voi(lut)")
        center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
        if center is not None and width is not None:
            c, w = _first(center), _first(width)
            function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
            if function == "SIGMOID":
                if w <= 0:
                    raise UnsupportedDicom(f"window width {w} must be > 0")
                out = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
            elif function == "LINEAR_EXACT":
                if w <= 0:
                    raise UnsupportedDicom(f"window width {w} must be > 0")
                out = (x - c) / w + 0.5
            else:
                if w < 1:
                    raise UnsupportedDicom(f"window width {w} must be >= 1")
                out = (x - (c - 0.5)) / (w - 1) + 0.5 if w > 1 else (x > c - 0.5).astype(np.float64)
            return item.with_pixels(np.clip(out, 0, 1), f"voi(window {function.lower()} c={c:g} w={w:g})")
        if int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8) <= 8:
            # 8-bit images (secondary captures, JPEG exports) use their whole range, as the training images did.
            lo, hi = _stored_range(ds)
            how = "stored range"
        else:
            # Deeper images rarely span their stored range: window on the values present, as viewers do.
            lo, hi = float(x.min()), float(x.max())
            how = "auto"
        out = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
        return item.with_pixels(np.clip(out, 0, 1), f"voi({how} {lo:g}..{hi:g})")


class InvertMonochrome1:
    """MONOCHROME1 stores bright as low values: flip so that bone is bright, as in training."""

    def __call__(self, item: ImageItem) -> ImageItem:
        assert item.pixels is not None
        if str(item.dataset.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            return item.with_pixels(1.0 - item.pixels, "invert(monochrome1)")
        return item


class CentreCrop:
    """Crop the longer side to make the image square, around the centre (as MedMNIST did)."""

    def __call__(self, item: ImageItem) -> ImageItem:
        assert item.pixels is not None
        h, w = item.pixels.shape
        side = min(h, w)
        if h == w:
            return item
        top, left = (h - side) // 2, (w - side) // 2
        return item.with_pixels(item.pixels[top:top + side, left:left + side], f"crop({h}x{w}->{side})")


@dataclass(frozen=True)
class Resize:
    """Resize to the model's input size (bicubic, antialiased when shrinking); clipped to 0..1."""

    size: int = 28

    def __call__(self, item: ImageItem) -> ImageItem:
        assert item.pixels is not None
        if item.pixels.shape == (self.size, self.size):
            return item
        img = Image.fromarray(item.pixels.astype(np.float32), mode="F")
        out = np.asarray(img.resize((self.size, self.size), Image.Resampling.BICUBIC), dtype=np.float64)
        return item.with_pixels(np.clip(out, 0, 1), f"resize({self.size})")


def default_chain(size: int = 28) -> list[Operator]:
    return [DecodeFirstFrame(), Rescale(), VoiWindow(), InvertMonochrome1(), CentreCrop(), Resize(size)]


@dataclass(frozen=True)
class Prepared:
    """One image ready for the model: FP32 [1, size, size] in 0..1, and where it came from."""

    tensor: np.ndarray
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    steps: tuple[str, ...]
    study_datetime: str | None


def _study_datetime(ds: Dataset) -> str | None:
    date = str(ds.get("StudyDate") or ds.get("AcquisitionDate") or "")
    if len(date) != 8 or not date.isdigit():
        return None
    time = str(ds.get("StudyTime") or "").split(".")[0]
    if len(time) >= 4 and time[:4].isdigit():
        hh, mm, ss = time[0:2], time[2:4], (time[4:6] if len(time) >= 6 else "00")
        return f"{date[0:4]}-{date[4:6]}-{date[6:8]}T{hh}:{mm}:{ss}Z"
    return f"{date[0:4]}-{date[4:6]}-{date[6:8]}"


def _frames(ds: Dataset) -> int:
    try:
        return int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        raise UnsupportedDicom(f"bad NumberOfFrames {ds.get('NumberOfFrames')!r}") from None


def check_limits(ds: Dataset, limits: InputLimits) -> None:
    """Refuse, from the header alone, objects whose pixels would be too many to decode safely."""
    frames = _frames(ds)
    if frames > limits.max_frames:
        raise DicomTooLarge(f"{frames} frames, more than the {limits.max_frames} allowed "
                            "(CAREPULSE_IMAGING_MAX_FRAMES)")
    try:
        rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    except (TypeError, ValueError):
        raise UnsupportedDicom("bad Rows/Columns") from None
    if rows * columns > limits.max_pixels:
        raise DicomTooLarge(f"{rows}x{columns} = {rows * columns} pixels per frame, more than the "
                            f"{limits.max_pixels} allowed (CAREPULSE_IMAGING_MAX_PIXELS)")


def prepare(raw: bytes, chain: Sequence[Operator] | None = None, limits: InputLimits | None = None) -> Prepared:
    """Run DICOM bytes through ``chain`` (default: :func:`default_chain`), within ``limits``."""
    limits = limits or InputLimits()
    if len(raw) > limits.max_instance_bytes:
        raise DicomTooLarge(f"object is {len(raw)} bytes, more than the {limits.max_instance_bytes} allowed "
                            "(CAREPULSE_IMAGING_MAX_INSTANCE_BYTES)")
    item = ImageItem(read_dataset(raw))
    check_limits(item.dataset, limits)
    for op in chain or default_chain():
        item = op(item)
    assert item.pixels is not None
    if not np.isfinite(item.pixels).all():
        raise UnsupportedDicom("pixel values are not finite after pre-processing")
    ds = item.dataset
    return Prepared(
        tensor=item.pixels.astype(np.float32)[None, :, :],
        sop_instance_uid=item.sop_instance_uid,
        study_instance_uid=str(ds.get("StudyInstanceUID", "")),
        series_instance_uid=str(ds.get("SeriesInstanceUID", "")),
        steps=item.steps,
        study_datetime=_study_datetime(ds),
    )
