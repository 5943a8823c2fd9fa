"""A board as Markdown (a dataset's ``README.md``) and all boards as one static, sortable HTML page.

Both are rendered from the same tables (:func:`tables`: titles, cells, links, notes), so the page
says what the README says: the method text, the badge legend, code and paper links, submission
dates, distances with their unit and the split by its real name. Every text a submitter wrote is
escaped, and links are kept only when they are http(s).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..datasets import get_spec
from .bundle import BADGES

if TYPE_CHECKING:
    from .board import Board


@dataclass(frozen=True)
class Cell:
    """One table cell: its text, a link (http(s) only) and the number its column sorts by."""

    text: str
    href: str | None = None
    sort: float | str | None = None


@dataclass
class Table:
    """One table of a board, with its heading, the paragraph that explains it and notes on its sources."""

    kind: str
    title: str
    header: list[str]
    rows: list[list[Cell]]
    text: str
    notes: list[str] = field(default_factory=list)
    html_only: tuple[int, ...] = ()  # columns the page shows and the README leaves out


def _num(value: float | None, digits: int = 3) -> Cell:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return Cell("–", sort="")  # an empty sort key: last whichever way the column sorts
    return Cell(f"{value:.{digits}f}", sort=float(value))


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _link(text: str, url: str | None) -> Cell:
    ok = isinstance(url, str) and url.startswith(("https://", "http://"))
    return Cell(text, url, text) if ok else Cell("–", sort="")


def _metric_header(b: Board) -> list[str]:
    unit = "mm" if get_spec(b.dataset).spacing_unit == "mm" else "px"
    return ["IoU", f"HD95 ({unit})", f"ASSD ({unit})", f"NSD (2 {unit})", "lesion recall"]


def _entry_cells(r: dict) -> list[Cell]:
    from .board import OTHER_METRICS

    return [_num(r["mdice_pooled"]), *(_num(r[m]) for m in OTHER_METRICS)]


def _tail_cells(r: dict) -> list[Cell]:
    return [_num(r["parameters"], 1), _link("code", r["code_url"]), _link("paper", r["paper_url"]),
            Cell(r["submitted"] or "–", sort=r["submitted"] or "")]


def method_text(b: Board) -> str:
    """How the ranked table is computed (the same words in the README and the page)."""
    from .board import ALPHA, N_BOOT, SEED

    return ("Every entry was scored again from the predictions in its bundle when this board was built; the "
            "tables a submitter sends are only checked against that. Dice: mean over the cases of each case's "
            f"mean over foreground classes, with a percentile-bootstrap CI ({N_BOOT} resamples, seed {SEED}); "
            "ranked by it. mDice, pooled: per class from the pixel counts summed over the cases, then the mean over "
            f"classes. Other columns: means over cases; distances in "
            f"{'millimetres' if get_spec(b.dataset).spacing_unit == 'mm' else 'pixels'}, NSD at a tolerance of 2. "
            "vs leader: two-sided Wilcoxon signed-rank test (zeros dropped) of the per-case Dice against the "
            f"leader's, Holm-corrected over the other entries; worse: p < {ALPHA}. Rank 95% interval: over 1000 "
            "bootstrap resamples of the cases.")


def tables(b: Board) -> list[Table]:
    """The board's tables in reading order: ranked, then unverified, then reported in papers."""
    spec, out = get_spec(b.dataset), []
    metrics = _metric_header(b)
    if not b.ranked.is_empty():
        rows = []
        for r in b.ranked.iter_rows(named=True):
            versus = ("leader" if r["p_vs_leader"] is None else
                      f"{'worse' if r['worse_than_leader'] else 'n.s.'} ({_p(r['p_vs_leader'])})")
            rows.append([Cell(str(r["rank"]), sort=r["rank"]), Cell(r["model"]), Cell(r["badge"]),
                         Cell(f"{_num(r['dice']).text} [{_num(r['dice_ci_low']).text}, "
                              f"{_num(r['dice_ci_high']).text}]", sort=r["dice"]),
                         *_entry_cells(r), Cell(versus, sort=r["p_vs_leader"] if r["p_vs_leader"] is not None else ""),
                         Cell(f"{r['rank_low']}–{r['rank_high']}", sort=r["rank_low"]), *_tail_cells(r)])
        out.append(Table("ranked", (f"Ranked ({b.n_cases} cases of the `{spec.test_split}` split, manifest "
                                    f"`{(b.manifest_sha256 or '')[:12]}`)"),
                         ["#", "model", "badge", "Dice, mean [95% CI]", "mDice, pooled", *metrics,
                          "vs leader (Wilcoxon, Holm)", "rank 95% interval", "params (M)", "code", "paper",
                          "submitted"], rows, method_text(b)))
    if not b.folds.is_empty():
        out.append(_folds_table(b))
    if not b.unverified.is_empty():
        rows = [[Cell(r["model"]), _num(r["dice"]), *_entry_cells(r), Cell(r["predictions_withheld"]),
                 *_tail_cells(r)] for r in b.unverified.iter_rows(named=True)]
        out.append(Table("unverified", f"Unverified ({b.n_cases} cases of the `{spec.test_split}` split; not ranked)",
                         ["model", "Dice, mean (as submitted)", "mDice, pooled", *metrics, "why no predictions",
                          "params (M)", "code", "paper", "submitted"], rows,
                         ("Per-case results sent without their predictions: their overlap values agree with their own "
                          "pixel counts, but nothing here was scored again, so they are neither ranked nor tested.")))
    if not b.reported.is_empty():
        rows = []
        for r in b.reported.iter_rows(named=True):
            value = f"{r['mean']:.1f}" + (f" ± {r['sd']:.1f}" if r["sd"] is not None else "")
            rows.append([Cell(r["model"]), Cell(f"{r['metric']} {value}", sort=r["mean"]), _num(r["parameters"], 0),
                         Cell(r["citation"])])
        notes = b.reported.select("citation", "aggregate", "protocol", "note").unique(maintain_order=True)
        out.append(Table("reported", "Reported in papers (not ranked)", ["model", "reported", "params (M)", "source"],
                         rows, ("Numbers as published, without per-case data: where reproduced results should land; "
                                "they are not comparable by tests."),
                         [f"{r['citation']}: {r['aggregate']}; {r['protocol'] or 'protocol not stated'}"
                          + (f"; {r['note']}" if r["note"] else "") + "." for r in notes.iter_rows(named=True)]))
    return out


