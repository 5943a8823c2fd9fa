"""Boards: ``leaderboards/<dataset>/README.md`` and a static ``leaderboards/index.html``, rebuilt from the bundles.

Ranked entries (*verified*, *reproduced*) are ranked by their mean Dice over the test cases (the
mean over foreground classes per case), with a seeded bootstrap CI, the pooled mDice (per class
from the pixel counts summed over cases, then the mean over classes: the founding study's
number), the other metrics' means, a paired Wilcoxon test against the leader with Holm's
correction over the other entries, and the 95% interval of each entry's rank over bootstrap
resamples of the cases. Every ranked number comes from the tables :func:`~.bundle.validate`
computed from the bundle's predictions, never from the stored ones. *Unverified* entries (per-case
data without predictions) and *reported* ones (a paper's number) are listed apart and never ranked
or tested. The same bundles give the same bytes: no timestamps, fixed seeds, sorted inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from .._atomic import atomic_write_text
from ..bootstrap import case_resamples, percentile_interval
from ..datasets import get_spec
from ..results import pooled_value
from ..stats import paired_values, pairwise_tests, per_case_table, rank_stability
from .bundle import RANKED_BADGES, Submission, validate
from .errors import DuplicateSubmissionError
from .render import render_html, render_markdown

MAIN_METRIC = "dice"
OTHER_METRICS = ("iou", "hd95", "assd", "nsd", "lesion_recall")
SEED, N_BOOT, ALPHA = 0, 2000, 0.05


@dataclass
class Board:
    """One dataset's board: ranked entries, unverified and reported ones, as polars frames."""

    dataset: str
    ranked: pl.DataFrame
    reported: pl.DataFrame
    n_cases: int
    manifest_sha256: str | None
    unverified: pl.DataFrame = field(default_factory=pl.DataFrame)
    folds: pl.DataFrame = field(default_factory=pl.DataFrame)


def load_bundles(board_dir: str | Path, dataset: str) -> list[tuple[str, Submission]]:
    """Every bundle of ``board_dir/<dataset>/``, validated (ranked ones scored again), sorted by folder name.

    The first invalid bundle raises, and so do two ranked bundles with the same predictions.
    """
    folder = Path(board_dir) / dataset
    bundles = [(p.name, validate(p, name=f"{dataset}/{p.name}")) for p in sorted(folder.iterdir())
               if p.is_dir() and (p / "meta.json").is_file()]
    seen: dict[str, str] = {}
    for slug, sub in bundles:
        digest = sub.meta.get("predictions_sha256") if sub.meta["badge"] in RANKED_BADGES else None
        if digest in seen:
            raise DuplicateSubmissionError(f"bundles {dataset}/{seen[digest]} and {dataset}/{slug} hold the same "
                                           f"predictions (sha256 {digest[:12]}...); one board lists them once.")
        if digest is not None:
            seen[digest] = slug
    return bundles


def board(board_dir: str | Path, dataset: str) -> Board:
    """Compute the board of ``dataset`` from its bundles."""
    bundles = load_bundles(board_dir, dataset)
    ranked = [(slug, s) for slug, s in bundles if s.meta["badge"] in RANKED_BADGES]
    reported = [s for _, s in bundles if s.meta["badge"] == "reported"]
    reported_frame = pl.DataFrame([{
        "model": s.meta["model"], "metric": s.meta["reported"]["metric"], "aggregate": s.meta["reported"]["aggregate"],
        "mean": s.meta["reported"]["mean"], "sd": s.meta["reported"]["sd"], "parameters": s.meta.get("parameters"),
        "protocol": s.meta.get("training_protocol"), "citation": s.meta["citation"], "note": s.meta.get("note"),
    } for s in reported], schema_overrides={"sd": pl.Float64, "parameters": pl.Float64, "note": pl.String,
                                            "protocol": pl.String})
    if not reported_frame.is_empty():
        reported_frame = reported_frame.sort(["mean", "model"], descending=[True, False])
    unverified = [_entry(s) | {"predictions_withheld": s.meta["predictions_withheld"]}
                  for _, s in bundles if s.meta["badge"] == "unverified"]
    unverified_frame = (pl.DataFrame(unverified, infer_schema_length=None).sort(["dice", "model"],
                                                                                 descending=[True, False])
                        if unverified else pl.DataFrame())
    first = (ranked or [(None, s) for _, s in bundles if s.meta["badge"] == "unverified"] or [(None, None)])[0][1]
    n_cases = first.per_case["case_id"].n_unique() if first is not None else 0
    manifest = first.meta.get("manifest_sha256") if first is not None else None
    folds = _folds([s for _, s in bundles if s.folds is not None], reported_frame)
    return Board(dataset, _ranked(ranked), reported_frame, n_cases, manifest, unverified_frame, folds)


