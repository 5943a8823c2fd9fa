"""Read predictions in any common form into one integer label map per case id.

Accepted: a dict ``case_id -> array``; a folder or a zip of files named by case id (PNG, GIF, BMP,
TIFF, NPY, NPZ, NIfTI), with or without the dataset's suffixes; an array or tensor ``[N, H, W]`` in
the split's order (sorted case ids); probabilities or logits ``[N, C, H, W]`` or ``[C, H, W]`` per
case; a Hugging Face dataset with ``case_id`` and ``mask`` columns. Every conversion that changes
values (argmax, threshold, {0, 255} -> {0, 1}) is recorded in :class:`PredictionSet.rules`.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._parallel import map_in_threads

#: File types read from a folder or zip (JPEG is refused: lossy compression changes labels).
SUFFIXES = (".png", ".gif", ".bmp", ".tif", ".tiff", ".npy", ".npz", ".nii.gz", ".nii")
# Suffixes people append to a case id when saving a mask; stripped when matching file names.
_COMMON_SUFFIXES = re.compile(r"(_(pred|prediction|mask|seg|segmentation|label|labels|gt))+$", re.IGNORECASE)
# Values counted at a time by distinct_values (counting widens them to 8 bytes each).
_BLOCK = 1 << 20


class PredictionError(ValueError):
    """Base class of every error about predictions (or user-given targets)."""


class MissingCasesError(PredictionError):
    """Cases of the split have no prediction."""


class UnknownCasesError(PredictionError):
    """Predictions for case ids the split does not have."""


class PredictionShapeError(PredictionError):
    """A prediction's size differs from its ground truth's, or its array has an unusable shape."""


class PredictionLabelError(PredictionError):
    """A prediction holds values that are not class ids (negative, too large, fractional, NaN)."""


class PredictionFormatError(PredictionError):
    """A prediction file cannot be read, or the input type is not one of the accepted forms."""


def preview(ids: Sequence[str], shown: int = 5) -> str:
    """``a, b, c, ... (N in all)``: a few ids and the count."""
    ids = list(ids)
    head = ", ".join(ids[:shown])
    return f"{head}, ... ({len(ids)} in all)" if len(ids) > shown else head


@dataclass
class PredictionSet:
    """Label maps by case id, with the rules applied to get them and a hash of what was read."""

    masks: dict[str, np.ndarray]
    rules: dict[str, str] = field(default_factory=dict)
    sha256: str = ""
    source: str = ""


def read_predictions(preds: Any, case_ids: Sequence[str] | None, *, num_classes: int,
                     match: Callable[[str], str | None] | None = None, name: str = "predictions") -> PredictionSet:
    """Read ``preds`` into label maps for exactly ``case_ids``.

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
    rules: dict[str, str] = {}
    load: Callable[[Any], Any] = _as_is
    with contextlib.ExitStack() as stack:  # an unpacked zip lives until its files are read
        if isinstance(preds, (str, Path)):
            path = Path(preds).expanduser()
            if path.is_file() and zipfile.is_zipfile(path):
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="medseg-eval-preds-"))
                try:
                    with zipfile.ZipFile(path) as z:
                        z.extractall(tmp)
                except (zipfile.BadZipFile, OSError) as err:
                    raise PredictionFormatError(f"{name}: cannot unpack {path} ({err}); zip the files again.") from err
                raw, load = _find_files(Path(tmp), case_ids, match, name), read_file
            elif path.is_dir():
                raw, load = _find_files(path, case_ids, match, name), read_file
            else:
                raise PredictionFormatError(f"{name}: {path} is neither a folder nor a zip file of predictions.")
            source = str(path)
        elif isinstance(preds, Mapping):
            raw, source = _unique_ids(preds.keys(), preds.values(), name), "dict"
        elif _is_hf_dataset(preds):
            missing = {"case_id", "mask"} - set(preds.column_names)
            if missing:
                raise PredictionFormatError(f"{name}: the dataset needs columns case_id and mask; it lacks "
                                            f"{sorted(missing)}.")
            raw, source = _unique_ids(preds["case_id"], preds["mask"], name), "datasets.Dataset"
        elif _is_array(preds):
            array = _to_numpy(preds, name)
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

        def convert(case_id: str) -> tuple[np.ndarray, dict[str, str]]:
            applied: dict[str, str] = {}  # one per case, merged in case order: the record does not depend on timing
            return to_labels(load(raw[case_id]), case_id, num_classes, applied, name), applied

        ids = sorted(raw)
        converted = map_in_threads(convert, ids)
    digest = hashlib.sha256()
    masks = {}
    for case_id, (mask, applied) in zip(ids, converted):
        rules.update(applied)
        masks[case_id] = mask
        digest.update(f"{case_id}\n{mask.shape}\n".encode())
        digest.update(np.ascontiguousarray(mask, dtype=np.uint8 if num_classes <= 256 else np.int64))  # no copy
    return PredictionSet(masks, rules, digest.hexdigest(), source)


