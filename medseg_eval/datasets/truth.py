"""A split's ground truth, loaded once per process and decoded a few cases at a time.

What stays in memory for the last :data:`CACHE_SPLITS` splits used is what is cheap: each mask (and
region of interest) as stored in the parquet shards, PNG bytes, with its size read from the PNG
header. Masks are decoded (in threads; PNG decoding releases the GIL) when a batch asks for them;
the decoded arrays of the cached splits are kept as well while they fit :data:`DECODED_BYTES`
(Kvasir-SEG, DRIVE: later calls decode nothing), so that a split of large images (ISIC 2018 at
native resolution: tens of GB decoded) costs a batch of memory, not the split. The cache key is the
dataset, the split, the copy's folder and Hub revision, the manifest's sha256 and the identity of
the split's shard files (name, size, modification time, inode), so that a rebuilt or edited copy is
loaded again.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .._parallel import map_in_threads
from .build import shipped_manifest
from .canonical import INSTANCES_COLUMN, instances_sha256, manifest_sha256, mask_sha256, read_manifest, split_files
from .errors import SourceFormatError
from .fetch import ensure
from .hub import load_dataset
from .registry import get_spec

#: Splits whose stored masks stay in memory (the most recently used ones).
CACHE_SPLITS = 2
#: Decoded masks (1 byte per pixel, regions of interest included) kept for the cached splits at most,
#: the latest split first; a split that does not fit is decoded again by every call, a batch at a time.
DECODED_BYTES = 2**30

#: A decoded case: label map ``[H, W]`` and region of interest ``[H, W]`` (bool) or None.
Decoded = tuple[np.ndarray, "np.ndarray | None"]

_cache: OrderedDict[tuple, SplitTruth] = OrderedDict()
_lock = threading.Lock()


class SplitTruth:
    """The ground truth of one split of a canonical copy: masks as stored, decoded when read.

    Attributes
    ----------
    ids
        The case ids, sorted.
    shapes, spacing
        Each case's mask size ``(H, W)`` (from its PNG header) and pixel size ``(sy, sx)``.
    has_roi
        Whether the split has a region of interest (then every case has one).
    has_instances
        Whether the copy keeps instance maps (column ``instances``; read by :meth:`read_instances`).
    manifest, pinned
        The manifest the masks are checked against, and whether the package ships it.
    """

    def __init__(self, name: str, split: str, stored: dict[str, tuple[Any, Any]], spacing: dict[str, tuple],
                 features: tuple[Any, Any], manifest: pl.DataFrame, pinned: bool,
                 instances: tuple[dict[str, Any], Any] | None = None) -> None:
        self.name, self.split, self.manifest, self.pinned = name, split, manifest, pinned
        self.ids = sorted(stored)
        self.spacing = spacing
        self.has_roi = features[1] is not None
        self.has_instances = instances is not None
        self.shapes = dict(zip(self.ids, map_in_threads(lambda c: _png_shape(stored[c][0]), self.ids)))
        self._stored, self._features, self._instances = stored, features, instances
        self._expected = dict(zip(manifest["case_id"], manifest["mask_sha256"]))
        self._expected_instances = (dict(zip(manifest["case_id"], manifest[INSTANCES_COLUMN]))
                                    if INSTANCES_COLUMN in manifest.columns else None)
        self._verified: set[str] = set()  # decoded from the stored bytes and equal to the manifest's hash
        self._verified_instances: set[str] = set()
        self._decoded: dict[str, Decoded] = {}
        self._decoded_instances: dict[str, np.ndarray] = {}
        self._keep = True

    @property
    def decoded_bytes(self) -> int:
        """Bytes the whole split takes decoded (1 per pixel, twice with a region of interest, and 2 more per
        pixel with instance maps)."""
        per_pixel = (2 if self.has_roi else 1) + (2 if self.has_instances else 0)
        return sum(h * w for h, w in self.shapes.values()) * per_pixel

    def read(self, ids: Sequence[str], *, verify: bool) -> tuple[list[Decoded], list[str]]:
        """The decoded cases ``ids`` (read-only arrays), and those of them whose mask differs from the
        manifest's sha256 (each case hashed once per loaded split; none listed when ``verify`` is False).

        Examples
        --------
        >>> from medseg_eval.datasets import canonical_dir
        >>> truth = split_truth("drive", "test") if canonical_dir("drive").exists() else None
        >>> cases, wrong = truth.read(["01_test"], verify=True) if truth else ([(np.zeros((584, 565)), None)], [])
        >>> cases[0][0].shape, wrong
        ((584, 565), [])
        """
        cases = map_in_threads(lambda c: self._case(c, verify), ids)
        return cases, [c for c in ids if verify and c not in self._verified]

    def read_instances(self, ids: Sequence[str], *, verify: bool) -> tuple[list[np.ndarray], list[str]]:
        """The decoded instance maps of ``ids`` (int64, read-only), and those of them whose map differs from the
        manifest's ``instances_sha256`` (checked where the manifest has that column and ``verify``).

        Raises
        ------
        SourceFormatError
            When this copy keeps no instance maps (built before they were kept: rebuild it).
        """
        if self._instances is None:
            raise SourceFormatError(f"{self.name}: this copy of split {self.split!r} holds no instance maps (column "
                                    f"`instances`); rebuild it (medseg-eval datasets build {self.name} ...) with this "
                                    "version of the package to score instance metrics.")
        maps = map_in_threads(self._instance_map, ids)
        if not verify or self._expected_instances is None:
            return maps, []
        for case_id, ids_map in zip(ids, maps):
            if case_id not in self._verified_instances and \
                    instances_sha256(ids_map) == self._expected_instances.get(case_id):
                self._verified_instances.add(case_id)
        return maps, [c for c in ids if c not in self._verified_instances]

    def keep_decoded(self, keep: bool) -> None:
        """Keep the masks decoded from now on (``True``: :meth:`read` decodes each case once), or none."""
        self._keep = keep
        if not keep:
            self._decoded.clear()
            self._decoded_instances.clear()

    def _instance_map(self, case_id: str) -> np.ndarray:
        found = self._decoded_instances.get(case_id)
        if found is not None:
            return found
        stored, feature = self._instances
        ids = _decode_image(feature, stored[case_id]).astype(np.int64)
        if ids.shape != self.shapes[case_id]:
            raise SourceFormatError(f"{self.name}: the instance map of case {case_id} decodes to {ids.shape}, its mask "
                                    f"is {self.shapes[case_id]}; rebuild the copy.")
        ids.setflags(write=False)
        if self._keep:
            self._decoded_instances[case_id] = ids
        return ids

    def _case(self, case_id: str, verify: bool) -> Decoded:
        mask, roi = self._decoded.get(case_id) or self._decode(case_id)
        if verify and case_id not in self._verified and mask_sha256(mask) == self._expected.get(case_id):
            self._verified.add(case_id)
        return mask, roi

    def _decode(self, case_id: str) -> Decoded:
        mask_value, roi_value = self._stored[case_id]
        mask = _decode_image(self._features[0], mask_value)
        if mask.shape != self.shapes[case_id]:
            raise SourceFormatError(f"{self.name}: the mask of case {case_id} decodes to {mask.shape}, its PNG header "
                                    f"says {self.shapes[case_id]}; rebuild the copy.")
        roi = None if roi_value is None else _decode_image(self._features[1], roi_value).astype(bool)
        for array in (mask, roi):
            if array is not None:
                array.setflags(write=False)  # the same arrays may serve later calls
        if self._keep:
            self._decoded[case_id] = (mask, roi)
        return mask, roi


def split_truth(name: str, split: str, *, download: bool = True, progress: bool = True) -> SplitTruth:
    """The ground truth of ``split`` of the local build (else the pinned Hub mirror) of ``name``.

    Loaded on the first call, and again only when the copy changes (a rebuild, an edited shard).
    On first use, the split's masks are fetched and built as :func:`~medseg_eval.datasets.fetch.ensure`
    says (``download=False``: an error instead).

    Examples
    --------
    >>> from medseg_eval.datasets import canonical_dir
    >>> truth = split_truth("drive", "test") if canonical_dir("drive").exists() else None
    >>> truth is None or (len(truth.ids), split_truth("drive", "test") is truth) == (20, True)
    True
    """
    spec = get_spec(name)
    split = spec.check_split(split)
    folder = ensure(spec.name, [split], images=False, download=download, progress=progress)
    shipped = shipped_manifest(spec.name)
    manifest = shipped if shipped is not None else read_manifest(folder / "manifest.csv")
    key = (spec.name, split, str(folder), spec.hub_revision, manifest_sha256(manifest), _files_identity(folder, split))
    with _lock:
        truth = _cache.get(key)
        if truth is not None:
            _cache.move_to_end(key)
    if truth is None:
        stored, spacing, features, instances = _load_split(load_dataset(spec.name, split=split, data_dir=folder))
        truth = SplitTruth(spec.name, split, stored, spacing, features, manifest, shipped is not None, instances)
        with _lock:
            _cache[key] = truth
            while len(_cache) > CACHE_SPLITS:
                _cache.popitem(last=False)
    with _lock:
        kept = 0
        for cached in reversed(_cache.values()):  # the latest first
            fits = kept + cached.decoded_bytes <= DECODED_BYTES
            cached.keep_decoded(fits)
            kept += cached.decoded_bytes if fits else 0
    return truth


def clear_cache() -> None:
    """Drop every loaded split (their memory is freed once no result or caller holds them).

    Examples
    --------
    >>> clear_cache()
    """
    with _lock:
        _cache.clear()


def _files_identity(folder: Path, split: str) -> tuple:
    stats = [(f.name, f.stat()) for f in split_files(folder, split)]
    return tuple((name, s.st_size, s.st_mtime_ns, s.st_ino) for name, s in stats)


def _load_split(ds: Any) -> tuple[dict[str, tuple[Any, Any]], dict[str, tuple], tuple[Any, Any],
                                  tuple[dict[str, Any], Any] | None]:
    """Every case's mask (and region of interest) as stored, its spacing, the features that decode them, and the
    stored instance maps with their feature (``None`` without an ``instances`` column)."""
    has_roi, has_instances = "roi" in ds.column_names, "instances" in ds.column_names
    columns = ["case_id", "mask", "spacing"] + (["roi"] if has_roi else []) + (["instances"] if has_instances else [])
    table = ds.select_columns(columns).with_format("arrow")[:]
    ids = table.column("case_id").to_pylist()
    masks = table.column("mask").to_pylist()
    rois = table.column("roi").to_pylist() if has_roi else [None] * len(ids)
    spacing = {c: tuple(s) for c, s in zip(ids, table.column("spacing").to_pylist())}
    features = (ds.features["mask"], ds.features["roi"] if has_roi else None)
    instances = ((dict(zip(ids, table.column("instances").to_pylist())), ds.features["instances"]) if has_instances
                 else None)
    return dict(zip(ids, zip(masks, rois))), spacing, features, instances


def _png_shape(value: dict) -> tuple[int, int]:
    """``(H, W)`` of a stored image, from its header (Pillow decodes nothing on opening)."""
    from PIL import Image

    with Image.open(io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"]) as image:
        return (image.height, image.width)


def _decode_image(feature: Any, value: dict) -> np.ndarray:
    """One stored image decoded as ``datasets.Image`` decodes it."""
    return np.asarray(feature.decode_example(value))
