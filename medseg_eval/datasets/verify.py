"""Checking a canonical copy: every stored mask re-hashed and compared with the manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .build import built_splits, canonical_dir, shipped_manifest
from .canonical import INSTANCES_COLUMN, decode_image, instances_sha256, mask_sha256, read_manifest, split_files
from .errors import DatasetNotBuiltError
from .hints import build_command
from .registry import get_spec


@dataclass
class VerifyReport:
    """The result of :func:`verify`: cases whose stored mask, split or presence differ from the manifest.

    ``splits`` are the splits the copy holds (a build of some splits is checked on those).
    ``mismatched`` lists the cases whose mask or instance map differs; ``mismatched_instances`` those of
    them whose instance map does (checked where the manifest has ``instances_sha256``).
    """

    dataset: str
    checked: int
    pinned: bool
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    mismatched_instances: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every case of the manifest's built splits present, in its split, with the manifest's mask hash."""
        return not (self.missing or self.extra or self.mismatched or self.misplaced)


def verify(name: str, *, folder: Path | None = None, progress: bool = True) -> VerifyReport:
    """Re-hash every stored mask (and instance map) of a canonical copy and compare it with the manifest.

    The reference is the shipped manifest, restricted to the splits the copy holds; for a dataset
    without one, the manifest written at build time (``pinned=False`` in the report).

    Examples
    --------
    >>> report = verify("drive", progress=False) if canonical_dir("drive").exists() else None
    >>> report is None or (report.ok and report.checked == 40)
    True
    """
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    spec = get_spec(name)
    folder = folder or canonical_dir(spec.name)
    if not (folder / "data").is_dir():
        raise DatasetNotBuiltError(f"no canonical copy of {spec.name} at {folder}; run: {build_command(spec)}.")
    reference = shipped_manifest(spec.name)
    pinned = reference is not None
    if reference is None:
        reference = read_manifest(folder / "manifest.csv")
    held = [s for s in spec.splits if s in built_splits(folder)]
    reference = reference.filter(reference["split"].is_in(held))
    expected = {r["case_id"]: r for r in reference.iter_rows(named=True)}
    report = VerifyReport(spec.name, 0, pinned, splits=held)
    found = set()
    with_instances = INSTANCES_COLUMN in reference.columns
    for split in spec.splits:
        for shard in split_files(folder, split):
            columns = ["case_id", "mask"] + (["instances"] if with_instances else [])
            table = pq.read_table(shard, columns=[c for c in columns if c in pq.read_schema(shard).names])
            stored = table["instances"].to_pylist() if "instances" in table.column_names else [None] * table.num_rows
            for case_id, mask, ids in tqdm(zip(table["case_id"].to_pylist(), table["mask"].to_pylist(), stored),
                                           total=table.num_rows, desc=f"verifying {shard.name}", unit="case",
                                           disable=not progress):
                report.checked += 1
                found.add(case_id)
                row = expected.get(case_id)
                if row is None:
                    report.extra.append(case_id)
                    continue
                if row["split"] != split:
                    report.misplaced.append(case_id)
                wrong_instances = with_instances and (
                    ids is None or instances_sha256(decode_image(ids["bytes"])) != row[INSTANCES_COLUMN])
                if wrong_instances:
                    report.mismatched_instances.append(case_id)
                if wrong_instances or mask_sha256(decode_image(mask["bytes"])) != row["mask_sha256"]:
                    report.mismatched.append(case_id)
    report.missing = sorted(set(expected) - found)
    return report
