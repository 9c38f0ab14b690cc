"""The DICOM -> model-input chain, operator by operator, on built and on real third-party files."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from imaging_fixtures import DICOM_DATA, VARIANTS, jpeg_dicom

from carepulse.imaging.dicom_files import radiograph_dicom as make_dicom
from carepulse.imaging.operators import (
    CentreCrop,
    ImageItem,
    Resize,
    UnsupportedDicom,
    VoiWindow,
    prepare,
)

PYDICOM = DICOM_DATA / "pydicom-test-files"


@pytest.mark.parametrize(("name", "photometric", "rescale", "window"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_every_encoding_gives_back_the_training_pixels(val_set, name, photometric, rescale, window) -> None:
    images, _ = val_set
    for img in images[:5]:
        p = prepare(make_dicom(img, photometric=photometric, rescale=rescale, window=window))
        assert p.tensor.shape == (1, 28, 28) and p.tensor.dtype == np.float32
        np.testing.assert_allclose(p.tensor[0], img / 255.0, atol=1e-6)
    assert ("invert(monochrome1)" in p.steps) == (photometric == "MONOCHROME1")


def test_multi_frame_uses_the_first_frame_only(val_set) -> None:
    img = val_set[0][7]
    p = prepare(make_dicom(img, frames=3, window=True))
    np.testing.assert_allclose(p.tensor[0], img / 255.0, atol=1e-6)
    assert p.steps[0] == "decode(frame 1 of 3)"


def test_window_functions_follow_the_standard() -> None:
    ds = pydicom.Dataset()
    x = np.array([[0.0, 99.5, 100.0, 150.0, 200.0]])
    ds.WindowCenter, ds.WindowWidth = 100, 101
    linear = VoiWindow()(ImageItem(ds, x)).pixels
    # PS3.3 C.11.2.1.2.1: below c-0.5-(w-1)/2 -> min, above c-0.5+(w-1)/2 -> max.
    np.testing.assert_allclose(linear, [[0.0, 0.5, 0.505, 1.0, 1.0]], atol=1e-12)
    ds.VOILUTFunction = "SIGMOID"
    sig = VoiWindow()(ImageItem(ds, x)).pixels
    assert sig[0, 2] == pytest.approx(0.5) and 0 < sig[0, 0] < sig[0, 4] < 1
    ds.VOILUTFunction, ds.WindowWidth = "LINEAR_EXACT", 100
    np.testing.assert_allclose(VoiWindow()(ImageItem(ds, x)).pixels, [[0.0, 0.495, 0.5, 1.0, 1.0]], atol=1e-12)


def test_crop_is_centred_and_resize_reaches_the_model_size() -> None:
    x = np.zeros((40, 60))
    x[:, 10:50] = 1.0  # the centre square is all ones; the cropped margins are zeros
    item = CentreCrop()(ImageItem(pydicom.Dataset(), x))
    assert item.pixels.shape == (40, 40) and item.pixels.min() == 1.0
    out = Resize(28)(item).pixels
    assert out.shape == (28, 28) and np.allclose(out, 1.0, atol=1e-6)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm",
                                  "MR_small_implicit.dcm", "JPEG2000.dcm", "JPGExtended.dcm", "image_dfl.dcm",
                                  "SC_rgb_rle.dcm"])
def test_real_images_in_many_transfer_syntaxes_decode(name: str) -> None:
    p = prepare((PYDICOM / name).read_bytes())
    assert p.tensor.shape == (1, 28, 28)
    assert 0.0 <= p.tensor.min() <= p.tensor.max() <= 1.0
    assert p.tensor.std() > 0.01, "an image, not a blank"


@pytest.mark.parametrize(("name", "reason"), [
    ("test-SR.dcm", "not an image"),
    ("waveform_ecg.dcm", "not an image"),
    ("liver_1frame.dcm", "not an image"),       # a SEG
    ("MR_truncated.dcm", "cannot decode"),
    ("JPEG-lossy.dcm", "cannot decode"),        # corrupt 12-bit JPEG: every decoder refuses it
    ("no_meta.dcm", "not DICOM Part 10"),
])
def test_unusable_dicom_is_refused_with_a_reason(name: str, reason: str) -> None:
    with pytest.raises(UnsupportedDicom, match=reason):
        prepare((PYDICOM / name).read_bytes())


@pytest.mark.parametrize("raw", [b"", b"not dicom at all", b"\0" * 128 + b"DICM" + b"\xff" * 20])
def test_garbage_is_refused_not_crashed(raw: bytes) -> None:
    with pytest.raises(UnsupportedDicom):
        prepare(raw)


def test_full_resolution_jpeg_radiographs_decode_through_the_jpeg_plugin() -> None:
    files = sorted((DICOM_DATA / "kermany-cxr").glob("*.jpeg"))
    assert len(files) == 4
    for f in files:
        p = prepare(jpeg_dicom(f.read_bytes()))
        assert p.tensor.shape == (1, 28, 28)
        assert any(s.startswith("resize") for s in p.steps) and any(s.startswith("crop") for s in p.steps)
