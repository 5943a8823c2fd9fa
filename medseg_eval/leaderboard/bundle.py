"""Submission bundles: metadata, the package's per-case results, the predictions and the hashes that tie them.

A bundle is a folder ``<board>/<dataset>/<slug>/`` with ``meta.json`` and, for entries with
per-case data, ``per_case.parquet`` and ``counts.parquet``; *verified* and *reproduced* entries
also carry ``predictions.zip`` (their label maps, :mod:`.archive`). ``meta.json`` records the
sha256 of both tables (of their canonical JSON rows, independent of the parquet writer), of the
archive, of the label maps in it and of the dataset manifest.

The tables are caches: :func:`validate` scores every ranked bundle's predictions again against the
canonical ground truth (:mod:`.rescore`), refuses the bundle unless its tables agree, and returns
what it computed, which is all a board ranks. Entries whose predictions cannot be published (a
licence, or not kept) are *unverified*: checked against their own counts, listed apart, never ranked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import polars as pl

from .._atomic import atomic_directory
from ..datasets import DatasetNotBuiltError, expected_manifest, get_spec, manifest_sha256
from ..results import Results
from ..stats.crossval import CrossValidation
from .archive import ARCHIVE, write_archive
from .errors import (
    DuplicateSubmissionError,
    IncompleteSubmissionError,
    RevisionMismatchError,
    SettingsMismatchError,
    SubmissionError,
    TamperedSubmissionError,
)
from .folds import FOLDS_DIR, check_folds, fold_archives, fold_record, load_cross_validation
from .rescore import check_counts, check_matches, check_settings, prediction_classes, rescore

__all__ = ["BADGES", "DuplicateSubmissionError", "IncompleteSubmissionError", "RevisionMismatchError",
           "SettingsMismatchError", "Submission", "SubmissionError", "TamperedSubmissionError", "reported_submission",
           "submit", "to_submission", "validate"]

Badge = Literal["verified", "reproduced", "unverified", "reported"]
BADGES: dict[str, str] = {
    "verified": "scored again by medseg_eval from the predictions the bundle carries, at every build",
    "reproduced": "produced by a reference trainer of medseg_eval, with its config; its predictions scored again "
                  "at every build",
    "unverified": "per-case results whose predictions are not published (a licence, or not kept): checked against "
                  "their own counts only, listed apart, never ranked",
    "reported": "numbers copied from a paper, without per-case data (shown, never ranked)",
}
RANKED_BADGES = ("verified", "reproduced")
SCHEMA_VERSION = 2
#: Metadata a submitter gives (all optional but the model name; ``predictions_withheld`` says why an
#: *unverified* entry has no predictions).
METADATA = ("parameters", "code_url", "paper_url", "training_protocol", "seed", "contact", "weights_license",
            "config", "citation", "note", "predictions_withheld")


@dataclass
class Submission:
    """A bundle in memory: ``meta`` (JSON-able), the per-case and counts tables (``None`` when reported),
    the bytes of ``predictions.zip`` (``None`` unless verified or reproduced) and, where it was run, the
    cross-validation with its held-out predictions' archives by file name (:mod:`.folds`)."""

    meta: dict[str, Any]
    per_case: pl.DataFrame | None = None
    counts: pl.DataFrame | None = None
    predictions: bytes | None = None
    folds: CrossValidation | None = None
    fold_archives: dict[str, bytes] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The bundle's folder name: the model name in lower case, other characters as ``-``."""
        return slugify(self.meta["model"])

    def write(self, board_dir: str | Path) -> Path:
        """Write the bundle to ``board_dir/<dataset>/<slug>/`` atomically and return that folder."""
        path = Path(board_dir) / self.meta["dataset"] / self.slug
        with atomic_directory(path) as staging:
            if self.per_case is not None:
                self.per_case.write_parquet(staging / "per_case.parquet")
            if self.counts is not None:
                self.counts.write_parquet(staging / "counts.parquet")
            if self.predictions is not None:
                (staging / ARCHIVE).write_bytes(self.predictions)
            if self.folds is not None:
                self.folds.save(staging / FOLDS_DIR)
                for name, data in self.fold_archives.items():
                    (staging / FOLDS_DIR / name).write_bytes(data)
            (staging / "meta.json").write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def read(cls, path: str | Path) -> Submission:
        """Read the bundle folder ``path`` (no validation: see :func:`validate`)."""
        path = Path(path)
        if not (path / "meta.json").is_file():
            raise IncompleteSubmissionError(f"bundle {path}: no meta.json.")
        meta = json.loads((path / "meta.json").read_text())
        tables = [pl.read_parquet(path / f) if (path / f).is_file() else None
                  for f in ("per_case.parquet", "counts.parquet")]
        try:
            folds = CrossValidation.load(path / FOLDS_DIR) if (path / FOLDS_DIR).is_dir() else None
        except FileNotFoundError as err:
            raise IncompleteSubmissionError(f"bundle {path}: {err}") from None
        archives = {p.name: p.read_bytes() for p in sorted((path / FOLDS_DIR).glob("*.zip"))} if folds else {}
        return cls(meta, *tables, (path / ARCHIVE).read_bytes() if (path / ARCHIVE).is_file() else None, folds,
                   archives)


