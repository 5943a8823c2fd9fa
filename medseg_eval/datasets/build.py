"""From an official release to the canonical form, and back again to check a copy.

``build`` finds the release (a folder, an archive or a URL), lists its cases, assigns splits and
folds (from the shipped manifest when there is one), reads every case, checks its mask hash, and
writes the canonical folder atomically. ``verify`` re-hashes every stored mask against the manifest.
"""

from __future__ import annotations

import json
import platform
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import polars as pl

from .._atomic import atomic_directory
from .canonical import (
    CaseSource,
    ShardWriter,
    check_record,
    decode_image,
    manifest_csv,
    manifest_frame,
    manifest_sha256,
    mask_sha256,
    read_manifest,
    split_files,
)
from .cards import render_card
from .download import download, extract, file_sha256, home, is_archive, url_filename, verify_sha256
from .errors import (
    DatasetNotBuiltError,
    ManifestMismatchError,
    ManualDownloadRequired,
    SourceFileMissingError,
    SourceFormatError,
)
from .registry import DatasetSpec, get_spec

_URL = re.compile(r"^https?://", re.IGNORECASE)


class UnpinnedManifestWarning(UserWarning):
    """No manifest ships for this dataset yet: its splits and mask hashes were computed, not checked."""


def canonical_dir(name: str) -> Path:
    """Where the canonical copy of ``name`` lives: ``$MEDSEG_EVAL_HOME/datasets/<name>``."""
    return home() / "datasets" / get_spec(name).name


def shipped_manifest(name: str) -> pl.DataFrame | None:
    """The split manifest shipped with the package for ``name``, or ``None`` when none is pinned yet."""
    path = resources.files("medseg_eval.datasets") / "splits" / f"{get_spec(name).name}.csv"
    return read_manifest(path.read_bytes()) if path.is_file() else None


def assign_splits(spec: DatasetSpec, cases: Sequence[CaseSource]) -> dict[str, tuple[str, int | None]]:
    """Split and fold of every case by the dataset's documented rule (used where no manifest ships).

    The release's own split is kept where it has one; otherwise ``spec.holdout`` fractions of the
    groups (patients, sequences, else single images), in a permutation seeded by ``spec.seed``, form
    the held-out splits. Folds deal the ``"train"`` cases' groups, in a second seeded permutation,
    round-robin into ``spec.folds`` folds, so that no group straddles two folds.
    """
    group_of = {c.case_id: c.group or c.case_id for c in cases}
    rng = np.random.default_rng(spec.seed)
    official = {c.split for c in cases}
    if official == {None}:
        groups = sorted(set(group_of.values()))
        order = [groups[i] for i in rng.permutation(len(groups))]
        split_of_group, start = {}, 0
        for split, fraction in spec.holdout.items():
            take = round(fraction * len(order))
            split_of_group.update({g: split for g in order[start:start + take]})
            start += take
        split_of_group.update({g: "train" for g in order[start:]})
        split_of = {c: split_of_group[g] for c, g in group_of.items()}
    elif None in official:
        missing = sorted(c.case_id for c in cases if c.split is None)
        raise SourceFormatError(f"{spec.name}: the release's split lists do not name {len(missing)} case(s): "
                                f"{', '.join(missing[:5])}.")
    else:
        split_of = {c.case_id: c.split for c in cases}
    for split in set(split_of.values()):
        spec.check_split(split)
    train = sorted({group_of[c] for c, s in split_of.items() if s == "train"})
    fold_of_group = {train[j]: i % spec.folds for i, j in enumerate(rng.permutation(len(train)))}
    return {c: (s, fold_of_group[group_of[c]] if s == "train" else None) for c, s in split_of.items()}


