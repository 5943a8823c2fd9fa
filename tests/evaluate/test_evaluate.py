"""evaluate() end to end on DRIVE's second observer, through every input form; validation; Results."""

from __future__ import annotations

import shutil
import warnings
import zipfile

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

import medseg_eval
from medseg_eval import Results, evaluate
from medseg_eval.cli import main
from medseg_eval.datasets import canonical_dir
from medseg_eval.evaluate import DEFAULT_METRICS, GroundTruthMismatchError
from medseg_eval.metrics import SpacingError
from medseg_eval.predictions import (
    MissingCasesError,
    PredictionFormatError,
    PredictionLabelError,
    PredictionShapeError,
    UnknownCasesError,
)
from tests.support.canonical_edit import flip_mask_pixel
from tests.support.real_data import ROOT
from tests.support.references import REFERENCES

CASES = [f"{i:02d}_test" for i in range(1, 21)]
SECOND = ROOT / "drive" / "DRIVE" / "test" / "2nd_manual"


@pytest.fixture()
def drive_home(real_home, monkeypatch):
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(real_home))
    return real_home


@pytest.fixture(scope="module")
def observer():
    """The second observer's masks by case id, as label maps {0, 1}."""
    return {f"{i:02d}_test": (np.asarray(Image.open(SECOND / f"{i:02d}_manual2.gif")) > 0).astype(np.uint8)
            for i in range(1, 21)}


@pytest.fixture(scope="module")
def baseline(real_home, observer):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_EVAL_HOME", str(real_home))
        # The standard set, not DRIVE's literature set (tests/evaluate/test_evaluate_literature_metrics.py has that).
        return evaluate(str(SECOND), "drive", split="test", metrics=DEFAULT_METRICS, progress=False)


def test_second_observer_matches_an_independent_computation(baseline, observer):
    test = ROOT / "drive" / "DRIVE" / "test"
    wide = baseline.wide()
    assert wide["case_id"].to_list() == CASES
    for row in wide.iter_rows(named=True):
        n = row["case_id"][:2]
        fov = np.asarray(Image.open(test / "mask" / f"{n}_test_mask.gif").convert("L")) > 0
        gt = (np.asarray(Image.open(test / "1st_manual" / f"{n}_manual1.gif").convert("L")) > 0) & fov
        pred = observer[row["case_id"]].astype(bool) & fov
        tp, fp, fn = (pred & gt).sum(), (pred & ~gt).sum(), (~pred & gt).sum()
        assert row["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
        assert row["iou"] == pytest.approx(tp / (tp + fp + fn), rel=1e-12)
        if n in ("01", "07", "16"):  # the slow reference on a few images
            ref = REFERENCES["surface-distance"](pred, gt, (1.0, 1.0), 95.0, 2.0, names=("hd95", "assd", "nsd"))
            for metric in ("hd95", "assd", "nsd"):
                assert row[metric] == pytest.approx(ref[metric], rel=1e-6), (row["case_id"], metric)
    pooled = baseline.summary().filter((pl.col("metric") == "dice") & (pl.col("aggregate") == "pooled"))
    counts = baseline.counts
    tp, fp, fn = counts["tp"].sum(), counts["fp"].sum(), counts["fn"].sum()
    assert pooled["mean"].item() == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)


def _save_folder(folder, masks, suffix, writer):
    folder.mkdir(parents=True, exist_ok=True)
    for case_id, mask in masks.items():
        writer(folder / f"{case_id}{suffix}", mask)
    return folder


def _png(path, mask):
    Image.fromarray(mask).save(path)


def _nifti(path, mask):
    import nibabel as nib

    nib.save(nib.Nifti1Image(mask.T.copy(), np.eye(4)), path)


def _hf_dataset(masks):
    import datasets

    return datasets.Dataset.from_dict({"case_id": list(masks), "mask": [Image.fromarray(m) for m in masks.values()]},
                                      features=datasets.Features({"case_id": datasets.Value("string"),
                                                                  "mask": datasets.Image()}))


