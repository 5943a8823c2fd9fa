"""The registry, the dataset cards and the split rule: consistent, documented, deterministic."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from medseg_eval.cli import main
from medseg_eval.datasets import (
    CaseSource,
    DatasetNotBuiltError,
    ManualDownloadRequired,
    UnknownDatasetError,
    UnknownSplitError,
    assign_splits,
    build,
    get_spec,
    list_datasets,
    load_dataset,
    render_card,
)
from medseg_eval.datasets.catalog.cvc_clinicdb import sequence_of

CARDS = Path(__file__).resolve().parents[2] / "dataset_cards"
REQUIRED = {"isic2018", "neopolyp", "camus", "kvasir-seg", "cvc-clinicdb", "busi", "drive", "glas", "monuseg"}


def test_the_founding_study_and_the_common_benchmarks_are_registered():
    assert REQUIRED <= set(list_datasets())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_dataset_card_is_the_registry_rendered(name):
    card = (CARDS / f"{name}.md").read_text()
    assert card == render_card(get_spec(name)), f"regenerate: medseg-eval datasets cards --out dataset_cards ({name})"
    meta = yaml.safe_load(card.split("---")[1])
    spec = get_spec(name)
    assert meta["task_categories"] == ["image-segmentation"]
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == dict(spec.splits)
    assert [c["split"] for c in meta["configs"][0]["data_files"]] == list(spec.splits)
    assert spec.citation.strip() in card and spec.split_rule in card


def test_no_card_without_a_dataset():
    assert {p.stem for p in CARDS.glob("*.md")} - {"README"} == set(list_datasets())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_spec_is_complete_and_pins_only_real_looking_hashes(name):
    spec = get_spec(name)
    assert spec.classes[0] == "background" and len(spec.classes) >= 2
    assert spec.test_split in spec.splits and "train" in spec.splits
    assert spec.license and spec.homepage.startswith("https://") and "@" in spec.citation
    for source in spec.sources:
        assert source.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", source.sha256)
        assert source.sha256 or source.note, f"{name}: say why {source.filename} has no checksum"
    if not spec.holdout:
        return
    assert sum(spec.holdout.values()) < 1


def test_unknown_dataset_suggests_the_close_names():
    with pytest.raises(UnknownDatasetError, match="Did you mean 'kvasir-seg'"):
        get_spec("kvasir")
    with pytest.raises(UnknownDatasetError, match="Did you mean 'isic2018'"):
        get_spec("isic-2018")


def test_unknown_split_lists_the_splits():
    with pytest.raises(UnknownSplitError, match="splits are train, validation"):
        get_spec("kvasir-seg").check_split("test")


def test_names_are_case_and_underscore_insensitive():
    assert get_spec("CVC_ClinicDB").name == "cvc-clinicdb"


def test_cli_unknown_name_is_an_error_exit(capsys):
    assert main(["datasets", "info", "drve"]) == 2
    assert "Did you mean 'drive'" in capsys.readouterr().err


def test_release_behind_a_registration_says_where_to_get_it(home):
    with pytest.raises(ManualDownloadRequired, match="drive.grand-challenge.org"):
        build("drive", progress=False)


def test_loading_an_unbuilt_dataset_offline_says_how_to_build_it(home):
    # the test session is offline (HF_HUB_OFFLINE=1): no first-use fetch, the exact command instead
    with pytest.raises(DatasetNotBuiltError, match="Run: medseg-eval datasets build busi --split test "):
        load_dataset("busi", split="test")
    assert not home.exists()


def _cases(n: int, group_size: int = 1) -> list[CaseSource]:
    return [CaseSource(f"c{i:04d}", lambda: None, group=f"g{i // group_size}") for i in range(n)]


def test_split_rule_is_deterministic_balanced_and_keeps_groups_whole():
    spec = get_spec("busi")
    first, second = assign_splits(spec, _cases(103, 3)), assign_splits(spec, list(reversed(_cases(103, 3))))
    assert first == second  # independent of listing order
    groups: dict[str, set] = {}
    for case, assigned in first.items():
        groups.setdefault(f"g{int(case[1:]) // 3}", set()).add(assigned)
    assert all(len(v) == 1 for v in groups.values())
    folds = Counter(f for s, f in first.values() if s == "train")
    assert set(folds) == set(range(spec.folds)) and max(folds.values()) - min(folds.values()) <= 3
    assert all(f is None for s, f in first.values() if s != "train")
    holdout = sum(s == "test" for s, _ in first.values()) / 3
    assert holdout == round(0.2 * 35)


def test_declared_split_sizes_follow_from_the_rule():
    """Where the split is drawn, the sizes in the registry are what the rule gives on the full release."""
    cvc = [CaseSource(str(f), lambda: None, group=f"sequence-{sequence_of(f):02d}") for f in range(1, 613)]
    expected = {"cvc-clinicdb": cvc, "busi": _cases(780), "neopolyp": _cases(1000)}
    for name, cases in expected.items():
        counts = Counter(s for s, _ in assign_splits(get_spec(name), cases).values())
        assert counts == Counter(get_spec(name).splits), name


def test_cvc_sequences_cover_all_612_frames():
    sizes = Counter(sequence_of(f) for f in range(1, 613))
    assert len(sizes) == 29 and sizes[10] == 6 and sizes[8] == 26
    with pytest.raises(ValueError):
        sequence_of(613)


def test_neopolyp_colours_map_to_the_nearest_reference():
    from medseg_eval.datasets.catalog.neopolyp import colours_to_labels

    rgb = np.array([[[0, 0, 0], [255, 0, 0], [0, 255, 0], [140, 30, 20], [60, 150, 40], [70, 60, 60]]], np.uint8)
    assert colours_to_labels(rgb).tolist() == [[0, 2, 1, 2, 1, 0]]


def test_an_empty_home_variable_means_the_default_cache(monkeypatch, tmp_path):
    from medseg_eval.datasets import home

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MEDSEG_EVAL_HOME", "")
    assert home() == tmp_path / ".cache" / "medseg_eval"