def resolve_sources(spec: DatasetSpec, sources: Sequence[str | Path], *, sha256: str | Mapping[str, str] | None = None,
                    progress: bool = True) -> tuple[list[Path], list[dict[str, object]]]:
    """Folders holding the release: given folders as they are; archives and URLs fetched, checked, extracted.

    An archive is checked against the hash given for it in ``sha256`` (one hash when a single
    source is given, or a mapping from archive file name to hash), else against the spec's pinned
    hash for its file name; with neither, its hash is only recorded, marked unpinned. Returns the
    folders and one provenance record per source (for ``build_info.json``).
    """
    if not sources:
        if spec.manual_download:
            raise ManualDownloadRequired(f"{spec.name} must be downloaded by hand: {spec.manual_download} "
                                         f"Then run: medseg-eval datasets build {spec.name} --source <folder>.")
        sources = [s.url for s in spec.sources]
    expected = {s.filename: s.sha256 for s in spec.sources if s.sha256}
    if isinstance(sha256, str):
        if len(sources) != 1:
            raise ValueError("one sha256 was given for several sources; give a mapping {archive name: sha256}.")
        only = str(sources[0])
        expected[url_filename(only) if _URL.match(only) else Path(only).name] = sha256
    elif sha256 is not None:
        expected.update(sha256)
    roots, provenance = [], []
    for source in sources:
        text = str(source)
        if _URL.match(text):
            pinned = expected.get(url_filename(text))
            path = download(text, home() / "downloads" / spec.name, sha256=pinned, progress=progress)
        else:
            path = Path(text).expanduser()
            if not path.exists():
                raise SourceFileMissingError(f"source {path} does not exist; pass the folder holding "
                                             f"{spec.source_folder}/, its archive, or a URL.")
            pinned = expected.get(path.name) if path.is_file() else None
            if pinned:
                verify_sha256(path, pinned)
        record: dict[str, object] = {"source": text}
        if path.is_dir():
            roots.append(path)
        elif is_archive(path):
            record.update(archive=path.name, sha256=pinned or file_sha256(path), sha256_pinned=pinned is not None)
            roots.append(extract(path, home() / "sources" / spec.name / path.name))
        else:
            raise SourceFormatError(f"source {path} is neither a folder nor a zip/tar archive (a RAR must be unpacked first).")
        provenance.append(record)
    return roots, provenance


@dataclass
class BuildReport:
    """What :func:`build` wrote and how the result was checked."""

    dataset: str
    folder: Path
    counts: dict[str, int]
    pinned: bool
    manifest_sha256: str
    sources: list[dict[str, object]]


