"""DICOM radiographs built from pixel arrays: for the demo, the benchmark and the tests.

The encodings are the ones a PACS sends for chest X-rays: MONOCHROME1 or 2, with or without
Rescale Slope/Intercept, with or without a window, single or multi-frame. The pixels are chosen so
that the imaging pre-processing gives back exactly ``image_u8 / 255`` (what the model was trained on).
"""

from __future__ import annotations

import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


def base_dataset(patient_id: str, study_uid: str, series_uid: str, sop_uid: str, sop_class: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientID, ds.PatientName = patient_id, "Demo^Radiograph"
    ds.StudyDate, ds.StudyTime = "20240102", "101500"
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def radiograph_dicom(image_u8: np.ndarray, *, photometric: str = "MONOCHROME2",
                     rescale: tuple[float, float] | None = None, window: bool = False, frames: int = 1,
                     patient_id: str = "p1", study_uid: str | None = None, series_uid: str | None = None,
                     sop_uid: str | None = None) -> bytes:
    """An uncompressed CR image whose display pixels after the VOI are exactly ``image_u8 / 255``."""
    x = image_u8.astype(np.int64)
    display = 255 - x if photometric == "MONOCHROME1" else x
    ds = base_dataset(patient_id, study_uid or generate_uid(), series_uid or generate_uid(), sop_uid or generate_uid(),
               CR_IMAGE_STORAGE)
    if rescale is None:
        stored, bits = display.astype(np.uint8), 8
    else:
        slope, intercept = rescale
        stored = np.rint((display - intercept) / slope).astype(np.uint16)
        assert np.array_equal(stored * slope + intercept, display), "choose an exact slope/intercept"
        bits = 12
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = f"{slope:g}", f"{intercept:g}", "US"
    if window:
        # PS3.3 C.11.2.1.2 linear window with c=128, w=256 maps 0..255 onto exactly v/255.
        ds.WindowCenter, ds.WindowWidth = "128", "256"
    if frames > 1:
        rng = np.random.default_rng(1)
        others = rng.integers(0, stored.max() + 1, size=(frames - 1, *stored.shape)).astype(stored.dtype)
        stored = np.concatenate([stored[None], others])
        ds.NumberOfFrames = frames
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 1
    ds.Rows, ds.Columns = image_u8.shape
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.PixelData = np.ascontiguousarray(stored).tobytes()
    return to_bytes(ds)