def check_ids(found: Mapping[str, Any], case_ids: Sequence[str], name: str) -> None:
    """Raise unless ``found`` has exactly the ids ``case_ids`` (missing ones first)."""
    expected = set(case_ids)
    missing = sorted(expected - set(found))
    if missing:
        raise MissingCasesError(
            f"{name}: {len(missing)} of {len(expected)} cases have no prediction: {preview(missing)}. Every case of "
            "the split is scored; predict them all (or score a different split).")
    unknown = sorted(set(found) - expected)
    if unknown:
        raise UnknownCasesError(
            f"{name}: {len(unknown)} prediction(s) for case ids the split does not have: {preview(unknown)}. "
            f"The split's ids look like {preview(sorted(expected), 3)}; check the split and the file names.")


def to_labels(value: Any, case_id: str, num_classes: int, rules: dict[str, str], name: str) -> np.ndarray:
    """One prediction (labels ``[H, W]`` or scores ``[C, H, W]``) as an integer label map ``[H, W]``."""
    array = _to_numpy(value, f"{name} for {case_id}")
    if array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > 4:
        raise PredictionShapeError(f"{name} for {case_id}: an RGB image {array.shape}; save label maps as one "
                                   "channel of class ids.")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise PredictionLabelError(f"{name} for {case_id}: holds NaN or infinite values; fix the model output before "
                                   "scoring.")
    if array.ndim == 3:
        if array.shape[0] == 1:
            array = array[0]  # labels with a channel axis, or one channel of foreground probabilities
            if num_classes == 2 and np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.round(array)):
                if array.min() < 0 or array.max() > 1:
                    raise PredictionLabelError(
                        f"{name} for {case_id}: one-channel scores must be probabilities in [0, 1], but range from "
                        f"{array.min():.3g} to {array.max():.3g}; apply a sigmoid to logits first.")
                rules["threshold"] = "one-channel scores: foreground where > 0.5"
                array = (array > 0.5).astype(np.uint8)
        else:
            if array.shape[0] != num_classes:
                raise PredictionShapeError(f"{name} for {case_id}: {array.shape[0]} score channels, but the dataset "
                                           f"has {num_classes} classes.")
            rules["argmax"] = "class scores [C, H, W]: argmax over C"
            array = array.argmax(0)
    if array.ndim != 2:
        raise PredictionShapeError(f"{name} for {case_id}: expected labels [H, W] or scores [C, H, W], got {array.shape}.")
    if np.issubdtype(array.dtype, np.floating):
        if not np.array_equal(array, np.round(array)):
            raise PredictionLabelError(
                f"{name} for {case_id}: fractional values (e.g. {array[array != np.round(array)].flat[0]:.3g}); "
                "give class ids, or probabilities as [C, H, W] / [N, C, H, W] so the rule is explicit.")
    elif not np.issubdtype(array.dtype, np.integer):
        raise PredictionLabelError(f"{name} for {case_id}: dtype {array.dtype} holds no class ids.")
    # Linear passes (min, max, counts), not np.unique's sort, which took a third of the time to score a folder.
    if num_classes == 2 and array.size and array.max() == 255 and only_0_and_255(array):
        rules["values_0_255"] = "binary masks saved as {0, 255} read as {0, 1}"
        array = (array == 255).view(np.uint8)  # NumPy's bools are the bytes 0 and 1: no second copy
    elif array.size and (array.min() < 0 or array.max() >= num_classes):
        bad = [int(v) for v in distinct_values(array[(array < 0) | (array >= num_classes)])]
        raise PredictionLabelError(
            f"{name} for {case_id}: values {bad[:5]} are not class ids 0..{num_classes - 1}. "
            + ("A binary mask saved as {0, 255} is accepted; other scalings are not." if num_classes == 2 else ""))
    return np.ascontiguousarray(array, dtype=np.uint8 if num_classes <= 256 else np.int64)


def only_0_and_255(array: np.ndarray) -> bool:
    """Whether every value of ``array`` is 0 or 255 (a binary mask saved for viewing), in two linear passes.

    Examples
    --------
    >>> import numpy as np
    >>> only_0_and_255(np.array([0, 255, 255])), only_0_and_255(np.array([0, 255, -255]))
    (True, False)
    """
    return bool(np.count_nonzero(array) == np.count_nonzero(array == 255))