def build(name: str, source: str | Path | Sequence[str | Path] | None = None, *,
          sha256: str | Mapping[str, str] | None = None, progress: bool = True) -> BuildReport:
    """Build the canonical copy of ``name`` from its official release into :func:`canonical_dir`.

    Parameters
    ----------
    name
        A registered dataset (``medseg-eval datasets list``).
    source
        The folder that holds the release's top folder (e.g. the folder holding ``Kvasir-SEG/``),
        the release's archive, a URL, or several of these; ``None`` downloads the official archives
        (not possible for releases behind a registration).
    sha256
        Expected hash of the given archive, or a mapping from archive file name to hash; it takes
        the place of the registry's pinned hash for that archive.

    Raises
    ------
    ManifestMismatchError
        When the release's cases or mask hashes differ from the shipped manifest; nothing is written.
    SourceFileMissingError, SourceFormatError, ChecksumError, ManualDownloadRequired

    Examples
    --------
    >>> import os, pathlib
    >>> shared = pathlib.Path(os.environ.get("MEDSEG_EVAL_TEST_DATA", "../shared/data")) / "drive"
    >>> report = build("drive", shared, progress=False) if shared.exists() else None
    >>> report is None or report.counts == {"test": 20, "train": 20}
    True
    """
    from tqdm.auto import tqdm

    spec = get_spec(name)
    sources = [] if source is None else [source] if isinstance(source, (str, Path)) else list(source)
    roots, provenance = resolve_sources(spec, sources, sha256=sha256, progress=progress)
    cases = sorted(spec.builder(roots), key=lambda c: c.case_id)
    seen: set[str] = set()
    duplicates = {c.case_id for c in cases if c.case_id in seen or seen.add(c.case_id)}
    if duplicates:
        raise SourceFormatError(f"{spec.name}: case ids found twice in the release: {', '.join(sorted(duplicates))}.")
    if not cases:
        raise SourceFileMissingError(f"{spec.name}: no cases found under {', '.join(map(str, roots))}.")

    shipped = shipped_manifest(spec.name)
    if shipped is None:
        warnings.warn(f"{spec.name}: no manifest ships for this dataset yet; splits and mask hashes are "
                      "computed from this copy and not checked against a pinned reference.", UnpinnedManifestWarning, stacklevel=2)
        assignment = assign_splits(spec, cases)
        expected = {}
    else:
        ids = {c.case_id for c in cases}
        missing, extra = sorted(set(shipped["case_id"]) - ids), sorted(ids - set(shipped["case_id"]))
        if missing or extra:
            raise ManifestMismatchError(spec.name, missing=missing, extra=extra,
                                        hint="The release in --source is incomplete or not the official one.")
        assignment = {r["case_id"]: (r["split"], r["fold"]) for r in shipped.iter_rows(named=True)}
        expected = dict(zip(shipped["case_id"], shipped["mask_sha256"]))

    with atomic_directory(canonical_dir(spec.name)) as staging:
        writers = {split: ShardWriter(staging, split, spec.roi is not None) for split in spec.splits}
        group_of = {c.case_id: c.group or c.case_id for c in cases}
        rows, mismatched = [], []
        for case in tqdm(cases, desc=f"building {spec.name}", unit="case", disable=not progress):
            record = case.load()
            check_record(record, spec.num_classes, source=f"case {case.case_id}")
            digest = mask_sha256(record.mask)
            if expected and expected[case.case_id] != digest:
                mismatched.append(case.case_id)
            split, fold = assignment[case.case_id]
            writers[split].add(record, group_of[case.case_id])
            rows.append({"case_id": case.case_id, "split": split, "fold": fold, "mask_sha256": digest})
        if mismatched:
            raise ManifestMismatchError(spec.name, mismatched=mismatched,
                                        hint="These masks differ from the canonical ones: is --source the unmodified official release?")
        for writer in writers.values():
            writer.close()
        manifest = manifest_frame(rows)
        counts = {s: n for s, n in sorted(manifest["split"].value_counts().iter_rows())}
        (staging / "manifest.csv").write_bytes(manifest_csv(manifest))
        (staging / "README.md").write_text(render_card(spec, counts=counts))
        info = {
            "dataset": spec.name,
            "builder_version": spec.builder_version,
            "package_version": _package_version(),
            "manifest_sha256": manifest_sha256(manifest),
            "manifest_pinned": shipped is not None,
            "counts": counts,
            "sources": provenance,
            "python": platform.python_version(),
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return BuildReport(spec.name, canonical_dir(spec.name), counts, shipped is not None, info["manifest_sha256"], provenance)


def _package_version() -> str:
    from .. import __version__

    return __version__


@dataclass
class VerifyReport:
    """The result of :func:`verify`: cases whose stored mask, split or presence differ from the manifest."""

    dataset: str
    checked: int
    pinned: bool
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    misplaced: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every case of the manifest present, in its split, with the manifest's mask hash."""
        return not (self.missing or self.extra or self.mismatched or self.misplaced)


def verify(name: str, *, folder: Path | None = None, progress: bool = True) -> VerifyReport:
    """Re-hash every stored mask of a canonical copy and compare it with the manifest.

    The reference is the shipped manifest; for a dataset without one, the manifest written at
    build time (``pinned=False`` in the report).

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
        raise DatasetNotBuiltError(f"no canonical copy of {spec.name} at {folder}; run: medseg-eval datasets build {spec.name} --source <folder>.")
    reference = shipped_manifest(spec.name)
    pinned = reference is not None
    if reference is None:
        reference = read_manifest(folder / "manifest.csv")
    expected = {r["case_id"]: r for r in reference.iter_rows(named=True)}
    report = VerifyReport(spec.name, 0, pinned)
    found = set()
    for split in spec.splits:
        for shard in split_files(folder, split):
            table = pq.read_table(shard, columns=["case_id", "mask"])
            for case_id, mask in tqdm(zip(table["case_id"].to_pylist(), table["mask"].to_pylist()), total=table.num_rows,
                                      desc=f"verifying {shard.name}", unit="case", disable=not progress):
                report.checked += 1
                found.add(case_id)
                row = expected.get(case_id)
                if row is None:
                    report.extra.append(case_id)
                    continue
                if row["split"] != split:
                    report.misplaced.append(case_id)
                if mask_sha256(decode_image(mask["bytes"])) != row["mask_sha256"]:
                    report.mismatched.append(case_id)
    report.missing = sorted(set(expected) - found)
    return report
