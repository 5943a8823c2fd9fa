"""NIfTI predictions: which voxel axis is the row, read from the header where it says, else a recorded assumption.

A 2D label map in NIfTI has voxel axes ``(i, j)``. ITK and SimpleITK (and so nnU-Net) write an image of
``(row, column)`` pixels with ``i`` along the columns; nibabel saving a NumPy array keeps the array's
order, ``i`` along its rows. The header tells them apart only where it gives an orientation
(``sform_code`` or ``qform_code`` > 0): then the voxel axis nearer world x (else y, else z) is the
column, as images are displayed. Where it gives none, ``i`` is taken as the column, and that
assumption is recorded (rule ``nifti_axes_assumed``); :func:`medseg_eval.evaluate` also warns when a
NIfTI prediction scores far better transposed. Flips are never applied: pixels keep the order in which
their writer laid them out.
"""

from __future__ import annotations

import gzip
import io
from typing import Any, BinaryIO

import numpy as np

from .prediction_formats import check_pixels, nifti_version

#: The rules a NIfTI prediction can add to ``prediction_rules``, by how its axes were decided.
RULES = {
    "header": ("nifti_axes_from_header", ("NIfTI voxel axes ordered by the header's orientation (sform, else qform): "
               "the axis nearer world x (else y) is the column, the other the row; no flips")),
    "assumed": ("nifti_axes_assumed", ("NIfTI files whose header gives no orientation: voxel axes (i, j) read as "
                "(column, row), as ITK and SimpleITK write 2D images (a NumPy array saved with nibabel and no "
                "affine comes back transposed)")),
}


class NiftiOrientationWarning(UserWarning):
    """A NIfTI prediction agrees with its ground truth far better transposed than as read."""


def nifti_header(stream: BinaryIO, compressed: bool) -> Any:
    """The NIfTI-1 or NIfTI-2 header at the start of ``stream`` (gzip-compressed when ``compressed``)."""
    import nibabel as nib

    raw = gzip.GzipFile(fileobj=stream) if compressed else stream
    head = raw.read(544)
    cls = nib.Nifti2Header if nifti_version(head) == 2 else nib.Nifti1Header
    return cls.from_fileobj(io.BytesIO(head), check=False)


def column_axis_first(header: Any) -> tuple[bool, str]:
    """Whether voxel axis ``i`` is the column axis, and how that was decided (``"header"``, ``"assumed"``).

    Examples
    --------
    >>> import nibabel as nib
    >>> swapped = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    >>> column_axis_first(nib.Nifti1Image(np.zeros((2, 3), np.uint8), swapped).header)
    (False, 'header')
    >>> column_axis_first(nib.Nifti1Image(np.zeros((2, 3), np.uint8), None).header)
    (True, 'assumed')
    """
    if int(header["sform_code"]) > 0:
        affine = header.get_sform()
    elif int(header["qform_code"]) > 0:
        affine = header.get_qform()
    else:
        return True, "assumed"
    spans = np.abs(np.asarray(affine, dtype=float)[:3, :2])
    along_i, along_j = int(spans[:, 0].argmax()), int(spans[:, 1].argmax())
    if along_i == along_j or not (spans[along_i, 0] > 0 and spans[along_j, 1] > 0):
        return True, "assumed"  # oblique or degenerate: the header does not order the two axes
    return along_i < along_j, "header"


def nifti_shape(stream: BinaryIO, compressed: bool, location: str) -> tuple[int, ...]:
    """The shape of the array :func:`read_nifti` gives, from the header alone."""
    header = nifti_header(stream, compressed)
    shape = tuple(int(n) for n in header.get_data_shape())
    check_pixels(int(np.prod(shape[:2], dtype=np.int64)) if shape else 0, location)
    return _oriented_shape(shape, column_axis_first(header)[0])


def read_nifti(stream: BinaryIO, compressed: bool, location: str, rules: dict[str, str]) -> np.ndarray:
    """The array of a NIfTI file as ``(row, column)`` (or ``(C, row, column)``), its axis rule added to ``rules``."""
    import nibabel as nib

    header = nifti_header(stream, compressed)
    shape = tuple(int(n) for n in header.get_data_shape())
    check_pixels(int(np.prod(shape[:2], dtype=np.int64)) if shape else 0, location)
    stream.seek(0)
    raw = gzip.GzipFile(fileobj=stream) if compressed else stream
    cls = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    data = np.asarray(cls.from_stream(raw).dataobj)
    first, how = column_axis_first(header)
    key, text = RULES[how]
    rules[key] = text
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    if data.ndim == 2:
        return data.T if first else data
    if data.ndim == 3:  # (i, j, channel) -> (channel, row, column)
        return data.transpose(2, 1, 0) if first else data.transpose(2, 0, 1)
    return data


def _oriented_shape(shape: tuple[int, ...], first: bool) -> tuple[int, ...]:
    if len(shape) == 3 and shape[2] == 1:
        shape = shape[:2]
    if len(shape) == 2:
        return shape[::-1] if first else shape
    if len(shape) == 3:
        return (shape[2], shape[1], shape[0]) if first else (shape[2], shape[0], shape[1])
    return shape