FROM_COUNTS = ("† the submitter's own computation from counts: the folds' held-out predictions are not in the bundle, "
               "so their per-case values were checked against their own pixel counts, and the folds against the "
               "dataset's manifest (disjoint, each holding exactly its cases), but nothing was scored again.")


def _folds_table(b: Board) -> Table:
    """Each entry's mean ± sd over its held-out folds beside its test-split score, and the papers' fold spreads."""
    rows = []
    for r in b.folds.iter_rows(named=True):
        dagger = "†" if r["badge"] != "reported" and not r["rescored"] else ""
        spread = f" ± {r['sd']:.1f}" if r["sd"] is not None else ""
        runs = (f"{r['n_folds']} folds" + (f" × {r['n_seeds']} seeds" if r["n_seeds"] > 1 else "")
                if r["n_folds"] is not None else "–")
        source = (r["citation"] if r["badge"] == "reported" else
                  "scored again from its held-out predictions" if r["rescored"] else "from counts†")
        rows.append([Cell(r["model"]), Cell(r["badge"]), Cell(runs, sort=r["n_folds"] or ""),
                     Cell(f"{r['mean']:.1f}{spread}{dagger}", sort=r["mean"]),
                     Cell(f"{r['min']:.1f}–{r['max']:.1f}" if r["min"] is not None else "–", sort=r["min"] or ""),
                     _num(r["test"], 1), Cell(source)])
    notes = [FROM_COUNTS] if any(not r["rescored"] and r["badge"] != "reported" for r in b.folds.iter_rows(named=True)) \
        else []
    return Table("folds", "Cross-validation (held-out folds of the training cases; not ranked)",
                 ["model", "badge", "runs", "mDice (%) over folds, mean ± sd", "min–max over folds (%)",
                  "mDice (%) on the test split, pooled", "fold numbers"], rows,
                 ("mDice per fold: per class from the pixel counts summed over the fold's held-out cases, then the mean "
                  "over classes (the founding study's number); mean and sd (ddof 1) over every fold of every seed. "
                  "Papers' rows are their reported mean ± sd over folds, where they give one. The test-split column "
                  "is the same entry's pooled mDice on the board's split."), notes, html_only=(4,))


