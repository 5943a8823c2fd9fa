"""Label checks of predictions: the same decisions as a sorted np.unique, in linear passes; files read in threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from medseg_eval import _parallel
from medseg_eval.predictions import (
    PredictionFormatError,
    PredictionLabelError,
    distinct_values,
    only_0_and_255,
    read_predictions,
    to_labels,
)

DTYPES = [np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64, np.uint64, np.float32,
          np.float64]
VALUE_SETS = [(0,), (0, 1), (1,), (0, 255), (255,), (0, 1, 255), (0, 2), (0, 1, 2), (-1, 0, 1), (0, 254, 255),
              (0, 127), (-3, 0, 255, 300), (0, 1000, 70000), (5, 6, 7, 8, 9, 10)]


def _unique_decision(array: np.ndarray, num_classes: int) -> str | list[int]:
    """What the checks decided when they were written with np.unique (the reference)."""
    values = np.unique(array)
    if num_classes == 2 and values.size and values.max() == 255 and set(values.tolist()) <= {0, 255}:
        return "0_255"
    if values.size and (values.min() < 0 or values.max() >= num_classes):
        return [int(v) for v in values if v < 0 or v >= num_classes][:5]
    return "accepted"


def _cases():
    rng = np.random.default_rng(7)
    for dtype in DTYPES:
        for values in VALUE_SETS:
            if dtype == np.bool_ and set(values) - {0, 1}:
                continue
            info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
            if info is not None and (min(values) < info.min or max(values) > info.max):
                continue
            for num_classes in (2, 3, 256):
                yield np.asarray(rng.choice(values, size=(7, 9)), dtype=dtype), num_classes


@pytest.mark.parametrize("seed", range(3))
def test_label_checks_decide_as_a_sorted_unique_did(seed):
    rng = np.random.default_rng(seed)
    for array, num_classes in _cases():
        array = array[rng.permutation(7)]
        expected = _unique_decision(array, num_classes)
        rules: dict[str, str] = {}
        try:
            labels = to_labels(array, "c1", num_classes, rules, "predictions")
        except PredictionLabelError as err:
            assert isinstance(expected, list) and f"values {expected} are not class ids" in str(err), (array, err)
            assert "c1" in str(err)
            continue
        if expected == "0_255":
            assert rules == {"values_0_255": "binary masks saved as {0, 255} read as {0, 1}"}
            assert labels.tolist() == (array == 255).astype(np.uint8).tolist()
        else:
            assert expected == "accepted" and rules == {}, (array.dtype, np.unique(array), num_classes)
            assert labels.tolist() == array.astype(np.int64).tolist()
        assert labels.dtype == np.uint8 and labels.flags.c_contiguous


def test_values_outside_the_classes_are_named_smallest_first():
    mask = np.array([[-7, 0, 3], [300, -2, 1], [9, 4, 5]], np.int16)
    with pytest.raises(PredictionLabelError, match=r"c1: values \[-7, -2, 3, 4, 5\] are not class ids 0\.\.2\.") as err:
        to_labels(mask, "c1", 3, {}, "predictions")
    assert "{0, 255}" not in str(err.value)  # that hint is for binary masks only
    with pytest.raises(PredictionLabelError, match=r"values \[255\].*saved as \{0, 255\} is accepted"):
        to_labels(np.array([[0, 1, 255]], np.uint8), "c1", 2, {}, "predictions")
    with pytest.raises(PredictionLabelError, match=r"values \[255\] are not class ids 0\.\.2"):
        to_labels(np.array([[0, 255]], np.uint8), "c1", 3, {}, "predictions")  # {0, 255} is read as binary only


def test_float_masks_of_whole_numbers_are_labels_and_fractions_are_refused():
    rules: dict[str, str] = {}
    assert to_labels(np.array([[0.0, 1.0, -0.0]]), "c1", 2, rules, "p").tolist() == [[0, 1, 0]] and rules == {}
    assert to_labels(np.array([[0.0, 255.0]], np.float32), "c1", 2, rules, "p").tolist() == [[0, 1]]
    assert "values_0_255" in rules
    with pytest.raises(PredictionLabelError, match=r"values \[-1\]"):
        to_labels(np.array([[0.0, -1.0]]), "c1", 2, {}, "p")
    with pytest.raises(PredictionLabelError, match="fractional"):
        to_labels(np.array([[0.0, 1.5]]), "c1", 3, {}, "p")


def test_empty_masks_are_accepted_as_they_were():
    for dtype in (np.uint8, np.float32, np.bool_):
        assert to_labels(np.zeros((0, 4), dtype), "c1", 2, {}, "p").shape == (0, 4)


def test_distinct_values_equal_numpy_unique_for_every_integer_range(monkeypatch):
    monkeypatch.setattr("medseg_eval.labels._BLOCK", 5)  # several blocks even on small arrays
    rng = np.random.default_rng(1)
    for dtype in DTYPES:
        info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
        for lo, hi in [(0, 2), (0, 256), (-40, 40), (None, None)]:
            if dtype == np.bool_:
                array = rng.random(23) > 0.5
            elif info is None:
                array = rng.integers(-5, 5, 23).astype(dtype) / 2
            else:
                lo = info.min if lo is None or lo < info.min else lo
                hi = info.max if hi is None or hi > info.max else hi
                array = rng.integers(lo, hi, 23, dtype=dtype, endpoint=True)
            got = distinct_values(array.reshape(23, 1)[::-1])
            assert got.dtype == np.unique(array).dtype and got.tolist() == np.unique(array).tolist(), (dtype, lo, hi)
    extreme = np.array([np.iinfo(np.uint64).max, 0, 3], np.uint64)
    assert distinct_values(extreme).tolist() == sorted(extreme.tolist())
    assert distinct_values(np.zeros(0, np.uint8)).size == 0


def test_only_0_and_255_is_exact():
    assert only_0_and_255(np.array([0, 0], np.uint8)) and only_0_and_255(np.array([255.0, 0.0]))
    assert not only_0_and_255(np.array([0, 255, 1], np.uint8)) and not only_0_and_255(np.array([-255, 255]))
    assert not only_0_and_255(np.array([np.nan, 255.0]))


def test_a_palette_image_keeps_its_indices(tmp_path):
    mask = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    image = Image.new("P", (3, 2))
    image.putdata(mask.ravel().tolist())
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    image.save(tmp_path / "a.png")
    assert read_predictions(tmp_path, ["a"], num_classes=3).masks["a"].tolist() == mask.tolist()


def _folder(tmp_path, count):
    rng = np.random.default_rng(0)
    masks = {f"case{i:03d}": (rng.random((30, 40)) > 0.5).astype(np.uint8) * 255 for i in range(count)}
    for case_id, mask in masks.items():
        Image.fromarray(mask).save(tmp_path / f"{case_id}.png")
    return masks


def test_files_read_in_threads_give_what_one_thread_gives(tmp_path, monkeypatch):
    masks = _folder(tmp_path, 40)
    threaded = read_predictions(tmp_path, sorted(masks), num_classes=2)
    monkeypatch.setattr(_parallel, "MAX_WORKERS", 1)
    alone = read_predictions(tmp_path, sorted(masks), num_classes=2)
    assert threaded.sha256 == alone.sha256 and threaded.rules == alone.rules
    assert list(threaded.masks) == sorted(masks)
    assert all(np.array_equal(threaded.masks[c], m // 255) for c, m in masks.items())


def test_a_damaged_file_among_many_is_named(tmp_path):
    masks = _folder(tmp_path, 30)
    (tmp_path / "case017.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "case023.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(PredictionFormatError, match=r"cannot read prediction .*case017\.png"):
        read_predictions(tmp_path, sorted(masks), num_classes=2)
    Image.fromarray(masks["case023"]).save(tmp_path / "case023.png")
    Image.fromarray(np.full((30, 40), 7, np.uint8)).save(tmp_path / "case017.png")
    with pytest.raises(PredictionLabelError, match=r"case017: values \[7\]"):
        read_predictions(tmp_path, sorted(masks), num_classes=2)


def test_threads_keep_the_items_order_and_raise_the_first_failure():
    def slow_square(x):
        time.sleep(0.01 * (5 - x % 5))
        return x * x, threading.current_thread().name

    out = _parallel.map_in_threads(slow_square, range(12), workers=4)
    assert [v for v, _ in out] == [x * x for x in range(12)]

    def fail_on_odd(x):
        if x % 2:
            time.sleep(0.02 if x == 1 else 0)  # the later item fails first in time
            raise ValueError(f"item {x}")
        return x

    with pytest.raises(ValueError, match="item 1"):
        _parallel.map_in_threads(fail_on_odd, range(8), workers=4)


@pytest.mark.parametrize("channels", [1, 2])
def test_channels_last_is_refused_with_its_fix_not_called_a_size_mismatch(tmp_path, channels):
    from medseg_eval import evaluate
    from medseg_eval.prediction_errors import PredictionShapeError

    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 10:30] = 1
    (tmp_path / "p").mkdir()
    (tmp_path / "t").mkdir()
    np.save(tmp_path / "p" / "a.npy", np.repeat(mask[:, :, None], channels, 2))
    np.save(tmp_path / "t" / "a.npy", mask)
    for preds in (tmp_path / "p", {"a": np.repeat(mask[:, :, None], channels, 2)}):
        with pytest.raises(PredictionShapeError, match=rf"for a: channels last \(40, 50, {channels}\).*mask\[\.\.\., 0\]"):
            evaluate(preds, targets=tmp_path / "t", num_classes=2, metrics=["dice"], progress=False)
