"""compare(): every statistic a paper needs to compare segmentation models, from their per-case results."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from .._atomic import atomic_directory
from ..errors import ArgumentError
from ..results import Results
from .analyses import AnalysisOptions, analyses, checked_tests
from .crossval import CrossValidation
from .crossval_blocks import cv_blocks, cv_layout, cv_table
from .pairing import MissingPolicy, ModelResults, PairingError, paired_values, per_case_table
from .ranking import Scheme

#: Blocks of a comparison: cases, datasets, and for cross-validations folds (one per fold and seed) or seeds.
CompareBlocks = Literal["case", "dataset", "fold", "seed"]
#: Provenance of each input kept in ``settings["inputs"]``: what a report of the comparison states.
INPUT_RECORD = ("kind", "dataset", "dataset_revision", "split", "manifest_sha256", "targets_sha256", "num_cases", "folds",
                "seeds", "metrics", "convention", "convention_reproduces", "percentile", "tolerance", "spacing_unit",
                "empty_policy", "lesion_criteria", "predictions_sha256", "package_version")
#: Provenance that must agree between the models compared on one dataset, or the numbers are not comparable.
COMPARABLE = ("split", "manifest_sha256", "targets_sha256", "convention", "empty_policy", "percentile", "tolerance",
              "lesion_criteria", "topology_options")


@dataclass
class Comparison:
    """What :func:`compare` returns: polars frames, paper tables and figures.

    Attributes
    ----------
    summary
        Per metric, class and model: ``n, mean, sd, median, q1, q3, ci_low, ci_high`` (percentile
        bootstrap CI of the mean), ``mean_rank`` (Friedman ranks) and ``rank`` (of the mean).
    pairwise
        One row per metric, class, pair of models and test: ``model_a, model_b, n, test, statistic,
        p_value, p_adjusted, correction, significant, better`` (the model with the better mean),
        ``mean_diff`` (``a - b``) with its bootstrap CI ``mean_diff_low/high``, ``median_diff`` with
        ``median_diff_low/high``, ``rank_biserial`` and ``cohen_dz``. ``p_adjusted`` is corrected
        over all pairs of one metric, class and test.
    omnibus
        With three or more models: Friedman's chi-square and Iman-Davenport's F with p-values, and
        Nemenyi's critical difference at ``alpha``.
    posthoc
        With three or more models: Nemenyi's and Conover's all-pairs tests.
    ranking
        The three ranking schemes: ``scheme, model, score, rank``.
    stability
        Bootstrap rank distribution (``model, rank, frequency, full_rank``) of the ``stability_scheme``.
    kendall
        Kendall's tau between the bootstrap rankings and the full one: mean, median and 95% interval.
    settings
        Every choice that decided the numbers (tests, corrections, seeds, missing-case policy and
        what it did), and the provenance of each model's results.
    """

    models: list[str]
    summary: pl.DataFrame
    pairwise: pl.DataFrame
    omnibus: pl.DataFrame
    posthoc: pl.DataFrame
    ranking: pl.DataFrame
    stability: pl.DataFrame
    kendall: pl.DataFrame
    settings: dict[str, Any]
    table: pl.DataFrame = field(repr=False)

    def _select(self, frame: pl.DataFrame, metric: str | None, class_: str | None) -> pl.DataFrame:
        metric = metric or self.settings["metrics"][0]
        part = frame.filter(pl.col("metric") == metric)
        classes = part["class"].unique(maintain_order=True).to_list()
        if class_ is None and len(classes) > 1:
            raise ValueError(f"{metric} has several classes ({', '.join(classes)}); choose one with class_=...")
        part = part.filter(pl.col("class") == (class_ or classes[0]))
        if part.is_empty():
            raise ValueError(f"nothing compared for metric {metric!r}, class {class_!r}.")
        return part

    def to_markdown(self, *, statistic: Literal["mean", "median"] = "mean", ci: bool = True, digits: int = 3,
                    metrics: Sequence[str] | None = None) -> str:
        """A Markdown table: models as rows, one column per metric and class, with a caption below.

        Cells are ``mean ± sd [CI]`` (or ``median [q1, q3]``); the best of each column is bold and
        ``†`` marks models significantly different from it (``p_adjusted < alpha`` of the first test).
        """
        from .tables import render

        return render(self, "markdown", statistic=statistic, ci=ci, digits=digits, metrics=metrics)

    def to_latex(self, *, statistic: Literal["mean", "median"] = "mean", ci: bool = True, digits: int = 3,
                 metrics: Sequence[str] | None = None, label: str | None = None) -> str:
        """A LaTeX ``table`` (booktabs) with the same content as :meth:`to_markdown` and its caption."""
        from .tables import render

        return render(self, "latex", statistic=statistic, ci=ci, digits=digits, metrics=metrics, label=label)

    def plot_cd(self, metric: str | None = None, *, class_: str | None = None, path: str | Path | None = None) -> Any:
        """Critical-difference diagram (Demšar 2006) of the Friedman mean ranks, Nemenyi cliques at ``alpha``."""
        from .friedman import cliques
        from .plots import cd_diagram

        summary = self._select(self.summary, metric, class_)
        omnibus = self._select(self.omnibus, metric, class_) if not self.omnibus.is_empty() else None
        mean_ranks = dict(summary.select("model", "mean_rank").rows())
        cd = None if omnibus is None else omnibus["critical_difference"][0]
        groups = cliques(mean_ranks, cd) if cd is not None else [tuple(mean_ranks)]
        title = f"{summary['metric'][0]} ({summary['class'][0]}): Nemenyi, alpha = {self.settings['alpha']}"
        return cd_diagram(mean_ranks, cd, cliques=groups, title=title, path=path)

    def plot_blobs(self, metric: str | None = None, *, class_: str | None = None,
                   path: str | Path | None = None) -> Any:
        """Blob plot of the bootstrap rank distribution, with each model's full rank marked."""
        from .plots import blob_plot

        part = self._select(self.stability, metric, class_)
        title = f"{part['metric'][0]} ({part['class'][0]}): {self.settings['stability_scheme']}, " \
                f"{self.settings['n_rank_boot']} bootstrap samples"
        return blob_plot(part.select("model", "rank", "frequency", "full_rank"), title=title, path=path)

    def plot_significance(self, metric: str | None = None, *, class_: str | None = None,
                          path: str | Path | None = None) -> Any:
        """Map of the corrected pairwise p-values of the first test, coloured by the better model."""
        from .plots import significance_map

        part = self._select(self.pairwise, metric, class_).filter(pl.col("test") == self.settings["tests"][0])
        title = f"{part['metric'][0]} ({part['class'][0]}): {part['test'][0]}, {part['correction'][0]}"
        return significance_map(part.select("model_a", "model_b", "p_adjusted", "better"), order=self.models,
                                alpha=self.settings["alpha"], title=title, path=path)

    def plot_cases(self, metric: str | None = None, *, class_: str | None = None,
                   path: str | Path | None = None) -> Any:
        """Per-case box and strip plot per model, cases linked across models."""
        from .plots import per_case_plot

        part = self._select(self.table, metric, class_)
        return per_case_plot(part.select("model", "case_id", "value"), metric=part["metric"][0], order=self.models,
                             title=f"{part['metric'][0]} ({part['class'][0]})", path=path)

    def save(self, path: str | Path) -> Path:
        """Write every frame (parquet), the settings (JSON) and both tables to the folder ``path``, atomically."""
        path = Path(path)
        frames = ("summary", "pairwise", "omnibus", "posthoc", "ranking", "stability", "kendall")
        owned = [f"{name}.parquet" for name in frames] + ["settings.json", "table.md", "table.tex"]
        with atomic_directory(path, owned=owned) as staging:
            for name in frames:
                getattr(self, name).write_parquet(staging / f"{name}.parquet")
            (staging / "settings.json").write_text(json.dumps(self.settings, indent=2, sort_keys=True, default=str)
                                                   + "\n")
            (staging / "table.md").write_text(self.to_markdown() + "\n")
            (staging / "table.tex").write_text(self.to_latex() + "\n")
        return path


