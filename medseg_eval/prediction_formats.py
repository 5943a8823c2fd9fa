"""What a prediction file holds, told from its bytes (never its name), and images turned into label maps.

A file named ``.png`` that holds JPEG data is JPEG: refused, as its lossy compression changes labels.
:func:`sniff` reads the first bytes (and the NIfTI header inside gzip); :func:`image_labels` turns a
Pillow image into the labels it shows, deciding what an alpha channel means and recording that decision.
"""

from __future__ import annotations

import gzip
from typing import Any, BinaryIO

import numpy as np

from .labels import distinct_values
from .prediction_errors import PredictionFormatError

#: Pixels a label map may have at most (16384 x 16384 px would be 2 ** 28), checked from its header before
#: it is decoded, so that a small file declaring a huge image (a decompression bomb) is refused.
MAX_PIXELS = 1 << 27

#: Formats read, by what :func:`sniff` returns.
READABLE = ("png", "gif", "bmp", "tiff", "webp", "npy", "npz", "nifti", "nifti-gz")
# Formats recognised and refused: name shown, and why.
_REFUSED = {
    "jpeg": ("JPEG", "its lossy compression changes labels"),
    "webp-lossy": ("lossy WebP", "its lossy compression changes labels (WebP saved with lossless=True is read)"),
    "jpeg2000": ("JPEG 2000", "it is often lossy and is not read here"),
    "avif": ("AVIF", "it is often lossy and is not read here"),
    "heif": ("HEIF", "it is often lossy and is not read here"),
    "jxl": ("JPEG XL", "it is often lossy and is not read here"),
    "dicom": ("DICOM", "it is not read here"),
    "gzip": ("gzip-compressed data that is not NIfTI", "only .nii.gz is read compressed"),
}
_HEAD = 512


def sniff(stream: BinaryIO) -> str | None:
    """The format of the file ``stream`` reads (at its start), from its bytes: a key of :data:`READABLE`,
    a refused format (``"jpeg"``, ``"webp-lossy"``, ...), or ``None`` when it is none of them.

    Examples
    --------
    >>> import io
    >>> sniff(io.BytesIO(b"\\x89PNG\\r\\n\\x1a\\n" + bytes(40))), sniff(io.BytesIO(b"\\xff\\xd8\\xff\\xe0")), sniff(io.BytesIO(b"a,b"))
    ('png', 'jpeg', None)
    """
    head = stream.read(_HEAD)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM" and len(head) > 18 and int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
        return "bmp"
    if head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
        return "tiff"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "npz"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_kind(stream)
    if head[:12] == b"\0\0\0\x0cjP  \r\n\x87\n" or head[:4] == b"\xff\x4f\xff\x51":
        return "jpeg2000"
    if head[:2] == b"\xff\x0a" or head[:12] == b"\0\0\0\x0cJXL \r\n\x87\n":
        return "jxl"
    if head[4:8] == b"ftyp":
        return "avif" if head[8:12] in (b"avif", b"avis") else "heif"
    if head[128:132] == b"DICM":
        return "dicom"
    if nifti_version(head):
        return "nifti"
    if head[:2] == b"\x1f\x8b":
        stream.seek(0)
        try:
            inner = gzip.GzipFile(fileobj=stream).read(_HEAD)
        except (OSError, EOFError):
            return "gzip"
        return "nifti-gz" if nifti_version(inner) else "gzip"
    return None


def refusal(kind: str | None, location: str, suffix: str) -> str:
    """Why a file of format ``kind`` (from :func:`sniff`) at ``location``, named with ``suffix``, is refused;
    ``""`` for a format read, or for bytes of no known format (the reader's error says what failed).

    Examples
    --------
    >>> refusal("jpeg", "a.png", ".png")
    'a.png: JPEG data (named .png); its lossy compression changes labels. Save predictions as PNG (or NPY).'
    """
    if kind not in _REFUSED:
        return ""
    label, why = _REFUSED[kind]
    named = f" (named {suffix})" if suffix and not _suffix_says(suffix, kind) else ""
    return f"{location}: {label} data{named}; {why}. Save predictions as PNG (or NPY)."


def nifti_version(head: bytes) -> int:
    """1 or 2 when ``head`` starts a single-file NIfTI-1 or NIfTI-2 header, else 0."""
    for order in ("little", "big"):
        size = int.from_bytes(head[:4], order) if len(head) >= 4 else 0
        if size == 348 and head[344:348] == b"n+1\0":
            return 1
        if size == 540 and head[4:8] == b"n+2\0":
            return 2
    return 0


def check_image(image: Any, location: str) -> None:
    """Refuse, from an opened image's header, what its pixels would not show faithfully: lossy data, 16-bit
    colour (Pillow keeps the high bytes only), several frames, more than :data:`MAX_PIXELS` pixels."""
    fmt = image.format or ""
    if fmt in ("JPEG", "MPO") or image.info.get("compression") in ("jpeg", "tiff_jpeg", "webp"):
        raise PredictionFormatError(f"{location}: {fmt} data with lossy (JPEG) compression, which changes labels; "
                                    "save predictions as PNG (or NPY).")
    check_pixels(image.height * image.width, location)
    rawmodes = [str(tile[3]) for tile in getattr(image, "tile", ()) or ()]
    if image.mode in ("RGB", "RGBA", "LA") and any(";16" in mode for mode in rawmodes):
        raise PredictionFormatError(f"{location}: a 16-bit {image.mode} image, which Pillow reads keeping only the "
                                    "high byte of each value (labels 1..255 become 0); save a one-channel (grey or "
                                    "16-bit grey) image.")
    if getattr(image, "is_animated", False):
        raise PredictionFormatError(f"{location}: holds {getattr(image, 'n_frames', 'several')} frames; save one "
                                    "label map per file.")