FORMS = {
    "dict": lambda m, tmp: m,
    "dict_of_tensors": lambda m, tmp: {c: torch.from_numpy(v) for c, v in m.items()},
    "png_folder": lambda m, tmp: _save_folder(tmp / "png", m, ".png", _png),
    "png_0_255_with_suffix": lambda m, tmp: _save_folder(tmp / "png255", {f"{c}_pred": v * 255 for c, v in m.items()},
                                                         ".png", _png),
    "npy_folder": lambda m, tmp: _save_folder(tmp / "npy", m, ".npy", lambda p, v: np.save(p, v)),
    "npz_folder": lambda m, tmp: _save_folder(tmp / "npz", m, ".npz", lambda p, v: np.savez_compressed(p, mask=v)),
    "tif_folder": lambda m, tmp: _save_folder(tmp / "tif", m, ".tif", _png),
    "nii_gz_folder": lambda m, tmp: _save_folder(tmp / "nii", m, ".nii.gz", _nifti),
    "zip": lambda m, tmp: _zip(_save_folder(tmp / "z", m, ".png", _png), tmp / "preds.zip"),
    "array": lambda m, tmp: np.stack([m[c] for c in CASES]),
    "tensor_int64": lambda m, tmp: torch.from_numpy(np.stack([m[c] for c in CASES])).long(),
    "probabilities_two_channels": lambda m, tmp: np.stack([np.stack([1.0 - m[c], m[c] * 1.0]) for c in CASES]),
    "probabilities_one_channel": lambda m, tmp: np.stack([m[c][None] * 0.9 + 0.05 for c in CASES]).astype(np.float32),
    "hf_dataset": lambda m, tmp: _hf_dataset(m),
}


def _zip(folder, target):
    with zipfile.ZipFile(target, "w") as z:
        for path in folder.iterdir():
            z.write(path, f"predictions/{path.name}")
    return target


@pytest.mark.parametrize("form", list(FORMS))
def test_every_input_form_gives_identical_results(form, drive_home, observer, baseline, tmp_path):
    res = evaluate(FORMS[form](observer, tmp_path), "drive", split="test", metrics=DEFAULT_METRICS, progress=False)
    assert res.per_case.equals(baseline.per_case)
    rules = res.provenance["prediction_rules"]
    assert ("argmax" in rules) == (form == "probabilities_two_channels")
    assert ("threshold" in rules) == (form == "probabilities_one_channel")
    assert ("values_0_255" in rules) == (form == "png_0_255_with_suffix")


def test_a_default_device_set_by_the_caller_changes_nothing(baseline, drive_home):
    """Training scripts often call ``torch.set_default_device``; scoring must not follow it. Under
    "meta" (tensors without data) any tensor made without naming its device fails the run."""
    with torch.device("meta"):
        again = evaluate(str(SECOND), "drive", split="test", metrics=DEFAULT_METRICS, progress=False)
    assert again.per_case.equals(baseline.per_case) and again.provenance["device"] == "cpu"


def test_provenance_names_what_produced_the_numbers(baseline):
    p = baseline.provenance
    assert p["dataset"] == "drive" and p["split"] == "test" and p["manifest_pinned"] and p["ground_truth_verified"]
    assert len(p["manifest_sha256"]) == 64 and len(p["predictions_sha256"]) == 64
    assert p["convention"] == "surface-distance" and p["empty_policy"]["one_empty"] == "worst"
    assert p["package_version"] == medseg_eval.__version__ and p["torch_version"] == torch.__version__
    assert {"device", "time", "resize", "prediction_rules", "dataset_revision"} <= set(p)
    assert p["lesion_criteria"] == {"connectivity": 8, "min_overlap": 0.0, "criterion": "overlap", "iou_threshold": 0.5}


def test_per_case_table_is_long_with_flags(baseline):
    assert baseline.per_case.columns[:4] == ["case_id", "class", "metric", "value"]
    assert {"class_id", "pred_empty", "target_empty"} <= set(baseline.per_case.columns)
    assert baseline.per_case.height == 20 * 6 and set(baseline.per_case["class"]) == {"vessel"}


# ----------------------------------------------------------------------------- validation


def test_missing_case_is_named(drive_home, observer):
    preds = {c: m for c, m in observer.items() if c != "13_test"}
    with pytest.raises(MissingCasesError, match="13_test"):
        evaluate(preds, "drive", split="test", progress=False)


