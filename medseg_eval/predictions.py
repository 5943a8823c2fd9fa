"""Read predictions in any common form into one integer label map per case id.

Accepted: a dict ``case_id -> array``; a folder or a zip of files named by case id (PNG, GIF, BMP,
TIFF, lossless WebP, NPY, NPZ, NIfTI; told apart by their bytes, JPEG refused whatever its name), with
or without the dataset's suffixes; zips are read member by member in place, within caps
(:mod:`medseg_eval.archives`); an array or tensor ``[N, H, W]`` in
the split's order (sorted case ids); probabilities or logits ``[N, C, H, W]`` or ``[C, H, W]`` per
case; a Hugging Face dataset with ``case_id`` and ``mask`` columns. Every conversion that changes
values or reads a file one way of several (argmax, threshold, {0, 255} -> {0, 1}, an alpha channel read as
the mask, NIfTI axes) is recorded in :class:`PredictionSet.rules`.

:func:`open_predictions` reads the case ids and each label map's size first (files: from their
headers) and the label maps themselves a few cases at a time (:meth:`CaseReader.read`), so that
scoring holds a batch of them, not all; :func:`read_predictions` reads them all at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._parallel import map_in_threads
from .archives import archive_members
from .labels import distinct_values, label_shape, only_0_and_255, to_array, to_labels
from .prediction_errors import (
    MissingCasesError,
    PredictionError,
    PredictionFormatError,
    PredictionLabelError,
    PredictionShapeError,
    UnknownCasesError,
    preview,
)
from .prediction_files import SUFFIXES, PredictionFile, decode, file_shape, find_files, match_files, read_file
from .prediction_formats import image_labels
from .prediction_ids import check_ids, unique_ids
from .prediction_nifti import NiftiOrientationWarning

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["SUFFIXES", "CaseReader", "MissingCasesError", "NiftiOrientationWarning", "PredictionError",
           "PredictionFormatError",
           "PredictionLabelError", "PredictionSet", "PredictionShapeError", "UnknownCasesError", "check_ids",
           "distinct_values", "only_0_and_255", "open_predictions", "preview", "read_file", "read_predictions",
           "to_labels"]


@dataclass
class PredictionSet:
    """Label maps by case id, with the rules applied to get them and a hash of what was read."""

    masks: dict[str, np.ndarray]
    rules: dict[str, str] = field(default_factory=dict)
    sha256: str = ""
    source: str = ""


class CaseReader:
    """Predictions whose case ids and label-map sizes are known, read a few cases at a time, in case order.

    Made by :func:`open_predictions`, used as a context manager (an open zip lives until it
    closes). Each case is decoded, checked and hashed when :meth:`read` asks for it, in threads,
    and the reader keeps nothing of it: memory follows what the caller holds.

    Attributes
    ----------
    ids
        The case ids, sorted: the order :meth:`read` goes through.
    shapes
        Each case's label-map size ``(H, W)``, known before any is decoded.
    rules
        The conversions applied so far (complete once every case is read), merged in case order.
    source
        Where the predictions came from (a path, ``"dict"``, ...).
    """

    def __init__(self, items: Mapping[str, Any], load: Callable[[Any, str, dict[str, str]], Any], *,
                 num_classes: int, name: str,
                 source: str, rules: Mapping[str, str] | None = None, stack: contextlib.ExitStack | None = None,
                 shapes: Mapping[str, tuple[int, int]] | None = None) -> None:
        self.ids = sorted(items)
        self.rules = dict(rules or {})
        self.source, self.num_classes, self.name = source, num_classes, name
        self._items, self._load = items, load
        self._stack = stack or contextlib.ExitStack()
        self._read, self._digest = 0, hashlib.sha256()
        self._transposed: list[str] = []
        self.shapes = dict(shapes) if shapes is not None else dict(zip(self.ids, map_in_threads(self._shape, self.ids)))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def read(self, ids: Sequence[str]) -> list[np.ndarray]:
        """The label maps of the next cases ``ids`` (decoded and checked in threads), recording their rules
        and adding them to the hash.

        Raises
        ------
        PredictionFormatError, PredictionLabelError, PredictionShapeError
            For the first bad case among ``ids`` (naming it); ``RuntimeError`` when ``ids`` are not the
            next cases in order.
        """
        ids = list(ids)
        if ids != self.ids[self._read:self._read + len(ids)]:
            raise RuntimeError(f"{self.name}: cases are read once each, in sorted order; the next are "
                               f"{preview(self.ids[self._read:], 3)}, not {preview(ids, 3)}.")
        converted = map_in_threads(self._convert, ids)
        masks = []
        for case_id, (mask, applied) in zip(ids, converted):
            if mask.shape != self.shapes[case_id]:
                raise PredictionShapeError(f"{self.name} for {case_id}: its header gives a "
                                           f"{'x'.join(map(str, self.shapes[case_id]))} label map, but it holds "
                                           f"{'x'.join(map(str, mask.shape))}; save it again.")
            self.rules.update(applied)  # merged in case order: the record does not depend on timing
            self._digest.update(f"{case_id}\n{mask.shape}\n".encode())
            self._digest.update(np.ascontiguousarray(mask, dtype=np.uint8 if self.num_classes <= 256 else np.int64))
            masks.append(mask)
        self._read += len(ids)
        return masks

    @property
    def sha256(self) -> str:
        """sha256 over every case in order (its id, size and labels); known once every case is read."""
        if self._read < len(self.ids):
            raise RuntimeError(f"{self.name}: the hash covers every case; {len(self.ids) - self._read} are not read yet.")
        return self._digest.hexdigest()

    def relabel(self, num_classes: int) -> CaseReader:
        """The same cases read again, the label maps this reader gives converted for ``num_classes``
        (e.g. {0, 255} read with 256 classes, then as {0, 1} with 2). Lives as long as this reader."""
        def load(case_id: str, label: str, rules: dict[str, str]) -> np.ndarray:
            mask, applied = self._convert(case_id)
            rules.update(applied)
            return mask

        return CaseReader({c: c for c in self.ids}, load, num_classes=num_classes, name=self.name,
                          source=self.source, shapes=self.shapes)

    def check_orientation(self, ids: Sequence[str], masks: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> None:
        """Warn (once, :class:`NiftiOrientationWarning`) and record (rule ``nifti_axes_warning``) the NIfTI
        predictions among ``ids`` that agree far better with their ``targets`` transposed, from pixel counts.

        A NIfTI file's axes are read from its header or assumed (:mod:`medseg_eval.prediction_nifti`); a
        mask saved from a NumPy ``(row, column)`` array with nibabel comes back transposed. Square cases
        only: others of transposed size are refused as a size mismatch (see :meth:`shape_hint`).
        """
        for case_id, mask, target in zip(ids, masks, targets):
            if not (self._is_nifti(case_id) and mask.shape == target.shape and mask.shape[0] == mask.shape[1]):
                continue
            marked = np.count_nonzero(target) + np.count_nonzero(mask)
            if not marked:
                continue
            as_read = 2 * np.count_nonzero((mask == target) & (target > 0)) / marked
            swapped = 2 * np.count_nonzero((mask.T == target) & (target > 0)) / marked
            if swapped >= 0.5 and swapped - as_read >= 0.25:
                self._transposed.append(case_id)
                if len(self._transposed) == 1:
                    warnings.warn(
                        f"{self.name} for {case_id}: this NIfTI prediction agrees with its ground truth far better "
                        f"transposed (Dice {swapped:.3f}) than as read (Dice {as_read:.3f}); it was likely saved from "
                        "a NumPy (row, column) array. Save it with axes (column, row), e.g. "
                        "nib.Nifti1Image(mask.T, ...), or as PNG. All such cases are listed in "
                        "prediction_rules['nifti_axes_warning'].", NiftiOrientationWarning, stacklevel=4)
                self.rules["nifti_axes_warning"] = (f"NIfTI predictions that agree far better with their ground "
                                                    f"truth transposed (scored as read): {preview(self._transposed)}")

    def shape_hint(self, case_id: str, target_shape: tuple[int, int]) -> str:
        """A hint for a size mismatch of ``case_id`` that a transposed NIfTI file explains (else ``""``)."""
        if self._is_nifti(case_id) and self.shapes[case_id][::-1] == tuple(target_shape):
            return (f" {case_id}'s NIfTI file holds the transposed size: it was likely saved from a NumPy "
                    "(row, column) array; save it with axes (column, row), e.g. nib.Nifti1Image(mask.T, ...).")
        return ""

    def _is_nifti(self, case_id: str) -> bool:
        item = self._items[case_id]
        return isinstance(item, PredictionFile) and item.kind in ("nifti", "nifti-gz")

    def _convert(self, case_id: str) -> tuple[np.ndarray, dict[str, str]]:
        applied: dict[str, str] = {}  # one per case, merged in case order
        value = self._load(self._items[case_id], f"{self.name} for {case_id}", applied)
        return to_labels(value, case_id, self.num_classes, applied, self.name), applied

    def _shape(self, case_id: str) -> tuple[int, int]:
        item = self._items[case_id]
        if isinstance(item, PredictionFile):
            shape = label_shape(file_shape(item))
        elif type(item).__module__.startswith("PIL.") and item.mode in ("1", "L", "P", "I", "F"):
            shape = (item.height, item.width)
        else:
            shape = label_shape(tuple(item.shape)) if hasattr(item, "shape") else None
        # A shape to_labels refuses, or an item without one: converting it says why (or gives its size).
        return shape if shape is not None else self._convert(case_id)[0].shape


def open_predictions(preds: Any, case_ids: Sequence[str] | None, *, num_classes: int,
                     match: Callable[[str], str | None] | None = None, name: str = "predictions") -> CaseReader:
    """Open ``preds`` as a :class:`CaseReader` for exactly ``case_ids``: ids and sizes now, labels when read.

    Parameters
    ----------
    preds
        Any accepted form (see the module docstring).
    case_ids
        The split's case ids, in its order (what an ``[N, H, W]`` array is matched against);
        ``None`` takes the ids found (an array's rows become ``"0"``, ``"1"``, ..., zero-padded to one
        width, ``"00"`` ... ``"11"`` for 12 rows, so that they sort in row order).
    num_classes
        Classes including background; decides argmax vs threshold and the {0, 255} rule.
    match
        Maps a file stem to a case id (the dataset's naming rule); ``None``: exact ids, or ids
        followed by a common suffix such as ``_pred`` or ``_mask``.

    Raises
    ------
    MissingCasesError, UnknownCasesError, PredictionFormatError
        Missing and unknown cases before any file is opened; then a file whose header cannot be read.

    Examples
    --------
    >>> import numpy as np
    >>> with open_predictions({"b": np.zeros((1, 2)), "a": np.array([[0, 255]])}, ["a", "b"], num_classes=2) as p:
    ...     p.shapes, [m.tolist() for m in p.read(["a"])], p.rules
    ({'a': (1, 2), 'b': (1, 2)}, [[[0, 1]]], {'values_0_255': 'binary masks saved as {0, 255} read as {0, 1}'})
    """
    rules: dict[str, str] = {}
    load: Callable[[Any, str, dict[str, str]], Any] = _in_memory
    stack = contextlib.ExitStack()  # an open zip lives until the reader closes
    try:
        if isinstance(preds, (str, Path)):
            path = Path(preds).expanduser()
            if path.is_file() and zipfile.is_zipfile(path):
                raw = match_files(*archive_members(path, stack, name), case_ids, match, name)
                load = _from_file
            elif path.is_dir():
                raw, load = find_files(path, case_ids, match, name), _from_file
            else:
                raise PredictionFormatError(f"{name}: {path} is neither a folder nor a zip file of predictions.")
            source = str(path)
        elif isinstance(preds, Mapping):
            raw, source = unique_ids(preds.keys(), preds.values(), name), "dict"
        elif _is_hf_dataset(preds):
            missing = {"case_id", "mask"} - set(preds.column_names)
            if missing:
                raise PredictionFormatError(f"{name}: the dataset needs columns case_id and mask; it lacks "
                                            f"{sorted(missing)}.")
            raw, source = unique_ids(preds["case_id"], preds["mask"], name), "datasets.Dataset"
        elif _is_array(preds):
            array = to_array(preds, name)
            if case_ids is None:  # zero-padded, so that the ids sort in row order
                case_ids = [f"{i:0{len(str(max(len(array) - 1, 0)))}d}" for i in range(len(array))]
            if array.shape[0] != len(case_ids) or array.ndim not in (3, 4):
                raise PredictionShapeError(
                    f"{name}: an array must be [N, H, W] labels or [N, C, H, W] scores with N = {len(case_ids)} "
                    f"cases of the split, in its order (sorted case ids: {preview(case_ids, 3)}); got shape "
                    f"{array.shape}.")
            raw, source = dict(zip(case_ids, array)), f"array{list(array.shape)}"
            rules["order"] = "array rows matched to the split's case ids in sorted order"
        else:
            raise PredictionFormatError(
                f"{name}: cannot read a {type(preds).__name__}; give a dict case_id -> array, a folder or zip of "
                "files, an array [N, H, W] / [N, C, H, W], or a datasets.Dataset with case_id and mask columns.")

        if case_ids is not None:
            check_ids(raw, case_ids, name)
        elif not raw:
            raise PredictionFormatError(f"{name}: no cases found in {source}; there is nothing to score.")
        return CaseReader(raw, load, num_classes=num_classes, name=name, source=source, rules=rules, stack=stack)
    except BaseException:
        stack.close()
        raise


def read_predictions(preds: Any, case_ids: Sequence[str] | None, *, num_classes: int,
                     match: Callable[[str], str | None] | None = None, name: str = "predictions") -> PredictionSet:
    """Read ``preds`` into label maps for exactly ``case_ids``, all at once (see :func:`open_predictions`).

    Raises
    ------
    MissingCasesError, UnknownCasesError, PredictionShapeError, PredictionLabelError, PredictionFormatError
        Missing and unknown cases before any file is read; then the first bad case in sorted order.

    Notes
    -----
    Files are decoded and checked in a few threads (decoders release the GIL); the result, its
    rules and its hash do not depend on them.

    Examples
    --------
    >>> import numpy as np
    >>> p = read_predictions({"a": np.array([[0, 255]]), "b": np.zeros((1, 2))}, ["a", "b"], num_classes=2)
    >>> p.masks["a"].tolist(), p.rules
    ([[0, 1]], {'values_0_255': 'binary masks saved as {0, 255} read as {0, 1}'})
    """
    with open_predictions(preds, case_ids, num_classes=num_classes, match=match, name=name) as reader:
        masks = dict(zip(reader.ids, reader.read(reader.ids)))
        return PredictionSet(masks, reader.rules, reader.sha256, reader.source)


def _from_file(file: PredictionFile, label: str, rules: dict[str, str]) -> np.ndarray:
    return decode(file, rules)


def _in_memory(value: Any, label: str, rules: dict[str, str]) -> Any:
    """A value as given; an image (e.g. a datasets.Dataset's mask column) read as files are, alpha and all."""
    return image_labels(value, label, rules) if type(value).__module__.startswith("PIL.") else value


def _is_hf_dataset(x: Any) -> bool:
    return type(x).__module__.startswith("datasets.") and hasattr(x, "column_names")


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or type(x).__module__.startswith("torch")
