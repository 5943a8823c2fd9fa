"""The static leaderboard page renders in headless Chromium with both tables, and rebuilds byte-identically."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

import medseg_eval
from medseg_eval import leaderboard
from medseg_eval.datasets import build as build_dataset

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
    """A board with three thresholding 'models' and one reported paper entry, built once for the module."""
    with pytest.MonkeyPatch.context() as mp:
        # A fresh home per module, so the dataset is built here and not taken from another test.
        mp.setenv("MEDSEG_EVAL_HOME", str(tmp_path_factory.mktemp("home")))
        build_dataset(DATASET, progress=False)
        test = medseg_eval.load_dataset(DATASET, split="test")
        images = {row["case_id"]: np.asarray(row["image"]) for row in test}
        path = tmp_path_factory.mktemp("board")
        for t in (100, 128, 160):
            res = medseg_eval.evaluate({c: (im > t).astype(np.uint8) for c, im in images.items()}, DATASET,
                                       metrics=["dice", "iou", "hd95"], progress=False)
            leaderboard.submit(res, f"threshold {t}", path)
        leaderboard.reported_submission("Paper model", DATASET, metric="dice", mean=91.7, sd=0.5,
                                        citation="arXiv 2603.13044", aggregate="pooled",
                                        protocol="5-fold CV").write(path)
        leaderboard.build(path)
        yield path


def chromium(page, tmp_path, *args):
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=60, check=True)


class Tables(HTMLParser):
    """Cell texts of each ``<table class=...>``: ``{class: {"header": [...], "rows": [[...], ...]}}``."""

    def __init__(self):
        super().__init__()
        self.tables, self.table, self.row, self.cell, self.in_header = {}, None, None, None, False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.table = self.tables.setdefault(dict(attrs).get("class"), {"header": [], "rows": []})
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


@pytest.fixture(scope="module")
def rendered(board_dir, tmp_path_factory):
    """The tables of index.html as Chromium's DOM has them after loading the page."""
    dom = chromium(board_dir / "index.html", tmp_path_factory.mktemp("chromium"), "--dump-dom").stdout
    parser = Tables()
    parser.feed(dom)
    return parser.tables


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
