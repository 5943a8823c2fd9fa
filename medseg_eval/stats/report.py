"""report(): the methods paragraph, the tables and the bibliography of results, a cross-validation or a comparison.

Everything the text says is read from the object's provenance (:mod:`.methods`); the tables are
its summaries; the bibliography holds the package at the recorded version, the dataset's paper and
the papers of the metrics and tests cited.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from ..errors import MedsegEvalError
from ..results import Results
from . import methods as text
from .bibliography import dataset_entry, entries
from .compare import Comparison
from .crossval import CrossValidation
from .tables import latex_escape

Format = Literal["markdown", "latex", "html"]
_CITATION = re.compile(r" ?\[((?:@[^\];]+)(?:; @[^\];]+)*)\]")


class ReportError(MedsegEvalError, ValueError):
    """The object cannot be reported: not results, a cross-validation or a comparison (or a folder of one)."""


@dataclass
class Report:
    """What :func:`report` returns.

    Attributes
    ----------
    methods
        A paragraph a paper can paste, citations as pandoc keys ``[@key]``.
    tables
        ``(caption, table)`` pairs, the cells already formatted.
    bibliography
        BibTeX entries of every key the paragraph cites, in order.
    """

    methods: str
    tables: list[tuple[str, pl.DataFrame]] = field(repr=False)
    bibliography: list[str] = field(repr=False)

    def to_markdown(self) -> str:
        """The paragraph, the tables (pipe tables, caption below) and the BibTeX in a fenced block."""
        parts = ["## Methods", "", self.methods, ""]
        for caption, table in self.tables:
            parts += [_markdown_table(table), "", caption, ""]
        parts += ["## References", "", "```bibtex", "\n\n".join(self.bibliography), "```"]
        return "\n".join(parts)

    def to_latex(self) -> str:
        r"""The paragraph (``\cite``), booktabs tables, and the bibliography in a ``filecontents*`` file
        ``medseg_eval_refs.bib`` that ``\bibliography{medseg_eval_refs}`` reads."""
        paragraph = _CITATION.sub(lambda m: r"~\cite{" + ",".join(k.strip()[1:] for k in m.group(1).split(";")) + "}",
                                  self.methods)
        parts = [r"\paragraph{Evaluation.} " + _latex_text(paragraph)]
        for caption, table in self.tables:
            parts.append(_latex_table(table, caption))
        parts.append("\\begin{filecontents*}[overwrite]{medseg_eval_refs.bib}\n" + "\n\n".join(self.bibliography)
                     + "\n\\end{filecontents*}")
        return "\n\n".join(parts)

    def to_html(self) -> str:
        """A self-contained HTML fragment: the paragraph, the tables with captions, the BibTeX."""
        paragraph = _CITATION.sub(lambda m: " [" + html.escape(", ".join(k.strip()[1:] for k in m.group(1).split(";")))
                                  + "]", self.methods)
        parts = ["<section class=\"medseg-eval-report\">", "<h2>Methods</h2>",
                 f"<p>{html.escape(paragraph, quote=False)}</p>"]
        for caption, table in self.tables:
            parts.append(_html_table(table, caption))
        parts += ["<h2>References</h2>", f"<pre>{html.escape(chr(10).join(self.bibliography))}</pre>", "</section>"]
        return "\n".join(parts)


def report(obj: Results | CrossValidation | Comparison | str | Path, *, confidence: float = 0.95, n_boot: int = 2000,
           seed: int = 0, digits: int = 3) -> Report:
    """The methods paragraph, tables and bibliography of results, a cross-validation or a comparison.

    Parameters
    ----------
    obj
        :class:`~medseg_eval.Results`, a :class:`~medseg_eval.stats.CrossValidation`, a
        :class:`~medseg_eval.stats.Comparison`, or a folder one of them was saved to.
    confidence, n_boot, seed
        The bootstrap of the summary tables of results and cross-validations (a comparison keeps
        its own), stated in the paragraph.
    digits
        Decimals in the tables.

    Examples
    --------
    >>> import medseg_eval, numpy as np
    >>> gt = {f"c{i}": np.pad(np.ones((4, 4), np.uint8), i + 1) for i in range(4)}
    >>> rep = medseg_eval.report(medseg_eval.evaluate(gt, targets=gt, metrics=["dice"], progress=False), n_boot=100)
    >>> rep.methods.startswith(f"Segmentations were scored with medseg_eval {medseg_eval.__version__} [@medseg_eval]")
    True
    >>> "2|P∩G| / (|P| + |G|)" in rep.methods and "100 resamples of the cases" in rep.methods
    True
    """
    obj = load_saved(obj) if isinstance(obj, str | Path) else obj
    if isinstance(obj, Comparison):
        return _comparison_report(obj, digits)
    if not isinstance(obj, Results | CrossValidation):
        raise ReportError(f"expected Results, a CrossValidation or a Comparison, got {type(obj).__name__}.")
    record = obj.provenance
    cite = dataset_entry(record.get("dataset"))
    if isinstance(obj, CrossValidation):
        resample = "seeds" if len(obj.seeds) > 1 else "folds"
        summary = obj.summary(confidence=confidence, n_boot=n_boot, seed=seed, resample=resample)
        tail = text.cv_aggregation(record, confidence=confidence, n_boot=n_boot, seed=seed, resample=resample)
        table = _cv_table(summary, digits)
        caption = (f"Mean ± sd, minimum and maximum over {len(obj.folds)} folds"
                   + (f" x {len(obj.seeds)} seeds" if len(obj.seeds) > 1 else "")
                   + f"; the held-out cases pooled; {round(100 * confidence)}% two-stage bootstrap CI of the mean "
                   f"({n_boot} resamples, seed {seed}).")
    else:
        summary = obj.summary(confidence=confidence, n_boot=n_boot, seed=seed)
        tail = text.results_aggregation(record, confidence=confidence, n_boot=n_boot, seed=seed)
        table = _results_table(summary, digits)
        caption = (f"Mean ± sd over cases (pooled: over the split's summed counts), with the "
                   f"{round(100 * confidence)}% percentile-bootstrap CI ({n_boot} resamples, seed {seed}).")
    methods = text.scoring(record, cite[0] if cite else None) + tail
    return Report(methods, [(caption, table)], _bibliography(methods, record.get("package_version"), cite))


def _comparison_report(cmp: Comparison, digits: int) -> Report:
    settings = cmp.settings
    inputs = [record for records in settings.get("inputs", {}).values() for record in records]
    record = dict(inputs[0]) if inputs else {}
    versions = sorted({str(r.get("package_version")) for r in inputs if r.get("package_version")})
    record["package_version"] = ", ".join(versions) or None
    cite = dataset_entry(record.get("dataset"))
    scoring = text.scoring(record, cite[0] if cite else None) if inputs else (
        "Per-case values were given as tables; how they were scored is not recorded.")
    methods = scoring + text.comparison_methods(settings)
    if settings.get("package_version") and settings.get("package_version") not in versions:
        methods += f" Statistics were computed with medseg_eval {settings['package_version']}."
    f = f"{{:.{digits}f}}"
    summary = cmp.summary.select(
        "metric", "class", "model", "n",
        pl.struct("mean", "sd", "ci_low", "ci_high").map_elements(
            lambda r: f.format(r["mean"]) + (f" ± {f.format(r['sd'])}" if r["sd"] is not None else "")
            + f" [{f.format(r['ci_low'])}, {f.format(r['ci_high'])}]", return_dtype=pl.String).alias("mean ± sd [CI]"),
        pl.col("mean_rank").round(2).cast(pl.String), pl.col("rank").cast(pl.String))
    caption = cmp.to_markdown().split("\n\n", 1)[1]
    pairs = cmp.pairwise.select("metric", "class", "model_a", "model_b", "test", "n",
                                pl.col("p_value").map_elements(lambda p: f"{p:.3g}", return_dtype=pl.String),
                                pl.col("p_adjusted").map_elements(lambda p: f"{p:.3g}", return_dtype=pl.String),
                                pl.col("mean_diff").round(digits).cast(pl.String), "better")
    pairs_caption = f"Pairwise tests; p_adjusted: {settings.get('correction')} correction per metric, class and test."
    tables = [(caption, summary), (pairs_caption, pairs)]
    return Report(methods, tables, _bibliography(methods, settings.get("package_version") or record.get(
        "package_version"), cite))


def _bibliography(methods: str, version: str | None, cite: tuple[str, str] | None) -> list[str]:
    keys = [k.strip()[1:] for m in _CITATION.finditer(methods) for k in m.group(1).split(";")]
    return entries(keys, version=version, dataset=cite)


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _results_table(summary: pl.DataFrame, digits: int) -> pl.DataFrame:
    rows = [{"metric": r["metric"], "class": r["class"], "aggregate": r["aggregate"], "n": str(r["n"]),
             "mean ± sd": _fmt(r["mean"], digits) + (f" ± {_fmt(r['sd'], digits)}" if r["sd"] is not None else ""),
             "CI": f"[{_fmt(r['ci_low'], digits)}, {_fmt(r['ci_high'], digits)}]"}
            for r in summary.iter_rows(named=True)]
    return pl.DataFrame(rows)


def _cv_table(summary: pl.DataFrame, digits: int) -> pl.DataFrame:
    rows = [{"metric": r["metric"], "class": r["class"], "aggregate": r["aggregate"],
             "mean ± sd": _fmt(r["mean"], digits) + (f" ± {_fmt(r['sd'], digits)}" if r["sd"] is not None else ""),
             "min–max": f"{_fmt(r['min'], digits)}–{_fmt(r['max'], digits)}",
             "held-out pooled": _fmt(r["held_out"], digits),
             "CI": f"[{_fmt(r['ci_low'], digits)}, {_fmt(r['ci_high'], digits)}]"}
            for r in summary.iter_rows(named=True)]
    return pl.DataFrame(rows)


def _markdown_table(table: pl.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * table.width]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in table.rows()])


def _latex_text(value: str) -> str:
    r"""Escape plain text but keep the ``\cite`` commands :meth:`Report.to_latex` inserted."""
    pieces = re.split(r"(~\\cite\{[^}]*\})", value)
    out = "".join(p if p.startswith("~\\cite") else latex_escape(p) for p in pieces)
    return (out.replace("±", r"$\pm$").replace("∩", r"$\cap$").replace("∪", r"$\cup$").replace("–", "--")
            .replace("†", r"$^{\dagger}$").replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$"))


def _latex_table(table: pl.DataFrame, caption: str) -> str:
    header = " & ".join(_latex_text(c) for c in table.columns) + r" \\"
    body = [" & ".join(_latex_text(str(v)) for v in row) + r" \\" for row in table.rows()]
    return "\n".join([r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_text(caption)}}}",
                      r"\begin{tabular}{" + "l" * table.width + "}", r"\toprule", header, r"\midrule", *body,
                      r"\bottomrule", r"\end{tabular}", r"\end{table}"])


def _html_table(table: pl.DataFrame, caption: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in table.rows())
    return (f"<table><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def load_saved(path: str | Path) -> Results | CrossValidation | Comparison:
    """Results, a cross-validation or a comparison from the folder its ``save`` wrote."""
    path = Path(path)
    if (path / "cross_validation.json").is_file():
        return CrossValidation.load(path)
    if (path / "provenance.json").is_file():
        return Results.load(path)
    if (path / "settings.json").is_file():
        settings = json.loads((path / "settings.json").read_text())
        frames = {name: pl.read_parquet(path / f"{name}.parquet") for name in
                  ("summary", "pairwise", "omnibus", "posthoc", "ranking", "stability", "kendall")}
        return Comparison(settings["models"], **frames, settings=settings, table=pl.DataFrame())
    raise FileNotFoundError(f"{path} holds no saved results (provenance.json), cross-validation "
                            "(cross_validation.json) or comparison (settings.json).")


def report_command(path: str | Path, *, fmt: Format = "markdown", out: str | Path | None = None,
                   n_boot: int = 2000, seed: int = 0) -> str:
    """``medseg-eval report PATH --format FMT [--out FILE]``: the report of a saved object, as text (and written to ``out``)."""
    if fmt not in ("markdown", "latex", "html"):
        raise ReportError(f"`--format` must be markdown, latex or html, got {fmt!r}.")
    rendered = getattr(report(path, n_boot=n_boot, seed=seed), {"markdown": "to_markdown", "latex": "to_latex",
                                                                  "html": "to_html"}[fmt])()
    if out is not None:
        from .._atomic import atomic_write_text

        atomic_write_text(Path(out), rendered + "\n")
    return rendered


def cv_command(run_dirs: list[str | Path], *, fmt: Format = "markdown", out: str | Path | None = None,
               n_boot: int = 2000, seed: int = 0) -> str:
    """``medseg-eval cv RUN_DIR... [--out DIR]``: the cross-validation of run folders, reported (and saved to ``out``)."""
    from .crossval import cross_validation, load_runs

    cv = cross_validation(load_runs(run_dirs))
    if out is not None:
        cv.save(out)
    rendered = report(cv, n_boot=n_boot, seed=seed)
    return getattr(rendered, {"markdown": "to_markdown", "latex": "to_latex", "html": "to_html"}[fmt])()
