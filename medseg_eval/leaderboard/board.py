"""Boards: ``leaderboards/<dataset>/README.md`` and a static ``leaderboards/index.html``, rebuilt from the bundles.

Ranked entries (*verified*, *reproduced*) are ranked by their mean Dice over the test cases (the
mean over foreground classes per case), with a seeded bootstrap CI, the pooled mDice (per class
from the pixel counts summed over cases, then the mean over classes: the founding study's
number), the other metrics' means, a paired Wilcoxon test against the leader with Holm's
correction over the other entries, and the 95% interval of each entry's rank over bootstrap
resamples of the cases. *Reported* entries are listed apart and never ranked or tested. The same
bundles give the same bytes: no timestamps, fixed seeds, sorted inputs.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from .._atomic import atomic_write_text
from ..datasets import get_spec
from ..results import POOLED
from ..stats import paired_values, pairwise_tests, per_case_table, rank_stability
from .bundle import BADGES, Submission, validate

MAIN_METRIC = "dice"
OTHER_METRICS = ("iou", "hd95", "assd", "nsd", "lesion_recall")
SEED, N_BOOT, ALPHA = 0, 2000, 0.05


@dataclass
class Board:
    """One dataset's board: ranked entries and reported ones, as polars frames."""

    dataset: str
    ranked: pl.DataFrame
    reported: pl.DataFrame
    n_cases: int
    manifest_sha256: str | None


def load_bundles(board_dir: str | Path, dataset: str) -> list[tuple[str, Submission]]:
    """Every bundle of ``board_dir/<dataset>/``, validated, sorted by folder name; the first invalid one raises."""
    folder = Path(board_dir) / dataset
    return [(p.name, validate(p, name=f"{dataset}/{p.name}")) for p in sorted(folder.iterdir())
            if p.is_dir() and (p / "meta.json").is_file()]


def board(board_dir: str | Path, dataset: str) -> Board:
    """Compute the board of ``dataset`` from its bundles."""
    bundles = load_bundles(board_dir, dataset)
    ranked = [(slug, s) for slug, s in bundles if s.meta["badge"] != "reported"]
    reported = [s for _, s in bundles if s.meta["badge"] == "reported"]
    reported_frame = pl.DataFrame([{
        "model": s.meta["model"], "metric": s.meta["reported"]["metric"], "aggregate": s.meta["reported"]["aggregate"],
        "mean": s.meta["reported"]["mean"], "sd": s.meta["reported"]["sd"], "parameters": s.meta.get("parameters"),
        "protocol": s.meta.get("training_protocol"), "citation": s.meta["citation"], "note": s.meta.get("note"),
    } for s in reported], schema_overrides={"sd": pl.Float64, "parameters": pl.Float64, "note": pl.String,
                                            "protocol": pl.String})
    if not reported_frame.is_empty():
        reported_frame = reported_frame.sort(["mean", "model"], descending=[True, False])
    if not ranked:
        return Board(dataset, pl.DataFrame(), reported_frame, 0, None)
    names = {slug: s.meta["model"] for slug, s in ranked}
    table = per_case_table({names[slug]: s.per_case for slug, s in ranked})
    paired = paired_values(table, MAIN_METRIC, class_="mean")
    mean = paired.values.mean(axis=0)
    resamples = np.random.default_rng(SEED).integers(0, paired.values.shape[0], (N_BOOT, paired.values.shape[0]))
    boot = paired.values[resamples].mean(axis=1)
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
        row = {"rank": position, "model": model, "badge": sub.meta["badge"], "dice": float(mean[j]),
               "dice_ci_low": float(np.quantile(boot[:, j], ALPHA / 2)),
               "dice_ci_high": float(np.quantile(boot[:, j], 1 - ALPHA / 2)), "mdice_pooled": _pooled(sub.counts),
               "p_vs_leader": None, "worse_than_leader": None,
               "rank_low": stability[model]["rank_low"], "rank_high": stability[model]["rank_high"],
               "parameters": sub.meta.get("parameters"), "code_url": sub.meta.get("code_url"),
               "paper_url": sub.meta.get("paper_url")}
        if tests is not None and model != leader:
            test = tests.filter(pl.col("model_b") == model).row(0, named=True)
            row["p_vs_leader"] = test["p_adjusted"]
            row["worse_than_leader"] = bool(test["p_adjusted"] < ALPHA)
        for metric in OTHER_METRICS:
            part = sub.per_case.filter(pl.col("metric") == metric)
            row[metric] = float(part.group_by("case_id").agg(pl.col("value").mean())["value"].mean()) \
                if not part.is_empty() else None
        rows.append(row)
    first = ranked[0][1].meta
    return Board(dataset, pl.DataFrame(rows, infer_schema_length=None), reported_frame, paired.values.shape[0],
                 first.get("manifest_sha256"))


