"""The canonical form of a dataset: case records, mask hashes, split manifests and parquet shards.

On disk a canonical dataset is a folder in Hugging Face layout, loadable by
``datasets.load_dataset(<folder>)`` as well as by :func:`medseg_eval.load_dataset`::

    README.md                               dataset card; YAML ``configs`` name the shards per split
    data/<split>-00000-of-00001.parquet     columns case_id, image, mask, [instances], [roi], spacing, group
    manifest.csv                            case_id, split, fold, mask_sha256, [instances_sha256]
    build_info.json                         package and builder version, source archives, manifest hash

Images keep their release encoding when it is JPEG or PNG (no recompression); other formats
(TIFF, BMP, GIF, NIfTI) are stored as lossless PNG. Masks and regions of interest are always PNG;
instance maps (GlaS, MoNuSeg: one id per object) too, 16-bit where an id exceeds 255.
A masks-only build (``build(..., images=False)``) stores null images; ``build_info.json`` and the
card name its splits.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import SourceFormatError
from .layout import split_files

if TYPE_CHECKING:
    import polars as pl

MANIFEST_COLUMNS = ("case_id", "split", "fold", "mask_sha256")
#: The manifest's column of instance-map hashes, present only for datasets that keep instance ids, so
#: that the manifests (and their sha256) of every other dataset stay as they were.
INSTANCES_COLUMN = "instances_sha256"
#: Instance ids a canonical copy stores (16-bit PNG).
MAX_INSTANCE_ID = 2**16 - 1
# Shards are cut at about this many bytes of encoded images, as the Hub's own converters do.
SHARD_BYTES = 256 * 2**20


@dataclass(frozen=True)
class CaseRecord:
    """One canonical case: what a builder makes of the release's files for one image.

    ``image`` is the encoded image (JPEG or PNG bytes; ``None`` in a masks-only build), ``mask`` an integer label map ``[H, W]``,
    ``roi`` an optional bool map of the same size, ``spacing`` the pixel size ``(sy, sx)``, ``instances``
    an optional instance map of the same size (0 = background, one id per object, foreground exactly
    where the mask is).
    """

    case_id: str
    image: bytes | None
    mask: np.ndarray
    spacing: tuple[float, float] = (1.0, 1.0)
    roi: np.ndarray | None = None
    instances: np.ndarray | None = None


@dataclass(frozen=True)
class CaseSource:
    """A case found in the release, before its files are read.

    ``group`` keeps images that belong together (a patient, a video sequence) in one split and one
    fold; ``split`` is the release's own split where it has one. ``load`` reads the files.
    """

    case_id: str
    load: Callable[[], CaseRecord]
    group: str | None = None
    split: str | None = None


def mask_sha256(mask: np.ndarray) -> str:
    """sha256 of a decoded label map: ``b"<H> <W>\\n"`` followed by its uint8 values in row-major order.

    Independent of how the mask was encoded on disk, so any copy of a dataset can be checked.

    Examples
    --------
    >>> import numpy as np
    >>> mask_sha256(np.zeros((2, 3), dtype=np.uint8))[:16]
    '26ec19b7d688c10a'
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be a 2D label map, got shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError("mask values must lie in 0..255 to be hashed as uint8")
    digest = hashlib.sha256(f"{mask.shape[0]} {mask.shape[1]}\n".encode())
    digest.update(np.ascontiguousarray(mask, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def instances_sha256(instances: np.ndarray) -> str:
    """sha256 of a decoded instance map: ``b"<H> <W> uint16\n"`` followed by its ids as little-endian
    uint16 in row-major order (however the map was encoded: 8- or 16-bit PNG).

    Examples
    --------
    >>> import numpy as np
    >>> instances_sha256(np.array([[0, 300]])) == instances_sha256(np.array([[0, 300]], dtype=np.int64))
    True
    """
    instances = np.asarray(instances)
    if instances.ndim != 2 or not (np.issubdtype(instances.dtype, np.integer) or instances.dtype == np.bool_):
        raise ValueError(f"an instance map must be a 2D integer map, got {instances.dtype} {instances.shape}")
    if instances.size and (instances.min() < 0 or instances.max() > MAX_INSTANCE_ID):
        raise ValueError(f"instance ids must lie in 0..{MAX_INSTANCE_ID} to be hashed as uint16")
    digest = hashlib.sha256(f"{instances.shape[0]} {instances.shape[1]} uint16\n".encode())
    digest.update(np.ascontiguousarray(instances, dtype="<u2").tobytes())
    return digest.hexdigest()


def encode_instances(instances: np.ndarray) -> bytes:
    """Lossless PNG of an instance map: 8-bit where every id fits in a byte, else 16-bit grey.

    Examples
    --------
    >>> import numpy as np
    >>> ids = np.array([[0, 1], [300, 2]])
    >>> (decode_image(encode_instances(ids)) == ids).all(), decode_image(encode_instances(ids % 256)).dtype
    (np.True_, dtype('uint8'))
    """
    from PIL import Image

    if not instances.size or instances.max() <= 255:
        return encode_png(instances)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(instances, dtype=np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_png(array: np.ndarray) -> bytes:
    """Lossless PNG bytes of a uint8 ``[H, W]`` or ``[H, W, 3]`` array."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def decode_image(data: bytes) -> np.ndarray:
    """Decode PNG/JPEG bytes to an array (what ``datasets.Image`` would give)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def image_bytes(path: Path) -> bytes:
    """The image file as stored canonically: JPEG and PNG as they are, anything else as lossless PNG."""
    from PIL import Image, UnidentifiedImageError

    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format in ("JPEG", "PNG"):
                image.verify()
                return data
            rgb = image.convert("RGB") if image.mode not in ("L", "RGB") else image
            return encode_png(np.asarray(rgb))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise SourceFormatError(f"cannot read image {path}: {err}. Re-download the release; the file is corrupt.") from err


def image_size(data: bytes) -> tuple[int, int]:
    """``(H, W)`` of encoded image bytes, without decoding the pixels."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.height, image.width


def check_record(record: CaseRecord, num_classes: int, source: str) -> None:
    """Raise :class:`SourceFormatError` unless image, mask and roi agree and labels are class ids."""
    mask = record.mask
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.integer):
        raise SourceFormatError(f"{record.case_id}: mask from {source} must be an integer [H, W] map, got {mask.dtype} {mask.shape}.")
    height, width = image_size(record.image) if record.image is not None else mask.shape
    if mask.shape != (height, width):
        raise SourceFormatError(
            f"{record.case_id}: mask {mask.shape[0]}x{mask.shape[1]} does not match its image "
            f"{height}x{width} ({source}). The release's files are mixed up or damaged; re-download it."
        )
    if record.instances is not None:
        _check_instances(record, source)
    if record.roi is not None and record.roi.shape != mask.shape:
        raise SourceFormatError(f"{record.case_id}: region of interest {record.roi.shape} does not match the mask {mask.shape} ({source}).")
    if mask.size and (mask.min() < 0 or mask.max() >= num_classes):
        raise SourceFormatError(
            f"{record.case_id}: mask holds label {int(mask.max())}, but the dataset has {num_classes} classes ({source})."
        )


def _check_instances(record: CaseRecord, source: str) -> None:
    ids = record.instances
    if ids.shape != record.mask.shape or not np.issubdtype(ids.dtype, np.integer):
        raise SourceFormatError(f"{record.case_id}: instance map from {source} must be an integer map of the mask's size "
                                f"{record.mask.shape}, got {ids.dtype} {ids.shape}.")
    if ids.size and (ids.min() < 0 or ids.max() > MAX_INSTANCE_ID):
        raise SourceFormatError(f"{record.case_id}: instance ids must lie in 0..{MAX_INSTANCE_ID}, got "
                                f"{int(ids.min())}..{int(ids.max())} ({source}).")
    if not np.array_equal(ids > 0, record.mask > 0):
        raise SourceFormatError(f"{record.case_id}: the instance map and the mask disagree on "
                                f"{int(np.count_nonzero((ids > 0) != (record.mask > 0)))} pixel(s) of foreground "
                                f"({source}); every foreground pixel must belong to one object. Re-download the release.")


# ----------------------------------------------------------------------------- manifests


def manifest_frame(rows: Iterable[Mapping[str, object]]) -> pl.DataFrame:
    """A manifest table with the canonical column types and row order (split, then case id).

    The ``instances_sha256`` column is there when the rows have it (datasets that keep instance ids).
    """
    import polars as pl

    rows = list(rows)
    columns = MANIFEST_COLUMNS + ((INSTANCES_COLUMN,) if any(INSTANCES_COLUMN in r for r in rows) else ())
    frame = pl.DataFrame(rows, schema=_manifest_schema(columns))
    return frame.sort("split", "case_id")


def manifest_csv(manifest: pl.DataFrame) -> bytes:
    """The manifest's exact bytes on disk (LF line ends, empty fold for held-out cases)."""
    columns = MANIFEST_COLUMNS + ((INSTANCES_COLUMN,) if INSTANCES_COLUMN in manifest.columns else ())
    return manifest.select(columns).write_csv(line_terminator="\n").encode()


def read_manifest(path: Path | bytes) -> pl.DataFrame:
    """Read a manifest CSV written by :func:`manifest_csv`."""
    data = path if isinstance(path, bytes) else Path(path).read_bytes()
    header = data.split(b"\n", 1)[0].decode().strip().split(",")
    columns = MANIFEST_COLUMNS + ((INSTANCES_COLUMN,) if INSTANCES_COLUMN in header else ())
    import polars as pl

    frame = pl.read_csv(io.BytesIO(data), schema=_manifest_schema(columns))
    return manifest_frame(frame.to_dicts())


def _manifest_schema(columns: Iterable[str]) -> dict[str, object]:
    """Polars types of the manifest's ``columns`` (polars loads here, not when the catalog is listed)."""
    import polars as pl

    types = {"case_id": pl.String, "split": pl.String, "fold": pl.Int8, "mask_sha256": pl.String, INSTANCES_COLUMN: pl.String}
    return {c: types[c] for c in columns}


def manifest_sha256(manifest: pl.DataFrame) -> str:
    """sha256 of the manifest's canonical CSV bytes: the identity of a dataset's ground truth."""
    return hashlib.sha256(manifest_csv(manifest)).hexdigest()


# ----------------------------------------------------------------------------- parquet shards


def features(has_roi: bool, has_instances: bool = False):  # -> datasets.Features
    """The Hugging Face features of a canonical split."""
    import datasets

    columns = {"case_id": datasets.Value("string"), "image": datasets.Image(), "mask": datasets.Image()}
    if has_instances:
        columns["instances"] = datasets.Image()
    if has_roi:
        columns["roi"] = datasets.Image()
    columns["spacing"] = datasets.List(datasets.Value("float64"), length=2)
    columns["group"] = datasets.Value("string")
    return datasets.Features(columns)


class ShardWriter:
    """Writes one split's rows into ``data/<split>-NNNNN-of-MMMMM.parquet`` shards of bounded size."""

    def __init__(self, folder: Path, split: str, has_roi: bool, has_instances: bool = False) -> None:
        self.folder, self.split, self.has_roi, self.has_instances = folder / "data", split, has_roi, has_instances
        self.folder.mkdir(parents=True, exist_ok=True)
        feats = features(has_roi, has_instances)
        metadata = {"huggingface": json.dumps({"info": {"features": feats.to_dict()}})}
        self.schema = feats.arrow_schema.with_metadata(metadata)
        self.rows: list[dict] = []
        self.pending_bytes = 0
        self.shards: list[Path] = []
        self.count = 0

    def add(self, record: CaseRecord, group: str) -> None:
        row = {
            "case_id": record.case_id,
            "image": None if record.image is None else {"bytes": record.image, "path": None},
            "mask": {"bytes": encode_png(record.mask), "path": None},
            "spacing": [float(s) for s in record.spacing],
            "group": group,
        }
        if self.has_instances:
            if record.instances is None:
                raise SourceFormatError(f"{record.case_id}: this dataset keeps instance ids, but the case has none.")
            row["instances"] = {"bytes": encode_instances(record.instances), "path": None}
        if self.has_roi:
            if record.roi is None:
                raise SourceFormatError(f"{record.case_id}: this dataset stores a region of interest, but the case has none.")
            row["roi"] = {"bytes": encode_png(record.roi.astype(np.uint8)), "path": None}
        self.rows.append(row)
        self.count += 1
        self.pending_bytes += len(record.image) if record.image is not None else 0
        if self.pending_bytes >= SHARD_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows and self.shards:
            return
        table = pa.Table.from_pylist(self.rows, schema=self.schema)
        path = self.folder / f".{self.split}-{len(self.shards)}.parquet"
        pq.write_table(table, path, row_group_size=64)
        self.shards.append(path)
        self.rows, self.pending_bytes = [], 0

    def close(self) -> list[Path]:
        """Write what is left and give the shards their final ``-NNNNN-of-MMMMM`` names."""
        self._flush()
        final = []
        for i, path in enumerate(self.shards):
            target = self.folder / f"{self.split}-{i:05d}-of-{len(self.shards):05d}.parquet"
            path.rename(target)
            final.append(target)
        return final


def read_split(folder: Path, split: str, *, cache_dir: Path):  # -> datasets.Dataset
    """Load one split of a canonical folder as a ``datasets.Dataset`` (images decode lazily, as PIL).

    The shards are converted once into memory-mapped Arrow files under ``cache_dir``, as
    ``datasets`` does for every parquet source, so a split larger than memory still loads.
    """
    import datasets

    files = [str(f) for f in split_files(folder, split)]
    progress = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a one-off conversion; its bar would only clutter a user's log
    try:
        return datasets.Dataset.from_parquet(files, split=split, cache_dir=str(cache_dir))
    finally:
        if progress:
            datasets.enable_progress_bars()