def compare(models: Mapping[str, ModelResults | CrossValidation | Sequence[ModelResults]] | pl.DataFrame,
            metric: str | Sequence[str] = "dice", *, class_: str | int | None = None,
            test: str | Sequence[str] = "wilcoxon", correction: str = "holm", zero_method: str = "wilcox",
            alpha: float = 0.05, missing: MissingPolicy = "error", worst: Mapping[str, float] | None = None,
            blocks: CompareBlocks | None = None, confidence: float = 0.95, n_boot: int = 2000,
            stability_scheme: Scheme = "aggregate-then-rank", n_rank_boot: int = 1000, n_permutations: int = 9999,
            seed: int = 0) -> Comparison:
    """Compare models on the same cases: paired tests, corrections, CIs, effect sizes, rankings and their stability.

    Parameters
    ----------
    models
        ``{name: Results}`` (or saved results folders, or per-case tables; a list per model for
        several datasets), ``{name: CrossValidation}`` (:func:`~medseg_eval.cross_validation`, or
        saved cross-validation folders: every model with the same folds and number of seeds), or a
        long per-case table with a ``model`` column. Cases are paired by ``case_id`` (and dataset,
        fold and seed), never by row order. Results of one dataset must agree on split, manifest,
        convention and empty-mask policy.
    metric
        One metric or several; each metric's direction (higher or lower is better) is its own.
    class_
        A foreground class (name or id), ``"mean"`` (macro mean per case), or ``None``: every
        class, each compared on its own.
    test
        Paired test(s) for every pair: ``"wilcoxon"`` (signed-rank, exact up to 200 non-zero
        differences, else normal approximation), ``"t"``, ``"permutation"``. The first one marks
        significance in tables and figures.
    correction
        Over all pairs of one metric, class and test: ``"holm"``, ``"fdr_bh"`` (``"bh"``),
        ``"bonferroni"`` or ``"none"``. Conover's post-hoc test uses it too.
    zero_method
        Zero differences in the Wilcoxon test and the rank-biserial correlation (see :func:`wilcoxon`).
    missing, worst
        Missing-case policy, as in :func:`~medseg_eval.stats.paired_values`; what it did is in
        ``settings["missing"]``.
    blocks
        What the tests pair and the ranks are taken within: ``"case"`` and ``"dataset"`` as in
        :func:`~medseg_eval.stats.paired_values`; for cross-validations ``"fold"`` (the default
        for them: one block per fold and seed, each model's mean over the fold's held-out cases),
        ``"seed"`` (one block per seed: the mean over every held-out case) or ``"case"`` (one block
        per held-out case and seed). Seeds pair by their order (first with first). Otherwise the
        default is ``"case"``. The caption states what the tests assume of the blocks.
    confidence, n_boot, seed
        Percentile-bootstrap CIs of each model's mean and of the mean and median differences,
        from ``n_boot`` resamples of the cases drawn with ``seed``.
    stability_scheme, n_rank_boot
        Ranking scheme and number of bootstrap samples of the rank stability.
    n_permutations
        Random sign flips of the permutation test when there are too many cases to enumerate them.

    Examples
    --------
    >>> import medseg_eval, numpy as np
    >>> rng = np.random.default_rng(0)
    >>> gt = {f"c{i}": (rng.random((32, 32)) > 0.5).astype(np.uint8) for i in range(12)}
    >>> noisy = {k: np.where(rng.random(v.shape) < 0.1, 1 - v, v) for k, v in gt.items()}
    >>> a = medseg_eval.evaluate(gt, targets=gt, metrics=["dice"], progress=False)
    >>> b = medseg_eval.evaluate(noisy, targets=gt, metrics=["dice"], progress=False)
    >>> cmp = medseg_eval.compare({"a": a, "b": b}, metric="dice")
    >>> cmp.pairwise.select("model_a", "model_b", "test", "p_value", "better").rows()
    [('a', 'b', 'wilcoxon', 0.00048828125, 'a')]
    """
    tests, correction = checked_tests(test, correction, stability_scheme, alpha)
    metrics = [metric] if isinstance(metric, str) else list(metric)
    table, provenance, cv = _inputs(models)
    blocks = blocks or ("fold" if cv else "case")
    table, pairing = cv_blocks(table, cv, blocks)
    order = list(dict.fromkeys(table["model"].to_list()))
    if len(order) < 2:
        raise ArgumentError(f"a comparison needs at least two models, got {order}.")
    options = AnalysisOptions(tests, correction, alpha, zero_method, confidence, n_boot, n_permutations, stability_scheme,
                       n_rank_boot, seed)
    frames: dict[str, list[pl.DataFrame]] = {k: [] for k in ("summary", "pairwise", "omnibus", "posthoc", "ranking",
                                                              "stability", "kendall")}
    missing_report = {}
    for name in metrics:
        for class_id in _classes(table, name, class_):
            paired = paired_values(table, name, class_=class_id, models=order, blocks=pairing, missing=missing,
                                   worst=worst)
            missing_report[f"{paired.metric}/{paired.class_name}"] = paired.missing
            for kind, frame in analyses(paired, options).items():
                frames[kind].append(frame)
    leading = ["metric", "class"]
    out = {k: pl.concat(v, how="diagonal_relaxed").select(*leading, pl.exclude(leading)) if v else
           pl.DataFrame(schema={"metric": pl.String, "class": pl.String}) for k, v in frames.items()}
    settings = {
        "metrics": metrics, "models": order, "tests": tests, "zero_method": zero_method, "correction": correction,
        "alpha": alpha, "confidence": confidence, "n_boot": n_boot, "seed": seed, "blocks": blocks,
        "cross_validation": cv,
        "n_permutations": n_permutations, "stability_scheme": stability_scheme, "n_rank_boot": n_rank_boot,
        "missing_policy": missing, "worst": dict(worst or {}), "missing": missing_report, "inputs": provenance,
    }
    from .. import __version__

    settings["package_version"] = __version__
    return Comparison(order, out["summary"], out["pairwise"], out["omnibus"], out["posthoc"], out["ranking"],
                      out["stability"], out["kendall"], settings, table)


