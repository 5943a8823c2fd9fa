"""cross_validation(): the held-out folds (and seeds) of one model, checked against each other and merged.

A :class:`~medseg_eval.Results` is one scored set of cases. A cross-validation is several: each fold
of a K-fold split scored on its held-out cases, possibly once per training seed. This module checks
that they belong together (one dataset, manifest, convention, empty-mask policy; folds disjoint and
holding exactly the cases their manifest assigns them), and keeps them as one long table keyed by
``fold``, ``seed`` and ``case_id``. The numbers over folds are in :mod:`.crossval_summary`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from .._atomic import atomic_directory
from ..errors import MedsegEvalError
from ..results import Results

FoldKey = int | tuple[int, int]
#: Provenance every fold must share, or their numbers do not belong in one mean.
SHARED = ("convention", "convention_reproduces", "empty_policy", "percentile", "tolerance", "lesion_criteria",
          "metrics", "classes", "spacing_unit", "resize")
#: Where the reference trainers (:mod:`medseg_eval.train.run`) put a fold's record and results.
RUN_RECORD = "run.json"
HELD_OUT = Path("results") / "held-out"
TEST = Path("results") / "test"
_FILES = ("per_case.parquet", "counts.parquet", "per_fold.parquet", "cross_validation.json")
CV_FILES = (*_FILES, "lesions.parquet")


class CrossValidationError(MedsegEvalError, ValueError):
    """The results given cannot form one cross-validation."""


class MixedSettingsError(CrossValidationError):
    """The folds differ in dataset, manifest, convention, empty-mask policy or another scoring setting."""


class OverlappingFoldsError(CrossValidationError):
    """A case is held out in two folds of one seed: the folds are not disjoint."""


class FoldCoverageError(CrossValidationError):
    """A fold holds other cases than the manifest assigns it, or the seeds do not hold the same folds."""


@dataclass
class CrossValidation:
    """What :func:`cross_validation` returns: every held-out case once per seed, with its fold.

    Attributes
    ----------
    per_case
        ``fold, seed, case_id, class, class_id, metric, value, pred_empty, target_empty``.
    counts
        Pixel counts ``fold, seed, case_id, class, class_id, tp, fp, fn, tn``.
    per_fold
        One row per fold, seed, metric and class: ``n`` (non-NaN cases), ``n_nan``, ``mean`` (per-case
        mean) and ``pooled`` (Dice and IoU of the fold's summed pixel counts, lesion recall of its
        lesions; null for other metrics).
    provenance
        The settings the folds share, the dataset, manifest and revision, the folds and seeds, how
        coverage was checked, and one record per fold (its own provenance's identity and source).
    lesions
        With lesion metrics: one row per ground-truth lesion, with ``fold`` and ``seed``.
    """

    per_case: pl.DataFrame = field(repr=False)
    counts: pl.DataFrame = field(repr=False)
    per_fold: pl.DataFrame = field(repr=False)
    provenance: dict[str, Any]
    lesions: pl.DataFrame | None = field(default=None, repr=False)

    @property
    def folds(self) -> list[int]:
        """The folds held out, sorted."""
        return list(self.provenance["folds"])

    @property
    def seeds(self) -> list[int | None]:
        """The training seeds (``[None]`` when the results do not say)."""
        return list(self.provenance["seeds"])

    def summary(self, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0,
                resample: Literal["auto", "folds", "seeds"] = "auto") -> pl.DataFrame:
        """Per metric, class and aggregate: mean, sd, min and max over folds, the held-out cases pooled,
        and a hierarchical bootstrap CI of the mean over folds.

        See :func:`medseg_eval.stats.crossval_summary.summarize` for every column.

        Examples
        --------
        >>> import medseg_eval, numpy as np
        >>> gt = {f"c{i}": np.pad(np.ones((4, 4), np.uint8), i + 1) for i in range(6)}
        >>> folds = {k: medseg_eval.evaluate({c: gt[c] for c in list(gt)[3 * k:3 * k + 3]},
        ...                                  targets={c: gt[c] for c in list(gt)[3 * k:3 * k + 3]},
        ...                                  metrics=["dice"], progress=False) for k in (0, 1)}
        >>> cv = medseg_eval.cross_validation(folds)
        >>> cv.summary().select("metric", "aggregate", "mean", "sd", "held_out").rows()
        [('dice', 'mean', 1.0, 0.0, 1.0), ('dice', 'pooled', 1.0, 0.0, 1.0)]
        """
        from .crossval_summary import summarize

        return summarize(self, confidence=confidence, n_boot=n_boot, seed=seed, resample=resample)

    def save(self, path: str | Path) -> Path:
        """Write the tables (parquet) and the provenance (``cross_validation.json``) to the folder ``path``, atomically."""
        path = Path(path)
        with atomic_directory(path, owned=CV_FILES) as staging:
            for name in ("per_case", "counts", "per_fold"):
                getattr(self, name).write_parquet(staging / f"{name}.parquet")
            if self.lesions is not None:
                self.lesions.write_parquet(staging / "lesions.parquet")
            (staging / "cross_validation.json").write_text(json.dumps(self.provenance, indent=2, sort_keys=True)
                                                           + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> CrossValidation:
        """Read a cross-validation written by :meth:`save`."""
        path = Path(path)
        missing = [f for f in _FILES if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{path} is not a saved cross-validation (missing {', '.join(missing)}).")
        lesions = pl.read_parquet(path / "lesions.parquet") if (path / "lesions.parquet").is_file() else None
        return cls(*(pl.read_parquet(path / f"{n}.parquet") for n in ("per_case", "counts", "per_fold")),
                   json.loads((path / "cross_validation.json").read_text()), lesions)


def load_run(path: str | Path) -> tuple[tuple[int, int], Results]:
    """The held-out results of a reference trainer's run folder (``medseg-eval train ... --fold K``).

    The run folder holds ``run.json`` (the config: dataset, fold, seed, model) and the saved
    ``results/held-out`` and ``results/test``. The returned results' provenance gains ``"run"``:
    those fields, the folder, and the manifest and revision the test split was scored against.

    Returns
    -------
    ``((fold, seed), Results)``
    """
    path = Path(path)
    if not (path / RUN_RECORD).is_file():
        raise FileNotFoundError(f"{path} is not a run folder of `medseg-eval train` (no {RUN_RECORD}); give the "
                                "folder passed to --out, or a saved Results folder.")
    config = json.loads((path / RUN_RECORD).read_text())["config"]
    held = Results.load(path / HELD_OUT)
    run = {"path": str(path), "model": config["model"], "dataset": config["dataset"], "fold": int(config["fold"]),
           "seed": int(config["seed"])}
    if (path / TEST / "provenance.json").is_file():
        test = json.loads((path / TEST / "provenance.json").read_text())
        run.update(manifest_sha256=test.get("manifest_sha256"), dataset_revision=test.get("dataset_revision"))
    return (run["fold"], run["seed"]), Results(held.per_case, held.counts, {**held.provenance, "run": run},
                                               held.lesions)


def load_runs(paths: Sequence[str | Path]) -> dict[FoldKey, Results]:
    """Run folders keyed by fold, or by ``(fold, seed)`` when they hold several seeds.

    Examples
    --------
    >>> load_runs([])
    {}
    """
    runs: dict[tuple[int, int], Results] = {}
    for path in paths:
        key, results = load_run(path)
        if key in runs:
            raise OverlappingFoldsError(f"{runs[key].provenance['run']['path']} and {path} both hold fold {key[0]} of "
                                        f"seed {key[1]}; give each fold of a seed once.")
        runs[key] = results
    several = len({seed for _, seed in runs}) > 1
    return {(key if several else key[0]): results for key, results in sorted(runs.items())}


def cross_validation(results: Mapping[Any, Results | str | Path], *, dataset: str | None = None) -> CrossValidation:
    """Merge the held-out folds of one model into a :class:`CrossValidation`, after checking they belong together.

    Parameters
    ----------
    results
        Keyed by fold (``int``) or by ``(fold, seed)``: :class:`~medseg_eval.Results` of that fold's
        held-out cases, a saved results folder, or a run folder of the reference trainers
        (``medseg-eval train --out``), whose ``run.json`` says its dataset, fold and seed.
    dataset
        The dataset whose shipped 5-fold split the folds come from, where the results do not say
        it (results scored with ``targets=``). With it, each fold is checked to hold exactly the
        cases the manifest assigns it, and the manifest's hash is recorded.

    Raises
    ------
    MixedSettingsError
        The folds come from different datasets or manifests, or were scored with different
        conventions, empty-mask policies, percentiles, tolerances, lesion criteria or metrics.
    OverlappingFoldsError
        A case is held out by two folds of one seed.
    FoldCoverageError
        A fold lacks cases of its manifest fold or holds others; a key contradicts its run's
        record; the seeds hold different folds or cases.

    Examples
    --------
    >>> import medseg_eval, numpy as np
    >>> gt = {f"c{i}": np.pad(np.ones((4, 4), np.uint8), i + 1) for i in range(4)}
    >>> cv = medseg_eval.cross_validation({
    ...     0: medseg_eval.evaluate({"c0": gt["c0"], "c1": gt["c1"]}, targets={"c0": gt["c0"], "c1": gt["c1"]},
    ...                             metrics=["dice"], progress=False),
    ...     1: medseg_eval.evaluate({"c2": gt["c2"], "c3": gt["c3"]}, targets={"c2": gt["c2"], "c3": gt["c3"]},
    ...                             metrics=["dice"], progress=False)})
    >>> cv.per_fold.select("fold", "metric", "n", "mean", "pooled").rows()
    [(0, 'dice', 2, 1.0, 1.0), (1, 'dice', 2, 1.0, 1.0)]
    """
    if not isinstance(results, Mapping) or not results:
        raise TypeError("expected a non-empty mapping {fold: Results} or {(fold, seed): Results}, "
                        f"got {type(results).__name__}.")
    runs = _runs(results)
    dataset = _one(runs, "dataset", dataset)
    settings = _shared(runs)
    manifest_sha = _one(runs, "manifest_sha256", None)
    coverage = "not checked: no manifest (the results name no dataset)"
    if dataset is not None:
        manifest = _fold_manifest(dataset)
        if manifest is not None:
            from ..datasets import manifest_sha256

            current = manifest_sha256(manifest)
            if manifest_sha not in (None, current):
                raise MixedSettingsError(f"the folds were scored against manifest {manifest_sha[:12]}, but {dataset}'s "
                                         f"manifest here is {current[:12]}; rescore them against the current one.")
            manifest_sha = current
            _check_coverage(runs, manifest, dataset)
            coverage = f"each fold holds exactly the cases {dataset}'s manifest assigns it"
        else:
            coverage = f"not checked: {dataset} has no shipped manifest and is not built here"
    _check_disjoint(runs)
    folds, seeds = _check_balanced(runs)
    provenance = {
        "kind": "cross_validation", "dataset": dataset, "split": _split(runs, dataset), "manifest_sha256": manifest_sha,
        "dataset_revision": _one(runs, "dataset_revision", None), "folds": folds, "seeds": seeds,
        "coverage": coverage, **settings,
        "targets_sha256": _combined([r["provenance"].get("targets_sha256") for r in runs]),
        "package_version": _one(runs, "package_version", None, strict=False),
        "models": sorted({r["run"]["model"] for r in runs if r["run"].get("model")}),
        "runs": [{"fold": r["fold"], "seed": r["seed"], "num_cases": len(r["cases"]),
                  **{k: r["provenance"].get(k) for k in ("predictions_sha256", "targets_sha256", "time")},
                  **({"path": r["run"]["path"]} if "path" in r["run"] else {})} for r in runs],
    }
    per_case, counts = (_stack(runs, lambda res, n=name: getattr(res, n)) for name in ("per_case", "counts"))
    lesions = _stack(runs, lambda res: res.lesions) if all(r["results"].lesions is not None for r in runs) else None
    from .crossval_summary import per_fold

    return CrossValidation(per_case, counts, per_fold(per_case, counts, lesions), provenance, lesions)


def _runs(results: Mapping[Any, Any]) -> list[dict[str, Any]]:
    """One record per fold: its fold, seed, Results, provenance, run record and case ids, sorted by seed then fold."""
    styles = {isinstance(k, tuple) for k in results}
    if len(styles) > 1:
        raise CrossValidationError("the keys mix folds and (fold, seed) pairs; key every result the same way.")
    runs = []
    for key, value in results.items():
        fold, seed = _key(key)
        if isinstance(value, str | Path):
            value = load_run(value)[1] if (Path(value) / RUN_RECORD).is_file() else Results.load(value)
        if not isinstance(value, Results):
            raise TypeError(f"fold {key!r}: expected Results, a saved results folder or a run folder, got "
                            f"{type(value).__name__}.")
        run = value.provenance.get("run", {})
        for what, claimed, recorded in (("fold", fold, run.get("fold")), ("seed", seed, run.get("seed"))):
            if claimed is not None and recorded is not None and claimed != recorded:
                raise FoldCoverageError(f"the key {key!r} says {what} {claimed}, but its run "
                                        f"({run.get('path', 'provenance')}) records {what} {recorded}.")
        runs.append({"fold": fold, "seed": seed if seed is not None else run.get("seed"), "results": value,
                     "provenance": value.provenance, "run": run,
                     "cases": sorted(value.per_case["case_id"].unique().to_list())})
    return sorted(runs, key=lambda r: (r["seed"] is not None, r["seed"] or 0, r["fold"]))


def _key(key: Any) -> tuple[int, int | None]:
    parts = key if isinstance(key, tuple) else (key,)
    if len(parts) not in (1, 2) or not all(_is_int(p) for p in parts):
        raise CrossValidationError(f"a key must be a fold (an int) or a (fold, seed) pair of ints, got {key!r}.")
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else None


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and hasattr(value, "__index__")


def _value(run: dict[str, Any], name: str) -> Any:
    return run["provenance"].get(name) if run["provenance"].get(name) is not None else run["run"].get(name)


def _one(runs: list[dict[str, Any]], name: str, given: Any, *, strict: bool = True) -> Any:
    """The one value of ``name`` the folds record (provenance, else run record), or ``given``; several: an
    error, or (``strict=False``) all of them, sorted and joined."""
    seen = {f"fold {r['fold']}" + (f", seed {r['seed']}" if r["seed"] is not None else ""): _value(r, name)
            for r in runs}
    values = {v for v in seen.values() if v is not None} | ({given} if given is not None else set())
    if len(values) > 1 and strict:
        detail = ", ".join(f"{k}: {v}" for k, v in seen.items()) + (f"; asked: {given}" if given is not None else "")
        raise MixedSettingsError(f"the folds differ in {name} ({detail}); a cross-validation holds the folds of one "
                                 f"{'dataset' if name == 'dataset' else 'scoring'}: rescore them the same way.")
    return ", ".join(sorted(map(str, values))) if len(values) > 1 else next(iter(values), None)


def _shared(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name in SHARED:
        seen = {(r["fold"], r["seed"]): json.dumps(r["provenance"].get(name), sort_keys=True) for r in runs}
        if len(set(seen.values())) > 1:
            detail = "; ".join(f"fold {f}" + (f" seed {s}" if s is not None else "") + f": {v}"
                               for (f, s), v in seen.items())
            raise MixedSettingsError(f"the folds were scored with different {name} ({detail}); their numbers are not "
                                     "comparable: evaluate every fold with the same settings.")
        out[name] = runs[0]["provenance"].get(name)
    return out


def _split(runs: list[dict[str, Any]], dataset: str | None) -> str | None:
    if dataset is not None or any(r["run"] for r in runs):
        return "train"  # the shipped folds, and the reference trainers' held-out folds, split the training cases
    return _one(runs, "split", None)


def _fold_manifest(dataset: str) -> pl.DataFrame | None:
    """The manifest whose ``fold`` column the folds claim (:func:`~medseg_eval.datasets.expected_manifest`), or
    ``None`` where there is none here to check against."""
    from ..datasets import DatasetNotBuiltError, expected_manifest

    try:
        return expected_manifest(dataset)
    except DatasetNotBuiltError:
        return None


def _check_coverage(runs: list[dict[str, Any]], manifest: pl.DataFrame, dataset: str) -> None:
    folded = manifest.filter(pl.col("fold").is_not_null())
    for run in runs:
        expected = set(folded.filter(pl.col("fold") == run["fold"])["case_id"].to_list())
        if not expected:
            known = sorted(folded["fold"].unique().to_list())
            raise FoldCoverageError(f"{dataset}'s manifest has no fold {run['fold']} (its folds: {known}).")
        actual = set(run["cases"])
        missing, extra = sorted(expected - actual), sorted(actual - expected)
        if missing or extra:
            raise FoldCoverageError(
                f"fold {run['fold']}" + (f" (seed {run['seed']})" if run["seed"] is not None else "")
                + f" should hold the {len(expected)} cases {dataset}'s manifest assigns it: "
                + (f"missing {len(missing)} ({_preview(missing)})" if missing else "")
                + ("; " if missing and extra else "") + (f"{len(extra)} others ({_preview(extra)})" if extra else "")
                + ". Score each fold's held-out predictions against that fold's cases.")


def _check_disjoint(runs: list[dict[str, Any]]) -> None:
    held: dict[tuple[Any, str], int] = {}
    for run in runs:
        for case in run["cases"]:
            other = held.setdefault((run["seed"], case), run["fold"])
            if other != run["fold"]:
                raise OverlappingFoldsError(
                    f"case {case!r} is held out by folds {other} and {run['fold']}"
                    + (f" of seed {run['seed']}" if run["seed"] is not None else "")
                    + "; held-out folds must be disjoint: each case is scored by the one model that did not train on it.")


def _check_balanced(runs: list[dict[str, Any]]) -> tuple[list[int], list[int | None]]:
    by_seed: dict[Any, dict[int, list[str]]] = {}
    for run in runs:
        by_seed.setdefault(run["seed"], {})[run["fold"]] = run["cases"]
    seeds = list(by_seed)
    first = by_seed[seeds[0]]
    for seed in seeds[1:]:
        if sorted(by_seed[seed]) != sorted(first):
            raise FoldCoverageError(f"seed {seed} holds folds {sorted(by_seed[seed])} but seed {seeds[0]} holds "
                                    f"{sorted(first)}; give every seed the same folds.")
        differ = [f for f in first if by_seed[seed][f] != first[f]]
        if differ:
            raise FoldCoverageError(f"fold {differ[0]} holds other cases under seed {seed} than under seed {seeds[0]}; "
                                    "every seed must hold out the same cases per fold.")
    return sorted(first), seeds


def _stack(runs: list[dict[str, Any]], table: Any) -> pl.DataFrame:
    parts = [table(r["results"]).with_columns(fold=pl.lit(r["fold"], pl.Int64), seed=pl.lit(r["seed"], pl.Int64))
             for r in runs]
    return pl.concat(parts, how="vertical_relaxed").select("fold", "seed", pl.exclude("fold", "seed"))


def _combined(hashes: list[str | None]) -> str | None:
    """One sha256 of every fold's ground-truth hash, so that two models' folds can be compared for identity."""
    if any(h is None for h in hashes):
        return None
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


def _preview(ids: list[str], n: int = 5) -> str:
    return ", ".join(ids[:n]) + (", ..." if len(ids) > n else "")