def test_missing_files_in_a_folder_are_named(drive_home, tmp_path):
    folder = tmp_path / "second"
    shutil.copytree(SECOND, folder)
    (folder / "04_manual2.gif").unlink()
    (folder / "17_manual2.gif").unlink()
    with pytest.raises(MissingCasesError, match="2 of 20 cases have no prediction: 04_test, 17_test"):
        evaluate(folder, "drive", split="test", progress=False)


def test_unknown_case_ids_are_listed(drive_home, observer):
    preds = dict(observer, **{"99_test": observer["01_test"], "21_training": observer["01_test"]})
    with pytest.raises(UnknownCasesError, match="21_training, 99_test"):
        evaluate(preds, "drive", split="test", progress=False)


def test_size_mismatch_is_named_unless_resize_is_asked(drive_home, observer):
    preds = dict(observer, **{"08_test": observer["08_test"][:-4, :-2]})
    with pytest.raises(PredictionShapeError, match=r"08_test \(580x563 vs 584x565\)"):
        evaluate(preds, "drive", split="test", progress=False)
    res = evaluate(preds, "drive", split="test", resize="nearest", progress=False)
    assert res.provenance["resize"] == "nearest" and "08_test" in res.provenance["prediction_rules"]["resize"]


@pytest.mark.parametrize("bad, error, message", [
    (lambda m: m.astype(np.int64) * 2, PredictionLabelError, r"values \[2\] are not class ids"),
    (lambda m: np.where(m > 0, np.nan, 0.0), PredictionLabelError, "NaN"),
    (lambda m: m * 0.7, PredictionLabelError, "fractional"),
    (lambda m: np.stack([m, m, m], -1) * 255, PredictionShapeError, "RGB"),
    (lambda m: np.ma.masked_array(m, m == 0), PredictionFormatError, "masked array"),
    (lambda m: torch.from_numpy(m).to_sparse(), PredictionFormatError, "to_dense"),
    (lambda m: torch.from_numpy(m).to(torch.float8_e4m3fn), PredictionFormatError, "NumPy cannot read"),
])
def test_bad_values_name_the_case(drive_home, observer, bad, error, message):
    preds = dict(observer, **{"11_test": bad(observer["11_test"])})
    with pytest.raises(error, match=message) as err:
        evaluate(preds, "drive", split="test", progress=False)
    assert "11_test" in str(err.value)


def test_infinite_scores_name_the_case(drive_home, observer):
    preds = dict(observer, **{"11_test": np.where(observer["11_test"] > 0, np.inf, 0.0)})
    with pytest.raises(PredictionLabelError, match="11_test.*infinite"):
        evaluate(preds, "drive", split="test", progress=False)


def test_one_channel_labels_keep_their_classes_and_probabilities_are_thresholded():
    target = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    res = evaluate({"a": target[None].astype(np.float32)}, targets={"a": target}, metrics=["dice"], progress=False)
    assert res.per_case["value"].to_list() == [1.0, 1.0]  # [1, H, W] labels of 3 classes, not "> 0.5"
    binary = (target > 0).astype(np.uint8)
    probs = np.where(binary > 0, 0.8, 0.3)[None]
    res = evaluate({"a": probs}, targets={"a": binary}, metrics=["dice"], progress=False)
    assert res.per_case["value"].to_list() == [1.0] and "threshold" in res.provenance["prediction_rules"]
    with pytest.raises(PredictionLabelError, match="sigmoid"):
        evaluate({"a": probs * 3 - 1}, targets={"a": binary}, metrics=["dice"], progress=False)


def test_a_black_and_white_gif_reads_as_what_it_shows(tmp_path):
    """Pillow saves an RGB black-and-white image as a GIF whose palette puts white at index 0."""
    mask = np.zeros((6, 7), np.uint8)
    mask[1:4, 2:6] = 1
    folder = tmp_path / "gif"
    folder.mkdir()
    Image.fromarray(np.stack([mask * 255] * 3, -1)).save(folder / "a.gif")
    with Image.open(folder / "a.gif") as image:
        assert image.mode == "P" and not np.array_equal(np.asarray(image), mask)  # the trap is real
    res = evaluate(folder, targets={"a": mask}, metrics=["dice"], progress=False)
    assert res.per_case["value"].to_list() == [1.0]


