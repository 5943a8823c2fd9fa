"""Submission bundles: metadata, the package's per-case results and the hashes that tie them together.

A bundle is a folder ``<board>/<dataset>/<slug>/`` with ``meta.json`` and, for ranked entries,
``per_case.parquet`` and ``counts.parquet``. ``meta.json`` records the sha256 of both tables (of
their canonical JSON rows, independent of the parquet writer), of the predictions and of the
dataset manifest, so that an edited table, a different ground truth or a resubmission is caught.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from .._atomic import atomic_directory
from ..datasets import canonical_dir, get_spec, shipped_manifest
from ..datasets.canonical import manifest_sha256, read_manifest
from ..errors import MedsegEvalError
from ..results import Results

Badge = Literal["verified", "reproduced", "reported"]
BADGES: dict[str, str] = {
    "verified": "scored by medseg_eval from the predictions",
    "reproduced": "produced by a reference trainer of medseg_eval, with its config",
    "reported": "numbers copied from a paper, without per-case data (shown, never ranked)",
}
SCHEMA_VERSION = 1
#: Metadata a submitter gives (all optional but the model name).
METADATA = ("parameters", "code_url", "paper_url", "training_protocol", "seed", "contact", "weights_license",
            "config", "citation", "note")


class SubmissionError(MedsegEvalError, ValueError):
    """A bundle that cannot go on a board; the message names the bundle and the reason."""


class IncompleteSubmissionError(SubmissionError):
    """The bundle does not cover every case of the dataset's test split, or lacks a required part."""


class TamperedSubmissionError(SubmissionError):
    """A table of the bundle no longer matches the hash recorded at submission, or its predictions."""


class RevisionMismatchError(SubmissionError):
    """The bundle was scored against another revision of the dataset (manifest hash) or another split."""


class DuplicateSubmissionError(SubmissionError):
    """The board already holds this model name or these predictions."""


@dataclass
class Submission:
    """A bundle in memory: ``meta`` (JSON-able) and the per-case and counts tables (``None`` when reported)."""

    meta: dict[str, Any]
    per_case: pl.DataFrame | None = None
    counts: pl.DataFrame | None = None

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
        return cls(meta, *tables)


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
    """A bundle of ``results`` for the board of its dataset.

    Parameters
    ----------
    results
        What :func:`medseg_eval.evaluate` returned on a registered dataset's test split.
    model
        Name on the board.
    badge
        ``"verified"`` or ``"reproduced"`` (then ``config`` is required); reported numbers come
        from :func:`reported_submission`.
    metadata
        ``parameters, code_url, paper_url, training_protocol, seed, contact, weights_license,
        config, citation, note``.
    """
    unknown = sorted(set(metadata) - set(METADATA))
    if unknown:
        raise TypeError(f"unknown metadata {unknown}; expected some of {', '.join(METADATA)}.")
    if badge not in ("verified", "reproduced"):
        raise SubmissionError(f"results are submitted as 'verified' or 'reproduced', got {badge!r}.")
    p = results.provenance
    if not p.get("dataset"):
        raise SubmissionError("these results were scored against your own targets; boards take results of "
                              "evaluate(predictions, '<dataset>') on a registered dataset.")
    meta = {
        "schema": SCHEMA_VERSION, "model": model, "dataset": p["dataset"], "split": p["split"], "badge": badge,
        **{k: metadata.get(k) for k in METADATA},
        "submitted": dt.datetime.now(dt.timezone.utc).date().isoformat(),
        "predictions_sha256": p.get("predictions_sha256"), "manifest_sha256": p.get("manifest_sha256"),
        "dataset_revision": p.get("dataset_revision"), "convention": p.get("convention"),
        "package_version": p.get("package_version"), "per_case_sha256": table_sha256(results.per_case),
        "counts_sha256": table_sha256(results.counts), "recomputed_from_predictions": False, "provenance": p,
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


def expected_manifest(dataset: str) -> pl.DataFrame:
    """The manifest a board checks bundles against: the shipped one, else the local build's."""
    shipped = shipped_manifest(dataset)
    if shipped is not None:
        return shipped
    local = canonical_dir(dataset) / "manifest.csv"
    if not local.is_file():
        raise RevisionMismatchError(f"{dataset} has no shipped manifest and is not built here; build it "
                                    f"(medseg-eval datasets build {dataset}) to check submissions against it.")
    return read_manifest(local)


def validate(bundle: Submission | str | Path, *, name: str | None = None) -> Submission:
    """Check a bundle; return it, or raise a :class:`SubmissionError` that names it and says why.

    Checks: required fields and badge; for ranked entries, that both tables match their recorded
    sha256 (not edited after submission), that they were scored on the dataset's test split of the
    current manifest, and that they cover exactly its cases; *reproduced* entries carry their
    config; *reported* ones a citation and their number.
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
    if meta["badge"] == "reproduced" and not meta.get("config"):
        raise IncompleteSubmissionError(f"bundle {label}: a reproduced entry records the trainer's config.")
    if sub.per_case is None or sub.counts is None:
        raise IncompleteSubmissionError(f"bundle {label}: per_case.parquet or counts.parquet is missing.")
    for table, key in ((sub.per_case, "per_case_sha256"), (sub.counts, "counts_sha256")):
        if table_sha256(table) != meta.get(key):
            raise TamperedSubmissionError(f"bundle {label}: {key.removesuffix('_sha256')}.parquet does not match "
                                          "the sha256 recorded at submission; it was edited. Resubmit the results "
                                          "the package computed.")
    if meta.get("split") != spec.test_split:
        raise RevisionMismatchError(f"bundle {label}: scored on split {meta.get('split')!r}; boards rank the test "
                                    f"split {spec.test_split!r}.")
    manifest = expected_manifest(spec.name)
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
    return sub


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
           badge: Badge = "verified", **metadata: Any) -> Path:
    """Validate ``results`` as a bundle and add it to ``board_dir/<dataset>/``.

    With ``predictions`` (anything :func:`medseg_eval.evaluate` reads), they are scored again with
    the recorded settings; the bundle is refused unless the per-case table and the predictions'
    sha256 match, and is marked ``recomputed_from_predictions``.
    """
    results = Results.load(results) if isinstance(results, str | Path) else results
    sub = to_submission(results, model, badge=badge, **metadata)
    if predictions is not None:
        _recompute(sub, results, predictions)
    validate(sub, name=model)
    check_not_duplicate(sub, board_dir)
    return sub.write(board_dir)


def _recompute(sub: Submission, results: Results, predictions: Any) -> None:
    from ..evaluate import evaluate
    from ..metrics import EmptyPolicy, LesionCriteria

    p = results.provenance
    again = evaluate(predictions, p["dataset"], split=p["split"], metrics=p["metrics"], convention=p["convention"],
                     empty=EmptyPolicy(**p["empty_policy"]), percentile=p["percentile"], tolerance=p["tolerance"],
                     lesions=LesionCriteria(**p["lesion_criteria"]) if p.get("lesion_criteria") else None,
                     resize=p.get("resize"), progress=False)
    if again.provenance["predictions_sha256"] != p.get("predictions_sha256"):
        raise TamperedSubmissionError(f"bundle {sub.meta['model']}: the predictions given are not those the results "
                                      "were computed from (sha256 differs).")
    if table_sha256(again.per_case) != sub.meta["per_case_sha256"]:
        raise TamperedSubmissionError(f"bundle {sub.meta['model']}: scoring the predictions again gives another "
                                      "per-case table than the one submitted.")
    sub.meta["recomputed_from_predictions"] = True