def render_markdown(b: Board) -> str:
    """The board as Markdown (a dataset's ``README.md``)."""
    lines = [f"# {get_spec(b.dataset).title}: leaderboard", "",
             "Generated by `medseg-eval leaderboard build` from the bundles in this folder; do not edit by hand.", ""]
    found = tables(b)
    if not any(t.kind == "ranked" for t in found):
        lines += [("No ranked entries yet: submit results with their predictions (`medseg-eval leaderboard submit "
                  "RESULTS --predictions PRED`)."), ""]
    for t in found:
        keep = [i for i in range(len(t.header)) if i not in t.html_only]
        lines += [f"## {t.title}", "", "| " + " | ".join(t.header[i] for i in keep) + " |", "|" + "---|" * len(keep)]
        lines += ["| " + " | ".join(_md_cell(row[i]) for i in keep) + " |" for row in t.rows]
        lines += ["", *(f"- {n}" for n in t.notes), *([""] if t.notes else []), t.text, ""]
    lines += ["## Badges", ""] + [f"- *{badge}*: {text}" for badge, text in BADGES.items()]
    return "\n".join(lines) + "\n"


def _md_cell(c: Cell) -> str:
    text = c.text.replace("|", "\\|")
    return f"[{text}]({c.href.replace(' ', '%20').replace(')', '%29')})" if c.href else text


_SORT_SCRIPT = """
document.querySelectorAll("table.sortable thead th").forEach((th, column) => {
  th.addEventListener("click", () => {
    const table = th.closest("table"), body = table.tBodies[0];
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("thead th").forEach(h => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const key = row => row.cells[column].dataset.sort ?? row.cells[column].textContent.trim();
    const rows = [...body.rows].sort((a, b) => {
      const x = key(a), y = key(b);
      if (x === "" || y === "") return (x === "") - (y === "");  // missing values last, either way
      const nx = Number(x), ny = Number(y);
      const order = Number.isNaN(nx) || Number.isNaN(ny) ? x.localeCompare(y) : nx - ny;
      return ascending ? order : -order;
    });
    rows.forEach(row => body.appendChild(row));
  });
});
"""


def render_html(boards: list[Board]) -> str:
    """All boards as one static HTML page: boards with a ranking first, then those of reported numbers only."""
    ordered = sorted(boards, key=lambda b: (b.ranked.is_empty(), b.dataset))
    nav = " · ".join(f'<a href="#{html.escape(b.dataset)}">{html.escape(get_spec(b.dataset).title)}</a>'
                     for b in ordered)
    sections = []
    for b in ordered:
        parts = [f'<section id="{html.escape(b.dataset)}"><h2>{html.escape(get_spec(b.dataset).title)}</h2>']
        for t in tables(b):
            parts.append(f"<h3>{html.escape(t.title.replace('`', ''))}</h3>")
            parts.append(_html_table(t))
            if t.notes:
                parts.append("<ul>" + "".join(f"<li>{html.escape(note)}</li>" for note in t.notes) + "</ul>")
            parts.append(f"<p>{html.escape(t.text)}</p>")
        sections.append("\n".join(parts) + "</section>")
    legend = "".join(f"<li><em>{html.escape(badge)}</em>: {html.escape(text)}</li>" for badge, text in BADGES.items())
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>medseg_eval leaderboards</title>',
        ("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
         "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}caption{text-align:left;font-style:italic}"
         "th{cursor:pointer;background:#f4f4f4}th[aria-sort=ascending]::after{content:' ▲'}"
         "th[aria-sort=descending]::after{content:' ▼'}</style></head><body>"),
        "<h1>medseg_eval leaderboards</h1>", f"<nav>{nav}</nav>",
        "<p>Click a column's header to sort by it.</p>", *sections,
        f'<section id="badges"><h2>Badges</h2><ul>{legend}</ul></section>',
        f"<script>{_SORT_SCRIPT}</script>", "</body></html>", ""])


def _html_table(t: Table) -> str:
    head = "".join(f'<th scope="col">{html.escape(h)}</th>' for h in t.header)
    body = "".join("<tr>" + "".join(_html_cell(c) for c in row) + "</tr>" for row in t.rows)
    return f'<table class="{t.kind} sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _html_cell(c: Cell) -> str:
    value = f"{c.sort:.12g}" if isinstance(c.sort, float) else str(c.sort)  # the last bits follow summation order
    sort = f' data-sort="{html.escape(value)}"' if c.sort is not None else ""
    text = html.escape(c.text)
    return f"<td{sort}>" + (f'<a href="{html.escape(c.href)}">{text}</a>' if c.href else text) + "</td>"