def test_arrays_of_more_than_ten_rows_pair_row_by_row():
    rng = np.random.default_rng(0)
    targets = (rng.random((12, 9, 9)) > 0.5).astype(np.uint8)
    res = evaluate(targets, targets=targets, metrics=["dice"], progress=False)
    assert res.wide()["case_id"].to_list() == [f"{i:02d}" for i in range(12)]
    assert res.per_case["value"].to_list() == [1.0] * 12


def test_repeated_case_ids_are_refused():
    import datasets

    mask = np.eye(4, dtype=np.uint8)
    with pytest.raises(UnknownCasesError, match="more than once: 1"):
        evaluate({1: mask, "1": mask}, targets={"1": mask}, metrics=["dice"], progress=False)
    with pytest.raises(UnknownCasesError, match="more than once: a"):
        evaluate(datasets.concatenate_datasets([_hf_dataset({"a": mask})] * 2), targets={"a": mask}, metrics=["dice"],
                 progress=False)


def test_a_corrupt_zip_and_no_cases_are_clear_errors(tmp_path):
    mask = np.eye(4, dtype=np.uint8)
    broken = tmp_path / "preds.zip"
    _zip(_save_folder(tmp_path / "f", {"a": mask}, ".png", _png), broken)
    broken.write_bytes(broken.read_bytes()[:-30])
    with pytest.raises(PredictionFormatError, match="zip"):
        evaluate(broken, targets={"a": mask}, metrics=["dice"], progress=False)
    with pytest.raises(PredictionFormatError, match="no cases"):
        evaluate({}, targets={}, metrics=["dice"], progress=False)


def test_jpeg_predictions_are_refused(drive_home, observer, tmp_path):
    folder = _save_folder(tmp_path / "jpg", observer, ".jpg", lambda p, v: Image.fromarray(v * 255).save(p))
    with pytest.raises(PredictionFormatError, match="JPEG"):
        evaluate(folder, "drive", split="test", progress=False)


def test_two_files_for_one_case_are_an_error(drive_home, tmp_path):
    folder = tmp_path / "second"
    shutil.copytree(SECOND, folder)
    shutil.copy(folder / "05_manual2.gif", folder / "05_test.gif")
    with pytest.raises(UnknownCasesError, match="05_test"):
        evaluate(folder, "drive", split="test", progress=False)


def test_array_of_the_wrong_length_says_the_order(drive_home, observer):
    with pytest.raises(PredictionShapeError, match="sorted case ids"):
        evaluate(np.stack([observer[c] for c in CASES[:-1]]), "drive", split="test", progress=False)


def test_tampered_ground_truth_is_refused_unless_the_caller_opts_out(real_home, tmp_path, monkeypatch, observer):
    home = tmp_path / "home"
    shutil.copytree(real_home / "datasets" / "drive", home / "datasets" / "drive")
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(home))
    flip_mask_pixel(canonical_dir("drive"), "test", "12_test", 300, 300)
    with pytest.raises(GroundTruthMismatchError, match="12_test"):
        evaluate(observer, "drive", split="test", progress=False)
    res = evaluate(observer, "drive", split="test", verify_ground_truth=False, progress=False)
    assert res.provenance["ground_truth_verified"] is False


def test_unknown_dataset_and_split_are_clear(drive_home, observer):
    from medseg_eval.datasets import UnknownDatasetError, UnknownSplitError

    with pytest.raises(UnknownDatasetError, match="'drive'"):
        evaluate(observer, "drvie", progress=False)
    with pytest.raises(UnknownSplitError, match="train, test"):
        evaluate(observer, "drive", split="validation", progress=False)


# ----------------------------------------------------------------------------- own ground truth, batching


