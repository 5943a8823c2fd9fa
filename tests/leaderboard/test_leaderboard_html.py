"""The static leaderboard page renders in headless Chromium: ranked boards first, the README's method text and badge
legend, links, dates, units, the split's name and columns that sort on a click; it rebuilds byte-identically."""

from __future__ import annotations

import html
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

import medseg_eval
from medseg_eval import leaderboard
from medseg_eval.datasets import build as build_dataset
from tests.support.leaderboard_fixtures import held_out_folds

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip("chromium is not installed (.ci/run installs Debian's chromium before the tests)",
                allow_module_level=True)

DATASET = "synthetic-lesions"
# Flags that keep Chromium offline and quick in a container: no sandbox (root), no GPU, no
# background fetches, and a throwaway profile per call.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory):
    """A board with three thresholding 'models' (one with code and paper links and its five folds, one with a link
    that is not http) and one reported paper entry, and a board of reported numbers only (ISIC 2018), built once for
    the module."""
    with pytest.MonkeyPatch.context() as mp:
        # A fresh home per module, so the dataset is built here and not taken from another test.
        mp.setenv("MEDSEG_EVAL_HOME", str(tmp_path_factory.mktemp("home")))
        build_dataset(DATASET, progress=False)
        test = medseg_eval.load_dataset(DATASET, split="test")
        images = {row["case_id"]: np.asarray(row["image"]) for row in test}
        path = tmp_path_factory.mktemp("board")
        links = {128: {"code_url": "https://example.org/code", "paper_url": "https://example.org/paper"},
                 160: {"code_url": "javascript:alert(1)"}}
        for t in (100, 128, 160):
            preds = {c: (im > t).astype(np.uint8) for c, im in images.items()}
            res = medseg_eval.evaluate(preds, DATASET, metrics=["dice", "iou", "hd95"], progress=False)
            cv = medseg_eval.cross_validation(held_out_folds(t)[0], dataset=DATASET) if t == 128 else None
            leaderboard.submit(res, f"threshold {t}", path, predictions=preds, cross_validation=cv, **links.get(t, {}))
        leaderboard.reported_submission("Paper model", DATASET, metric="dice", mean=91.7, sd=0.5,
                                        citation="arXiv 2603.13044", aggregate="pooled",
                                        protocol="5-fold CV").write(path)
        leaderboard.reported_submission("Other paper", "isic2018", metric="mDice (%)", mean=90.0, sd=None,
                                        citation="Doe 2026", aggregate="pooled", protocol="5-fold CV").write(path)
        leaderboard.build(path)
        yield path


def chromium(page, tmp_path, *args):
    """Run headless Chromium on ``page`` (a file) with ``args``."""
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=60, check=True)


class Tables(HTMLParser):
    """Cell texts of each ``<table class="KIND ...">`` of each ``<section id=...>``, the links of its cells and the
    sections' order: ``{section: {kind: {"header": [...], "rows": [[...], ...], "links": [...]}}}``."""

    def __init__(self):
        super().__init__()
        self.sections, self.section = {}, None
        self.tables, self.table, self.row, self.cell, self.in_header = {}, None, None, None, False

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.section = self.sections.setdefault(dict(attrs)["id"], {})
        elif tag == "table":
            kind = dict(attrs).get("class").split()[0]
            self.table = self.section.setdefault(kind, {"header": [], "rows": [], "links": []})
            self.tables.setdefault(kind, self.table)
        elif tag == "a" and self.cell is not None:
            self.table["links"].append(dict(attrs)["href"])
        elif tag == "tr" and self.table is not None:
            self.row, self.in_header = [], False
        elif tag in ("td", "th") and self.row is not None:
            self.cell, self.in_header = [], self.in_header or tag == "th"

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append("".join(self.cell).strip())
            self.cell = None
        elif tag == "tr" and self.row is not None:
            if self.in_header:
                self.table["header"] = self.row
            else:
                self.table["rows"].append(self.row)
            self.row = None
        elif tag == "table":
            self.table = None


def dom_tables(page, tmp_path, clicks=()):
    """The parsed DOM of ``page`` after loading it in Chromium and clicking the ranked table's headers ``clicks``."""
    if clicks:
        script = "".join(f'<script>[...document.querySelectorAll("#{DATASET} table.ranked th")]'
                         f'.find(th => th.textContent === {header!r}).click();</script>' for header in clicks)
        copy = tmp_path / "clicked.html"
        copy.write_text(page.read_text().replace("</body>", script + "</body>"))
        page = copy
    parser = Tables()
    parser.feed(chromium(page, tmp_path, "--dump-dom").stdout)
    return parser


@pytest.fixture(scope="module")
def dom(board_dir, tmp_path_factory):
    """index.html as Chromium's DOM has it after loading the page."""
    return dom_tables(board_dir / "index.html", tmp_path_factory.mktemp("chromium"))


@pytest.fixture(scope="module")
def rendered(dom):
    """The first table of each kind in the page."""
    return dom.tables