def _folds(entries: list[Submission], reported: pl.DataFrame) -> pl.DataFrame:
    """Entries with folds (mean ± sd of each fold's pooled mDice, in %, beside their test-split one) and, where
    there are any, the papers' numbers reported in % with a spread over folds; empty without entries."""
    if not entries:
        return pl.DataFrame()
    rows = []
    for sub in entries:
        part = sub.folds.per_fold.filter((pl.col("metric") == MAIN_METRIC) & pl.col("pooled").is_not_null())
        values = 100 * part.group_by("fold", "seed").agg(pl.col("pooled").mean())["pooled"].to_numpy()
        rows.append({"model": sub.meta["model"], "badge": sub.meta["badge"], "rescored": bool(sub.fold_archives),
                     "n_folds": len(sub.folds.folds), "n_seeds": len(sub.folds.seeds), "mean": float(values.mean()),
                     "sd": float(values.std(ddof=1)) if values.size > 1 else None, "min": float(values.min()),
                     "max": float(values.max()), "test": 100 * _pooled(sub.counts), "citation": None})
    spread = reported.filter(pl.col("sd").is_not_null() & pl.col("metric").str.contains("(%)", literal=True)) \
        if not reported.is_empty() else reported
    rows += [{"model": r["model"], "badge": "reported", "rescored": False, "n_folds": None, "n_seeds": None,
              "mean": r["mean"], "sd": r["sd"], "min": None, "max": None, "test": None, "citation": r["citation"]}
             for r in spread.iter_rows(named=True)]
    return pl.DataFrame(rows, infer_schema_length=None).sort(["mean", "model"], descending=[True, False])


def _ranked(ranked: list[tuple[str, Submission]]) -> pl.DataFrame:
    if not ranked:
        return pl.DataFrame()
    names = {slug: s.meta["model"] for slug, s in ranked}
    paired = paired_values(per_case_table({names[slug]: s.per_case for slug, s in ranked}), MAIN_METRIC, class_="mean")
    mean = paired.values.mean(axis=0)
    boot = paired.values[case_resamples(paired.values.shape[0], N_BOOT, SEED)].mean(axis=1)
    low, high = percentile_interval(boot, 1 - ALPHA)
    order = np.argsort(-mean, kind="stable")
    leader = paired.models[int(order[0])]
    others = [(leader, m) for m in paired.models if m != leader]
    tests = pairwise_tests(paired, pairs=others, correction="holm") if others else None
    stability = ({r["model"]: r for r in rank_stability(paired, n_boot=1000, seed=SEED).summary().iter_rows(named=True)}
                 if len(paired.models) > 1 else {leader: {"rank_low": 1, "rank_high": 1}})
    rows = []
    for position, j in enumerate(order, start=1):
        model = paired.models[j]
        sub = next(s for slug, s in ranked if names[slug] == model)
        row = {"rank": position, **_entry(sub), "dice": float(mean[j]),
               "dice_ci_low": float(low[j]), "dice_ci_high": float(high[j]),
               "p_vs_leader": None, "worse_than_leader": None,
               "rank_low": stability[model]["rank_low"], "rank_high": stability[model]["rank_high"]}
        if tests is not None and model != leader:
            test = tests.filter(pl.col("model_b") == model).row(0, named=True)
            row["p_vs_leader"] = test["p_adjusted"]
            row["worse_than_leader"] = bool(test["p_adjusted"] < ALPHA)
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def _entry(sub: Submission) -> dict[str, object]:
    """What every entry with per-case data shows: its metadata, its means over cases and its pooled mDice."""
    row: dict[str, object] = {
        "model": sub.meta["model"], "badge": sub.meta["badge"], "mdice_pooled": _pooled(sub.counts),
        "parameters": sub.meta.get("parameters"), "code_url": sub.meta.get("code_url"),
        "paper_url": sub.meta.get("paper_url"), "submitted": sub.meta.get("submitted")}
    for metric in (MAIN_METRIC, *OTHER_METRICS):
        part = sub.per_case.filter(pl.col("metric") == metric)
        row[metric] = float(part.group_by("case_id", maintain_order=True).agg(pl.col("value").mean())["value"].mean()) \
            if not part.is_empty() else None
    return row


def _pooled(counts: pl.DataFrame) -> float:
    per_class = counts.group_by("class_id").agg(pl.col("tp", "fp", "fn").sum())
    return float(np.mean([pooled_value("dice", r["tp"], r["fp"], r["fn"]) for r in per_class.iter_rows(named=True)]))


def build(board_dir: str | Path, dataset: str | None = None) -> list[Path]:
    """Rebuild ``<board_dir>/<dataset>/README.md`` (every dataset with bundles when ``None``) and ``index.html``.

    Every bundle is validated first (ranked ones scored again from their predictions); an invalid
    one raises a :class:`~medseg_eval.leaderboard.SubmissionError` naming it, and nothing is written.

    Examples
    --------
    >>> import tempfile
    >>> from medseg_eval.leaderboard import reported_submission
    >>> folder = tempfile.mkdtemp()
    >>> _ = reported_submission("Net", "synthetic-lesions", metric="Dice (%)", mean=91.0, sd=None,
    ...                         citation="Doe 2026", aggregate="pooled", protocol="5-fold").write(folder)
    >>> [p.name for p in build(folder)]
    ['README.md', 'index.html']
    """
    board_dir = Path(board_dir)
    names = sorted(p.name for p in board_dir.iterdir() if p.is_dir() and any(p.glob("*/meta.json"))) \
        if board_dir.is_dir() else []
    if dataset is not None:
        dataset = get_spec(dataset).name
        if dataset not in names:
            raise FileNotFoundError(f"no bundles for {dataset} under {board_dir}.")
    boards = [board(board_dir, name) for name in names]
    written = [atomic_write_text(board_dir / b.dataset / "README.md", render_markdown(b))
               for b in boards if dataset in (None, b.dataset)]
    written.append(atomic_write_text(board_dir / "index.html", render_html(boards)))
    return written
