"""Every ```python example of docs/*.md runs as written; README's and the docs' links stay inside the repository.

Each page runs in a working folder of its own, offline (``MEDSEG_EVAL_OFFLINE=1``: an example that
needs the network fails unless it is marked), with a ``$MEDSEG_EVAL_HOME`` holding the generated
synthetic-lesions dataset. Examples marked ``<!-- not run: REASON -->`` (a GPU, the network, a
release behind a registration) are compiled but not run, and counted. README's examples run in
``tests/package/test_readme.py``, on the real Kvasir-SEG build.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.support.markdown_examples import ROOT, python_examples, run_examples, stray_markers

DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
_LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")


def _five_run_folders(folder: Path) -> None:
    """``runs/unet-f0`` .. ``runs/unet-f4`` as ``medseg-eval train --fold K --out`` leaves them (run.json and the
    held-out results; the "model" is the ground truth itself), for statistics-cross-validation.md's example."""
    import numpy as np
    import polars as pl

    import medseg_eval
    from medseg_eval.datasets import shipped_manifest

    masks = {r["case_id"]: np.asarray(r["mask"]) for r in medseg_eval.load_dataset("synthetic-lesions", split="train")}
    manifest = shipped_manifest("synthetic-lesions").filter(pl.col("split") == "train")
    for k in range(5):
        ids = manifest.filter(pl.col("fold") == k)["case_id"].to_list()
        run = folder / "runs" / f"unet-f{k}"
        run.mkdir(parents=True)
        config = {"model": "unet", "dataset": "synthetic-lesions", "fold": k, "seed": 42}
        (run / "run.json").write_text(json.dumps({"config": config}))
        fold = {c: masks[c] for c in ids}
        medseg_eval.evaluate(fold, targets=fold, metrics=["dice"], progress=False).save(run / "results" / "held-out")


#: What a page's examples expect to find in their working folder, made before they run.
SETUPS = {"statistics-cross-validation.md": _five_run_folders}


@pytest.fixture()
def offline_synthetic_home(synthetic_home, tmp_path, monkeypatch):
    """A copy of the synthetic-lesions home (examples may build into it), offline, and an empty working folder."""
    home = tmp_path / "home"
    shutil.copytree(synthetic_home, home)
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(home))
    monkeypatch.setenv("MEDSEG_EVAL_OFFLINE", "1")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_docs_python_examples_run(page, offline_synthetic_home, capsys) -> None:
    examples = python_examples(page)
    if not examples:
        pytest.skip(f"{page.name} has no ```python examples")
    if page.name in SETUPS:
        SETUPS[page.name](offline_synthetic_home)
    ran, not_run = run_examples(page)
    assert ran + len(not_run) == len(examples)
    with capsys.disabled():
        if not_run:
            print(f"\n{page.name}: {ran} examples ran, {len(not_run)} not run: {'; '.join(not_run)}")


def test_docs_pages_have_examples_that_run() -> None:
    """The pages this package owns show their job in code that runs, not only in prose."""
    for name in ("evaluate.md", "metrics.md", "datasets.md", "statistics.md", "trainers.md", "speed.md"):
        examples = python_examples(ROOT / "docs" / name)
        assert any(e.not_run is None for e in examples), f"docs/{name} has no example that runs"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_not_run_markers_stand_right_before_a_python_block(page) -> None:
    assert stray_markers(page) == 0, f"{page.name}: a `<!-- not run: ... -->` marker is not on the line before ```python"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_stay_inside_the_repository_and_exist(page) -> None:
    text = page.read_text()
    assert "../shared" not in text, f"{page.name} points outside the repository"
    for target in _LINK.findall(text):
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{page.name}: link {target} leaves the repository"
        assert path.exists(), f"{page.name}: link {target} leads nowhere"