def test_own_targets_of_mixed_sizes_are_grouped_not_padded():
    rng = np.random.default_rng(3)
    sizes = [(20, 30), (31, 17), (20, 30), (8, 8), (31, 17)]
    targets = {f"t{i}": (rng.random(s) > 0.6).astype(np.uint8) for i, s in enumerate(sizes)}
    preds = {c: (rng.random(m.shape) > 0.6).astype(np.uint8) for c, m in targets.items()}
    res = evaluate(preds, targets=targets, spacing=(0.5, 2.0), metrics=["dice", "hd95", "nsd"], batch_size=2,
                   progress=False)
    wide = res.wide()
    for c, target in targets.items():
        alone = medseg_eval.metrics.compute(preds[c], target, ["dice", "hd95", "nsd"], spacing=(0.5, 2.0))
        row = wide.filter(pl.col("case_id") == c).row(0, named=True)
        for m in ("dice", "hd95", "nsd"):
            assert row[m] == pytest.approx(alone[m].item(), rel=1e-12), (c, m)


def test_binary_targets_saved_as_0_255_are_two_classes(tmp_path):
    mask = np.pad(np.full((4, 4), 255, np.uint8), 3)
    folder = tmp_path / "gt"
    folder.mkdir()
    Image.fromarray(mask).save(folder / "case1.png")
    res = evaluate({"case1": mask // 255}, targets=folder, metrics=["dice"], progress=False)
    assert res.per_case["class_id"].to_list() == [1] and res.per_case["value"].to_list() == [1.0]
    assert res.provenance["num_classes_inferred"] is True


def test_num_classes_is_inferred_from_the_targets_and_recorded():
    targets = {"a": np.array([[0, 1], [2, 2]], np.uint8)}
    res = evaluate(targets, targets=targets, metrics=["dice"], progress=False)
    assert res.per_case["class_id"].to_list() == [1, 2] and res.provenance["num_classes_inferred"] is True


def test_targets_mixing_0_255_and_class_ids_are_refused():
    targets = {"a": np.array([[0, 255]], np.uint8), "b": np.array([[0, 1]], np.uint8)}
    with pytest.raises(PredictionLabelError, match=r"255 and others \[1\].*num_classes"):
        evaluate(targets, targets=targets, metrics=["dice"], progress=False)


def test_spacing_names_exactly_the_targets_cases_and_is_not_taken_with_a_dataset(drive_home, observer):
    targets = {"a": np.eye(4, dtype=np.uint8), "b": np.eye(4, dtype=np.uint8)}
    with pytest.raises(SpacingError, match="no entry for 1 case.*b"):
        evaluate(targets, targets=targets, spacing={"a": (1.0, 2.0)}, metrics=["hd95"], progress=False)
    with pytest.raises(SpacingError, match=r"entries for 1 case\(s\) the targets lack: b\.png \(targets' case ids look like a, b\)"):
        evaluate(targets, targets=targets, spacing={"a": (1.0, 2.0), "b": (2.0, 1.0), "b.png": (2.0, 1.0)},
                 metrics=["hd95"], progress=False)
    res = evaluate(targets, targets=targets, spacing={"a": (1.0, 2.0), "b": (2.0, 1.0)}, metrics=["hd95"],
                   progress=False)
    assert res.per_case["value"].to_list() == [0.0, 0.0]
    with pytest.raises(ValueError, match="`spacing` come from the dataset"):
        evaluate(observer, "drive", split="test", spacing=(1.0, 1.0), progress=False)


def test_a_bad_spacing_is_refused_naming_its_case():
    targets = {"a": np.eye(4, dtype=np.uint8), "b": np.eye(4, dtype=np.uint8)}
    for bad in [(1.0, -1.0), (1.0,), (1.0, float("nan")), "1,2"]:
        with pytest.raises(SpacingError, match=r"`spacing` of case 'b' must be one \(sy, sx\) pair"):
            evaluate(targets, targets=targets, spacing={"a": (1.0, 2.0), "b": bad}, metrics=["hd95"], progress=False)
        with pytest.raises(SpacingError, match=r"`spacing` must be one \(sy, sx\) pair.*or a dict case id"):
            evaluate(targets, targets=targets, spacing=bad, metrics=["hd95"], progress=False)
    with pytest.raises(SpacingError, match="or a dict case id"):  # one pair per case belongs in a dict
        evaluate(targets, targets=targets, spacing=[(1.0, 2.0), (2.0, 1.0)], metrics=["hd95"], progress=False)
    bar = np.zeros((4, 6), np.uint8)
    bar[:, 1] = 1
    targets = {"a": bar, "b": bar}
    preds = {c: np.roll(m, 2, axis=1) for c, m in targets.items()}  # two columns to the right: 2 * sx
    hd95 = {spacing: evaluate(preds, targets=targets, spacing=spacing, metrics=["hd95"], progress=False)
            .per_case["value"].to_list() for spacing in [(1.0, 2.0), (2.0, 1.0)]}
    as_row = evaluate(preds, targets=targets, spacing=np.array([[1.0, 2.0]]), metrics=["hd95"], progress=False)
    assert as_row.per_case["value"].to_list() == hd95[(1.0, 2.0)] != hd95[(2.0, 1.0)]



@pytest.mark.parametrize(("option", "message"), [({"metrics": "dice"}, "list of names"),
                                                 ({"empty": "best"}, "EmptyPolicy"),
                                                 ({"lesions": "any"}, "LesionCriteria")])
def test_bad_options_are_refused_before_reading_predictions(tmp_path, option, message):
    targets = {"a": np.eye(4, dtype=np.uint8)}
    with pytest.raises(medseg_eval.metrics.OptionError, match=message):
        evaluate(tmp_path / "missing", targets=targets, progress=False, **option)


def test_metric_names_in_a_numpy_array_are_recorded_as_plain_strings():
    targets = {"a": np.eye(4, dtype=np.uint8)}
    res = evaluate(targets, targets=targets, metrics=np.array(["dice"]), progress=False)
    assert res.provenance["metrics"] == ["dice"] and type(res.provenance["metrics"][0]) is str

# ----------------------------------------------------------------------------- Results


def test_results_round_trip_exactly(baseline, tmp_path):
    again = Results.load(baseline.save(tmp_path / "run"))
    assert again.per_case.equals(baseline.per_case) and again.counts.equals(baseline.counts)
    assert again.provenance == baseline.provenance and again.lesions.equals(baseline.lesions)
    assert again.summary().equals(baseline.summary())


def test_interrupted_save_keeps_the_previous_results(baseline, tmp_path, monkeypatch):
    target = baseline.save(tmp_path / "run")
    before = (target / "per_case.parquet").read_bytes()
    calls = {"n": 0}
    original = pl.DataFrame.write_parquet

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", failing)
    changed = Results(baseline.per_case.with_columns(value=pl.lit(0.0)), baseline.counts, baseline.provenance)
    with pytest.raises(OSError, match="disk full"):
        changed.save(target)
    assert (target / "per_case.parquet").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_summary_statistics_and_seeded_bootstrap(baseline):
    dice = baseline.per_case.filter(pl.col("metric") == "dice")["value"].to_numpy()
    row = baseline.summary().filter((pl.col("metric") == "dice") & (pl.col("aggregate") == "mean")).row(0, named=True)
    assert row["mean"] == pytest.approx(dice.mean()) and row["sd"] == pytest.approx(dice.std(ddof=1))
    assert row["median"] == pytest.approx(np.median(dice)) and row["q1"] == pytest.approx(np.percentile(dice, 25))
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    assert baseline.summary(seed=1).equals(baseline.summary(seed=1))
    assert not baseline.summary(seed=1).equals(baseline.summary(seed=2))
    wider = baseline.summary(confidence=0.99).filter((pl.col("metric") == "dice") & (pl.col("aggregate") == "mean"))
    assert wider["ci_low"].item() <= row["ci_low"] and wider["ci_high"].item() >= row["ci_high"]


# ----------------------------------------------------------------------------- CLI and demo


def test_cli_evaluate_prints_and_saves(drive_home, tmp_path, capsys):
    assert main(["evaluate", str(SECOND), "--dataset", "drive", "--metrics", "dice,hd95", "--out",
                 str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "dice (pooled)" in out and "hd95" in out
    assert Results.load(tmp_path / "out").provenance["metrics"] == ["dice", "hd95"]


def test_cli_reports_a_missing_case_as_an_error(drive_home, tmp_path, capsys):
    folder = tmp_path / "second"
    shutil.copytree(SECOND, folder)
    (folder / "19_manual2.gif").unlink()
    assert main(["evaluate", str(folder), "--dataset", "drive", "--quiet"]) == 2
    assert "19_test" in capsys.readouterr().err


def test_cli_refuses_to_replace_a_folder_holding_other_files(drive_home, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["evaluate", str(SECOND), "--dataset", "drive", "--metrics", "dice", "--out", str(out),
                 "--quiet"]) == 2
    assert "notes.txt" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"
    saved = tmp_path / "saved"  # a folder of results is replaced by new results
    for _ in range(2):
        assert main(["evaluate", str(SECOND), "--dataset", "drive", "--metrics", "dice", "--out", str(saved),
                     "--quiet"]) == 0
    assert Results.load(saved).provenance["metrics"] == ["dice"]


def test_demo_runs_offline_on_a_fresh_home(home, capsys):
    assert main(["demo", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "otsu+opening" in out and "dice (pooled)" in out


def test_lesion_rows_and_size_bins_agree_with_the_metrics_functions(baseline, observer):
    from medseg_eval.lesion_tables import lesion_detection, small_lesion_recall

    test = ROOT / "drive" / "DRIVE" / "test"
    gt = np.stack([(np.asarray(Image.open(test / "1st_manual" / f"{c[:2]}_manual1.gif").convert("L")) > 0) for c in CASES])
    fov = np.stack([(np.asarray(Image.open(test / "mask" / f"{c[:2]}_test_mask.gif").convert("L")) > 0) for c in CASES])
    pred = np.stack([observer[c] for c in CASES])
    direct = lesion_detection(pred, gt.astype(np.uint8), roi=fov)
    ours = baseline.lesions
    assert ours["case_id"].to_list() == [CASES[i] for i in direct["case"]]
    for column in ("lesion", "area", "covered", "top", "left", "bottom", "right", "detected"):
        assert ours[column].to_list() == direct[column].to_list(), column
    bins = [0, 10, 100, 1000, float("inf")]
    expected = small_lesion_recall(pred, gt.astype(np.uint8), size_bins=bins, roi=fov)
    got = baseline.small_lesion_recall(bins)
    assert got["n_lesions"].to_list() == expected["n_lesions"].to_list()
    assert got["n_detected"].to_list() == expected["n_detected"].to_list()
    pooled = baseline.summary().filter((pl.col("metric") == "lesion_recall") & (pl.col("aggregate") == "pooled"))
    assert pooled["mean"].item() == pytest.approx(direct["detected"].sum() / direct.height)
    per_case = baseline.per_case.filter(pl.col("metric") == "lesion_recall").sort("case_id")["value"].to_list()
    by_case = direct.group_by("case").agg(pl.col("detected").mean()).sort("case")["detected"].to_list()
    assert per_case == pytest.approx(by_case)


def test_lesion_outputs_need_a_lesion_metric():
    gt = {"a": np.pad(np.ones((3, 3), np.uint8), 2)}
    res = evaluate(gt, targets=gt, metrics=["dice"], progress=False)
    assert res.lesions is None and res.provenance["lesion_criteria"] is None
    with pytest.raises(ValueError, match="lesion metric"):
        res.small_lesion_recall()
    with_lesions = evaluate(gt, targets=gt, metrics=["dice", "lesion_f1"], spacing=(0.5, 0.5), progress=False)
    table = with_lesions.small_lesion_recall([0, 5, 100], in_mm2=True)
    assert table.select("n_lesions", "n_detected").rows() == [(1, 1), (0, 0)]  # 9 px = 2.25 mm^2


def test_a_percentile_given_as_a_fraction_warns_once_at_the_callers_line():
    mask = np.zeros((9, 9), np.uint8)
    mask[2:6, 3:7] = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own: a warning shows once per line that caused it
        evaluate({"a": mask}, targets={"a": mask}, metrics=["hd95"], percentile=0.95, progress=False)
    shown = [w for w in caught if issubclass(w.category, medseg_eval.metrics.PercentileWarning)]
    assert [w.filename for w in shown] == [__file__]  # evaluate's check and its compute's: one line, one warning