def _pooled(counts: pl.DataFrame) -> float:
    per_class = counts.group_by("class_id").agg(pl.col("tp", "fp", "fn").sum())
    return float(np.mean([POOLED["dice"](r["tp"], r["fp"], r["fn"]) if r["tp"] + r["fp"] + r["fn"] else 1.0
                          for r in per_class.iter_rows(named=True)]))


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _ranked_rows(b: Board) -> list[list[str]]:
    rows = []
    for r in b.ranked.iter_rows(named=True):
        if r["p_vs_leader"] is None:
            versus = "leader"
        else:
            versus = f"{'worse' if r['worse_than_leader'] else 'n.s.'} ({_p(r['p_vs_leader'])})"
        rows.append([str(r["rank"]), r["model"], r["badge"], (f"{_num(r['dice'])} [{_num(r['dice_ci_low'])}, "
                     f"{_num(r['dice_ci_high'])}]"), _num(r["mdice_pooled"]),
                     *(_num(r[m]) for m in OTHER_METRICS), versus, f"{r['rank_low']}–{r['rank_high']}",
                     _num(r["parameters"], 1) if r["parameters"] is not None else "–"])
    return rows


RANKED_HEADER = ["#", "model", "badge", "Dice, mean [95% CI]", "mDice, pooled", "IoU", "HD95", "ASSD", "NSD",
                 "lesion recall", "vs leader (Wilcoxon, Holm)", "rank 95% interval", "params (M)"]
REPORTED_HEADER = ["model", "reported", "params (M)", "source"]


def _reported_rows(b: Board) -> list[list[str]]:
    rows = []
    for r in b.reported.iter_rows(named=True):
        value = f"{r['mean']:.1f}" + (f" ± {r['sd']:.1f}" if r["sd"] is not None else "")
        rows.append([r["model"], f"{r['metric']} {value}",
                     _num(r["parameters"], 0) if r["parameters"] is not None else "–", r["citation"]])
    return rows


def _reported_notes(b: Board) -> list[str]:
    """What the reported numbers are, once per distinct source (aggregate, protocol, note)."""
    notes = b.reported.select("citation", "aggregate", "protocol", "note").unique(maintain_order=True)
    return [f"{r['citation']}: {r['aggregate']}; {r['protocol'] or 'protocol not stated'}"
            + (f"; {r['note']}" if r["note"] else "") + "." for r in notes.iter_rows(named=True)]


def render_markdown(b: Board) -> str:
    """The board as Markdown (a dataset's ``README.md``)."""
    spec = get_spec(b.dataset)
    lines = [f"# {spec.title}: leaderboard", "",
             "Generated by `medseg-eval leaderboard build` from the bundles in this folder; do not edit by hand.", ""]
    if not b.ranked.is_empty():
        lines += [(f"## Ranked ({b.n_cases} test cases, split `{spec.test_split}`, manifest "
                  f"`{(b.manifest_sha256 or '')[:12]}`)"), ""]
        lines += _md_table(RANKED_HEADER, _ranked_rows(b))
        lines += ["", ("Dice: mean over the test cases of each case's mean over foreground classes, with a "
                  f"percentile-bootstrap CI ({N_BOOT} resamples, seed {SEED}); ranked by it. mDice, pooled: per "
                  "class from the pixel counts summed over the cases, then the mean over classes. Other columns: "
                  "means over cases. vs leader: two-sided Wilcoxon signed-rank test (zeros dropped) of the "
                  f"per-case Dice against the leader's, Holm-corrected over the other entries; worse: p < {ALPHA}. "
                  "Rank 95% interval: over 1000 bootstrap resamples of the cases."), ""]
    else:
        lines += ["No ranked entries yet: submit results with `medseg-eval leaderboard submit`.", ""]
    if not b.reported.is_empty():
        lines += ["## Reported in papers (not ranked)", ""]
        lines += _md_table(REPORTED_HEADER, _reported_rows(b))
        lines += ["", *(f"- {note}" for note in _reported_notes(b)), "",
                  ("Numbers as published, without per-case data: where reproduced results should land; they are not "
                  "comparable by tests."), ""]
    lines += ["## Badges", ""] + [f"- *{badge}*: {text}" for badge, text in BADGES.items()]
    return "\n".join(lines) + "\n"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]


def render_html(boards: list[Board]) -> str:
    """All boards as one static HTML page."""
    sections = []
    for b in boards:
        spec = get_spec(b.dataset)
        parts = [f'<section id="{html.escape(b.dataset)}"><h2>{html.escape(spec.title)}</h2>']
        if not b.ranked.is_empty():
            parts.append(_html_table("ranked", RANKED_HEADER, _ranked_rows(b), f"{b.n_cases} test cases"))
        if not b.reported.is_empty():
            parts.append(_html_table("reported", REPORTED_HEADER, _reported_rows(b), "reported in papers, not ranked"))
            parts.append("".join(f"<p>{html.escape(note)}</p>" for note in _reported_notes(b)))
        sections.append("\n".join(parts) + "</section>")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>medseg_eval leaderboards</title>',
        ("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}caption{text-align:left;font-style:italic}"
        "</style></head><body>"), "<h1>medseg_eval leaderboards</h1>", *sections, "</body></html>", ""])


def _html_table(kind: str, header: list[str], rows: list[list[str]], caption: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<table class="{kind}"><caption>{html.escape(caption)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def build(board_dir: str | Path, dataset: str | None = None) -> list[Path]:
    """Rebuild ``<board_dir>/<dataset>/README.md`` (every dataset with bundles when ``None``) and ``index.html``.

    Every bundle is validated first; an invalid one raises a
    :class:`~medseg_eval.leaderboard.SubmissionError` naming it, and nothing is written.
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
