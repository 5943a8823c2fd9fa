"""A bundle forged each way a submitter could try is refused by validate and build, and named.

Each forgery starts from an honest bundle of threshold 128 on synthetic-lesions, changes what it
changes and recomputes every hash meta.json records for it (tables, archive), as a forger would.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

import medseg_eval.archives
from medseg_eval import leaderboard
from medseg_eval.cli import main
from tests.support import leaderboard_fixtures

scored, env = leaderboard_fixtures.scored, leaderboard_fixtures.env
_sign = leaderboard_fixtures.sign
DATASET = "synthetic-lesions"


@pytest.fixture(scope="module")
def honest(scored, tmp_path_factory):
    """Bundles of thresholds 128 (the victim of every forgery) and 160, under ``<tmp>/board/synthetic-lesions``."""
    home, models = scored
    board_dir = tmp_path_factory.mktemp("honest")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDSEG_EVAL_HOME", str(home))
        for t in (128, 160):
            leaderboard.submit(models[t][0], f"t{t}", board_dir, predictions=models[t][2])
    return board_dir


@pytest.fixture()
def bundle(honest, env, tmp_path):
    """A fresh copy of the honest board; the t128 bundle folder to forge."""
    shutil.copytree(honest, tmp_path / "board")
    return tmp_path / "board" / DATASET / "t128"


def _meta(bundle: Path) -> dict:
    return json.loads((bundle / "meta.json").read_text())


def _edit_table(bundle: Path, name: str, **columns) -> None:
    path = bundle / f"{name}.parquet"
    pl.read_parquet(path).with_columns(**columns).write_parquet(path)


def _write_archive(bundle: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(bundle / "predictions.zip", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle / "predictions.zip") as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _perfect_counts(bundle: Path) -> None:
    """Counts of a perfect model (fp = fn = 0, tp = the ground truth) and per-case values that agree with them."""
    _edit_table(bundle, "counts", tp=pl.col("tp") + pl.col("fn"), tn=pl.col("tn") + pl.col("fp"), fp=0.0, fn=0.0)
    counts = pl.read_parquet(bundle / "counts.parquet").select("case_id", "class_id", "tp")
    per_case = pl.read_parquet(bundle / "per_case.parquet").join(counts, on=["case_id", "class_id"])
    per_case.with_columns(value=pl.when(pl.col("metric") == "hd95").then(0.0).otherwise(1.0),
                          pred_empty=pl.col("tp") == 0).drop("tp").write_parquet(bundle / "per_case.parquet")


def _png(mask: np.ndarray, **save) -> bytes:
    out = io.BytesIO()
    Image.fromarray(mask).save(out, **save)
    return out.getvalue()


def forge_dice_everywhere(bundle: Path) -> None:
    _edit_table(bundle, "per_case", value=pl.when(pl.col("metric") == "dice").then(0.999).otherwise(pl.col("value")))
    _sign(bundle)


def forge_counts_and_values_together(bundle: Path) -> None:
    _perfect_counts(bundle)
    _sign(bundle)


def forge_a_distance(bundle: Path) -> None:
    _edit_table(bundle, "per_case", value=pl.when(pl.col("metric") == "hd95").then(pl.col("value") / 2)
                .otherwise(pl.col("value")))
    _sign(bundle)


def forge_empty_flags(bundle: Path) -> None:
    _edit_table(bundle, "per_case", target_empty=~pl.col("target_empty"))
    _sign(bundle)


def forge_swapped_predictions(bundle: Path) -> None:
    shutil.copyfile(bundle.parent / "t160" / "predictions.zip", bundle / "predictions.zip")
    _sign(bundle)


def forge_swapped_predictions_and_their_hash(bundle: Path) -> None:
    other = _meta(bundle.parent / "t160")["predictions_sha256"]
    shutil.copyfile(bundle.parent / "t160" / "predictions.zip", bundle / "predictions.zip")
    _sign(bundle, predictions_sha256=other, provenance={**_meta(bundle)["provenance"], "predictions_sha256": other})


def forge_one_case_replaced_by_the_ground_truth(bundle: Path) -> None:
    from medseg_eval import load_dataset

    row = next(iter(load_dataset(DATASET, split="test")))
    members = _members(bundle)
    members[f"{row['case_id']}.png"] = _png(np.asarray(row["mask"]).astype(bool), format="PNG")
    _write_archive(bundle, members)
    _sign(bundle)


def forge_archive_hash_only(bundle: Path) -> None:
    meta = _meta(bundle)
    (bundle / "meta.json").write_text(json.dumps({**meta, "predictions_archive_sha256": "0" * 64}))


def forge_jpeg_named_png(bundle: Path) -> None:
    members = _members(bundle)
    first = min(members)
    members[first] = _png(np.asarray(Image.open(io.BytesIO(members[first])).convert("L")), format="JPEG")
    _write_archive(bundle, members)
    _sign(bundle)


def forge_a_member_that_is_not_a_label_map(bundle: Path) -> None:
    _write_archive(bundle, {**_members(bundle), "../../outside.txt": b"x"})
    _sign(bundle)


def forge_not_a_zip(bundle: Path) -> None:
    (bundle / "predictions.zip").write_bytes(b"PK\x03\x04 truncated")
    _sign(bundle)


def _patch_central_directory(bundle: Path, offset: int, value: int) -> None:
    """Set one byte of the first central-directory entry of the archive (as another zip tool would write it)."""
    data = bytearray((bundle / "predictions.zip").read_bytes())
    data[data.index(b"PK\x01\x02") + offset] = value
    (bundle / "predictions.zip").write_bytes(bytes(data))


def forge_deflate64_member(bundle: Path) -> None:
    _patch_central_directory(bundle, 10, 9)  # the compression method: Deflate64, which zipfile cannot read
    _sign(bundle)


def forge_encrypted_member(bundle: Path) -> None:
    _patch_central_directory(bundle, 8, 0x1)  # the general-purpose flags: encrypted
    _sign(bundle)


def forge_a_member_that_is_no_case(bundle: Path) -> None:
    members = _members(bundle)
    _write_archive(bundle, {**members, "extra.png": members[min(members)]})
    _sign(bundle)


def forge_settings_that_drop_missed_cases(bundle: Path) -> None:
    provenance = _meta(bundle)["provenance"]
    _sign(bundle, provenance={**provenance, "empty_policy": {**provenance["empty_policy"], "one_empty": "nan"}})


def forge_predictions_removed(bundle: Path) -> None:
    (bundle / "predictions.zip").unlink()


def forge_unverified_promoted_to_verified(bundle: Path) -> None:
    (bundle / "predictions.zip").unlink()
    _sign(bundle, badge="verified", predictions_withheld="licence", predictions_archive_sha256=None)


def forge_a_copy_under_another_name(bundle: Path) -> None:
    shutil.copytree(bundle, bundle.parent / "t128-copy")
    _sign(bundle.parent / "t128-copy", model="t128 copy")


FORGERIES = {
    forge_dice_everywhere: (leaderboard.TamperedSubmissionError, r"gives dice 0\.999 .* counts .* give"),
    forge_counts_and_values_together: (leaderboard.TamperedSubmissionError, "its predictions score"),
    forge_a_distance: (leaderboard.TamperedSubmissionError, "value .* metric hd95; its predictions score"),
    forge_empty_flags: (leaderboard.TamperedSubmissionError, "target_empty=.*counts say otherwise"),
    forge_swapped_predictions: (leaderboard.TamperedSubmissionError, "not the predictions its results were computed"),
    forge_swapped_predictions_and_their_hash: (leaderboard.TamperedSubmissionError, "its predictions score"),
    forge_one_case_replaced_by_the_ground_truth: (leaderboard.TamperedSubmissionError, "not the predictions its"),
    forge_archive_hash_only: (leaderboard.TamperedSubmissionError, "predictions.zip does not match the sha256"),
    forge_jpeg_named_png: (leaderboard.SubmissionError, r"member '.*\.png': not PNG data"),
    forge_a_member_that_is_not_a_label_map: (leaderboard.SubmissionError, "'../../outside.txt': the archive holds"),
    forge_not_a_zip: (leaderboard.SubmissionError, "predictions.zip is not a zip archive"),
    forge_deflate64_member: (leaderboard.SubmissionError, r"member '.*\.png': compressed with deflate64"),
    forge_encrypted_member: (leaderboard.SubmissionError, r"member '.*\.png': encrypted"),
    forge_a_member_that_is_no_case: (leaderboard.SubmissionError, "'extra' is not a case of the split"),
    forge_settings_that_drop_missed_cases: (leaderboard.SettingsMismatchError, "scored with empty policy"),
    forge_predictions_removed: (leaderboard.IncompleteSubmissionError, "carries its predictions"),
    forge_unverified_promoted_to_verified: (leaderboard.IncompleteSubmissionError, "carries its predictions"),
    forge_a_copy_under_another_name: (leaderboard.DuplicateSubmissionError, "hold the same predictions"),
}


@pytest.mark.parametrize("forge", FORGERIES, ids=lambda f: f.__name__.removeprefix("forge_"))
def test_a_forged_bundle_is_refused_by_validate_and_build(forge, bundle, capsys):
    error, message = FORGERIES[forge]
    forge(bundle)
    board_dir = bundle.parents[1]
    if forge is not forge_a_copy_under_another_name:  # a copy is valid alone; the board refuses the pair
        with pytest.raises(error, match=message):
            leaderboard.validate(bundle)
    with pytest.raises(error, match=message):
        leaderboard.build(board_dir)
    assert not (board_dir / "index.html").exists()
    assert main(["leaderboard", "validate", "--board-dir", str(board_dir)]) == 1
    assert f"{DATASET}/t128" in capsys.readouterr().err


def test_an_unverified_bundle_whose_values_disagree_with_its_counts_is_refused(env, tmp_path):
    bundle = leaderboard.submit(env[128][0], "licensed", tmp_path, badge="unverified", predictions_withheld="licence")
    _edit_table(bundle, "per_case", value=pl.when(pl.col("metric") == "iou").then(0.95).otherwise(pl.col("value")))
    _sign(bundle)
    with pytest.raises(leaderboard.TamperedSubmissionError, match="gives iou 0.95"):
        leaderboard.build(tmp_path)


def test_an_archive_member_above_the_size_cap_is_refused_before_it_is_read(bundle, monkeypatch):
    monkeypatch.setattr(medseg_eval.archives, "MAX_MEMBER_BYTES", 100)
    with pytest.raises(leaderboard.SubmissionError, match=r"member '.*\.png': \d+ bytes uncompressed, more than the 100"):
        leaderboard.validate(bundle)