def check_pixels(pixels: int, location: str) -> None:
    """Refuse a label map of more than :data:`MAX_PIXELS` pixels, before it is decoded."""
    if pixels > MAX_PIXELS:
        raise PredictionFormatError(f"{location}: its header declares {pixels} pixels, more than the "
                                    f"{MAX_PIXELS} read at most (a decompression bomb, or a label map far larger "
                                    "than any ground truth); save it at the ground truth's size, or raise "
                                    "medseg_eval.prediction_formats.MAX_PIXELS.")


def image_labels(image: Any, location: str, rules: dict[str, str]) -> np.ndarray:
    """A Pillow image as the labels it shows (palette indices, grey levels), rules recorded in ``rules``.

    An alpha channel is never dropped unseen: uniform alpha carries nothing; alpha that is the only
    signal (uniform colour) is read as the mask (rule ``alpha_mask``); alpha zero exactly where the grey
    level is zero repeats the grey levels (rule ``alpha_redundant``); any other alpha is refused.

    Examples
    --------
    >>> from PIL import Image
    >>> rgba = np.zeros((2, 3, 4), np.uint8)
    >>> rgba[0, 1:, 3] = 255
    >>> rules = {}
    >>> image_labels(Image.fromarray(rgba), "a.png", rules).tolist(), list(rules)
    ([[0, 255, 255], [0, 0, 0]], ['alpha_mask'])
    """
    check_image(image, location)
    mode = image.mode
    if mode == "P":
        return _palette_labels(image, rules)
    if mode in ("1", "L", "I", "F") or mode.startswith("I;16"):
        return np.asarray(image)
    if mode not in ("RGB", "RGBA", "LA"):
        raise PredictionFormatError(f"{location}: a {mode} image holds no label map; save one channel of class "
                                    "ids (a grey or palette image).")
    pixels = np.asarray(image)
    colour, alpha = (pixels, None) if mode == "RGB" else (pixels[..., :-1], pixels[..., -1])
    grey = colour.shape[-1] == 1 or bool((colour == colour[..., :1]).all())
    if alpha is None or alpha.min() == alpha.max():
        return colour[..., 0] if grey else colour
    what = "grey and alpha (LA)" if mode == "LA" else "RGBA"
    if colour.size and bool((colour == colour.reshape(-1, colour.shape[-1])[0]).all()):
        rules["alpha_mask"] = "images of one colour whose alpha channel holds the only signal: the alpha read as the mask"
        return alpha
    if grey and np.array_equal(alpha == 0, colour[..., 0] == 0):
        rules["alpha_redundant"] = ("images whose alpha is zero exactly where the grey level is zero: the grey "
                                    "levels read")
        return colour[..., 0]
    raise PredictionFormatError(f"{location}: a {what} image whose {'grey' if grey else 'colour'} and alpha "
                                "channels hold different masks; save the mask as one channel (grey or palette).")


def _palette_labels(image: Any, rules: dict[str, str]) -> np.ndarray:
    """Labels of a palette image: its indices, unless its palette is grey and orders the grey levels
    differently from the indices (Pillow saves a black-and-white RGB image as a GIF with white at
    index 0): then what the image shows, its grey levels, is read (rule ``palette_grey_levels``)."""
    indices = np.asarray(image)
    palette = np.asarray(image.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
    used = distinct_values(indices)
    if used.size == 0 or used.max() >= len(palette):
        return indices
    colours = palette[used]
    grey = (colours == colours[:, :1]).all()
    if grey and (np.diff(colours[:, 0].astype(int)) <= 0).any():
        rules["palette_grey_levels"] = ("palette images whose grey palette orders the grey levels against the "
                                        "indices (Pillow's black-and-white GIFs): the grey levels read")
        return palette[:, 0][indices]
    return indices


def _webp_kind(stream: BinaryIO) -> str:
    """``"webp"`` (lossless, VP8L) or ``"webp-lossy"`` (VP8, or what cannot be told), from its chunks."""
    stream.seek(12)
    for _ in range(16):
        chunk = stream.read(8)
        if len(chunk) < 8:
            break
        if chunk[:4] == b"VP8L":
            return "webp"
        if chunk[:4] == b"VP8 ":
            return "webp-lossy"
        size = int.from_bytes(chunk[4:], "little")
        stream.seek(size + (size & 1), 1)
    return "webp-lossy"


def _suffix_says(suffix: str, kind: str) -> bool:
    """Whether a file's ``suffix`` names the format ``kind`` its bytes hold (else the message says both)."""
    names = {"jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"), "webp-lossy": (".webp",), "jpeg2000": (".jp2", ".j2k", ".jpx"),
             "avif": (".avif",), "heif": (".heic", ".heif"), "jxl": (".jxl",), "dicom": (".dcm",), "gzip": (".gz",)}
    return suffix in names.get(kind, ())

