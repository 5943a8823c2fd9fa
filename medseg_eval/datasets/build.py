"""From an official release to the canonical form.

``build`` finds the release (a folder, an archive, a URL, or the official files that hold the
splits asked for), lists its cases, assigns splits and folds (from the shipped manifest when there
is one), reads every case, checks its mask hash, and writes the canonical folder atomically. A
build of some splits, or of masks only, keeps the splits already built that it does not replace.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from .._atomic import atomic_directory
from .canonical import (
    INSTANCES_COLUMN,
    CaseSource,
    ShardWriter,
    check_record,
    instances_sha256,
    manifest_csv,
    manifest_frame,
    manifest_sha256,
    mask_sha256,
    read_manifest,
    split_files,
)
from .cards import render_card
from .errors import ManifestMismatchError, SourceFileMissingError, SourceFormatError
from .layout import built_splits, canonical_dir, shipped_manifest_file
from .registry import DatasetSpec, Selection, get_spec
from .sources import resolve_sources


class UnpinnedManifestWarning(UserWarning):
    """No manifest ships for this dataset yet: its splits and mask hashes were computed, not checked."""


def shipped_manifest(name: str) -> pl.DataFrame | None:
    """The split manifest shipped with the package for ``name``, or ``None`` when none is pinned yet."""
    path = shipped_manifest_file(name)
    return read_manifest(path.read_bytes()) if path is not None else None


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


@dataclass
class BuildReport:
    """What :func:`build` wrote and how the result was checked.

    ``counts`` covers every split the folder now holds; ``splits`` those this build wrote, with
    their images unless ``images`` is False; ``masks_only`` the splits of the folder without images.
    """

    dataset: str
    folder: Path
    counts: dict[str, int]
    pinned: bool
    manifest_sha256: str
    sources: list[dict[str, object]]
    splits: list[str]
    images: bool
    masks_only: list[str]


def build(name: str, source: str | Path | Sequence[str | Path] | None = None, *, splits: Sequence[str] | None = None,
          images: bool = True, sha256: str | Mapping[str, str] | None = None, progress: bool = True) -> BuildReport:
    """Build the canonical copy of ``name`` (or some of its splits) into :func:`canonical_dir`.

    Parameters
    ----------
    name
        A registered dataset (``medseg-eval datasets list``).
    source
        The folder that holds the release's top folder (e.g. the folder holding ``Kvasir-SEG/``),
        the release's archive, a URL, or several of these; ``None`` fetches the official files that
        hold the splits asked for (from ``$MEDSEG_EVAL_MIRROR`` when set; not possible for
        releases behind a registration). Files fetched before are reused.
    splits
        The splits to build (default: all). Splits built before and not named here are kept.
    images
        ``False`` builds masks only: the files holding the images are not fetched, and the
        ``image`` column is null (recorded in ``build_info.json`` and the card). Enough to score.
    sha256
        Expected hash of the given archive, or a mapping from archive file name to hash; it takes
        the place of the registry's pinned hash for that archive.

    Raises
    ------
    ManifestMismatchError
        When the release's cases or mask hashes differ from the shipped manifest; nothing is written.
    ChecksumError
        When a file does not have its pinned sha256; it is deleted and nothing is written.
    SourceFileMissingError, SourceFormatError, ManualDownloadRequired, UnknownSplitError

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
    wanted = list(spec.splits) if splits is None else [s for s in spec.splits if s in {spec.check_split(x) for x in splits}]
    if not wanted:
        raise ValueError(f"{spec.name}: `splits` names no split; give some of {', '.join(spec.splits)}, or None for all.")
    want = Selection(frozenset(wanted), images)
    sources = [] if source is None else [source] if isinstance(source, (str, Path)) else list(source)
    roots, provenance = resolve_sources(spec, sources, want=want, sha256=sha256, progress=progress)
    cases = sorted(spec.builder(roots, want), key=lambda c: c.case_id)
    seen: set[str] = set()
    duplicates = {c.case_id for c in cases if c.case_id in seen or seen.add(c.case_id)}
    if duplicates:
        raise SourceFormatError(f"{spec.name}: case ids found twice in the release: {', '.join(sorted(duplicates))}.")
    if not cases:
        raise SourceFileMissingError(f"{spec.name}: no cases found under {', '.join(map(str, roots))}.")
    shipped = shipped_manifest(spec.name)
    assignment, expected, expected_instances = _assignment(spec, cases, shipped, want.splits)
    cases = [c for c in cases if assignment[c.case_id][0] in want.splits]
    empty = [s for s in wanted if splits is not None and not any(assignment[c.case_id][0] == s for c in cases)]
    if empty:
        raise SourceFileMissingError(f"{spec.name}: no case of split(s) {', '.join(empty)} under "
                                     f"{', '.join(map(str, roots))}; is the release complete?")

    folder = canonical_dir(spec.name)
    kept = _kept_splits(spec, folder, want.splits, pinned=shipped is not None)
    with atomic_directory(folder) as staging:
        writers = {split: ShardWriter(staging, split, spec.roi is not None, spec.instances is not None)
                   for split in wanted}
        group_of = {c.case_id: c.group or c.case_id for c in cases}
        rows, mismatched, mismatched_instances = [], [], []
        for case in tqdm(cases, desc=f"building {spec.name}", unit="case", disable=not progress):
            record = case.load()
            check_record(record, spec.num_classes, source=f"case {case.case_id}")
            digest = mask_sha256(record.mask)
            if expected and expected[case.case_id] != digest:
                mismatched.append(case.case_id)
            split, fold = assignment[case.case_id]
            writers[split].add(record, group_of[case.case_id])
            rows.append({"case_id": case.case_id, "split": split, "fold": fold, "mask_sha256": digest})
            if spec.instances is not None:
                rows[-1][INSTANCES_COLUMN] = instances_sha256(record.instances)
                if expected_instances and expected_instances[case.case_id] != rows[-1][INSTANCES_COLUMN]:
                    mismatched_instances.append(case.case_id)
        if mismatched or mismatched_instances:
            raise ManifestMismatchError(spec.name, mismatched=mismatched, mismatched_instances=mismatched_instances,
                                        hint="These masks or instance maps differ from the canonical ones: is --source the unmodified official "
                                             "release?")
        for writer in writers.values():
            writer.close()
        manifest, info = _keep(folder, staging, kept, manifest_frame(rows))
        counts = {s: n for s, n in sorted(manifest["split"].value_counts().iter_rows())}
        split_info = {**info["splits"], **{s: {"cases": counts.get(s, 0), "images": images} for s in wanted}}
        masks_only = [s for s in spec.splits if s in split_info and not split_info[s]["images"]]
        (staging / "manifest.csv").write_bytes(manifest_csv(manifest))
        (staging / "README.md").write_text(render_card(spec, counts=counts, masks_only=masks_only))
        ours = {str(p.get("archive") or p["source"]) for p in provenance}
        info = {
            "dataset": spec.name,
            "builder_version": spec.builder_version,
            "package_version": _package_version(),
            "manifest_sha256": manifest_sha256(manifest),
            "manifest_pinned": shipped is not None,
            "counts": counts,
            "splits": {s: split_info[s] for s in spec.splits if s in split_info},
            "masks_only": masks_only,
            "sources": [p for p in info["sources"] if str(p.get("archive") or p["source"]) not in ours] + provenance,
            "python": platform.python_version(),
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return BuildReport(spec.name, folder, counts, shipped is not None, info["manifest_sha256"], info["sources"],
                       wanted, images, masks_only)


def _assignment(spec: DatasetSpec, cases: Sequence[CaseSource], shipped: pl.DataFrame | None, wanted: frozenset[str]
                ) -> tuple[dict[str, tuple[str, int | None]], dict[str, str], dict[str, str]]:
    """Split and fold of every case, and the manifest's mask hash and instance-map hash of each (none when no
    manifest ships; no instance hashes when the manifest has no such column)."""
    if shipped is None:
        warnings.warn(f"{spec.name}: no manifest ships for this dataset yet; splits and mask hashes are "
                      "computed from this copy and not checked against a pinned reference.", UnpinnedManifestWarning, stacklevel=3)
        return assign_splits(spec, cases), {}, {}
    ids = {c.case_id for c in cases}
    missing = sorted(set(shipped.filter(pl.col("split").is_in(list(wanted)))["case_id"]) - ids)
    extra = sorted(ids - set(shipped["case_id"]))
    if missing or extra:
        raise ManifestMismatchError(spec.name, missing=missing, extra=extra,
                                    hint="The release in --source is incomplete or not the official one.")
    assignment = {r["case_id"]: (r["split"], r["fold"]) for r in shipped.iter_rows(named=True) if r["case_id"] in ids}
    instances = dict(zip(shipped["case_id"], shipped[INSTANCES_COLUMN])) if INSTANCES_COLUMN in shipped.columns else {}
    return assignment, dict(zip(shipped["case_id"], shipped["mask_sha256"])), instances


def _kept_splits(spec: DatasetSpec, folder: Path, rebuilt: frozenset[str], *, pinned: bool) -> list[str]:
    """The splits of the existing copy that a build of ``rebuilt`` keeps: all others, if the same builder made them."""
    held = built_splits(folder)
    if not held:
        return []
    info = json.loads((folder / "build_info.json").read_text())
    if info.get("builder_version") != spec.builder_version or info.get("manifest_pinned") != pinned:
        return []  # made by another builder or against another manifest: rebuilt when next asked for
    return [s for s in spec.splits if s in held and s not in rebuilt]


def _keep(folder: Path, staging: Path, kept: list[str], manifest: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """Carry the ``kept`` splits of the existing copy into ``staging``: their shards (hard-linked where the
    file system allows), manifest rows, split records and sources. Returns the joint manifest and the old records."""
    if not kept:
        return manifest, {"splits": {}, "sources": []}
    old = json.loads((folder / "build_info.json").read_text())
    old_splits = old.get("splits") or {s: {"cases": old["counts"].get(s, 0), "images": True} for s in kept}
    for split in kept:
        for shard in split_files(folder, split):
            try:
                os.link(shard, staging / "data" / shard.name)
            except OSError:
                shutil.copy2(shard, staging / "data" / shard.name)
    previous = read_manifest(folder / "manifest.csv").filter(pl.col("split").is_in(kept))
    joint = manifest_frame(manifest.to_dicts() + previous.to_dicts())
    return joint, {"splits": {s: old_splits[s] for s in kept}, "sources": old.get("sources", [])}


def _package_version() -> str:
    from .. import __version__

    return __version__
