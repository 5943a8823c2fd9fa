"""A split's ground truth decoded once per process: scoring several models on it decodes it once.

The decoded masks are kept for the last :data:`CACHE_SPLITS` splits used, keyed by the dataset,
the split, the copy's folder and Hub revision, the manifest's sha256 and the identity of the split's
shard files (name, size, modification time, inode), so that a rebuilt or edited copy is decoded
again. Masks are decoded in threads (PNG decoding releases the GIL).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .._parallel import map_in_threads
from .build import shipped_manifest
from .canonical import manifest_sha256, mask_sha256, read_manifest, split_files
from .hub import load_dataset, locate
from .registry import get_spec

#: Splits whose decoded ground truth stays in memory (the most recently used ones).
CACHE_SPLITS = 2
#: Older splits are dropped while the cache holds more bytes than this; the latest split always stays.
CACHE_BYTES = 4 * 2**30

#: A case's ground truth: label map ``[H, W]``, spacing ``(sy, sx)``, region of interest ``[H, W]`` or None.
Case = tuple[np.ndarray, tuple[float, float], np.ndarray | None]

_cache: OrderedDict[tuple, SplitTruth] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True, eq=False)
class SplitTruth:
    """The decoded ground truth of one split of a canonical copy, with the manifest it is checked against.

    Its arrays are read-only: the same ones serve every later call for this split.
    """

    name: str
    split: str
    cases: dict[str, Case]
    manifest: pl.DataFrame
    pinned: bool

    @functools.cached_property
    def mismatched(self) -> list[str]:
        """Case ids whose mask differs from the manifest's sha256 (hashed once, in threads)."""
        expected = dict(zip(self.manifest["case_id"], self.manifest["mask_sha256"]))
        ids = sorted(self.cases)
        hashes = map_in_threads(mask_sha256, [self.cases[c][0] for c in ids])
        return [c for c, h in zip(ids, hashes) if expected.get(c) != h]

    @property
    def nbytes(self) -> int:
        """Bytes held by the decoded masks and regions of interest."""
        return sum(m.nbytes + (0 if roi is None else roi.nbytes) for m, _, roi in self.cases.values())


def split_truth(name: str, split: str) -> SplitTruth:
    """The decoded ground truth of ``split`` of the local build (else the pinned Hub mirror) of ``name``.

    Decoded on the first call, and again only when the copy changes (a rebuild, an edited shard).

    Examples
    --------
    >>> from medseg_eval.datasets import canonical_dir
    >>> truth = split_truth("drive", "test") if canonical_dir("drive").exists() else None
    >>> truth is None or (len(truth.cases), split_truth("drive", "test") is truth) == (20, True)
    True
    """
    spec = get_spec(name)
    split = spec.check_split(split)
    folder = locate(spec)
    shipped = shipped_manifest(spec.name)
    manifest = shipped if shipped is not None else read_manifest(folder / "manifest.csv")
    key = (spec.name, split, str(folder), spec.hub_revision, manifest_sha256(manifest), _files_identity(folder, split))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    truth = SplitTruth(spec.name, split, _decode_split(load_dataset(spec.name, split=split, data_dir=folder)),
                       manifest, shipped is not None)
    with _lock:
        _cache[key] = truth
        while len(_cache) > CACHE_SPLITS or (len(_cache) > 1 and sum(t.nbytes for t in _cache.values()) > CACHE_BYTES):
            _cache.popitem(last=False)
    return truth


def clear_cache() -> None:
    """Drop every decoded split (their memory is freed once no result or caller holds them).

    Examples
    --------
    >>> clear_cache()
    """
    with _lock:
        _cache.clear()


def _files_identity(folder: Path, split: str) -> tuple:
    stats = [(f.name, f.stat()) for f in split_files(folder, split)]
    return tuple((name, s.st_size, s.st_mtime_ns, s.st_ino) for name, s in stats)


def _decode_split(ds: Any) -> dict[str, Case]:  # ds: datasets.Dataset
    """Every case of a canonical split, its images decoded as ``datasets.Image`` decodes them, in threads."""
    has_roi = "roi" in ds.column_names
    table = ds.select_columns(["case_id", "mask", "spacing"] + (["roi"] if has_roi else [])).with_format("arrow")[:]
    images = [(ds.features["mask"], v) for v in table.column("mask").to_pylist()]
    if has_roi:
        images += [(ds.features["roi"], v) for v in table.column("roi").to_pylist()]
    decoded = map_in_threads(_decode_image, images)
    ids = table.column("case_id").to_pylist()
    rois = [roi.astype(bool) for roi in decoded[len(ids):]] if has_roi else [None] * len(ids)
    cases = {}
    for case_id, mask, spacing, roi in zip(ids, decoded, table.column("spacing").to_pylist(), rois):
        for array in (mask, roi):
            if array is not None:
                array.setflags(write=False)
        cases[case_id] = (mask, tuple(spacing), roi)
    return cases


def _decode_image(item: tuple[Any, dict]) -> np.ndarray:
    feature, value = item
    return np.asarray(feature.decode_example(value))
