"""The reference libraries, called the way their users call them, one binary mask pair at a time.

Only non-empty mask pairs are passed to them: on empty masks they return nan/inf, raise, or (PyPI
surface-distance 0.1 under NumPy 2) crash on ``np.Inf``, so those cases are the empty-mask policy's
business and are tested against it instead.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import medpy.metric.binary as medpy_binary
    import monai.metrics as monai_metrics
    import surface_distance as deepmind

_medpy_surface_distances = getattr(medpy_binary, "__surface_distances")


def _surface_distance_calls(pred: np.ndarray, gt: np.ndarray, spacing, percentile: float, tolerance: float) -> dict:
    sd = deepmind.compute_surface_distances(gt, pred, spacing_mm=tuple(spacing))  # shared, as its users do
    dg, dp = sd["distances_gt_to_pred"], sd["distances_pred_to_gt"]
    wg, wp = sd["surfel_areas_gt"], sd["surfel_areas_pred"]
    return {
        "hausdorff": lambda: deepmind.compute_robust_hausdorff(sd, 100),
        "hd95": lambda: deepmind.compute_robust_hausdorff(sd, percentile),
        "masd": lambda: np.mean(deepmind.compute_average_surface_distance(sd)),
        # DeepMind offers only the directed means; the pooled mean over its own distances and lengths:
        "assd": lambda: (np.sum(dg * wg) + np.sum(dp * wp)) / (np.sum(wg) + np.sum(wp)),
        "nsd": lambda: deepmind.compute_surface_dice_at_tolerance(sd, tolerance),
        "dice": lambda: deepmind.compute_dice_coefficient(gt, pred),
        # A second, independent implementation of the same NSD:
        "nsd@monai-subvoxels": lambda: _monai_nsd(pred, gt, spacing, tolerance, use_subvoxels=True),
    }


def _monai_tensor(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask.astype(np.float32))[None, None]


def _monai_nsd(pred: np.ndarray, gt: np.ndarray, spacing, tolerance: float, use_subvoxels: bool) -> float:
    return monai_metrics.compute_surface_dice(
        _monai_tensor(pred), _monai_tensor(gt), class_thresholds=[tolerance], include_background=True,
        spacing=[float(s) for s in spacing], use_subvoxels=use_subvoxels,
    ).item()


def _monai_calls(pred: np.ndarray, gt: np.ndarray, spacing, percentile: float, tolerance: float) -> dict:
    yp, y = _monai_tensor(pred), _monai_tensor(gt)
    common = {"include_background": True, "spacing": [float(s) for s in spacing]}
    return {
        "hausdorff": lambda: monai_metrics.compute_hausdorff_distance(yp, y, percentile=None, **common).item(),
        "hd95": lambda: monai_metrics.compute_hausdorff_distance(yp, y, percentile=percentile, **common).item(),
        "assd": lambda: monai_metrics.compute_average_surface_distance(yp, y, symmetric=True, **common).item(),
        "masd": lambda: 0.5 * (
            monai_metrics.compute_average_surface_distance(yp, y, symmetric=False, **common).item()
            + monai_metrics.compute_average_surface_distance(y, yp, symmetric=False, **common).item()
        ),
        "nsd": lambda: _monai_nsd(pred, gt, spacing, tolerance, use_subvoxels=False),
        "dice": lambda: monai_metrics.compute_dice(yp, y, include_background=True).item(),
    }


def _medpy_calls(pred: np.ndarray, gt: np.ndarray, spacing, percentile: float, tolerance: float) -> dict:
    sp = tuple(float(s) for s in spacing)

    def hd_percentile() -> float:
        if percentile == 95:
            return medpy_binary.hd95(pred, gt, voxelspacing=sp)
        # medpy.hd95 is fixed at 95; other percentiles pool its own distances the same way.
        return np.percentile(np.hstack((_medpy_surface_distances(pred, gt, sp, 1),
                                        _medpy_surface_distances(gt, pred, sp, 1))), percentile)

    return {
        "hausdorff": lambda: medpy_binary.hd(pred, gt, voxelspacing=sp),
        "hd95": hd_percentile,
        "assd": lambda: medpy_binary.assd(pred, gt, voxelspacing=sp),
        "masd": lambda: 0.5 * (medpy_binary.asd(pred, gt, voxelspacing=sp) + medpy_binary.asd(gt, pred, voxelspacing=sp)),
        "dice": lambda: medpy_binary.dc(pred, gt),
        "precision": lambda: medpy_binary.precision(pred, gt),
        "recall": lambda: medpy_binary.recall(pred, gt),
        "specificity": lambda: medpy_binary.specificity(pred, gt),
        "iou": lambda: medpy_binary.jc(pred, gt),
        # MedPy has no NSD; the medpy convention counts edge pixels exactly as MONAI's default does.
        "nsd@monai": lambda: _monai_nsd(pred, gt, spacing, tolerance, use_subvoxels=False),
    }


def _reference(calls):
    def reference(pred: np.ndarray, gt: np.ndarray, spacing, percentile: float, tolerance: float,
                  names=None) -> dict[str, float]:
        """The library's values for one binary mask pair; only ``names`` when given (for timing)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wanted = calls(pred, gt, spacing, percentile, tolerance)
            return {k: float(f()) for k, f in wanted.items() if names is None or k in names}

    return reference


REFERENCES = {
    "surface-distance": _reference(_surface_distance_calls),
    "monai": _reference(_monai_calls),
    "medpy": _reference(_medpy_calls),
}