def test_index_html_renders_the_ranked_table_in_rank_order_in_chromium(rendered):
    ranked = rendered["ranked"]
    assert ranked["header"][:4] == ["#", "model", "badge", "Dice, mean [95% CI]"]
    # Measured on the pinned synthetic set: mean Dice 0.850 (t=128) > 0.771 (t=160) > 0.319 (t=100).
    assert [row[1] for row in ranked["rows"]] == ["threshold 128", "threshold 160", "threshold 100"]
    assert [row[0] for row in ranked["rows"]] == ["1", "2", "3"]
    assert all(row[2] == "verified" for row in ranked["rows"])
    versus = ranked["header"].index("vs leader (Wilcoxon, Holm)")
    assert ranked["rows"][0][versus] == "leader"
    assert ranked["rows"][-1][versus].startswith("worse")


def test_index_html_lists_reported_entries_apart_from_the_ranking_in_chromium(rendered):
    reported = rendered["reported"]
    assert reported["header"][:2] == ["model", "reported"]
    assert ["Paper model", "dice 91.7 ± 0.5"] in [row[:2] for row in reported["rows"]]
    assert "Paper model" not in [row[1] for row in rendered["ranked"]["rows"]]


def test_index_html_screenshot_is_a_non_blank_png(board_dir, tmp_path):
    png = tmp_path / "board.png"
    chromium(board_dir / "index.html", tmp_path, f"--screenshot={png}", "--window-size=1400,900")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


def test_rebuilding_the_board_gives_byte_identical_pages(board_dir):
    pages = [board_dir / "index.html", board_dir / DATASET / "README.md"]
    before = [p.read_bytes() for p in pages]
    leaderboard.build(board_dir)
    assert [p.read_bytes() for p in pages] == before


def test_index_html_puts_ranked_boards_first_and_reported_only_boards_after(dom):
    assert list(dom.sections) == [DATASET, "isic2018", "badges"]
    assert list(dom.sections[DATASET]) == ["ranked", "folds", "reported"]
    assert list(dom.sections["isic2018"]) == ["reported"]


def test_index_html_carries_the_readme_method_text_badge_legend_split_and_units(board_dir):
    page = html.unescape((board_dir / "index.html").read_text())
    readme = (board_dir / DATASET / "README.md").read_text()
    method = next(line for line in readme.splitlines() if line.startswith("Every entry was scored again"))
    assert method in page and "distances in pixels" in method
    for badge, text in leaderboard.BADGES.items():
        assert f"- *{badge}*: {text}" in readme and f"<em>{badge}</em>: {text}" in page
    assert "Ranked (20 cases of the test split" in page  # the split by its name: "validation" for Kvasir-SEG


def test_index_html_ranked_table_links_code_and_paper_dates_and_units_in_chromium(rendered):
    ranked = rendered["ranked"]
    header = ranked["header"]
    assert {"HD95 (px)", "code", "paper", "submitted"} <= set(header)
    row = {r[1]: dict(zip(header, r)) for r in ranked["rows"]}
    assert (row["threshold 128"]["code"], row["threshold 128"]["paper"]) == ("code", "paper")
    assert row["threshold 160"]["code"] == "–"  # javascript: is not a link
    assert ranked["links"] == ["https://example.org/code", "https://example.org/paper"]
    assert all(len(r["submitted"]) == 10 and r["submitted"][4] == "-" for r in row.values())


def test_index_html_columns_sort_on_a_click_in_chromium(board_dir, tmp_path):
    def column(parser, name):
        table = parser.sections[DATASET]["ranked"]
        return [(r[1], float(r[table["header"].index(name)])) for r in table["rows"]]

    once = column(dom_tables(board_dir / "index.html", tmp_path, ["HD95 (px)"]), "HD95 (px)")
    assert [v for _, v in once] == sorted(v for _, v in once) and len(once) == 3
    twice = column(dom_tables(board_dir / "index.html", tmp_path, ["HD95 (px)", "HD95 (px)"]), "HD95 (px)")
    assert twice == once[::-1]
    by_model = dom_tables(board_dir / "index.html", tmp_path, ["model"]).sections[DATASET]["ranked"]["rows"]
    assert [r[1] for r in by_model] == ["threshold 100", "threshold 128", "threshold 160"]


def test_index_html_shows_mean_and_sd_over_folds_with_min_and_max_beside_the_test_split_in_chromium(rendered,
                                                                                                  board_dir):
    folds = rendered["folds"]
    header = folds["header"]
    assert header[3:6] == ["mDice (%) over folds, mean ± sd", "min–max over folds (%)",
                           "mDice (%) on the test split, pooled"]
    row = dict(zip(header, folds["rows"][0]))
    assert row["model"] == "threshold 128" and len(folds["rows"]) == 1
    b = leaderboard.board(board_dir, DATASET)
    per_fold = b.folds.row(0, named=True)
    assert row["mDice (%) over folds, mean ± sd"] == f"{per_fold['mean']:.1f} ± {per_fold['sd']:.1f}†"
    assert row["min–max over folds (%)"] == f"{per_fold['min']:.1f}–{per_fold['max']:.1f}"
    assert per_fold["min"] < per_fold["mean"] < per_fold["max"] and per_fold["sd"] > 0
    test = b.ranked.filter(b.ranked["model"] == "threshold 128")["mdice_pooled"][0]
    assert row["mDice (%) on the test split, pooled"] == f"{100 * test:.1f}"
    readme = (board_dir / DATASET / "README.md").read_text()
    assert "min–max" not in readme and f"{per_fold['mean']:.1f} ± {per_fold['sd']:.1f}†" in readme