def _inputs(models: Mapping[str, Any] | pl.DataFrame) -> tuple[pl.DataFrame, dict[str, Any], dict[str, Any] | None]:
    """The long table, each model's provenance (results of one dataset must be comparable), and for
    cross-validations their folds and seeds."""
    if isinstance(models, pl.DataFrame):
        return per_case_table(models), {}, None
    loaded: dict[str, list[Any]] = {}
    for name, results in models.items():
        many = isinstance(results, Sequence) and not isinstance(results, str | Path)
        loaded[name] = [_load(r) for r in (results if many else [results])]
    folds = {name: runs for name, runs in loaded.items() if any(isinstance(r, CrossValidation) for r in runs)}
    if folds and (len(folds) < len(loaded) or any(len(runs) > 1 for runs in folds.values())):
        raise PairingError("compare cross-validations with cross-validations, one per model: got "
                           + ", ".join(f"{n}: {', '.join(type(r).__name__ for r in runs)}" for n, runs in loaded.items())
                           + ".")
    provenance = {name: [r.provenance for r in runs if isinstance(r, Results | CrossValidation)]
                  for name, runs in loaded.items()}
    by_dataset: dict[Any, dict[str, dict[str, Any]]] = {}
    for name, runs in provenance.items():
        for p in runs:
            by_dataset.setdefault(p.get("dataset"), {})[name] = p
    for dataset, per_model in by_dataset.items():
        for key in COMPARABLE:
            seen = {m: json.dumps(p.get(key), sort_keys=True) for m, p in per_model.items()}
            if len(set(seen.values())) > 1:
                detail = ", ".join(f"{m}: {v}" for m, v in seen.items())
                raise PairingError(f"the results on {dataset or 'your targets'} differ in {key} ({detail}); their "
                                   "numbers are not comparable: evaluate every model the same way.")
    summary = {name: [{k: p.get(k) for k in INPUT_RECORD if k in p} for p in runs]
               for name, runs in provenance.items()}
    if not folds:
        return per_case_table(loaded), summary, None
    return cv_table({name: runs[0] for name, runs in folds.items()}), summary, cv_layout(folds)


def _load(results: Any) -> Any:
    if isinstance(results, str | Path):
        saved = Path(results) / "cross_validation.json"
        return CrossValidation.load(results) if saved.is_file() else Results.load(results)
    return results


def _classes(table: pl.DataFrame, metric: str, class_: str | int | None) -> list[str | int]:
    if class_ is not None:
        return [class_]
    rows = table.filter(pl.col("metric") == metric).select("class_id").unique().sort("class_id")
    return rows["class_id"].to_list() or [0]
