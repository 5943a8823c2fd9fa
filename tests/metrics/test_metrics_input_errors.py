"""Bad input gets a specific exception whose message says what was expected."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from medseg_eval import metrics
from medseg_eval.metrics import LabelError, OptionError, ShapeMismatchError, SpacingError

GOOD = np.zeros((2, 16, 16), np.int64)


def test_mismatched_shapes_are_rejected() -> None:
    with pytest.raises(ShapeMismatchError, match=r"\(2, 16, 16\).*\(2, 16, 17\)"):
        metrics.dice(GOOD, np.zeros((2, 16, 17), np.int64))


def test_probability_maps_with_a_channel_axis_are_rejected_with_a_hint() -> None:
    with pytest.raises(ShapeMismatchError, match="argmax"):
        metrics.dice(np.zeros((2, 3, 16, 16)), np.zeros((2, 3, 16, 16)))


def test_label_at_or_above_num_classes_is_rejected() -> None:
    bad = GOOD.copy(); bad[1, 3, 3] = 2
    with pytest.raises(LabelError, match=r"label 2 \(cases at batch index \[1\]\).*0\.\.1"):
        metrics.dice(bad, GOOD)


def test_masks_saved_as_0_255_get_a_hint() -> None:
    bad = (GOOD + 255).astype(np.uint8)
    with pytest.raises(LabelError, match="0/255"):
        metrics.hd95(bad, GOOD)


def test_negative_labels_are_rejected() -> None:
    bad = GOOD.copy(); bad[0, 0, 0] = -1
    with pytest.raises(LabelError, match="label -1"):
        metrics.dice(GOOD, bad)


def test_fractional_float_masks_are_rejected() -> None:
    with pytest.raises(LabelError, match="whole-number.*0.3"):
        metrics.dice(np.full((16, 16), 0.3), np.zeros((16, 16)))


def test_whole_number_float_masks_are_accepted() -> None:
    assert metrics.dice(np.ones((16, 16), np.float32), np.ones((16, 16))).item() == 1.0


def test_nan_is_rejected() -> None:
    bad = np.zeros((16, 16)); bad[2, 2] = np.nan
    with pytest.raises(LabelError, match="NaN"):
        metrics.dice(bad, np.zeros((16, 16)))


def test_non_array_input_is_rejected() -> None:
    with pytest.raises(LabelError, match="torch.Tensor or numpy.ndarray"):
        metrics.dice([[0, 1]], np.zeros((1, 2)))


@pytest.mark.parametrize("spacing", [(1.0,), (1.0, 2.0, 3.0), [[1.0, 1.0]] * 3, (0.0, 1.0), (-1.0, 1.0),
                                     (float("nan"), 1.0), "1mm", (True, True), True, ("1", "2"),
                                     (1e-300, 1.0), (1.0, 1e300), np.ma.masked_array([1.0, 1.0])])
def test_bad_spacing_is_rejected(spacing) -> None:
    with pytest.raises(SpacingError):
        metrics.hausdorff(GOOD, GOOD, spacing=spacing)


@pytest.mark.parametrize("num_classes", [0, 1, 2.5, True, 10**19])
def test_bad_num_classes_is_rejected(num_classes) -> None:
    with pytest.raises(OptionError, match="num_classes"):
        metrics.dice(GOOD, GOOD, num_classes=num_classes)


def test_unknown_convention_metric_percentile_tolerance_are_rejected() -> None:
    with pytest.raises(OptionError, match="convention"):
        metrics.hd95(GOOD, GOOD, convention="scipy")
    with pytest.raises(OptionError, match="Unknown metric"):
        metrics.compute(GOOD, GOOD, ["dice", "hd99"])
    for bad in ("dice", None, [["dice"]]):
        with pytest.raises(OptionError, match="list of names"):
            metrics.compute(GOOD, GOOD, bad)
    with pytest.raises(OptionError, match="EmptyPolicy"):
        metrics.compute(GOOD, GOOD, ["hd95"], empty="best")
    with pytest.raises(OptionError, match="LesionCriteria"):
        metrics.compute(GOOD, GOOD, ["lesion_recall"], lesions={"connectivity": 4})
    with pytest.raises(OptionError, match="percentile"):
        metrics.hd95(GOOD, GOOD, percentile=101)
    with pytest.raises(OptionError, match="tolerance"):
        metrics.nsd(GOOD, GOOD, tolerance=-1)


def test_roi_of_wrong_shape_is_rejected() -> None:
    with pytest.raises(ShapeMismatchError, match="roi"):
        metrics.dice(GOOD, GOOD, roi=np.ones((15, 16), bool))


def test_errors_share_one_base_class() -> None:
    assert issubclass(LabelError, metrics.MetricInputError) and issubclass(metrics.MetricInputError, ValueError)
    with pytest.raises(metrics.MetricInputError):
        metrics.dice(torch.zeros(3, 3), torch.zeros(3, 4))


def test_bad_per_case_spacing_names_the_case() -> None:
    with pytest.raises(SpacingError, match=r"batch index \[1\]"):
        metrics.hausdorff(GOOD, GOOD, spacing=[[1.0, 1.0], [0.0, 1.0]])


def test_non_binary_roi_names_the_case() -> None:
    roi = np.ones((2, 16, 16)); roi[1, 0, 0] = 0.5
    with pytest.raises(LabelError, match=r"roi.*batch index \[1\].*roi > 0"):
        metrics.dice(GOOD, GOOD, roi=roi)


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.uint64])
def test_wide_unsigned_label_maps_are_read(dtype) -> None:
    pred = np.zeros((1, 6, 6), np.uint8); pred[0, 1:4, 2:5] = 2
    gt = np.roll(pred, 1, axis=2)
    want = metrics.compute(pred, gt, ["dice", "hd95"], num_classes=3)
    for p, g in [(pred.astype(dtype), gt.astype(dtype)), (torch.from_numpy(pred.astype(dtype)), gt)]:
        got = metrics.compute(p, g, ["dice", "hd95"], num_classes=3)
        assert all(torch.equal(got[m], want[m]) for m in want)
    with pytest.raises(LabelError, match="label 7"):
        metrics.dice((pred * 3 + 1).astype(dtype), gt, num_classes=3)


def test_numpy_scalars_are_accepted_as_options() -> None:
    pred = np.zeros((9, 9), bool); pred[2:6, 2:7] = True
    gt = np.zeros((9, 9), bool); gt[3:8, 1:6] = True
    want = metrics.compute(pred, gt, ["hd95", "nsd"], percentile=95.0, tolerance=1.0)
    got = metrics.compute(pred, gt, ["hd95", "nsd"], percentile=np.float32(95), tolerance=np.int64(1))
    assert all(torch.equal(got[m], want[m]) for m in want)
    with pytest.raises(OptionError, match="percentile"):
        metrics.hd95(pred, gt, percentile=np.bool_(True))


def test_a_flipped_numpy_roi_is_read() -> None:
    pred = np.zeros((9, 9), bool); pred[2:6, 2:7] = True
    roi = np.zeros((9, 9), bool); roi[2:7] = True
    flipped = np.flipud(roi)  # a view with negative strides, equal to roi
    assert flipped.strides[0] < 0 and np.array_equal(flipped, roi)
    assert torch.equal(metrics.dice(pred, pred.T, roi=flipped), metrics.dice(pred, pred.T, roi=roi.copy()))


def test_big_endian_arrays_are_read() -> None:
    pred = np.zeros((1, 9, 9), np.int32); pred[0, 2:6, 2:7] = 1
    want = metrics.compute(pred, pred.transpose(0, 2, 1), ["dice", "hd95"], roi=pred[0] >= 0)
    got = metrics.compute(pred.astype(">i4"), pred.transpose(0, 2, 1).astype(">i2"), ["dice", "hd95"],
                          roi=(pred[0] >= 0).astype(">i4"))
    assert all(torch.equal(got[m], want[m]) for m in want)


@pytest.mark.parametrize("make", [
    lambda x: torch.from_numpy(x).to_sparse(),
    lambda x: torch.from_numpy(x).to("meta"),
    lambda x: torch.from_numpy(x).to(torch.float8_e4m3fn),
    lambda x: torch.from_numpy(x).to(torch.complex64),
    lambda x: np.ma.masked_array(x, x == 0),
    lambda x: x.astype(np.longdouble),
    pytest.param(lambda x: torch.nested.nested_tensor(list(torch.from_numpy(x))),  # strided layout, nested
                 marks=pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")),
], ids=["sparse", "meta", "float8", "complex", "masked", "longdouble", "nested"])
def test_tensors_that_are_not_plain_label_maps_are_rejected(make) -> None:
    with pytest.raises(LabelError, match="pred"):
        metrics.dice(make(GOOD), GOOD)


def test_a_spacing_tensor_that_requires_grad_is_read() -> None:
    spacing = torch.tensor([0.5, 2.0], requires_grad=True)
    assert torch.equal(metrics.hd95(GOOD, GOOD, spacing=spacing), metrics.hd95(GOOD, GOOD, spacing=(0.5, 2.0)))


@pytest.mark.parametrize(("bad", "shown"), [
    (np.inf, "label inf"), (1e20, "label 100000000000000000000"), (np.uint64(2**63 + 5), "label 9223372036854775813"),
])
def test_out_of_range_labels_are_shown_as_given(bad, shown) -> None:
    pred = np.zeros((2, 4, 4), np.asarray(bad).dtype); pred[1, 2, 2] = bad
    with pytest.raises(LabelError, match=rf"{shown} \(cases at batch index \[1\]\)"):
        metrics.dice(pred, np.zeros((2, 4, 4), np.uint8))


def test_a_0d_array_is_reported_with_its_own_shape() -> None:
    with pytest.raises(ShapeMismatchError, match=r"got shape \(\)"):
        metrics.dice(np.array(1), np.array(1))


@pytest.mark.parametrize("make", [
    lambda: metrics.EmptyPolicy(both_empty="bogus"),
    lambda: metrics.LesionCriteria(min_overlap="0.5"),
    lambda: metrics.LesionCriteria(min_overlap=True),
    lambda: metrics.LesionCriteria(iou_threshold=None),
    lambda: metrics.LesionCriteria(connectivity=8.0),
    lambda: metrics.LesionCriteria(connectivity=6),
])
def test_bad_policy_values_are_option_errors(make) -> None:
    with pytest.raises(OptionError):
        make()


def test_policies_hold_plain_python_numbers() -> None:
    criteria = metrics.LesionCriteria(connectivity=np.int64(4), min_overlap=np.float32(0.25))
    assert criteria.as_dict() == {"connectivity": 4, "min_overlap": 0.25, "criterion": "overlap", "iou_threshold": 0.5}
    assert all(type(v) in (int, float, str) for v in criteria.as_dict().values())


def test_spacing_of_tensors_that_require_grad_says_so() -> None:
    with pytest.raises(SpacingError, match="requires grad"):
        metrics.hd95(GOOD, GOOD, spacing=(torch.tensor(0.5, requires_grad=True), 1.5))


@pytest.mark.parametrize("make", [lambda r: np.ma.masked_array(r, ~r), lambda r: r.astype(np.longdouble),
                                  lambda r: torch.from_numpy(r).to_sparse()], ids=["masked", "longdouble", "sparse"])
def test_a_roi_that_is_not_a_plain_array_is_rejected(make) -> None:
    with pytest.raises(LabelError, match="`roi`"):
        metrics.dice(GOOD, GOOD, roi=make(np.ones((16, 16), bool)))


def test_one_spacing_row_is_broadcast_to_every_case() -> None:
    pred = np.zeros((2, 16, 16), np.uint8); pred[:, 2:6, 3:9] = 1
    target = np.zeros((2, 16, 16), np.uint8); target[:, 4:12, 5:7] = 1
    want = metrics.hd95(pred, target, spacing=(0.5, 2.0))
    assert torch.equal(metrics.hd95(pred, target, spacing=np.array([[0.5, 2.0]])), want)
    assert torch.equal(metrics.hd95(pred, target, spacing=torch.tensor([[0.5, 2.0]])), want)


@pytest.mark.parametrize("call", [
    lambda p: metrics.hd95(GOOD, GOOD, percentile=p),
    lambda p: metrics.compute(GOOD, GOOD, ["dice", "hd95"], percentile=p),
], ids=["hd95", "compute"])
def test_a_percentile_given_as_a_fraction_warns_at_the_callers_line(call) -> None:
    with pytest.warns(metrics.PercentileWarning, match=r"percentile=0\.95.*pass 95, not 0\.95") as caught:
        call(0.95)
    assert [w.filename for w in caught] == [__file__]


@pytest.mark.parametrize(("names", "percentile"), [(["hd95"], 95.0), (["hd95"], 0.0), (["hd95"], 1.0),
                                                    (["dice", "hausdorff"], 0.95)])
def test_percentiles_that_are_meant_do_not_warn(names, percentile) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.compute(GOOD, GOOD, names, percentile=percentile)
