"""The comparison figures render to real, non-blank images, validate their input and save atomically."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from PIL import Image

from medseg_eval.stats import plots

Text = pytest.importorskip("matplotlib.text").Text

# Demšar (2006), Table 2 / Figure 1: four C4.5 variants on 14 data sets, Nemenyi CD at alpha = 0.10.
DEMSAR_RANKS = {"C4.5": 3.143, "C4.5+m": 2.000, "C4.5+cf": 2.893, "C4.5+m+cf": 1.964}
DEMSAR_CD = 1.12
DEMSAR_CLIQUES = [("C4.5", "C4.5+cf"), ("C4.5+cf", "C4.5+m", "C4.5+m+cf")]
MODELS = ["unet", "nnunet", "segformer", "fcn"]


def assert_png(path) -> None:
    data = path.read_bytes()
    assert len(data) > 1024
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        assert len(img.convert("RGB").getcolors(maxcolors=1_000_000) or []) > 2


def texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_text()]


@pytest.fixture()
def rank_counts() -> pl.DataFrame:
    shares = [[0.7, 0.3, 0.0, 0.0], [0.3, 0.6, 0.1, 0.0], [0.0, 0.1, 0.5, 0.4], [0.0, 0.0, 0.4, 0.6]]
    return pl.DataFrame({
        "model": [m for m in MODELS for _ in range(4)],
        "rank": [r for _ in MODELS for r in range(1, 5)],
        "frequency": [f for row in shares for f in row],
        "full_rank": [i + 1 for i in range(4) for _ in range(4)],
    })


@pytest.fixture()
def p_values() -> pl.DataFrame:
    pairs = [(a, b) for i, a in enumerate(MODELS) for b in MODELS[i + 1:]]
    return pl.DataFrame({
        "model_a": [a for a, _ in pairs],
        "model_b": [b for _, b in pairs],
        "p_adjusted": [0.0002, 0.01, 0.2, 0.04, 0.6, 0.03],
        "better": ["unet", "unet", None, "nnunet", None, "fcn"],
    })


@pytest.fixture()
def per_case() -> pl.DataFrame:
    rng = np.random.default_rng(1)
    n = 30
    return pl.DataFrame({
        "model": [m for m in MODELS for _ in range(n)],
        "case_id": [f"case{i:02d}" for _ in MODELS for i in range(n)],
        "value": np.clip(np.concatenate([rng.normal(mu, 0.08, n) for mu in (0.85, 0.82, 0.78, 0.7)]), 0, 1),
    })


def test_cd_diagram_demsar_example(tmp_path) -> None:
    out = tmp_path / "cd.png"
    fig = plots.cd_diagram(DEMSAR_RANKS, DEMSAR_CD, cliques=DEMSAR_CLIQUES, title="Demšar (2006), Fig. 1", path=out)
    assert_png(out)
    labels = {t.get_text(): t for t in texts(fig)}
    assert "CD" in labels
    by_model = {name: next(t for text, t in labels.items() if text.startswith(f"{name} (")) for name in DEMSAR_RANKS}
    assert by_model["C4.5+m+cf"].get_text() == "C4.5+m+cf (1.96)"

    def display_x(t: Text) -> float:
        return t.get_transform().transform(t.get_position())[0]

    best, worst = min(DEMSAR_RANKS, key=DEMSAR_RANKS.get), max(DEMSAR_RANKS, key=DEMSAR_RANKS.get)
    assert display_x(by_model[best]) > display_x(by_model[worst])
    ax = fig.axes[0]
    assert ax.transData.transform((1, 0))[0] > ax.transData.transform((4, 0))[0]


def test_cd_diagram_without_cd_or_cliques(tmp_path) -> None:
    fig = plots.cd_diagram({"a": 1.5, "b": 1.5, "c": 3.0}, None, cliques=[("a",)], path=tmp_path / "cd.png")
    assert "CD" not in {t.get_text() for t in texts(fig)}
    assert_png(tmp_path / "cd.png")


def test_cd_diagram_rejects_unknown_clique_member() -> None:
    with pytest.raises(ValueError, match=r"C5\.0"):
        plots.cd_diagram(DEMSAR_RANKS, DEMSAR_CD, cliques=[("C4.5", "C5.0")])


def test_blob_plot(tmp_path, rank_counts) -> None:
    out = tmp_path / "blob.png"
    fig = plots.blob_plot(rank_counts.sample(fraction=1.0, shuffle=True, seed=0), title="rank stability", path=out)
    assert_png(out)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == MODELS


def test_blob_plot_orders_by_mean_rank_without_full_rank(rank_counts) -> None:
    fig = plots.blob_plot(rank_counts.drop("full_rank").filter(pl.col("model") != "nnunet"))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["unet", "segformer", "fcn"]


def test_blob_plot_missing_column(rank_counts) -> None:
    with pytest.raises(ValueError, match="frequency"):
        plots.blob_plot(rank_counts.drop("frequency"))


def test_significance_map(tmp_path, p_values) -> None:
    out = tmp_path / "sig.png"
    fig = plots.significance_map(p_values, title="Holm-adjusted Wilcoxon", path=out)
    assert_png(out)
    cells = [t.get_text() for t in fig.axes[0].texts]
    assert len(cells) == 12 and cells.count("<0.001") == 2 and cells.count("0.600") == 2
    fig = plots.significance_map(p_values.drop("better"), order=MODELS[::-1], path=out)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == MODELS[::-1]
    assert_png(out)


def test_significance_map_errors(p_values) -> None:
    with pytest.raises(ValueError, match="p_adjusted"):
        plots.significance_map(p_values.drop("p_adjusted"))
    with pytest.raises(ValueError, match="order"):
        plots.significance_map(p_values, order=MODELS[:2])


def test_per_case_plot(tmp_path, per_case) -> None:
    out = tmp_path / "per_case.png"
    fig = plots.per_case_plot(per_case, metric="dice", title="Dice per case", path=out)
    assert_png(out)
    assert fig.axes[0].get_ylabel() == "dice"
    pairing_lines = [line for line in fig.axes[0].get_lines() if line.get_color() == "0.6"]
    assert len(pairing_lines) == 30


def test_per_case_plot_errors(per_case) -> None:
    with pytest.raises(ValueError, match="case_id"):
        plots.per_case_plot(per_case.drop("case_id"), metric="dice")
    with pytest.raises(ValueError, match="empty"):
        plots.per_case_plot(per_case.clear(), metric="dice")


def test_save_is_atomic_and_replaces(tmp_path) -> None:
    out = tmp_path / "cd.png"
    out.write_bytes(b"old")
    plots.cd_diagram(DEMSAR_RANKS, DEMSAR_CD, path=out)
    plots.cd_diagram(DEMSAR_RANKS, DEMSAR_CD, path=tmp_path / "cd.svg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cd.png", "cd.svg"]
    assert_png(out)
    assert (tmp_path / "cd.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(ValueError):
        plots.cd_diagram(DEMSAR_RANKS, DEMSAR_CD, path=tmp_path / "cd.unknown")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cd.png", "cd.svg"]