def distinct_values(array: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``array``, as ``np.unique`` gives them.

    Integers within a range no wider than the array's size (every label map) are counted in
    linear time, a block at a time so that memory stays small; other values are sorted.

    Examples
    --------
    >>> import numpy as np
    >>> distinct_values(np.array([[3, 0], [3, -2]], dtype=np.int8)).tolist()
    [-2, 0, 3]
    """
    array = np.asarray(array)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer) or array.size == 0:
        return np.unique(array)
    lo, hi = int(array.min()), int(array.max())
    wide = np.iinfo(np.int64)
    if hi - lo > max(array.size, 256) or lo < wide.min or hi > wide.max:
        return np.unique(array)
    flat = array.reshape(-1)
    counts = np.zeros(hi - lo + 1, dtype=np.int64)
    for start in range(0, flat.size, _BLOCK):
        counts += np.bincount(flat[start:start + _BLOCK].astype(np.int64) - lo, minlength=counts.size)
    return (np.flatnonzero(counts) + lo).astype(array.dtype)


def read_file(path: Path) -> np.ndarray:
    """One prediction file as an array (images as stored: palette indices, grey levels)."""
    suffix = "".join(path.suffixes[-2:]).lower() if path.name.lower().endswith(".nii.gz") else path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if len(data.files) != 1:
                    raise PredictionFormatError(f"{path}: an .npz prediction must hold one array, it holds {data.files}.")
                return data[data.files[0]]
        if suffix in (".nii", ".nii.gz"):
            import nibabel as nib

            data = np.asarray(nib.load(path).dataobj)
            return (data.reshape(data.shape[:2]) if data.ndim == 3 and data.shape[2] == 1 else data).T
        from PIL import Image

        with Image.open(path) as image:
            if image.mode == "P":
                return _palette_labels(image)
            if image.mode in ("RGB", "RGBA"):
                rgb = np.asarray(image)
                if (rgb[..., :3] == rgb[..., :1]).all():
                    return rgb[..., 0]  # grey saved as RGB
                return rgb
            return np.asarray(image)
    except PredictionFormatError:
        raise
    except Exception as err:  # any reader's failure on a damaged file
        raise PredictionFormatError(f"cannot read prediction {path}: {err}.") from err


def _find_files(folder: Path, case_ids: Sequence[str] | None, match: Callable[[str], str | None] | None,
                name: str) -> dict[str, Path]:
    """The prediction file of each case id in ``folder`` (read later, in threads)."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")
             and "__MACOSX" not in p.parts]
    lossy = [p.name for p in files if p.suffix.lower() in (".jpg", ".jpeg")]
    if lossy:
        raise PredictionFormatError(f"{name}: JPEG files ({preview(lossy, 3)}) change labels through lossy compression; "
                                    "save predictions as PNG (or NPY).")
    readable = [p for p in files if any(p.name.lower().endswith(s) for s in SUFFIXES)]
    known = set(case_ids or ())
    found: dict[str, Path] = {}
    for path in readable:
        stem = path.name[: -len(next(s for s in SUFFIXES if path.name.lower().endswith(s)))]
        case_id = stem if stem in known else (match(stem) if match else None) or _COMMON_SUFFIXES.sub("", stem)
        if case_id in found:
            raise UnknownCasesError(f"{name}: {found[case_id].name} and {path.name} are both predictions for case "
                                    f"{case_id}; keep one.")
        found[case_id] = path
    return found


def _unique_ids(ids: Any, values: Any, name: str) -> dict[str, Any]:
    """``{str(id): value}``, raising when two entries have the same id (as strings: ``1`` and ``"1"`` collide)."""
    out: dict[str, Any] = {}
    repeated = []
    for case_id, value in zip(ids, values):
        key = str(case_id)
        if key in out:
            repeated.append(key)
        out[key] = value
    if repeated:
        raise UnknownCasesError(f"{name}: case ids given more than once: {preview(sorted(set(repeated)))}; give one "
                                "prediction per case.")
    return out


def _palette_labels(image: Any) -> np.ndarray:
    """Labels of a palette image: its indices, unless its palette is grey and orders the grey levels
    differently from the indices (Pillow saves a black-and-white RGB image as a GIF with white at
    index 0): then what the image shows, its grey levels, is read."""
    indices = np.asarray(image)
    palette = np.asarray(image.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
    used = distinct_values(indices)
    if used.size == 0 or used.max() >= len(palette):
        return indices
    colours = palette[used]
    grey = (colours == colours[:, :1]).all()
    if grey and (np.diff(colours[:, 0].astype(int)) <= 0).any():
        return palette[:, 0][indices]
    return indices


def _as_is(value: Any) -> Any:
    return value


def _is_hf_dataset(x: Any) -> bool:
    return type(x).__module__.startswith("datasets.") and hasattr(x, "column_names")


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or type(x).__module__.startswith("torch")


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, np.ma.MaskedArray):
        raise PredictionFormatError(f"{name}: a masked array, whose mask would be ignored; fill it first "
                                    "(`.filled(0)`).")
    if type(value).__module__.startswith("torch"):
        try:
            value = value.detach().cpu()
            if str(value.dtype) == "torch.bfloat16":
                value = value.float()  # NumPy has no bfloat16; float32 holds its values exactly
            value = value.numpy()
        except (TypeError, RuntimeError, NotImplementedError) as err:  # sparse, nested, meta, quantized, float8
            raise PredictionFormatError(f"{name}: a tensor NumPy cannot read ({err}); give a dense tensor of class "
                                        "ids or scores, e.g. `.to_dense()` or `.float()`.") from err
    elif type(value).__module__.startswith("PIL."):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except Exception as err:
            raise PredictionFormatError(f"{name}: cannot turn a {type(value).__name__} into an array ({err}).") from err
    if value.dtype == object or not (value.dtype == np.bool_ or np.issubdtype(value.dtype, np.number)):
        raise PredictionFormatError(f"{name}: expected numbers, got dtype {value.dtype}.")
    return value
