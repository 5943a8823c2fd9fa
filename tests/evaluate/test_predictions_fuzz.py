"""A fuzz corpus of prediction files: each is read by its bytes to the exact right number, or refused naming it.

Issue 28: files whose name lies about their content, alpha channels, NIfTI axes, headers declaring huge
images, and the messages when cases are missing.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import warnings
import zlib

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from medseg_eval import evaluate, prediction_formats
from medseg_eval.prediction_nifti import NiftiOrientationWarning
from medseg_eval.predictions import (
    MissingCasesError,
    PredictionFormatError,
    PredictionShapeError,
    UnknownCasesError,
)

# An L-shaped mask: its transpose overlaps it only in part, so a transposed read shows in the number.
MASK = np.zeros((24, 24), np.uint8)
MASK[3:20, 4:8] = 1
MASK[16:20, 4:18] = 1
# Dice of the mask against its transpose, the number a transposed read gives.
TRANSPOSED_DICE = 2 * np.count_nonzero(MASK & MASK.T) / (2 * np.count_nonzero(MASK))


def _score(preds, target=MASK):
    res = evaluate(preds, targets={"a": target}, num_classes=2, metrics=["dice"], progress=False)
    return res.per_case["value"].to_list(), res.provenance["prediction_rules"]


def _folder(tmp_path, files):
    """A folder holding ``files``: name -> bytes."""
    folder = tmp_path / "preds"
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _image(array, fmt="PNG", mode=None, **options):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, fmt, **options) if mode else Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def _npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _png16(array, colour_type):
    """A 16-bit PNG (colour type 2: RGB, 4: grey and alpha) that Pillow cannot write."""
    height, width = array.shape[:2]
    rows = b"".join(b"\0" + array[r].astype(">u2").tobytes() for r in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _png_header(width, height):
    """A grey PNG declaring ``width`` x ``height`` pixels, with a few bytes of data (a bomb's header)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


# ----------------------------------------------------------------------------- alpha channels

def _rgba(colour, alpha):
    return np.dstack([colour, colour, colour, alpha]).astype(np.uint8)


@pytest.mark.parametrize("name, pixels, mode, rule", [
    ("mask in the alpha of black pixels", _rgba(np.zeros_like(MASK), MASK * 255), None, "alpha_mask"),
    ("mask in the alpha of red pixels", np.dstack([np.full_like(MASK, 255), 0 * MASK, 0 * MASK, MASK * 255]), None,
     "alpha_mask"),
    ("grey mask, opaque", _rgba(MASK * 255, np.full_like(MASK, 255)), None, None),
    ("grey mask, alpha marking the same pixels", _rgba(MASK * 255, MASK * 255), None, "alpha_redundant"),
    ("LA: mask in the alpha", np.dstack([np.zeros_like(MASK), MASK * 255]), "LA", "alpha_mask"),
    ("LA: grey mask, opaque", np.dstack([MASK, np.full_like(MASK, 255)]), "LA", None),
])
def test_an_alpha_channel_is_read_or_repeats_the_grey_never_dropped(tmp_path, name, pixels, mode, rule):
    scores, rules = _score(_folder(tmp_path, {"a.png": _image(pixels, mode=mode)}))
    assert scores == [1.0], name
    assert ("alpha_mask" in rules, "alpha_redundant" in rules) == (rule == "alpha_mask", rule == "alpha_redundant")


@pytest.mark.parametrize("pixels, mode, what", [
    (_rgba(MASK * 255, MASK.T * 255), None, "RGBA image whose grey and alpha"),
    (np.dstack([MASK, MASK.T * 255]), "LA", r"grey and alpha \(LA\) image"),
])
def test_an_alpha_channel_contradicting_the_grey_is_refused_naming_the_file(tmp_path, pixels, mode, what):
    with pytest.raises(PredictionFormatError, match=rf"a\.png: a {what}.*hold different masks; save the mask as one"):
        _score(_folder(tmp_path, {"a.png": _image(pixels, mode=mode)}))


def test_a_black_and_white_gif_read_by_its_grey_levels_records_the_rule(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([MASK * 255] * 3)).save(buffer, "GIF")  # Pillow puts white at index 0
    scores, rules = _score(_folder(tmp_path, {"a.gif": buffer.getvalue()}))
    assert scores == [1.0] and "palette_grey_levels" in rules


def test_a_datasets_mask_column_of_rgba_images_is_read_as_files_are():
    import datasets

    rgba = Image.open(io.BytesIO(_image(_rgba(np.zeros_like(MASK), MASK * 255))))
    table = datasets.Dataset.from_dict({"case_id": ["a"], "mask": [rgba]},
                                       features=datasets.Features({"case_id": datasets.Value("string"),
                                                                   "mask": datasets.Image()}))
    scores, rules = _score(table)
    assert scores == [1.0] and "alpha_mask" in rules


def test_images_given_in_memory_are_read_as_files_are():
    scores, rules = _score({"a": Image.fromarray(_rgba(np.zeros_like(MASK), MASK * 255))})
    assert scores == [1.0] and "alpha_mask" in rules
    jpeg = Image.open(io.BytesIO(_image(MASK * 255, "JPEG")))
    with pytest.raises(PredictionFormatError, match="predictions for a: JPEG data with lossy"):
        _score({"a": jpeg})


# ----------------------------------------------------------------------------- formats from bytes

@pytest.mark.parametrize("name, data", [
    ("a.tif", _image(MASK * 255)),            # PNG data named .tif
    ("a.png", _npy(MASK)),                    # NPY data named .png
    ("a.bmp", _image(MASK * 255, "TIFF")),    # TIFF data named .bmp
    ("a", _image(MASK)),                      # no suffix: a prediction because its bytes are one
    ("a.webp", _image(MASK * 255, "WEBP", lossless=True)),
    ("a.gif", _image(MASK * 255, "BMP")),
])
def test_a_file_is_read_by_its_bytes_whatever_its_name(tmp_path, name, data):
    assert _score(_folder(tmp_path, {name: data}))[0] == [1.0]


@pytest.mark.parametrize("name, data, message", [
    ("a.png", _image(MASK * 255, "JPEG"), r"a\.png: JPEG data \(named \.png\); its lossy compression"),
    ("a.jpg", _image(MASK * 255, "JPEG"), r"a\.jpg: JPEG data; its lossy"),
    ("a", _image(MASK * 255, "JPEG"), r"preds/a: JPEG data; its lossy"),
    ("a.webp", _image(MASK * 255, "WEBP"), r"a\.webp: lossy WebP data; .*lossless=True"),
    ("a.png", _image(_rgba(MASK * 255, MASK * 255), "WEBP"), r"a\.png: lossy WebP data \(named \.png\)"),
    ("a.png", _image(MASK * 255, "JPEG2000"), r"a\.png: JPEG 2000 data \(named \.png\)"),
    ("a.avif", _image(np.dstack([MASK * 255] * 3), "AVIF"), r"a\.avif: AVIF data; it is often lossy"),
    ("a.tif", _image(MASK * 255, "TIFF", compression="jpeg"), r"a\.tif: TIFF data with lossy \(JPEG\) compression"),
    ("a.png", _png16(np.dstack([MASK] * 3), 2), r"a\.png: a 16-bit RGB image, which Pillow reads keeping only"),
    ("a.png", _png16(np.dstack([MASK, MASK]), 4), r"a\.png: a 16-bit (RGBA|LA) image"),
    ("a.png", b"\x1f\x8b" + zlib.compress(b"x")[2:], r"a\.png: gzip-compressed data that is not NIfTI"),
    ("a.png", b"not an image at all", r"cannot read prediction .*a\.png: its bytes are none of the formats"),
    ("a.png", b"\x89PNG\r\n\x1a\n broken", r"cannot read prediction .*a\.png"),
    ("a.npz", _npy(MASK)[:20], r"cannot read prediction .*a\.npz"),
])
def test_a_file_of_a_refused_or_broken_format_is_refused_naming_it(tmp_path, name, data, message):
    with pytest.raises(PredictionFormatError, match=message):
        _score(_folder(tmp_path, {name: data}))


def test_an_animation_is_refused_not_read_as_its_first_frame(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(MASK * 255).save(buffer, "GIF", save_all=True, append_images=[Image.fromarray(MASK.T * 255)])
    with pytest.raises(PredictionFormatError, match=r"a\.gif: holds 2 frames; save one label map per file"):
        _score(_folder(tmp_path, {"a.gif": buffer.getvalue()}))


def test_a_header_declaring_more_pixels_than_the_cap_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(prediction_formats, "MAX_PIXELS", 500)
    for name, data in {"a.png": _image(MASK), "a.npy": _npy(MASK), "a.nii": _nifti(MASK.T, None)}.items():
        folder = _folder(tmp_path / name, {name: data})
        with pytest.raises(PredictionFormatError, match=rf"{name}: its header declares 576 pixels, more than the 500"):
            _score(folder)


def test_a_decompression_bomb_png_is_refused_naming_its_file(tmp_path):
    bomb = _png_header(40000, 40000)
    with pytest.raises(PredictionFormatError, match=r"preds/a\.png: .*1600000000 pixels"):
        _score(_folder(tmp_path, {"a.png": bomb}))


# ----------------------------------------------------------------------------- NIfTI axes

def _nifti(array, affine, *, gz=False, qform=False):
    image = nib.Nifti1Image(array, affine)
    if qform:
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
    return gzip.compress(image.to_bytes()) if gz else image.to_bytes()


ITK = np.diag([-1.0, -1.0, 1.0, 1.0])  # what ITK writes for an image of identity direction (LPS to RAS)
SWAPPED = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)


@pytest.mark.parametrize("array, affine, gz, rule", [
    (MASK.T, ITK, True, "nifti_axes_from_header"),                # as SimpleITK / nnU-Net write (column, row)
    (MASK.T[:, :, None], ITK, False, "nifti_axes_from_header"),   # (x, y, 1)
    (MASK, SWAPPED, True, "nifti_axes_from_header"),              # the header says i runs along y: rows
    (MASK.T, None, False, "nifti_axes_assumed"),                  # no orientation: ITK's order assumed
])
def test_nifti_axes_come_from_the_header_where_it_says_else_a_recorded_assumption(tmp_path, array, affine, gz, rule):
    name = "a.nii.gz" if gz else "a.nii"
    with warnings.catch_warnings():
        warnings.simplefilter("error", NiftiOrientationWarning)
        scores, rules = _score(_folder(tmp_path, {name: _nifti(array, affine, gz=gz, qform=affine is not None)}))
    assert scores == [1.0]
    assert set(rules) == {rule}


def test_a_nifti_saved_from_a_numpy_array_scores_transposed_with_a_warning_and_a_rule(tmp_path):
    folder = _folder(tmp_path, {"a.nii.gz": _nifti(MASK, np.eye(4), gz=True)})  # nibabel from (row, column)
    with pytest.warns(NiftiOrientationWarning, match=r"predictions for a: .*far better transposed \(Dice 1\.000\)"):
        scores, rules = _score(folder)
    assert scores == [pytest.approx(TRANSPOSED_DICE, abs=1e-12)] and TRANSPOSED_DICE < 0.6
    assert set(rules) == {"nifti_axes_from_header", "nifti_axes_warning"} and rules["nifti_axes_warning"].endswith(": a")


def test_a_non_square_nifti_of_transposed_size_says_so(tmp_path):
    target = np.zeros((20, 30), np.uint8)
    target[2:9, 3:25] = 1
    with pytest.raises(PredictionShapeError, match=r"a \(30x20 vs 20x30\)\. a's NIfTI file holds the transposed size"):
        _score(_folder(tmp_path, {"a.nii": _nifti(target, None)}), target)


def test_nifti_scores_channels_first_in_either_axis_order(tmp_path):
    scores = np.stack([1 - MASK, MASK]).astype(np.float32)  # [C, row, column]
    folder = _folder(tmp_path, {"a.nii.gz": _nifti(scores.transpose(2, 1, 0), ITK, gz=True, qform=True)})
    assert _score(folder)[0] == [1.0]


# ----------------------------------------------------------------------------- messages about missing cases

def test_missing_cases_say_the_common_prefix_found_instead(tmp_path):
    folder = _folder(tmp_path, {f"pred_{c}.png": _image(MASK) for c in ("a", "b")} | {"notes.txt": b"x"})
    with pytest.raises(MissingCasesError) as err:
        evaluate(folder, targets={"a": MASK, "b": MASK, "c": MASK}, metrics=["dice"], progress=False)
    assert str(err.value) == (
        "predictions: 3 of 3 cases have no prediction: a, b, c. Found instead: 2 name(s) that are case ids with the "
        "prefix 'pred_' (pred_a for a, pred_b for b); rename them without it; 1 file(s) ignored as not an image or "
        "array (.txt): notes.txt. Every case of the split is scored; predict them all (or score a different split).")


@pytest.mark.parametrize("names, found", [
    (["a_v2.png", "b_v2.png"], "2 name(s) that are case ids with the suffix '_v2' (a_v2 for a, b_v2 for b)"),
    (["A.png", "B.png"], "2 name(s) that differ from case ids in upper/lower case (A, B)"),
    (["x.png", "y.png"], "2 other ids (x, y); the split's ids look like a, b"),
    (["a.webm", "b.psd", "c"], "1 file(s) ignored as not an image or array (.webm): a.webm"),
])
def test_missing_cases_say_what_was_found_instead(tmp_path, names, found):
    files = {n: (_image(MASK) if n.endswith(".png") else b"plain text") for n in names}
    with pytest.raises(MissingCasesError, match="Found instead: .*" + re.escape(found)):
        evaluate(_folder(tmp_path, files), targets={"a": MASK, "b": MASK}, metrics=["dice"], progress=False)


def test_integer_keys_are_called_integers_not_missing_cases():
    with pytest.raises(MissingCasesError, match=r"Found instead: 2 integer key\(s\) \(0, 1\), not case ids: key each"):
        evaluate({0: MASK, 1: MASK}, targets={"a": MASK, "b": MASK}, metrics=["dice"], progress=False)


def test_two_files_of_one_case_in_subfolders_are_named_by_their_paths(tmp_path):
    folder = _folder(tmp_path, {"run1/a.png": _image(MASK), "run2/a_pred.png": _image(MASK)})
    with pytest.raises(UnknownCasesError, match=r"run1/a\.png and run2/a_pred\.png are both predictions for case a"):
        _score(folder)