def slugify(name: str) -> str:
    """Folder name of a model: lower case, runs of other characters than ``a-z0-9.`` become ``-``.

    Examples
    --------
    >>> slugify("VWFormer (MiT-B3)")
    'vwformer-mit-b3'
    """
    slug = re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-")
    if not slug:
        raise SubmissionError(f"model name {name!r} has no letters or digits.")
    return slug


def table_sha256(frame: pl.DataFrame) -> str:
    """sha256 of a table's rows as canonical JSON (columns sorted by name, rows sorted), writer-independent."""
    columns = sorted(frame.columns)
    rows = frame.select(columns).sort(columns, nulls_last=True).rows()
    text = json.dumps({"columns": columns, "rows": rows}, separators=(",", ":"), allow_nan=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def to_submission(results: Results, model: str, *, badge: Badge = "verified", **metadata: Any) -> Submission:
    """A bundle of ``results`` for the board of its dataset (without predictions: :func:`submit` adds them).

    Parameters
    ----------
    results
        What :func:`medseg_eval.evaluate` returned on a registered dataset's test split.
    model
        Name on the board.
    badge
        ``"verified"`` or ``"reproduced"`` (then ``config`` is required), or ``"unverified"`` (then
        ``predictions_withheld`` says why the predictions are not published); reported numbers come
        from :func:`reported_submission`.
    metadata
        ``parameters, code_url, paper_url, training_protocol, seed, contact, weights_license,
        config, citation, note, predictions_withheld``.

    Examples
    --------
    >>> import numpy as np, medseg_eval
    >>> res = medseg_eval.evaluate({"a": np.eye(4, dtype=np.uint8)}, targets={"a": np.eye(4, dtype=np.uint8)},
    ...                            progress=False)
    >>> to_submission(res, "identity")
    Traceback (most recent call last):
    ...
    medseg_eval.leaderboard.errors.SubmissionError: these results were scored against your own targets; boards take results of evaluate(predictions, '<dataset>') on a registered dataset.
    """
    unknown = sorted(set(metadata) - set(METADATA))
    if unknown:
        raise TypeError(f"unknown metadata {unknown}; expected some of {', '.join(METADATA)}.")
    if badge not in (*RANKED_BADGES, "unverified"):
        raise SubmissionError(f"results are submitted as 'verified', 'reproduced' or 'unverified', got {badge!r}.")
    if (badge == "unverified") != bool(metadata.get("predictions_withheld")):
        raise SubmissionError("an 'unverified' entry says why its predictions are not published "
                              "(predictions_withheld='...'), and only an unverified one withholds them.")
    p = results.provenance
    if not p.get("dataset"):
        raise SubmissionError("these results were scored against your own targets; boards take results of "
                              "evaluate(predictions, '<dataset>') on a registered dataset.")
    meta = {
        "schema": SCHEMA_VERSION, "model": model, "dataset": p["dataset"], "split": p["split"], "badge": badge,
        **{k: metadata.get(k) for k in METADATA},
        "submitted": dt.datetime.now(dt.timezone.utc).date().isoformat(),
        "predictions_sha256": p.get("predictions_sha256"), "predictions_archive_sha256": None,
        "manifest_sha256": p.get("manifest_sha256"), "dataset_revision": p.get("dataset_revision"),
        "convention": p.get("convention"), "package_version": p.get("package_version"),
        "per_case_sha256": table_sha256(results.per_case), "counts_sha256": table_sha256(results.counts),
        "provenance": p,
    }
    slugify(model)
    return Submission(meta, results.per_case, results.counts)


def reported_submission(model: str, dataset: str, *, metric: str, mean: float, sd: float | None, citation: str,
                        aggregate: str, protocol: str, note: str | None = None,
                        parameters: float | None = None) -> Submission:
    """A *reported* entry: a paper's summary number, shown on the board but never ranked or tested."""
    get_spec(dataset)
    meta = {"schema": SCHEMA_VERSION, "model": model, "dataset": get_spec(dataset).name, "badge": "reported",
            **{k: None for k in METADATA}, "citation": citation, "note": note, "parameters": parameters,
            "training_protocol": protocol,
            "reported": {"metric": metric, "mean": mean, "sd": sd, "aggregate": aggregate}}
    slugify(model)
    return Submission(meta)


def validate(bundle: Submission | str | Path, *, name: str | None = None) -> Submission:
    """Check a bundle; return it with the tables the board computed, or raise a :class:`SubmissionError`
    that names it and says why.

    Checks: required fields and badge; *reported* entries carry a citation and their number;
    every other one has tables that match their recorded sha256, per-case overlap values that
    agree with its counts, the board's settings, the dataset's test split of the current manifest
    and exactly its cases. *Verified* and *reproduced* entries carry ``predictions.zip`` (matching
    its recorded sha256), which is scored again here against the canonical ground truth: the
    returned :class:`Submission` holds those recomputed tables, and the stored ones must agree with
    them (else :class:`TamperedSubmissionError`). *Reproduced* entries carry their config,
    *unverified* ones the reason their predictions are withheld.

    Examples
    --------
    >>> validate(reported_submission("Net", "synthetic-lesions", metric="Dice (%)", mean=91.0, sd=None,
    ...                              citation="Doe 2026", aggregate="pooled", protocol="5-fold")).meta["badge"]
    'reported'
    """
    label = name or (str(bundle) if not isinstance(bundle, Submission) else bundle.meta.get("model", "?"))
    sub = Submission.read(bundle) if not isinstance(bundle, Submission) else bundle
    meta = sub.meta
    missing = [k for k in ("schema", "model", "dataset", "badge") if not meta.get(k)]
    if missing:
        raise IncompleteSubmissionError(f"bundle {label}: meta.json lacks {', '.join(missing)}.")
    if meta["badge"] not in BADGES:
        raise SubmissionError(f"bundle {label}: unknown badge {meta['badge']!r}; expected one of {', '.join(BADGES)}.")
    spec = get_spec(meta["dataset"])
    if meta["badge"] == "reported":
        reported = meta.get("reported") or {}
        if not meta.get("citation") or reported.get("mean") is None:
            raise IncompleteSubmissionError(f"bundle {label}: a reported entry needs a citation and its number.")
        return sub
    _check_parts(sub, label)
    for table, key in ((sub.per_case, "per_case_sha256"), (sub.counts, "counts_sha256")):
        if table_sha256(table) != meta.get(key):
            raise TamperedSubmissionError(f"bundle {label}: {key.removesuffix('_sha256')}.parquet does not match "
                                          "the sha256 recorded at submission; it was edited. Resubmit the results "
                                          "the package computed.")
    check_settings(meta.get("provenance") or {}, label=label)
    check_counts(sub.per_case, sub.counts, label=label)
    if meta.get("split") != spec.test_split:
        raise RevisionMismatchError(f"bundle {label}: scored on split {meta.get('split')!r}; boards rank the test "
                                    f"split {spec.test_split!r}.")
    manifest = _manifest(spec.name, label)
    if meta.get("manifest_sha256") != manifest_sha256(manifest):
        raise RevisionMismatchError(
            f"bundle {label}: scored against dataset manifest {str(meta.get('manifest_sha256'))[:12]}..., but "
            f"{spec.name}'s is {manifest_sha256(manifest)[:12]}...; evaluate again on the current revision.")
    expected = set(manifest.filter(pl.col("split") == spec.test_split)["case_id"].to_list())
    found = set(sub.per_case["case_id"].unique().to_list())
    if found != expected:
        lacking, extra = sorted(expected - found), sorted(found - expected)
        raise IncompleteSubmissionError(
            f"bundle {label}: does not cover the {len(expected)} test cases of {spec.name}"
            + (f"; missing {len(lacking)} ({', '.join(lacking[:5])}{', ...' if len(lacking) > 5 else ''})"
               if lacking else "")
            + (f"; unknown {len(extra)} ({', '.join(extra[:5])})" if extra else "") + ".")
    folds = _check_folds(sub, label)
    if meta["badge"] == "unverified":
        return replace(sub, folds=folds)
    per_case, counts = rescore(meta, sub.predictions, expected, label=label)
    check_matches(sub.counts, counts, table="counts", label=label)
    check_matches(sub.per_case, per_case, table="per_case", label=label)
    return replace(sub, per_case=per_case, counts=counts, folds=folds)


def _check_folds(sub: Submission, label: str) -> CrossValidation | None:
    """The bundle's cross-validation as checked here (:func:`.folds.check_folds`), or ``None`` without one."""
    if sub.folds is None and sub.meta.get("cross_validation") is None:
        return None
    if sub.folds is None:
        raise IncompleteSubmissionError(f"bundle {label}: meta.json records a cross-validation but the bundle has no "
                                        f"{FOLDS_DIR}/ folder.")
    return check_folds(sub.meta, sub.folds, sub.fold_archives, label=label)


def _manifest(dataset: str, label: str) -> pl.DataFrame:
    """The manifest bundles of ``dataset`` are checked against; none here: a :class:`RevisionMismatchError`."""
    try:
        return expected_manifest(dataset)
    except DatasetNotBuiltError as err:
        raise RevisionMismatchError(f"bundle {label}: {err}") from None


def _check_parts(sub: Submission, label: str) -> None:
    """The parts each badge needs: tables always; predictions (and their recorded sha256) unless unverified."""
    meta = sub.meta
    if meta["badge"] == "reproduced" and not meta.get("config"):
        raise IncompleteSubmissionError(f"bundle {label}: a reproduced entry records the trainer's config.")
    if sub.per_case is None or sub.counts is None:
        raise IncompleteSubmissionError(f"bundle {label}: per_case.parquet or counts.parquet is missing.")
    if meta["badge"] == "unverified":
        if not meta.get("predictions_withheld") or sub.predictions is not None:
            raise IncompleteSubmissionError(f"bundle {label}: an unverified entry says why its predictions are "
                                            "withheld (predictions_withheld) and carries none.")
        return
    if sub.predictions is None:
        raise IncompleteSubmissionError(
            f"bundle {label}: a {meta['badge']} entry carries its predictions ({ARCHIVE}), which the board scores "
            "again; resubmit with predictions=..., or as badge 'unverified' with predictions_withheld='why'.")
    if hashlib.sha256(sub.predictions).hexdigest() != meta.get("predictions_archive_sha256"):
        raise TamperedSubmissionError(f"bundle {label}: {ARCHIVE} does not match the sha256 recorded in meta.json; "
                                      "it was replaced or edited.")


def check_not_duplicate(sub: Submission, board_dir: str | Path) -> None:
    """Raise :class:`DuplicateSubmissionError` when the board has this model name or these predictions."""
    folder = Path(board_dir) / sub.meta["dataset"]
    if (folder / sub.slug).exists():
        raise DuplicateSubmissionError(f"the {sub.meta['dataset']} board already has {sub.slug!r}; choose another "
                                       "model name (or remove that bundle to replace it).")
    digest = sub.meta.get("predictions_sha256")
    for meta_path in sorted(folder.glob("*/meta.json")) if digest else []:
        if json.loads(meta_path.read_text()).get("predictions_sha256") == digest:
            raise DuplicateSubmissionError(f"these predictions (sha256 {digest[:12]}...) are already on the board "
                                           f"as {meta_path.parent.name!r}.")


def submit(results: Results | str | Path, model: str, board_dir: str | Path, *, predictions: Any = None,
           badge: Badge = "verified", cross_validation: CrossValidation | str | Path | None = None,
           fold_predictions: Mapping[Any, Any] | None = None, **metadata: Any) -> Path:
    """Validate ``results`` as a bundle with its ``predictions`` and add it to ``board_dir/<dataset>/``.

    ``predictions`` (anything :func:`medseg_eval.evaluate` reads) must be those the results were
    computed from (same sha256); their label maps go into the bundle's ``predictions.zip`` and are
    scored again before anything is written. Without them the entry can only be ``"unverified"``,
    with ``predictions_withheld="why"``: listed apart, never ranked.

    ``cross_validation`` (a :class:`~medseg_eval.stats.CrossValidation` or the folder it was saved
    to) adds the model's held-out folds (and seeds) to the bundle; the board shows their mean ± sd
    beside the test-split score. ``fold_predictions``, keyed as the folds are (fold, or
    ``(fold, seed)``; each anything ``evaluate`` reads, or a trainer's run folder), carries each
    fold's held-out predictions, which every build scores again; without them the fold numbers are
    marked as the submitter's own computation from counts.

    Examples
    --------
    >>> import os, tempfile, unittest.mock, numpy as np, medseg_eval
    >>> home = tempfile.mkdtemp()
    >>> with unittest.mock.patch.dict(os.environ, MEDSEG_EVAL_HOME=home):
    ...     _ = medseg_eval.datasets.build("synthetic-lesions", progress=False)
    ...     preds = {r["case_id"]: (np.asarray(r["image"]) > 128).astype(np.uint8)
    ...              for r in medseg_eval.load_dataset("synthetic-lesions", split="test")}
    ...     res = medseg_eval.evaluate(preds, "synthetic-lesions", metrics=["dice"], progress=False)
    ...     print(sorted(p.name for p in submit(res, "threshold", home, predictions=preds).iterdir()))
    ['counts.parquet', 'meta.json', 'per_case.parquet', 'predictions.zip']
    """
    results = Results.load(results) if isinstance(results, str | Path) else results
    sub = to_submission(results, model, badge=badge, **metadata)
    if predictions is not None:
        if badge == "unverified":
            raise SubmissionError(f"bundle {model}: predictions were given; submit it as 'verified' and it is ranked.")
        _attach_predictions(sub, predictions)
    if cross_validation is not None:
        sub.folds = load_cross_validation(cross_validation)
        sub.fold_archives = fold_archives(sub.folds, fold_predictions or {}, label=model)
        sub.meta["cross_validation"] = fold_record(sub.folds, sub.fold_archives)
    elif fold_predictions is not None:
        raise SubmissionError(f"bundle {model}: fold_predictions were given without cross_validation=...")
    validate(sub, name=model)
    check_not_duplicate(sub, board_dir)
    return sub.write(board_dir)


def _attach_predictions(sub: Submission, predictions: Any) -> None:
    """Read ``predictions`` as ``evaluate`` did (label maps, or instance maps as recorded) and put them in the
    bundle's archive."""
    from ..predictions import read_predictions

    p, spec = sub.meta["provenance"], get_spec(sub.meta["dataset"])
    manifest = expected_manifest(spec.name)
    ids = sorted(manifest.filter(pl.col("split") == spec.test_split)["case_id"].to_list())
    read = read_predictions(predictions, ids, num_classes=prediction_classes(p), match=spec.match_file(ids))
    if read.sha256 != p.get("predictions_sha256"):
        raise TamperedSubmissionError(f"bundle {sub.meta['model']}: the predictions given are not those the results "
                                      "were computed from (sha256 differs).")
    sub.predictions = write_archive(read.masks)
    sub.meta["predictions_archive_sha256"] = hashlib.sha256(sub.predictions).hexdigest()
